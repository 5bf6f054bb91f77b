"""`GotoPlanner` on its own: from a given measured state and the real Panda model."""

import numpy as np
import pytest

from content.cell import Pose, Robot
from robot_bridge.sim import (
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PandaLinkKinematics,
)
from robot_bridge.sim.panda import ARM_JOINT_NAMES, PANDA_HOME_POSITION
from robot_bridge.types import ControllerMode, RobotState
from xr_server.robot_goto import GotoPlanner, GotoRefused

ROBOT = Robot(base=Pose(position=(1.0, -1.0, 0.0), yaw_deg=90.0))
READY = (0.0, -0.5, 0.0, -1.6, 0.0, 1.1, 0.7854)


def at(position, velocity=None, goal_done=True) -> RobotState:
    q = np.asarray(position, dtype=np.float64)
    return RobotState(
        stamp_ns=0, joint_names=ARM_JOINT_NAMES, position=q,
        velocity=np.zeros(7) if velocity is None else np.asarray(velocity, dtype=np.float64),
        tcp_position=np.zeros(3), tcp_velocity_mps=np.zeros(3), link_names=(), link_segments=np.zeros((0, 2, 3)),
        link_radii_m=np.zeros(0), link_speeds_mps=np.zeros(0), speed_scale=1.0, mode=ControllerMode.IDLE,
        goal_id="pick", goal_done=goal_done)


@pytest.fixture(scope="module")
def kin():
    k = PandaLinkKinematics(ROBOT)
    yield k
    k.close()


def planner(kin, state):
    return GotoPlanner({"home": PANDA_HOME_POSITION, "ready": READY}, ARM_JOINT_NAMES,
                       PANDA_JOINT_VELOCITY_LIMITS_RADPS, PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
                       lambda: state, kin)


def test_a_named_pose_is_reached_with_the_tcp_within_the_reduced_speed(kin):
    traj = planner(kin, at(PANDA_HOME_POSITION)).plan("g", named_pose="ready")
    np.testing.assert_array_equal(traj.positions[-1], READY)
    tcp = np.array([kin.tool_pose(q)[0] for q in traj.positions])
    speeds = np.linalg.norm(np.diff(tcp, axis=0), axis=1) / np.diff(traj.time_from_start_s)
    assert 0.2 < speeds.max() <= 0.25         # the TCP limit, not the joints, set the pace


def test_a_tcp_target_keeps_the_orientation_in_the_cell_frame(kin):
    p0, r0 = kin.tool_pose(np.asarray(PANDA_HOME_POSITION))
    target = p0 + [0.1, 0.05, -0.1]
    traj = planner(kin, at(PANDA_HOME_POSITION)).plan("g", tcp_position_m=target)
    p1, r1 = kin.tool_pose(traj.positions[-1])
    np.testing.assert_allclose(p1, target, atol=0.002)
    np.testing.assert_allclose(r1, r0, atol=0.01)


def test_refusals_name_their_rule(kin):
    with pytest.raises(GotoRefused, match=r"^motion: the robot is moving \(0.30 rad/s at a joint\)"):
        planner(kin, at(PANDA_HOME_POSITION, [0, 0.3, 0, 0, 0, 0, 0])).plan("g", named_pose="home")
    with pytest.raises(GotoRefused, match=r"^motion: the robot is executing goal 'pick'; a go-to starts"):
        planner(kin, at(PANDA_HOME_POSITION, goal_done=False)).plan("g", named_pose="home")
    # settling after a goal (below GOTO_AT_REST_RADPS) is rest
    planner(kin, at(PANDA_HOME_POSITION, [0, 0.1, 0, 0, 0, 0, 0])).plan("g", named_pose="ready")
    with pytest.raises(GotoRefused, match="^path: no robot state"):
        planner(kin, None).plan("g", named_pose="home")
    with pytest.raises(GotoRefused, match=r"^reach: TCP target \[1.0, 2.0, 0.5\] m \(cell frame\) is out of reach"):
        planner(kin, at(PANDA_HOME_POSITION)).plan("g", tcp_position_m=[1.0, 2.0, 0.5])
    with pytest.raises(KeyError, match="unknown pose 'lunch'; the cell's poses: home, ready"):
        planner(kin, at(PANDA_HOME_POSITION)).plan("g", named_pose="lunch")
    bare = GotoPlanner({}, ARM_JOINT_NAMES, PANDA_JOINT_VELOCITY_LIMITS_RADPS,
                       PANDA_JOINT_ACCELERATION_LIMITS_RADPS2, lambda: at(PANDA_HOME_POSITION), None)
    with pytest.raises(GotoRefused, match="^reach: no robot model to solve a TCP target"):
        bare.plan("g", tcp_position_m=[0.3, 0.0, 0.5])
    assert bare.describe() == {"joint_names": list(ARM_JOINT_NAMES), "named_poses": {},
                               "tcp_targets": False, "tcp_speed_mps": 0.25}
