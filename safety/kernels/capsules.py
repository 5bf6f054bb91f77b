"""Compiled kernels of the people's capsules: building them from the tracked keypoints
(`people_capsules`), the plausibility check of the tracks (`tracks_finite`), and the exact
pre-tests of capsules against a prism zone (`zone_capsules`). See `safety.kernels` for how they
compile and why their results are the numpy ones bit for bit.

All coordinates metres in the `cell` frame.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types

from safety.kernels._compile import (_B1_OUT, _B2_OUT, _BOOL, _CACHE, _F1, _F2, _F2_OUT, _F3,
                                     _F3_OUT, _F4_OUT, _F8, _I1, _I1_OUT, _STATUS_OUT, _kernel)


@njit(cache=_CACHE, inline="always")
def _np_max(x: float, y: float) -> float:
    """`np.maximum(x, y)` for two floats: x when x >= y or x is NaN, else y."""
    return x if (x >= y or x != x) else y


@njit(cache=_CACHE, inline="always")
def _np_min(x: float, y: float) -> float:
    """`np.minimum(x, y)` for two floats: x when x <= y or x is NaN, else y."""
    return x if (x <= y or x != x) else y



#: `zone_capsules` status codes: the capsule is outside, inside, or left to shapely.
ZONE_OUTSIDE, ZONE_INSIDE, ZONE_UNDECIDED = 0, 1, 2


@_kernel(types.Tuple((_STATUS_OUT, _F3_OUT))(
    _F3, _F1, _F8, _F8, _F1, _BOOL, _F2, _F1, _F2, _F2, _F2, _F8))
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



@_kernel(types.Tuple((_F4_OUT, _F2_OUT, _B2_OUT, _I1_OUT))(
    _F3, _F2, _F8, _F2, _BOOL, _I1, _I1, _F1, _F8))
def people_capsules(keypoints: np.ndarray, confidence: np.ndarray, min_confidence: float,
                    extra_radius_m: np.ndarray, has_extra: bool, limb_i: np.ndarray,
                    limb_j: np.ndarray, limb_radii_m: np.ndarray, untracked_reach_m: float
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
        raise ValueError("people_capsules: keypoints (P, N, 3), confidence and extra_radius_m "
                         "(P, N) do not fit")
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
            ok[point] = math.isfinite(keypoints[person, point, 0]) \
                and math.isfinite(keypoints[person, point, 1]) \
                and math.isfinite(keypoints[person, point, 2]) \
                and confidence[person, point] > min_confidence
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



@_kernel(_B1_OUT(_F3, _F2, _F2))
def tracks_finite(keypoints: np.ndarray, confidence: np.ndarray, velocity: np.ndarray
                  ) -> np.ndarray:
    """Per person, whether every keypoint it uses (confidence > 0) and its velocity are finite
    (the plausibility check of `safety.decision.input_faults`).

    Args:
        keypoints: (P, 33, 3) metres, `cell` frame. confidence: (P, 33). velocity: (P, 3) m/s.

    Returns:
        (P,) bool.
    """
    if keypoints.shape[2] != 3 or confidence.shape != keypoints.shape[:2] \
            or velocity.shape[0] != keypoints.shape[0] or velocity.shape[1] != 3:
        raise ValueError("tracks_finite: keypoints (P, N, 3), confidence (P, N) and velocity "
                         "(P, 3) do not fit")
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

