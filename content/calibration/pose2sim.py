"""Pose2Sim calibration files (TOML), as `Pose2Sim.calibration.toml_write` writes them.

One table per camera; tables named `metadata`, `capture_volume`, `charuco` and
`checkerboard` are not cameras (as in `Pose2Sim.common.retrieve_calib_params`):

    [cam01]
    name = "cam01"
    size = [ 1088.0, 1920.0]                     # width, height, pixels
    matrix = [ [ fx, 0.0, cx], [ 0.0, fy, cy], [ 0.0, 0.0, 1.0]]
    distortions = [ k1, k2, p1, p2]              # OpenCV order
    rotation = [ rx, ry, rz]                     # Rodrigues vector world -> camera, radians
    translation = [ tx, ty, tz]                  # world -> camera, metres
    fisheye = false

The convention is OpenCV's: x_cam = Rodrigues(rotation) @ X + translation (as
`Pose2Sim.common.computeP` builds P = K [R | T]).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from content.calibration.model import (
    CameraCalibration,
    as_array,
    camera_matrix,
    complete,
    distortion,
    image_size,
    load_file,
    rodrigues,
    where,
)
from content.errors import CalibrationError

#: Top-level tables of a Pose2Sim calibration that are not cameras.
POSE2SIM_NON_CAMERA_TABLES = ("metadata", "capture_volume", "charuco", "checkerboard")


def read_pose2sim_toml(path: str | Path, *,
                       extrinsics: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, CameraCalibration]:
    """Read a Pose2Sim calibration `.toml`.

    Args:
        path: the TOML file.
        extrinsics: accepted for symmetry with the other readers; a Pose2Sim file always
            holds extrinsics, so passing them is an error.

    Returns:
        Calibrations by camera name (each table's `name`, else the table's key), in file order.

    Raises:
        CalibrationError: the file is missing or not TOML, has no camera table, a camera lacks
            a field or has a malformed one, is a fisheye camera, or a name repeats; the message
            names the file, the camera and the field.
    """
    path = Path(path)
    data = load_file(path, lambda p: tomllib.loads(p.read_bytes().decode()),
                     tomllib.TOMLDecodeError, "Pose2Sim calibration", "TOML")
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict) and k not in POSE2SIM_NON_CAMERA_TABLES]
    if not tables:
        raise CalibrationError(f"{path}: no camera table (a [name] table with size, matrix, distortions, ...)")
    result: dict[str, CameraCalibration] = {}
    for key, table in tables:
        name = table.get("name", key)
        if not isinstance(name, str) or not name:
            raise CalibrationError(f"{where(path, key)}: name must be a non-empty string, got {name!r}")
        if name in result:
            raise CalibrationError(f"{path}: camera {name!r} appears twice")
        w = where(path, name)
        for field in ("size", "matrix", "distortions", "rotation", "translation"):
            if field not in table:
                raise CalibrationError(f"{w}: missing field {field!r}")
        fisheye = table.get("fisheye", False)
        if not isinstance(fisheye, bool):
            raise CalibrationError(f"{w}: fisheye must be true or false, got {fisheye!r}")
        if fisheye:
            raise CalibrationError(f"{w}: fisheye = true: the fisheye model is not supported; "
                                   "calibrate this camera with the pinhole model")
        size = as_array(w, "size", table["size"], 2)
        result[name] = complete(
            w, name, image_size(w, "size", size[0], size[1]), camera_matrix(w, "matrix", table["matrix"]),
            distortion(w, "distortions", table["distortions"]),
            (rodrigues(w, "rotation", table["rotation"]), as_array(w, "translation", table["translation"], 3)),
            extrinsics, "rotation/translation")
    return result
