"""Checking received JointState messages against the robot's joints."""

import math

import numpy as np
import pytest

from robot_bridge.dds import msgs
from robot_bridge.dds.joint_state import JointStateRejected, check_joint_state

JOINTS = ("j1", "j2", "j3")


def js(name, position, velocity=(), effort=(), sec=10, nanosec=5):
    return msgs.JointState(header=msgs.Header(msgs.Time(sec, nanosec), ""), name=list(name),
                           position=list(position), velocity=list(velocity), effort=list(effort))


def test_reorders_to_the_robot_and_ignores_extra_joints():
    s = check_joint_state(js(["finger", "j3", "j1", "j2"], [0.04, 3.0, 1.0, 2.0], [9.0, 0.3, 0.1, 0.2]), JOINTS)
    assert s.position.tolist() == [1.0, 2.0, 3.0]
    assert s.velocity.tolist() == [0.1, 0.2, 0.3]
    assert s.stamp_unix_ns == 10_000_000_005


def test_no_velocities_give_none():
    assert check_joint_state(js(JOINTS, [1.0, 2.0, 3.0]), JOINTS).velocity is None


@pytest.mark.parametrize(
    "msg, reason",
    [
        (js(JOINTS, [1.0, 2.0]), r"JointState: 3 names but 2 positions"),
        (js(JOINTS, [1.0, 2.0, 3.0], [0.0]), r"JointState: 3 names but 1 velocities"),
        (js(JOINTS, [1.0, 2.0, 3.0], [], [0.0] * 4), r"JointState: 3 names but 4 efforts"),
        (js(["j1", "j1", "j2"], [1.0, 2.0, 3.0]), r"JointState: joint name 'j1' appears more than once"),
        (js(["j1", "j2", "x"], [1.0, 2.0, 3.0]), r"JointState: lacks joint 'j3' of the robot \(has j1, j2, x\)"),
        (js([], []), r"JointState: lacks joint 'j1' of the robot \(has none\)"),
        (js(JOINTS, [1.0, math.nan, 3.0]), r"JointState: position of 'j2' is not finite"),
        (js(JOINTS, [1.0, 2.0, 3.0], [0.0, 0.0, math.inf]), r"JointState: velocity of 'j3' is not finite"),
        (js(JOINTS, [1.0, 2.0, 3.0], nanosec=1_000_000_000), r"header.stamp.nanosec 1000000000 is not below 1e9"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(msg, reason):
    with pytest.raises(JointStateRejected, match=reason):
        check_joint_state(msg, JOINTS)


def test_result_is_float64():
    s = check_joint_state(js(JOINTS, [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]), JOINTS)
    assert s.position.dtype == np.float64 and s.velocity.dtype == np.float64


FINGERS = ("f1", "f2")


@pytest.mark.parametrize("msg, expected", [
    # summed, in any order
    (js(["j1", "f2", "f1"], [0.0, 0.02, 0.025], [0.0, -0.01, 0.01]), (0.045, 0.02)),
    (js(["j1", "f1", "f2"], [0.0, 0.04, 0.04]), (0.08, None)),          # no velocities
    (js(["j1", "f1"], [0.0, 0.04]), None),                              # a finger missing
    (js(["j1", "f1", "f2"], [0.0, math.nan, 0.04]), None),              # not finite
])
def test_the_gripper_opening_sums_the_finger_joints(msg, expected):
    from robot_bridge.dds.joint_state import gripper_opening

    found = gripper_opening(msg, FINGERS)
    assert found == (None if expected is None else pytest.approx(expected))
    assert gripper_opening(msg, ()) is None
