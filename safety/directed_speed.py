"""The directed robot speed v_r of ISO/TS 15066 clause 5.5.4.2.3 over the commanded path.

The standard's v_r is "the directed speed of the robot in the direction of the human": the
speed at which the robot's closest point closes the distance to the person. The monitor must
stay fail-safe while the robot reacts and brakes (T_r + T_s), during which it can turn towards
the person, so the speed used is the largest directed speed over the part of the *commanded*
path the robot can cover in that horizon, not the speed of this instant.

The gate hands the monitor the path it forwarded (`ActivePath`: the swept samples of
`safety.gate.sweep_samples` with the link capsules at each). Along it, every capsule axis is
sampled at `AXIS_FRACTIONS`; the velocity of each axis point between two swept samples is its
displacement over the time between them (a rigid link's velocity v + w x r, from the joint
velocities of the path, to first order in the sweep step). The directed speed of a link towards
a human point h is max over the window and the axis points of v . (h - x) / |h - x|, clamped
at 0, all at scale 1: the speed override multiplies path velocities, so scaling the
trajectory scales every directed speed linearly and the allowed scale stays
v_max(d) / v_r(scale 1).

Where the path cannot be trusted the caller falls back to the undirected speed: no known path
(`ActivePath` None, or the robot's goal is not the path's), the robot too far from every swept
sample (`PATH_MATCH_TOLERANCE_RAD`), non-finite values, or a separation below
`DIRECTION_FLOOR_M` (the direction is ill-defined there).

Pure numpy and `safety.kernels`; no clock, no I/O.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from safety import kernels

#: Below this surface separation, metres, the direction to the person is ill-defined (the
#: closest points jump between capsule faces) and the undirected speed is used.
DIRECTION_FLOOR_M = 0.2
#: The robot is "on" its path when some swept sample is within this of its joint positions
#: (largest joint difference), radians; otherwise the path does not explain its motion.
PATH_MATCH_TOLERANCE_RAD = 0.05
#: Points along each link capsule axis at which the directed speed is evaluated (0: a end,
#: 1: b end). A rigid link's point velocity is affine along the axis, its direction to the
#: person is not, so the ends alone could miss an interior maximum.
AXIS_FRACTIONS = np.linspace(0.0, 1.0, 5)
#: Largest number of swept samples of the horizon window evaluated per cycle (evenly spaced,
#: both ends kept): keeps the monitor cycle bounded on long, slow windows.
WINDOW_SAMPLES = 16
#: Shortest time between two swept samples used as a divisor, seconds (a jump at t = 0 reads
#: as a very fast, not an infinite, motion).
_MIN_DT_S = 1e-3


@dataclass(frozen=True)
class ActivePath:
    """The swept path of the trajectory the gate forwarded last (time at speed scale 1).

    Attributes:
        goal_id: the trajectory's goal id (matched against `RobotState.goal_id`).
        positions: (S, n) joint positions of the swept samples, radians.
        times_s: (S,) seconds from the path's start at scale 1, non-decreasing.
        link_segments: (S, K, 2, 3) link capsule axes at each sample, metres, `cell` frame.
        points: (S, K, P, 3) the axis points at `AXIS_FRACTIONS`, metres, `cell` frame.
        velocities: (S, K, P, 3) their velocity from sample s to s + 1 at scale 1, m/s; zero
            at the last sample (the robot holds at the end of its path).
        speeds: (S, K) largest axis-point speed of each link at each sample, m/s.
        points_xyz, velocities_xyz: (3, K, S, P) `points` and `velocities` by coordinate and
            link, and point_speeds: (K, S, P) |velocities|: the layouts `directed_speeds_mps`
            reads (its reductions over samples and axis points run over contiguous memory),
            built once per path instead of once per monitor cycle.

    Raises:
        ValueError: shapes disagree or values are not finite (from `from_sweep`).
    """

    goal_id: str
    positions: np.ndarray
    times_s: np.ndarray
    link_segments: np.ndarray
    points: np.ndarray = field(repr=False)
    velocities: np.ndarray = field(repr=False)
    speeds: np.ndarray = field(repr=False)
    points_xyz: np.ndarray = field(repr=False)
    velocities_xyz: np.ndarray = field(repr=False)
    point_speeds: np.ndarray = field(repr=False)

    @classmethod
    def from_sweep(cls, goal_id: str, positions: np.ndarray, times_s: np.ndarray,
                   link_segments: np.ndarray) -> "ActivePath":
        """Build the path from swept samples (`safety.gate.sweep_samples` + the robot model)."""
        q = np.asarray(positions, dtype=np.float64)
        t = np.asarray(times_s, dtype=np.float64)
        segs = np.asarray(link_segments, dtype=np.float64)
        if q.ndim != 2 or t.shape != (q.shape[0],) or segs.ndim != 4 or segs.shape[0] != q.shape[0] \
                or segs.shape[2:] != (2, 3):
            raise ValueError(f"ActivePath: shapes disagree: positions {q.shape}, times {t.shape}, "
                             f"link_segments {segs.shape}")
        if not (np.isfinite(q).all() and np.isfinite(t).all() and np.isfinite(segs).all()):
            raise ValueError("ActivePath: values must be finite")
        f = AXIS_FRACTIONS[None, None, :, None]
        points = segs[:, :, None, 0, :] * (1.0 - f) + segs[:, :, None, 1, :] * f      # (S, K, P, 3)
        velocities = np.zeros_like(points)
        if len(t) > 1:
            dt = np.maximum(np.diff(t), _MIN_DT_S)
            velocities[:-1] = np.diff(points, axis=0) / dt[:, None, None, None]
        point_speeds = np.linalg.norm(velocities, axis=-1)                             # (S, K, P)
        speeds = point_speeds.max(axis=-1)                                             # (S, K)
        point_speeds = np.ascontiguousarray(point_speeds.transpose(1, 0, 2))           # (K, S, P)
        points_xyz = np.ascontiguousarray(points.transpose(3, 1, 0, 2))                # (3, K, S, P)
        velocities_xyz = np.ascontiguousarray(velocities.transpose(3, 1, 0, 2))
        # C order throughout: `safety.kernels` takes C-contiguous arrays only (the broadcast above
        # may give another memory order, and a reduction keeps it)
        arrays = tuple(np.ascontiguousarray(a) for a in
                       (q, t, segs, points, velocities, speeds, points_xyz, velocities_xyz, point_speeds))
        for a in arrays:
            a.setflags(write=False)
        return cls(goal_id, *arrays)

    def progress(self, position: np.ndarray) -> int | None:
        """Index of the swept sample nearest to the joint `position` (n,) radians; None when
        none is within `PATH_MATCH_TOLERANCE_RAD` or the position does not fit the path."""
        pos = np.ascontiguousarray(position, dtype=np.float64)
        if pos.shape != (self.positions.shape[1],):
            return None
        i = kernels.path_progress(self.positions, pos, PATH_MATCH_TOLERANCE_RAD)   # -1: none
        return i if i >= 0 else None

    def window(self, start: int, horizon_s: float) -> np.ndarray:
        """Indices of the swept samples from `start` - 1 to `horizon_s` (path time at scale 1)
        past `start`, at most `WINDOW_SAMPLES` of them, evenly spaced, both ends kept."""
        lo = max(start - 1, 0)
        hi = int(np.searchsorted(self.times_s, self.times_s[start] + horizon_s, side="right"))
        hi = min(max(hi, start + 1), len(self.times_s))
        if hi - lo > WINDOW_SAMPLES:
            return lo + _window_picks(hi - lo)
        return np.arange(lo, hi)


@functools.lru_cache(maxsize=1024)
def _window_picks(n: int) -> np.ndarray:
    """`WINDOW_SAMPLES` evenly spaced offsets into a window of n > `WINDOW_SAMPLES` samples, both
    ends kept (read-only; cached: the window lengths repeat from cycle to cycle). The step
    (n - 1) / (WINDOW_SAMPLES - 1) exceeds 1, so the rounded picks are distinct."""
    picks = np.linspace(0, n - 1, WINDOW_SAMPLES).round().astype(int)
    picks.setflags(write=False)
    return picks


def directed_speeds_mps(path: ActivePath, window: np.ndarray, human_points: np.ndarray,
                        regions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Largest directed and undirected speed of every link over a window, at scale 1.

    Args:
        path: the active path.
        window: (W,) sample indices (`ActivePath.window`).
        human_points: (R, K, 3) for each body region r, the human point closest to link k,
            metres, `cell` frame.
        regions: (M,) indices of the rows of `human_points` to evaluate; None: all R.

    Returns:
        (directed (M, K), undirected (K,)), m/s: directed is max over the window and the axis
        points of v . (h - x) / |h - x|, clamped at 0 (the full speed |v| where h and x
        coincide; `safety.kernels.directed_speeds`); undirected is the largest axis-point speed
        of each link over the window.
    """
    h = np.ascontiguousarray(human_points, dtype=np.float64)
    rows = np.arange(h.shape[0], dtype=np.int64) if regions is None else np.ascontiguousarray(regions, dtype=np.int64)
    directed = kernels.directed_speeds(path.points_xyz, path.velocities_xyz, path.point_speeds,
                                       np.ascontiguousarray(window, dtype=np.int64), h, rows)
    return directed, path.speeds[window].max(axis=0)
