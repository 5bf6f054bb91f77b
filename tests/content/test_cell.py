"""Cell description validation: every error names the file and the field."""

from pathlib import Path

import pytest
import yaml

from content.cell import load_cell
from content.errors import CellDescriptionError

REPO = Path(__file__).resolve().parents[2]

GOOD = {
    "name": "lab",
    "robot": {"base": {"position": [1.0, 0.5, 0.0], "yaw_deg": 90}},
    "cameras": [{"id": "cam01", "video": "videos/cam01.mp4",
                 "calibration": {"file": "calib/Calib.qca.txt", "camera": "cam01"}}],
}


def write(tmp_path, data, name="cell.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_valid_cell_resolves_paths_against_its_folder(tmp_path):
    cell = load_cell(write(tmp_path, GOOD))
    assert cell.name == "lab" and cell.robot.base.yaw_deg == 90
    assert cell.cameras[0].video == str((tmp_path / "videos/cam01.mp4").resolve())
    assert cell.cameras[0].source_kind == "file" and cell.cameras[0].latency_s == 0.0
    assert cell.cameras[0].calibration.file == (tmp_path / "calib/Calib.qca.txt").resolve()
    assert cell.safety.human_speed_mps == 1.6  # ISO 13855 default


@pytest.mark.parametrize("video, kind, latency", [
    ("rtsp://10.0.0.5/stream1", "stream", 0.25),
    ("HTTP://cam05.plant.local:8080/video.mjpg", "stream", 0.25),
    ("/dev/video2", "device", 0.1),
])
def test_live_camera_sources_are_kept_as_named(tmp_path, video, kind, latency):
    camera = {**GOOD["cameras"][0], "video": video}
    cell = load_cell(write(tmp_path, {**GOOD, "cameras": [camera]}))
    assert cell.cameras[0].video == video                    # not resolved as a file path
    assert cell.cameras[0].source_kind == kind and cell.cameras[0].latency_s == latency
    cell = load_cell(write(tmp_path, {**GOOD, "cameras": [{**camera, "capture_latency_s": 0.4}]}))
    assert cell.cameras[0].latency_s == 0.4


@pytest.mark.parametrize("patch, match", [
    ({"video": "ftp://10.0.0.5/x.mp4"}, r"cameras\[0\].video: Value error, stream scheme 'ftp' is not supported"),
    ({"video": "rtsp://10.0.0.5/s", "playback": "once"},
     r"cameras\[0\]: Value error, playback applies to video files only, not to a stream \(rtsp://10.0.0.5/s\)"),
    ({"capture_latency_s": 0.1}, r"cameras\[0\]: Value error, capture_latency_s applies to live sources only"),
    ({"video": "/dev/video0", "capture_latency_s": -0.1},
     r"cameras\[0\].capture_latency_s: Input should be greater than or equal to 0"),
])
def test_camera_source_errors_name_the_field(tmp_path, patch, match):
    camera = {**GOOD["cameras"][0], **patch}
    with pytest.raises(CellDescriptionError, match=match):
        load_cell(write(tmp_path, {**GOOD, "cameras": [camera]}))


def test_demo_cell_is_valid():
    cell = load_cell(REPO / "launch" / "cells" / "demo.yaml")
    assert len(cell.cameras) == 4 and cell.program is not None


@pytest.mark.parametrize("patch, match", [
    ({"safety": {"human_speed_mps": 0}}, r"cell.yaml: safety.human_speed_mps: Input should be greater than 0"),
    ({"safety": {"rate_hz": 10}}, r"cell.yaml: safety.rate_hz: Input should be greater than or equal to 50"),
    ({"robot": {"stop": {"category": 3}}}, r"cell.yaml: robot.stop.category: Input should be 0, 1 or 2"),
    ({"robot": {"max_tcp_speed_mps": "fast"}}, r"cell.yaml: robot.max_tcp_speed_mps: Input should be a valid number"),
    ({"cameras": [{"id": "cam 1", "video": "v.mp4", "calibration": {"file": "c", "camera": "c"}}]},
     r"cell.yaml: cameras\[0\].id: String should match pattern"),
    ({"cameras": [{"id": "c1", "calibration": {"file": "c", "camera": "c"}}]}, r"cell.yaml: cameras\[0\].video: Field required"),
    ({"safety": {"human_sped_mps": 2.0}}, r"cell.yaml: safety.human_sped_mps: Extra inputs are not permitted"),
    ({"recordings": {"retention_days": 0}}, r"cell.yaml: recordings.retention_days: Input should be greater than 0"),
    ({"recordings": {"max_total_mb": -5}}, r"cell.yaml: recordings.max_total_mb: Input should be greater than 0"),
    ({"cameras": [GOOD["cameras"][0], GOOD["cameras"][0]]}, r"cell.yaml: cameras: Value error, camera ids must be unique, repeated: cam01"),
])
def test_invalid_field_is_named(tmp_path, patch, match):
    data = {**GOOD, **patch}
    with pytest.raises(CellDescriptionError, match=match):
        load_cell(write(tmp_path, data))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(CellDescriptionError, match=r"nope.yaml: cannot read cell description"):
        load_cell(tmp_path / "nope.yaml")
    with pytest.raises(CellDescriptionError, match=r"bad.yaml: not valid YAML"):
        load_cell(write(tmp_path, "name: [unclosed", "bad.yaml"))
    with pytest.raises(CellDescriptionError, match=r"list.yaml: the cell description must be a mapping, got list"):
        load_cell(write(tmp_path, "- a\n- b\n", "list.yaml"))


def _zone(name, kind, **shape):
    return {"name": name, "kind": kind, **shape}


def test_lost_track_bounds_come_from_the_collaborative_zones(tmp_path):
    zones = [
        _zone("shared", "collaborative", footprint=[[0, 0], [2, 0], [2, 1]], z_range_m=[0.0, 2.0]),
        _zone("bench", "collaborative", box={"min": [-1, 0.5, 0.2], "max": [0.5, 3, 1]}),
        _zone("aisle", "warning", box={"min": [-9, -9, 0], "max": [9, 9, 3]}),   # not a workspace
    ]
    bounds = load_cell(write(tmp_path, {**GOOD, "zones": zones})).lost_track_bounds()
    assert bounds.min == (-1, 0, 0.0) and bounds.max == (2, 3, 2.0)


def test_cell_bounds_override_and_absence(tmp_path):
    explicit = {"min": [-3, -3, -0.5], "max": [3, 3, 2.5]}
    zones = [_zone("shared", "collaborative", box={"min": [0, 0, 0], "max": [1, 1, 1]})]
    cell = load_cell(write(tmp_path, {**GOOD, "zones": zones, "perception": {"cell_bounds": explicit}}))
    assert cell.lost_track_bounds().min == (-3, -3, -0.5)
    assert load_cell(write(tmp_path, GOOD)).lost_track_bounds() is None
    with pytest.raises(CellDescriptionError, match=r"cell.yaml: perception.cell_bounds: .*must be below max"):
        load_cell(write(tmp_path, {**GOOD, "perception": {"cell_bounds": {"min": [0, 0, 3], "max": [1, 1, 1]}}}))


def test_the_floor_height_is_zero_by_default_and_bounded(tmp_path):
    assert load_cell(write(tmp_path, GOOD)).perception.floor_z_m == 0.0
    assert load_cell(write(tmp_path, {**GOOD, "perception": {"floor_z_m": 0.06}})).perception.floor_z_m == 0.06
    with pytest.raises(CellDescriptionError, match=r"cell.yaml: perception.floor_z_m: Input should be less than or "
                                                   r"equal to 10"):
        load_cell(write(tmp_path, {**GOOD, "perception": {"floor_z_m": 60}}))


def test_demo_cell_reports_people_lost_in_its_collaborative_workspace():
    from xr_server.compose import _tracking

    cell = load_cell(REPO / "launch" / "cells" / "demo.yaml")
    tracking = _tracking(cell)          # created, not started: no child process
    lo, hi = tracking.cell_bounds
    robot_base = cell.robot.base.position
    assert all(lo[i] < robot_base[i] < hi[i] for i in range(2))


HMI = {"id": "glasses", "kind": "hmi", "user": "wendy"}


def test_an_hmi_camera_is_a_camera_of_the_cell(tmp_path):
    cell = load_cell(write(tmp_path, {**GOOD, "cameras": GOOD["cameras"] + [{**HMI, "max_pose_age_s": 0.05}]}))
    assert [c.id for c in cell.fixed_cameras()] == ["cam01"]
    (hmi,) = cell.hmi_cameras()
    assert (hmi.id, hmi.user, hmi.device, hmi.max_pose_age_s) == ("glasses", "wendy", None, 0.05)
    assert cell.cameras[0].kind == "fixed"          # the default kind


@pytest.mark.parametrize("camera, match", [
    ({"id": "glasses", "kind": "hmi"},
     r"cell.yaml: cameras\[1\]: Value error, give exactly one of user \(an account\) or device"),
    ({**HMI, "device": "hl2-0042"}, r"cell.yaml: cameras\[1\]: Value error, give exactly one of user"),
    ({**HMI, "max_pose_age_s": 2}, r"cell.yaml: cameras\[1\].max_pose_age_s: Input should be less than or equal to 1"),
    ({**HMI, "max_pose_age_s": 0}, r"cell.yaml: cameras\[1\].max_pose_age_s: Input should be greater than 0"),
    ({**HMI, "video": "v.mp4"}, r"cell.yaml: cameras\[1\].video: Extra inputs are not permitted"),
    ({**HMI, "kind": "robot"}, r"cell.yaml: cameras\[1\]: kind must be 'fixed' \(the default\) or 'hmi'"),
    ({**HMI, "id": "cam01"}, r"cell.yaml: cameras: Value error, camera ids must be unique, repeated: cam01"),
])
def test_invalid_hmi_camera_is_named(tmp_path, camera, match):
    with pytest.raises(CellDescriptionError, match=match):
        load_cell(write(tmp_path, {**GOOD, "cameras": GOOD["cameras"] + [camera]}))


def test_watchdog_bounds_are_missed_periods_of_each_input_with_floors(tmp_path):
    from content.cell import WATCHDOG_FLOORS_S
    data = {**GOOD, "cameras": [{**GOOD["cameras"][0], "frame_rate_hz": 10.0, "process_rate_hz": 4.0}],
            "robot": {**GOOD["robot"], "state_rate_hz": 100.0}, "safety": {"rate_hz": 50.0}}
    s = load_cell(write(tmp_path, data)).safety
    assert s.stale_periods == 3
    assert s.camera_timeout_s == pytest.approx(3 / 10.0)          # 3 frames at 10 fps
    assert s.tracker_timeout_s == pytest.approx(3 / 4.0)          # 3 pose-estimation periods
    assert s.robot_timeout_s == WATCHDOG_FLOORS_S["robot"]        # 30 ms < the 50 ms floor
    assert s.monitor_timeout_s == WATCHDOG_FLOORS_S["monitor"]    # 60 ms < the 0.2 s floor
    data["safety"] = {"rate_hz": 50.0, "stale_periods": 20}
    s = load_cell(write(tmp_path, data)).safety
    assert (s.camera_timeout_s, s.tracker_timeout_s, s.robot_timeout_s, s.monitor_timeout_s) == pytest.approx(
        (2.0, 5.0, 0.2, 0.4))


def test_an_explicit_watchdog_bound_in_seconds_wins(tmp_path):
    data = {**GOOD, "safety": {"robot_timeout_s": 0.3, "stale_periods": 9}}
    s = load_cell(write(tmp_path, data)).safety
    assert s.robot_timeout_s == 0.3 and s.explicit_timeouts() == {"robot": 0.3}
    assert s.monitor_timeout_s == 0.2 and s.camera_timeout_s == pytest.approx(9 / 30.0)


@pytest.mark.parametrize("patch, match", [
    ({"robot_timeout_s": 0.004}, r"cell.yaml: Value error, safety.robot_timeout_s: 0.004 s is not longer than "
                                 r"one period of its input \(5.0 ms\)"),
    ({"camera_timeout_s": 0.02}, r"safety.camera_timeout_s: 0.02 s is not longer than one period of its input "
                                 r"\(33.3 ms\)"),
    ({"stale_periods": 0}, r"cell.yaml: safety.stale_periods: Input should be greater than or equal to 1"),
    ({"tracker_timeout_s": -1}, r"cell.yaml: safety.tracker_timeout_s: Input should be greater than 0"),
])
def test_bad_watchdog_bounds_name_the_field(tmp_path, patch, match):
    with pytest.raises(CellDescriptionError, match=match):
        load_cell(write(tmp_path, {**GOOD, "safety": patch}))


def test_safety_parameters_alone_use_the_default_input_periods():
    from content.cell import SafetyParameters
    s = SafetyParameters()
    assert (s.camera_timeout_s, s.tracker_timeout_s, s.robot_timeout_s, s.monitor_timeout_s) == pytest.approx(
        (0.2, 0.375, 0.05, 0.2))
    assert SafetyParameters(camera_timeout_s=0.5).camera_timeout_s == 0.5


@pytest.mark.parametrize("poses, match", [
    ({"Home": [0.0, -0.8, 0.0, -2.4, 0.0, 1.6, 0.8]},
     r"cell.yaml: robot.named_poses: Value error, pose name 'Home': use 1 to 32 lower-case letters"),
    ({"home": [0.0, -0.8, 0.0, -2.4, 0.0, 1.6]},
     r"cell.yaml: robot.named_poses: Value error, pose 'home': 6 joint positions, franka_panda has 7 joints"),
    ({"up": [0.0, 0.0, 0.0, 0.0, 0.0, 1.6, 0.8]},
     r"cell.yaml: robot.named_poses: Value error, pose 'up': joint 4 at 0 rad is outside its limits "
     r"\[-3.0718, -0.0698\] rad"),
    ({"home": [0.0, -0.8, 0.0, -2.4, 0.0, 1.6, "x"]}, r"cell.yaml: robot.named_poses.home\[6\]: Input should be a valid number"),
])
def test_a_bad_named_pose_is_named(tmp_path, poses, match):
    data = {**GOOD, "robot": {"named_poses": poses}}
    with pytest.raises(CellDescriptionError, match=match):
        load_cell(write(tmp_path, data))


def test_the_demo_cell_ships_named_poses_and_the_panda_limits_lie_inside_the_urdfs():
    import xml.etree.ElementTree as ET

    from content.cell import JOINT_POSITION_LIMITS_RAD
    from robot_bridge.sim.panda import ARM_JOINT_NAMES, panda_urdf_path

    cell = load_cell(Path(__file__).parents[2] / "launch" / "cells" / "demo.yaml")
    assert sorted(cell.robot.named_poses) == ["handover", "home", "ready"]
    limits = {j.get("name"): j.find("limit") for j in ET.parse(panda_urdf_path()).getroot().iter("joint")}
    lower, upper = JOINT_POSITION_LIMITS_RAD["franka_panda"]
    for name, lo, hi in zip(ARM_JOINT_NAMES, lower, upper):
        assert float(limits[name].get("lower")) <= lo < hi <= float(limits[name].get("upper")), name
