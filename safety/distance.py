"""Minimum distance between human body capsules and robot link capsules.

Pure numpy and `safety.kernels`; no clock, no I/O. All coordinates metres in the `cell` frame.
A capsule is a segment (a, b) swept by a sphere of radius r; the distance
between two capsules is the distance between their axis segments minus both
radii (negative when they overlap).

Closest points between segments follow Ericson, *Real-Time Collision
Detection* (2005), section 5.1.9, vectorised over all capsule pairs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from safety import kernels
from safety.perception.types import POSE_LANDMARKS, POSE_LIMBS

#: Radius of the body capsule of each limb in `POSE_LIMBS`, metres. Torso segments
#: are wide (0.15 m), head-to-shoulder 0.12 m, upper limbs 0.06 m, hands and feet 0.05 m,
#: legs 0.08 m: anthropometric half-widths rounded up (DIN 33402-2 body dimensions).
LIMB_RADII_M: np.ndarray = np.array(
    [0.15, 0.15, 0.15, 0.15,
     0.06, 0.06, 0.05, 0.06, 0.06, 0.05,
     0.08, 0.08, 0.05, 0.08, 0.08, 0.05,
     0.12, 0.12],
    dtype=np.float64,
)

#: MediaPipe Pose keypoints of the upper limbs below the shoulder (elbows, wrists, hands):
#: their approach speed is ISO 13855's 2.0 m/s (`SafetyParameters.hand_arm_speed_mps`).
ARM_KEYPOINTS: frozenset[int] = frozenset(range(13, 23))
#: Names of the body capsules (`human_capsules`) that move with the hands and arms.
ARM_CAPSULE_NAMES: frozenset[str] = frozenset(
    f"{POSE_LANDMARKS[i]}-{POSE_LANDMARKS[j]}" for i, j in POSE_LIMBS if i in ARM_KEYPOINTS or j in ARM_KEYPOINTS)

#: Reach added around a limb whose far end is not tracked: the longest human limb
#: segment (thigh, about 0.5 m) so that the untracked part is covered conservatively.
UNTRACKED_REACH_M = 0.5

_EPS = 1e-12
#: End keypoints and names of the limbs of `POSE_LIMBS`, for the vectorised `human_capsules`.
_LIMB_I = np.array([i for i, _ in POSE_LIMBS], dtype=np.int64)
_LIMB_J = np.array([j for _, j in POSE_LIMBS], dtype=np.int64)
_LIMB_NAMES: tuple[str, ...] = tuple(f"{POSE_LANDMARKS[i]}-{POSE_LANDMARKS[j]}" for i, j in POSE_LIMBS)


@dataclass(frozen=True)
class CapsulePair:
    """The closest human-robot capsule pair.

    Attributes:
        distance_m: surface distance, metres (negative: overlap).
        human_index: index into the human capsule list.
        robot_index: index into the robot capsule list.
        human_point: (3,) closest point on the human capsule axis, metres, `cell` frame.
        robot_point: (3,) closest point on the robot capsule axis, metres, `cell` frame.
    """

    distance_m: float
    human_index: int
    robot_index: int
    human_point: np.ndarray
    robot_point: np.ndarray


def _clamped_parameters(a: np.ndarray, e: np.ndarray, b: np.ndarray, c: np.ndarray, f: np.ndarray,
                        second_point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Parameters (s, t) in [0, 1] of the closest points p1 + s d1 and p2 + t d2 of two segments,
    from their dot products: a = d1.d1, e = d2.d2, b = d1.d2, c = d1.r, f = d2.r with
    r = p1 - p2 (arrays that broadcast to one shape, the result's).

    The clamped formulation of Ericson, *Real-Time Collision Detection* (2005), 5.1.9
    (`ClosestPtSegmentSegment`), its branches as masks: s for the closest points of the two lines
    (0 where they are parallel, ae - b^2 <= eps), t = (b s + f) / e for that s, and where t
    leaves [0, 1] it is clamped and s recomputed for it, (b t - c) / a clamped. The caller zeroes
    the direction of a segment that is a point (a or e <= eps): a first point then gets s = 0
    and t = f / e clamped, as Ericson's first branch; a second point (`second_point` True, e = 0)
    gets t = -1, clamped to 0, so that s = -c / a clamped, as his second.
    """
    general = a * e
    general -= b * b                                    # the denominator ae - b^2
    parallel = general <= _EPS
    general[parallel] = 1.0
    s = b * f
    s -= c * e
    s /= general
    np.maximum(s, 0.0, out=s)
    np.minimum(s, 1.0, out=s)
    s[parallel] = 0.0
    t = b * s
    t += f
    t /= np.where(second_point, 1.0, e)
    t -= second_point                                   # b = f = 0 there: t = -1
    clamped = np.maximum(t, 0.0)
    np.minimum(clamped, 1.0, out=clamped)
    again = clamped != t
    if again.any():
        s_again = b * clamped
        s_again -= c
        s_again /= np.where(a <= _EPS, 1.0, a)
        np.maximum(s_again, 0.0, out=s_again)
        np.minimum(s_again, 1.0, out=s_again)
        s[again] = s_again[again]
    return s, clamped


def _point_safe_directions(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Segment directions d (..., 3) with those of point segments (|d|^2 <= eps) set to exactly 0:
    (directions, |d|^2 (...,) with 0 for the point segments, the (...,) point mask)."""
    squared = np.einsum("...i,...i->...", d, d)
    point = squared <= _EPS
    if point.any():
        d = np.where(point[..., None], 0.0, d)
        squared = np.where(point, 0.0, squared)
    return d, squared, point


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
    d1, a, _ = _point_safe_directions(q1 - p1)
    d2, e, second_point = _point_safe_directions(q2 - p2)
    r = p1 - p2
    b = np.einsum("...i,...i->...", d1, d2)
    c = np.einsum("...i,...i->...", d1, r)
    f = np.einsum("...i,...i->...", d2, r)
    s, t = _clamped_parameters(a, e, b, c, f, second_point)
    return p1 + d1 * s[..., None], p2 + d2 * t[..., None]


def closest_points_all_pairs(first: np.ndarray, second: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest points between every segment of `first` and every segment of `second`.

    `segment_closest_points` for all N x M pairs, on (M, N) arrays coordinate by coordinate
    ((3, M, N), N along memory: numpy's per-row overhead is paid M times, not N times), so the
    pass costs a fixed, small number of numpy operations whatever N and M (the monitor cycle:
    6 people x 18 body capsules against 9 links). Every value is computed with the same
    operations in the same order as `segment_closest_points` on broadcast (N, 1) x (1, M)
    inputs, dot products summed as its `einsum` sums them, (x + z) + y, so the distances are
    the same to the last bit and exact ties (a body point closest to the joint two links share)
    go the same way.

    Args:
        first: (N, 2, 3) segments (end points), metres.
        second: (M, 2, 3) segments, metres.

    Returns:
        (axis distance, s, t), each (N, M) (transposed views of (M, N) arrays): the closest
        points of first[n] and second[m] are `points_at(first[n], s[n, m])` and
        `points_at(second[m], t[n, m])`, their distance |c1 - c2| metres.
    """
    p1 = first[:, 0]
    d1, a, _ = _point_safe_directions(first[:, 1] - p1)
    p2 = second[:, 0]
    d2, e, second_point = _point_safe_directions(second[:, 1] - p2)
    # coordinate-major: (3, 1, N) for the first segments, (3, M, 1) for the second
    p1_t, d1_t = np.ascontiguousarray(p1.T)[:, None, :], np.ascontiguousarray(d1.T)[:, None, :]
    p2_t, d2_t = np.ascontiguousarray(p2.T)[:, :, None], np.ascontiguousarray(d2.T)[:, :, None]
    r = p1_t - p2_t                                                               # (3, M, N)
    b, c, f = _dot(d1_t * d2_t), _dot(d1_t * r), _dot(d2_t * r)
    s, t = _clamped_parameters(a[None, :], e[:, None], b, c, f, second_point[:, None])
    gap = p1_t + d1_t * s
    gap -= p2_t + d2_t * t
    gap *= gap
    axis = gap[0] + gap[1]
    axis += gap[2]
    return np.sqrt(axis, out=axis).T, s.T, t.T


def _dot(products: np.ndarray) -> np.ndarray:
    """The dot products from their (3, ...) coordinate products, summed (x + z) + y as numpy's
    `einsum` sums three terms (`segment_closest_points`)."""
    out = products[0] + products[2]
    out += products[1]
    return out


def points_at(segments: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Points a + fraction (b - a), (..., 3), at `fraction` (...,) along `segments` (..., 2, 3).
    (The parameters of `closest_points_all_pairs` are exactly 0 on point segments, so these are
    the points it measured, zeroed directions or not.)"""
    a = segments[..., 0, :]
    return a + (segments[..., 1, :] - a) * fraction[..., None]


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
    extra = None if extra_radius_m is None else np.asarray(extra_radius_m)[None]
    return people_capsules(np.asarray(keypoints)[None], np.asarray(confidence)[None],
                           min_confidence=min_confidence, extra_radius_m=extra)[0]


class PeopleCapsules(list):
    """`people_capsules`' result: per person, (segments (H_p, 2, 3), radii (H_p,), names) as
    `human_capsules` gives them; and every person's capsules stacked in person order,
    `segments` (H, 2, 3) and `radii` (H,), metres, `cell` frame, of which the per-person arrays
    are row spans (views), so the consumers of all capsules at once (the zones, the body
    regions) read them without stacking them again (`stacked_capsules`)."""

    def __init__(self, people: list, segments: np.ndarray, radii: np.ndarray) -> None:
        super().__init__(people)
        self.segments = segments
        self.radii = radii


def stacked_capsules(capsules: Sequence[tuple[np.ndarray, np.ndarray, tuple[str, ...]]]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """All capsules of per-person (segments, radii, names) stacked in order: (segments (H, 2, 3),
    radii (H,)), metres; a `PeopleCapsules`' own stacked arrays (no copy), else concatenated."""
    if isinstance(capsules, PeopleCapsules):
        return capsules.segments, capsules.radii
    return np.concatenate([c[0] for c in capsules]), np.concatenate([c[1] for c in capsules])


def people_capsules(keypoints: np.ndarray, confidence: np.ndarray, *, min_confidence: float = 0.0,
                    extra_radius_m: np.ndarray | None = None) -> PeopleCapsules:
    """`human_capsules` of P people in one compiled pass (`safety.kernels.people_capsules`).

    Args:
        keypoints: (P, 33, 3) float64, metres, `cell` frame; NaN where untracked.
        confidence: (P, 33) float64 in [0, 1].
        min_confidence: as in `human_capsules`.
        extra_radius_m: (P, 33) metres (0 where nothing is added), or None.

    Returns:
        Per person, (segments (H, 2, 3), radii (H,), names (H,)) as `human_capsules` gives them,
        with all of them stacked (`PeopleCapsules`).
    """
    kp = np.ascontiguousarray(keypoints, dtype=np.float64)
    conf = np.ascontiguousarray(confidence, dtype=np.float64)
    extra = _NO_EXTRA if extra_radius_m is None else np.ascontiguousarray(extra_radius_m, dtype=np.float64)
    segs, radius, keep, kept = kernels.people_capsules(kp, conf, float(min_confidence), extra,
                                                       extra_radius_m is not None, _LIMB_I, _LIMB_J, LIMB_RADII_M,
                                                       UNTRACKED_REACH_M)
    counts = kept.tolist()
    n_limbs = len(_LIMB_NAMES)
    if sum(counts) == n_limbs * len(counts):                # everybody fully tracked: views
        all_segs, all_radii = segs.reshape(-1, 2, 3), radius.reshape(-1)
    else:
        all_segs, all_radii = segs[keep], radius[keep]       # person by person, limbs in order
    out, start = [], 0
    for person, count in enumerate(counts):
        names = _LIMB_NAMES if count == n_limbs else _limb_names(keep[person].tobytes()) if count else ()
        out.append((all_segs[start:start + count], all_radii[start:start + count], names))
        start += count
    return PeopleCapsules(out, all_segs, all_radii)


#: `kernels.people_capsules`' extra radii when there are none.
_NO_EXTRA = np.zeros((0, 0))


@functools.lru_cache(maxsize=256)
def _limb_names(mask: bytes) -> tuple[str, ...]:
    """Names of the limbs kept by a (L,) bool mask given as bytes (cached: masks repeat)."""
    return tuple(n for n, k in zip(_LIMB_NAMES, mask) if k)


def closest_capsule_pair(
    human_segments: np.ndarray, human_radii: np.ndarray,
    robot_segments: np.ndarray, robot_radii: np.ndarray,
) -> CapsulePair | None:
    """The closest pair between H human capsules and K robot capsules.

    Args:
        human_segments: (H, 2, 3) metres, `cell` frame.
        human_radii: (H,) metres.
        robot_segments: (K, 2, 3) metres, `cell` frame.
        robot_radii: (K,) metres.

    Returns:
        The closest pair, or None when either side has no capsule.
    """
    if human_segments.shape[0] == 0 or robot_segments.shape[0] == 0:
        return None
    axis, s, t = closest_points_all_pairs(human_segments, robot_segments)
    surface = axis - human_radii[:, None] - robot_radii[None, :]
    h, k = np.unravel_index(int(np.argmin(surface)), surface.shape)
    return CapsulePair(float(surface[h, k]), int(h), int(k), points_at(human_segments[h], s[h, k]),
                       points_at(robot_segments[k], t[h, k]))


def closest_capsule_pairs(
    capsules: list[tuple[np.ndarray, np.ndarray, tuple[str, ...]]],
    robot_segments: np.ndarray, robot_radii: np.ndarray,
) -> list[CapsulePair | None]:
    """The closest pair for each of several people in one vectorised pass.

    Args:
        capsules: per person, (segments (H, 2, 3), radii (H,), names) from `human_capsules`.
        robot_segments: (K, 2, 3) metres, `cell` frame.
        robot_radii: (K,) metres.

    Returns:
        One `CapsulePair` per person (indices into that person's capsules), None for a person
        without capsules or when the robot has none.
    """
    sizes = [len(c[1]) for c in capsules]
    if sum(sizes) == 0 or robot_segments.shape[0] == 0:
        return [None] * len(capsules)
    hs = np.concatenate([c[0] for c in capsules if len(c[1])])
    hr = np.concatenate([c[1] for c in capsules if len(c[1])])
    axis, s, t = closest_points_all_pairs(hs, robot_segments)
    surface = axis - hr[:, None] - robot_radii[None, :]
    out: list[CapsulePair | None] = []
    start = 0
    for n in sizes:
        if n == 0:
            out.append(None)
            continue
        block = surface[start:start + n]
        h, k = np.unravel_index(int(np.argmin(block)), block.shape)
        out.append(CapsulePair(float(block[h, k]), int(h), int(k),
                               points_at(hs[start + h], s[start + h, k]),
                               points_at(robot_segments[k], t[start + h, k])))
        start += n
    return out


@dataclass(frozen=True)
class LinkPairs:
    """Per body region (a person, or a part of one) and robot link, the region's closest capsule.

    Attributes:
        distance_m: (R, K) surface distance of region r to link k, metres (negative: overlap).
        human_index: (R, K) index into region r's capsule list of its capsule closest to link k.
        human_point: (R, K, 3) closest point on that capsule's axis, metres, `cell` frame.
        robot_point: (R, K, 3) closest point on link k's axis, metres, `cell` frame.
    """

    distance_m: np.ndarray
    human_index: np.ndarray
    human_point: np.ndarray
    robot_point: np.ndarray


def closest_pairs_per_link(
    capsules: list[tuple[np.ndarray, np.ndarray, tuple[str, ...]]],
    robot_segments: np.ndarray, robot_radii: np.ndarray,
) -> LinkPairs:
    """For each body region, the closest of its capsules to every robot link, in one compiled
    pass over all regions x capsules x links (`safety.kernels.closest_pairs_per_link`: the
    arithmetic of `closest_points_all_pairs`, bit for bit; `closest_capsule_pairs` is its
    minimum over the links). Ties go to the region's first capsule, as `np.argmin` breaks them.

    Args:
        capsules: R >= 1 regions, each (segments (H, 2, 3), radii (H,), names) with H >= 1, from
            `human_capsules` or a part of its result.
        robot_segments: (K, 2, 3) metres, `cell` frame, K >= 1.
        robot_radii: (K,) metres.

    Returns:
        The `LinkPairs` of the R regions, in order.

    Raises:
        ValueError: no region, a region without capsules, or a robot without links.
    """
    sizes = tuple(len(c[1]) for c in capsules)
    k_links = robot_segments.shape[0]
    if not sizes or min(sizes) == 0 or k_links == 0:
        raise ValueError("closest_pairs_per_link: every region and the robot need at least one capsule")
    hs = np.concatenate([c[0] for c in capsules]) if len(capsules) > 1 else capsules[0][0]
    hr = np.concatenate([c[1] for c in capsules]) if len(capsules) > 1 else capsules[0][1]
    starts, counts = _region_spans(sizes)
    return LinkPairs(*kernels.closest_pairs_per_link(
        np.ascontiguousarray(hs, dtype=np.float64), np.ascontiguousarray(hr, dtype=np.float64), starts, counts,
        np.ascontiguousarray(robot_segments, dtype=np.float64), np.ascontiguousarray(robot_radii, dtype=np.float64)))


@functools.lru_cache(maxsize=64)
def _region_spans(sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(first row (R,), number of rows (R,)), int64, of regions of `sizes` capsules stacked in
    order, read-only; cached: the sizes repeat from cycle to cycle."""
    counts = np.array(sizes, dtype=np.int64)
    starts = np.cumsum(counts) - counts
    counts.setflags(write=False)
    starts.setflags(write=False)
    return starts, counts
