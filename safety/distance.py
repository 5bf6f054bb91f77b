"""Minimum distance between human body capsules and robot link capsules.

Pure numpy; no clock, no I/O. All coordinates metres in the `cell` frame.
A capsule is a segment (a, b) swept by a sphere of radius r; the distance
between two capsules is the distance between their axis segments minus both
radii (negative when they overlap).

Closest points between segments follow Ericson, *Real-Time Collision
Detection* (2005), section 5.1.9, vectorised over all capsule pairs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

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
_LIMB_I = np.array([i for i, _ in POSE_LIMBS], dtype=np.intp)
_LIMB_J = np.array([j for _, j in POSE_LIMBS], dtype=np.intp)
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


def people_capsules(keypoints: np.ndarray, confidence: np.ndarray, *, min_confidence: float = 0.0,
                    extra_radius_m: np.ndarray | None = None
                    ) -> list[tuple[np.ndarray, np.ndarray, tuple[str, ...]]]:
    """`human_capsules` of P people in one vectorised pass.

    Args:
        keypoints: (P, 33, 3) float64, metres, `cell` frame; NaN where untracked.
        confidence: (P, 33) float64 in [0, 1].
        min_confidence: as in `human_capsules`.
        extra_radius_m: (P, 33) metres (0 where nothing is added), or None.

    Returns:
        Per person, (segments (H, 2, 3), radii (H,), names (H,)) as `human_capsules` gives them.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    ok = np.isfinite(kp).all(axis=2) & (confidence > min_confidence)
    ok_i, ok_j = ok[:, _LIMB_I], ok[:, _LIMB_J]                       # (P, L)
    keep = ok_i | ok_j
    radius = LIMB_RADII_M
    if extra_radius_m is not None:
        e_i, e_j = extra_radius_m[:, _LIMB_I], extra_radius_m[:, _LIMB_J]
        radius = radius + np.where(e_j > e_i, e_j, e_i)      # max(e_i, e_j) as Python's max
    radius = np.where(ok_i & ok_j, radius, radius + UNTRACKED_REACH_M)
    # both ends tracked: the limb; one end: a sphere at that end (a = b)
    a = np.where(ok_i[:, :, None], kp[:, _LIMB_I], kp[:, _LIMB_J])
    b = np.where(ok_j[:, :, None], kp[:, _LIMB_J], kp[:, _LIMB_I])
    segs = np.stack((a, b), axis=2)                                   # (P, L, 2, 3)
    out = []
    for person, mask in enumerate(keep):
        if mask.all():
            out.append((segs[person], radius[person], _LIMB_NAMES))
        elif not mask.any():
            out.append((np.empty((0, 2, 3)), np.empty((0,)), ()))
        else:
            out.append((segs[person][mask], radius[person][mask], _limb_names(mask.tobytes())))
    return out


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
    hp = human_segments[:, None, 0, :]
    hq = human_segments[:, None, 1, :]
    rp = robot_segments[None, :, 0, :]
    rq = robot_segments[None, :, 1, :]
    c1, c2 = segment_closest_points(hp, hq, rp, rq)
    axis = np.linalg.norm(c1 - c2, axis=-1)
    surface = axis - human_radii[:, None] - robot_radii[None, :]
    h, k = np.unravel_index(int(np.argmin(surface)), surface.shape)
    return CapsulePair(float(surface[h, k]), int(h), int(k), c1[h, k].copy(), c2[h, k].copy())


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
    c1, c2 = segment_closest_points(hs[:, None, 0, :], hs[:, None, 1, :],
                                    robot_segments[None, :, 0, :], robot_segments[None, :, 1, :])
    surface = np.linalg.norm(c1 - c2, axis=-1) - hr[:, None] - robot_radii[None, :]
    out: list[CapsulePair | None] = []
    start = 0
    for n in sizes:
        if n == 0:
            out.append(None)
            continue
        block = surface[start:start + n]
        h, k = np.unravel_index(int(np.argmin(block)), block.shape)
        out.append(CapsulePair(float(block[h, k]), int(h), int(k), c1[start + h, k].copy(), c2[start + h, k].copy()))
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
    """For each body region, the closest of its capsules to every robot link, in one vectorised
    pass over all regions x capsules x links (`closest_capsule_pairs` is its minimum over the
    links). Ties go to the region's first capsule, as `np.argmin` breaks them.

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
    sizes = np.fromiter((len(c[1]) for c in capsules), dtype=np.intp, count=len(capsules))
    k_links = robot_segments.shape[0]
    if sizes.size == 0 or sizes.min() == 0 or k_links == 0:
        raise ValueError("closest_pairs_per_link: every region and the robot need at least one capsule")
    hs = np.concatenate([c[0] for c in capsules]) if len(capsules) > 1 else capsules[0][0]
    hr = np.concatenate([c[1] for c in capsules]) if len(capsules) > 1 else capsules[0][1]
    c1, c2 = segment_closest_points(hs[:, None, 0, :], hs[:, None, 1, :],
                                    robot_segments[None, :, 0, :], robot_segments[None, :, 1, :])
    gap = c1 - c2
    # np.linalg.norm(gap, axis=-1) without its overhead (the same sum, the same rounding)
    surface = np.sqrt(np.add.reduce(gap * gap, axis=-1)) - hr[:, None] - robot_radii[None, :]
    # regions side by side, padded with +inf rows: (R, H_max, K)
    n = surface.shape[0]
    h_max = int(sizes.max())
    col = np.arange(h_max)
    rows = np.cumsum(sizes) - sizes
    rows = np.where(col[None, :] < sizes[:, None], rows[:, None] + col[None, :], n)
    padded = np.concatenate((surface, np.full((1, k_links), np.inf)))[rows]
    h = np.argmin(padded, axis=1)                                     # (R, K)
    links = np.arange(k_links)[None, :]
    picked = rows[np.arange(len(sizes))[:, None], h]                  # (R, K) rows of `surface`
    return LinkPairs(surface[picked, links], h, c1[picked, links], c2[picked, links])
