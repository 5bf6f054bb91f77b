"""The Franka Emika Panda as the simulation models it: joints, limits, link capsules.

Pure data and small helpers; no PyBullet import, so this module loads in microseconds.
Frames are the URDF link frames of `pybullet_data/franka_panda/panda.urdf` (the same
frames as franka_description); lengths in metres, angles in radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from robot_bridge.payload import PAYLOAD_LINK

if TYPE_CHECKING:
    from content.cell import Payload

ARM_JOINT_NAMES: tuple[str, ...] = tuple(f"panda_joint{i}" for i in range(1, 8))
"""The 7 arm joints, in the order of every position/velocity vector."""

FINGER_JOINT_NAMES: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")

PANDA_JOINT_VELOCITY_LIMITS_RADPS: tuple[float, ...] = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
"""Joint velocity limits, rad/s, joints 1..7.

Source: Franka Emika Panda datasheet / "Robot and interface specifications"
(FCI documentation): q̇_max = 2.1750 rad/s for joints 1-4 and 2.6100 rad/s for joints 5-7;
the same values are in the URDF's `<limit velocity=...>`.
"""

PANDA_JOINT_ACCELERATION_LIMITS_RADPS2: tuple[float, ...] = (15.0, 7.5, 10.0, 12.5, 15.0, 20.0, 20.0)
"""Joint acceleration limits, rad/s², joints 1..7.

Source: Franka Emika Panda "Robot and interface specifications" (FCI documentation), joint
space limits: q̈_max = 15, 7.5, 10, 12.5, 15, 20, 20 rad/s².
"""

PANDA_HOME_POSITION: tuple[float, ...] = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)
"""The ready pose (franka_ros `ready`), radians: TCP about 0.31 m in front of the base, 0.49 m up,
gripper pointing down. The simulation starts here and the planned program ends here."""

GRIPPER_SPEED_MPS = 0.05
"""Speed of each finger at speed scale 1, m/s (Franka Hand: 0.05 m/s per finger). The Franka
Hand's opening and force limits are `robot_bridge.commands.FRANKA_HAND_MAX_OPENING_M` and
`FRANKA_HAND_MAX_FORCE_N`."""


@dataclass(frozen=True)
class LinkCapsule:
    """A capsule rigidly attached to one link.

    Attributes:
        name: the capsule's name (`RobotState.link_names` entry); the link's name unless `link`.
        a: (3,) capsule axis start, metres, in the link's URDF frame.
        b: (3,) capsule axis end, metres, in the link's URDF frame.
        radius_m: capsule radius, metres.
        link: the URDF link it is attached to ("": the link called `name`).
    """

    name: str
    a: tuple[float, float, float]
    b: tuple[float, float, float]
    radius_m: float
    link: str = ""

    @property
    def urdf_link(self) -> str:
        """The URDF link the capsule moves with."""
        return self.link or self.name


#: The URDF link of the Panda's tool frame (the TCP), where a payload is attached.
PANDA_TOOL_LINK = "panda_grasptarget"


# One capsule per link. The axes are the minimax fit (smallest largest distance, with a small
# penalty on length) to all vertices of the link's collision AND visual meshes from pybullet_data;
# for `panda_hand` the meshes of both fingers at opening 0 and 0.08 m are included, so the capsule
# holds for every finger position. Radius = the largest vertex distance + 5 mm margin, rounded up
# to 5 mm. Measured largest vertex distances: link0 0.103, link1 0.076, link2 0.077, link3 0.070,
# link4 0.072, link5 0.073, link6 0.075, link7 0.050, hand 0.070 m. The test suite re-checks that
# every mesh vertex lies inside its capsule. A grasped workpiece is NOT included.
PANDA_LINK_CAPSULES: tuple[LinkCapsule, ...] = (
    LinkCapsule("panda_link0", (0.0, -0.003, 0.056), (-0.062, 0.004, -0.011), 0.110),
    LinkCapsule("panda_link1", (0.0, -0.056, 0.011), (-0.002, -0.001, -0.142), 0.085),
    LinkCapsule("panda_link2", (0.002, 0.016, 0.058), (-0.004, -0.145, 0.0), 0.085),
    LinkCapsule("panda_link3", (0.084, 0.043, 0.002), (-0.016, -0.008, -0.095), 0.075),
    LinkCapsule("panda_link4", (0.009, -0.011, 0.044), (-0.084, 0.087, 0.006), 0.080),
    LinkCapsule("panda_link5", (-0.006, 0.063, -0.005), (-0.001, 0.008, -0.223), 0.080),
    LinkCapsule("panda_link6", (0.091, 0.009, -0.001), (0.007, 0.015, 0.023), 0.085),
    LinkCapsule("panda_link7", (-0.006, -0.005, 0.071), (0.036, 0.032, 0.085), 0.055),
    LinkCapsule("panda_hand", (0.004, -0.071, 0.042), (-0.011, 0.05, 0.046), 0.075),
)


def robot_capsules(payload: "Payload | None") -> tuple[LinkCapsule, ...]:
    """The Panda's link capsules plus the carried part's (`robot.payload` of the cell file), as
    the last capsule, `PAYLOAD_LINK`, attached to the tool frame `PANDA_TOOL_LINK` (it counts
    only while the part is carried: `robot_bridge.payload.payload_carried`)."""
    if payload is None:
        return PANDA_LINK_CAPSULES
    c = payload.capsule
    part = LinkCapsule(PAYLOAD_LINK, c.p0, c.p1, c.radius_m, link=PANDA_TOOL_LINK)
    return PANDA_LINK_CAPSULES + (part,)


def panda_urdf_path() -> Path:
    """Path of `franka_panda/panda.urdf` inside the installed `pybullet_data` package."""
    import pybullet_data

    return Path(pybullet_data.getDataPath()) / "franka_panda" / "panda.urdf"


def yaw_quaternion(yaw_rad: float) -> tuple[float, float, float, float]:
    """Quaternion (x, y, z, w) of a rotation by `yaw_rad` about z."""
    return (0.0, 0.0, math.sin(yaw_rad / 2), math.cos(yaw_rad / 2))


def quaternion_matrix(q: tuple[float, float, float, float] | np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = (float(v) for v in q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )
