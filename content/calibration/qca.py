"""Reader of Qualisys (QTM) calibration exports `*.qca.txt`, as used by Pose2Sim."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from content.calibration.model import CameraCalibration, load_file
from content.errors import CalibrationError

#: Qualisys stores intrinsics in sub-pixel units: 64 units per pixel.
QCA_SUBPIXELS_PER_PIXEL = 64.0

#: Rotation by 180 degrees about the camera x axis: Qualisys camera axes (y up, z
#: pointing away from the scene) to OpenCV camera axes (y down, z into the scene).
_QUALISYS_TO_OPENCV_CAMERA = np.diag([1.0, -1.0, -1.0])


def _qca_float(path: Path, camera: str, element: ET.Element | None, tag: str, attribute: str) -> float:
    if element is None:
        raise CalibrationError(f"{path}: camera {camera!r}: missing <{tag}> element")
    raw = element.get(attribute)
    if raw is None:
        raise CalibrationError(f"{path}: camera {camera!r}: <{tag}> has no attribute {attribute!r}")
    try:
        value = float(raw)
    except ValueError:
        raise CalibrationError(f"{path}: camera {camera!r}: <{tag}> attribute {attribute!r} "
                               f"is not a number: {raw!r}") from None
    if not np.isfinite(value):
        raise CalibrationError(f"{path}: camera {camera!r}: <{tag}> attribute {attribute!r} is not finite: {raw!r}")
    return value


def read_qca(path: str | Path) -> dict[str, CameraCalibration]:
    """Read a Qualisys (QTM) calibration export `*.qca.txt` (XML).

    Conventions of the file and what this reader does with them (verified on the
    Pose2Sim demo footage: triangulated MediaPipe keypoints reproject within a few
    pixels and the person stands on z = 0, z up):

    - `<intrinsic>` focalLengthU/V and centerPointU/V are in 1/64 pixel: divided by 64;
      the principal point is shifted by `<fov_video>` left/top (the video window on the
      sensor). radialDistortion1..3 and tangentalDistortion1..2 are OpenCV's k1, k2, k3,
      p1, p2 as they are (not divided; Pose2Sim's own converter `calib_qca_to_toml`
      divides them by 64 as well, which leaves them near zero).
    - `<transform>` r11..r33 is the matrix M (row-major as written) and x, y, z the
      camera position in the world, millimetres. The OpenCV world -> camera rotation is
      R = diag(1, -1, -1) @ M (M's rows are the camera axes in the world with Qualisys'
      y up / z backwards; the diagonal flips them to OpenCV's y down / z forwards) and
      t = -R @ position / 1000.
    - The image size is that of `<fov_video>`: (right - left + 1, bottom - top + 1).

    Args:
        path: the `.qca.txt` file.

    Returns:
        Calibrations by camera name (the `serial` attribute), in file order; world frame
        of the calibration (z up, metres).

    Raises:
        CalibrationError: the file is missing, is not XML, has no camera, or a camera
            lacks an element or attribute; the message names the file, the camera and the
            attribute.
    """
    path = Path(path)
    root = load_file(path, lambda p: ET.parse(p).getroot(), ET.ParseError, "Qualisys calibration",
                     "XML")
    cameras = root.findall("cameras/camera")
    if not cameras:
        raise CalibrationError(f"{path}: no <cameras>/<camera> element")
    result: dict[str, CameraCalibration] = {}
    for index, cam in enumerate(cameras):
        name = cam.get("serial")
        if not name:
            raise CalibrationError(f"{path}: camera #{index + 1}: <camera> has no attribute 'serial'")
        if name in result:
            raise CalibrationError(f"{path}: camera {name!r} appears twice")
        fov = cam.find("fov_video")
        left, right, top, bottom = (_qca_float(path, name, fov, "fov_video", a)
                                    for a in ("left", "right", "top", "bottom"))
        width, height = round(right - left + 1), round(bottom - top + 1)
        if width <= 0 or height <= 0:
            raise CalibrationError(f"{path}: camera {name!r}: <fov_video> gives an empty image {width}x{height}")
        intr = cam.find("intrinsic")

        def iv(attribute: str) -> float:
            return _qca_float(path, name, intr, "intrinsic", attribute)  # noqa: B023

        s = QCA_SUBPIXELS_PER_PIXEL
        fu, fv = iv("focalLengthU") / s, iv("focalLengthV") / s
        if fu <= 0 or fv <= 0:
            raise CalibrationError(f"{path}: camera {name!r}: <intrinsic> focal length must be positive")
        cu, cv = iv("centerPointU") / s - left, iv("centerPointV") / s - top
        K = np.array([[fu, iv("skew") / s if intr is not None and intr.get("skew") else 0.0, cu],
                      [0.0, fv, cv], [0.0, 0.0, 1.0]])
        k3 = iv("radialDistortion3") if intr is not None and intr.get("radialDistortion3") is not None else 0.0
        dist = np.array([iv("radialDistortion1"), iv("radialDistortion2"),
                         iv("tangentalDistortion1"), iv("tangentalDistortion2"), k3])
        tr = cam.find("transform")
        M = np.array([[_qca_float(path, name, tr, "transform", f"r{i}{j}") for j in (1, 2, 3)] for i in (1, 2, 3)])
        position_m = np.array([_qca_float(path, name, tr, "transform", a) for a in ("x", "y", "z")]) / 1000.0
        if not np.allclose(M @ M.T, np.eye(3), atol=1e-6) or np.linalg.det(M) < 0:
            raise CalibrationError(f"{path}: camera {name!r}: <transform> r11..r33 is not a rotation matrix")
        R = _QUALISYS_TO_OPENCV_CAMERA @ M
        t = -R @ position_m
        result[name] = CameraCalibration(name, (width, height), K, dist, R, t)
    return result

