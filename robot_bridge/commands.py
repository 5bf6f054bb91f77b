"""Command checks every backend applies before a command reaches its robot.

Pure functions, no I/O: the `sim` and `dds` backends (and any later one) call them, so a
malformed command is refused with the same message whatever robot is behind the interface.
`safety.gate` checks role, mode, limits and zones first; these are the backend's own,
last checks against the robot it drives (its joint names, its limits, where it is now).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from robot_bridge.errors import CommandError
from robot_bridge.types import GripperCommand, JointJog, JointTrajectory

START_TOLERANCE_RAD = 0.1
"""A trajectory whose point at time 0 is farther than this from the current position, in any
joint, is refused: following it would jump."""
LIMIT_TOLERANCE_RAD = 1e-6
"""Slack on the joint position limits, radians (rounding of limits read from a URDF)."""

FRANKA_HAND_MAX_OPENING_M = 0.08
"""Largest finger opening of the Franka Hand (both fingers together), metres.

Source: Franka Emika Panda datasheet, Franka Hand: travel 80 mm (each finger 40 mm, the
`upper="0.04"` of the finger joints in franka_description's hand URDF)."""
FRANKA_HAND_MAX_FORCE_N = 140.0
"""Largest grasping force of the Franka Hand, newtons.

Source: Franka Emika Panda datasheet, Franka Hand: grasping force 70 N continuous, 140 N
maximum. A `GripperCommand.max_effort_n` above it is refused, not clipped."""


def check_trajectory(
    traj: JointTrajectory,
    joint_names: Sequence[str],
    lower_limits: Sequence[float],
    upper_limits: Sequence[float],
    position: np.ndarray | None,
    start_tolerance_rad: float = START_TOLERANCE_RAD,
) -> tuple[np.ndarray, np.ndarray]:
    """Check a trajectory against a robot and put its columns in the robot's joint order.

    Args:
        traj: the commanded trajectory (its own shape checks ran in its constructor).
        joint_names: (n,) the robot's commanded joints, in the robot's order.
        lower_limits, upper_limits: (n,) joint position limits, radians, robot order.
        position: (n,) the robot's current position, radians, or None when unknown (the start
            check is then skipped; the backend refuses commands without state on its own).
        start_tolerance_rad: largest distance of a point at time 0 from `position`.

    Returns:
        (positions (M, n) radians in the robot's joint order, time_from_start_s (M,) seconds),
        both fresh copies.

    Raises:
        CommandError: the joint names are not exactly the robot's, a point is outside the
            limits, or a point at time 0 is too far from the current position; the message
            names the goal, the point and the joint.
    """
    names = tuple(joint_names)
    if sorted(traj.joint_names) != sorted(names) or len(set(traj.joint_names)) != len(names):
        raise CommandError(
            f"JointTrajectory {traj.goal_id!r}: joint_names must be the robot's joints "
            f"{', '.join(names)}; got {', '.join(traj.joint_names)}"
        )
    order = [traj.joint_names.index(n) for n in names]
    pos = traj.positions[:, order].copy()
    lo, hi = np.asarray(lower_limits, dtype=np.float64), np.asarray(upper_limits, dtype=np.float64)
    bad = np.nonzero((pos < lo - LIMIT_TOLERANCE_RAD) | (pos > hi + LIMIT_TOLERANCE_RAD))
    if bad[0].size:
        i, j = int(bad[0][0]), int(bad[1][0])
        raise CommandError(
            f"JointTrajectory {traj.goal_id!r}: point {i} puts {names[j]} at "
            f"{pos[i, j]:.4f} rad, outside its limits [{lo[j]:.4f}, {hi[j]:.4f}]"
        )
    times = traj.time_from_start_s.copy()
    if times[0] == 0.0 and position is not None:
        err = np.abs(pos[0] - np.asarray(position, dtype=np.float64))
        if err.max() > start_tolerance_rad:
            j = int(err.argmax())
            raise CommandError(
                f"JointTrajectory {traj.goal_id!r}: first point is {err[j]:.3f} rad from the "
                f"current position in {names[j]} (tolerance {start_tolerance_rad} rad)"
            )
    return pos, times


def sanitize_speed_scale(scale: object) -> tuple[float, bool]:
    """Fail-safe reading of a commanded speed scale.

    Args:
        scale: the commanded speed override, expected in [0, 1].

    Returns:
        (value, valid): `value` is `scale` when it is a finite number in [0, 1], else 0.0
        (stop: an implausible command never speeds the robot up); `valid` says which.
    """
    try:
        value = float(scale)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0, False
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        return 0.0, False
    return value, True


def check_joint_jog(jog: JointJog, joint_names: Sequence[str]) -> np.ndarray:
    """A joint jog's velocities or displacements as a vector in the robot's joint order.

    Args:
        jog: the jog (its own shape checks ran in its constructor).
        joint_names: (n,) the robot's joints.

    Returns:
        (n,) rad/s (velocity jog) or radians (displacement jog); joints not named are 0.

    Raises:
        CommandError: a name that is not one of the robot's joints.
    """
    names = tuple(joint_names)
    unknown = [n for n in jog.joint_names if n not in names]
    if unknown:
        raise CommandError(f"JointJog {jog.goal_id!r}: unknown joint(s) {', '.join(unknown)}; "
                           f"the robot's joints are {', '.join(names)}")
    values = jog.velocities if jog.velocities.size else jog.displacements
    out = np.zeros(len(names))
    for name, v in zip(jog.joint_names, values):
        out[names.index(name)] = v
    return out


def gripper_limits_violation(cmd: GripperCommand) -> str | None:
    """The Franka Hand's limits a gripper command breaks, in words naming the field (e.g.
    "position_m must be in [0, 0.08] m, got 0.1"), or None within them: the opening `position_m`
    in [0, `FRANKA_HAND_MAX_OPENING_M`] m and the grasp force `max_effort_n` in
    (0, `FRANKA_HAND_MAX_FORCE_N`] N, both finite. The one limit check of the gate
    (`safety.gate`) and of both backends (`check_gripper_command`)."""
    if not (math.isfinite(cmd.position_m) and 0.0 <= cmd.position_m <= FRANKA_HAND_MAX_OPENING_M):
        return f"position_m must be in [0, {FRANKA_HAND_MAX_OPENING_M}] m, got {cmd.position_m}"
    if not (math.isfinite(cmd.max_effort_n) and 0.0 < cmd.max_effort_n <= FRANKA_HAND_MAX_FORCE_N):
        return f"max_effort_n must be in (0, {FRANKA_HAND_MAX_FORCE_N:g}] N, got {cmd.max_effort_n}"
    return None


def check_gripper_command(cmd: GripperCommand, opening_m: float | None, unknown_why: str) -> float:
    """Check a gripper command against the Franka Hand and the measured finger opening.

    The one check both backends apply (after their own "accepting commands?" check), so a
    gripper command is refused alike whatever robot is behind the interface.

    Args:
        cmd: the commanded goal (control_msgs/GripperCommand semantics).
        opening_m: the measured finger opening (both fingers), metres, or None when the backend
            has no fresh measurement of it: a goal is never started blind.
        unknown_why: why the opening is unknown, for the message (e.g. "no fresh
            panda_finger_joint1, panda_finger_joint2 in /joint_states"); unused when known.

    Returns:
        The measured opening, metres (`opening_m`, known).

    Raises:
        CommandError: `position_m` is not a number in [0, `FRANKA_HAND_MAX_OPENING_M`],
            `max_effort_n` not in (0, `FRANKA_HAND_MAX_FORCE_N`], or the opening is unknown;
            the message names the goal and the field.
    """
    outside = gripper_limits_violation(cmd)
    if outside is not None:
        raise CommandError(f"GripperCommand {cmd.goal_id!r}: {outside}")
    if opening_m is None or not math.isfinite(opening_m):
        raise CommandError(
            f"GripperCommand {cmd.goal_id!r}: refused, the finger opening is unknown "
            f"({unknown_why})"
        )
    return opening_m
