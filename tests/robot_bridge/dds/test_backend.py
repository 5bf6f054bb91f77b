"""`DdsBackend` against a separate process that plays a ROS 2 robot driver on loopback DDS.

Each test gets its own DDS domain (from the pid and a counter) so parallel runs do not
cross-talk; every domain is confined to 127.0.0.1 by `LOOPBACK_CONFIG`. Waits poll for an event
with a generous deadline; nothing asserts how fast it came.
"""

import subprocess
import sys

import numpy as np
import pytest

from robot_bridge.dds import LOOPBACK_CONFIG, DdsBackend, type_hash
from robot_bridge.errors import BackendUnavailableError, BridgeError, CommandError
from robot_bridge.types import ControllerMode, GripperCommand, JointTrajectory, StopCategory
from tests.robot_bridge.dds.peer_client import next_domain, state_where, wait_for

HOME = [0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4]


def test_state_arrives_with_names_positions_and_capsules(cell):
    peer, backend = cell()
    assert isinstance(backend, DdsBackend)
    state = backend.latest_state()
    assert state.joint_names == tuple(f"panda_joint{i}" for i in range(1, 8))
    np.testing.assert_allclose(state.position, HOME, atol=1e-12)
    assert state.healthy and state.mode is ControllerMode.STOPPED
    assert state.link_segments.shape == (9, 2, 3) and state.link_names[0] == "panda_link0"
    assert 0.25 < state.tcp_position[0] < 0.35  # the ready pose: TCP ~0.31 m in front of the base
    assert state.extras["header_stamp_unix_ns"] > 0
    # limits come from the URDF the peer published on /robot_description
    assert backend.joint_lower_limits[0] == pytest.approx(-2.9671)


def test_trajectory_reaches_the_peer_unchanged_with_the_type_hash(cell):
    peer, backend = cell()
    backend.reset()
    q0 = backend.latest_state().position
    traj = JointTrajectory(backend.joint_names, np.vstack([q0, q0 + 0.05, q0 + 0.1]),
                           np.array([0.0, 0.2, 0.4]), goal_id="g1")
    backend.execute(traj)
    matched = peer.expect("matched")
    assert matched["user_data"] == f"typehash={type_hash('trajectory_msgs/msg/JointTrajectory')};"
    got = peer.expect("trajectory")
    assert got["joint_names"] == list(backend.joint_names)
    assert [p["positions"] for p in got["points"]] == traj.positions.tolist()
    assert [p["time_from_start"] for p in got["points"]] == [[0, 0], [0, 200_000_000], [0, 400_000_000]]
    assert got["stamp"] == [0, 0]
    state = state_where(backend, lambda s: s.goal_done and s.goal_id == "g1", "goal done")
    np.testing.assert_allclose(state.position, q0 + 0.1, atol=0.01)
    assert state.mode is ControllerMode.IDLE


def test_protective_stop_publishes_a_hold_and_is_latched(cell):
    peer, backend = cell()
    backend.reset()
    q0 = backend.latest_state().position
    backend.execute(JointTrajectory(backend.joint_names, np.vstack([q0, q0 + 0.5]), np.array([0.0, 5.0])))
    peer.expect("trajectory")
    wait_for(lambda: np.abs(backend.latest_state().velocity).max() > 0.05, "motion")
    backend.protective_stop(StopCategory.STOP_1, seq=7)
    stop = peer.expect("trajectory")
    (point,) = stop["points"]
    assert point["velocities"] == [0.0] * 7
    state = state_where(backend, lambda s: s.mode is ControllerMode.STOPPED, "standstill")
    assert state.safety_seq == 7 and state.speed_scale == 0.0
    np.testing.assert_allclose(state.position, point["positions"], atol=1e-6)
    with pytest.raises(CommandError, match=r"refused, a protective stop is held \(goal 'g2'\); call reset\(\) first"):
        backend.execute(JointTrajectory(backend.joint_names, state.position[None, :], np.array([0.0]), goal_id="g2"))
    # reset resumes the unfinished trajectory from where it stopped
    backend.reset()
    resumed = peer.expect("trajectory")
    assert resumed["points"][-1]["positions"] == pytest.approx((q0 + 0.5).tolist())


def test_empty_stop_message_option(cell):
    peer, backend = cell(stop_message="empty")
    backend.protective_stop(StopCategory.STOP_0, seq=1)
    stop = peer.expect("trajectory")
    assert stop["points"] == [] and stop["joint_names"] == list(backend.joint_names)


def test_speed_scale_retimes_the_rest_of_the_trajectory(cell):
    peer, backend = cell()
    backend.reset()
    q0 = backend.latest_state().position
    times = np.array([0.0, 20.0, 40.0])
    backend.execute(JointTrajectory(backend.joint_names, np.vstack([q0, q0 + 0.01, q0 + 0.02]), times))
    peer.expect("trajectory")
    backend.set_speed_scale(0.5, seq=3)
    retimed = peer.expect("trajectory")
    # both remaining points, each due at (t - s) / 0.5 for the path time s already covered
    assert len(retimed["points"]) == 2
    due = [p["time_from_start"][0] + p["time_from_start"][1] / 1e9 for p in retimed["points"]]
    s = 20.0 - due[0] * 0.5
    assert 0.0 <= s < 20.0
    assert due[1] == pytest.approx((40.0 - s) / 0.5, abs=1e-6)
    assert wait_for(lambda: backend.latest_state().safety_seq == 3, "ack")


def test_speed_scaling_topic_gets_the_factor_instead_of_a_retime(cell):
    peer, backend = cell("--scaling-topic", "/speed_scaling_factor", speed_scaling_topic="/speed_scaling_factor")
    backend.set_speed_scale(0.25, seq=1)
    assert peer.expect("speed_scaling")["data"] == 0.25


def test_stale_state_turns_health_false_until_states_return_and_fault_stays_latched(cell):
    peer, backend = cell(state_timeout_s=0.2)
    backend.reset()
    peer.send("pause")
    state = state_where(backend, lambda s: not s.healthy, "unhealthy")
    assert state.mode is ControllerMode.FAULT
    with pytest.raises(CommandError, match=r"refused, no fresh robot state"):
        backend.execute(JointTrajectory(backend.joint_names, state.position[None, :], np.array([0.5])))
    backend.reset()  # refused while stale (logged): the fault stays
    peer.send("resume")
    state = state_where(backend, lambda s: s.healthy, "healthy again")
    assert state.mode is ControllerMode.FAULT
    backend.reset()
    wait_for(lambda: backend.latest_state().mode is ControllerMode.IDLE, "IDLE after reset")


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("bad_lengths", "JointState: 7 names but 6 positions"),
        ("nan", "JointState: position of 'panda_joint1' is not finite"),
        ("missing_joint", "JointState: lacks joint 'panda_joint7' of the robot"),
    ],
)
def test_malformed_joint_states_are_rejected_and_the_reader_lives_on(cell, kind, reason):
    peer, backend = cell()
    peer.send(kind)
    peer.expect("sent")
    wait_for(lambda: backend.rejected_messages >= 1, "a rejection")
    assert backend.last_reject_reason.startswith(reason)
    before = backend.latest_state().stamp_ns
    state = state_where(backend, lambda s: s.stamp_ns > before, "newer states")
    assert state.healthy and state.extras["last_reject_reason"].startswith(reason)
    assert np.isfinite(state.position).all()


def test_joint_states_without_velocities_get_finite_differences(cell):
    peer, backend = cell("--no-velocity")
    backend.reset()
    q0 = backend.latest_state().position
    backend.execute(JointTrajectory(backend.joint_names, np.vstack([q0, q0 + 0.5]), np.array([0.0, 5.0])))
    state = state_where(backend, lambda s: s.velocity[0] > 0.05, "motion")
    assert state.velocity[0] == pytest.approx(0.1, rel=0.5)  # 0.5 rad over 5 s


def test_gripper_commands_are_refused_without_a_gripper_controller(cell):
    peer, backend = cell("--fingers", "0.08")
    backend.reset()
    with pytest.raises(CommandError, match=r"gripper commands need robot.dds.gripper_controller in the cell "
                                           r"file \(a forward_position or joint_trajectory controller"):
        backend.execute(GripperCommand(0.04))


def test_wrong_joints_are_refused(cell):
    peer, backend = cell()
    backend.reset()
    with pytest.raises(CommandError, match=r"JointTrajectory 'x': joint_names must be the robot's joints"):
        backend.execute(JointTrajectory(("a",), np.zeros((1, 1)), np.array([1.0]), goal_id="x"))


def test_no_robot_description_is_a_clear_error():
    domain = next_domain()
    backend = DdsBackend(domain_id=domain, dds_config=LOOPBACK_CONFIG, description_timeout_s=0.3)
    try:
        with pytest.raises(BackendUnavailableError,
                           match=rf"no robot description on /robot_description in domain {domain} within 0.3 s"):
            backend.start()
    finally:
        backend.shutdown()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"domain_id": 233}, r"domain_id must be an integer in 0..232, got 233"),
        ({"stop_message": "brake"}, r"stop_message must be 'hold' or 'empty', got 'brake'"),
        ({"controller": "a b"}, r"controller name 'a b' is not a valid ROS 2 node name"),
        ({"speed_scaling_topic": "speed"}, r"'speed' is not an absolute ROS 2 topic name"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    with pytest.raises(BridgeError, match=message):
        DdsBackend(**kwargs)


def test_robot_bridge_imports_without_cyclonedds():
    code = "import sys, robot_bridge; from robot_bridge.backend import BACKENDS; " \
           "assert BACKENDS['dds'] == 'robot_bridge.dds:DdsBackend'; " \
           "assert 'cyclonedds' not in sys.modules and 'pybullet' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_payload_follows_the_finger_joints_of_the_joint_states(cell):
    from content.cell import Robot
    from robot_bridge.payload import PAYLOAD_LINK
    from robot_bridge.sim import PandaLinkKinematics

    robot = Robot.model_validate({"payload": {
        "mass_kg": 0.5, "capsule": {"p0": (0.0, 0.0, 0.0), "p1": (0.35, 0.0, 0.0), "radius_m": 0.04}},
        "stop": {"payload_kg": 0.5}})
    peer, backend = cell("--fingers", "0.08", "--part-width", "0.05", robot=robot)
    open_ = state_where(backend, lambda s: s.gripper_opening_m is not None, "the finger joints")
    assert open_.gripper_opening_m == pytest.approx(0.08) and not open_.payload_carried
    assert PAYLOAD_LINK not in open_.link_names and open_.link_segments.shape == (9, 2, 3)
    peer.send("fingers:0.0")   # close: the fingers stop on the 5 cm part
    moving = state_where(backend, lambda s: 0.05 < s.gripper_opening_m < 0.079, "the fingers closing")
    assert moving.payload_carried                      # a gripper motion: carried
    held = state_where(backend, lambda s: s.gripper_opening_m == pytest.approx(0.05) and s.payload_carried,
                       "the grasp")
    assert held.link_names[-1] == PAYLOAD_LINK and held.link_segments.shape == (10, 2, 3)
    kin = PandaLinkKinematics(robot)   # the gate's robot model: the same capsule, same place
    try:
        np.testing.assert_allclose(held.link_segments[-1], kin.link_segments(held.position[None])[0, -1], atol=1e-6)
    finally:
        kin.close()
    peer.send("fingers:0.08")  # release
    released = state_where(backend, lambda s: s.gripper_opening_m == pytest.approx(0.08) and not s.payload_carried,
                           "the release")
    assert PAYLOAD_LINK not in released.link_names
    peer.send("no_fingers")    # the finger joints vanish from /joint_states: the grip is unknown
    unknown = state_where(backend, lambda s: s.gripper_opening_m is None, "the grip going stale")
    assert unknown.payload_carried and unknown.link_names[-1] == PAYLOAD_LINK and unknown.healthy


def test_a_gripper_closed_on_nothing_carries_nothing_over_dds(cell):
    from content.cell import Robot

    robot = Robot.model_validate({"payload": {
        "mass_kg": 0.5, "capsule": {"p0": (0.0, 0.0, 0.0), "p1": (0.0, 0.0, 0.2), "radius_m": 0.03}},
        "stop": {"payload_kg": 0.5}})
    peer, backend = cell("--fingers", "0.08", "--no-velocity", robot=robot)
    state_where(backend, lambda s: s.gripper_opening_m is not None, "the finger joints")
    peer.send("fingers:0.0")
    state_where(backend, lambda s: 0.0 < s.gripper_opening_m < 0.07 and s.payload_carried,
                "the fingers closing (finite differences: moving)")
    empty = state_where(backend, lambda s: s.gripper_opening_m == 0.0 and not s.payload_carried, "closed on nothing")
    assert len(empty.link_names) == 9
