"""`xrcell track`: worker tracking offline on recorded videos, one JSON line per frame time.

With a calibration and one video per camera the people are tracked in 3D (the `cell`
frame is the calibration's world frame): triangulated where two or more cameras see a person,
placed on the floor (`--floor-z`, z up) where only one does, and a single calibrated video is
tracked on the floor alone; with one video and no calibration they are tracked in 2D only. Each
output line is

    {"t": s, "people": [{"id": "p1", "keypoints_cell": [[x, y, z, conf] x 33] | null,
                         "keypoints_2d": {"cam01": [[u, v, conf] x 33], ...},
                         "velocity_mps": [vx, vy, vz] | null, "sigma_m": f | null,
                         "placement": "triangulated" | "floor" | null}, ...]}

with `t` the frame time in seconds from the start of the videos, keypoints in MediaPipe
Pose order (`safety.perception.POSE_LANDMARKS`), metres in `cell`, pixels of the ORIGINAL
videos; NaN (not triangulated) is written as null.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from safety.errors import PerceptionError

#: Colours of the ids in `--show` (BGR), cycled.
_COLOURS = ((0, 200, 0), (255, 80, 0), (0, 200, 255), (255, 0, 255), (0, 0, 255), (255, 255, 0))
#: 2D-only tracking: a person matches a previous one when their keypoints are on average within
#: this fraction of the person's size in the image.
_GATE_2D_FRACTION = 0.3


@dataclass
class _Video:
    camera_id: str
    path: Path
    capture: cv2.VideoCapture
    fps: float
    frames: int
    size: tuple[int, int]


def _open(camera_id: str, path: Path) -> _Video:
    if not path.is_file():
        raise PerceptionError(f"{path}: video file not found")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PerceptionError(f"{path}: cannot open video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    return _Video(camera_id, path, cap, float(fps), int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), size)


def parse_cam_map(items: list[str]) -> dict[str, str]:
    """`STEM=CAMERA` pairs (from `--cam-map`) to a dict.

    Raises:
        PerceptionError: an item is not `STEM=CAMERA`.
    """
    out = {}
    for item in items:
        for part in item.split(","):
            stem, sep, cam = part.partition("=")
            if not sep or not stem or not cam:
                raise PerceptionError(f"--cam-map: expected STEM=CAMERA, got {part!r}")
            out[stem] = cam
    return out


def _json_points(points: np.ndarray) -> list[list[float | None]]:
    return [[None if not np.isfinite(v) else round(float(v), 4) for v in row] for row in points]


def run_track(inputs: list[Path], *, calib: Path | None = None, calib_format: str = "qca",
              cam_map: dict[str, str] | None = None, out: TextIO | None = None, show: Path | None = None,
              rate_hz: float = 15.0, duration_s: float | None = None, resize: float = 0.5,
              model_complexity: int = 1, max_people: int = 4, floor_z_m: float = 0.0,
              progress: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> dict:
    """Track the people in the videos; write JSON lines to `out`.

    Args:
        inputs: one video per camera (several need `calib`), or one video without `calib`.
        calib: calibration file with one entry per camera.
        calib_format: format of `calib` (see `content.calibration.load_calibration`).
        cam_map: video file stem -> calibration camera name; a video not in it uses its stem.
        out: where the JSON lines go (None: nowhere).
        show: write an annotated video (all cameras side by side) here.
        rate_hz: frame times processed per second of video (at most the videos' frame rate).
        duration_s: stop after this much video.
        resize: scale of the frames given to pose estimation, (0, 1].
        model_complexity: MediaPipe model 0, 1 or 2.
        max_people: most people followed per camera.
        floor_z_m: height of the floor in the calibration's world frame (z up), metres: a person
            only one camera sees is placed on it (`safety.perception.floor`).
        progress: receives a line at the start (how many frame times), one about once a
            second, and a summary at the end.

    Returns:
        A summary: frames processed, people per frame, ids seen, wall time.

    Raises:
        PerceptionError: a video is missing or unreadable, several videos without
            `calib`, a camera missing from the calibration, or bad options.
        ContentError: the calibration file cannot be read.
    """
    from content.calibration import load_calibration
    from safety.perception.multipose import MultiPersonEstimator
    from safety.perception.pose import PersonDetector, PoseEstimator
    from safety.perception.tracker import MultiPersonTracker, View

    if not inputs:
        raise PerceptionError("xrcell track needs at least one video")
    if not 0.0 < resize <= 1.0:
        raise PerceptionError(f"--resize must be in (0, 1], got {resize!r}")
    if len(inputs) > 1 and calib is None:
        raise PerceptionError(f"{len(inputs)} videos need --calib (one calibration entry per camera); "
                              "a single video without calibration is tracked in 2D")
    cam_map = cam_map or {}
    videos = [_open(cam_map.get(Path(p).stem, Path(p).stem), Path(p)) for p in inputs]
    ids = [v.camera_id for v in videos]
    if len(set(ids)) != len(ids):
        raise PerceptionError(f"two videos map to the same camera: {ids}; use --cam-map STEM=CAMERA")
    calibrations = {}
    if calib is not None:
        table = load_calibration(calib, calib_format)
        for v in videos:
            if v.camera_id not in table:
                raise PerceptionError(f"{calib}: no camera {v.camera_id!r} for video {v.path} "
                                      f"(has {', '.join(sorted(table))}); use --cam-map {v.path.stem}=CAMERA")
            cal = table[v.camera_id]
            # A few pixels of difference is a cropped encoder frame (Pose2Sim's 1080 vs 1088), not another resolution.
            if any(abs(a - b) > 0.02 * b for a, b in zip(v.size, cal.image_size)):
                raise PerceptionError(f"{calib}: camera {v.camera_id!r} is calibrated for {cal.image_size[0]}x"
                                      f"{cal.image_size[1]} pixels but {v.path} is {v.size[0]}x{v.size[1]}")
            calibrations[v.camera_id] = cal.scaled(resize)
    three_d = calib is not None
    fps = min(v.fps for v in videos)
    stride = max(1, int(round(fps / min(rate_hz, fps))))
    n_frames = min(v.frames for v in videos)
    if duration_s is not None:
        n_frames = min(n_frames, int(round(duration_s * fps)))
    estimators = {v.camera_id: MultiPersonEstimator(lambda: PoseEstimator(model_complexity), PersonDetector(),
                                                    max_people=max_people) for v in videos}
    tracker = MultiPersonTracker(floor_z_m=floor_z_m) if three_d else None
    writer = None
    prev_2d: list[tuple[str, np.ndarray]] = []
    next_2d_id = 1
    counts: list[int] = []
    seen_ids: set[str] = set()
    t_wall = time.monotonic()
    last_progress = t_wall
    total = len(range(0, n_frames, stride))
    progress(f"xrcell track: {len(videos)} video(s), {total} frame times ({n_frames} frames at {fps:g} fps, "
             f"every {stride}), {'3D' if three_d else '2D'}")
    try:
        for index in range(0, n_frames, stride):
            frames = {}
            for v in videos:
                for _ in range(stride - 1 if index else 0):
                    v.capture.grab()
                ok, frame = v.capture.read()
                if not ok:
                    break
                frames[v.camera_id] = frame
            if len(frames) < len(videos):
                break
            t = index / fps
            stamp = int(round(t * 1e9))
            small = {c: cv2.resize(f, None, fx=resize, fy=resize, interpolation=cv2.INTER_AREA) if resize != 1.0 else f
                     for c, f in frames.items()}
            people2d = {c: estimators[c].estimate(small[c], stamp) for c in small}
            people = []
            drawn: list[tuple[str, str, np.ndarray]] = []          # (id, camera, (33, 2) px of the original video)
            if tracker is not None:
                tracker.update([View(c, calibrations[c], stamp, tuple(people2d[c])) for c in ids], stamp)
                for h in tracker.tracks():
                    if h.newest_capture_ns != stamp:
                        continue                                   # not measured in this frame
                    kp2d = {}
                    for cam, arr in h.keypoints_px:
                        px = arr.copy()
                        px[:, :2] /= resize
                        kp2d[cam] = _json_points(px)
                        drawn.append((h.track_id, cam, px[:, :2]))
                    people.append({"id": h.track_id,
                                   "keypoints_cell": _json_points(np.column_stack([h.keypoints_cell, h.confidence])),
                                   "keypoints_2d": kp2d, "velocity_mps": [round(float(x), 4) for x in h.velocity_mps],
                                   "sigma_m": round(float(h.sigma_m), 4), "placement": h.placement})
            else:
                cam = ids[0]
                current = [p.keypoints_px / resize for p in people2d[cam]]
                assigned, next_2d_id = _assign_2d(prev_2d, current, next_2d_id)
                prev_2d = list(zip(assigned, current))
                for pid, kp, p in zip(assigned, current, people2d[cam]):
                    people.append({"id": pid, "keypoints_cell": None,
                                   "keypoints_2d": {cam: _json_points(np.column_stack([kp, p.visibility]))},
                                   "velocity_mps": None, "sigma_m": None, "placement": None})
                    drawn.append((pid, cam, kp))
            seen_ids.update(p["id"] for p in people)
            counts.append(len(people))
            if out is not None:
                out.write(json.dumps({"t": round(t, 4), "people": people}, allow_nan=False) + "\n")
            if show is not None:
                writer = _show(writer, show, frames, ids, drawn, fps / stride, t)
            now = time.monotonic()
            if now - last_progress >= 1.0:
                last_progress = now
                progress(f"xrcell track: t={t:.2f} s, frame time {len(counts)}/{total}, {len(people)} people")
    finally:
        for v in videos:
            v.capture.release()
        for est in estimators.values():
            est.close()
        if writer is not None:
            writer.release()
    summary = {"frames": len(counts), "people_per_frame": {str(k): counts.count(k) for k in sorted(set(counts))},
               "ids": sorted(seen_ids, key=lambda s: int(s[1:])), "wall_s": round(time.monotonic() - t_wall, 2),
               "mode": "3d" if three_d else "2d"}
    progress(f"xrcell track: done: {json.dumps(summary)}")
    return summary


def _assign_2d(prev: list[tuple[str, np.ndarray]], current: list[np.ndarray], next_id: int) -> tuple[list[str], int]:
    """Ids for the people of one frame from the previous frame's (Hungarian on mean keypoint distance)."""
    ids: list[str | None] = [None] * len(current)
    if prev and current:
        cost = np.array([[float(np.nanmean(np.linalg.norm(p - c, axis=1))) for c in current] for _, p in prev])
        rows, cols = linear_sum_assignment(np.nan_to_num(cost, nan=1e9))
        for r, c in zip(rows, cols):
            size = float(np.nanmax(np.ptp(current[c], axis=0)))
            if cost[r, c] <= _GATE_2D_FRACTION * size:
                ids[c] = prev[r][0]
    out = []
    for pid in ids:
        if pid is None:
            pid = f"p{next_id}"
            next_id += 1
        out.append(pid)
    return out, next_id


def _show(writer, path: Path, frames: dict[str, np.ndarray], ids: list[str], drawn, fps: float, t: float):
    """Append one annotated frame (cameras side by side, 720 px high) to the video at `path`."""
    from safety.perception.pipeline import draw_skeleton

    tiles = []
    for cam in ids:
        img = frames[cam]
        for pid, c, kp in drawn:
            if c == cam:
                colour = _COLOURS[(int(pid[1:]) - 1) % len(_COLOURS)]
                img = draw_skeleton(img, kp, color=colour, thickness=4)
                head = kp[0] if np.isfinite(kp[0]).all() else np.nanmean(kp, axis=0)
                if np.isfinite(head).all():
                    cv2.putText(img, pid, (int(head[0]) - 20, max(40, int(head[1]) - 60)), cv2.FONT_HERSHEY_SIMPLEX,
                                2.0, colour, 4, cv2.LINE_AA)
        scale = 720 / img.shape[0]
        img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        cv2.putText(img, cam, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
        tiles.append(img)
    mosaic = np.hstack(tiles)
    cv2.putText(mosaic, f"t = {t:.2f} s", (10, 700), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_AA)
    if writer is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (mosaic.shape[1], mosaic.shape[0]))
        if not writer.isOpened():
            raise PerceptionError(f"{path}: cannot write video")
    writer.write(mosaic)
    return writer
