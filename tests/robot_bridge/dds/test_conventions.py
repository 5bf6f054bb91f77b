"""ROS 2 wire conventions: topic names, QoS profiles, RIHS01 type hashes in USER_DATA."""

import re

import pytest

from robot_bridge.dds import conventions as c
from robot_bridge.dds import msgs
from robot_bridge.errors import BridgeError


def test_topic_names_get_the_rt_prefix():
    assert c.dds_topic_name("/joint_states") == "rt/joint_states"
    assert c.controller_topic("joint_trajectory_controller") == "/joint_trajectory_controller/joint_trajectory"
    assert c.dds_topic_name(c.controller_topic("arm_controller")) == "rt/arm_controller/joint_trajectory"


@pytest.mark.parametrize("bad", ["joint_states", "/2d", "/a//b", "/a/", "/a b", ""])
def test_relative_or_invalid_topic_names_are_refused(bad):
    with pytest.raises(BridgeError, match=re.escape(f"{bad!r} is not an absolute ROS 2 topic name")):
        c.dds_topic_name(bad)


def test_invalid_controller_name_is_refused():
    with pytest.raises(BridgeError, match=r"controller name 'arm controller' is not a valid ROS 2 node name"):
        c.controller_topic("arm controller")


def test_qos_profiles_are_the_ros_ones():
    assert c.QOS_PROFILE_DEFAULT == c.QosProfile(c.Reliability.RELIABLE, c.Durability.VOLATILE, 10)
    assert c.QOS_PROFILE_SENSOR_DATA == c.QosProfile(c.Reliability.BEST_EFFORT, c.Durability.VOLATILE, 5)
    assert c.QOS_PROFILE_ROBOT_DESCRIPTION == c.QosProfile(c.Reliability.RELIABLE, c.Durability.TRANSIENT_LOCAL, 1)


def test_type_hashes_match_published_jazzy_values():
    # values as `ros2 topic info -v` prints them on Jazzy
    assert c.type_hash("sensor_msgs/msg/JointState") == (
        "RIHS01_a13ee3a330e346c9d87b5aa18d24e11690752bd33a0350f11c5882bc9179260e"
    )
    assert c.type_hash("std_msgs/msg/String") == (
        "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
    )
    # the forward_command_controller's ~/commands (the dds gripper's forward_position kind)
    assert c.type_hash("std_msgs/msg/Float64MultiArray") == (
        "RIHS01_1025ddc6b9552d191f89ef1a8d2f60f3d373e28b283d8891ddcc974e8c55397f"
    )
    assert c.type_hash("trajectory_msgs/msg/JointTrajectory") == (
        "RIHS01_179b33eba59d676f6d967ac71fe35e7ca2f64b2f3928f4a018cec115e213796e"
    )
    for name in msgs.ROS_TYPE_NAMES.values():
        assert re.fullmatch(r"RIHS01_[0-9a-f]{64}", c.type_hash(name))


def test_user_data_is_typehash_key_value():
    assert c.type_hash_user_data("std_msgs/msg/Float64") == (
        b"typehash=RIHS01_705ba9c3d1a09df43737eb67095534de36fd426c0587779bda2bc51fe790182a;"
    )


def test_unknown_type_is_refused():
    with pytest.raises(BridgeError, match=r"unknown ROS 2 message type 'foo_msgs/msg/Bar'"):
        c.type_hash("foo_msgs/msg/Bar")
