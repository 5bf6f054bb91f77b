"""The `dds` robot backend: ROS 2 on the wire through Cyclone DDS, no ROS installation needed.

Topics only (`/joint_states`, `/robot_description`, `/<controller>/joint_trajectory`, an
optional speed-scaling topic, and the gripper controller's topic of `robot.dds.gripper_controller`,
`robot_bridge.dds.gripper`); services and actions over raw DDS are RMW-specific and out of
scope (see `robot_bridge.dds.backend`). Importing this package imports `cyclonedds` and
PyBullet (for forward kinematics); `robot_bridge` itself never does.
"""

from robot_bridge.dds.backend import DdsBackend
from robot_bridge.dds.conventions import (
    DEFAULT_CONTROLLER,
    QOS_PROFILE_DEFAULT,
    QOS_PROFILE_ROBOT_DESCRIPTION,
    QOS_PROFILE_SENSOR_DATA,
    TOPIC_PREFIX,
    QosProfile,
    controller_topic,
    dds_topic_name,
    type_hash,
    type_hash_user_data,
)
from robot_bridge.dds.gripper import GripperMotion, GripperOutcome
from robot_bridge.dds.joint_state import JointSample, JointStateRejected, check_joint_state
from robot_bridge.dds.node import LOOPBACK_CONFIG, RosDdsNode

__all__ = [
    "DEFAULT_CONTROLLER",
    "LOOPBACK_CONFIG",
    "QOS_PROFILE_DEFAULT",
    "QOS_PROFILE_ROBOT_DESCRIPTION",
    "QOS_PROFILE_SENSOR_DATA",
    "TOPIC_PREFIX",
    "DdsBackend",
    "GripperMotion",
    "GripperOutcome",
    "JointSample",
    "JointStateRejected",
    "QosProfile",
    "RosDdsNode",
    "check_joint_state",
    "controller_topic",
    "dds_topic_name",
    "type_hash",
    "type_hash_user_data",
]
