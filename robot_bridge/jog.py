"""Jogging as MoveIt Servo does it: a jog is a short velocity command that stops by itself.

Pure functions, no clock and no I/O. `safety.gate` turns every `JointJog` and `CartesianJog`
into one short `JointTrajectory` with `plan_velocity_jog` / `plan_displacement_jog` and checks
that trajectory like any other (limits, keep-out zones, people) before a backend sees it; the
backend follows it at the speed scale in force. So what the gate simulated is exactly what the
robot is asked to do, and every backend (sim, dds) jogs without knowing what a jog is.

The velocity profile of a velocity jog (per joint, synchronised so that a Cartesian jog keeps its
direction while it ramps):

    from the robot's velocity now, ramp to the target velocity at the joint acceleration limits;
    hold it until the deadman timeout (`JOG_DEADMAN_S`, configurable at the gate);
    ramp to standstill at the acceleration limits.

A newer jog replaces the trajectory (from the position and velocity measured then), so a stream
of jogs moves the robot continuously and, when the stream stops, the robot is at rest within
the deadman timeout plus its stopping time max_j |v_j| / a_j (< 0.3 s for the Panda).

Cartesian jogs are resolved to joint velocities once per jog, at the position measured when it
arrives, with damped least squares (`dls_joint_velocity`); over one deadman period the joint
velocity is then held constant, so the TCP follows the twist to first order (the next jog
re-linearises). Jogging is manual operation: the TCP speed is limited to
`MANUAL_REDUCED_SPEED_MPS` (ISO 10218-1:2011 clause 5.7.3, reduced speed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robot_bridge.errors import CommandError
from robot_bridge.types import JointTrajectory

JOG_DEADMAN_S = 0.2
"""Default deadman timeout, seconds: a velocity jog is held this long after it arrives, then the
robot ramps to rest unless a newer jog arrived (MoveIt Servo's `incoming_command_timeout`)."""
JOG_SAMPLE_S = 0.02
"""Time between the points of a jog trajectory, seconds."""
JOG_DAMPING = 0.05
"""Damping factor lambda of the damped least-squares inverse (metres, or radians for the angular
rows); keeps joint velocities bounded near singularities at the cost of a small tracking error."""
MANUAL_REDUCED_SPEED_MPS = 0.25
"""Largest TCP speed of a jog, m/s: ISO 10218-1:2011 clause 5.7.3, reduced speed (<= 250 mm/s)
in manual mode."""
JOG_LIMIT_MARGIN_RAD = 0.02
"""A velocity jog is slowed so that no joint comes closer than this to a position limit,
radians (a joint already closer may only move away)."""


@dataclass(frozen=True)
class JogPlan:
    """A jog as a short trajectory.

    Attributes:
        trajectory: the motion: first point the measured position at time 0, last point at rest.
        velocity_factor: in [0, 1]; below 1 when the target velocity was slowed to stop before a
            joint position limit.
        stop_time_s: when the motion is at rest, seconds after the start (path time).
    """

    trajectory: JointTrajectory
    velocity_factor: float
    stop_time_s: float


def dls_joint_velocity(jacobian: np.ndarray, twist: np.ndarray,
                       damping: float = JOG_DAMPING) -> np.ndarray:
    """Joint velocities that produce a TCP twist, by damped least squares.

    q_dot = J^T (J J^T + lambda^2 I)^-1 x_dot (Nakamura and Hanafusa 1986; Wampler 1986).

    Args:
        jacobian: (6, n) geometric Jacobian of the TCP in the `cell` frame: rows 0-2 linear (m per
            rad), rows 3-5 angular (rad per rad).
        twist: (6,) [linear m/s, angular rad/s], `cell` frame.
        damping: lambda, >= 0.

    Returns:
        (n,) joint velocities, rad/s.
    """
    j = np.asarray(jacobian, dtype=np.float64)
    jjt = j @ j.T + (damping ** 2) * np.eye(j.shape[0])
    return j.T @ np.linalg.solve(jjt, np.asarray(twist, dtype=np.float64))


def _integrate(q0: np.ndarray, knots_t: np.ndarray, knots_v: np.ndarray,
               sample_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions along a piecewise-linear velocity profile, every `sample_s` and at the knots.

    Args:
        q0: (n,) start, radians.
        knots_t: (K,) seconds, first 0, non-decreasing.
        knots_v: (K, n) velocities at the knots, rad/s.

    Returns:
        (positions (M, n), times (M,)): strictly increasing times from 0 to knots_t[-1].
    """
    end = float(knots_t[-1])
    times = np.unique(np.concatenate([np.arange(0.0, end, sample_s), knots_t, [end]]))
    times = times[np.concatenate([[True], np.diff(times) > 1e-9])]
    # position at each knot: trapezoid rule is exact for piecewise-linear velocity
    seg = np.diff(knots_t)[:, None] * (knots_v[1:] + knots_v[:-1]) / 2
    q_knots = q0[None, :] + np.vstack([np.zeros_like(q0)[None, :], np.cumsum(seg, axis=0)])
    pos = np.empty((times.size, q0.size))
    for m, t in enumerate(times):
        i = min(int(np.searchsorted(knots_t, t, side="right")) - 1, knots_t.size - 2)
        span = knots_t[i + 1] - knots_t[i]
        if span <= 0:
            pos[m] = q_knots[i + 1]
            continue
        u = t - knots_t[i]
        v_t = knots_v[i] + (knots_v[i + 1] - knots_v[i]) * (u / span)
        pos[m] = q_knots[i] + u * (knots_v[i] + v_t) / 2
    return pos, times


def _velocity_knots(v0: np.ndarray, vt: np.ndarray, hold_s: float,
                    acc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t1 = float(np.max(np.abs(vt - v0) / acc))
    if t1 > hold_s:  # still ramping at the deadman: stop from where the ramp got to
        vh, t_hold_start = v0 + (vt - v0) * (hold_s / t1), hold_s
    else:
        vh, t_hold_start = vt, t1
    t2 = float(np.max(np.abs(vh) / acc))
    knots_t = np.array([0.0, t_hold_start, hold_s, hold_s + t2])
    knots_v = np.vstack([v0, vh, vh, np.zeros_like(v0)])
    return knots_t, knots_v


def plan_velocity_jog(joint_names: Sequence[str], start_q: np.ndarray, start_v: np.ndarray,
                      target_v: np.ndarray, hold_s: float, acc_limits: np.ndarray,
                      lower: np.ndarray, upper: np.ndarray, goal_id: str = "",
                      sample_s: float = JOG_SAMPLE_S) -> JogPlan:
    """The trajectory of a velocity jog: ramp to `target_v`, hold for `hold_s`, ramp to rest.

    The target is scaled down (the same factor for every joint, so the direction is kept) until
    no joint comes closer than `JOG_LIMIT_MARGIN_RAD` to a position limit; a joint already
    closer may only move away.

    Args:
        joint_names: (n,) the robot's joints.
        start_q: (n,) measured position, radians.
        start_v: (n,) measured velocity in path time (actual / speed scale), rad/s, within the
            velocity limits.
        target_v: (n,) commanded velocity, rad/s, within the velocity limits.
        hold_s: how long the target is held from now (the deadman timeout), seconds, > 0.
        acc_limits: (n,) joint acceleration limits, rad/s^2, > 0.
        lower, upper: (n,) joint position limits, radians.
        goal_id: the trajectory's goal id.
        sample_s: time between trajectory points, seconds.

    Returns:
        The plan.

    Raises:
        CommandError: even without the jog (target 0), the motion the robot already has carries
            a joint past its limit band (the message names the joint).
    """
    q0, v0 = np.asarray(start_q, dtype=np.float64), np.asarray(start_v, dtype=np.float64)
    vt = np.asarray(target_v, dtype=np.float64)
    acc = np.asarray(acc_limits, dtype=np.float64)
    lo = np.minimum(np.asarray(lower, dtype=np.float64) + JOG_LIMIT_MARGIN_RAD, q0)
    hi = np.maximum(np.asarray(upper, dtype=np.float64) - JOG_LIMIT_MARGIN_RAD, q0)

    def plan(factor: float) -> tuple[np.ndarray, np.ndarray, float]:
        kt, kv = _velocity_knots(v0, vt * factor, hold_s, acc)
        pos, times = _integrate(q0, kt, kv, sample_s)
        return pos, times, float(kt[-1])

    def inside(pos: np.ndarray) -> bool:
        return bool(((pos >= lo - 1e-9) & (pos <= hi + 1e-9)).all())

    pos, times, stop = plan(1.0)
    factor = 1.0
    if not inside(pos):
        pos0, _, _ = plan(0.0)
        if not inside(pos0):
            j = int(np.argmax(np.maximum(lo - pos0, pos0 - hi).max(axis=0)))
            raise CommandError(f"JointJog {goal_id!r}: {joint_names[j]} cannot stop before its "
                               f"position limit band [{lo[j]:.3f}, {hi[j]:.3f}] rad")
        good, bad = 0.0, 1.0
        for _ in range(20):
            mid = (good + bad) / 2
            if inside(plan(mid)[0]):
                good = mid
            else:
                bad = mid
        factor = good
        pos, times, stop = plan(factor)
    return JogPlan(JointTrajectory(tuple(joint_names), pos, times, goal_id), factor, stop)


def plan_displacement_jog(joint_names: Sequence[str], start_q: np.ndarray, displacement: np.ndarray,
                          duration_s: float, vel_limits: np.ndarray, acc_limits: np.ndarray,
                          goal_id: str = "", sample_s: float = JOG_SAMPLE_S) -> JogPlan:
    """A displacement jog's trajectory: from rest, exactly `displacement` in about `duration_s`.

    A synchronised trapezoidal profile at the velocity `displacement / duration_s`: it ramps up at
    the acceleration limits, cruises, and ramps down, reaching the displacement at
    `duration_s` + ramp time (when `duration_s` is shorter than the ramp, a triangular profile
    at a lower peak velocity). Position limits are the gate's to check (the goal is fixed).

    Args:
        joint_names: (n,) the robot's joints.
        start_q: (n,) measured position, radians.
        displacement: (n,) radians.
        duration_s: seconds, > 0.
        vel_limits: (n,) rad/s.
        acc_limits: (n,) rad/s^2.

    Returns:
        The plan (`velocity_factor` 1).

    Raises:
        CommandError: the cruise velocity exceeds a joint's velocity limit (the message names it).
    """
    q0 = np.asarray(start_q, dtype=np.float64)
    d = np.asarray(displacement, dtype=np.float64)
    acc = np.asarray(acc_limits, dtype=np.float64)
    vel = np.asarray(vel_limits, dtype=np.float64)
    vt = d / duration_s
    over = np.abs(vt) > vel
    if over.any():
        j = int(np.argmax(np.abs(vt) / vel))
        raise CommandError(f"JointJog {goal_id!r}: {joint_names[j]} would move at "
                           f"{abs(vt[j]):.2f} rad/s to cover its displacement in {duration_s} s, "
                           f"above its limit {vel[j]:.2f} rad/s")
    r = float(np.max(np.abs(vt) / acc))
    if r <= 0.0:
        kt, kv = np.array([0.0, duration_s]), np.zeros((2, q0.size))
    elif duration_s >= r:
        kt = np.array([0.0, r, duration_s, duration_s + r])
        kv = np.vstack([np.zeros_like(vt), vt, vt, np.zeros_like(vt)])
    else:
        c = float(np.sqrt(duration_s / r))
        kt = np.array([0.0, c * r, 2 * c * r])
        kv = np.vstack([np.zeros_like(vt), c * vt, np.zeros_like(vt)])
    pos, times = _integrate(q0, kt, kv, sample_s)
    pos[-1] = q0 + d  # exact goal (the integration is exact up to rounding)
    return JogPlan(JointTrajectory(tuple(joint_names), pos, times, goal_id), 1.0, float(kt[-1]))
