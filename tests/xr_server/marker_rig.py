"""A synthetic marker scene with known truth, for the marker registration tests: the cell placed
in a WebXR local-floor space at a known transform, marker 7 of DICT_4X4_50 (15 cm) face up on a
table 0.8 m high near the cell origin, and HMI cameras at known poses whose images are the marker rendered
through the camera's intrinsics (`cv2.aruco.generateImageMarker` + `cv2.warpPerspective`), with
noise."""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from content.cell import FiducialMarker, MarkerPose
from xr_server.marker_alignment import marker_in_cell

MARKER = FiducialMarker(id=7, dictionary="DICT_4X4_50", size_m=0.15,
                        pose=MarkerPose(position=(0.6, 0.2, 0.8), rpy=(math.pi, 0.0, 0.0)))
#: The truth: the cell origin in local-floor and the turn about local-floor +y (web/alignment.js).
ORIGIN_XR = np.array([1.0, 0.0, -2.0])
YAW_RAD = math.radians(120.0)
VIEW_FROM_OPTICAL = np.diag([1.0, -1.0, -1.0])


def xr_from_cell_rotation(yaw_rad: float = YAW_RAD) -> np.ndarray:
    """local-floor <- cell: Ry(yaw) · Rx(-pi/2), as web/alignment.js `xrFromCellRotation`."""
    return Rotation.from_euler("y", yaw_rad).as_matrix() @ Rotation.from_euler("x", -math.pi / 2).as_matrix()


def camera_looking_at(target_cell, position_cell) -> np.ndarray:
    """The optical rotation (optical -> cell) of an upright camera at `position_cell` looking at
    `target_cell`."""
    forward = np.asarray(target_cell, float) - np.asarray(position_cell, float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return np.column_stack([right, np.cross(forward, right), forward])


def view_pose_xr(position_cell, rotation_cell: np.ndarray) -> tuple[list[float], list[float]]:
    """The WebXR view pose (local-floor position, orientation x, y, z, w) of that camera."""
    R = xr_from_cell_rotation()
    position = R @ np.asarray(position_cell, float) + ORIGIN_XR
    orientation = Rotation.from_matrix(R @ rotation_cell @ VIEW_FROM_OPTICAL).as_quat()
    return position.tolist(), orientation.tolist()


def intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    f = width / (2 * math.tan(math.radians(hfov_deg) / 2))
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def render(position_cell, rotation_cell: np.ndarray, width: int = 640, height: int = 480,
           hfov_deg: float = 70.0, noise: float = 3.0, seed: int = 0, marker: FiducialMarker = MARKER,
           background: int = 150) -> np.ndarray:
    """(H, W, 3) uint8 BGR: the marker (with a white quiet zone) seen by the camera at
    `position_cell` with optical rotation `rotation_cell`, on a grey wall, with Gaussian noise."""
    side = 240
    border = side // 4
    tag = cv2.aruco.generateImageMarker(cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, marker.dictionary)),
                                        marker.id, side)
    card = np.full((side + 2 * border, side + 2 * border), 255, np.uint8)
    card[border:border + side, border:border + side] = tag
    # card pixel (u, v) -> marker frame (x right, y down, z into the marker), metres
    scale = marker.size_m / side
    A = np.array([[scale, 0, (0.5 - border) * scale - marker.size_m / 2],
                  [0, scale, (0.5 - border) * scale - marker.size_m / 2], [0, 0, 1.0]])
    R_cm, p_cm = marker_in_cell(marker)
    R_oc = rotation_cell.T
    t_oc = -R_oc @ np.asarray(position_cell, float)
    R_om, t_om = R_oc @ R_cm, R_oc @ p_cm + t_oc
    K = intrinsics(width, height, hfov_deg)
    H = K @ np.column_stack([R_om[:, 0], R_om[:, 1], t_om]) @ A
    image = np.full((height, width), background, np.uint8)
    warped = cv2.warpPerspective(card, H, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpPerspective(np.full_like(card, 255), H, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    alpha = mask.astype(np.float64) / 255.0
    out = alpha * warped + (1 - alpha) * image
    out += np.random.default_rng(seed).normal(0.0, noise, out.shape)
    gray = np.clip(out, 0, 255).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


#: A camera at head height, 0.7 m from the marker (about 65 px across at 640x480), looking at it.
CAMERA_POSITION = (0.1, 0.2, 1.4)
CAMERA_ROTATION = camera_looking_at(MARKER.pose.position, CAMERA_POSITION)
