"""Single-view placement: a person seen by ONE calibrated camera, placed in 3D on the cell's floor.

A camera ray gives a direction, not a depth. A person standing on the floor gives the depth:

1. **Feet** (preferred when they are seen): the rays of the ankle, heel and toe (foot index)
   keypoints are intersected with the horizontal plane at that keypoint's height above the floor
   (`FOOT_HEIGHTS_M`); the standing position G is the mean of those points on the floor.
2. **Torso prior** (when no foot is usable: cut off at the image border, low visibility, or
   their rays too close to the horizon): the torso of a standing person is a vertical segment
   of known length from the hip midpoint up to the shoulder midpoint (`TORSO_LENGTH_M`); the
   point H on the hip midpoint's ray such that H + L z lies on the shoulder midpoint's ray
   (least squares) gives the depth, G = H projected on the floor.

The feet are used when they are usable, the torso prior otherwise. Either placement must put the
hips at a standing person's height above the floor (`HIP_HEIGHT_RANGE_M`): a placement that
does not (misdetected or lifted feet, a crouching or seated person) is rejected, and the next
basis is tried; with none left the person is not placed (his track coasts, and is lost in time).

**The rest of the skeleton** lies where its rays meet the vertical plane through G facing the
camera (normal: the horizontal direction from the camera to G). Why not the body's depth along
the optical axis for every keypoint (a fronto-parallel plane)? A cell camera looks down on the
people (often 20-45 degrees); a fronto-parallel plane is tilted by that angle, which would lean
the placed skeleton back, the head 0.5 m or more behind the feet for a 1.7 m person seen 30
degrees from above. A standing person is upright, so the vertical plane keeps the skeleton
upright and consistent with the feet. The feet themselves keep their own floor intersections.

**Uncertainty** (1 sigma, metres; `FloorPlacement.sigma_m`). The standing position's sigma is
propagated through the geometry by finite differences (the exact Jacobian of the ray-plane
intersection, not a small-angle formula): pixel noise `pixel_sigma_px` on u and v of each
keypoint used, and the spread of the prior (foot keypoint height `FOOT_HEIGHT_SIGMA_M`, or the
torso length and lean `TORSO_LENGTH_SIGMA_M`). For a foot ray at angle theta below the horizon
from a camera h above the foot plane, the depth error is (D^2 + h^2) / h per radian of pixel
error: a foot near the horizon gives a huge sigma, and the torso prior wins. The foot points
share the same camera and prior, so their errors are treated as fully correlated: the sigma of
their mean is the mean of their sigmas (not divided by sqrt(n)). Every other keypoint adds its
distance from the body plane (`OFF_PLANE_SIGMA_M`: half a chest depth for the trunk, a reach for
the hands) and its own pixel noise at its range. These errors are biases that persist from frame
to frame, so the tracker never lets its filter average them down (`safety.perception.tracker`).

Pure functions, no state; thread-safe.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from content.calibration import CameraCalibration
from safety.perception.triangulation import undistort_points


class Placement(str, enum.Enum):
    """How a track's 3D keypoints were obtained (the `placement` of the track output).

    TRIANGULATED: from two or more views (`safety.perception.triangulation`).
    FLOOR: from one view, on the floor plane of the cell (this module): larger sigma_m.
    """

    TRIANGULATED = "triangulated"
    FLOOR = "floor"


class PlacementBasis(str, enum.Enum):
    """What gave a floor placement its depth."""

    FEET = "feet"
    TORSO = "torso"


_ANKLES = (27, 28)
_HEELS = (29, 30)
_TOES = (31, 32)
_SHOULDERS = (11, 12)
_HIPS = (23, 24)
FOOT_POINTS = _ANKLES + _HEELS + _TOES

#: Height above the floor of the foot landmarks, metres: ankle (lateral malleolus, about 7 cm for
#: adults in shoes, DIN 33402-2 / NASA-STD-3000 Vol. I "ankle height" is 6-9 cm barefoot plus a
#: 1-3 cm sole), heel (the back of the heel: 3 cm) and toe tip (2 cm).
FOOT_HEIGHTS_M: dict[int, float] = {27: 0.08, 28: 0.08, 29: 0.03, 30: 0.03, 31: 0.02, 32: 0.02}
#: 1-sigma spread of those heights, metres (person, shoe, where on the foot the detector puts it;
#: a foot lifted while walking is the one-sided tail: a step lifts the heel 10-15 cm).
FOOT_HEIGHT_SIGMA_M = 0.04
#: Torso length of a standing adult, hip joint centre to shoulder joint centre, vertical, metres:
#: shoulder (acromion) height minus hip (trochanter) height. Means from ANSUR II (Gordon et al.
#: 2014, NATICK/TR-15/007, over the survey's public data files as a public summary quotes them,
#: not recomputed here): acromial height 1335 / 1441 mm,
#: trochanterion height 845 / 901 mm (women / men), so 0.49 / 0.54 m. The percentile ends, about
#: 0.44 m (5th percentile female) to 0.56 m (95th percentile male) after DIN 33402-2 and
#: NASA-STD-3000 Vol. I, are not checked against the printed tables.
TORSO_LENGTH_M = 0.50
#: 1-sigma spread of the effective vertical torso length, metres: the percentile spread above
#: (+-0.06 m at 1.645 sigma: 0.036 m) and a forward lean of up to 30 degrees while working
#: (cos 30 = 0.87: 0.03 m at 1 sigma), added in quadrature.
TORSO_LENGTH_SIGMA_M = 0.047
#: 1-sigma relative error of the torso length seen in the image beyond the two terms above: where
#: MediaPipe puts the hip joint under clothing, and leans beyond 30 degrees. On Pose2Sim
#: Demo_SinglePerson (bench/floor_placement.py) the subject bends up to 43 degrees towards cam02,
#: which places him up to 1.2 m too near that camera; the anthropometric spread and pixel noise
#: alone covered the torso placement's error in only 54-78 % of frames. With this term its sigma
#: is about 1 m at 4 m and covers 69-100 % of frames per camera: the torso prior is a last
#: resort that keeps a person in the picture, with a sigma that makes the monitor cautious.
TORSO_KEYPOINT_SIGMA = 0.30
#: 1-sigma distance of a keypoint from the vertical body plane, metres, by landmark: trunk and
#: head half a chest depth, knees a stride, elbows and hands a forward reach.
OFF_PLANE_SIGMA_M = np.array(
    [0.15] * 11                     # head
    + [0.15, 0.15, 0.30, 0.30]      # shoulders, elbows
    + [0.40] * 8                    # wrists and hands
    + [0.15, 0.15, 0.25, 0.25]      # hips, knees
    + [0.25] * 6)                   # ankles, heels, toes (used when their floor point is not)
#: Height above the floor of the hip keypoints' midpoint that a standing adult's placement must
#: give, metres: trochanterion height means 0.845 m (women) and 0.901 m (men) in ANSUR II (Gordon
#: et al. 2014), about 0.78 m (5th percentile female) to 1.0 m (95th percentile male) after
#: DIN 33402-2 / NASA-STD-3000 tables (ends not checked), plus shoes, with a margin for a bent
#: knee or a walking stride. A placement outside it is rejected (the feet misdetected or lifted,
#: the person crouching or seated): the torso prior is tried, else the person is not placed.
HIP_HEIGHT_RANGE_M = (0.55, 1.25)
#: Default 2D noise of a keypoint, as a fraction of the image diagonal (MediaPipe's landmarks of
#: one person disagree between views by about 1 % of the image height, docs/perception.md).
PIXEL_SIGMA_FRACTION = 0.01
#: A foot or torso ray must point at least this far below the horizon (radians) to be used;
#: nearer the horizon the depth is unbounded.
MIN_DEPRESSION_RAD = np.deg2rad(1.0)
#: A foot keypoint within this fraction of the image size from the border is taken as cut off.
BORDER_FRACTION = 0.01
#: Farthest standing position accepted from the camera, metres (horizontal).
MAX_RANGE_M = 30.0


@dataclass(frozen=True)
class FloorPlacement:
    """One person placed from one view.

    Attributes:
        keypoints_cell: (33, 3) float64, metres, `cell` frame; NaN where not placed.
        sigma_m: (33,) float64, metres, 1-sigma 3D position error of each keypoint; NaN where
            not placed.
        ground_cell: (3,) float64, metres, `cell` frame: the standing position on the floor.
        ground_sigma_m: 1-sigma error of `ground_cell`, metres.
        basis: what gave the depth (`PlacementBasis`).
    """

    keypoints_cell: np.ndarray
    sigma_m: np.ndarray
    ground_cell: np.ndarray
    ground_sigma_m: float
    basis: PlacementBasis


def _ray_matrix(cal: CameraCalibration, T: np.ndarray) -> np.ndarray:
    """(3, 3) matrix taking homogeneous undistorted pixels (u, v, 1) to ray directions in `cell`
    (R^T K^-1 rotated by `T`); computed once per placement instead of a solve per ray."""
    return T[:3, :3] @ cal.R.T @ np.linalg.inv(cal.K)


def _rays(M: np.ndarray, und_px: np.ndarray) -> np.ndarray:
    """(N, 3) unit ray directions in `cell` of undistorted pixels (N, 2), `M` from `_ray_matrix`."""
    d = und_px @ M[:, :2].T + M[:, 2]
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def _floor_hit(centre: np.ndarray, d: np.ndarray, z: float) -> np.ndarray:
    """Where the ray meets the plane at height z (NaN when it does not, in front, steeply enough)."""
    horizontal = float(np.hypot(d[0], d[1]))
    if not (d[2] < 0 and -d[2] >= np.sin(MIN_DEPRESSION_RAD) * np.hypot(horizontal, d[2])):
        return np.full(3, np.nan)
    s = (z - centre[2]) / d[2]
    p = centre + s * d
    if s <= 0 or np.hypot(*(p[:2] - centre[:2])) > MAX_RANGE_M:
        return np.full(3, np.nan)
    return p


def _torso_hip(centre: np.ndarray, d_hip: np.ndarray, d_shoulder: np.ndarray, length_m: float) -> np.ndarray:
    """The hip midpoint H on its ray such that H + length z is nearest the shoulder ray."""
    A = np.column_stack([d_hip, -d_shoulder])
    st, *_ = np.linalg.lstsq(A, np.array([0.0, 0.0, -length_m]), rcond=None)
    if st[0] <= 0 or st[1] <= 0:
        return np.full(3, np.nan)
    return centre + st[0] * d_hip


def place_on_floor(calibration: CameraCalibration, keypoints_px: np.ndarray, visibility: np.ndarray, *,
                   world_to_cell: np.ndarray | None = None, floor_z_m: float = 0.0, min_confidence: float = 0.3,
                   min_foot_confidence: float = 0.5, pixel_sigma_px: float | None = None) -> FloorPlacement | None:
    """Place one person seen by one camera on the floor (module docstring).

    Args:
        calibration: the camera (intrinsics at the resolution of `keypoints_px`; extrinsics
            world -> camera).
        keypoints_px: (33, 2) float, distorted pixels; NaN where not detected.
        visibility: (33,) float in [0, 1].
        world_to_cell: (4, 4) transform from the calibration's world frame to `cell` (identity).
        floor_z_m: height of the floor in `cell`, metres (z up).
        min_confidence: keypoints below this visibility are not placed.
        min_foot_confidence: foot keypoints below this visibility do not give the depth.
        pixel_sigma_px: 1-sigma keypoint noise, pixels; default `PIXEL_SIGMA_FRACTION` of the
            image diagonal.

    Returns:
        The placement, or None when neither the feet nor the torso give a depth that puts the
        hips at a standing person's height (`HIP_HEIGHT_RANGE_M`).
    """
    T = np.eye(4) if world_to_cell is None else np.asarray(world_to_cell, dtype=np.float64)
    kp = np.asarray(keypoints_px, dtype=np.float64).reshape(33, 2)
    vis = np.asarray(visibility, dtype=np.float64).reshape(33)
    w, h = calibration.image_size
    sigma_px = PIXEL_SIGMA_FRACTION * float(np.hypot(w, h)) if pixel_sigma_px is None else float(pixel_sigma_px)
    und = undistort_points(calibration, kp)
    ok = np.isfinite(und).all(axis=1) & (vis >= min_confidence)
    centre = T[:3, :3] @ calibration.center_world + T[:3, 3]

    M = _ray_matrix(calibration, T)

    def ray(px: np.ndarray) -> np.ndarray:
        d = M[:, 0] * px[0] + M[:, 1] * px[1] + M[:, 2]
        return d / np.sqrt(d @ d)

    # --- feet: each usable foot keypoint on the plane at its height
    margin = BORDER_FRACTION * np.array([w, h])
    candidates = []
    for i in FOOT_POINTS:
        if not ok[i] or vis[i] < min_foot_confidence:
            continue
        if np.any(kp[i] < margin) or np.any(kp[i] > np.array([w, h]) - 1 - margin):
            continue                                       # cut off at the image border
        z = floor_z_m + FOOT_HEIGHTS_M[i]

        def ground(du: float, dv: float, dz: float, i: int = i, z: float = z) -> np.ndarray:
            return _floor_hit(centre, ray(und[i] + (du, dv)), z + dz)

        p = ground(0, 0, 0)
        if not np.isfinite(p).all():
            continue
        jac = [ground(sigma_px, 0, 0) - p, ground(0, sigma_px, 0) - p, ground(0, 0, FOOT_HEIGHT_SIGMA_M) - p]
        if not all(np.isfinite(j).all() for j in jac):
            continue                                       # within one sigma of the horizon: no depth
        candidates.append((i, p, float(np.sqrt(sum(float(j @ j) for j in jac)))))
    feet = None
    # A standing body's centre of mass is above the midfoot, a few cm ahead of the ankles
    # (quiet stance): the standing position is the inverse-variance mean of the usable foot
    # points (ankle, heel, toe of each foot).
    standing = candidates
    if standing:
        weights = np.array([1.0 / s ** 2 for _, _, s in standing])
        weights /= weights.sum()
        g = sum(wk * np.array([p[0], p[1], floor_z_m]) for wk, (_, p, _) in zip(weights, standing))
        noise = float(sum(wk * s for wk, (_, _, s) in zip(weights, standing)))
        # foot points that disagree in depth (a lifted foot lands farther along its ray, or a
        # stride along the view): their spread about g along the viewing direction counts too
        # (not across it: the feet stand apart sideways)
        view = g[:2] - centre[:2]
        view /= max(float(np.linalg.norm(view)), 1e-9)
        spread2 = float(sum(wk * float((p[:2] - g[:2]) @ view) ** 2 for wk, (_, p, _) in zip(weights, standing)))
        feet = (g, float(np.sqrt(noise ** 2 + spread2)))

    # --- torso prior: a vertical hip-to-shoulder segment of TORSO_LENGTH_M (worked out only when
    # the feet give no placement)
    def torso() -> tuple[np.ndarray, float] | None:
        if not ok[list(_HIPS + _SHOULDERS)].all():
            return None
        hip_px = und[list(_HIPS)].mean(axis=0)
        sh_px = und[list(_SHOULDERS)].mean(axis=0)

        def hip(dh: np.ndarray, ds: np.ndarray, dl: float) -> np.ndarray:
            return _torso_hip(centre, ray(hip_px + dh), ray(sh_px + ds), TORSO_LENGTH_M + dl)

        zero = np.zeros(2)
        H = hip(zero, zero, 0.0)
        if not np.isfinite(H).all():
            return None
        # the midpoints average two keypoints: their noise is sigma / sqrt(2)
        s2 = sigma_px / np.sqrt(2.0)
        jac = [hip(np.array([s2, 0.0]), zero, 0.0) - H, hip(np.array([0.0, s2]), zero, 0.0) - H,
               hip(zero, np.array([s2, 0.0]), 0.0) - H, hip(zero, np.array([0.0, s2]), 0.0) - H,
               hip(zero, zero, TORSO_LENGTH_SIGMA_M) - H,
               hip(zero, zero, TORSO_KEYPOINT_SIGMA * TORSO_LENGTH_M) - H]
        if not all(np.isfinite(j).all() for j in jac):
            return None
        sig = float(np.sqrt(sum(float(j[:2] @ j[:2]) for j in jac)))
        return np.array([H[0], H[1], floor_z_m]), sig

    d = _rays(M, np.where(ok[:, None], und, 0.0))
    focal = float(np.sqrt(calibration.K[0, 0] * calibration.K[1, 1]))
    for basis in (PlacementBasis.FEET, PlacementBasis.TORSO):
        option = feet if basis is PlacementBasis.FEET else torso()
        if option is None:
            continue
        g, g_sigma = option
        placed = _skeleton(centre, d, ok, g, g_sigma, sigma_px, focal,
                           candidates if basis is PlacementBasis.FEET else [])
        if placed is None:
            continue
        pts, sig = placed
        hip_height = float(np.mean(pts[list(_HIPS), 2])) - floor_z_m
        # The placement assumes a person standing on the floor: the hips it gives must be at a
        # standing person's height, else the feet were misdetected, lifted or the person crouches.
        if np.isfinite(hip_height) and HIP_HEIGHT_RANGE_M[0] <= hip_height <= HIP_HEIGHT_RANGE_M[1]:
            return FloorPlacement(keypoints_cell=pts, sigma_m=sig, ground_cell=g, ground_sigma_m=g_sigma,
                                  basis=basis)
    return None


def _skeleton(centre: np.ndarray, d: np.ndarray, ok: np.ndarray, g: np.ndarray, g_sigma: float, sigma_px: float,
              focal: float, feet: list) -> tuple[np.ndarray, np.ndarray] | None:
    """Every keypoint on its ray at the vertical plane through g facing the camera: (33, 3)
    points and (33,) sigmas, metres; the feet (index, point, sigma) keep their own floor points.
    None when the camera is straight above g (no body plane)."""
    n = np.array([g[0] - centre[0], g[1] - centre[1], 0.0])
    if np.linalg.norm(n) < 1e-6:
        return None
    n /= np.linalg.norm(n)
    pts = np.full((33, 3), np.nan)
    sig = np.full(33, np.nan)
    cos = d @ n
    on = ok & (cos >= 0.2)                                  # else the ray is nearly parallel to the body plane
    s = float(n @ (g - centre)) / cos[on]
    pts[on] = centre + s[:, None] * d[on]
    # moving the plane by dn moves the point by dn / cos along the ray
    sig[on] = np.sqrt(((g_sigma ** 2 + OFF_PLANE_SIGMA_M[on] ** 2) / cos[on] ** 2) + (sigma_px * s / focal) ** 2)
    for i, p, s_i in feet:
        pts[i] = p
        sig[i] = s_i
    return pts, sig
