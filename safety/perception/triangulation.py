"""Multi-view triangulation of keypoints (pure functions, numpy + cv2 undistortion).

A keypoint seen by V calibrated cameras is placed by the weighted direct linear
transform (DLT): each view contributes two linear equations on the homogeneous point,
weighted by the detector's confidence; the least-squares solution is the right
singular vector of the stacked system (computed as the eigenvector of the smallest
eigenvalue of its 4 x 4 normal matrix: the same vector, at half the cost of a batched
SVD for these tiny systems). A view that disagrees with the others (its
reprojection error above a threshold) is dropped and the point solved again, as long
as two views remain.

Pixels are those of the images the calibrations refer to; points are metres in the
calibrations' world frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from content.calibration import CameraCalibration
from safety.errors import PerceptionError


@dataclass(frozen=True)
class Triangulation:
    """Result of `triangulate`.

    Attributes:
        points: (N, 3) float64, metres, calibration world frame; NaN where fewer than
            two views were usable.
        reprojection_error_px: (N,) float64, pixels: root mean square over the used views
            of the distance between observation and reprojection (undistorted pixels);
            NaN where not triangulated.
        views_used: (N, V) bool, which views each point was solved from.
        view_error_px: (V, N) float64, pixels: distance between each view's observation and
            the reprojection at the point's last solve (undistorted pixels; inf behind the
            camera); NaN where the view was not used in that solve. What `first_pass` needs.
    """

    points: np.ndarray
    reprojection_error_px: np.ndarray
    views_used: np.ndarray
    view_error_px: np.ndarray

    @property
    def num_views(self) -> np.ndarray:
        """(N,) int: number of views each point was solved from (0: not triangulated)."""
        return self.views_used.sum(axis=1)

    def take(self, start: int, stop: int) -> Triangulation:
        """The triangulation of points `start` to `stop` - 1 alone (points are solved one by one,
        so a batch of several keypoint sets solved together splits exactly)."""
        return Triangulation(points=self.points[start:stop],
                             reprojection_error_px=self.reprojection_error_px[start:stop],
                             views_used=self.views_used[start:stop],
                             view_error_px=self.view_error_px[:, start:stop])


def undistort_points(calibration: CameraCalibration, keypoints_px: np.ndarray) -> np.ndarray:
    """Remove lens distortion, staying in pixels (`cv2.undistortPoints` with P = K).

    Args:
        calibration: the camera.
        keypoints_px: (N, 2) float, distorted pixels; NaN rows are kept NaN.

    Returns:
        (N, 2) float64, undistorted pixels of the same camera matrix K.
    """
    pts = np.asarray(keypoints_px, dtype=np.float64).reshape(-1, 2)
    out = np.full_like(pts, np.nan)
    ok = np.isfinite(pts).all(axis=1)
    if ok.any():
        und = cv2.undistortPoints(pts[ok].reshape(-1, 1, 2), calibration.K, calibration.dist, P=calibration.K)
        out[ok] = und.reshape(-1, 2)
    return out


def project_points(calibration: CameraCalibration, points: np.ndarray) -> np.ndarray:
    """Project world points to (distorted) pixels.

    Args:
        calibration: the camera.
        points: (N, 3) float, metres, calibration world frame; NaN rows give NaN.

    Returns:
        (N, 2) float64, pixels; NaN for NaN input and for points behind the camera.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = np.full((len(pts), 2), np.nan)
    z = pts @ calibration.R[2] + calibration.t[2]
    ok = np.isfinite(pts).all(axis=1) & (z > 1e-6)
    if ok.any():
        rvec, _ = cv2.Rodrigues(calibration.R)
        proj, _ = cv2.projectPoints(pts[ok].reshape(-1, 1, 3), rvec, calibration.t.astype(np.float64),
                                    calibration.K, calibration.dist)
        out[ok] = proj.reshape(-1, 2)
    return out


def reprojection_error(calibrations: Sequence[CameraCalibration], points: np.ndarray,
                       keypoints_px: np.ndarray) -> np.ndarray:
    """Distance between observed keypoints and the reprojection of 3D points.

    Args:
        calibrations: V cameras.
        points: (N, 3) float, metres, calibration world frame.
        keypoints_px: (V, N, 2) float, observed (distorted) pixels; NaN where not observed.

    Returns:
        (V, N) float64, pixels; NaN where the point or the observation is missing.

    Raises:
        PerceptionError: shapes do not match.
    """
    obs = np.asarray(keypoints_px, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)
    if obs.ndim != 3 or obs.shape[0] != len(calibrations) or obs.shape[2] != 2 or pts.shape != (obs.shape[1], 3):
        raise PerceptionError(f"reprojection_error: expected points (N, 3) and keypoints (V={len(calibrations)}, "
                              f"N, 2), got {pts.shape} and {obs.shape}")
    return np.stack([np.linalg.norm(project_points(c, pts) - obs[v], axis=1) for v, c in enumerate(calibrations)])


def _solve_dlt(P: np.ndarray, uv: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted DLT for N points: P (V, 3, 4), uv (V, N, 2) undistorted px, w (V, N) >= 0 -> (N, 3)."""
    # (2, V, N, 4): the u rows of every view, then the v rows (u P_3 - P_1, v P_3 - P_2)
    rows = uv.transpose(2, 0, 1)[..., None] * P[None, :, None, 2, :] - P.transpose(1, 0, 2)[:2, :, None, :]
    # Equalise the equations' scale (each row's norm grows with depth and focal length).
    rows = rows / np.maximum(np.sqrt((rows * rows).sum(axis=3, keepdims=True)), 1e-12)
    ww = w[None, :, :, None]
    A = np.where(ww > 0, rows * ww, 0.0).reshape(-1, *rows.shape[2:]).transpose(1, 0, 2)  # (N, 2V, 4)
    # The right singular vector of A's smallest singular value is the eigenvector of A^T A's
    # smallest eigenvalue (eigh sorts them ascending); 4 x 4 eigh costs half an 8 x 4 SVD.
    _, vecs = np.linalg.eigh(A.transpose(0, 2, 1) @ A)
    X = vecs[:, :, 0]
    return X[:, :3] / X[:, 3:4]                 # (the caller ignores division warnings)


def triangulate(calibrations: Sequence[CameraCalibration], keypoints_px: np.ndarray, confidence: np.ndarray, *,
                min_confidence: float = 0.3, max_reprojection_error_px: float = 10.0,
                min_views: int = 2, undistorted: bool = False,
                first_pass: Triangulation | None = None, projections: np.ndarray | None = None) -> Triangulation:
    """Weighted multi-view DLT with rejection of disagreeing views.

    Args:
        calibrations: V >= 2 cameras (their K must match the images the keypoints come from).
        keypoints_px: (V, N, 2) float, distorted pixels (undistorted with `undistorted`); NaN
            where a view has no detection.
        confidence: (V, N) float in [0, 1]; observations below `min_confidence` are ignored,
            the others weight their view's equations.
        min_confidence: minimum confidence of an observation.
        max_reprojection_error_px: a point whose worst used view reprojects further than this
            drops that view and is solved again, while more than `min_views` views remain.
        min_views: minimum number of views for a point (>= 2).
        undistorted: `keypoints_px` are already undistorted (`undistort_points`), as when the
            caller triangulates the same detections several times.
        first_pass: the result of this function for the SAME keypoints, confidence,
            `min_confidence` and `min_views` with `max_reprojection_error_px=inf` (e.g. the
            left/right swap search's, `resolve_left_right_swaps`): its solve is this call's
            first pass instead of being repeated (the result is the same).
        projections: (V, 3, 4) the calibrations' `projection` matrices, when the caller keeps
            them (a tracker triangulates with the same cameras many times per second).

    Returns:
        The points, their RMS reprojection error and the views used (see `Triangulation`).

    Raises:
        PerceptionError: shapes do not match, fewer than 2 calibrations, or min_views < 2.
    """
    V = len(calibrations)
    kp = np.asarray(keypoints_px, dtype=np.float64)
    conf = np.asarray(confidence, dtype=np.float64)
    if V < 2 or min_views < 2:
        raise PerceptionError(f"triangulate needs at least 2 cameras and min_views >= 2 (got {V} and {min_views})")
    if kp.ndim != 3 or kp.shape[0] != V or kp.shape[2] != 2 or conf.shape != kp.shape[:2]:
        raise PerceptionError(f"triangulate: expected keypoints (V={V}, N, 2) and confidence (V, N), "
                              f"got {kp.shape} and {conf.shape}")
    N = kp.shape[1]
    if first_pass is not None and first_pass.view_error_px.shape != (V, N):
        raise PerceptionError(f"triangulate: first_pass is of {first_pass.view_error_px.shape} (views, points), "
                              f"expected {(V, N)}")
    P = np.stack([c.projection for c in calibrations]) if projections is None else projections
    if P.shape != (V, 3, 4):
        raise PerceptionError(f"triangulate: projections are {P.shape}, expected {(V, 3, 4)}")
    und = kp if undistorted else np.stack([undistort_points(c, kp[v]) for v, c in enumerate(calibrations)])
    # one errstate for the whole solve (points behind a camera or not solved divide by 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        used = (conf >= min_confidence) & np.isfinite(und).all(axis=2)                      # (V, N)
        points = np.full((N, 3), np.nan)
        err = np.full((V, N), np.nan)
        active = used.sum(axis=0) >= min_views
        todo = active.copy()
        for _ in range(V - min_views + 1):
            if not todo.any():
                break
            idx = np.flatnonzero(todo)
            sel = slice(None) if len(idx) == N else idx     # every point: no indexed copies
            used_sel = used[:, sel]
            if first_pass is not None:         # the first solve of every active point, done already
                X, e = first_pass.points[sel], first_pass.view_error_px[:, sel]
                first_pass = None
            else:
                w = np.where(used_sel, np.clip(conf[:, sel], 0.0, 1.0), 0.0)
                X = _solve_dlt(P, und[:, sel], w)
                proj = P[:, :, :3] @ X.T + P[:, :, 3:]                                   # (V, 3, n)
                uv = proj[:, :2] / proj[:, 2:3] - und[:, sel].transpose(0, 2, 1)
                e = np.hypot(uv[:, 0], uv[:, 1])                                            # (V, n)
                e[proj[:, 2] <= 0] = np.inf                                      # behind the camera
                e[~used_sel] = np.nan
            points[sel] = X
            err[:, sel] = e
            if max_reprojection_error_px == np.inf:    # nothing to reject (the swap search's calls)
                break
            worst = np.argmax(np.where(np.isnan(e), -1.0, e), axis=0)
            worst_err = e[worst, np.arange(len(idx))]
            retry = (worst_err > max_reprojection_error_px) & (used_sel.sum(axis=0) > min_views)
            used[worst[retry], idx[retry]] = False
            todo[:] = False
            todo[idx[retry]] = True
        used_err = np.where(used, err, 0.0)
        finite = np.isfinite(points).all(axis=1) & active & np.isfinite(used_err).all(axis=0)
        if not finite.all():
            points[~finite] = np.nan
            used[:, ~finite] = False
            used_err[:, ~finite] = 0.0
        # the squared errors are finite wherever used (else not `finite` above)
        rms = np.where(finite, np.sqrt((used_err * used_err).sum(axis=0) / used.sum(axis=0)), np.nan)
    return Triangulation(points=points, reprojection_error_px=rms, views_used=used.T.copy(), view_error_px=err)
