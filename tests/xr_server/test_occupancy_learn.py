"""`xrcell occupancy learn`: the background learned over a run of the program removes the false
occupancy under the arm that one empty-cell capture leaves."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.spatial.transform import Rotation

from content.cell import load_cell
from content.errors import CellDescriptionError
from robot_bridge.sim import PandaLinkKinematics
from safety.errors import OccupancyError
from safety.occupancy import BackgroundLearner, OccupancyChannel
from safety.perception.depth import DepthCamera, points_from_depth
from safety.perception.depth_input import load_background
from xr_server.cli import main
from xr_server.occupancy_learn import depth_camera_of, learn_in_simulation, program_samples
from xr_server.scenario_depth import SimulatedDepthCamera

PROGRAM = {"pick": [0.5, 0.35, 0.0], "place": [0.55, -0.3, 0.0], "approach_height_m": 0.2}


def write_cell(tmp_path: Path, depth: dict | None, program: dict | None = PROGRAM) -> Path:
    data: dict = {"name": "learn-cell"}
    if depth is not None:
        data["perception"] = {"depth": depth}
    if program is not None:
        data["program"] = program
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


#: A depth camera on a post beside the cell, 1.3 m up, looking down at the robot at an angle: the
#: arm's shadow on the floor is large (an overhead camera sees little floor behind the arm).
LOOK = DepthCamera.look_at([1.6, 0.3, 1.3], [0.3, 0.0, 0.2], 90.0, 160, 120)
F = float(LOOK.intrinsic[0, 0])
DEPTH = {"source": "depth_images", "path": "frames", "fps": 10,
         "intrinsics": {"width_px": 160, "height_px": 120, "fx": F, "fy": F, "cx": 79.5, "cy": 59.5},
         "pose": {"position": [1.6, 0.3, 1.3],
                  "quaternion": Rotation.from_matrix(LOOK.cell_from_camera[:3, :3]).as_quat().tolist()}}


def test_learning_over_the_run_removes_the_false_occupancy_under_the_arm(tmp_path):
    cell = load_cell(write_cell(tmp_path, DEPTH))
    learned, figures = learn_in_simulation(cell, cell.program, rate_hz=10.0)
    assert figures["frames"] > 30 and figures["voxels"] == len(learned)
    # The same run seen at other instants (20 Hz, the frames between the learned ones), with
    # another noise seed: what the live channel would measure against each background.
    camera = depth_camera_of(cell)
    sim = SimulatedDepthCamera(camera, 0.002, np.random.default_rng(7))
    kin = PandaLinkKinematics(cell.robot)
    try:
        segments = kin.link_segments(program_samples(cell, cell.program, 20.0)[1::2])
        radii, names = kin.link_radii_m, kin.link_names
    finally:
        kin.close()
    frames = [points_from_depth(sim.render([(seg, radii)]), camera) for seg in segments]
    single = BackgroundLearner(min_frames=1)                 # one capture: the robot at its start pose
    single.add(frames[0], segments[0], radii)
    once, over_run = [], []
    for points, seg in zip(frames, segments):
        once.append(OccupancyChannel(background=single.model()).measure(points, seg, radii, names, 0).voxel_count)
        over_run.append(OccupancyChannel(background=learned).measure(points, seg, radii, names, 0).voxel_count)
    # One capture: the floor the arm hid shows up next to the robot once the arm moves on.
    assert once[0] == 0 and max(once) >= 15 and sum(v > 0 for v in once) >= len(once) // 3, once
    # Learned over the run: nothing is left at any instant.
    assert max(over_run) == 0, over_run


def test_the_learner_counts_frames_and_self_filters_the_robot():
    learner = BackgroundLearner(voxel_size_m=0.1, self_margin_m=0.05, min_frames=2, dilation_voxels=0)
    link = (np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]), np.array([0.1]))
    floor = np.array([[1.05, 0.05, 0.05], [1.06, 0.05, 0.05], [2.05, 0.05, 0.05]])
    robot_surface = np.array([[0.12, 0.0, 0.5]])
    assert learner.add(np.vstack([floor, robot_surface]), *link) == 2
    assert learner.add(floor[:2], *link) == 1
    model = learner.model()
    assert learner.frames == 2 and len(model) == 1                 # only the voxel seen in both frames
    with pytest.raises(OccupancyError, match=r"background learning: no frames added"):
        BackgroundLearner().model()


def test_the_cli_writes_the_background_the_cell_uses(tmp_path, capsys):
    out = tmp_path / "background.npz"
    assert main(["occupancy", "learn", str(write_cell(tmp_path, DEPTH)), "--out", str(out), "--rate", "5"]) == 0
    err = capsys.readouterr().err
    assert "learning the background: frame" in err and "(100 %)" in err and f"written to {out}" in err
    model = load_background(out, 0.05)
    assert len(model) > 1000
    # The learned file is what the cell's depth block names; the composed cell loads it.
    cell = load_cell(write_cell(tmp_path, {**DEPTH, "background": "background.npz"}))
    assert cell.perception.depth.background == out


@pytest.mark.parametrize("depth, program, argv, message", [
    (None, PROGRAM, [], r"cell 'learn-cell': no perception.depth block"),
    ({"source": "ply_sequence", "path": "clouds"}, PROGRAM, [],
     r"perception.depth: learning in simulation renders the depth camera from its intrinsics and pose; "
     r"source ply_sequence gives no intrinsics"),
    (DEPTH, None, [], r"cell 'learn-cell' has no program: give one with --program FILE"),
    (DEPTH, None, ["--program", "nowhere.yaml"], r"nowhere.yaml: cannot read program"),
])
def test_cli_errors_name_the_cause(tmp_path, capsys, depth, program, argv, message):
    argv = [a if not a.endswith(".yaml") else str(tmp_path / a) for a in argv]
    code = main(["occupancy", "learn", str(write_cell(tmp_path, depth, program)), "--out",
                 str(tmp_path / "bg.npz"), *argv])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_a_program_file_with_a_bad_field_is_named(tmp_path):
    from xr_server.occupancy_learn import load_program

    (tmp_path / "p.yaml").write_text(yaml.safe_dump({"pick": [0.5, 0.3], "place": [0.5, -0.3, 0.0]}))
    with pytest.raises(CellDescriptionError, match=r"p.yaml: pick: Tuple should have at most 3 items|p.yaml: pick"):
        load_program(tmp_path / "p.yaml")
