"""How ROS 2 looks on the DDS wire: topic names, QoS profiles, type hashes. Pure data.

Every constant cites where ROS 2 defines it. Nothing here imports `cyclonedds`; `rosbags`
is imported on the first `type_hash()` call.

Sources:
    - Topic prefix: ROS 2 design article "Topic and Service name mapping to DDS"
      (design.ros2.org/articles/topic_and_service_names.html): ROS topics map to DDS topics
      prefixed `rt` (`/joint_states` -> `rt/joint_states`); `rmw_cyclonedds_cpp`
      (`ros_topic_prefix`) does exactly that.
    - Type names: `rosidl_generator_dds_idl` puts each message into a `dds_` module with a
      trailing underscore: `sensor_msgs::msg::dds_::JointState_`.
    - QoS: `rmw/include/rmw/qos_profiles.h`: `rmw_qos_profile_default` (RELIABLE, VOLATILE,
      KEEP_LAST 10) and `rmw_qos_profile_sensor_data` (BEST_EFFORT, VOLATILE, KEEP_LAST 5).
      `robot_state_publisher` publishes `/robot_description` with
      `rclcpp::QoS(1).transient_local()` (RELIABLE, TRANSIENT_LOCAL, KEEP_LAST 1) and subscribes
      `/joint_states` with `rclcpp::SensorDataQoS()`, which matches reliable and best-effort
      publishers alike (a reliable reader would not match a best-effort driver).
    - Type hash: REP 2011 (type description distribution); `rmw_dds_common::
      encode_type_hash_for_user_data_qos` (rmw_dds_common/src/qos.cpp, Iron and later) writes
      `typehash=RIHS01_<64 hex>;` into the USER_DATA QoS of every reader and writer, and
      `rmw_cyclonedds_cpp` (`create_readwrite_qos`) sets it with `dds_qset_userdata`. The hash
      is `rosbags.typesys.store.Typestore.hash_rihs01` over the Jazzy definitions (the same
      for Iron and Jazzy for every type used here; Humble nodes announce none and ignore it).
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from robot_bridge.errors import BridgeError

TOPIC_PREFIX = "rt"
"""DDS topic prefix of ROS 2 topics (`rt` + the absolute ROS name)."""

TYPE_HASH_DISTRIBUTION = "ROS2_JAZZY"
"""The `rosbags.typesys.Stores` member whose message definitions the type hashes are computed from."""

_ROS_NAME = re.compile(r"^(/[A-Za-z_][A-Za-z0-9_]*)+$")


class Reliability(enum.Enum):
    """DDS RELIABILITY kind (ROS 2 `ReliabilityPolicy`)."""

    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"


class Durability(enum.Enum):
    """DDS DURABILITY kind (ROS 2 `DurabilityPolicy`)."""

    VOLATILE = "volatile"
    TRANSIENT_LOCAL = "transient_local"


@dataclass(frozen=True)
class QosProfile:
    """A ROS 2 QoS profile (history is always KEEP_LAST here).

    Attributes:
        reliability: RELIABLE or BEST_EFFORT.
        durability: VOLATILE or TRANSIENT_LOCAL.
        depth: KEEP_LAST history depth, samples.
    """

    reliability: Reliability
    durability: Durability
    depth: int


QOS_PROFILE_DEFAULT = QosProfile(Reliability.RELIABLE, Durability.VOLATILE, 10)
"""`rmw_qos_profile_default`: commands (`/<controller>/joint_trajectory`, speed scaling)."""

QOS_PROFILE_SENSOR_DATA = QosProfile(Reliability.BEST_EFFORT, Durability.VOLATILE, 5)
"""`rmw_qos_profile_sensor_data`: the `/joint_states` subscription (as robot_state_publisher)."""

QOS_PROFILE_ROBOT_DESCRIPTION = QosProfile(Reliability.RELIABLE, Durability.TRANSIENT_LOCAL, 1)
"""`/robot_description` as robot_state_publisher offers it: late joiners get the last URDF."""

JOINT_STATES_TOPIC = "/joint_states"
ROBOT_DESCRIPTION_TOPIC = "/robot_description"
DEFAULT_CONTROLLER = "joint_trajectory_controller"
"""The ros2_controllers JointTrajectoryController name used by most robot bring-ups."""


def dds_topic_name(ros_topic: str) -> str:
    """The DDS topic name of an absolute ROS 2 topic name.

    Args:
        ros_topic: absolute ROS name, e.g. `/joint_trajectory_controller/joint_trajectory`.

    Returns:
        e.g. `rt/joint_trajectory_controller/joint_trajectory`.

    Raises:
        BridgeError: `ros_topic` is not an absolute ROS 2 topic name.
    """
    if not _ROS_NAME.match(ros_topic):
        raise BridgeError(
            f"{ros_topic!r} is not an absolute ROS 2 topic name "
            "(tokens of letters, digits and '_', each after a '/', not starting with a digit)"
        )
    return TOPIC_PREFIX + ros_topic


def controller_topic(controller: str) -> str:
    """`/<controller>/joint_trajectory`, the topic a JointTrajectoryController subscribes.

    Raises:
        BridgeError: `controller` is not a valid ROS 2 node name.
    """
    topic = f"/{controller}/joint_trajectory"
    if not _ROS_NAME.match(topic):
        raise BridgeError(f"controller name {controller!r} is not a valid ROS 2 node name")
    return topic


@functools.cache
def type_hash(ros_type: str) -> str:
    """The RIHS01 type hash of a ROS 2 message type, as Iron/Jazzy nodes compute it.

    Args:
        ros_type: e.g. `sensor_msgs/msg/JointState`.

    Returns:
        `RIHS01_` followed by 64 lowercase hex digits.

    Raises:
        BridgeError: `rosbags` does not know `ros_type`.
    """
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(getattr(Stores, TYPE_HASH_DISTRIBUTION))
    if ros_type not in store.fielddefs:
        raise BridgeError(f"unknown ROS 2 message type {ros_type!r}")
    return store.hash_rihs01(ros_type)


def type_hash_user_data(ros_type: str) -> bytes:
    """USER_DATA of a ROS 2 reader or writer of `ros_type`: `b"typehash=RIHS01_<hex>;"`."""
    return f"typehash={type_hash(ros_type)};".encode("ascii")
