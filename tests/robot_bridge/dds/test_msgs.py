"""Every ROS 2 message type of the dds backend serialises to the bytes rosbags produces."""

import numpy as np
import pytest
from rosbags.typesys import Stores, get_typestore

from robot_bridge.dds import msgs

STORE = get_typestore(Stores.ROS2_JAZZY)
T = STORE.types


def _f64(values):
    return np.array(values, dtype=np.float64)


def _ros_time(sec, nanosec):
    return T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _ros_header(sec, nanosec, frame):
    return T["std_msgs/msg/Header"](stamp=_ros_time(sec, nanosec), frame_id=frame)


def _ros_point(pos, vel, acc, eff, sec, nanosec):
    return T["trajectory_msgs/msg/JointTrajectoryPoint"](
        positions=_f64(pos), velocities=_f64(vel), accelerations=_f64(acc), effort=_f64(eff),
        time_from_start=T["builtin_interfaces/msg/Duration"](sec=sec, nanosec=nanosec),
    )


CASES = [
    (msgs.Time(sec=1_700_000_000, nanosec=999_999_999), _ros_time(1_700_000_000, 999_999_999)),
    (msgs.Duration(sec=-3, nanosec=5), T["builtin_interfaces/msg/Duration"](sec=-3, nanosec=5)),
    (msgs.Header(stamp=msgs.Time(sec=7, nanosec=8), frame_id="panda_link0"), _ros_header(7, 8, "panda_link0")),
    (msgs.String(data="<robot name=\"ä\"/>"), T["std_msgs/msg/String"](data="<robot name=\"ä\"/>")),
    (msgs.String(data=""), T["std_msgs/msg/String"](data="")),
    (msgs.Float64(data=0.35), T["std_msgs/msg/Float64"](data=0.35)),
    (msgs.MultiArrayDimension(label="fingers", size=2, stride=2),
     T["std_msgs/msg/MultiArrayDimension"](label="fingers", size=2, stride=2)),
    (msgs.MultiArrayLayout(dim=[msgs.MultiArrayDimension("a", 2, 6), msgs.MultiArrayDimension("bb", 3, 3)],
                           data_offset=1),
     T["std_msgs/msg/MultiArrayLayout"](dim=[T["std_msgs/msg/MultiArrayDimension"](label="a", size=2, stride=6),
                                            T["std_msgs/msg/MultiArrayDimension"](label="bb", size=3, stride=3)],
                                       data_offset=1)),
    (msgs.Float64MultiArray(data=[0.02, 0.02]),
     T["std_msgs/msg/Float64MultiArray"](layout=T["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0),
                                         data=_f64([0.02, 0.02]))),
    (msgs.Float64MultiArray(layout=msgs.MultiArrayLayout([msgs.MultiArrayDimension("x", 1, 1)], 0), data=[-1.5]),
     T["std_msgs/msg/Float64MultiArray"](
         layout=T["std_msgs/msg/MultiArrayLayout"](dim=[T["std_msgs/msg/MultiArrayDimension"](label="x", size=1, stride=1)],
                                                   data_offset=0),
         data=_f64([-1.5]))),
    (
        msgs.JointState(header=msgs.Header(msgs.Time(5, 7), "base"), name=["a", "bb", "ccc"],
                        position=[1.0, -2.5, 3.25], velocity=[], effort=[0.5, 1.5, -0.0]),
        T["sensor_msgs/msg/JointState"](header=_ros_header(5, 7, "base"), name=["a", "bb", "ccc"],
                                        position=_f64([1.0, -2.5, 3.25]), velocity=_f64([]),
                                        effort=_f64([0.5, 1.5, -0.0])),
    ),
    (msgs.JointState(), T["sensor_msgs/msg/JointState"](header=_ros_header(0, 0, ""), name=[],
                                                        position=_f64([]), velocity=_f64([]), effort=_f64([]))),
    (
        msgs.JointTrajectoryPoint(positions=[0.1, 0.2], velocities=[0.0, 0.0], accelerations=[],
                                  effort=[1.0], time_from_start=msgs.Duration(2, 500_000_000)),
        _ros_point([0.1, 0.2], [0.0, 0.0], [], [1.0], 2, 500_000_000),
    ),
    (
        msgs.JointTrajectory(
            header=msgs.Header(msgs.Time(1, 2), "x"), joint_names=["j1", "j2"],
            points=[msgs.JointTrajectoryPoint([1.0, 2.0], [], [], [], msgs.Duration(0, 0)),
                    msgs.JointTrajectoryPoint([3.0, 4.0], [0.5, 0.5], [0.1, 0.2], [], msgs.Duration(1, 3))],
        ),
        T["trajectory_msgs/msg/JointTrajectory"](
            header=_ros_header(1, 2, "x"), joint_names=["j1", "j2"],
            points=[_ros_point([1.0, 2.0], [], [], [], 0, 0), _ros_point([3.0, 4.0], [0.5, 0.5], [0.1, 0.2], [], 1, 3)],
        ),
    ),
    (msgs.JointTrajectory(joint_names=["j1"]),
     T["trajectory_msgs/msg/JointTrajectory"](header=_ros_header(0, 0, ""), joint_names=["j1"], points=[])),
]


@pytest.mark.parametrize("ours, theirs", CASES, ids=lambda c: type(c).__name__)
def test_cdr_bytes_equal_rosbags(ours, theirs):
    ros_type = msgs.ROS_TYPE_NAMES[type(ours)]
    expected = bytes(STORE.serialize_cdr(theirs, ros_type))
    assert ours.serialize() == expected
    # and rosbags' bytes decode into the same message
    assert type(ours).deserialize(expected) == ours


def test_every_type_has_a_case_and_a_ros_name():
    assert {type(ours) for ours, _ in CASES} == set(msgs.ROS_TYPE_NAMES)
    for cls, name in msgs.ROS_TYPE_NAMES.items():
        pkg, _, typ = name.split("/")
        assert cls.__idl_typename__ == f"{pkg}.msg.dds_.{typ}_"
