"""A cell file's `perception.depth` reaches the composed cell: a depth-image or point-cloud sequence
rendered by the scenario runner's simulated depth camera drives the occupancy channel of the real
monitor beside the PyBullet robot, and a person only the depth camera sees stops the robot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import jsonschema
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from content.cell import MAX_PLACED_MARGIN_M, Robot, load_cell, parse_cell
from content.errors import CellDescriptionError
from robot_bridge.sim import PANDA_HOME_POSITION, PandaLinkKinematics
from safety.decision import SafetyMode
from safety.errors import OccupancyError, PerceptionError
from safety.occupancy import OccupancyChannel
from safety.perception.depth import DepthCamera, points_from_depth
from safety.placed_mask import MAX_MARGIN_M, PlacedObjectMask
from safety.perception.depth_input import (
    DepthImageSequence,
    OccupancyInput,
    PointCloudSequence,
    RealSenseDepth,
    load_background,
    read_depth_image,
    save_background,
)
from tests.safety.test_output import wait_until
from xr_server.compose import build_cell, cell_from_camera, depth_source, occupancy_channel, start_cell
from xr_server.openapi import TWIN_SCHEMA_PATH
from xr_server.scenario_depth import SimulatedDepthCamera

W, H, FOV_DEG = 160, 120, 90.0
#: Overhead, 3.2 m above the floor, looking straight down at the robot's working area.
LOOK = DepthCamera.look_at([0.5, 0.0, 3.2], [0.5, 0.0, 0.0], FOV_DEG, W, H)
POSE = {"position": [0.5, 0.0, 3.2],
        "quaternion": Rotation.from_matrix(LOOK.cell_from_camera[:3, :3]).as_quat().tolist()}
F = float(LOOK.intrinsic[0, 0])
INTRINSICS = {"width_px": W, "height_px": H, "fx": F, "fy": F, "cx": (W - 1) / 2, "cy": (H - 1) / 2}


def camera() -> DepthCamera:
    """The camera as the cell file describes it (its pose through `cell_from_camera`)."""
    pose = cell_from_camera(SimpleNamespace(position=POSE["position"], quaternion=POSE["quaternion"], rpy=None))
    assert np.allclose(pose, LOOK.cell_from_camera)
    return DepthCamera(W, H, LOOK.intrinsic, pose)


def robot_capsules() -> tuple[np.ndarray, np.ndarray]:
    kin = PandaLinkKinematics(Robot())
    try:
        return kin.link_segments(np.array([PANDA_HOME_POSITION]))[0], kin.link_radii_m.copy()
    finally:
        kin.close()


def person(x: float) -> tuple[np.ndarray, np.ndarray]:
    """A standing person as a vertical capsule (r 0.2 m, top at 1.7 m) at (x, 0.3)."""
    return np.array([[[x, 0.3, 0.2], [x, 0.3, 1.5]]]), np.array([0.2])


def write_sequence(folder: Path, frames: list[np.ndarray], kind: str, cam: DepthCamera) -> None:
    folder.mkdir()
    for i, depth in enumerate(frames):
        if kind == "png":
            cv2.imwrite(str(folder / f"depth_{i:04d}.png"), np.round(depth * 1000).astype(np.uint16))
        elif kind == "npy":
            np.save(folder / f"depth_{i:04d}.npy", depth)
        else:
            import open3d as o3d

            cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points_from_depth(depth, cam)))
            o3d.io.write_point_cloud(str(folder / f"cloud_{i:04d}.ply"), cloud)


@pytest.fixture(scope="module")
def rendered():
    """Depth frames of the cell: 20 with the robot alone, then 20 with a person walking from 3.5 m
    up to 0.9 m from the base; and the background of the empty cell."""
    cam = camera()
    sim = SimulatedDepthCamera(cam, 0.002, np.random.default_rng(1))
    robot = robot_capsules()
    frames = [sim.render([robot]) for _ in range(20)]
    frames += [sim.render([robot, person(x)]) for x in np.linspace(3.5, 0.9, 20)]
    channel = OccupancyChannel()
    background = channel.learn_background(points_from_depth(sim.render([]), cam), *robot)
    return cam, frames, background, robot


def state_is(composed, wanted) -> bool:
    """Whether the monitor's newest state satisfies `wanted`. A fault stop latched by a cause of the
    machine's load (a stale input, a cycle overrun: five test runs share 2 cores here), not of the
    channels' disagreement, is reset by a supervisor as an operator would; a disagreement never is."""
    state = composed.monitor.latest()
    if state is None:
        return False
    if state.mode is SafetyMode.FAULT_STOP and state.faults and not any(
            "channel disagreement" in f for f in state.faults):
        composed.monitor.reset("test-supervisor", frozenset({"supervisor"}))
        return False
    return wanted(state)


def depth_cell(tmp_path: Path, depth: dict, background: Path | None) -> Path:
    import yaml

    block = {"fps": 10, **depth}
    if background is not None:
        block["background"] = str(background.relative_to(tmp_path))
    path = tmp_path / "cell.yaml"
    # Watchdog bounds wide enough for a loaded 2-core test machine: this test is about the depth input.
    safety = {"robot_timeout_s": 0.5, "monitor_timeout_s": 1.0, "depth_timeout_s": 1.0}
    path.write_text(yaml.safe_dump({"name": "depth-cell", "safety": safety, "perception": {"depth": block}}))
    return path


@pytest.mark.parametrize("kind, source", [("png", "depth_images"), ("ply", "ply_sequence")])
def test_a_person_only_the_depth_camera_sees_stops_the_composed_cell(tmp_path, rendered, kind, source):
    cam, frames, background, _ = rendered
    write_sequence(tmp_path / "frames", frames, kind, cam)
    save_background(background, tmp_path / "background.npz")
    depth = {"source": source, "path": "frames"}
    if source == "depth_images":
        depth |= {"intrinsics": INTRINSICS, "pose": POSE}
    cell = load_cell(depth_cell(tmp_path, depth, tmp_path / "background.npz"))
    assert cell.perception.depth.path == tmp_path / "frames"
    composed = build_cell(cell)
    assert composed.channels == ("skeleton", "occupancy")
    start_cell(composed)
    try:
        # No cameras: the skeleton channel tracks nobody. With the robot alone in the depth frames
        # (its points self-filtered, the floor learned) both channels agree: full speed.
        wait_until(lambda: state_is(composed, lambda s: s.mode is SafetyMode.FULL_SPEED),
                   what="full speed with both channels")
        state = composed.monitor.latest()
        assert state.channels == ("skeleton", "occupancy") and state.occupancy_separation_m is None
        assert composed.monitor.report()["channels"] == ["skeleton", "occupancy"]
        # The twin shows the occupancy channel's newest measurement; the cell has no payload,
        # so the robot reports no placed-objects list (unknown) and nothing is refused.
        twin = composed.twin_state()
        jsonschema.validate(twin, json.loads(TWIN_SCHEMA_PATH.read_text()))
        assert twin["occupancy"]["placed_rejected"] is None and twin["occupancy"]["placed_masked"] == 0
        assert twin["robot"]["placed_objects"] is None
        # The person walks in, seen by the depth camera only: the robot stops.
        wait_until(lambda: state_is(composed, lambda s: s.mode in (SafetyMode.PROTECTIVE_STOP, SafetyMode.FAULT_STOP)
                                    and s.occupancy_separation_m is not None),
                   what="a stop for the person only depth sees")
        stopped = composed.monitor.latest()
        # Within the cross-check range: a disagreement fault (skeleton sees nobody) or the
        # occupancy channel's own protective stop, whichever comes first.
        assert stopped.occupancy_separation_m < 2.0, (stopped.reason, stopped.faults)
        assert "occupancy" in stopped.reason or "channel disagreement" in stopped.reason, stopped.reason
        assert composed.occupancy.frames >= 20 and composed.occupancy.errors == 0
    finally:
        composed.stop()


@pytest.mark.parametrize("depth, match", [
    ({"source": "kinect", "path": "x"},
     r"cell.yaml: perception.depth.source: Input should be 'ply_sequence', 'depth_images' or 'realsense'"),
    ({"source": "depth_images", "intrinsics": INTRINSICS, "pose": POSE},
     r"cell.yaml: perception.depth: Value error, source depth_images needs path"),
    ({"source": "depth_images", "path": "d", "pose": POSE},
     r"cell.yaml: perception.depth: Value error, source depth_images needs intrinsics and pose"),
    ({"source": "realsense"}, r"cell.yaml: perception.depth: Value error, source realsense needs pose"),
    ({"source": "realsense", "pose": POSE, "path": "d"},
     r"cell.yaml: perception.depth: Value error, path applies to the file sources only"),
    ({"source": "ply_sequence", "path": "d", "serial": "123"},
     r"cell.yaml: perception.depth: Value error, serial applies to source realsense only"),
    ({"source": "ply_sequence", "path": "d", "fps": 0},
     r"cell.yaml: perception.depth.fps: Input should be greater than 0"),
    ({"source": "depth_images", "path": "d", "pose": POSE, "intrinsics": {**INTRINSICS, "fx": -1}},
     r"cell.yaml: perception.depth.intrinsics.fx: Input should be greater than 0"),
    ({"source": "ply_sequence", "path": "d", "voxel_size_m": 0},
     r"cell.yaml: perception.depth.voxel_size_m: Input should be greater than 0"),
    ({"source": "ply_sequence", "path": "d", "placed_mask": {"margin_m": 0.15}},
     r"cell.yaml: perception.depth.placed_mask.margin_m: Input should be less than or equal to 0.1"),
    ({"source": "ply_sequence", "path": "d", "placed_mask": {"margin_m": -0.01}},
     r"cell.yaml: perception.depth.placed_mask.margin_m: Input should be greater than or equal to 0"),
    ({"source": "ply_sequence", "path": "d", "placed_mask": {"max_age_s": 0}},
     r"cell.yaml: perception.depth.placed_mask.max_age_s: Input should be greater than 0"),
    ({"source": "ply_sequence", "path": "d", "placed_mask": {"margin_m": "0.05"}},
     r"cell.yaml: perception.depth.placed_mask.margin_m: Input should be a valid number"),
    ({"source": "ply_sequence", "path": "d", "placed_mask": {"margin_m": False}},
     r"cell.yaml: perception.depth.placed_mask.margin_m: Input should be a valid number"),
    ({"source": "ply_sequence", "path": "d", "placed_mask": {"margin_m": float("nan")}},
     r"cell.yaml: perception.depth.placed_mask.margin_m: Input should be a finite number"),
    ({"source": "ply_sequence", "path": "d", "placed_mask": {"max_age_s": True}},
     r"cell.yaml: perception.depth.placed_mask.max_age_s: Input should be a valid number"),
    ({"source": "ply_sequence", "path": "d", "placed_mask": {"max_age_s": float("inf")}},
     r"cell.yaml: perception.depth.placed_mask.max_age_s: Input should be a finite number"),
    ({"source": "ply_sequence", "path": "d", "placed_mask": {"margin": 0.05}},
     r"cell.yaml: perception.depth.placed_mask.margin: Extra inputs are not permitted"),
])
def test_a_bad_depth_block_is_named(depth, match):
    with pytest.raises(CellDescriptionError, match=match):
        parse_cell({"name": "c", "perception": {"depth": depth}}, source="cell.yaml")


def test_the_placed_mask_settings_reach_the_composed_channel(tmp_path):
    """`perception.depth.placed_mask` sets the channel's mask; without it, the documented
    defaults (0.05 m, 0.5 s); the file's bound is the mask's own (`MAX_MARGIN_M`)."""
    default = load_cell(depth_cell(tmp_path, {"source": "ply_sequence", "path": "d"}, None))
    mask = occupancy_channel(default.perception.depth).placed_mask
    assert (mask.margin_m, mask.max_age_s) == (0.05, 0.5)
    assert mask == PlacedObjectMask()
    set_ = load_cell(depth_cell(tmp_path, {"source": "ply_sequence", "path": "d",
                                           "placed_mask": {"margin_m": 0.08, "max_age_s": 0.2}}, None))
    mask = occupancy_channel(set_.perception.depth).placed_mask
    assert (mask.margin_m, mask.max_age_s) == (0.08, 0.2)
    assert MAX_PLACED_MARGIN_M == MAX_MARGIN_M
    PlacedObjectMask(margin_m=MAX_PLACED_MARGIN_M)  # the file's largest margin is accepted


def test_missing_frames_and_background_are_refused_with_their_path(tmp_path, rendered):
    cell = load_cell(depth_cell(tmp_path, {"source": "ply_sequence", "path": "nowhere"}, None))
    with pytest.raises(PerceptionError, match=r"nowhere: not a directory of point clouds"):
        depth_source(cell.perception.depth).open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(PerceptionError, match=r"empty: no .npy or .png files"):
        DepthImageSequence(tmp_path / "empty", rendered[0]).open()
    (tmp_path / "stale.npz").write_bytes(b"not an archive")
    cell = load_cell(depth_cell(tmp_path, {"source": "ply_sequence", "path": "d"}, tmp_path / "stale.npz"))
    with pytest.raises(OccupancyError, match=r"stale.npz: not a background file"):
        build_cell(cell)
    save_background(rendered[2], tmp_path / "bg.npz")
    with pytest.raises(OccupancyError, match=r"bg.npz: background voxel size 0.05 m differs from the channel's 0.1 m"):
        load_background(tmp_path / "bg.npz", 0.1)
    assert np.array_equal(load_background(tmp_path / "bg.npz", 0.05).keys, rendered[2].keys)


def test_depth_images_are_read_and_bad_ones_named(tmp_path, rendered):
    cam, frames, _, _ = rendered
    np.save(tmp_path / "rgb.npy", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(PerceptionError, match=r"rgb.npy: a depth image must be 2-D, got shape \(4, 4, 3\)"):
        read_depth_image(tmp_path / "rgb.npy")
    cv2.imwrite(str(tmp_path / "colour.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(PerceptionError, match=r"colour.png: a .png depth image must be single-channel 16-bit"):
        read_depth_image(tmp_path / "colour.png")
    write_sequence(tmp_path / "seq", frames[:2], "png", cam)
    seq = DepthImageSequence(tmp_path / "seq", cam, loop=False)
    seq.open()
    first = seq.read()
    # Millimetre PNG and the float image give the same points within the quantisation.
    expected = points_from_depth(frames[0], cam)
    assert first.shape == expected.shape and np.abs(first - expected).max() < 0.003
    assert seq.read() is not None and seq.read() is None            # no loop: the sequence ends
    small = DepthCamera(80, 60, cam.intrinsic, cam.cell_from_camera)
    seq = DepthImageSequence(tmp_path / "seq", small)
    seq.open()
    with pytest.raises(PerceptionError, match=r"depth_0000.png: depth image: shape \(120, 160\) does not match"):
        seq.read()


def test_occupancy_input_self_filters_the_robot_in_its_newest_state(tmp_path, rendered):
    cam, frames, background, robot = rendered
    write_sequence(tmp_path / "seq", [frames[0], frames[-1]], "npy", cam)
    state = SimpleNamespace(link_segments=robot[0], link_radii_m=robot[1],
                            link_names=tuple(f"l{i}" for i in range(len(robot[1]))),
                            placed_objects=None, stamp_ns=0)
    clock = iter(range(1_000_000, 10**12, 1_000_000))
    source = DepthImageSequence(tmp_path / "seq", cam, loop=False)
    ticks = OccupancyInput(source, OccupancyChannel(background=background), lambda: state, fps=10,
                           clock=lambda: next(clock))
    source.open()
    empty = ticks.step()
    assert empty.voxel_count == 0 and empty.robot_points > 50 and empty.background_points > 10_000
    near = ticks.step()
    assert near.voxel_count > 10 and 0.2 < near.separation_m < 0.6 and near.stamp_ns > near.capture_ns
    assert ticks.step() is None and ticks.ended and ticks.latest() is near


class FakeRealSense:
    """The seam of `RealSenseDepth`: a stand-in for the `pyrealsense2` module (no device here)."""

    def __init__(self, depth_mm: np.ndarray, fail_start: bool = False) -> None:
        self.depth_mm, self.fail_start, self.enabled = depth_mm, fail_start, []
        self.stream = SimpleNamespace(depth="depth")
        self.format = SimpleNamespace(z16="z16")
        h, w = depth_mm.shape
        self.intrinsics = SimpleNamespace(width=w, height=h, fx=F, fy=F, ppx=(w - 1) / 2, ppy=(h - 1) / 2)

    def config(self):
        fake = self

        class Config:
            def enable_device(self, serial):
                fake.enabled.append(("device", serial))

            def enable_stream(self, *args):
                fake.enabled.append(args)
        return Config()

    def pipeline(self):
        fake = self

        class Pipeline:
            def start(self, config):
                if fake.fail_start:
                    raise RuntimeError("No device connected")
                sensor = SimpleNamespace(get_depth_scale=lambda: 0.001)
                stream = SimpleNamespace(as_video_stream_profile=lambda: SimpleNamespace(
                    get_intrinsics=lambda: fake.intrinsics))
                return SimpleNamespace(get_device=lambda: SimpleNamespace(first_depth_sensor=lambda: sensor),
                                       get_stream=lambda kind: stream)

            def wait_for_frames(self, timeout_ms):
                return SimpleNamespace(get_depth_frame=lambda: SimpleNamespace(get_data=lambda: fake.depth_mm))

            def stop(self):
                fake.enabled.append("stopped")
        return Pipeline()


def test_realsense_adapter_at_its_sdk_seam(rendered):
    cam, frames, _, _ = rendered
    depth_mm = np.round(frames[-1] * 1000).astype(np.uint16)
    sdk = FakeRealSense(depth_mm)
    device = RealSenseDepth(cam.cell_from_camera, width_px=W, height_px=H, fps=15, serial="f123", sdk=sdk)
    device.open()
    assert sdk.enabled == [("device", "f123"), ("depth", W, H, "z16", 15)]
    points = device.read()
    assert np.abs(points - points_from_depth(frames[-1], cam)).max() < 0.003
    device.close()
    assert sdk.enabled[-1] == "stopped"
    with pytest.raises(PerceptionError, match=r"realsense f123: cannot start the depth stream: No device connected"):
        RealSenseDepth(cam.cell_from_camera, serial="f123", sdk=FakeRealSense(depth_mm, fail_start=True)).open()


def test_realsense_without_the_sdk_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)      # as if not installed
    with pytest.raises(PerceptionError, match=r"needs the package pyrealsense2 \(pip install pyrealsense2\)"):
        RealSenseDepth(np.eye(4)).open()


def test_check_cell_names_the_depth_camera(tmp_path, capsys):
    from xr_server.cli import main

    path = depth_cell(tmp_path, {"source": "ply_sequence", "path": "clouds"}, None)
    assert main(["check-cell", str(path)]) == 0
    assert "ok: cell 'depth-cell', 0 cameras, robot franka_panda, depth camera ply_sequence" in capsys.readouterr().out
