"""The static twin: the cell's robot and zones as one glTF 2.0 binary (GLB).

The robot comes from its URDF (parsed with ROS's `urdf_parser_py`) and the mesh files the URDF
names (loaded with `trimesh`, which also writes the GLB). One glTF node per URDF link, arranged as
the kinematic tree; a client animates the robot from joint positions alone (see `link_extras`).

Node tree (node names are the URDF names verbatim):

    cell                      the `cell` frame; its matrix is the one z-up -> y-up conversion
    ├── robot                 the robot's base pose in the cell (position, yaw about z)
    │   └── panda_link0       the URDF root link
    │       ├── panda_link0/visual0      a mesh of the link, at the URDF <visual> origin
    │       └── panda_link1   a child link; its matrix is the joint <origin> (joint at 0)
    │           └── ...
    └── zones
        └── zone/<name>       one translucent mesh per zone, material per zone kind

Frames: every node below ``cell`` is in the `cell` frame (REP 103: x forward, y left, z up, metres).
glTF is y-up; `CELL_TO_GLTF` on the ``cell`` node is the only place the axes change.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import json
import logging
import math
import multiprocessing
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from content.cell import Pose, Zone
from content.errors import TwinAssetError

log = logging.getLogger(__name__)

TWIN_ASSET_VERSION = 2
"""Version of the node layout, extras and mesh processing below; part of the cache key."""

MAX_TRIANGLES_PER_MESH = 3000
"""Mesh files with more triangles are simplified to this many (quadric decimation, Open3D): the
Panda's visual meshes have 102 k triangles in all, which a software-rendered page (SwiftShader) or
a pair of glasses redraws at 30 Hz; simplified, 22 k (a 0.65 MB GLB instead of 4.8 MB). Measured: every
vertex of the original meshes lies within 1.4 mm of the simplified surface (largest: link6, 1.33 mm).
"""

CELL_TO_GLTF: np.ndarray = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
"""(4, 4) homogeneous matrix from the `cell` frame (z up) to glTF's frame (y up):
(x, y, z)_cell -> (x, z, -y)_glTF, a rotation of -90 degrees about x. The ``cell`` node's matrix."""

ZONE_COLORS_RGBA: dict[str, tuple[float, float, float, float]] = {
    "warning": (0.949, 0.788, 0.298, 0.18),
    "collaborative": (0.184, 0.502, 0.929, 0.18),
    "restricted": (0.949, 0.600, 0.290, 0.22),
    "robot_keep_out": (0.922, 0.341, 0.341, 0.25),
}
"""Base colour (linear RGBA, alpha < 1: translucent) of each zone kind (`content.cell.ZONE_KINDS`)."""

_DEFAULT_RGBA = (0.8, 0.8, 0.82, 1.0)
_MOVING_JOINTS = ("revolute", "continuous", "prismatic")


@dataclass(frozen=True)
class TwinAsset:
    """One generated GLB.

    Attributes:
        glb: the glTF 2.0 binary (``model/gltf-binary``).
        key: hex SHA-256 of everything it was built from (`twin_asset_key`); a strong ETag.
        link_names: the URDF links, one glTF node each, in URDF order.
    """

    glb: bytes
    key: str
    link_names: tuple[str, ...]


def _urdf_robot(urdf_path: Path) -> Any:
    from urdf_parser_py import xml_reflection
    from urdf_parser_py.urdf import URDF

    # The parser prints every tag it does not model (PyBullet's <contact>, <material> inside
    # <collision>) to stderr; those are not errors for a viewer.
    xml_reflection.core.on_error = lambda message: log.debug("urdf_parser_py: %s", message)
    try:
        return URDF.from_xml_string(urdf_path.read_bytes())
    except OSError as exc:
        raise TwinAssetError(f"cannot read URDF {urdf_path}: {exc.strerror}") from exc
    except Exception as exc:  # noqa: BLE001 - the parser raises bare exceptions of many kinds
        raise TwinAssetError(f"cannot parse URDF {urdf_path}: {exc}") from exc


def _mesh_path(urdf_path: Path, filename: str) -> Path:
    """The file of a URDF ``<mesh filename>``: ``package://<pkg>/...``, ``package://...``
    (PyBullet's form, relative to the URDF's folder), ``file://`` or a relative path."""
    if filename.startswith("file://"):
        return Path(filename[len("file://"):])
    if filename.startswith("package://"):
        rest = filename[len("package://"):]
        candidate = urdf_path.parent / rest
        if candidate.is_file():
            return candidate
        return urdf_path.parent / rest.split("/", 1)[-1]  # drop the package name
    return urdf_path.parent / filename


def _shapes(robot: Any, link: Any) -> tuple[str, list[Any]]:
    """The link's visuals, or its collision shapes when it has no visual."""
    return ("visual", link.visuals) if link.visuals else ("collision", link.collisions)


def _mesh_files(urdf_path: Path, robot: Any) -> list[Path]:
    files: list[Path] = []
    for link in robot.links:
        for shape in _shapes(robot, link)[1]:
            filename = getattr(shape.geometry, "filename", None)
            if filename is not None:
                path = _mesh_path(urdf_path, filename)
                files.append(path)
                mtl = path.with_suffix(".mtl")
                if mtl.is_file():
                    files.append(mtl)
    return sorted(set(files))


def twin_asset_key(urdf_path: str | Path, base: Pose, zones: Sequence[Zone]) -> str:
    """Hex SHA-256 of the URDF, every mesh file it uses (and their ``.mtl``), the base pose, the
    zones and `TWIN_ASSET_VERSION`: equal keys give equal GLBs.

    Raises:
        TwinAssetError: the URDF or a mesh file cannot be read.
    """
    urdf_path = Path(urdf_path)
    robot = _urdf_robot(urdf_path)
    digest = hashlib.sha256(f"xrcell twin asset v{TWIN_ASSET_VERSION}\n".encode())
    digest.update(urdf_path.read_bytes())
    for path in _mesh_files(urdf_path, robot):
        try:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
        except OSError as exc:
            raise TwinAssetError(f"cannot read mesh {path} of URDF {urdf_path}: {exc.strerror}") from exc
    digest.update(base.model_dump_json().encode())
    digest.update(json.dumps([z.model_dump(mode="json") for z in zones], sort_keys=True).encode())
    return digest.hexdigest()


def origin_matrix(xyz: Sequence[float] | None, rpy: Sequence[float] | None) -> np.ndarray:
    """(4, 4) transform of a URDF ``<origin xyz rpy>``: translation, then fixed-axis roll (x),
    pitch (y), yaw (z), i.e. R = Rz(yaw) Ry(pitch) Rx(roll)."""
    from trimesh import transformations

    r, p, y = rpy if rpy is not None else (0.0, 0.0, 0.0)
    matrix = transformations.euler_matrix(r, p, y, "sxyz")
    matrix[:3, 3] = xyz if xyz is not None else (0.0, 0.0, 0.0)
    return matrix


def _pose_matrix(origin: Any) -> np.ndarray:
    if origin is None:
        return np.eye(4)
    return origin_matrix(origin.xyz, origin.rpy)


def link_extras(joint: Any | None) -> dict[str, Any]:
    """The ``extras`` of a link node: how the joint that moves it acts.

    ``{"urdf_link": name, "joint": null}`` for the root link, otherwise ``"joint"`` is
    ``{"name", "type" (URDF joint type), "axis" (unit (3,), in the child link's frame; null for
    a fixed joint),
    "lower", "upper" (rad or m, null if unlimited), "mimic": null | {"joint", "multiplier",
    "offset"}}``. With joint position q, the node's local matrix is ``M0 · R(axis, q)``
    (revolute, continuous) or ``M0 · T(q · axis)`` (prismatic), M0 the node's matrix in the file
    (the joint's origin); fixed joints do not move. A mimic joint's q is
    ``multiplier · q_joint + offset``.
    """
    if joint is None:
        return {"joint": None}
    limit = joint.limit
    mimic = joint.mimic
    moving = joint.type in _MOVING_JOINTS
    axis = np.asarray(joint.axis if joint.axis is not None else (1.0, 0.0, 0.0), dtype=float)
    norm = float(np.linalg.norm(axis))
    return {
        "joint": {
            "name": joint.name,
            "type": joint.type,
            "axis": (axis / norm).tolist() if moving and norm > 0 else None,
            "lower": None if limit is None or not moving or joint.type == "continuous" else limit.lower,
            "upper": None if limit is None or not moving or joint.type == "continuous" else limit.upper,
            "mimic": None if mimic is None else {
                "joint": mimic.joint,
                "multiplier": 1.0 if mimic.multiplier is None else mimic.multiplier,
                "offset": 0.0 if mimic.offset is None else mimic.offset,
            },
        }
    }


def _material(rgba: Sequence[float], name: str) -> Any:
    from trimesh.visual.material import PBRMaterial

    translucent = rgba[3] < 1.0
    return PBRMaterial(
        name=name,
        baseColorFactor=[int(round(c * 255)) for c in rgba],
        metallicFactor=0.1,
        roughnessFactor=0.6,
        alphaMode="BLEND" if translucent else "OPAQUE",
        doubleSided=translucent,
    )


def _colored(mesh: Any, rgba: Sequence[float], name: str) -> Any:
    from trimesh.visual import TextureVisuals

    mesh.visual = TextureVisuals(material=_material(rgba, name))
    return mesh


def _simplified(mesh: Any, triangles: int, colors: bool) -> Any:
    """`mesh` reduced to about `triangles` triangles by quadric decimation (Open3D), vertex colours
    carried along; seams (vertices repeated for the texture) are welded first."""
    import open3d
    import trimesh

    o3d = open3d.geometry.TriangleMesh(open3d.utility.Vector3dVector(np.asarray(mesh.vertices, dtype=np.float64)),
                                       open3d.utility.Vector3iVector(np.asarray(mesh.faces, dtype=np.int32)))
    if colors:
        rgb = np.asarray(mesh.visual.vertex_colors, dtype=np.float64)[:, :3] / 255.0
        o3d.vertex_colors = open3d.utility.Vector3dVector(rgb)
    o3d = o3d.merge_close_vertices(1e-6)
    o3d = o3d.simplify_quadric_decimation(target_number_of_triangles=triangles)
    o3d.remove_degenerate_triangles()
    o3d.remove_unreferenced_vertices()
    result = trimesh.Trimesh(np.asarray(o3d.vertices), np.asarray(o3d.triangles), process=False)
    if colors:
        rgba = np.clip(np.round(np.asarray(o3d.vertex_colors) * 255.0), 0, 255).astype(np.uint8)
        result.visual = trimesh.visual.ColorVisuals(
            result, vertex_colors=np.hstack([rgba, np.full((len(rgba), 1), 255, np.uint8)]))
    result.update_faces(result.nondegenerate_faces())
    result.remove_unreferenced_vertices()
    return result


class _Geometry:
    """Loads and shares the meshes of the URDF's shapes (one glTF mesh per distinct shape)."""

    def __init__(self, urdf_path: Path, colors: dict[str, tuple[float, ...]]) -> None:
        self.urdf_path = urdf_path
        self.colors = colors
        self.meshes: dict[str, Any] = {}  # glTF mesh name -> trimesh mesh
        self._loaded: dict[tuple[Path, tuple[float, ...]], tuple[Any, bool]] = {}

    def _load(self, path: Path, scale: tuple[float, ...], filename: str, where: str) -> tuple[Any, bool]:
        """The mesh of a file at a scale, and whether it has its own colours (loaded once)."""
        import trimesh

        loaded = self._loaded.get((path, scale))
        if loaded is not None:
            return loaded
        if not path.is_file():
            raise TwinAssetError(f"{where}: mesh file {filename!r} not found at {path}")
        try:
            mesh = trimesh.load(path, force="mesh")
        except Exception as exc:  # noqa: BLE001 - trimesh raises many kinds
            raise TwinAssetError(f"{where}: cannot load mesh {path}: {exc}") from exc
        mesh.apply_scale(scale)
        # degenerate triangles have no normal, and glTF requires unit normals
        mesh.update_faces(mesh.nondegenerate_faces())
        mesh.remove_unreferenced_vertices()
        own_colors = getattr(mesh.visual, "kind", None) == "texture" and getattr(
            mesh.visual.material, "image", None) is not None
        if own_colors:
            # the colour atlas sampled into vertex colours (COLOR_0): no images in the GLB, so
            # no blob: fetches in the pages (CSP) and a smaller file
            mesh.visual = mesh.visual.to_color()
        if len(mesh.faces) > MAX_TRIANGLES_PER_MESH:
            mesh = _simplified(mesh, MAX_TRIANGLES_PER_MESH, own_colors)
        self._loaded[(path, scale)] = (mesh, own_colors)
        return mesh, own_colors

    def add(self, shape: Any, where: str) -> str:
        import trimesh

        geometry = shape.geometry
        material = getattr(shape, "material", None)
        rgba = _DEFAULT_RGBA
        if material is not None:
            if material.color is not None:
                rgba = tuple(material.color.rgba)
            elif material.name in self.colors:
                rgba = self.colors[material.name]
        kind = type(geometry).__name__
        if kind == "Mesh":
            path = _mesh_path(self.urdf_path, geometry.filename)
            scale = tuple(geometry.scale) if geometry.scale is not None else (1.0, 1.0, 1.0)
            mesh, own_colors = self._load(path, scale, geometry.filename, where)
            try:
                name = path.relative_to(self.urdf_path.parent).as_posix()
            except ValueError:
                name = path.as_posix()
            key = name if scale == (1.0, 1.0, 1.0) else f"{name} {scale}"
            if not own_colors:  # one glTF mesh per file and colour
                key = f"{key} {tuple(round(c, 3) for c in rgba)}"
                if key not in self.meshes:
                    self.meshes[key] = _colored(mesh.copy(), rgba, key)
            self.meshes.setdefault(key, mesh)
            return key
        if kind == "Box":
            mesh, key = trimesh.creation.box(extents=geometry.size), f"box{tuple(geometry.size)}"
        elif kind == "Cylinder":
            mesh = trimesh.creation.cylinder(radius=geometry.radius, height=geometry.length, sections=32)
            key = f"cylinder({geometry.radius}, {geometry.length})"
        elif kind == "Sphere":
            mesh = trimesh.creation.icosphere(subdivisions=3, radius=geometry.radius)
            key = f"sphere({geometry.radius})"
        else:
            raise TwinAssetError(f"{where}: unsupported URDF geometry {kind}")
        key = f"{key} {tuple(round(c, 3) for c in rgba)}"
        self.meshes.setdefault(key, _colored(mesh, rgba, key))
        return key


def _zone_mesh(zone: Zone) -> Any:
    import shapely
    import trimesh

    if zone.box is not None:
        lo, hi = np.asarray(zone.box.min), np.asarray(zone.box.max)
        mesh = trimesh.creation.box(extents=hi - lo)
        mesh.apply_translation((lo + hi) / 2)
    elif zone.footprint is None:  # `Zone` refuses this; a model built without validation
        raise TwinAssetError(f"zone {zone.name!r} has neither a box nor a footprint")
    else:
        bottom, top = zone.z_range_m
        mesh = trimesh.creation.extrude_polygon(shapely.Polygon(zone.footprint), top - bottom)
        mesh.apply_translation((0.0, 0.0, bottom))
    return _colored(mesh, ZONE_COLORS_RGBA[zone.kind], f"zone_{zone.kind}")


def build_twin_glb(urdf_path: str | Path, base: Pose, zones: Sequence[Zone]) -> tuple[bytes, tuple[str, ...]]:
    """Generate the GLB of the node tree in the module docstring.

    Args:
        urdf_path: the robot's URDF; mesh files resolve as PyBullet resolves them.
        base: the robot's base pose in the `cell` frame.
        zones: the cell's zones (`cell` frame).

    Returns:
        ``(glb, link_names)``: the GLB bytes and the URDF link names in URDF order.

    Raises:
        TwinAssetError: unreadable URDF or mesh, a URDF that is not one tree, or an unsupported
            geometry; the message names the file or the link.
    """
    import trimesh

    urdf_path = Path(urdf_path)
    robot = _urdf_robot(urdf_path)
    try:
        root = robot.get_root()
    except Exception as exc:  # noqa: BLE001 - urdf_parser_py asserts on several roots
        raise TwinAssetError(f"URDF {urdf_path} is not one kinematic tree: {exc}") from exc
    colors = {m.name: tuple(m.color.rgba) for m in robot.materials if m.color is not None}
    for link in robot.links:  # materials defined inline in one link and named in others
        for shape in link.visuals:
            m = shape.material
            if m is not None and m.color is not None:
                colors.setdefault(m.name, tuple(m.color.rgba))

    scene = trimesh.Scene(base_frame="cell")
    geometry = _Geometry(urdf_path, colors)
    yaw = math.radians(base.yaw_deg)
    base_matrix = origin_matrix(base.position, (0.0, 0.0, yaw))
    scene.graph.update(frame_from="cell", frame_to="robot", matrix=base_matrix,
                       metadata={"urdf_robot": robot.name})
    parent_joint = {j.child: j for j in robot.joints}
    placed: list[tuple[str, np.ndarray, str | None, dict]] = []  # (node, matrix, geometry, extras)
    for link in robot.links:
        joint = parent_joint.get(link.name)
        parent = "robot" if joint is None else joint.parent
        if joint is None and link.name != root:
            raise TwinAssetError(f"URDF {urdf_path}: link {link.name!r} has no parent joint")
        matrix = np.eye(4) if joint is None else _pose_matrix(joint.origin)
        scene.graph.update(frame_from=parent, frame_to=link.name, matrix=matrix,
                           metadata={"urdf_link": link.name, **link_extras(joint)})
        what, shapes = _shapes(robot, link)
        for i, shape in enumerate(shapes):
            node = f"{link.name}/{what}{i}"
            key = geometry.add(shape, f"URDF {urdf_path.name} link {link.name!r}")
            placed.append((node, _pose_matrix(shape.origin), key, {"parent": link.name}))
    for node, matrix, key, extras in placed:
        if key not in scene.geometry:
            scene.add_geometry(geometry.meshes[key], geom_name=key, node_name=node,
                               parent_node_name=extras["parent"], transform=matrix)
        else:  # a mesh several links use (the two fingers): one glTF mesh, several nodes
            scene.graph.update(frame_from=extras["parent"], frame_to=node, matrix=matrix, geometry=key)

    scene.graph.update(frame_from="cell", frame_to="zones", matrix=np.eye(4))
    for zone in zones:
        key = f"zone/{zone.name}"
        scene.add_geometry(_zone_mesh(zone), geom_name=key, node_name=key, parent_node_name="zones",
                           metadata={"zone": zone.name, "kind": zone.kind})

    link_names = tuple(link.name for link in robot.links)
    scene.metadata["xrcell_twin"] = {
        "version": TWIN_ASSET_VERSION, "frame": "cell", "robot": robot.name,
        "links": list(link_names), "zones": [z.name for z in zones],
    }

    def y_up(tree: dict) -> None:
        cell = tree["nodes"][0]
        cell["matrix"] = CELL_TO_GLTF.T.reshape(-1).tolist()  # glTF matrices are column-major
        cell["extras"] = {"frame": "cell", "note": "z-up cell frame -> y-up glTF"}
        views, accessors = tree.get("bufferViews", []), tree.get("accessors", [])
        for mesh in tree.get("meshes", []):  # bufferView.target: vertex data or indices
            for primitive in mesh["primitives"]:
                for accessor in primitive.get("attributes", {}).values():
                    views[accessors[accessor]["bufferView"]]["target"] = 34962  # ARRAY_BUFFER
                if "indices" in primitive:
                    views[accessors[primitive["indices"]]["bufferView"]]["target"] = 34963
        for material in tree.get("materials", []):  # OBJ/MTL shininess can map outside [0, 1]
            pbr = material.get("pbrMetallicRoughness", {})
            for factor in ("metallicFactor", "roughnessFactor"):
                if factor in pbr:
                    pbr[factor] = min(1.0, max(0.0, float(pbr[factor])))

    glb = trimesh.exchange.gltf.export_glb(scene, include_normals=True, unitize_normals=True,
                                           tree_postprocessor=y_up)
    return glb, link_names


def _stats(files: Sequence[Path]) -> list[tuple[int, int] | None]:
    stats: list[tuple[int, int] | None] = []
    for path in files:
        try:
            st = path.stat()
            stats.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append(None)
    return stats


class TwinAssetCache:
    """Builds each distinct twin GLB once (key: `twin_asset_key`), in memory and optionally on disk.

    Thread safety: `get` may be called from any thread; one lock serialises builds, so concurrent
    first requests build once. Several processes may share `cache_dir` (files are replaced
    atomically; an unreadable one is rebuilt).

    Args:
        cache_dir: folder for ``<key>.glb`` files that outlive the process; None: memory only.
        isolate: build in a child process (spawned), so the build's few seconds of CPU do not hold
            this process's GIL while a safety loop or a server runs in it.
    """

    def __init__(self, cache_dir: str | Path | None = None, *, isolate: bool = False) -> None:
        self._dir = None if cache_dir is None else Path(cache_dir)
        self._isolate = isolate
        self._lock = threading.Lock()
        self._assets: dict[str, TwinAsset] = {}
        self._keys: dict[tuple[str, str, str], tuple[list[Path], list[tuple[int, int] | None], str]] = {}
        self.builds = 0
        """How many GLBs this cache generated (not read from memory or disk)."""

    def _key(self, urdf_path: Path, base: Pose, zones: Sequence[Zone]) -> str:
        """`twin_asset_key`, recomputed only when a file's size or modification time changed
        (hashing the Panda's 9 MB of meshes takes about 20 ms; a stat of each file, microseconds)."""
        inputs = (str(urdf_path), base.model_dump_json(),
                  json.dumps([z.model_dump(mode="json") for z in zones], sort_keys=True))
        with self._lock:
            known = self._keys.get(inputs)
        if known is not None and _stats(known[0]) == known[1]:
            return known[2]
        files = [urdf_path, *_mesh_files(urdf_path, _urdf_robot(urdf_path))]
        stats = _stats(files)
        key = twin_asset_key(urdf_path, base, zones)
        with self._lock:
            self._keys[inputs] = (files, stats, key)
        return key

    def get(self, urdf_path: str | Path, base: Pose, zones: Sequence[Zone]) -> TwinAsset:
        """The twin of this URDF, base pose and zones (`build_twin_glb`), built at most once.

        Raises:
            TwinAssetError: as `build_twin_glb`.
        """
        key = self._key(Path(urdf_path), base, zones)
        with self._lock:
            asset = self._assets.get(key)
            if asset is not None:
                return asset
            links = tuple(link.name for link in _urdf_robot(Path(urdf_path)).links)
            path = None if self._dir is None else self._dir / f"{key}.glb"
            glb = None if path is None else _read_cached(path)
            if glb is None:
                glb, links = self._build(Path(urdf_path), base, zones)
                self.builds += 1
                if path is not None:
                    _write_atomically(path, glb)
            asset = self._assets[key] = TwinAsset(glb, key, links)
            return asset

    def _build(self, urdf_path: Path, base: Pose, zones: Sequence[Zone]) -> tuple[bytes, tuple[str, ...]]:
        if not self._isolate:
            return build_twin_glb(urdf_path, base, zones)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(build_twin_glb, urdf_path, base, list(zones)).result()


def _read_cached(path: Path) -> bytes | None:
    try:
        glb = path.read_bytes()
        read_glb_json(glb)
    except (OSError, ValueError, TwinAssetError) as exc:
        if path.exists():
            log.warning("ignoring cached twin %s: %s", path, exc)
        return None
    return glb


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, path)


def read_glb_json(glb: bytes) -> dict:
    """The JSON chunk of a GLB (glTF 2.0 spec, "Binary glTF Layout"), for tests and tools.

    Raises:
        TwinAssetError: not a version 2 GLB.
    """
    stream = io.BytesIO(glb)
    header = stream.read(12)
    if len(header) < 12 or header[:4] != b"glTF" or int.from_bytes(header[4:8], "little") != 2:
        raise TwinAssetError("not a glTF 2.0 binary (bad GLB header)")
    length = int.from_bytes(stream.read(4), "little")
    if stream.read(4) != b"JSON":
        raise TwinAssetError("GLB: the first chunk is not JSON")
    return json.loads(stream.read(length))
