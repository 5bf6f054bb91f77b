"""Shorten a commanded joint path so the robot comes to rest before a given time along it.

The gate uses this when a path would bring the robot too close to a person later on
(`safety.path_check`): it forwards the part of the path up to a smooth stop before that
point, and hands back the rest, re-timed to start from rest, for the sender to submit once
the way is clear.

The stop follows the same joint path (no new geometry): the path's own time law t(τ) is
warped so that its rate falls linearly from 1 to 0 over T,

    t(τ) = t_c + τ - τ² / (2 T),   0 <= τ <= T,   ending at t_c + T / 2,

and the rest starts from rest with the mirror image, t(τ) = t_e + τ² / (2 T) up to τ = T.
With joint velocities q̇ along the path, the warp adds an acceleration of |q̇| / T, so
T = max_j |q̇_j| / a_j keeps every joint within its acceleration limit a_j
(Franka Emika Panda: `robot_bridge.sim.PANDA_JOINT_ACCELERATION_LIMITS_RADPS2`).

Pure: no clock, no threads, no I/O. The path between points is linear in joint space, as
`safety.gate.sweep_samples` sweeps it.
"""

from __future__ import annotations

import numpy as np

from robot_bridge.types import JointTrajectory

#: Time step of the samples of the stop and start ramps, seconds.
RAMP_STEP_S = 0.01


def _path(start: np.ndarray, command: JointTrajectory) -> tuple[np.ndarray, np.ndarray]:
    """(times (M+1,), positions (M+1, n)) of the path from `start` at time 0 through every point."""
    times = np.concatenate([[0.0], command.time_from_start_s])
    points = np.vstack([start[None, :], command.positions])
    if command.time_from_start_s[0] == 0.0:           # the first point replaces the start
        times, points = times[1:], points[1:]
    return times, points


def _at(times: np.ndarray, points: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Positions (len(t), n) at times `t` by linear interpolation."""
    return np.column_stack([np.interp(t, times, points[:, j]) for j in range(points.shape[1])])


def _max_speeds(times: np.ndarray, points: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """(n,) the largest |q̇_j| of the segments overlapping [t0, t1], rad/s."""
    if len(times) < 2:
        return np.zeros(points.shape[1])
    speeds = np.abs(np.diff(points, axis=0)) / np.diff(times)[:, None]
    overlap = (times[1:] > t0) & (times[:-1] < t1)
    if not overlap.any():
        return np.zeros(points.shape[1])
    return speeds[overlap].max(axis=0)


def _ramp_time_s(speeds: np.ndarray, accel_limits: np.ndarray) -> float:
    return float(max(RAMP_STEP_S, (speeds / accel_limits).max()))


def stop_before(start: np.ndarray, command: JointTrajectory, t_limit_s: float,
                accel_limits_radps2: np.ndarray) -> tuple[JointTrajectory, JointTrajectory] | None:
    """Split `command` into a prefix that ends at rest by `t_limit_s` and the rest from there.

    Args:
        start: (n,) the robot's joint positions now, radians (the path's start at time 0).
        command: the commanded trajectory.
        t_limit_s: time along the commanded path (before speed scaling) that the robot must not
            pass; the prefix ends at rest at or before the position it has at this time.
        accel_limits_radps2: (n,) joint acceleration limits, rad/s².

    Returns:
        (prefix, rest), or None when no stop that leaves any motion fits before `t_limit_s`.
        The prefix has goal id ``<goal_id>/shortened`` and ends at rest; the rest keeps the
        command's goal id, starts at rest where the prefix ends (its first point at
        `RAMP_STEP_S`) and follows the remaining path at the original speeds.

    Raises:
        ValueError: `start` or `accel_limits_radps2` do not match the command's joints, or a
            limit is not positive.
    """
    n = len(command.joint_names)
    start = np.asarray(start, dtype=np.float64)
    accel = np.asarray(accel_limits_radps2, dtype=np.float64)
    if start.shape != (n,) or accel.shape != (n,):
        raise ValueError(f"stop_before: start {start.shape} and accel_limits_radps2 {accel.shape} "
                         f"must both be ({n},)")
    if not (accel > 0).all():
        raise ValueError(f"stop_before: accel_limits_radps2 must be > 0, got {accel.tolist()}")
    times, points = _path(start, command)
    end_s = float(command.time_from_start_s[-1])
    t_limit = min(float(t_limit_s), end_s)
    # the latest cut t_c whose stop ends by t_limit: t_c + T(t_c) / 2 <= t_limit
    for t_c in np.arange(t_limit, 0.0, -RAMP_STEP_S):
        ramp = _ramp_time_s(_max_speeds(times, points, t_c, t_limit), accel)
        if t_c + ramp / 2 <= t_limit + 1e-9:
            break
    else:
        return None
    tau = np.append(np.arange(RAMP_STEP_S, ramp, RAMP_STEP_S), ramp)
    stop_t = t_c + tau - tau * tau / (2 * ramp)
    keep = command.time_from_start_s < t_c
    prefix = JointTrajectory(command.joint_names,
                             np.vstack([command.positions[keep], _at(times, points, stop_t)]),
                             np.concatenate([command.time_from_start_s[keep], t_c + tau]),
                             goal_id=f"{command.goal_id}/shortened")
    t_e = float(stop_t[-1])
    rest_ramp = _ramp_time_s(_max_speeds(times, points, t_e, end_s), accel)
    tau = np.append(np.arange(RAMP_STEP_S, rest_ramp, RAMP_STEP_S), rest_ramp)
    start_t = np.minimum(t_e + tau * tau / (2 * rest_ramp), end_s)
    after = command.time_from_start_s > t_e + rest_ramp / 2
    rest = JointTrajectory(command.joint_names,
                           np.vstack([_at(times, points, start_t), command.positions[after]]),
                           np.concatenate([tau, command.time_from_start_s[after] - t_e + rest_ramp / 2]),
                           goal_id=command.goal_id)
    return prefix, rest
