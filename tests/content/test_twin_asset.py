"""The static twin GLB: valid glTF 2.0, one node per URDF link, animated by its extras to the same
link poses PyBullet computes, y-up once at the `cell` node, zones as translucent meshes."""

import io
import json
import math
import shutil
import subprocess

import numpy as np
import pybullet
import pytest
import trimesh

from content.cell import Pose, Zone, load_cell
from content.errors import TwinAssetError
from content.twin_asset import (
    CELL_TO_GLTF,
    TwinAssetCache,
    build_twin_glb,
    read_glb_json,
    twin_asset_key,
)
from robot_bridge.sim.panda import panda_urdf_path, yaw_quaternion
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = load_cell(REPO_ROOT / "launch" / "cells" / "demo.yaml")


@pytest.fixture(scope="module")
def panda_glb() -> tuple[bytes, tuple[str, ...]]:
    return build_twin_glb(panda_urdf_path(), DEMO.robot.base, DEMO.zones)


def _node_matrix(node: dict) -> np.ndarray:
    if "matrix" in node:
        return np.array(node["matrix"], dtype=float).reshape(4, 4).T  # column-major
    matrix = np.eye(4)
    if "rotation" in node:
        x, y, z, w = node["rotation"]
        matrix = trimesh.transformations.quaternion_matrix([w, x, y, z])
    if "translation" in node:
        matrix[:3, 3] = node["translation"]
    return matrix


def _joint_motion(joint: dict | None, q: dict[str, float]) -> np.ndarray:
    """What a client does with a link node's extras: M0 -> M0 · motion(q)."""
    if joint is None or joint["type"] == "fixed":
        return np.eye(4)
    mimic = joint["mimic"]
    value = (mimic["multiplier"] * q[mimic["joint"]] + mimic["offset"]) if mimic else q[joint["name"]]
    axis = np.array(joint["axis"])
    if joint["type"] == "prismatic":
        return trimesh.transformations.translation_matrix(axis * value)
    return trimesh.transformations.rotation_matrix(value, axis)


def _link_poses_in_cell(gltf: dict, q: dict[str, float]) -> dict[str, np.ndarray]:
    """World matrices (`cell` frame) of every link node, from the file's node tree alone."""
    nodes = gltf["nodes"]
    poses: dict[str, np.ndarray] = {}

    def walk(index: int, parent: np.ndarray) -> None:
        node = nodes[index]
        extras = node.get("extras") or {}
        local = _node_matrix(node)
        if "urdf_link" in extras:
            local = local @ _joint_motion(extras["joint"], q)
        world = parent @ local
        if "urdf_link" in extras:
            poses[extras["urdf_link"]] = world
        for child in node.get("children", []):
            walk(child, world)

    root = gltf["scenes"][gltf["scene"]]["nodes"][0]
    for child in nodes[root]["children"]:  # below the y-up node: the cell frame
        walk(child, np.eye(4))
    return poses


def test_the_glb_is_gltf_2_with_one_node_per_link_as_the_kinematic_tree(panda_glb):
    glb, links = panda_glb
    gltf = read_glb_json(glb)
    assert gltf["asset"]["version"] == "2.0"
    scene = trimesh.load(io.BytesIO(glb), file_type="glb")  # the library parses it back
    assert isinstance(scene, trimesh.Scene)

    link_nodes = {n["extras"]["urdf_link"]: n for n in gltf["nodes"] if "urdf_link" in (n.get("extras") or {})}
    assert len(links) == 13
    assert sorted(link_nodes) == sorted(links)
    assert [n["name"] for n in gltf["nodes"]].count("panda_link3") == 1
    names = [n["name"] for n in gltf["nodes"]]
    children = {n["name"]: {names[c] for c in n.get("children", [])} for n in gltf["nodes"]}
    assert children["cell"] == {"robot", "zones"}
    assert children["robot"] == {"panda_link0"}
    assert {"panda_link2", "panda_link1/visual0"} == children["panda_link1"]
    assert {"panda_leftfinger", "panda_rightfinger", "panda_grasptarget"} < children["panda_hand"]
    # the two fingers share one glTF mesh
    left, right = (gltf["nodes"][names.index(f"panda_{s}finger/visual0")]["mesh"] for s in ("left", "right"))
    assert left == right
    assert link_nodes["panda_rightfinger"]["extras"]["joint"]["mimic"] == {
        "joint": "panda_finger_joint1", "multiplier": 1.0, "offset": 0.0}
    joint2 = link_nodes["panda_link2"]["extras"]["joint"]
    assert joint2 == {"name": "panda_joint2", "type": "revolute", "axis": [0.0, 0.0, 1.0],
                      "lower": -1.8326, "upper": 1.8326, "mimic": None}
    for material in gltf["materials"]:
        pbr = material["pbrMetallicRoughness"]
        assert 0.0 <= pbr.get("roughnessFactor", 1.0) <= 1.0
        assert 0.0 <= pbr.get("metallicFactor", 1.0) <= 1.0


_VALIDATE = """
const validator = require(process.argv[1]);
const bytes = new Uint8Array(require("fs").readFileSync(process.argv[2]));
validator.validateBytes(bytes).then((report) => console.log(JSON.stringify(report.issues)));
"""


def khronos_validation(glb: bytes, tmp_path) -> dict:
    """The issues the Khronos glTF-Validator (npm `gltf-validator`, run by node) finds."""
    module = REPO_ROOT / "node_modules" / "gltf-validator"
    node = shutil.which("node")
    if node is None or not module.is_dir():
        pytest.fail(f"node or {module} missing: run `make test` (it runs `npm ci`)")
    path = tmp_path / "twin.glb"
    path.write_bytes(glb)
    done = subprocess.run([node, "-e", _VALIDATE, str(module), str(path)], capture_output=True, text=True,
                          check=True, timeout=120)
    return json.loads(done.stdout)


def test_the_khronos_validator_finds_nothing_in_the_glb(panda_glb, tmp_path):
    issues = khronos_validation(panda_glb[0], tmp_path)
    assert (issues["numErrors"], issues["numWarnings"], issues["numInfos"], issues["numHints"]) == (0, 0, 0, 0), \
        issues["messages"][:10]
    broken = bytearray(panda_glb[0])
    broken[12 + 8:12 + 8 + len(b'{"scene":0')] = b'{"scene":9'  # the validator would catch a bad file
    assert khronos_validation(bytes(broken), tmp_path)["numErrors"] > 0


def test_rotating_the_link_nodes_by_their_extras_reproduces_pybullet_link_poses(panda_glb):
    gltf = read_glb_json(panda_glb[0])
    cid = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(str(panda_urdf_path()), basePosition=DEMO.robot.base.position,
                                 baseOrientation=yaw_quaternion(math.radians(DEMO.robot.base.yaw_deg)),
                                 useFixedBase=True, physicsClientId=cid)
        joints = [pybullet.getJointInfo(body, j, physicsClientId=cid) for j in range(
            pybullet.getNumJoints(body, physicsClientId=cid))]
        rng = np.random.default_rng(7)
        for _ in range(5):
            q: dict[str, float] = {}
            for info in joints:
                name, kind, lower, upper = info[1].decode(), info[2], info[8], info[9]
                if kind in (pybullet.JOINT_REVOLUTE, pybullet.JOINT_PRISMATIC):
                    q[name] = float(rng.uniform(lower, upper))
            q["panda_finger_joint2"] = q["panda_finger_joint1"]  # the URDF's mimic
            for index, info in enumerate(joints):
                if info[1].decode() in q:
                    pybullet.resetJointState(body, index, q[info[1].decode()], physicsClientId=cid)
            poses = _link_poses_in_cell(gltf, q)
            for index, info in enumerate(joints):
                state = pybullet.getLinkState(body, index, computeForwardKinematics=True, physicsClientId=cid)
                expected = np.eye(4)
                expected[:3, :3] = np.array(pybullet.getMatrixFromQuaternion(state[5])).reshape(3, 3)
                expected[:3, 3] = state[4]
                got = poses[info[12].decode()]
                assert np.linalg.norm(got[:3, 3] - expected[:3, 3]) < 1e-3, info[12]
                assert np.abs(got[:3, :3] - expected[:3, :3]).max() < 1e-3, info[12]
    finally:
        pybullet.disconnect(cid)


def test_the_cell_node_alone_turns_the_z_up_cell_frame_into_gltf_y_up(panda_glb):
    glb = panda_glb[0]
    gltf = read_glb_json(glb)
    cell = gltf["nodes"][gltf["scenes"][0]["nodes"][0]]
    assert cell["name"] == "cell"
    to_gltf = _node_matrix(cell)
    np.testing.assert_allclose(to_gltf, CELL_TO_GLTF)
    np.testing.assert_allclose(to_gltf[:3, :3] @ [0, 0, 1], [0, 1, 0])  # cell up is glTF up
    np.testing.assert_allclose(to_gltf[:3, :3] @ [1, 0, 0], [1, 0, 0])
    np.testing.assert_allclose(to_gltf[:3, :3] @ [0, 1, 0], [0, 0, -1])
    # trimesh reads the tree the same way: the base link sits at the base pose, in y-up
    scene = trimesh.load(io.BytesIO(glb), file_type="glb")
    link0, _ = scene.graph.get("panda_link0")
    x, y, z = DEMO.robot.base.position
    np.testing.assert_allclose(link0[:3, 3], [x, z, -y], atol=1e-9)


def test_zones_are_translucent_meshes_in_the_cell_frame(panda_glb):
    glb = panda_glb[0]
    gltf = read_glb_json(glb)
    zone_nodes = {n["extras"]["zone"]: n for n in gltf["nodes"] if "zone" in (n.get("extras") or {})}
    assert {name: n["extras"]["kind"] for name, n in zone_nodes.items()} == {
        "cabinet": "robot_keep_out", "work-area": "warning", "shared-workspace": "collaborative"}
    for node in zone_nodes.values():
        material = gltf["materials"][gltf["meshes"][node["mesh"]]["primitives"][0]["material"]]
        assert material["alphaMode"] == "BLEND"
        assert material["pbrMetallicRoughness"]["baseColorFactor"][3] < 0.5
    scene = trimesh.load(io.BytesIO(glb), file_type="glb")
    cell_from_gltf = np.linalg.inv(CELL_TO_GLTF)
    cabinet = scene.geometry["zone/cabinet"].copy().apply_transform(cell_from_gltf @ scene.graph.get("zone/cabinet")[0])
    np.testing.assert_allclose(cabinet.bounds, [[0.7, -1.7, 0.0], [1.3, -1.35, 1.2]], atol=1e-6)
    area = scene.geometry["zone/work-area"].copy().apply_transform(cell_from_gltf @ scene.graph.get("zone/work-area")[0])
    np.testing.assert_allclose(area.bounds, [[0.3, -1.3, 0.0], [1.7, -0.1, 2.2]], atol=1e-6)
    assert area.volume == pytest.approx(1.4 * 1.2 * 2.2)


PRIMITIVES_URDF = """<?xml version="1.0"?>
<robot name="toy">
  <material name="blue"><color rgba="0 0 1 1"/></material>
  <link name="base"><visual><geometry><box size="0.2 0.3 0.1"/></geometry><material name="blue"/></visual></link>
  <link name="arm">
    <collision><origin xyz="0 0 0.25"/><geometry><cylinder radius="0.05" length="0.5"/></geometry></collision>
  </link>
  <link name="tip"><visual><geometry><sphere radius="0.04"/></geometry></visual></link>
  <joint name="shoulder" type="continuous"><parent link="base"/><child link="arm"/>
    <origin xyz="0 0 0.05"/><axis xyz="0 2 0"/></joint>
  <joint name="wrist" type="fixed"><parent link="arm"/><child link="tip"/><origin xyz="0 0 0.5"/></joint>
</robot>
"""


def _write(tmp_path, text: str):
    path = tmp_path / "toy.urdf"
    path.write_text(text)
    return path


def test_primitive_shapes_and_collision_fallback(tmp_path):
    glb, links = build_twin_glb(_write(tmp_path, PRIMITIVES_URDF), Pose(), [])
    assert links == ("base", "arm", "tip")
    issues = khronos_validation(glb, tmp_path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"][:10]
    gltf = read_glb_json(glb)
    names = [n["name"] for n in gltf["nodes"]]
    assert {"base/visual0", "arm/collision0", "tip/visual0"} <= set(names)
    arm = gltf["nodes"][names.index("arm")]["extras"]["joint"]
    assert arm == {"name": "shoulder", "type": "continuous", "axis": [0.0, 1.0, 0.0],
                   "lower": None, "upper": None, "mimic": None}
    scene = trimesh.load(io.BytesIO(glb), file_type="glb")
    extents = sorted(sorted(np.round(g.extents, 6).tolist()) for g in scene.geometry.values())
    assert extents == [[0.08, 0.08, 0.08], [0.1, 0.1, 0.5], [0.1, 0.2, 0.3]]  # sphere, cylinder, box
    blue = [m for m in gltf["materials"] if m["pbrMetallicRoughness"]["baseColorFactor"][:3] == [0.0, 0.0, 1.0]]
    assert blue


def test_errors_name_the_file_or_the_link(tmp_path):
    missing = PRIMITIVES_URDF.replace('<sphere radius="0.04"/>', '<mesh filename="package://toy/meshes/tip.obj"/>')
    with pytest.raises(TwinAssetError, match=r"link 'tip': mesh file 'package://toy/meshes/tip.obj' not found"):
        build_twin_glb(_write(tmp_path, missing), Pose(), [])
    two_roots = PRIMITIVES_URDF.replace('<joint name="wrist" type="fixed"><parent link="arm"/><child link="tip"/>'
                                        '<origin xyz="0 0 0.5"/></joint>', "")
    with pytest.raises(TwinAssetError, match=r"is not one kinematic tree"):
        build_twin_glb(_write(tmp_path, two_roots), Pose(), [])
    with pytest.raises(TwinAssetError, match=r"cannot read URDF .*nowhere.urdf: No such file"):
        build_twin_glb(tmp_path / "nowhere.urdf", Pose(), [])
    with pytest.raises(TwinAssetError, match=r"not a glTF 2.0 binary"):
        read_glb_json(b"PK\x03\x04 not a glb")


def test_the_cache_builds_each_content_once_in_memory_and_on_disk(tmp_path):
    urdf = _write(tmp_path, PRIMITIVES_URDF)
    zones = [Zone(name="bench", kind="restricted", box={"min": (0, 0, 0), "max": (1, 1, 1)})]
    cache = TwinAssetCache(tmp_path / "cache")
    first = cache.get(urdf, Pose(), zones)
    assert cache.get(urdf, Pose(), zones) is first
    assert cache.builds == 1
    assert first.key == twin_asset_key(urdf, Pose(), zones)
    moved = cache.get(urdf, Pose(yaw_deg=90.0), zones)
    assert moved.key != first.key and cache.builds == 2
    assert cache.get(urdf, Pose(), []).key not in (first.key, moved.key)
    urdf.write_text(PRIMITIVES_URDF.replace('radius="0.04"', 'radius="0.05"'))
    assert twin_asset_key(urdf, Pose(), zones) != first.key  # the URDF's content is in the key
    changed = cache.get(urdf, Pose(), zones)  # the running cache sees the edited file too
    assert changed.key == twin_asset_key(urdf, Pose(), zones) and cache.builds == 4
    urdf.write_text(PRIMITIVES_URDF)
    again = TwinAssetCache(tmp_path / "cache").get(urdf, Pose(), zones)  # a new process: from disk
    assert again.glb == first.glb and again.link_names == ("base", "arm", "tip")


def test_the_key_covers_the_mesh_files(tmp_path):
    (tmp_path / "meshes").mkdir()
    mesh = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    mesh.export(tmp_path / "meshes" / "tip.obj")
    urdf = _write(tmp_path, PRIMITIVES_URDF.replace('<sphere radius="0.04"/>',
                                                    '<mesh filename="package://toy/meshes/tip.obj"/>'))
    before = twin_asset_key(urdf, Pose(), [])
    trimesh.creation.box(extents=(0.2, 0.1, 0.1)).export(tmp_path / "meshes" / "tip.obj")
    assert twin_asset_key(urdf, Pose(), []) != before
    gltf = read_glb_json(build_twin_glb(urdf, Pose(), [])[0])
    assert "tip/visual0" in [n["name"] for n in gltf["nodes"]]


def test_meshes_are_shared_per_file_and_colour_and_told_apart_by_folder(tmp_path):
    for folder, size in (("a", 0.1), ("b", 0.3)):
        (tmp_path / "meshes" / folder).mkdir(parents=True)
        trimesh.creation.box(extents=(size, size, size)).export(tmp_path / "meshes" / folder / "part.obj")
    link = '<link name="{0}"><visual><geometry><mesh filename="meshes/{1}/part.obj"/></geometry>' \
           '<material name="{2}"><color rgba="{3}"/></material></visual></link>'
    urdf = _write(tmp_path, "\n".join([
        '<?xml version="1.0"?><robot name="parts">',
        link.format("one", "a", "red", "1 0 0 1"), link.format("two", "b", "red", "1 0 0 1"),
        link.format("three", "a", "green", "0 1 0 1"), link.format("four", "a", "red", "1 0 0 1"),
        *(f'<joint name="j{i}" type="fixed"><parent link="one"/><child link="{c}"/></joint>'
          for i, c in enumerate(("two", "three", "four"))),
        "</robot>"]))
    gltf = read_glb_json(build_twin_glb(urdf, Pose(), [])[0])
    mesh_of = {n["name"]: n["mesh"] for n in gltf["nodes"] if "mesh" in n}
    assert len(gltf["meshes"]) == 3
    assert mesh_of["one/visual0"] == mesh_of["four/visual0"]
    assert len({mesh_of["one/visual0"], mesh_of["two/visual0"], mesh_of["three/visual0"]}) == 3


def test_an_isolated_build_gives_the_same_bytes_and_a_broken_cache_file_is_rebuilt(tmp_path):
    urdf = _write(tmp_path, PRIMITIVES_URDF)
    zones = [Zone(name="bench", kind="collaborative", footprint=[(0, 0), (1, 0), (1, 1), (0.5, 0.4)])]
    here = TwinAssetCache().get(urdf, Pose(), zones)
    isolated_cache = TwinAssetCache(tmp_path / "cache", isolate=True)
    isolated = isolated_cache.get(urdf, Pose(), zones)  # built in a spawned child process
    assert isolated.glb == here.glb and isolated.link_names == here.link_names
    (tmp_path / "cache" / f"{here.key}.glb").write_bytes(here.glb[:100])  # a torn write
    again = TwinAssetCache(tmp_path / "cache")
    assert again.get(urdf, Pose(), zones).glb == here.glb and again.builds == 1
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [f"{here.key}.glb"]


def test_simplified_meshes_stay_within_2_mm_of_every_original_vertex():
    import open3d

    from content.twin_asset import MAX_TRIANGLES_PER_MESH, _simplified

    for name in ("link6", "hand"):  # the two with the most detail
        mesh = trimesh.load(panda_urdf_path().parent / "meshes" / "visual" / f"{name}.obj", force="mesh")
        mesh.visual = mesh.visual.to_color()
        simple = _simplified(mesh, MAX_TRIANGLES_PER_MESH, True)
        assert len(simple.faces) <= MAX_TRIANGLES_PER_MESH < len(mesh.faces)
        assert simple.visual.vertex_colors.shape == (len(simple.vertices), 4)
        scene = open3d.t.geometry.RaycastingScene()
        scene.add_triangles(open3d.core.Tensor(np.asarray(simple.vertices, np.float32)),
                            open3d.core.Tensor(np.asarray(simple.faces, np.uint32)))
        distance = scene.compute_distance(open3d.core.Tensor(np.asarray(mesh.vertices, np.float32))).numpy()
        assert distance.max() < 0.002, (name, distance.max())
