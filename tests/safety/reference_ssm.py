"""Frozen reference: the monitor's SSM decision as it was before the vectorised cycle (commit
8b13988), kept only for `test_decision_equivalence.py`. Do not use it outside the tests.

Copied verbatim: `segment_closest_points` (with its `_EPS`), `human_capsules`,
`closest_pairs_per_link` (with its `LinkPairs`), `directed_speeds_mps`, `max_robot_speeds_mps`,
`protective_separation_distances_m`, `body_capsules`, `_body_regions`, `_path_window`, `_ssm`, and
`ZoneSet.capsules_inside` as the function `capsules_inside(self, index, segments, radii)` (patched
onto `ZoneSet` by the test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely

from content.cell import SafetyParameters
from robot_bridge.types import RobotState
from safety.decision import _ARM_MASK, MAX_PATH_SPEED_RATIO, STANDSTILL_MPS, ClosestPair, person_terms
from safety.directed_speed import DIRECTION_FLOOR_M, ActivePath
from safety.distance import ARM_CAPSULE_NAMES, LIMB_RADII_M, UNTRACKED_REACH_M
from safety.perception.types import POSE_LANDMARKS, POSE_LIMBS, PerceptionSnapshot
from safety.ssm import StoppingModel, protective_separation_distance


_EPS = 1e-12


def segment_closest_points(
    p1: np.ndarray, q1: np.ndarray, p2: np.ndarray, q2: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Closest points between segments [p1, q1] and [p2, q2], broadcast over leading axes.

    Args:
        p1, q1: (..., 3) end points of the first segments.
        p2, q2: (..., 3) end points of the second segments.

    Returns:
        (c1, c2): (..., 3) closest points on the first and on the second segments.
    """
    d1 = q1 - p1
    d2 = q2 - p2
    r = p1 - p2
    a = np.einsum("...i,...i->...", d1, d1)
    e = np.einsum("...i,...i->...", d2, d2)
    f = np.einsum("...i,...i->...", d2, r)
    c = np.einsum("...i,...i->...", d1, r)
    b = np.einsum("...i,...i->...", d1, d2)
    denom = a * e - b * b
    a_safe = np.where(a > _EPS, a, 1.0)
    e_safe = np.where(e > _EPS, e, 1.0)
    # s on the first segment; parallel or degenerate segments start from s = 0.
    s = np.where(denom > _EPS, np.clip((b * f - c * e) / np.where(denom > _EPS, denom, 1.0), 0.0, 1.0), 0.0)
    t = (b * s + f) / e_safe
    # Clamp t and recompute s where t left [0, 1].
    t_lo = t < 0.0
    t_hi = t > 1.0
    s = np.where(t_lo, np.clip(-c / a_safe, 0.0, 1.0), s)
    s = np.where(t_hi, np.clip((b - c) / a_safe, 0.0, 1.0), s)
    t = np.clip(t, 0.0, 1.0)
    # Degenerate cases: a point (a ~ 0) and/or a point (e ~ 0).
    first_point = a <= _EPS
    second_point = e <= _EPS
    s = np.where(first_point, 0.0, s)
    t = np.where(first_point & ~second_point, np.clip(f / e_safe, 0.0, 1.0), t)
    s = np.where(second_point & ~first_point, np.clip(-c / a_safe, 0.0, 1.0), s)
    t = np.where(second_point, 0.0, t)
    c1 = p1 + d1 * s[..., None]
    c2 = p2 + d2 * t[..., None]
    return c1, c2


@dataclass(frozen=True)
class LinkPairs:
    """Per robot link, the closest capsule of one person (or body region).

    Attributes:
        distance_m: (K,) surface distance to each link, metres (negative: overlap).
        human_index: (K,) index into the person's capsule list of the closest capsule.
        human_point: (K, 3) closest point on that capsule's axis, metres, `cell` frame.
        robot_point: (K, 3) closest point on the link's axis, metres, `cell` frame.
    """

    distance_m: np.ndarray
    human_index: np.ndarray
    human_point: np.ndarray
    robot_point: np.ndarray


def human_capsules(keypoints: np.ndarray, confidence: np.ndarray, *, min_confidence: float = 0.0,
                   extra_radius_m: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Body capsules of one person from its 33 keypoints.

    A limb with both ends tracked is a capsule of `LIMB_RADII_M`; a limb with one
    end tracked becomes a sphere at that end grown by `UNTRACKED_REACH_M`, so
    the untracked part is covered; a limb with neither end tracked is left to
    the limbs next to it.

    Args:
        keypoints: (33, 3) float64, metres, `cell` frame; NaN where untracked.
        confidence: (33,) float64 in [0, 1].
        min_confidence: keypoints at or below it count as untracked. The default counts every
            triangulated keypoint (finite, confidence > 0) as tracked: a low-confidence position
            is still a measurement, and treating it as missing would make the body grow by
            `UNTRACKED_REACH_M` whenever a foot's visibility flickers.
        extra_radius_m: (33,) metres added to the radius of every capsule touching that
            keypoint (older data: the distance the person may have moved since), or None.

    Returns:
        (segments (H, 2, 3), radii (H,), names (H,)), names like "left_elbow-left_wrist".
    """
    ok = np.isfinite(keypoints).all(axis=1) & (confidence > min_confidence)
    segs, radii, names = [], [], []
    for (i, j), radius in zip(POSE_LIMBS, LIMB_RADII_M):
        name = f"{POSE_LANDMARKS[i]}-{POSE_LANDMARKS[j]}"
        if extra_radius_m is not None:
            radius = radius + max(extra_radius_m[i], extra_radius_m[j])
        if ok[i] and ok[j]:
            segs.append((keypoints[i], keypoints[j]))
            radii.append(radius)
        elif ok[i] or ok[j]:
            k = i if ok[i] else j
            segs.append((keypoints[k], keypoints[k]))
            radii.append(radius + UNTRACKED_REACH_M)
        else:
            continue
        names.append(name)
    if not segs:
        return np.empty((0, 2, 3)), np.empty((0,)), ()
    return np.asarray(segs, dtype=np.float64), np.asarray(radii, dtype=np.float64), tuple(names)


def closest_pairs_per_link(
    capsules: list[tuple[np.ndarray, np.ndarray, tuple[str, ...]]],
    robot_segments: np.ndarray, robot_radii: np.ndarray,
) -> list[LinkPairs | None]:
    """For each person (or body region), the closest of its capsules to every robot link, in one
    vectorised pass (`closest_capsule_pairs` is its minimum over the links).

    Args:
        capsules: per person, (segments (H, 2, 3), radii (H,), names) from `human_capsules`.
        robot_segments: (K, 2, 3) metres, `cell` frame.
        robot_radii: (K,) metres.

    Returns:
        One `LinkPairs` per person, None for a person without capsules or when the robot has none.
    """
    sizes = [len(c[1]) for c in capsules]
    k_links = robot_segments.shape[0]
    if sum(sizes) == 0 or k_links == 0:
        return [None] * len(capsules)
    hs = np.concatenate([c[0] for c in capsules if len(c[1])])
    hr = np.concatenate([c[1] for c in capsules if len(c[1])])
    c1, c2 = segment_closest_points(hs[:, None, 0, :], hs[:, None, 1, :],
                                    robot_segments[None, :, 0, :], robot_segments[None, :, 1, :])
    surface = np.linalg.norm(c1 - c2, axis=-1) - hr[:, None] - robot_radii[None, :]
    links = np.arange(k_links)
    out: list[LinkPairs | None] = []
    start = 0
    for n in sizes:
        if n == 0:
            out.append(None)
            continue
        block = surface[start:start + n]
        h = np.argmin(block, axis=0)                                   # (K,)
        out.append(LinkPairs(block[h, links], h, c1[start + h, links], c2[start + h, links]))
        start += n
    return out


def directed_speeds_mps(path: ActivePath, window: np.ndarray, human_points: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Largest directed and undirected speed of every link over a window, at scale 1.

    Args:
        path: the active path.
        window: (W,) sample indices (`ActivePath.window`).
        human_points: (R, K, 3) for each body region r, the human point closest to link k,
            metres, `cell` frame.

    Returns:
        (directed (R, K), undirected (K,)), m/s: directed is max over the window and the axis
        points of v . (h - x) / |h - x|, clamped at 0 (the full speed |v| where h and x
        coincide); undirected is the largest axis-point speed of each link over the window.
    """
    x = path.points[window]                                     # (W, K, P, 3)
    v = path.velocities[window]                                 # (W, K, P, 3)
    h = np.asarray(human_points, dtype=np.float64)[:, None, :, None, :]   # (R, 1, K, 1, 3)
    to_h = h - x[None]                                          # (R, W, K, P, 3)
    dist = np.linalg.norm(to_h, axis=-1)
    along = np.einsum("rwkpi,wkpi->rwkp", to_h, v)
    speed = np.linalg.norm(v, axis=-1)[None]
    directed = np.where(dist > 1e-6, along / np.maximum(dist, 1e-6), speed)
    return np.maximum(directed.max(axis=(1, 3)), 0.0), path.speeds[window].max(axis=0)


def max_robot_speeds_mps(
    separations_m: np.ndarray, *, v_h_mps: float, reaction_time_s: float, stopping: StoppingModel,
    intrusion_distance_m: float, z_d_m: float, z_r_m: float,
) -> np.ndarray:
    """`max_robot_speed_mps` for many separations at once (the monitor's per-link check).

    Args:
        separations_m: (N,) measured separations d, metres (a non-finite one gives 0).
        (others as in `protective_separation_distance`)

    Returns:
        (N,) v_max, m/s, >= 0: the same closed form as `max_robot_speed_mps`.
    """
    d = np.asarray(separations_m, dtype=np.float64)
    a = stopping.deceleration_mps2
    t_total = reaction_time_s + stopping.latency_s
    ab = a * (t_total + v_h_mps / a)
    d_free = d - intrusion_distance_m - z_d_m - z_r_m - v_h_mps * t_total
    ok = np.isfinite(d_free) & (d_free > 0.0)
    return np.where(ok, np.sqrt(ab * ab + 2.0 * a * np.where(ok, d_free, 0.0)) - ab, 0.0)


def protective_separation_distances_m(
    v_r_mps: np.ndarray, *, v_h_mps: float, reaction_time_s: float, stopping: StoppingModel,
    intrusion_distance_m: float, z_d_m: float, z_r_m: float,
) -> np.ndarray:
    """S_p (`ProtectiveSeparationDistance.total_m`) for many robot speeds at once, metres.

    S_p(v) = v_h (T_r + t_d) + C + Z_d + Z_r + (v_h / a + T_r + t_d) v + v^2 / (2a), the
    expansion of formula (1) with the stopping model of this module.

    Args:
        v_r_mps: (N,) robot speeds v_r >= 0, m/s.
        (others as in `protective_separation_distance`)
    """
    v = np.asarray(v_r_mps, dtype=np.float64)
    a, t_d = stopping.deceleration_mps2, stopping.latency_s
    c0 = v_h_mps * (reaction_time_s + t_d) + intrusion_distance_m + z_d_m + z_r_m
    return c0 + (v_h_mps / a + reaction_time_s + t_d) * v + v * v / (2.0 * a)


def body_capsules(perception: PerceptionSnapshot, params: SafetyParameters) -> list:
    """Body capsules of every track, in track order (`safety.distance.human_capsules`: per person
    (segments (H, 2, 3) metres `cell` frame, radii (H,) metres, names)); keypoints older than the
    track's frames are grown by v_h times their extra age (the distance the person may have moved
    since; the hand/arm speed for the keypoints of the upper limbs)."""
    out = []
    for track in perception.tracks:
        extra = None
        if track.keypoint_capture_ns is not None:
            measured = float(np.linalg.norm(track.velocity_mps))
            v_h = np.where(_ARM_MASK, max(params.hand_arm_speed_mps, measured), max(params.human_speed_mps, measured))
            extra = v_h * np.maximum(track.capture_ns - track.keypoint_capture_ns, 0) / 1e9
        out.append(human_capsules(track.keypoints_cell, track.confidence, extra_radius_m=extra))
    return out


def _body_regions(perception: PerceptionSnapshot, capsules: list, params: SafetyParameters) -> list:
    """Each person's capsules split into hands/arms and the rest, each with its v_h floor:
    [(track, v_h floor m/s, (segments, radii, names))] (ISO 13855 clause 6.2.3)."""
    out = []
    for track, (segs, radii, names) in zip(perception.tracks, capsules):
        arm = np.fromiter((n in ARM_CAPSULE_NAMES for n in names), dtype=bool, count=len(names))
        for mask, floor in ((arm, params.hand_arm_speed_mps), (~arm, params.human_speed_mps)):
            if mask.any():
                out.append((track, floor, (segs[mask], radii[mask], tuple(n for n, m in zip(names, mask) if m))))
    return out


def _path_window(robot: RobotState, path: ActivePath | None, horizon_s: float, command_scale: float,
                 n_links: int) -> tuple[np.ndarray, float] | None:
    """The window of the active path the robot can cover within `horizon_s`, and the factor k
    that turns the path's speeds at scale 1 into the robot's now (its measured speed over its
    path's speed at scale 1 there: below the speed scale while it accelerates, above it while it
    still slows down to a lowered scale). None when the path does not explain the robot's motion:
    no path, another goal, the robot off the path, a path of another robot model, or a robot
    moving much faster than its path (the caller then uses the undirected speed)."""
    if path is None or robot.goal_id != path.goal_id or path.link_segments.shape[1] != n_links:
        return None
    here = path.progress(robot.position)
    if here is None:
        return None
    moving = robot.max_speed_mps
    path_speed = float(path.speeds[max(here - 1, 0):here + 2].max())
    if moving > STANDSTILL_MPS and (path_speed <= 1e-6 or moving / path_speed > MAX_PATH_SPEED_RATIO):
        return None
    k = moving / path_speed if path_speed > 1e-6 else 0.0
    if not math.isfinite(k):
        return None
    # the robot covers path time at most at max(scale, k) per second: the window in path time
    return path.window(here, horizon_s * max(1.0, k, command_scale, robot.speed_scale)), k


def _ssm(now_ns: int, robot: RobotState, regions: list,
         params: SafetyParameters, stopping: StoppingModel, nominal_speed_mps: float, stop_commanded_ns: int,
         path: ActivePath | None = None, command_scale: float = 0.0):
    """Separation, S_p and the allowed scale over all body regions (`_body_regions`) and links.

    Every person counts twice: the hands and arms approach at `hand_arm_speed_mps`, the rest
    of the body at `human_speed_mps` (ISO 13855 clause 6.2.3), each never below the tracked
    speed. Every robot link counts on its own with its own v_r, the directed speed of the link
    towards the body region's closest point (ISO/TS 15066 clause 5.5.4.2.3, `safety.directed_speed`):
    over the window of the active `path` the robot can cover within T_r + T_s, at scale 1 for
    the allowed scale (v_max(d) / v_r), and times the ratio of the robot's measured speed to its
    path's speed there for S_p at its actual speed (the rule the robot must keep now). Without
    a path that explains the robot's motion, v_r is undirected: `nominal_speed_mps` for the
    allowed scale and the robot's fastest capsule speed for S_p; for a link closer than
    `DIRECTION_FLOOR_M` it is the link's fastest speed over the window (times the same ratio).

    Returns (closest, binding, allowed scale, v_r): `closest` is the entry with the smallest
    separation (what the twin and the report show), `binding` the one with the smallest
    separation - S_p (what the rule at the robot's actual speed tests); each entry is
    (separation m, ClosestPair, S_p terms, v_h m/s, T_r s), or None without people; v_r is
    the robot's fastest capsule speed (whether it moves at all).

    While a stop commanded `stop_commanded_ns` is under way, S_p (not the allowed speed)
    counts only what is left of the reaction and braking latency: the part of T_r and
    t_d that has already passed since the stop was commanded is behind the robot
    (ISO/TS 15066 clause 5.5.4.2.3: T_r and T_s run from the detection to standstill).
    """
    v_robot = robot.max_speed_mps
    elapsed_s = (now_ns - stop_commanded_ns) / 1e9 if stop_commanded_ns else 0.0
    remaining_s = max(0.0, params.reaction_time_s + stopping.latency_s - elapsed_s)
    braking = StoppingModel(0.0, stopping.deceleration_mps2)
    closest_entry = binding = None
    allowed_scale = math.inf
    n_links = robot.link_segments.shape[0]
    live = [(region, lp) for region, lp in zip(
        regions, closest_pairs_per_link([r[2] for r in regions], robot.link_segments, robot.link_radii_m))
        if lp is not None]
    terms = [person_terms(track, now_ns, params, floor) for (track, floor, _), _ in live]
    directed = None
    if live and path is not None:
        horizon_s = max(t for _, t, _ in terms) + stopping.stopping_time_s(max(nominal_speed_mps, v_robot))
        found = _path_window(robot, path, horizon_s, command_scale, n_links)
        if found is not None:
            window, k = found
            dirs, undirected = directed_speeds_mps(path, window, np.stack([lp.human_point for _, lp in live]))
            if np.isfinite(dirs).all() and np.isfinite(undirected).all():
                directed = (dirs, undirected, k)
    for i, ((track, floor, (_, _, names)), lp) in enumerate(live):
        v_h, t_r, z_d = terms[i]
        if directed is None:
            v_nominal = np.full(n_links, nominal_speed_mps)
            v_actual = np.full(n_links, v_robot)
            is_directed = np.zeros(n_links, dtype=bool)
        else:
            dirs, undirected, k = directed
            is_directed = lp.distance_m >= DIRECTION_FLOOR_M
            v_nominal = np.where(is_directed, dirs[i], undirected)
            v_actual = v_nominal * k
        common = dict(v_h_mps=v_h, reaction_time_s=t_r, stopping=stopping,
                      intrusion_distance_m=params.intrusion_distance_m, z_d_m=z_d,
                      z_r_m=params.robot_uncertainty_m)
        v_max = max_robot_speeds_mps(np.maximum(lp.distance_m - params.separation_buffer_m, 0.0), **common)
        moving = v_nominal > 1e-9
        if moving.any():
            allowed_scale = min(allowed_scale, float((v_max[moving] / v_nominal[moving]).min()))
        if stop_commanded_ns:
            common = {**common, "stopping": braking, "reaction_time_s": t_r - params.reaction_time_s + remaining_s}
        s_p_m = protective_separation_distances_m(v_actual, **common)
        for k_link in sorted({int(np.argmin(lp.distance_m)), int(np.argmin(lp.distance_m - s_p_m))}):
            v_r = float(v_actual[k_link])
            s_p = protective_separation_distance(v_r_mps=v_r, **common)
            distance = float(lp.distance_m[k_link])
            pair_info = ClosestPair(track.track_id, names[int(lp.human_index[k_link])], robot.link_names[k_link],
                                    distance, lp.human_point[k_link].copy(), lp.robot_point[k_link].copy(),
                                    v_r, bool(is_directed[k_link]))
            entry = (distance, pair_info, s_p, v_h, t_r)
            if closest_entry is None or distance < closest_entry[0]:
                closest_entry = entry
            if binding is None or distance - s_p.total_m < binding[0] - binding[2].total_m:
                binding = entry
    allowed_scale = min(1.0, allowed_scale)
    return closest_entry, binding, allowed_scale, v_robot


def capsules_inside(self, index: int, segments: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Which capsules are inside zone `index` (see the module docstring for the test).

    Args:
        index: zone index in `zones`.
        segments: (N, 2, 3) capsule axes, metres, `cell` frame.
        radii: (N,) capsule radii, metres.

    Returns:
        (N,) bool. Capsules with non-finite coordinates count as inside (fail-safe).
    """
    segs = np.asarray(segments, dtype=np.float64)
    r = np.asarray(radii, dtype=np.float64)
    n = segs.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    finite = np.isfinite(segs).all(axis=(1, 2)) & np.isfinite(r)
    a, b = segs[:, 0], segs[:, 1]
    lo = self._z[index, 0] - r
    hi = self._z[index, 1] + r
    dz = b[:, 2] - a[:, 2]
    flat = np.abs(dz) < 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(flat, 0.0, (lo - a[:, 2]) / np.where(flat, 1.0, dz))
        t2 = np.where(flat, 1.0, (hi - a[:, 2]) / np.where(flat, 1.0, dz))
    t_lo = np.maximum(np.minimum(t1, t2), 0.0)
    t_hi = np.minimum(np.maximum(t1, t2), 1.0)
    in_slab = np.where(flat, (a[:, 2] >= lo) & (a[:, 2] <= hi), t_lo <= t_hi) & finite
    inside = ~finite
    if in_slab.any():
        idx = np.flatnonzero(in_slab)
        d = b[idx] - a[idx]
        p = a[idx] + d * t_lo[idx, None]
        q = a[idx] + d * t_hi[idx, None]
        point = np.linalg.norm(q[:, :2] - p[:, :2], axis=1) < 1e-9
        geoms = np.empty(len(idx), dtype=object)
        if point.any():
            geoms[point] = shapely.points(p[point, :2])
        if (~point).any():
            geoms[~point] = shapely.linestrings(np.stack([p[~point, :2], q[~point, :2]], axis=1))
        dist = shapely.distance(self._polygons[index], geoms)
        inside[idx] = ~(dist > r[idx])  # NaN counts as inside (fail-safe)
    return inside
