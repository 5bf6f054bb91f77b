"""The simulated depth camera and the occupancy channel in the scenario runner."""

from pathlib import Path

import numpy as np
import pytest

from safety.occupancy import OccupancyChannel
from safety.perception.depth import DepthCamera, points_from_depth
from xr_server.scenario import load_scenario, run_scenario
from xr_server.scenario_depth import SimulatedDepthCamera

LIBRARY = Path(__file__).parent / "library"
CAMERA = DepthCamera.look_at([0.0, 0.0, 3.0], [0.0, 0.0, 0.0], 90.0, 160, 120)


def test_a_rendered_capsule_has_its_depth_and_distance():
    sim = SimulatedDepthCamera(CAMERA, 0.0, np.random.default_rng(0))
    # A person-like vertical capsule at x = 1 m (top of its sphere at 1.6 m) and a robot link at the origin.
    body = (np.array([[[1.0, 0.0, 0.2], [1.0, 0.0, 1.45]]]), np.array([0.15]))
    link = (np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]), np.array([0.1]))
    empty = sim.render([])
    assert empty == pytest.approx(np.full((120, 160), 3.0), abs=1e-5)  # the floor, straight below
    depth = sim.render([body, link])
    # Straight down the optical axis: the link's top sphere at 1.1 m, 1.9 m below the camera.
    assert depth[59:61, 79:81] == pytest.approx(1.9, abs=0.01)
    channel = OccupancyChannel(voxel_size_m=0.05)
    channel.learn_background(points_from_depth(empty, CAMERA), *link)
    m = channel.measure(points_from_depth(depth, CAMERA), *link, ("link0",), capture_ns=0)
    # The body's surface nearest the link is 1.0 - 0.15 - 0.1 = 0.75 m away; what the camera sees
    # from above is its upper side: the channel's lower bound lies within two voxels below.
    assert m.closest_link == "link0" and m.robot_points > 0 and m.background_points > 0
    assert 0.75 - 0.1 <= m.separation_m <= 0.75 + 0.05


def test_a_person_the_pose_estimator_misses_is_stopped_for_by_the_occupancy_channel():
    scenario = load_scenario(LIBRARY / "depth-invisible-walk-up-045deg-2.0mps.yaml")
    assert not scenario.people[0].visible_to_pose
    with_depth = run_scenario(scenario)
    assert with_depth["channels"] == ["skeleton", "occupancy"] and with_depth["depth_frames"] > 300
    assert with_depth["passed"], with_depth["failures"]
    assert not with_depth["contact"] and with_depth["stops"] >= 1 and with_depth["final_mode"] == "fault_stop"
    # The same person without the depth camera: the skeleton channel alone never sees them.
    skeleton_only = run_scenario(scenario.model_copy(update={"depth_camera": None}))
    assert skeleton_only["channels"] == ["skeleton"] and skeleton_only["contact"]


def test_a_part_placed_next_to_the_robot_is_masked_not_a_false_stop():
    scenario = load_scenario(LIBRARY / "depth-place-post-empty-cell.yaml")
    masked = run_scenario(scenario)
    assert masked["passed"], masked["failures"]
    # The post was placed, lies in the depth camera's view next to the robot, and nobody is in
    # the cell: no stop.
    assert masked["payload"]["places"] >= 1 and masked["depth_released_parts"] >= 1
    assert masked["stops"] == 0 and masked["final_mode"] == "full_speed"
    # The same run with the channel blind to the robot's placed-objects list: the post is
    # occupancy that no skeleton explains, the robot stops and the channels' disagreement
    # latches a fault stop.
    spec = scenario.depth_camera.model_copy(update={"mask_placed_objects": False})
    unmasked = run_scenario(scenario.model_copy(update={"depth_camera": spec}))
    assert unmasked["stops"] >= 1 and unmasked["final_mode"] == "fault_stop"
    assert unmasked["failures"] == [f"{unmasked['stops']} stops, at most 0 expected "
                                    "(final mode fault_stop)"]


def _arm_state(carried: bool, workpiece: tuple[float, float, float]):
    """A one-link robot with its payload capsule (a vertical 0.2 m post at x = 0.5 m) among its
    capsules while carried; the simulated workpiece at `workpiece`."""
    from robot_bridge.types import ControllerMode, RobotState

    link = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]])
    post = np.array([[[0.5, 0.0, 0.3], [0.5, 0.0, 0.1]]])
    segments = np.concatenate([link, post]) if carried else link
    names = ("link0", "payload") if carried else ("link0",)
    radii = np.array([0.1, 0.04])[: len(names)]
    return RobotState(0, ("j1",), np.zeros(1), np.zeros(1), np.array([0.5, 0.0, 0.3]),
                      np.zeros(3), names, segments, radii, np.zeros(len(names)), 1.0,
                      ControllerMode.IDLE, payload_carried=carried,
                      extras={"workpiece_position": workpiece})


def test_the_rendered_cell_holds_a_released_part_only_where_the_workpiece_was_carried():
    from xr_server.scenario_depth import ScriptedDepth

    sim = SimulatedDepthCamera(CAMERA, 0.0, np.random.default_rng(0))
    depth = ScriptedDepth(sim, OccupancyChannel(), 10.0, 0.0, lambda t: [], lambda t: False, 0)
    far = (1.5, 1.0, 0.025)  # the workpiece lies on the table, far from the gripper
    # An empty gripper closing and opening (carried while its goal is under way): no part lies
    # in the cell afterwards.
    for carried in (False, True, False):
        depth.advance(0.0, _arm_state(carried, far))
    assert depth.released_parts == 0
    # A part carried (the workpiece in the gripper) and released: it lies there.
    for carried, at in ((True, (0.5, 0.0, 0.3)), (False, (0.5, 0.0, 0.1))):
        depth.advance(0.0, _arm_state(carried, at))
    assert depth.released_parts == 1
