"""Camera calibrations: the record, and readers of the formats users have.

Formats (the cell file's `cameras[].calibration.format`):

- `qca`: Qualisys QTM export `*.qca.txt` (Pose2Sim's demo footage), `read_qca`.
- `opencv`: OpenCV cv::FileStorage YAML/XML/JSON, `read_opencv` / `write_opencv`.
- `pose2sim`: Pose2Sim calibration TOML, `read_pose2sim_toml`.
- `camera_info`: ROS camera_info YAML (intrinsics only), `read_camera_info`.

Every reader returns `CameraCalibration` records by camera name; extrinsics map `cell`
frame points into the camera optical frame (x_cam = R @ X + t, metres).
"""

from content.calibration.camera_info import CAMERA_INFO_DISTORTION_MODELS, read_camera_info
from content.calibration.load import CALIBRATION_FORMATS, load_calibration, load_camera_calibration
from content.calibration.model import CameraCalibration, extrinsics_from_pose, pose_from_extrinsics
from content.calibration.opencv import (
    OPENCV_CAMERA_MATRIX_KEYS,
    OPENCV_DISTORTION_KEYS,
    OPENCV_ROTATION_KEYS,
    OPENCV_TRANSLATION_KEYS,
    read_opencv,
    write_opencv,
)
from content.calibration.pose2sim import POSE2SIM_NON_CAMERA_TABLES, read_pose2sim_toml
from content.calibration.qca import QCA_SUBPIXELS_PER_PIXEL, read_qca

__all__ = [
    "CALIBRATION_FORMATS",
    "CAMERA_INFO_DISTORTION_MODELS",
    "OPENCV_CAMERA_MATRIX_KEYS",
    "OPENCV_DISTORTION_KEYS",
    "OPENCV_ROTATION_KEYS",
    "OPENCV_TRANSLATION_KEYS",
    "POSE2SIM_NON_CAMERA_TABLES",
    "QCA_SUBPIXELS_PER_PIXEL",
    "CameraCalibration",
    "extrinsics_from_pose",
    "load_calibration",
    "load_camera_calibration",
    "pose_from_extrinsics",
    "read_camera_info",
    "read_opencv",
    "read_pose2sim_toml",
    "read_qca",
    "write_opencv",
]
