"""Pure control-law pieces of the simulated controller: speed override and trajectory sampling.

No PyBullet and no clock here: the backend calls these every physics step and tests call them
directly.
"""

from __future__ import annotations

import numpy as np

SCALE_RAISE_RATE_PER_S = 1.0
"""How fast the applied speed scale may rise, 1/s (full speed from standstill in 1 s)."""


def lowering_rate_per_s(deceleration_mps2: float, max_tcp_speed_mps: float, v_ref_mps: float) -> float:
    """How fast the applied speed scale may fall, 1/s.

    The scale multiplies the path speed, so lowering it at `a / v_ref` per second decelerates a
    point moving at `v_ref` (at scale 1) at `a`. `v_ref` is the fastest capsule's speed at scale 1,
    capped at `max_tcp_speed_mps`: the rate is never slower than `a / v_max` (the robot's stop
    data then holds at full speed) and at lower speeds the stop takes `v / a`, not `v_max / a`,
    so S_s(v) = v^2 / (2a) of the stop data holds at every speed.

    Args:
        deceleration_mps2: a, the guaranteed deceleration of the stop data, m/s^2.
        max_tcp_speed_mps: v_max, the programmed speed limit, m/s.
        v_ref_mps: fastest point's speed at scale 1 now, m/s.
    """
    v_ref = min(max(v_ref_mps, 0.05 * max_tcp_speed_mps), max_tcp_speed_mps)
    return deceleration_mps2 / v_ref


def step_speed_scale(applied: float, target: float, dt_s: float, lower_rate: float, raise_rate: float) -> float:
    """Move the applied speed scale one step towards `target` with rate limits.

    Args:
        applied: the scale applied now, [0, 1].
        target: where it should go, [0, 1].
        dt_s: step, seconds.
        lower_rate: largest decrease per second, 1/s.
        raise_rate: largest increase per second, 1/s.

    Returns:
        The next applied scale, in [0, 1].
    """
    if target < applied:
        return max(target, applied - lower_rate * dt_s)
    return min(target, applied + raise_rate * dt_s)


def sample_trajectory(positions: np.ndarray, times_s: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-linear sample of a joint trajectory at path time `s`.

    Args:
        positions: (M, n) radians.
        times_s: (M,) seconds, strictly increasing, first == 0.
        s: path time, seconds (clamped to [0, times_s[-1]]).

    Returns:
        (q, dq_ds): (n,) radians and (n,) rad per second of path time (zero at the ends).
    """
    if positions.shape[0] == 1 or s <= times_s[0]:
        return positions[0].copy(), np.zeros(positions.shape[1])
    if s >= times_s[-1]:
        return positions[-1].copy(), np.zeros(positions.shape[1])
    i = int(np.searchsorted(times_s, s, side="right")) - 1
    span = times_s[i + 1] - times_s[i]
    u = (s - times_s[i]) / span
    dq = positions[i + 1] - positions[i]
    return positions[i] + u * dq, dq / span
