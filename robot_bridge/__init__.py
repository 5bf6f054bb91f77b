"""Robot interface and backends (`sim` PyBullet, `dds` Cyclone DDS; `ros2` rclpy to come)."""

from robot_bridge.backend import BACKENDS, RobotBackend, create_backend
from robot_bridge.commands import (
    FRANKA_HAND_MAX_FORCE_N,
    FRANKA_HAND_MAX_OPENING_M,
    START_TOLERANCE_RAD,
    check_gripper_command,
    check_joint_jog,
    check_trajectory,
    sanitize_speed_scale,
)
from robot_bridge.errors import BackendUnavailableError, BridgeError, CommandError
from robot_bridge.payload import PAYLOAD_LINK, payload_carried
from robot_bridge.placed import PLACED_PRIMITIVES, PlacedObject, PlacedObjectTracker
from robot_bridge.types import (
    JOG_FRAMES,
    CartesianJog,
    ControllerMode,
    GripperCommand,
    JointJog,
    JointTrajectory,
    RobotCommand,
    RobotState,
    StopCategory,
)

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "CartesianJog",
    "BridgeError",
    "CommandError",
    "ControllerMode",
    "FRANKA_HAND_MAX_FORCE_N",
    "FRANKA_HAND_MAX_OPENING_M",
    "GripperCommand",
    "JOG_FRAMES",
    "JointJog",
    "JointTrajectory",
    "PAYLOAD_LINK",
    "PLACED_PRIMITIVES",
    "PlacedObject",
    "PlacedObjectTracker",
    "RobotBackend",
    "RobotCommand",
    "RobotState",
    "START_TOLERANCE_RAD",
    "StopCategory",
    "check_gripper_command",
    "check_joint_jog",
    "check_trajectory",
    "create_backend",
    "payload_carried",
    "sanitize_speed_scale",
]
