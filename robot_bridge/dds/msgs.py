"""ROS 2 message types as Cyclone DDS Python IDL structs.

Each class mirrors one ROS 2 interface (`.msg` file) field by field, in order, with the DDS type
name ROS 2 gives it on the wire: `<pkg>::msg::dds_::<Type>_` (the Python binding spells the
scope separator `.`). The serialised form is plain CDR (XCDR1, little-endian with the 4-byte
encapsulation header), the representation ROS 2 RMWs exchange; the test suite checks every type
byte for byte against `rosbags.serde.serialize_cdr`, an independent implementation.

Sources: the message definitions of ROS 2 Jazzy (`builtin_interfaces`, `std_msgs`,
`sensor_msgs`, `trajectory_msgs`), identical in Humble, Iron and Jazzy for these types; the DDS
type-name mangling of `rosidl_generator_dds_idl` (`dds_` sub-module, trailing underscore).

Importing this module imports `cyclonedds`.
"""

from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t  # no `from __future__ import annotations`: the IDL
# layer reads the annotations as objects


@dataclass
class Time(IdlStruct, typename="builtin_interfaces.msg.dds_.Time_"):
    """builtin_interfaces/msg/Time: seconds and nanoseconds since the UNIX epoch (ROS time)."""

    sec: t.int32 = 0
    nanosec: t.uint32 = 0


@dataclass
class Duration(IdlStruct, typename="builtin_interfaces.msg.dds_.Duration_"):
    """builtin_interfaces/msg/Duration: `sec` may be negative, `nanosec` in [0, 1e9)."""

    sec: t.int32 = 0
    nanosec: t.uint32 = 0


@dataclass
class Header(IdlStruct, typename="std_msgs.msg.dds_.Header_"):
    """std_msgs/msg/Header: stamp and coordinate frame."""

    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
class String(IdlStruct, typename="std_msgs.msg.dds_.String_"):
    """std_msgs/msg/String (carries the URDF on `/robot_description`)."""

    data: str = ""


@dataclass
class Float64(IdlStruct, typename="std_msgs.msg.dds_.Float64_"):
    """std_msgs/msg/Float64 (a speed-scaling factor in [0, 1])."""

    data: t.float64 = 0.0


@dataclass
class MultiArrayDimension(IdlStruct, typename="std_msgs.msg.dds_.MultiArrayDimension_"):
    """std_msgs/msg/MultiArrayDimension: one dimension of a multi-array layout."""

    label: str = ""
    size: t.uint32 = 0
    stride: t.uint32 = 0


@dataclass
class MultiArrayLayout(IdlStruct, typename="std_msgs.msg.dds_.MultiArrayLayout_"):
    """std_msgs/msg/MultiArrayLayout: `dim` may be empty (a plain vector, as
    forward_command_controller reads it: it looks at `data` only)."""

    dim: t.sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: t.uint32 = 0


@dataclass
class Float64MultiArray(IdlStruct, typename="std_msgs.msg.dds_.Float64MultiArray_"):
    """std_msgs/msg/Float64MultiArray: the `~/commands` of a ros2_controllers
    forward_command_controller (e.g. position_controllers/JointGroupPositionController): one
    value per controlled joint, in the controller's joint order (metres for prismatic joints)."""

    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: t.sequence[t.float64] = field(default_factory=list)


@dataclass
class JointState(IdlStruct, typename="sensor_msgs.msg.dds_.JointState_"):
    """sensor_msgs/msg/JointState: radians, rad/s, N·m (or metres, m/s, N for prismatic joints).

    `name` has one entry per joint; `position`, `velocity` and `effort` are each either empty or
    as long as `name`.
    """

    header: Header = field(default_factory=Header)
    name: t.sequence[str] = field(default_factory=list)
    position: t.sequence[t.float64] = field(default_factory=list)
    velocity: t.sequence[t.float64] = field(default_factory=list)
    effort: t.sequence[t.float64] = field(default_factory=list)


@dataclass
class JointTrajectoryPoint(IdlStruct, typename="trajectory_msgs.msg.dds_.JointTrajectoryPoint_"):
    """trajectory_msgs/msg/JointTrajectoryPoint: one waypoint, columns in `joint_names` order."""

    positions: t.sequence[t.float64] = field(default_factory=list)
    velocities: t.sequence[t.float64] = field(default_factory=list)
    accelerations: t.sequence[t.float64] = field(default_factory=list)
    effort: t.sequence[t.float64] = field(default_factory=list)
    time_from_start: Duration = field(default_factory=Duration)


@dataclass
class JointTrajectory(IdlStruct, typename="trajectory_msgs.msg.dds_.JointTrajectory_"):
    """trajectory_msgs/msg/JointTrajectory. An empty `points` list stops a
    joint_trajectory_controller (it drops its active trajectory and holds position)."""

    header: Header = field(default_factory=Header)
    joint_names: t.sequence[str] = field(default_factory=list)
    points: t.sequence[JointTrajectoryPoint] = field(default_factory=list)


ROS_TYPE_NAMES: dict[type, str] = {
    Time: "builtin_interfaces/msg/Time",
    Duration: "builtin_interfaces/msg/Duration",
    Header: "std_msgs/msg/Header",
    String: "std_msgs/msg/String",
    Float64: "std_msgs/msg/Float64",
    MultiArrayDimension: "std_msgs/msg/MultiArrayDimension",
    MultiArrayLayout: "std_msgs/msg/MultiArrayLayout",
    Float64MultiArray: "std_msgs/msg/Float64MultiArray",
    JointState: "sensor_msgs/msg/JointState",
    JointTrajectoryPoint: "trajectory_msgs/msg/JointTrajectoryPoint",
    JointTrajectory: "trajectory_msgs/msg/JointTrajectory",
}
"""Each IDL struct -> its ROS 2 interface name (as `rosbags` and `ros2 interface` spell it)."""
