"""Anatomical plausibility gate for triangulated keypoints.

A keypoint triangulated from two views cannot be checked by a third: a wrong match
in one view puts it anywhere along the other view's ray (seen on the Pose2Sim
footage: a foot placed 0.7 m from the body at knee height). A keypoint that is
farther from its parent joint than any human segment can be, or farther from the
hip centre than any human reach, is rejected. Pure numpy; metres, `cell` frame.

Segment limits are the 99th-percentile adult segment lengths rounded up generously
(DIN 33402-2; Winter, *Biomechanics and Motor Control of Human Movement*, 4th ed.,
table 4.1 segment lengths as fractions of body height, for a 2.0 m tall person).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from content.calibration import CameraCalibration
from safety.perception.triangulation import Triangulation

#: (parent, child, max length in metres), parents before children.
SEGMENT_LIMITS_M: tuple[tuple[int, int, float], ...] = (
    (11, 13, 0.45), (13, 15, 0.40), (15, 17, 0.25), (15, 19, 0.25), (15, 21, 0.20),   # left arm
    (12, 14, 0.45), (14, 16, 0.40), (16, 18, 0.25), (16, 20, 0.25), (16, 22, 0.20),   # right arm
    (23, 25, 0.60), (25, 27, 0.60), (27, 29, 0.15), (27, 31, 0.30),                    # left leg
    (24, 26, 0.60), (26, 28, 0.60), (28, 30, 0.15), (28, 32, 0.30),                    # right leg
)
_PARENTS = np.array([p for p, _, _ in SEGMENT_LIMITS_M])
_CHILDREN = np.array([c for _, c, _ in SEGMENT_LIMITS_M])
_LIMITS = np.array([m for _, _, m in SEGMENT_LIMITS_M])
#: No keypoint is farther than this from the hip centre (hands raised overhead: about 1.3 m).
MAX_REACH_FROM_HIPS_M = 1.4
_HIPS = (23, 24)


def implausible_keypoints(points: np.ndarray) -> np.ndarray:
    """Which keypoints no human body can have where they are.

    Args:
        points: (33, 3) float64, metres, NaN where not triangulated.

    Returns:
        (33,) bool: True for a finite keypoint that is too far from its parent joint
        (`SEGMENT_LIMITS_M`) or from the hip centre (`MAX_REACH_FROM_HIPS_M`). A child of a
        rejected joint is judged against the rejected joint's parent chain no further: it
        is only checked against the hip centre.
    """
    finite = np.isfinite(points).all(axis=1)
    bad = np.zeros(len(points), dtype=bool)
    if finite[list(_HIPS)].all():
        centre = 0.5 * (points[_HIPS[0]] + points[_HIPS[1]])
        reach = np.linalg.norm(np.where(finite[:, None], points, centre) - centre, axis=1)
        bad |= finite & (reach > MAX_REACH_FROM_HIPS_M)
    too_long = (np.linalg.norm(points[_CHILDREN] - points[_PARENTS], axis=1) > _LIMITS).tolist()
    ok = finite.tolist()
    rejected = bad.tolist()
    for k, (parent, child, _) in enumerate(SEGMENT_LIMITS_M):     # parents first: a rejected one stops the chain
        if ok[parent] and ok[child] and not rejected[parent] and too_long[k]:
            rejected[child] = True
    return np.array(rejected)


#: MediaPipe Pose landmark index of each landmark's left/right mirror (itself for the nose).
MIRROR: np.ndarray = np.array(
    [0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21, 24, 23,
     26, 25, 28, 27, 30, 29, 32, 31])


class SwapResolution(NamedTuple):
    """Result of `resolve_left_right_swaps`.

    Attributes:
        keypoints_px: (V, 33, 2) the keypoints with the mirrored views undone.
        visibility: (V, 33) likewise.
        mirrored: indices of the views found mirrored (and undone), ascending.
        unrejected: `triangulate_fn` of `keypoints_px` and `visibility` without view rejection
            (`max_reprojection_error_px=inf`): the first pass of the final triangulation
            (`triangulate(..., first_pass=unrejected)`), so that it is not solved twice.
    """

    keypoints_px: np.ndarray
    visibility: np.ndarray
    mirrored: tuple[int, ...]
    unrejected: Triangulation


@functools.lru_cache(maxsize=64)
def _hypotheses(num_views: int, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (V, 1) and (V, H n) taking (V, n) keypoints to the H = V - first + 1
    hypotheses of `resolve_left_right_swaps` side by side: as they are, then each view from
    `first` on mirrored alone (landmark i of the mirrored view is its `MIRROR[i]`)."""
    views = range(first, num_views)
    cols = np.tile(np.arange(n), (num_views, 1 + len(views)))
    for h, view in enumerate(views, start=1):
        cols[view, h * n:(h + 1) * n] = MIRROR
    cols.flags.writeable = False
    rows = np.arange(num_views)[:, None]
    rows.flags.writeable = False
    return rows, cols


def resolve_left_right_swaps(calibrations: Sequence[CameraCalibration], keypoints_px: np.ndarray,
                             visibility: np.ndarray, triangulate_fn: Callable[..., Triangulation]) -> SwapResolution:
    """Undo left/right confusions of the 2D detector, view by view.

    A detector that labels a person's left leg as the right one in one view makes every
    triangulation with that view wrong in a way a single point cannot reveal. Each view
    after the first is tried mirrored (left and right landmarks exchanged); a view stays
    mirrored when that lowers the median reprojection error of all points triangulated
    from all views without view rejection.

    Args:
        calibrations: V cameras.
        keypoints_px: (V, 33, 2) pixels (as `triangulate_fn` takes them: distorted for
            `triangulate`, undistorted for `triangulate` with `undistorted=True`).
        visibility: (V, 33) in [0, 1].
        triangulate_fn: `safety.perception.triangulation.triangulate` (or it with fixed
            keyword arguments); called with `max_reprojection_error_px=np.inf`.

    Returns:
        The keypoints and visibility with the chosen views mirrored, those views, and their
        triangulation without view rejection (`SwapResolution`).

    Raises:
        PerceptionError: from `triangulate_fn` (e.g. fewer than 2 views).
    """
    kp = np.array(keypoints_px, dtype=np.float64, copy=True)
    vis = np.array(visibility, dtype=np.float64, copy=True)
    n = kp.shape[1]

    def scores(first: int) -> tuple[list[float], Triangulation]:
        """Median reprojection error of `kp` as it is, then with each view from `first` on
        mirrored alone: ONE triangulation of all the hypotheses side by side (each point is
        solved on its own, so this equals one call per hypothesis at a quarter of the cost)."""
        rows, cols = _hypotheses(kp.shape[0], first, n)
        tri = triangulate_fn(calibrations, kp[rows, cols], vis[rows, cols], max_reprojection_error_px=np.inf)
        err = tri.reprojection_error_px.reshape(-1, n)
        # nanmedian of each row (np.nanmedian over an axis goes through masked arrays: 0.7 ms)
        count = np.isfinite(err).sum(axis=1)
        ranked = np.sort(err, axis=1)                                   # NaN last
        rows = np.arange(len(err))
        median = 0.5 * (ranked[rows, np.maximum(count - 1, 0) // 2] + ranked[rows, count // 2 - (count == 0)])
        return np.where(count > 0, median, np.inf).tolist(), tri

    # Views are decided in order, each against the best so far; a mirrored view changes the
    # hypotheses of the later ones, which are then scored again from there.
    mirrored: list[int] = []
    first = 1
    unrejected: Triangulation | None = None
    while first < kp.shape[0]:
        (best, *alone), tri = scores(first)
        unrejected = tri.take(0, n)
        accepted = next((k for k, s in enumerate(alone) if s < 0.7 * best), None)
        if accepted is None:
            break
        unrejected = tri.take((accepted + 1) * n, (accepted + 2) * n)
        view = first + accepted
        kp[view], vis[view] = kp[view][MIRROR].copy(), vis[view][MIRROR].copy()
        mirrored.append(view)
        first = view + 1
    if unrejected is None:          # one view: triangulate_fn raises
        unrejected = triangulate_fn(calibrations, kp, vis, max_reprojection_error_px=np.inf)
    return SwapResolution(kp, vis, tuple(mirrored), unrejected)
