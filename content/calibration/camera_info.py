"""ROS `camera_info` YAML, the format of `camera_calibration_parsers` (and of ROS'
`camera_calibration` tool, `ost.yaml`):

    image_width: 640
    image_height: 480
    camera_name: narrow_stereo
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    distortion_model: plumb_bob          # or rational_polynomial
    distortion_coefficients: {rows: 1, cols: 5, data: [k1, k2, p1, p2, k3]}
    rectification_matrix: {rows: 3, cols: 3, data: [...]}
    projection_matrix: {rows: 3, cols: 4, data: [...]}

`camera_matrix` and `distortion_coefficients` describe the raw image (`image_raw`), which
is what xrcell reads; `rectification_matrix` and `projection_matrix` describe the
rectified image and are not used. The file holds intrinsics only: the extrinsics come from
the cell file (`cameras[].calibration.pose`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from content.calibration.model import (
    CameraCalibration,
    as_array,
    camera_matrix,
    complete,
    distortion,
    image_size,
    load_file,
    where,
)
from content.errors import CalibrationError

#: sensor_msgs/CameraInfo distortion models xrcell reads, with their number of coefficients.
CAMERA_INFO_DISTORTION_MODELS = {"plumb_bob": 5, "rational_polynomial": 8}


def _matrix(w: str, data: dict, field: str, rows: int, cols: int | tuple[int, ...]) -> np.ndarray:
    node = data.get(field)
    if node is None:
        raise CalibrationError(f"{w}: missing field {field!r}")
    if not isinstance(node, dict) or not {"rows", "cols", "data"} <= node.keys():
        raise CalibrationError(f"{w}: {field} must be a mapping with rows, cols and data")
    allowed = (cols,) if isinstance(cols, int) else cols
    if node["rows"] != rows or node["cols"] not in allowed:
        raise CalibrationError(f"{w}: {field} must be {rows} x {' or '.join(map(str, allowed))}, "
                               f"got rows {node['rows']!r}, cols {node['cols']!r}")
    return as_array(w, f"{field}.data", node["data"], rows * node["cols"])


def read_camera_info(path: str | Path, *,
                     extrinsics: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, CameraCalibration]:
    """Read a ROS camera_info YAML (`camera_calibration_parsers` format).

    Args:
        path: the YAML file.
        extrinsics: (R (3, 3), t (3,)) `cell` -> camera optical frame, from the cell file's pose;
            required, the file holds none.

    Returns:
        {camera name: calibration}: `camera_name`, else the file name without `.yaml`/`.yml`.

    Raises:
        CalibrationError: the file is missing or not YAML, a field is missing or malformed, the
            distortion model is not plumb_bob or rational_polynomial, or `extrinsics` is None.
    """
    path = Path(path)
    data = load_file(path, lambda p: yaml.safe_load(p.read_text(encoding="utf-8")), yaml.YAMLError,
                     "camera_info YAML", "YAML")
    if not isinstance(data, dict):
        raise CalibrationError(f"{path}: not a camera_info YAML: expected a mapping, got {type(data).__name__}")
    name = data.get("camera_name") or path.name.removesuffix(".yaml").removesuffix(".yml")
    if not isinstance(name, str):
        raise CalibrationError(f"{path}: camera_name must be a string, got {name!r}")
    w = where(path, name)
    for field in ("image_width", "image_height", "distortion_model"):
        if field not in data:
            raise CalibrationError(f"{w}: missing field {field!r}")
    size = image_size(w, "image_width/image_height", data["image_width"], data["image_height"])
    K = camera_matrix(w, "camera_matrix", _matrix(w, data, "camera_matrix", 3, 3))
    model = data["distortion_model"]
    if model not in CAMERA_INFO_DISTORTION_MODELS:
        raise CalibrationError(f"{w}: distortion_model {model!r} is not supported "
                               f"(known: {', '.join(CAMERA_INFO_DISTORTION_MODELS)})")
    n = CAMERA_INFO_DISTORTION_MODELS[model]
    dist = distortion(w, "distortion_coefficients", _matrix(w, data, "distortion_coefficients", 1, n))
    return {name: complete(w, name, size, K, dist, None, extrinsics, "extrinsics (camera_info holds intrinsics only)")}
