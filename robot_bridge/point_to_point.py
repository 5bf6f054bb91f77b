"""Point-to-point motion: from rest at one joint position to rest at another ("go to a pose").

Pure functions, no clock and no I/O. The path is the straight line in joint space; its time
parametrisation is a synchronised trapezoidal velocity profile (every joint starts and ends
together, so the path is kept):

    q(t) = q0 + (q1 - q0) * s(t),   s: 0 -> 1,
    s' <= V = min_j v_j / |d_j|,    |s''| <= A = min_j a_j / |d_j|   (d = q1 - q0),

ramping up at A, cruising at V, ramping down at A (a triangular profile at sqrt(A) when the line
is too short to reach V). Each joint then stays within its velocity limit v_j and acceleration
limit a_j; `stretch` slows a trajectory further by scaling its time axis (velocities / k,
accelerations / k^2), e.g. to keep the TCP within a speed limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from robot_bridge.errors import CommandError
from robot_bridge.types import JointTrajectory

POINT_TO_POINT_SAMPLE_S = 0.02
"""Time between the points of a point-to-point trajectory, seconds."""


def trapezoid_duration_s(v: float, a: float) -> float:
    """Duration of the profile s: 0 -> 1 at most `v` (1/s) and `a` (1/s^2), seconds."""
    if v * v / a <= 1.0:
        return 1.0 / v + v / a
    return 2.0 / math.sqrt(a)


def _s(t: np.ndarray, v: float, a: float, duration: float) -> np.ndarray:
    v = min(v, math.sqrt(a))            # triangular: the peak reached at mid-time
    ramp = v / a
    return np.where(t < ramp, 0.5 * a * t * t,
                    np.where(t <= duration - ramp, 0.5 * a * ramp * ramp + v * (t - ramp),
                             1.0 - 0.5 * a * (duration - t) ** 2))


def plan_point_to_point(joint_names: Sequence[str], start_q: np.ndarray, goal_q: np.ndarray,
                        vel_limits: np.ndarray, acc_limits: np.ndarray, goal_id: str = "",
                        sample_s: float = POINT_TO_POINT_SAMPLE_S) -> JointTrajectory:
    """The trajectory from rest at `start_q` to rest at `goal_q`, as fast as the limits allow.

    Args:
        joint_names: (n,) the robot's joints.
        start_q: (n,) the measured position (the robot at rest), radians: the first point, at 0 s.
        goal_q: (n,) radians: the last point.
        vel_limits: (n,) joint velocity limits, rad/s, > 0.
        acc_limits: (n,) joint acceleration limits, rad/s^2, > 0.
        goal_id: the trajectory's goal id.
        sample_s: time between points, seconds (> 0).

    Returns:
        Points every `sample_s` from 0 s, the last exactly `goal_q`. When the goal is the start
        (within 1e-9 rad), two points: the start at 0 s and the goal at `sample_s`.

    Raises:
        CommandError: non-finite positions, or limits that are not positive (the message names
            the joint).
    """
    q0 = np.asarray(start_q, dtype=np.float64)
    q1 = np.asarray(goal_q, dtype=np.float64)
    vel = np.asarray(vel_limits, dtype=np.float64)
    acc = np.asarray(acc_limits, dtype=np.float64)
    if not (np.isfinite(q0).all() and np.isfinite(q1).all()):
        raise CommandError(f"point-to-point {goal_id!r}: positions must be finite")
    for name, limits in (("velocity", vel), ("acceleration", acc)):
        bad = ~(np.isfinite(limits) & (limits > 0))
        if bad.any():
            raise CommandError(f"point-to-point {goal_id!r}: the {name} limit of "
                               f"{joint_names[int(np.argmax(bad))]} must be > 0")
    d = q1 - q0
    span = np.abs(d)
    if span.max() <= 1e-9:
        return JointTrajectory(tuple(joint_names), np.vstack([q0, q1]), [0.0, sample_s], goal_id)
    moving = span > 1e-12
    v = float(np.min(vel[moving] / span[moving]))
    a = float(np.min(acc[moving] / span[moving]))
    duration = trapezoid_duration_s(v, a)
    times = np.append(np.arange(0.0, duration, sample_s), duration)
    if times[-1] - times[-2] < 1e-6:
        times = np.delete(times, -2)
    positions = q0[None, :] + d[None, :] * _s(times, v, a, duration)[:, None]
    positions[-1] = q1
    return JointTrajectory(tuple(joint_names), positions, times, goal_id)


def stretch(trajectory: JointTrajectory, factor: float) -> JointTrajectory:
    """`trajectory` slowed down by `factor` (>= 1): the same path, every time multiplied by it,
    so velocities divide by `factor` and accelerations by its square."""
    if not (math.isfinite(factor) and factor >= 1.0):
        raise CommandError(f"stretch: factor must be >= 1, got {factor!r}")
    return JointTrajectory(trajectory.joint_names, trajectory.positions,
                           trajectory.time_from_start_s * factor, trajectory.goal_id)
