"""Robot interface and backends (`sim` PyBullet; later `dds`, `ros2`)."""

from robot_bridge.backend import BACKENDS, RobotBackend, create_backend
from robot_bridge.errors import BackendUnavailableError, BridgeError, CommandError
from robot_bridge.types import (
    ControllerMode,
    GripperCommand,
    JointTrajectory,
    RobotCommand,
    RobotState,
    StopCategory,
)

__all__ = [
    "BACKENDS",
    "BackendUnavailableError",
    "BridgeError",
    "CommandError",
    "ControllerMode",
    "GripperCommand",
    "JointTrajectory",
    "RobotBackend",
    "RobotCommand",
    "RobotState",
    "StopCategory",
    "create_backend",
]
