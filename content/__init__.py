"""The world model: cell descriptions, calibrations, storage."""

from content.calibration import CameraCalibration
from content.cell import CellDescription, load_cell, parse_cell
from content.errors import CalibrationError, CellDescriptionError, ContentError, TwinAssetError
from content.twin_asset import TwinAsset, TwinAssetCache, build_twin_glb

__all__ = [
    "CalibrationError",
    "CameraCalibration",
    "CellDescription",
    "CellDescriptionError",
    "ContentError",
    "TwinAsset",
    "TwinAssetCache",
    "TwinAssetError",
    "build_twin_glb",
    "load_cell",
    "parse_cell",
]
