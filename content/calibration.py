"""Camera calibration records and readers.

Convention (OpenCV pinhole): a point X in the calibration's world frame maps to
the camera frame as x_cam = R @ X + t; pixels u = K @ (x_cam / z) with the
distortion `dist` (k1, k2, p1, p2, k3). Units: metres, pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraCalibration:
    """Intrinsics and extrinsics of one camera.

    Attributes:
        name: camera name in the calibration file.
        image_size: (width, height) in pixels that K refers to.
        K: (3, 3) float64 camera matrix, pixels.
        dist: (5,) float64 OpenCV distortion (k1, k2, p1, p2, k3).
        R: (3, 3) float64 rotation world -> camera.
        t: (3,) float64 translation world -> camera, metres.
    """

    name: str
    image_size: tuple[int, int]
    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray

    @property
    def projection(self) -> np.ndarray:
        """(3, 4) projection matrix K [R | t] (undistorted pixels)."""
        return self.K @ np.hstack([self.R, self.t.reshape(3, 1)])

    @property
    def center_world(self) -> np.ndarray:
        """(3,) camera centre in the world frame, metres."""
        return -self.R.T @ self.t

    def scaled(self, factor: float) -> "CameraCalibration":
        """The same camera for images resized by `factor` (intrinsics scaled)."""
        K = self.K.copy()
        K[:2] *= factor
        w, h = self.image_size
        return CameraCalibration(self.name, (round(w * factor), round(h * factor)), K, self.dist.copy(), self.R, self.t)
