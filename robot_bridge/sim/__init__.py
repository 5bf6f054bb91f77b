"""The embedded PyBullet simulation of a Franka Emika Panda cell (`sim` backend).

Importing this package imports PyBullet; the safety core never does.
"""

from robot_bridge.sim.backend import PHYSICS_RATE_HZ, PyBulletPandaBackend
from robot_bridge.sim.kinematics import PandaLinkKinematics
from robot_bridge.sim.panda import (
    ARM_JOINT_NAMES,
    PANDA_HOME_POSITION,
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PANDA_LINK_CAPSULES,
    PANDA_TOOL_LINK,
    LinkCapsule,
    robot_capsules,
)
from robot_bridge.sim.program import plan_pick_and_place

__all__ = [
    "ARM_JOINT_NAMES",
    "PANDA_HOME_POSITION",
    "PANDA_JOINT_ACCELERATION_LIMITS_RADPS2",
    "PANDA_JOINT_VELOCITY_LIMITS_RADPS",
    "PANDA_LINK_CAPSULES",
    "PANDA_TOOL_LINK",
    "PHYSICS_RATE_HZ",
    "PandaLinkKinematics",
    "LinkCapsule",
    "PyBulletPandaBackend",
    "plan_pick_and_place",
    "robot_capsules",
]
