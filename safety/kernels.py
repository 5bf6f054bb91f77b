"""Compiled numeric kernels of the monitor cycle (numba `@njit`, ahead of the first cycle).

Each kernel is a plain loop over contiguous float64 arrays doing, value by value, the
arithmetic of the numpy code it replaces, in the same order, so its results are the same to
the last bit (IEEE 754 operations are exactly rounded; no `fastmath`, so no reassociation and
no fused multiply-add). numpy's `maximum` / `minimum` / `argmin` semantics, NaN included, are
kept by `_np_max`, `_np_min` and the explicit comparisons. No `parallel=True`: the monitor
thread must not start threads.

Compilation happens once, at import (the signatures are given, so numba compiles them eagerly,
and any other argument type raises TypeError instead of compiling inside a live cycle). The
machine code is cached on disk (numba's `cache=True`): in `__pycache__` next to this file, else
(a read-only install) in the user-wide cache directory, or under `NUMBA_CACHE_DIR` when that is
set. Where no cache directory is writable, `_CACHE` is False and every start-up compiles. On
the 2-core development machine (load 5): the first import compiles in about 8 s of CPU (11-27 s
of wall time); from the cache, the import takes about 1.5 s of CPU (2-3 s of wall time), numba's
own import included.

numba does not check indices (an index out of range reads whatever memory is there), so every
kernel first checks its arguments' shapes and index arrays against each other and raises
ValueError naming the argument (a fault stop in the cycle) instead of reading out of range.

All coordinates metres in the `cell` frame; speeds m/s.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, types

#: Argument types: C-contiguous, read-only accepted (a writable array converts to them); the
#: signatures are given, so numba compiles them at import and never another one in a cycle
#: (other argument types raise TypeError: a fault stop, not a stall).
_F1, _F2, _F3, _F4 = (types.Array(types.float64, n, "C", readonly=True) for n in (1, 2, 3, 4))
_I1 = types.Array(types.int64, 1, "C", readonly=True)
_F2_OUT, _F3_OUT = types.Array(types.float64, 2, "C"), types.Array(types.float64, 3, "C")
_I2_OUT = types.Array(types.int64, 2, "C")


def _cache_available() -> bool:
    """Whether numba can cache compiled kernels for this file: in `__pycache__` next to it, else
    in the user-wide cache directory (`NUMBA_CACHE_DIR` when set). Where neither is writable
    (a read-only install without a home directory) the kernels compile at every start-up
    instead (see the module docstring for the cost) rather than failing to import."""
    def probe() -> None:
        pass
    try:
        njit(cache=True)(probe)
    except RuntimeError:             # numba: "cannot cache function ...: no locator available"
        return False
    return True


#: numba's on-disk cache of the compiled kernels is usable (`_cache_available`).
_CACHE = _cache_available()

def _kernel(signature):
    """`njit(signature, cache=_CACHE)`: compiled now, for this signature only, from numba's disk
    cache when it holds the kernel. numba's cache loader catches only OSError: a cache file
    that fails to unpickle (truncated, overwritten, from a disk fault) would make this module's
    import fail and the monitor never start. Such an entry is dropped (the function's cache
    index flushed) and the kernel compiled afresh, which rewrites the entry."""
    def compile_kernel(function):
        kernel = njit(cache=_CACHE)(function)    # lazy: nothing loaded or compiled yet
        if numba.config.DISABLE_JIT:            # debugging with NUMBA_DISABLE_JIT=1: plain Python
            return kernel
        try:
            kernel.compile(signature)
        except Exception:                       # noqa: BLE001 - any failure to load the entry
            if not _CACHE:
                raise
            kernel._cache.flush()               # numba 0.60 (pinned): the function's index
            kernel.compile(signature)
        kernel.disable_compile()                # as njit(signature): no other type compiles later
        return kernel
    return compile_kernel


#: As `safety.distance._EPS`: a squared length at or below it is a point; a denominator at or
#: below it is a parallel pair (Ericson 5.1.9).
_EPS = 1e-12


@njit(cache=_CACHE, inline="always")
def _np_max(x: float, y: float) -> float:
    """`np.maximum(x, y)` for two floats: x when x >= y or x is NaN, else y."""
    return x if (x >= y or x != x) else y


@njit(cache=_CACHE, inline="always")
def _np_min(x: float, y: float) -> float:
    """`np.minimum(x, y)` for two floats: x when x <= y or x is NaN, else y."""
    return x if (x <= y or x != x) else y


@_kernel(types.Tuple((_F2_OUT, _I2_OUT, _F3_OUT, _F3_OUT))(_F3, _F1, _I1, _I1, _F3, _F1))
def closest_pairs_per_link(human_segments: np.ndarray, human_radii: np.ndarray, region_starts: np.ndarray,
                           region_sizes: np.ndarray, robot_segments: np.ndarray, robot_radii: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per body region and robot link, the region's capsule closest to the link.

    The closest points of two segments by the clamped formulation of Ericson, *Real-Time
    Collision Detection* (2005), 5.1.9 (`ClosestPtSegmentSegment`), exactly as
    `safety.distance.closest_points_all_pairs` computes them (point segments' directions zeroed,
    dot products summed (x + z) + y, the same branches), and the surface distance
    |c1 - c2| - r_h - r_k.

    Args:
        human_segments: (H, 2, 3) capsule axes of all regions stacked in order, metres.
        human_radii: (H,) metres.
        region_starts, region_sizes: (R,) int64: region r is rows start .. start + size - 1,
            size >= 1.
        robot_segments: (K, 2, 3) link capsule axes, metres.
        robot_radii: (K,) metres.

    Returns:
        (distance (R, K) metres, human_index (R, K) int64 into the region's capsules (the first
        of a tie, as `np.argmin`), human_point (R, K, 3), robot_point (R, K, 3) metres): the
        `safety.distance.LinkPairs` fields.
    """
    n_regions, n_links = region_starts.shape[0], robot_segments.shape[0]
    n_rows = human_segments.shape[0]
    if human_segments.shape[1] != 2 or human_segments.shape[2] != 3 or human_radii.shape[0] != n_rows:
        raise ValueError("closest_pairs_per_link: human_segments must be (H, 2, 3) and human_radii (H,)")
    if robot_segments.shape[1] != 2 or robot_segments.shape[2] != 3 or robot_radii.shape[0] != n_links:
        raise ValueError("closest_pairs_per_link: robot_segments must be (K, 2, 3) and robot_radii (K,)")
    if region_sizes.shape[0] != n_regions:
        raise ValueError("closest_pairs_per_link: region_starts and region_sizes differ in length")
    for r in range(n_regions):
        if region_starts[r] < 0 or region_sizes[r] < 1 or region_starts[r] > n_rows - region_sizes[r]:
            raise ValueError("closest_pairs_per_link: a region is empty or outside human_segments")
    distance = np.empty((n_regions, n_links))
    human_index = np.zeros((n_regions, n_links), dtype=np.int64)
    human_point = np.empty((n_regions, n_links, 3))
    robot_point = np.empty((n_regions, n_links, 3))
    for k in range(n_links):
        p2x, p2y, p2z = robot_segments[k, 0, 0], robot_segments[k, 0, 1], robot_segments[k, 0, 2]
        d2x = robot_segments[k, 1, 0] - p2x
        d2y = robot_segments[k, 1, 1] - p2y
        d2z = robot_segments[k, 1, 2] - p2z
        e = (d2x * d2x + d2z * d2z) + d2y * d2y
        second_point = e <= _EPS
        if second_point:
            d2x = d2y = d2z = e = 0.0
        for r in range(n_regions):
            best, best_h, best_s, best_t = np.inf, 0, 0.0, 0.0
            start = region_starts[r]
            for h in range(region_sizes[r]):
                row = start + h
                p1x, p1y, p1z = human_segments[row, 0, 0], human_segments[row, 0, 1], human_segments[row, 0, 2]
                d1x = human_segments[row, 1, 0] - p1x
                d1y = human_segments[row, 1, 1] - p1y
                d1z = human_segments[row, 1, 2] - p1z
                a = (d1x * d1x + d1z * d1z) + d1y * d1y
                if a <= _EPS:
                    d1x = d1y = d1z = a = 0.0
                rx, ry, rz = p1x - p2x, p1y - p2y, p1z - p2z
                b = (d1x * d2x + d1z * d2z) + d1y * d2y
                c = (d1x * rx + d1z * rz) + d1y * ry
                f = (d2x * rx + d2z * rz) + d2y * ry
                general = a * e - b * b
                parallel = general <= _EPS
                if parallel:
                    general = 1.0
                s = _np_min(_np_max((b * f - c * e) / general, 0.0), 1.0)
                if parallel:
                    s = 0.0
                if second_point:
                    t = (b * s + f) / 1.0 - 1.0
                else:
                    t = (b * s + f) / e - 0.0
                clamped = _np_min(_np_max(t, 0.0), 1.0)
                if clamped != t:
                    s = _np_min(_np_max((b * clamped - c) / (1.0 if a <= _EPS else a), 0.0), 1.0)
                gx = (p1x + d1x * s) - (p2x + d2x * clamped)
                gy = (p1y + d1y * s) - (p2y + d2y * clamped)
                gz = (p1z + d1z * s) - (p2z + d2z * clamped)
                surface = (math.sqrt((gx * gx + gy * gy) + gz * gz) - human_radii[row]) - robot_radii[k]
                # np.argmin: the first smallest, a NaN being smallest
                if surface < best or (surface != surface and best == best):
                    best, best_h, best_s, best_t = surface, h, s, clamped
            distance[r, k] = best
            human_index[r, k] = best_h
            row = start + best_h
            for i in range(3):
                ha = human_segments[row, 0, i]
                human_point[r, k, i] = ha + (human_segments[row, 1, i] - ha) * best_s
                ka = robot_segments[k, 0, i]
                robot_point[r, k, i] = ka + (robot_segments[k, 1, i] - ka) * best_t
    return distance, human_index, human_point, robot_point


@_kernel(_F2_OUT(_F4, _F4, _F3, _I1, _F3, _I1))
def directed_speeds(points_xyz: np.ndarray, velocities_xyz: np.ndarray, point_speeds: np.ndarray,
                    window: np.ndarray, human_points: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Largest directed speed of every link towards the human points over a path window, at scale 1.

    As `safety.directed_speed.directed_speeds_mps`: max over the window's samples and the axis
    points of v . (h - x) / |h - x| (the full speed |v| where |h - x| <= 1e-6 m), clamped at 0
    (ISO/TS 15066 clause 5.5.4.2.3, the directed speed v_r).

    Args:
        points_xyz, velocities_xyz: (3, K, S, P) `ActivePath` layouts, metres and m/s.
        point_speeds: (K, S, P) |velocities|, m/s.
        window: (W,) int64 sample indices.
        human_points: (R, K, 3) each region's point closest to each link, metres.
        regions: (M,) int64 the rows of `human_points` to evaluate.

    Returns:
        (M, K) m/s.
    """
    n_links, n_samples, n_axis = points_xyz.shape[1], points_xyz.shape[2], points_xyz.shape[3]
    if points_xyz.shape[0] != 3 or velocities_xyz.shape != points_xyz.shape \
            or point_speeds.shape != points_xyz.shape[1:]:
        raise ValueError("directed_speeds: points_xyz, velocities_xyz (3, K, S, P) and point_speeds "
                         "(K, S, P) do not fit")
    if human_points.shape[1] != n_links or human_points.shape[2] != 3:
        raise ValueError("directed_speeds: human_points must be (R, K, 3) with the path's K")
    for w in range(window.shape[0]):
        if window[w] < 0 or window[w] >= n_samples:
            raise ValueError("directed_speeds: a window sample is outside the path")
    for m in range(regions.shape[0]):
        if regions[m] < 0 or regions[m] >= human_points.shape[0]:
            raise ValueError("directed_speeds: a region is outside human_points")
    out = np.empty((regions.shape[0], n_links))
    for m in range(regions.shape[0]):
        r = regions[m]
        for k in range(n_links):
            hx, hy, hz = human_points[r, k, 0], human_points[r, k, 1], human_points[r, k, 2]
            top = -np.inf
            for w in range(window.shape[0]):
                sample = window[w]
                for p in range(n_axis):
                    dx = hx - points_xyz[0, k, sample, p]
                    dy = hy - points_xyz[1, k, sample, p]
                    dz = hz - points_xyz[2, k, sample, p]
                    squared = (dx * dx + dy * dy) + dz * dz
                    along = (dx * velocities_xyz[0, k, sample, p] + dy * velocities_xyz[1, k, sample, p]) \
                        + dz * velocities_xyz[2, k, sample, p]
                    if squared > 4e-12:         # |h - x| > 1e-6 for certain: the quotient below
                        # exact shortcuts that skip the square root and the division: a negative
                        # quotient is clamped to 0 at the end anyway, and one whose square is
                        # below top^2 by more than rounding cannot raise the maximum
                        if along < 0.0 or (top >= 0.0 and along * along < (top * top) * squared * (1.0 - 1e-9)):
                            continue
                    dist = math.sqrt(squared)
                    if dist > 1e-6:
                        along = along / _np_max(dist, 1e-6)
                    else:
                        along = point_speeds[k, sample, p]
                    # ndarray.max: NaN propagates
                    if along > top or along != along:
                        top = along
            out[m, k] = _np_max(top, 0.0) + 0.0       # + 0.0: a -0.0 maximum reads as 0.0
    return out


#: `zone_capsules` status codes: the capsule is outside, inside, or left to shapely.
ZONE_OUTSIDE, ZONE_INSIDE, ZONE_UNDECIDED = 0, 1, 2


@_kernel(types.Tuple((types.Array(types.int8, 1, "C"), _F3_OUT))(
    _F3, _F1, types.float64, types.float64, _F1, types.boolean, _F2, _F1, _F2, _F2, _F2, types.float64))
def zone_capsules(segments: np.ndarray, radii: np.ndarray, z0: float, z1: float, bounds: np.ndarray,
                  convex: bool, normals: np.ndarray, offsets: np.ndarray, edge_starts: np.ndarray,
                  edge_alongs: np.ndarray, edge_scaled: np.ndarray, margin: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The exact pre-tests of `safety.zones.ZoneSet.capsules_inside` for one prism zone.

    A capsule is inside when it comes within its radius of the prism: its axis is clipped to
    the height range [z0 - r, z1 + r] (the slab test), and the clipped axis [p, q] is compared
    with the footprint in the plane. Decided here, each only where it is farther than `margin`
    from the radius (so rounding cannot change the answer): a capsule with a non-finite value
    is inside (fail-safe); the whole set's bounding box farther from the prism's than the
    largest radius: all outside; outside the slab: outside. A convex footprint (half-planes
    n . x >= c with unit inward normals): an end deeper than `margin` inside every edge is
    inside (distance 0, when r >= 0); both ends beyond one edge's line by more than r: outside;
    an end nearer than r to an edge (as a segment: Ericson 5.1.2, the closest point on a
    segment): inside. A concave footprint: bounding boxes farther apart than r: outside.
    Everything else is left to shapely (`ZONE_UNDECIDED`). Minima and maxima of computed values
    propagate NaN as numpy's do (`_np_min`, `_np_max`), so a NaN from an overflow (coordinates
    near 1e308 m) decides nothing here, as in the numpy pre-tests this replaced.

    Args:
        segments: (N, 2, 3) capsule axes, metres, `cell` frame.
        radii: (N,) metres.
        z0, z1: the prism's bottom and top, metres.
        bounds: (4,) the footprint's (x_min, y_min, x_max, y_max), metres.
        convex: the footprint is convex (the edge arrays below are used).
        normals, offsets: (E, 2) unit inward edge normals, (E,) their offsets, metres.
        edge_starts, edge_alongs, edge_scaled: (E, 2) each edge's start, start-to-end, and
            start-to-end over its squared length (0 for a zero-length edge), metres and 1/m.
        margin: metres (`safety.zones._PRETEST_MARGIN_M`).

    Returns:
        (status (N,) int8 `ZONE_*`, clipped (N, 2, 3) the clipped axes [p, q], metres, valid
        where the status is `ZONE_UNDECIDED`).
    """
    n = segments.shape[0]
    if segments.shape[1] != 2 or segments.shape[2] != 3 or radii.shape[0] != n:
        raise ValueError("zone_capsules: segments must be (N, 2, 3) and radii (N,)")
    n_edges = normals.shape[0]
    if bounds.shape[0] != 4 or normals.shape[1] != 2 or offsets.shape[0] != n_edges \
            or edge_alongs.shape != edge_starts.shape or edge_scaled.shape != edge_starts.shape \
            or edge_starts.shape[1] != 2:
        raise ValueError("zone_capsules: bounds (4,), normals (E, 2), offsets (E,) and the edge "
                         "arrays (E', 2) do not fit")
    status = np.zeros(n, dtype=np.int8)
    clipped = np.zeros((n, 2, 3))
    finite = np.ones(n, dtype=np.bool_)
    all_finite = True
    for i in range(n):
        ok = math.isfinite(radii[i])
        for j in range(2):
            for c in range(3):
                ok = ok and math.isfinite(segments[i, j, c])
        finite[i] = ok
        all_finite = all_finite and ok
    x0, y0, x1, y1 = bounds[0], bounds[1], bounds[2], bounds[3]
    if all_finite and n > 0:
        low = np.full(3, np.inf)
        high = np.full(3, -np.inf)
        r_max = -np.inf
        for i in range(n):
            r_max = max(r_max, radii[i])
            for j in range(2):
                for c in range(3):
                    low[c] = min(low[c], segments[i, j, c])
                    high[c] = max(high[c], segments[i, j, c])
        gap = max(x0 - high[0], low[0] - x1, y0 - high[1], low[1] - y1, z0 - high[2], low[2] - z1)
        if gap > r_max + margin:
            return status, clipped
    for i in range(n):
        if not finite[i]:
            status[i] = ZONE_INSIDE
            continue
        r = radii[i]
        a_z = segments[i, 0, 2]
        lo, hi = z0 - r, z1 + r
        dz = segments[i, 1, 2] - a_z
        if abs(dz) < 1e-12:
            if not (a_z >= lo and a_z <= hi):
                continue
            t_lo, t_hi = 0.0, 1.0
        else:
            t1, t2 = (lo - a_z) / dz, (hi - a_z) / dz
            t_lo, t_hi = _np_max(_np_min(t1, t2), 0.0), _np_min(_np_max(t1, t2), 1.0)
            if not t_lo <= t_hi:
                continue
        for c in range(3):
            a = segments[i, 0, c]
            d = segments[i, 1, c] - a
            clipped[i, 0, c] = a + d * t_lo
            clipped[i, 1, c] = a + d * t_hi
        px, py, qx, qy = clipped[i, 0, 0], clipped[i, 0, 1], clipped[i, 1, 0], clipped[i, 1, 1]
        if not convex:
            gap = _np_max(_np_max(x0 - _np_max(px, qx), _np_min(px, qx) - x1),
                          _np_max(y0 - _np_max(py, qy), _np_min(py, qy) - y1))
            status[i] = ZONE_OUTSIDE if gap > r + margin else ZONE_UNDECIDED
            continue
        depth_p, depth_q, beyond = np.inf, np.inf, False
        for e in range(normals.shape[0]):
            dp = px * normals[e, 0] + py * normals[e, 1] - offsets[e]
            dq = qx * normals[e, 0] + qy * normals[e, 1] - offsets[e]
            depth_p, depth_q = _np_min(depth_p, dp), _np_min(depth_q, dq)
            beyond = beyond or _np_max(dp, dq) < -(r + margin)
        if _np_max(depth_p, depth_q) > margin:
            status[i] = ZONE_INSIDE if r >= 0.0 else ZONE_OUTSIDE
            continue
        if beyond:
            continue
        squared = np.inf
        for x, y in ((px, py), (qx, qy)):
            for e in range(edge_starts.shape[0]):
                ex, ey = x - edge_starts[e, 0], y - edge_starts[e, 1]
                t = _np_min(_np_max(ex * edge_scaled[e, 0] + ey * edge_scaled[e, 1], 0.0), 1.0)
                ex -= t * edge_alongs[e, 0]
                ey -= t * edge_alongs[e, 1]
                squared = _np_min(squared, ex * ex + ey * ey)
        status[i] = ZONE_INSIDE if math.sqrt(squared) < r - margin else ZONE_UNDECIDED
    return status, clipped


@njit(cache=_CACHE, inline="always")
def _protective_separation_m(v_r: float, v_h: float, t_r: float, t_d: float, a: float, c: float, z_d: float,
                             z_r: float) -> float:
    """S_p at robot speed v_r as `safety.ssm.protective_separation_distances_m` computes it:
    v_h (T_r + t_d) + C + Z_d + Z_r + (v_h / a + T_r + t_d) v_r + v_r^2 / (2a), metres."""
    c0 = v_h * (t_r + t_d) + c + z_d + z_r
    return c0 + (v_h / a + t_r + t_d) * v_r + v_r * v_r / (2.0 * a)


@njit(cache=_CACHE, inline="always")
def _first_smaller(value: float, best: float) -> bool:
    """`np.argmin`'s test while scanning: a value replaces the best so far when it is smaller,
    or when it is NaN and the best is not (the first NaN wins)."""
    return value < best or (value != value and best == best)


@_kernel(types.Tuple((types.float64, types.Array(types.int64, 2, "C"), _F2_OUT, types.Array(types.boolean, 2, "C"),
                   types.int64, types.int64, types.boolean))(
    _F2, _F3, _F1, _F1, _F1, _F1, types.UniTuple(types.float64, 9), types.boolean, _F4, _F4, _F3, _F2, _I1,
    types.float64, types.float64, types.float64))
def ssm_links(distance: np.ndarray, human_point: np.ndarray, v_h: np.ndarray, t_r: np.ndarray, z_d: np.ndarray,
              s_p_t_r: np.ndarray, constants: tuple, directed: bool, points_xyz: np.ndarray,
              velocities_xyz: np.ndarray, point_speeds: np.ndarray, path_speeds: np.ndarray, window: np.ndarray,
              k: float, nominal_speed: float, v_robot: float
              ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, int, int, bool]:
    """Speed and separation monitoring over body regions x robot links (ISO/TS 15066 clause
    5.5.4.2.3), the arithmetic of `safety.decision._ssm` after the distance pass, value by value
    in its order (`safety.ssm.max_robot_speeds_mps` and `protective_separation_distances_m`).

    Args:
        distance: (R, K) separations, metres. human_point: (R, K, 3) metres, `cell` frame.
        v_h, t_r, z_d: (R,) each region's v_h m/s, T_r s and Z_d m for the speed limit.
        s_p_t_r: (R,) T_r for S_p at the actual speed (less while a stop is under way), s.
        constants: (separation buffer m, C m, Z_r m, a m/s^2, t_d s, S_p's t_d s, S_p's a m/s^2,
            `safety.directed_speed.DIRECTION_FLOOR_M` m, 0.0 unused) (S_p's t_d is 0 while a
            stop is under way).
        directed: v_r is the directed speed over `window` of the path (`directed_speeds`);
            otherwise `nominal_speed` for the limit and `v_robot` for S_p.
        points_xyz, velocities_xyz, point_speeds: the `ActivePath` layouts (unused unless
            `directed`). path_speeds: (S, K) `ActivePath.speeds`, m/s. window: (W,) samples.
        k: the robot's speed over its path's speed at scale 1 (`safety.decision._path_window`).
        nominal_speed: the robot's largest programmed speed at scale 1, m/s.
        v_robot: the robot's fastest capsule speed now, m/s.

    Returns:
        (allowed scale in [0, 1] (0 for NaN), links (R, 2) each region's candidate links (the
        one at the smallest separation and the one at the smallest separation - S_p, ascending),
        v_actual (R, K) the v_r in S_p m/s, is_directed (R, K), closest and binding candidate
        (flat index into links: the first smallest separation, the first smallest separation -
        S_p), valid: every v_r, v_h, T_r and Z_d of the candidates finite and >= 0 (otherwise the
        caller raises `safety.ssm.protective_separation_distance`'s ValueError)).
    """
    buffer, c, z_r, a, t_d, s_p_t_d, s_p_a, direction_floor = (
        constants[0], constants[1], constants[2], constants[3], constants[4], constants[5], constants[6],
        constants[7])
    n_regions, n_links = distance.shape
    if human_point.shape[0] != n_regions or human_point.shape[1] != n_links or human_point.shape[2] != 3 \
            or v_h.shape[0] != n_regions or t_r.shape[0] != n_regions or z_d.shape[0] != n_regions \
            or s_p_t_r.shape[0] != n_regions:
        raise ValueError("ssm_links: distance (R, K), human_point (R, K, 3) and the (R,) terms do not fit")
    if directed:
        if path_speeds.shape[1] != n_links or points_xyz.shape[1] != n_links:
            raise ValueError("ssm_links: the path has another number of links than distance")
        for w in range(window.shape[0]):
            if window[w] < 0 or window[w] >= path_speeds.shape[0]:
                raise ValueError("ssm_links: a window sample is outside the path")
    v_actual = np.empty((n_regions, n_links))
    is_directed = np.zeros((n_regions, n_links), dtype=np.bool_)
    undirected = np.zeros(n_links)
    dirs = np.zeros((0, n_links))
    if directed:
        for k_link in range(n_links):
            top = -np.inf
            for w in range(window.shape[0]):
                value = path_speeds[window[w], k_link]
                if value > top or value != value:
                    top = value
            undirected[k_link] = top
        dirs = directed_speeds(points_xyz, velocities_xyz, point_speeds, window, human_point,
                               np.arange(n_regions))
    allowed, any_moving = np.inf, False
    links = np.zeros((n_regions, 2), dtype=np.int64)
    valid = True
    closest_at, binding_at = 0, 0
    best_closest, best_binding = np.inf, np.inf
    for r in range(n_regions):
        t_total = t_r[r] + t_d
        ab = a * (t_total + v_h[r] / a)
        nearest, nearest_at, tightest, tightest_at = np.inf, 0, np.inf, 0
        for k_link in range(n_links):
            d = distance[r, k_link]
            d_free = _np_max(d - buffer, 0.0) - c - z_d[r] - z_r - v_h[r] * t_total
            v_max = math.sqrt(ab * ab + 2.0 * a * d_free) - ab if (math.isfinite(d_free) and d_free > 0.0) else 0.0
            if directed:
                is_directed[r, k_link] = d >= direction_floor
                v_nominal = dirs[r, k_link] if is_directed[r, k_link] else undirected[k_link]
                v_actual[r, k_link] = v_nominal * k
            else:
                v_nominal = nominal_speed
                v_actual[r, k_link] = v_robot
            if v_nominal > 1e-9:
                ratio = v_max / v_nominal
                if not any_moving or ratio < allowed or (ratio != ratio and allowed == allowed):
                    allowed = ratio
                any_moving = True
            margin = d - _protective_separation_m(v_actual[r, k_link], v_h[r], s_p_t_r[r], s_p_t_d, s_p_a, c,
                                                  z_d[r], z_r)
            if _first_smaller(d, nearest):
                nearest, nearest_at = d, k_link
            if _first_smaller(margin, tightest):
                tightest, tightest_at = margin, k_link
        links[r, 0], links[r, 1] = min(nearest_at, tightest_at), max(nearest_at, tightest_at)
        valid = valid and math.isfinite(v_h[r]) and v_h[r] >= 0.0 and math.isfinite(s_p_t_r[r]) \
            and s_p_t_r[r] >= 0.0 and math.isfinite(z_d[r]) and z_d[r] >= 0.0
        for j in range(2):
            v_c = v_actual[r, links[r, j]]
            valid = valid and math.isfinite(v_c) and v_c >= 0.0
            # S_p as `ProtectiveSeparationDistance.total_m` sums its terms (its rounding)
            t_s = s_p_t_d + v_c / s_p_a
            s_s = v_c * s_p_t_d + v_c * v_c / (2.0 * s_p_a)
            total = v_h[r] * (s_p_t_r[r] + t_s) + v_c * s_p_t_r[r] + s_s + c + z_d[r] + z_r
            separation = distance[r, links[r, j]]
            if _first_smaller(separation, best_closest):
                best_closest, closest_at = separation, 2 * r + j
            if _first_smaller(separation - total, best_binding):
                best_binding, binding_at = separation - total, 2 * r + j
    if not any_moving:
        allowed = 1.0
    allowed = 0.0 if allowed != allowed else min(1.0, allowed)
    return allowed, links, v_actual, is_directed, closest_at, binding_at, valid


@_kernel(types.Tuple((types.Array(types.float64, 4, "C"), _F2_OUT, types.Array(types.boolean, 2, "C"),
                      types.Array(types.int64, 1, "C")))(_F3, _F2, types.float64, _F2, types.boolean, _I1, _I1,
                                                         _F1, types.float64))
def people_capsules(keypoints: np.ndarray, confidence: np.ndarray, min_confidence: float,
                    extra_radius_m: np.ndarray, has_extra: bool, limb_i: np.ndarray, limb_j: np.ndarray,
                    limb_radii_m: np.ndarray, untracked_reach_m: float
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Body capsules of P people, as `safety.distance.people_capsules` builds them.

    A keypoint is tracked when its three coordinates are finite and its confidence is above
    `min_confidence`. A limb (i, j) with both ends tracked is the capsule [kp_i, kp_j] of its
    radius; with one end tracked, a sphere at that end of its radius + `untracked_reach_m`;
    with none, left out. `extra_radius_m` (when `has_extra`) adds max(e_i, e_j) to the radius
    first.

    Args:
        keypoints: (P, 33, 3) metres, `cell` frame. confidence: (P, 33).
        min_confidence: the tracking threshold.
        extra_radius_m: (P, 33) metres (read when `has_extra`).
        limb_i, limb_j: (L,) the limbs' end keypoints. limb_radii_m: (L,) metres.
        untracked_reach_m: metres.

    Returns:
        (segments (P, L, 2, 3) metres, radii (P, L) metres, keep (P, L), kept (P,) the count
        of kept limbs per person); segments and radii are meaningful where `keep`.
    """
    n_people, n_limbs, n_points = keypoints.shape[0], limb_i.shape[0], keypoints.shape[1]
    if keypoints.shape[2] != 3 or confidence.shape != keypoints.shape[:2] \
            or (has_extra and extra_radius_m.shape != confidence.shape):
        raise ValueError("people_capsules: keypoints (P, N, 3), confidence and extra_radius_m (P, N) "
                         "do not fit")
    if limb_j.shape[0] != n_limbs or limb_radii_m.shape[0] != n_limbs:
        raise ValueError("people_capsules: limb_i, limb_j and limb_radii_m differ in length")
    for limb in range(n_limbs):
        if min(limb_i[limb], limb_j[limb]) < 0 or max(limb_i[limb], limb_j[limb]) >= n_points:
            raise ValueError("people_capsules: a limb's keypoint is outside keypoints")
    segments = np.zeros((n_people, n_limbs, 2, 3))
    radii = np.zeros((n_people, n_limbs))
    keep = np.zeros((n_people, n_limbs), dtype=np.bool_)
    kept = np.zeros(n_people, dtype=np.int64)
    ok = np.zeros(keypoints.shape[1], dtype=np.bool_)
    for person in range(n_people):
        for point in range(keypoints.shape[1]):
            ok[point] = math.isfinite(keypoints[person, point, 0]) and math.isfinite(keypoints[person, point, 1]) \
                and math.isfinite(keypoints[person, point, 2]) and confidence[person, point] > min_confidence
        for limb in range(n_limbs):
            i, j = limb_i[limb], limb_j[limb]
            if not (ok[i] or ok[j]):
                continue
            keep[person, limb] = True
            kept[person] += 1
            radius = limb_radii_m[limb]
            if has_extra:
                e_i, e_j = extra_radius_m[person, i], extra_radius_m[person, j]
                radius = radius + (e_j if e_j > e_i else e_i)      # max(e_i, e_j) as Python's max
            if not (ok[i] and ok[j]):
                radius = radius + untracked_reach_m
            radii[person, limb] = radius
            first, second = (i if ok[i] else j), (j if ok[j] else i)
            for c in range(3):
                segments[person, limb, 0, c] = keypoints[person, first, c]
                segments[person, limb, 1, c] = keypoints[person, second, c]
    return segments, radii, keep, kept


@_kernel(types.Array(types.boolean, 1, "C")(_F3, _F2, _F2))
def tracks_finite(keypoints: np.ndarray, confidence: np.ndarray, velocity: np.ndarray) -> np.ndarray:
    """Per person, whether every keypoint it uses (confidence > 0) and its velocity are finite
    (the plausibility check of `safety.decision.input_faults`).

    Args:
        keypoints: (P, 33, 3) metres, `cell` frame. confidence: (P, 33). velocity: (P, 3) m/s.

    Returns:
        (P,) bool.
    """
    if keypoints.shape[2] != 3 or confidence.shape != keypoints.shape[:2] \
            or velocity.shape[0] != keypoints.shape[0] or velocity.shape[1] != 3:
        raise ValueError("tracks_finite: keypoints (P, N, 3), confidence (P, N) and velocity (P, 3) "
                         "do not fit")
    out = np.ones(keypoints.shape[0], dtype=np.bool_)
    for person in range(keypoints.shape[0]):
        ok = True
        for c in range(3):
            ok = ok and math.isfinite(velocity[person, c])
        for point in range(keypoints.shape[1]):
            if confidence[person, point] > 0.0:
                for c in range(3):
                    ok = ok and math.isfinite(keypoints[person, point, c])
        out[person] = ok
    return out


@_kernel(types.int64(_F2, _F1, types.float64))
def path_progress(positions: np.ndarray, position: np.ndarray, tolerance_rad: float) -> int:
    """The swept sample nearest to a joint position, as `safety.directed_speed.ActivePath.progress`.

    Args:
        positions: (S, n) joint positions of the swept samples, radians.
        position: (n,) radians.
        tolerance_rad: the largest joint difference that still counts as on the path.

    Returns:
        The first sample with the smallest largest joint difference |positions[s] - position|,
        or -1 when `position` is not finite or that difference exceeds `tolerance_rad`.
    """
    if positions.shape[1] != position.shape[0]:
        raise ValueError("path_progress: position must be (n,) with the path's n joints")
    for j in range(position.shape[0]):
        if not math.isfinite(position[j]):
            return -1
    best, best_at = np.inf, 0
    for s in range(positions.shape[0]):
        gap = -np.inf
        for j in range(position.shape[0]):
            d = abs(positions[s, j] - position[j])
            if d > gap or d != d:                    # ndarray.max: NaN propagates
                gap = d
        if _first_smaller(gap, best):
            best, best_at = gap, s
    return best_at if best <= tolerance_rad else -1
