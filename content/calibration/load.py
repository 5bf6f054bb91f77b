"""One entry point for every calibration format, and the camera of a cell file's camera block."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from content.calibration.camera_info import read_camera_info
from content.calibration.model import CameraCalibration, extrinsics_from_pose
from content.calibration.opencv import read_opencv
from content.calibration.pose2sim import read_pose2sim_toml
from content.calibration.qca import read_qca
from content.errors import CalibrationError

if TYPE_CHECKING:
    from content.cell import Calibration

Extrinsics = tuple[np.ndarray, np.ndarray]


def _read_qca(path: Path, *, extrinsics: Extrinsics | None = None) -> dict[str, CameraCalibration]:
    if extrinsics is not None:
        raise CalibrationError(f"{path}: extrinsics given twice, by the file (<transform>) and by the "
                               "cell file's calibration.pose; keep one")
    return read_qca(path)


#: Format name (the cell file's `calibration.format`) -> reader.
CALIBRATION_READERS: dict[str, Callable[..., dict[str, CameraCalibration]]] = {
    "qca": _read_qca,
    "opencv": read_opencv,
    "pose2sim": read_pose2sim_toml,
    "camera_info": read_camera_info,
}
CALIBRATION_FORMATS = tuple(CALIBRATION_READERS)


def load_calibration(path: str | Path, fmt: str = "qca", *,
                     extrinsics: Extrinsics | None = None) -> dict[str, CameraCalibration]:
    """Read a calibration file of format `fmt`.

    Args:
        path: the calibration file.
        fmt: "qca" (Qualisys QTM export, `read_qca`), "opencv" (cv::FileStorage YAML/XML,
            `read_opencv`), "pose2sim" (Pose2Sim TOML, `read_pose2sim_toml`) or "camera_info"
            (ROS camera_info YAML, `read_camera_info`).
        extrinsics: (R (3, 3), t (3,)) `cell` -> camera for files that hold intrinsics only
            (see `extrinsics_from_pose`).

    Returns:
        Calibrations by camera name.

    Raises:
        CalibrationError: unknown format, or the file cannot be read (see the reader).
    """
    reader = CALIBRATION_READERS.get(fmt)
    if reader is None:
        raise CalibrationError(f"{path}: unknown calibration format {fmt!r} (known: {', '.join(CALIBRATION_FORMATS)})")
    return reader(Path(path), extrinsics=extrinsics)


def load_camera_calibration(block: Calibration) -> CameraCalibration:
    """The calibration of the camera a cell file's `cameras[].calibration` block names.

    Args:
        block: the validated block (`format`, `file`, `camera`, optional `pose` of the camera
            optical frame in the `cell` frame).

    Raises:
        CalibrationError: the file cannot be read, has no such camera, or the extrinsics are
            missing or given twice.
    """
    extrinsics = None
    if block.pose is not None:
        extrinsics = extrinsics_from_pose(block.pose.position, quaternion_xyzw=block.pose.quaternion,
                                          rpy=block.pose.rpy)
    calibrations = load_calibration(block.file, block.format, extrinsics=extrinsics)
    if block.camera not in calibrations:
        raise CalibrationError(f"{block.file}: no camera {block.camera!r} (cameras: {', '.join(calibrations)})")
    return calibrations[block.camera]
