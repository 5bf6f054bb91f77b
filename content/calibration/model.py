"""The camera calibration record and the checks every reader applies to its fields.

Convention (OpenCV pinhole): a point X in the `cell` frame maps to the camera
(optical) frame as x_cam = R @ X + t; pixels u = K @ (x_cam / z) with the OpenCV
distortion `dist`. Units: metres, pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np

from content.errors import CalibrationError

T = TypeVar("T")

#: Lengths of an OpenCV distortion vector (k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4[, tx, ty]]]]).
DISTORTION_LENGTHS = (4, 5, 8, 12, 14)


@dataclass(frozen=True)
class CameraCalibration:
    """Intrinsics and extrinsics of one camera.

    Attributes:
        name: camera name in the calibration file.
        image_size: (width, height) in pixels that K refers to.
        K: (3, 3) float64 camera matrix, pixels.
        dist: (N,) float64 OpenCV distortion, N in 5, 8, 12, 14: (k1, k2, p1, p2, k3[, k4, k5,
            k6[, s1, s2, s3, s4[, tx, ty]]]); readers pad a 4-vector with k3 = 0.
        R: (3, 3) float64 rotation `cell` -> camera optical frame.
        t: (3,) float64 translation `cell` -> camera optical frame, metres.
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
        """(3,) camera centre in the world (`cell`) frame, metres."""
        return -self.R.T @ self.t

    def scaled(self, factor: float) -> CameraCalibration:
        """The same camera for images resized by `factor` (intrinsics scaled)."""
        K = self.K.copy()
        K[:2] *= factor
        w, h = self.image_size
        return CameraCalibration(self.name, (round(w * factor), round(h * factor)), K, self.dist.copy(), self.R, self.t)


def extrinsics_from_pose(position_m: object, *, quaternion_xyzw: object = None,
                         rpy: object = None) -> tuple[np.ndarray, np.ndarray]:
    """World -> camera extrinsics from the pose of the camera optical frame in the `cell` frame.

    The optical frame is REP 103's `<camera>_optical_frame`: z along the optical axis into the
    scene, x to the right of the image, y down the image. Exactly one of `quaternion_xyzw` and
    `rpy` gives the orientation.

    Args:
        position_m: (3,) optical centre in the `cell` frame, metres.
        quaternion_xyzw: (4,) orientation of the optical frame in `cell`, (x, y, z, w); normalised.
        rpy: (3,) roll, pitch, yaw in radians about the fixed `cell` axes x, y, z (REP 103),
            i.e. R = Rz(yaw) @ Ry(pitch) @ Rx(roll).

    Returns:
        (R, t): (3, 3) rotation and (3,) translation, `cell` -> optical frame, metres.

    Raises:
        ValueError: not exactly one orientation, a zero quaternion or a wrong shape.
    """
    from scipy.spatial.transform import Rotation

    if (quaternion_xyzw is None) == (rpy is None):
        raise ValueError("give exactly one of quaternion (x, y, z, w) or rpy (radians)")
    position = np.asarray(position_m, dtype=np.float64).reshape(3)
    if quaternion_xyzw is not None:
        q = np.asarray(quaternion_xyzw, dtype=np.float64).reshape(4)
        if not np.linalg.norm(q) > 1e-9:
            raise ValueError("quaternion must not be zero")
        rotation = Rotation.from_quat(q / np.linalg.norm(q)).as_matrix()
    else:
        rotation = Rotation.from_euler("xyz", np.asarray(rpy, dtype=np.float64).reshape(3)).as_matrix()
    R = rotation.T
    return R, -R @ position


def pose_from_extrinsics(R: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of `extrinsics_from_pose`: (position (3,) metres, quaternion (4,) x, y, z, w) of the
    camera optical frame in the `cell` frame."""
    from scipy.spatial.transform import Rotation

    return -R.T @ t, Rotation.from_matrix(R.T).as_quat()


# -- checks shared by the readers; `where` is "<file>: camera '<name>'" -----------------------------

def load_file(path: Path, load: Callable[[Path], T], syntax_error: type[Exception], what: str,
              syntax: str) -> T:
    """`load(path)`, every failure of it a `CalibrationError` that names the file.

    Args:
        path: the calibration file.
        load: reads and parses it.
        syntax_error: what `load` raises on a malformed file (e.g. `yaml.YAMLError`).
        what: the format, as in "not a `what`" (e.g. "Pose2Sim calibration").
        syntax: the file syntax, as in "(`syntax` error: ...)" (e.g. "TOML").

    Raises:
        CalibrationError: ``calibration file not found``, ``cannot read calibration file: <reason>``
            or ``not a <what> (<syntax> error: <parser message>)``.
    """
    try:
        return load(path)
    except FileNotFoundError:
        raise CalibrationError(f"{path}: calibration file not found") from None
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot read calibration file: {exc.strerror}") from None
    except syntax_error as exc:
        raise CalibrationError(f"{path}: not a {what} ({syntax} error: {exc})") from None


def where(path: Path, camera: str) -> str:
    return f"{path}: camera {camera!r}"


def as_array(where_: str, field: str, value: object, size: int | tuple[int, ...]) -> np.ndarray:
    """`value` as a finite float64 array of `size` elements (or one of several sizes), flattened."""
    try:
        arr = np.asarray(value, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise CalibrationError(f"{where_}: {field} must be numbers, got {value!r}") from None
    sizes = (size,) if isinstance(size, int) else size
    if arr.size not in sizes:
        expected = " or ".join(str(s) for s in sizes)
        raise CalibrationError(f"{where_}: {field} must have {expected} numbers, got {arr.size}")
    if not np.all(np.isfinite(arr)):
        raise CalibrationError(f"{where_}: {field} has a value that is not finite: {arr.tolist()}")
    return arr


def camera_matrix(where_: str, field: str, value: object) -> np.ndarray:
    """A checked (3, 3) camera matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]], fx, fy > 0."""
    K = as_array(where_, field, value, 9).reshape(3, 3)
    if not (K[0, 0] > 0 and K[1, 1] > 0 and np.allclose(K[1, 0], 0) and np.allclose(K[2], [0, 0, 1])):
        raise CalibrationError(f"{where_}: {field} is not a camera matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] "
                               f"with fx, fy > 0: {K.tolist()}")
    return K


def distortion(where_: str, field: str, value: object) -> np.ndarray:
    """A checked OpenCV distortion vector; 4 coefficients are padded with k3 = 0."""
    d = as_array(where_, field, value, DISTORTION_LENGTHS)
    return np.append(d, 0.0) if d.size == 4 else d


def image_size(where_: str, field: str, width: object, height: object) -> tuple[int, int]:
    """A checked (width, height) in pixels; whole numbers > 0."""
    wh = as_array(where_, field, [width, height], 2)
    if not (np.all(wh > 0) and np.all(wh == np.round(wh))):
        raise CalibrationError(f"{where_}: {field} must be whole numbers of pixels > 0, got {wh.tolist()}")
    return int(wh[0]), int(wh[1])


def rotation_matrix(where_: str, field: str, value: object) -> np.ndarray:
    """A checked (3, 3) rotation matrix (orthonormal, det +1)."""
    R = as_array(where_, field, value, 9).reshape(3, 3)
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
        raise CalibrationError(f"{where_}: {field} is not a rotation matrix: {R.tolist()}")
    return R


def rodrigues(where_: str, field: str, value: object) -> np.ndarray:
    """(3, 3) rotation from a checked Rodrigues (axis * angle, radians) 3-vector."""
    import cv2

    return cv2.Rodrigues(as_array(where_, field, value, 3))[0]


def complete(where_: str, name: str, size: tuple[int, int], K: np.ndarray, dist: np.ndarray,
             file_extrinsics: tuple[np.ndarray, np.ndarray] | None, extrinsics: tuple[np.ndarray, np.ndarray] | None,
             file_fields: str) -> CameraCalibration:
    """The record, with the extrinsics from the file or from the cell file's pose (exactly one).

    Args:
        file_fields: the names of the file's extrinsic fields, for the messages.
    """
    if file_extrinsics is not None and extrinsics is not None:
        raise CalibrationError(f"{where_}: extrinsics given twice, by the file ({file_fields}) and by the "
                               "cell file's calibration.pose; keep one")
    chosen = file_extrinsics if file_extrinsics is not None else extrinsics
    if chosen is None:
        raise CalibrationError(f"{where_}: no extrinsics: the file has no {file_fields}; give the camera's pose "
                               "in the cell file (cameras[].calibration.pose)")
    R, t = chosen
    return CameraCalibration(name, size, K, dist, np.asarray(R, dtype=np.float64),
                             np.asarray(t, dtype=np.float64).reshape(3))
