"""Which 2D detections in different cameras are the same person (pure functions).

Two detections of one person satisfy the epipolar constraint keypoint by keypoint: the
keypoint in view b lies on the epipolar line of its match in view a (Hartley & Zisserman,
*Multiple View Geometry*, 2nd ed., section 9.2: F = K_b^-T [t]_x R K_a^-1 for the relative
pose (R, t) from a to b). The cost of a pair is the mean symmetric point-to-line distance,
in undistorted pixels, over the keypoints confident in both views.

Views are merged one after the other (the view with most people first): each existing
group is matched to the new view's detections by `scipy.optimize.linear_sum_assignment`
on the mean cost to the group's members, within a gate; unmatched detections start new
groups. A group seen by two or more views is a person to triangulate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from content.calibration import CameraCalibration

#: Fewer common confident keypoints than this: the pair cannot be judged (infinite cost).
MIN_COMMON_KEYPOINTS = 5


def fundamental_matrix(a: CameraCalibration, b: CameraCalibration) -> np.ndarray:
    """F with x_b^T F x_a = 0 for undistorted pixels x_a of camera a and x_b of camera b.

    Returns:
        (3, 3) float64.
    """
    R = b.R @ a.R.T
    t = b.t - R @ a.t
    tx = np.array([[0.0, -t[2], t[1]], [t[2], 0.0, -t[0]], [-t[1], t[0], 0.0]])
    return np.linalg.inv(b.K).T @ tx @ R @ np.linalg.inv(a.K)


def epipolar_cost(F: np.ndarray, kp_a: np.ndarray, conf_a: np.ndarray, kp_b: np.ndarray, conf_b: np.ndarray,
                  min_confidence: float = 0.3) -> float:
    """Mean symmetric epipolar distance between two detections.

    Args:
        F: (3, 3) fundamental matrix from view a to view b (`fundamental_matrix`).
        kp_a, kp_b: (N, 2) float, undistorted pixels of the two views.
        conf_a, conf_b: (N,) float in [0, 1].
        min_confidence: keypoints below it in either view are not compared.

    Returns:
        Pixels; inf when fewer than `MIN_COMMON_KEYPOINTS` keypoints are comparable.
    """
    ok = (conf_a >= min_confidence) & (conf_b >= min_confidence) & np.isfinite(kp_a).all(axis=1) \
        & np.isfinite(kp_b).all(axis=1)
    if ok.sum() < MIN_COMMON_KEYPOINTS:
        return float("inf")
    xa, xb = kp_a[ok].T, kp_b[ok].T                 # (2, n)
    # Lines l_b = F x_a in b and l_a = F^T x_b in a, x homogeneous (u, v, 1); no BLAS for
    # these tiny products (its threads spin for longer than they take).
    lb = F[:, 0:1] * xa[0] + F[:, 1:2] * xa[1] + F[:, 2:3]                # (3, n)
    la = F[0, :, None] * xb[0] + F[1, :, None] * xb[1] + F[2, :, None]
    db = np.abs(lb[0] * xb[0] + lb[1] * xb[1] + lb[2]) / np.maximum(np.hypot(lb[0], lb[1]), 1e-12)
    da = np.abs(la[0] * xa[0] + la[1] * xa[1] + la[2]) / np.maximum(np.hypot(la[0], la[1]), 1e-12)
    d = 0.5 * (da + db)
    return float(d.sum() / len(d))                  # np.mean without its Python wrapper


def group_detections(calibrations: Sequence[CameraCalibration], keypoints_px: Sequence[np.ndarray],
                     confidence: Sequence[np.ndarray], *, max_cost_px: float,
                     min_confidence: float = 0.3,
                     fundamental: dict[tuple[int, int], np.ndarray] | None = None,
                     pair_cost: Callable[[int, int, int, int], float] | None = None) -> list[list[tuple[int, int]]]:
    """Group the detections of V views into people.

    Args:
        calibrations: V cameras.
        keypoints_px: per view, (P_v, N, 2) float, UNDISTORTED pixels (P_v may be 0).
        confidence: per view, (P_v, N) float in [0, 1].
        max_cost_px: gate: a detection joins a group when its mean epipolar cost to the
            group's members is at most this.
        min_confidence: keypoints below it are not compared.
        fundamental: F for each ordered view pair (a, b), when the caller caches them.
        pair_cost: ``pair_cost(w, j, v, i)``, the `epipolar_cost` of detection j of view w and
            detection i of view v (F of the pair (w, v)), when the caller keeps the costs of
            detections it saw in an earlier call; None: computed here.

    Returns:
        Groups of (view index, detection index), at most one detection per view in a
        group, every detection in exactly one group (singletons included); groups with
        most views first.
    """
    V = len(calibrations)
    F = fundamental if fundamental is not None or pair_cost is not None else {
        (a, b): fundamental_matrix(calibrations[a], calibrations[b]) for a in range(V) for b in range(V) if a != b}
    order = sorted(range(V), key=lambda v: -len(keypoints_px[v]))
    groups: list[list[tuple[int, int]]] = []
    for v in order:
        n = len(keypoints_px[v])
        if n == 0:
            continue
        if not groups:
            groups = [[(v, i)] for i in range(n)]
            continue
        cost = np.full((len(groups), n), np.inf)
        for g, members in enumerate(groups):
            for i in range(n):
                if pair_cost is not None:
                    c = [pair_cost(w, j, v, i) for w, j in members]
                else:
                    c = [epipolar_cost(F[(w, v)], keypoints_px[w][j], confidence[w][j], keypoints_px[v][i],
                                       confidence[v][i], min_confidence) for w, j in members]
                cost[g, i] = sum(c) / len(c)
        big = 1e6
        if cost.shape == (1, 1):               # one group, one detection: nothing to solve
            rows, cols = [0], [0]
        else:
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
        matched = set()
        for g, i in zip(rows, cols):
            if cost[g, i] <= max_cost_px:
                groups[g].append((v, i))
                matched.add(i)
        groups.extend([[(v, i)] for i in range(n) if i not in matched])
    return sorted(groups, key=lambda m: -len(m))
