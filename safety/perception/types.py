"""Records produced by worker tracking and consumed by the safety monitor.

Keypoints follow MediaPipe Pose's 33-landmark topology (index order of
`mediapipe.solutions.pose.PoseLandmark`). Positions are metres in the `cell`
frame; times are `time.monotonic_ns()`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: MediaPipe Pose landmark names, index order of `mediapipe.solutions.pose.PoseLandmark`.
POSE_LANDMARKS: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_pinky",
    "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "left_heel",
    "right_heel", "left_foot_index", "right_foot_index",
)

#: Limb segments (landmark index pairs) used as body capsules: arms, legs, torso.
POSE_LIMBS: tuple[tuple[int, int], ...] = (
    (11, 12), (11, 23), (12, 24), (23, 24),           # torso
    (11, 13), (13, 15), (15, 19), (12, 14), (14, 16), (16, 20),  # arms and hands
    (23, 25), (25, 27), (27, 31), (24, 26), (26, 28), (28, 32),  # legs and feet
    (0, 11), (0, 12),                                  # head to shoulders
)


@dataclass(frozen=True)
class HumanTrack:
    """One tracked person at one time.

    Attributes:
        track_id: stable identity of the person ("p1", ...).
        keypoints_cell: (33, 3) float64, metres, `cell` frame; NaN where not triangulated.
        confidence: (33,) float64 in [0, 1]; 0 where not triangulated.
        velocity_mps: (3,) float64, m/s, `cell` frame: velocity of the body centre (mean of the
            hips' filtered velocities).
        sigma_m: position uncertainty of the keypoints, metres (1 sigma): the largest filtered
            uncertainty of the published body keypoints (shoulders ... ankles), at least 2 cm.
        capture_ns: monotonic capture time of the OLDEST camera frame that contributed.
        newest_capture_ns: monotonic capture time of the newest contributing frame.
        views: ids of the cameras that contributed.
        keypoint_capture_ns: (33,) int64 monotonic capture time of each keypoint's data, or None
            when every keypoint comes from the frames of `capture_ns`..`newest_capture_ns`. A
            keypoint held from an earlier update (an implausible new estimate) is older than
            `capture_ns`; the safety monitor grows its body capsule by the distance a person can
            travel in that extra time.
        keypoint_sigma_m: (33,) float64, metres: 1-sigma position uncertainty of each keypoint
            from its Kalman filter; NaN where not published. None when not computed.
        keypoints_px: per contributing camera, (camera_id, (33, 3) float64 u, v pixels of the
            processed frame and visibility in [0, 1]): the 2D detections the track came from.
        placement: "triangulated" (two or more views) or "floor" (one view, placed on the
            cell's floor, `safety.perception.floor`: sigma_m is then the placement's depth error,
            typically 0.3-0.5 m at 4 m); a coasting track keeps its last measurement's.
        coast_s: 0 for a measured track; for a coasting one (no view measured it lately), the
            seconds since its last measurement: its keypoints are then a constant-velocity
            prediction and `sigma_m` has grown with that time (`safety.perception.tracker`).
    """

    track_id: str
    keypoints_cell: np.ndarray
    confidence: np.ndarray
    velocity_mps: np.ndarray
    sigma_m: float
    capture_ns: int
    newest_capture_ns: int
    views: tuple[str, ...]
    keypoint_capture_ns: np.ndarray | None = None
    keypoint_sigma_m: np.ndarray | None = None
    keypoints_px: tuple[tuple[str, np.ndarray], ...] = ()
    coast_s: float = 0.0
    placement: str = "triangulated"


@dataclass(frozen=True)
class CameraStatus:
    """Health of one camera as worker tracking sees it.

    Attributes:
        camera_id: the camera's id from the cell description.
        last_frame_ns: monotonic capture time of the newest frame received (0: none yet).
        last_processed_ns: monotonic capture time of the newest frame run through pose estimation.
        frames: frames received from the source.
        frames_processed: frames run through pose estimation.
        frames_skipped: frames dropped by design (newest frame wins, processing rate cap).
        frames_with_person: processed frames in which a person was detected.
        optional: a camera whose absence is not a fault (an HMI: the glasses may be off); the
            safety monitor's camera watchdog skips it.
    """

    camera_id: str
    last_frame_ns: int
    last_processed_ns: int
    frames: int
    frames_processed: int
    frames_skipped: int
    frames_with_person: int
    optional: bool = False


@dataclass(frozen=True)
class PerceptionSnapshot:
    """What the tracker knows at one time; replaced atomically on every update.

    Attributes:
        stamp_ns: monotonic time the snapshot was produced.
        tracks: the people in the cell.
        cameras: per-camera status, for the watchdog and the report.
        lost_track_ids: tracks that lost every view while inside the cell (a fault for safety).
    """

    stamp_ns: int
    tracks: tuple[HumanTrack, ...]
    cameras: tuple[CameraStatus, ...]
    lost_track_ids: tuple[str, ...] = ()
