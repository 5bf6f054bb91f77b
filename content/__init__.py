"""The world model: cell descriptions, calibrations, storage."""

from content.calibration import CameraCalibration
from content.cell import CellDescription, load_cell, parse_cell
from content.errors import CalibrationError, CellDescriptionError, ContentError

__all__ = [
    "CalibrationError",
    "CameraCalibration",
    "CellDescription",
    "CellDescriptionError",
    "ContentError",
    "load_cell",
    "parse_cell",
]
