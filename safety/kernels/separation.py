"""Compiled kernels of speed and separation monitoring (ISO/TS 15066 clause 5.5.4.2.3): the
closest capsule pairs per body region and robot link (`closest_pairs_per_link`), the links'
directed speeds over the active path (`directed_speeds`), the speed limit and S_p over regions
x links (`ssm_links`), both passes in one call (`ssm_regions`, what the monitor cycle runs),
and the robot's progress along its path (`path_progress`). See `safety.kernels` for how they
compile and why their results are the numpy ones bit for bit.

All coordinates metres in the `cell` frame; speeds m/s.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from safety.kernels._compile import (_B2_OUT, _BOOL, _CACHE, _F1, _F2, _F2_OUT, _F3, _F3_OUT, _F4,
                                     _F8, _I1, _I2_OUT, _I8, _kernel)

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
def closest_pairs_per_link(human_segments: np.ndarray, human_radii: np.ndarray,
                           region_starts: np.ndarray, region_sizes: np.ndarray,
                           robot_segments: np.ndarray, robot_radii: np.ndarray
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
    if human_segments.shape[1] != 2 or human_segments.shape[2] != 3 \
            or human_radii.shape[0] != n_rows:
        raise ValueError("closest_pairs_per_link: human_segments must be (H, 2, 3) and "
                         "human_radii (H,)")
    if robot_segments.shape[1] != 2 or robot_segments.shape[2] != 3 \
            or robot_radii.shape[0] != n_links:
        raise ValueError("closest_pairs_per_link: robot_segments must be (K, 2, 3) and "
                         "robot_radii (K,)")
    if region_sizes.shape[0] != n_regions:
        raise ValueError("closest_pairs_per_link: region_starts and region_sizes differ in length")
    for r in range(n_regions):
        if region_starts[r] < 0 or region_sizes[r] < 1 \
                or region_starts[r] > n_rows - region_sizes[r]:
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
                p1x, p1y, p1z = (human_segments[row, 0, 0], human_segments[row, 0, 1],
                                 human_segments[row, 0, 2])
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
                surface = (math.sqrt((gx * gx + gy * gy) + gz * gz) - human_radii[row]) \
                    - robot_radii[k]
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
                    window: np.ndarray, human_points: np.ndarray, regions: np.ndarray
                    ) -> np.ndarray:
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
        raise ValueError("directed_speeds: points_xyz, velocities_xyz (3, K, S, P) and "
                         "point_speeds (K, S, P) do not fit")
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
                    along = (dx * velocities_xyz[0, k, sample, p]
                             + dy * velocities_xyz[1, k, sample, p]) \
                        + dz * velocities_xyz[2, k, sample, p]
                    if squared > 4e-12:         # |h - x| > 1e-6 for certain: the quotient below
                        # exact shortcuts that skip the square root and the division: a negative
                        # quotient is clamped to 0 at the end anyway, and one whose square is
                        # below top^2 by more than rounding cannot raise the maximum
                        if along < 0.0 or (top >= 0.0 and along * along
                                           < (top * top) * squared * (1.0 - 1e-9)):
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



@njit(cache=_CACHE, inline="always")
def _protective_separation_m(v_r: float, v_h: float, t_r: float, t_d: float, a: float, c: float,
                             z_d: float, z_r: float) -> float:
    """S_p at robot speed v_r as `safety.ssm.protective_separation_distances_m` computes it:
    v_h (T_r + t_d) + C + Z_d + Z_r + (v_h / a + T_r + t_d) v_r + v_r^2 / (2a), metres."""
    c0 = v_h * (t_r + t_d) + c + z_d + z_r
    return c0 + (v_h / a + t_r + t_d) * v_r + v_r * v_r / (2.0 * a)


@njit(cache=_CACHE, inline="always")
def _first_smaller(value: float, best: float) -> bool:
    """`np.argmin`'s test while scanning: a value replaces the best so far when it is smaller,
    or when it is NaN and the best is not (the first NaN wins)."""
    return value < best or (value != value and best == best)



@_kernel(types.Tuple((_F8, _I2_OUT, _F2_OUT, _B2_OUT, _I8, _I8, _BOOL))(
    _F2, _F3, _F1, _F1, _F1, _F1, types.UniTuple(_F8, 9), _BOOL, _F4, _F4, _F3, _F2, _I1,
    _F8, _F8, _F8))
def ssm_links(distance: np.ndarray, human_point: np.ndarray, v_h: np.ndarray, t_r: np.ndarray,
              z_d: np.ndarray, s_p_t_r: np.ndarray, constants: tuple, directed: bool,
              points_xyz: np.ndarray, velocities_xyz: np.ndarray, point_speeds: np.ndarray,
              path_speeds: np.ndarray, window: np.ndarray, k: float, nominal_speed: float,
              v_robot: float
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
        constants[0], constants[1], constants[2], constants[3], constants[4], constants[5],
        constants[6], constants[7])
    n_regions, n_links = distance.shape
    if human_point.shape[0] != n_regions or human_point.shape[1] != n_links \
            or human_point.shape[2] != 3 or v_h.shape[0] != n_regions \
            or t_r.shape[0] != n_regions or z_d.shape[0] != n_regions \
            or s_p_t_r.shape[0] != n_regions:
        raise ValueError("ssm_links: distance (R, K), human_point (R, K, 3) and the (R,) terms "
                         "do not fit")
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
            v_max = math.sqrt(ab * ab + 2.0 * a * d_free) - ab \
                if (math.isfinite(d_free) and d_free > 0.0) else 0.0
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
            margin = d - _protective_separation_m(v_actual[r, k_link], v_h[r], s_p_t_r[r], s_p_t_d,
                                                  s_p_a, c, z_d[r], z_r)
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


@_kernel(types.Tuple((_F8, _I2_OUT, _F2_OUT, _B2_OUT, _I8, _I8, _BOOL, _F2_OUT, _I2_OUT, _F3_OUT,
                      _F3_OUT))(
    _F3, _F1, _I1, _I1, _F3, _F1, _F1, _F1, _F1, _F1, types.UniTuple(_F8, 9), _BOOL,
    _F4, _F4, _F3, _F2, _I1, _F8, _F8, _F8))
def ssm_regions(human_segments: np.ndarray, human_radii: np.ndarray, region_starts: np.ndarray,
                region_sizes: np.ndarray, robot_segments: np.ndarray, robot_radii: np.ndarray,
                v_h: np.ndarray, t_r: np.ndarray, z_d: np.ndarray, s_p_t_r: np.ndarray,
                constants: tuple, directed: bool, points_xyz: np.ndarray,
                velocities_xyz: np.ndarray, point_speeds: np.ndarray, path_speeds: np.ndarray,
                window: np.ndarray, k: float, nominal_speed: float, v_robot: float) -> tuple:
    """One monitor cycle's separation and SSM over body regions x robot links, in one call:
    `closest_pairs_per_link`, then `ssm_links` on its distances and human points (one dispatch
    from Python instead of two, and no arrays handed back and forth in between).

    A directed call falls back to the undirected speeds when a human point is not finite: the
    path is finite (`safety.directed_speed.ActivePath.from_sweep`), so the directed speeds are
    finite exactly when the human points are.

    Args:
        human_segments, human_radii, region_starts, region_sizes, robot_segments, robot_radii:
            as `closest_pairs_per_link`.
        v_h, t_r, z_d, s_p_t_r, constants, directed, points_xyz, velocities_xyz, point_speeds,
            path_speeds, window, k, nominal_speed, v_robot: as `ssm_links`.

    Returns:
        `ssm_links`' 7 results (allowed scale, links, v_actual, is_directed, closest, binding,
        valid), then `closest_pairs_per_link`'s 4 (distance (R, K) metres, human_index (R, K),
        human_point (R, K, 3), robot_point (R, K, 3) metres).
    """
    distance, human_index, human_point, robot_point = closest_pairs_per_link(
        human_segments, human_radii, region_starts, region_sizes, robot_segments, robot_radii)
    if directed:
        for value in human_point.ravel():
            if not math.isfinite(value):
                directed = False
                break
    allowed, links, v_actual, is_directed, closest_at, binding_at, valid = ssm_links(
        distance, human_point, v_h, t_r, z_d, s_p_t_r, constants, directed, points_xyz,
        velocities_xyz, point_speeds, path_speeds, window, k, nominal_speed, v_robot)
    return (allowed, links, v_actual, is_directed, closest_at, binding_at, valid, distance,
            human_index, human_point, robot_point)
