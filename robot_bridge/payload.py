"""The attach rule of the carried part: whether the cell's payload is in the gripper now.

Pure function, no I/O: every backend (`sim`, `dds`) applies it to the grip state it knows, and
reports the answer as `RobotState.payload_carried`; the payload's capsule is among the state's
link capsules (as the link `PAYLOAD_LINK`) exactly when it is carried. Fail-safe: what is not
known to be empty is carried (the larger geometry and the heavier stop data).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from content.cell import Payload

#: Name of the carried part's capsule among a robot's link capsules (`RobotState.link_names`).
PAYLOAD_LINK = "payload"


def payload_carried(payload: "Payload | None", opening_m: float | None, *,
                    gripper_moving: bool = False, grasped: bool = False) -> bool:
    """Whether the gripper holds the cell's payload.

    Rules, in order: no payload configured: False. The opening unknown, stale (the caller
    passes None) or not finite: True. A gripper goal under way (`gripper_moving`: commanded
    and not finished, or the fingers still moving): True. A grasp the backend reports
    (`grasped`, e.g. franka_gripper's `is_grasped`): True. Otherwise True exactly when
    `payload.grasp_min_width_m` <= `opening_m` <= `payload.grasp_max_width_m` (closed on the
    part; below: closed on nothing; above: open).

    Args:
        payload: the cell's `robot.payload`, or None.
        opening_m: finger opening (both fingers), metres; None when unknown or stale.
        gripper_moving: a gripper goal is in flight.
        grasped: the backend reports that the gripper holds an object.

    Returns:
        True when the payload must be counted as attached to the tool.
    """
    if payload is None:
        return False
    if opening_m is None or not math.isfinite(opening_m) or gripper_moving or grasped:
        return True
    return payload.grasp_min_width_m <= opening_m <= payload.grasp_max_width_m
