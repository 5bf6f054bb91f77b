"""Speed and separation monitoring: the protective separation distance and the speed limit.

Pure functions; no clock, no threads, no I/O. Units SI (m, s, m/s, m/s^2).

ISO/TS 15066:2016 clause 5.5.4.2.3, formula (1), with constant speeds over the
intervals (the standard's "simplified" form):

    S_p = S_h + S_r + S_s + C + Z_d + Z_r
    S_h = v_h * (T_r + T_s)   human travel while the system reacts and the robot stops
    S_r = v_r * T_r           robot travel during the system reaction time
    S_s                       robot stopping distance from speed v_r
    C                         intrusion distance (ISO 13855:2010 clause 3.4 / table 1)
    Z_d, Z_r                  position uncertainty of the human sensing and of the robot

Stopping model (from the cell's stop data, `content.cell.StopData`): the robot
starts braking `t_d` after the stop is commanded and then decelerates at `a`:

    T_s(v) = t_d + v / a,     S_s(v) = v * t_d + v^2 / (2 a)

Where the cell gives measured stopping data (a table of stopping time and distance against
speed, per payload: the figures of ISO 10218-1:2011 annex B, or the user's own measurements),
`fit_stopping_envelope` chooses the (t_d, a) whose T_s and S_s lie on or above the table's
piecewise-linear interpolation at every speed up to the fastest measured one, so every formula
above keeps its closed form and stays conservative against the data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from content.cell import StopData


@dataclass(frozen=True)
class StoppingModel:
    """The robot's stopping behaviour for one stop category.

    Attributes:
        latency_s: t_d, time from the stop command to the start of braking, s.
        deceleration_mps2: a, guaranteed Cartesian deceleration while braking, m/s^2.
    """

    latency_s: float
    deceleration_mps2: float

    @classmethod
    def from_stop_data(cls, stop: "StopData", payload_kg: float | None = None) -> "StoppingModel":
        """The model of a cell description's `robot.stop`: with a measured `table`, the envelope
        of its rows for the smallest measured payload >= `payload_kg` (`fit_stopping_envelope`;
        stopping distance grows with payload, so the next heavier payload is conservative);
        otherwise t_d = `latency_s`, a = `deceleration_mps2`.

        Args:
            stop: the stop data.
            payload_kg: the payload carried now, kg (`Robot.stop_payload_kg`: lighter while the
                gripper is empty); None: `stop.payload_kg`. Clamped to `stop.payload_kg` at
                most, the payload the table was validated for.
        """
        if not stop.table:
            return cls(stop.latency_s, stop.deceleration_mps2)
        carried = stop.payload_kg if payload_kg is None \
            else min(max(payload_kg, 0.0), stop.payload_kg)
        payload = min(r.payload_kg for r in stop.table if r.payload_kg >= carried)
        rows = sorted((r for r in stop.table if r.payload_kg == payload), key=lambda r: r.speed_mps)
        return fit_stopping_envelope([r.speed_mps for r in rows], [r.stopping_time_s for r in rows],
                                     [r.stopping_distance_m for r in rows])

    def stopping_time_s(self, v_r_mps: float) -> float:
        """T_s(v) = t_d + v / a, seconds (ISO/TS 15066 clause 5.5.4.2.3, T_s)."""
        return self.latency_s + v_r_mps / self.deceleration_mps2

    def stopping_distance_m(self, v_r_mps: float) -> float:
        """S_s(v) = v t_d + v^2 / (2a), metres (ISO/TS 15066 clause 5.5.4.2.3, S_s)."""
        return v_r_mps * self.latency_s + v_r_mps * v_r_mps / (2.0 * self.deceleration_mps2)


@dataclass(frozen=True)
class ProtectiveSeparationDistance:
    """The terms of S_p (ISO/TS 15066 clause 5.5.4.2.3, formula (1)), all in metres.

    Attributes:
        s_h: human travel during T_r + T_s.
        s_r: robot travel during T_r.
        s_s: robot stopping distance.
        c: intrusion distance (ISO 13855).
        z_d: human position uncertainty (perception).
        z_r: robot position uncertainty.
    """

    s_h: float
    s_r: float
    s_s: float
    c: float
    z_d: float
    z_r: float

    @property
    def total_m(self) -> float:
        """S_p in metres."""
        return self.s_h + self.s_r + self.s_s + self.c + self.z_d + self.z_r

    def as_dict(self) -> dict[str, float]:
        """The terms by their standard names, metres."""
        return {"s_h": self.s_h, "s_r": self.s_r, "s_s": self.s_s, "c": self.c, "z_d": self.z_d, "z_r": self.z_r}


def protective_separation_distance(
    *,
    v_h_mps: float,
    v_r_mps: float,
    reaction_time_s: float,
    stopping: StoppingModel,
    intrusion_distance_m: float,
    z_d_m: float,
    z_r_m: float,
) -> ProtectiveSeparationDistance:
    """S_p and its terms for a human approaching at `v_h_mps` and a robot at `v_r_mps`.

    Args:
        v_h_mps: human approach speed v_h, m/s (ISO 13855 default 1.6 m/s).
        v_r_mps: robot speed v_r towards the human, m/s (>= 0).
        reaction_time_s: T_r, system reaction time, s.
        stopping: the robot's stopping model (T_s, S_s).
        intrusion_distance_m: C, metres.
        z_d_m: Z_d, metres.
        z_r_m: Z_r, metres.

    Returns:
        The terms of formula (1); `.total_m` is S_p.

    Raises:
        ValueError: a speed, time or distance is negative or not finite.
    """
    for name, value in (("v_h_mps", v_h_mps), ("v_r_mps", v_r_mps), ("reaction_time_s", reaction_time_s),
                        ("intrusion_distance_m", intrusion_distance_m), ("z_d_m", z_d_m), ("z_r_m", z_r_m)):
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    t_s = stopping.stopping_time_s(v_r_mps)
    return ProtectiveSeparationDistance(
        s_h=v_h_mps * (reaction_time_s + t_s),
        s_r=v_r_mps * reaction_time_s,
        s_s=stopping.stopping_distance_m(v_r_mps),
        c=intrusion_distance_m,
        z_d=z_d_m,
        z_r=z_r_m,
    )


def max_robot_speed_mps(
    *,
    separation_m: float,
    v_h_mps: float,
    reaction_time_s: float,
    stopping: StoppingModel,
    intrusion_distance_m: float,
    z_d_m: float,
    z_r_m: float,
) -> float:
    """The largest robot speed v_r for which S_p(v_r) <= `separation_m`.

    Solving S_p(v) = d with the stopping model above gives the quadratic
    v^2 / (2a) + b v - D = 0 with b = T_r + t_d + v_h / a and
    D = d - C - Z_d - Z_r - v_h (T_r + t_d), hence

        v_max = sqrt((a b)^2 + 2 a D) - a b            (0 when D <= 0)

    With v_h = 0 and t_d = 0 this is the expression of DESIGN.md,
    v_max = sqrt((a T_r)^2 + 2a(d - C - Z)) - a T_r; the S_h term makes the
    limit account for the human's approach while the robot reacts and brakes.

    Args:
        separation_m: d, the measured human-robot separation, metres.
        (others as in `protective_separation_distance`)

    Returns:
        v_max in m/s, >= 0.
    """
    if not math.isfinite(separation_m):
        return 0.0
    a = stopping.deceleration_mps2
    t_total = reaction_time_s + stopping.latency_s
    b = t_total + v_h_mps / a
    d_free = separation_m - intrusion_distance_m - z_d_m - z_r_m - v_h_mps * t_total
    if d_free <= 0.0:
        return 0.0
    ab = a * b
    return math.sqrt(ab * ab + 2.0 * a * d_free) - ab



def max_robot_speeds_mps(
    separations_m: np.ndarray, *, v_h_mps: float | np.ndarray, reaction_time_s: float | np.ndarray,
    stopping: StoppingModel, intrusion_distance_m: float, z_d_m: float | np.ndarray, z_r_m: float,
) -> np.ndarray:
    """`max_robot_speed_mps` for many separations at once (the monitor's per-link check).

    Args:
        separations_m: (...) measured separations d, metres (a non-finite one gives 0).
        v_h_mps, reaction_time_s, z_d_m: floats, or arrays that broadcast against
            `separations_m` (per body region: (R, 1) against (R, K)).
        (others as in `protective_separation_distance`)

    Returns:
        (...) v_max, m/s, >= 0: the same closed form, and the same rounding, as
        `max_robot_speed_mps` element by element.
    """
    d = np.asarray(separations_m, dtype=np.float64)
    a = stopping.deceleration_mps2
    t_total = reaction_time_s + stopping.latency_s
    ab = a * (t_total + v_h_mps / a)
    d_free = d - intrusion_distance_m - z_d_m - z_r_m - v_h_mps * t_total
    ok = np.isfinite(d_free) & (d_free > 0.0)
    return np.where(ok, np.sqrt(ab * ab + 2.0 * a * np.where(ok, d_free, 0.0)) - ab, 0.0)


def protective_separation_distances_m(
    v_r_mps: np.ndarray, *, v_h_mps: float | np.ndarray, reaction_time_s: float | np.ndarray,
    stopping: StoppingModel, intrusion_distance_m: float, z_d_m: float | np.ndarray, z_r_m: float,
) -> np.ndarray:
    """S_p (`ProtectiveSeparationDistance.total_m`) for many robot speeds at once, metres.

    S_p(v) = v_h (T_r + t_d) + C + Z_d + Z_r + (v_h / a + T_r + t_d) v + v^2 / (2a), the
    expansion of formula (1) with the stopping model of this module.

    Args:
        v_r_mps: (...) robot speeds v_r >= 0, m/s.
        v_h_mps, reaction_time_s, z_d_m: floats, or arrays that broadcast against `v_r_mps`.
        (others as in `protective_separation_distance`)
    """
    v = np.asarray(v_r_mps, dtype=np.float64)
    a, t_d = stopping.deceleration_mps2, stopping.latency_s
    c0 = v_h_mps * (reaction_time_s + t_d) + intrusion_distance_m + z_d_m + z_r_m
    return c0 + (v_h_mps / a + reaction_time_s + t_d) * v + v * v / (2.0 * a)

#: Speeds at which `fit_stopping_envelope` checks the bound, per table (evenly spaced).
ENVELOPE_GRID_POINTS = 400
#: Decelerations `fit_stopping_envelope` tries, m/s^2 (log-spaced).
ENVELOPE_DECELERATIONS_MPS2 = np.geomspace(0.05, 200.0, 2000)


def fit_stopping_envelope(speeds_mps: Sequence[float], stopping_times_s: Sequence[float],
                          stopping_distances_m: Sequence[float]) -> StoppingModel:
    """The tightest linear-deceleration `StoppingModel` that bounds measured stopping data.

    The data are interpolated piecewise-linearly in speed: distances from (0, 0) through the
    rows (a stopping distance is convex in speed, so the chords lie above it), times flat below
    the slowest row and linear between rows. The model's T_s(v) and S_s(v) must be at or above
    both at `ENVELOPE_GRID_POINTS` speeds up to the fastest row; among the decelerations
    `ENVELOPE_DECELERATIONS_MPS2`, each with the smallest t_d that achieves the bound, the one
    with the least mean excess (relative to the largest time and distance) is returned.

    Args:
        speeds_mps: (N,) strictly increasing speeds > 0, m/s (the robot's Cartesian speed at the
            point whose stopping distance was measured, e.g. the TCP).
        stopping_times_s: (N,) non-decreasing stopping times, s.
        stopping_distances_m: (N,) non-decreasing stopping distances, m.

    Returns:
        StoppingModel(t_d, a) with T_s(v) >= the interpolated time and S_s(v) >= the interpolated
        distance for every v in (0, speeds_mps[-1]].

    Raises:
        ValueError: fewer than one row, non-finite or non-positive values, speeds not strictly
            increasing, or times or distances that decrease with speed (the message says which).
    """
    v = np.asarray(speeds_mps, dtype=float)
    t = np.asarray(stopping_times_s, dtype=float)
    d = np.asarray(stopping_distances_m, dtype=float)
    if v.ndim != 1 or len(v) < 1 or t.shape != v.shape or d.shape != v.shape:
        raise ValueError("stopping data: give as many times and distances as speeds (at least one)")
    if not (np.isfinite(v).all() and np.isfinite(t).all() and np.isfinite(d).all()):
        raise ValueError("stopping data: values must be finite")
    if (v <= 0).any() or (t <= 0).any() or (d <= 0).any():
        raise ValueError("stopping data: speeds, times and distances must be > 0")
    if (np.diff(v) <= 0).any():
        raise ValueError("stopping data: speeds must be strictly increasing")
    if (np.diff(t) < 0).any() or (np.diff(d) < 0).any():
        raise ValueError("stopping data: stopping time and distance must not decrease with speed")
    grid = np.linspace(v[-1] / ENVELOPE_GRID_POINTS, v[-1], ENVELOPE_GRID_POINTS)
    d_lin = np.interp(grid, np.concatenate([[0.0], v]), np.concatenate([[0.0], d]))
    t_lin = np.interp(grid, v, t)
    a = ENVELOPE_DECELERATIONS_MPS2[:, None]
    # the smallest t_d with t_d + v/a >= t_lin and v t_d + v^2/(2a) >= d_lin at every grid speed
    t_d = np.maximum(0.0, np.maximum((t_lin - grid / a).max(axis=1),
                                     ((d_lin - grid * grid / (2.0 * a)) / grid).max(axis=1)))
    t_model = t_d[:, None] + grid / a
    d_model = grid * t_d[:, None] + grid * grid / (2.0 * a)
    excess = ((t_model - t_lin) / t.max() + (d_model - d_lin) / d.max()).mean(axis=1)
    best = int(np.argmin(excess))
    return StoppingModel(float(t_d[best]), float(ENVELOPE_DECELERATIONS_MPS2[best]))
