"""OpenCV `cv::FileStorage` calibration files (YAML, XML or JSON), read and written with cv2.

One camera per file. Accepted keys (exactly one of each alternative group):

| what | keys |
|---|---|
| camera matrix (3x3) | `camera_matrix`, `cameraMatrix`, `K` |
| distortion (4, 5, 8, 12 or 14) | `distortion_coefficients`, `dist_coeffs`, `distCoeffs`, `D` |
| image size, pixels | `image_width` + `image_height`, or `cameraResolution` [w, h] |
| rotation `cell` -> camera (optional) | `rvec` (Rodrigues 3-vector, radians) or `R` (3x3) |
| translation `cell` -> camera, metres (optional) | `tvec` or `T` (3 numbers) |
| camera name (optional) | `camera_name`; else the file name without its extension |

These are the names written by OpenCV's `calibration.cpp` sample (`camera_matrix`,
`distortion_coefficients`, `image_width`, `image_height`), its interactive calibration
tool (`cameraMatrix`, `dist_coeffs`, `cameraResolution`) and the common short forms. A
matrix may be an `!!opencv-matrix` (`opencv-matrix` node in XML) or a plain sequence. The
translation must be in metres (OpenCV leaves the unit to the board's square size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from content.calibration.model import (
    CameraCalibration,
    as_array,
    camera_matrix,
    complete,
    distortion,
    image_size,
    rodrigues,
    rotation_matrix,
    where,
)
from content.errors import CalibrationError

OPENCV_CAMERA_MATRIX_KEYS = ("camera_matrix", "cameraMatrix", "K")
OPENCV_DISTORTION_KEYS = ("distortion_coefficients", "dist_coeffs", "distCoeffs", "D")
OPENCV_ROTATION_KEYS = ("rvec", "R")
OPENCV_TRANSLATION_KEYS = ("tvec", "T")
_SUFFIXES = (".yaml", ".yml", ".xml", ".json", ".gz")


def _open(path: Path):
    import cv2

    if not path.is_file():
        raise CalibrationError(f"{path}: calibration file not found")
    level = cv2.getLogLevel()
    cv2.setLogLevel(0)   # silent: OpenCV would log "Can't open file" itself; the error below says it
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_READ)
    except (cv2.error, SystemError) as exc:
        detail = str(exc.__cause__ or exc).strip().splitlines()[-1].split(" error: ", 1)[-1]
        raise CalibrationError(f"{path}: not an OpenCV FileStorage file (YAML, XML or JSON): {detail}") from None
    finally:
        cv2.setLogLevel(level)
    if not fs.isOpened():
        raise CalibrationError(f"{path}: not an OpenCV FileStorage file (YAML, XML or JSON)")
    return fs


def _value(where_: str, key: str, node) -> object:
    """A FileNode as a number, a string or a nested list of numbers."""
    import cv2

    if node.isInt() or node.isReal():
        return node.real()
    if node.isString():
        return node.string()
    if node.isSeq():
        return [_value(where_, key, node.at(i)) for i in range(node.size())]
    if node.isMap():
        try:
            mat = node.mat()
        except cv2.error:
            mat = None
        if mat is None:
            raise CalibrationError(f"{where_}: {key} is a map but not an opencv-matrix")
        return mat
    raise CalibrationError(f"{where_}: {key} is empty")


def _one_of(fs, where_: str, keys: tuple[str, ...]) -> tuple[str, object] | None:
    present = [k for k in keys if not fs.getNode(k).empty()]
    if len(present) > 1:
        raise CalibrationError(f"{where_}: both {present[0]!r} and {present[1]!r} are given; keep one")
    if not present:
        return None
    return present[0], _value(where_, present[0], fs.getNode(present[0]))


def read_opencv(path: str | Path, *,
                extrinsics: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, CameraCalibration]:
    """Read an OpenCV FileStorage calibration (keys: see the module docstring).

    Args:
        path: `.yaml`, `.yml`, `.xml` or `.json` file.
        extrinsics: (R (3, 3), t (3,)) `cell` -> camera, from the cell file's pose, for a file
            without `rvec`/`tvec` or `R`/`T`.

    Returns:
        {camera name: calibration}, one camera.

    Raises:
        CalibrationError: the file is missing or not FileStorage, a key is missing, given twice
            or malformed, or the extrinsics are missing or given twice; the message names the
            file, the camera and the key.
    """
    path = Path(path)
    fs = _open(path)
    try:
        name_node = fs.getNode("camera_name")
        name = name_node.string() if not name_node.empty() and name_node.isString() else None
        if not name:
            name = path.name
            while Path(name).suffix.lower() in _SUFFIXES:
                name = name[: -len(Path(name).suffix)]
        w = where(path, name)
        found = _one_of(fs, w, OPENCV_CAMERA_MATRIX_KEYS)
        if found is None:
            raise CalibrationError(f"{w}: no camera matrix (one of {', '.join(OPENCV_CAMERA_MATRIX_KEYS)})")
        K = camera_matrix(w, found[0], found[1])
        found = _one_of(fs, w, OPENCV_DISTORTION_KEYS)
        if found is None:
            raise CalibrationError(f"{w}: no distortion coefficients (one of {', '.join(OPENCV_DISTORTION_KEYS)})")
        dist = distortion(w, found[0], found[1])
        if not fs.getNode("cameraResolution").empty():
            wh = as_array(w, "cameraResolution", _value(w, "cameraResolution", fs.getNode("cameraResolution")), 2)
            size = image_size(w, "cameraResolution", wh[0], wh[1])
        else:
            for key in ("image_width", "image_height"):
                if fs.getNode(key).empty():
                    raise CalibrationError(f"{w}: no {key} (or cameraResolution)")
            size = image_size(w, "image_width/image_height", _value(w, "image_width", fs.getNode("image_width")),
                              _value(w, "image_height", fs.getNode("image_height")))
        rotation = _one_of(fs, w, OPENCV_ROTATION_KEYS)
        translation = _one_of(fs, w, OPENCV_TRANSLATION_KEYS)
    finally:
        fs.release()
    if (rotation is None) != (translation is None):
        have, missing = (rotation, "tvec or T") if rotation is not None else (translation, "rvec or R")
        raise CalibrationError(f"{w}: {have[0]} is given without {missing}")
    file_extrinsics = None
    if rotation is not None and translation is not None:
        key, value = rotation
        R = rodrigues(w, key, value) if key == "rvec" else rotation_matrix(w, key, value)
        file_extrinsics = (R, as_array(w, translation[0], translation[1], 3))
    return {name: complete(w, name, size, K, dist, file_extrinsics, extrinsics, "rvec/tvec or R/T")}


def write_opencv(path: str | Path, calibration: CameraCalibration, *, comments: tuple[str, ...] = ()) -> None:
    """Write one camera as an OpenCV FileStorage file that `read_opencv` and OpenCV read.

    Keys: `camera_name`, `image_width`, `image_height`, `camera_matrix` (3x3),
    `distortion_coefficients` (1xN), `rvec` and `tvec` (3x1; `cell` -> camera, metres). The
    format follows the extension (`.yaml`/`.yml`, `.xml`, `.json`).

    Raises:
        CalibrationError: the file cannot be written.
    """
    import cv2

    path = Path(path)
    try:
        fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    except (cv2.error, SystemError) as exc:
        raise CalibrationError(f"{path}: cannot write calibration file: {exc.__cause__ or exc}") from None
    if not fs.isOpened():
        raise CalibrationError(f"{path}: cannot write calibration file")
    try:
        for comment in comments:
            fs.writeComment(comment)
        fs.write("camera_name", calibration.name)
        fs.write("image_width", int(calibration.image_size[0]))
        fs.write("image_height", int(calibration.image_size[1]))
        fs.write("camera_matrix", np.asarray(calibration.K, dtype=np.float64))
        fs.write("distortion_coefficients", np.asarray(calibration.dist, dtype=np.float64).reshape(1, -1))
        fs.write("rvec", cv2.Rodrigues(np.asarray(calibration.R, dtype=np.float64))[0].reshape(3, 1))
        fs.write("tvec", np.asarray(calibration.t, dtype=np.float64).reshape(3, 1))
    finally:
        fs.release()
