"""The 2D people of every camera of a Pose2Sim demo clip, estimated as the live pipeline does."""

from __future__ import annotations

from pathlib import Path

import cv2

from safety.perception import MultiPersonEstimator, PersonDetector, PoseEstimator


def estimate_clip(clip: Path, cameras: tuple[str, ...], *, model_complexity: int, stride: int,
                  resize: float, fps: float = 60.0) -> list[tuple[int, dict]]:
    """Per frame time (every `stride`-th frame): (stamp_ns, {camera: tuple of Pose2D}).

    Each camera's video `clip/videos/<camera>.mp4` is scaled by `resize` and run through one
    `MultiPersonEstimator` (MediaPipe person detector + pose landmarker of `model_complexity`);
    stamps are the frame times of the `fps` clip, nanoseconds from its start.
    """
    frames: list[tuple[int, dict]] = []
    for cam in cameras:
        est = MultiPersonEstimator(lambda: PoseEstimator(model_complexity), PersonDetector())
        cap = cv2.VideoCapture(str(clip / "videos" / f"{cam}.mp4"))
        index = k = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % stride == 0:
                stamp = int(index * 1e9 / fps)
                small = cv2.resize(frame, None, fx=resize, fy=resize, interpolation=cv2.INTER_AREA)
                if len(frames) <= k:
                    frames.append((stamp, {}))
                frames[k][1][cam] = tuple(est.estimate(small, stamp))
                k += 1
            index += 1
        cap.release()
        est.close()
    return frames
