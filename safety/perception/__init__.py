"""Worker tracking: camera sources, 2D pose estimation, multi-view triangulation, one view on the floor.

Importing this package does not import mediapipe; `PoseEstimator` loads it when created.
"""

from safety.perception.cameras import ReplayClock, VideoFileCamera
from safety.perception.stream import StreamCamera
from safety.perception.depth import DepthCamera, points_from_depth, read_point_cloud, read_point_cloud_sequence
from safety.perception.depth_input import (
    DepthImageSequence,
    DepthSource,
    OccupancyInput,
    PointCloudSequence,
    RealSenseDepth,
    load_background,
    save_background,
)
from safety.perception.floor import FloorPlacement, Placement, PlacementBasis, place_on_floor
from safety.perception.pipeline import FrameSource, PerceptionPipeline, draw_skeleton
from safety.perception.kalman import KeypointKalmanFilter
from safety.perception.multipose import MultiPersonEstimator
from safety.perception.pose import PersonBox, PersonDetector, Pose2D, PoseEstimator
from safety.perception.tracker import MultiPersonTracker, View
from safety.perception.triangulation import Triangulation, project_points, reprojection_error, triangulate, undistort_points
from safety.perception.types import POSE_LANDMARKS, POSE_LIMBS, CameraStatus, HumanTrack, PerceptionSnapshot

__all__ = [
    "POSE_LANDMARKS",
    "POSE_LIMBS",
    "CameraStatus",
    "DepthCamera",
    "DepthImageSequence",
    "DepthSource",
    "FloorPlacement",
    "FrameSource",
    "HumanTrack",
    "KeypointKalmanFilter",
    "MultiPersonEstimator",
    "MultiPersonTracker",
    "OccupancyInput",
    "PerceptionPipeline",
    "PerceptionSnapshot",
    "Placement",
    "PlacementBasis",
    "PersonBox",
    "PersonDetector",
    "PointCloudSequence",
    "Pose2D",
    "PoseEstimator",
    "RealSenseDepth",
    "ReplayClock",
    "Triangulation",
    "StreamCamera",
    "VideoFileCamera",
    "View",
    "draw_skeleton",
    "load_background",
    "place_on_floor",
    "points_from_depth",
    "project_points",
    "read_point_cloud",
    "read_point_cloud_sequence",
    "reprojection_error",
    "save_background",
    "triangulate",
    "undistort_points",
]
