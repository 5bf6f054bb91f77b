"""MediaPipe Pose adapter: 2D keypoints of one person in one camera image.

This is the only module that imports `mediapipe` (a heavy import, about 1 s);
everything else in `safety.perception` works on the `Pose2D` record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from safety.errors import PerceptionError

#: Number of MediaPipe Pose landmarks (see `safety.perception.types.POSE_LANDMARKS`).
NUM_LANDMARKS = 33


@dataclass(frozen=True)
class Pose2D:
    """2D keypoints of one person in one image.

    Attributes:
        keypoints_px: (33, 2) float64, pixels (u right, v down) in the image given to
            `PoseEstimator.estimate`; MediaPipe topology (`POSE_LANDMARKS`).
        visibility: (33,) float64 in [0, 1], MediaPipe's visibility score per landmark.
    """

    keypoints_px: np.ndarray
    visibility: np.ndarray


class PoseEstimator:
    """MediaPipe Pose (BlazePose) in tracking mode, for ONE camera's frame sequence.

    Tracking mode reuses the previous frame's region of interest, so each camera needs
    its own instance. Not thread-safe: call `estimate` from one thread at a time
    (MediaPipe itself may use several threads inside one call).

    Args:
        model_complexity: 0 (lite), 1 (full) or 2 (heavy; needs a model that is not in
            the mediapipe wheel).
        min_detection_confidence: person detector threshold in [0, 1].
        min_tracking_confidence: landmark tracking threshold in [0, 1]; below it the
            detector runs again on the next frame.

    Raises:
        PerceptionError: mediapipe is missing or the model cannot be loaded.
    """

    def __init__(self, model_complexity: int = 1, *, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5) -> None:
        from safety.perception.models import require_model

        require_model(model_complexity)
        try:
            import mediapipe as mp  # heavy: imported here only

            self._pose: Any = mp.solutions.pose.Pose(
                static_image_mode=False, model_complexity=model_complexity, smooth_landmarks=True,
                enable_segmentation=False, min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence)
        except (ImportError, RuntimeError, OSError) as exc:
            raise PerceptionError(f"cannot create MediaPipe Pose (model_complexity={model_complexity}): {exc}") from exc
        self._closed = False

    def estimate(self, frame_bgr: np.ndarray) -> Pose2D | None:
        """Detect one person.

        Args:
            frame_bgr: (H, W, 3) uint8 BGR image.

        Returns:
            The person's 2D keypoints in pixels of `frame_bgr`, or None when nobody is found.

        Raises:
            PerceptionError: the image is not (H, W, 3) uint8, or the estimator was closed.
        """
        if self._closed:
            raise PerceptionError("PoseEstimator is closed")
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise PerceptionError(f"expected an (H, W, 3) uint8 BGR image, got {frame_bgr.shape} {frame_bgr.dtype}")
        h, w = frame_bgr.shape[:2]
        rgb = np.ascontiguousarray(frame_bgr[:, :, ::-1])
        result = self._pose.process(rgb)
        if result.pose_landmarks is None:
            return None
        lm = result.pose_landmarks.landmark
        arr = np.array([(p.x * w, p.y * h, p.visibility) for p in lm], dtype=np.float64)
        return Pose2D(keypoints_px=arr[:, :2].copy(), visibility=np.clip(arr[:, 2], 0.0, 1.0))

    def close(self) -> None:
        """Release MediaPipe's graph; `estimate` raises afterwards."""
        if not self._closed:
            self._closed = True
            self._pose.close()
