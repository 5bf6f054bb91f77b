"""Worker tracking: cell cameras -> 2D pose per camera -> one triangulated person.

`PerceptionPipeline` owns ONE worker thread that visits the cameras round-robin, runs
pose estimation on the newest frame of each camera that is due (a per-camera rate
cap), triangulates the person from every camera whose latest 2D result is recent, and
publishes an immutable `PerceptionSnapshot` after every step.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from content.calibration import CameraCalibration
from safety.errors import PerceptionError
from safety.perception.plausibility import implausible_keypoints, resolve_left_right_swaps
from safety.perception.pose import Pose2D, PoseEstimator
from safety.perception.triangulation import triangulate
from safety.perception.types import POSE_LIMBS, CameraStatus, HumanTrack, PerceptionSnapshot

_log = logging.getLogger(__name__)

#: Landmarks that must be triangulated for a person to count as seen (shoulders, elbows,
#: wrists, hips, knees, ankles); at least `_MIN_BODY_POINTS` of them.
_BODY_POINTS = (11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
_MIN_BODY_POINTS = 8
_LEFT_HIP, _RIGHT_HIP = 23, 24
#: A body-centre jump larger than speed * dt + noise restarts the velocity filter instead of
#: entering it (a looped clip, another person); successive estimates from 2, 3 and 4 views
#: of one round differ by a few centimetres.
_MAX_CENTRE_SPEED_MPS = 3.0
_CENTRE_NOISE_M = 0.15
#: An implausible keypoint keeps its previous estimate while that is at most this old.
_MAX_HOLD_NS = 300_000_000
#: Fastest plausible keypoint speed (a hand reaching: Winter, table 4.x peak hand speeds about 3 m/s), m/s.
_MAX_KEYPOINT_SPEED_MPS = 3.0
#: Triangulation noise allowed on top of that motion, metres.
_KEYPOINT_NOISE_M = 0.1


class FrameSource(Protocol):
    """A camera as the pipeline sees it (e.g. `VideoFileCamera`)."""

    def latest(self) -> tuple[np.ndarray, int, int] | None: ...
    def start(self) -> None: ...
    def stop(self, timeout_s: float = 0.5) -> None: ...


class Estimator(Protocol):
    """A 2D pose estimator for one camera (e.g. `PoseEstimator`)."""

    def estimate(self, frame_bgr: np.ndarray) -> Pose2D | None: ...


@dataclass
class _CameraState:
    camera_id: str
    source: FrameSource
    calibration: CameraCalibration
    estimator: Estimator | None = None
    last_seq: int = 0                 # newest sequence number seen
    last_frame_ns: int = 0
    last_processed_seq: int = 0
    last_processed_ns: int = 0        # capture time of the newest processed frame
    next_due_ns: int = 0              # clock time when the camera may be processed again
    frames_processed: int = 0
    frames_skipped: int = 0
    frames_with_person: int = 0
    pose: Pose2D | None = None        # latest 2D result (None: nobody in the last processed frame)
    pose_capture_ns: int = 0
    view: tuple[np.ndarray, np.ndarray | None, int] | None = None


def draw_skeleton(frame_bgr: np.ndarray, keypoints_px: np.ndarray, *, color: tuple[int, int, int] = (0, 255, 0),
                  thickness: int = 2) -> np.ndarray:
    """Draw a 2D skeleton (`POSE_LIMBS` and joints) on a copy of the frame.

    Args:
        frame_bgr: (H, W, 3) uint8 BGR image (not modified).
        keypoints_px: (33, 2) float, pixels of `frame_bgr`; NaN joints are not drawn.
        color: BGR line colour.
        thickness: line thickness, pixels.

    Returns:
        (H, W, 3) uint8 BGR copy with the skeleton.
    """
    out = frame_bgr.copy()
    kp = np.asarray(keypoints_px, dtype=np.float64)
    ok = np.isfinite(kp).all(axis=1)
    for a, b in POSE_LIMBS:
        if ok[a] and ok[b]:
            cv2.line(out, (int(round(kp[a, 0])), int(round(kp[a, 1]))), (int(round(kp[b, 0])), int(round(kp[b, 1]))),
                     color, thickness, cv2.LINE_AA)
    for i in np.flatnonzero(ok):
        cv2.circle(out, (int(round(kp[i, 0])), int(round(kp[i, 1]))), thickness + 1, (0, 0, 255), -1, cv2.LINE_AA)
    return out


class PerceptionPipeline:
    """Multi-camera worker tracking of one person (track "p1").

    Lifecycle: created idle; `start()` starts the sources and the worker thread;
    `stop()` stops both. The worker thread owns all mutable state; `snapshot()`,
    `camera_view()` and `report()` only read references that the worker replaces
    atomically, so they are safe from any thread and never block on inference.

    Args:
        cameras: (camera_id, source, calibration) per camera; the calibration must refer to
            the resolution of the source's frames (use `CameraCalibration.scaled`).
        process_rate_hz: maximum pose-estimation rate per camera; newer frames replace
            older ones and the frames in between count as skipped.
        world_to_cell: (4, 4) homogeneous transform from the calibration's world frame to
            the `cell` frame (identity by default).
        max_view_age_s: a camera's latest 2D result joins a triangulation while its frame
            is younger than this.
        max_view_skew_s: views whose capture times differ by more than this are not
            triangulated together (a moving person would be misplaced).
        track_timeout_s: a track not seen by at least 2 views for this long disappears.
        cell_bounds: ((3,) min, (3,) max) corners of a box in the `cell` frame, metres; a track
            lost inside it is reported in `lost_track_ids` for `lost_hold_s`.
        lost_hold_s: how long a lost track id stays in `lost_track_ids` (unless seen again).
        max_reprojection_error_px: view rejection threshold of `triangulate`, pixels of the
            processed frames (5 px at half resolution is 10 px at full resolution).
        min_confidence: minimum landmark visibility used for triangulation.
        estimator_factory: creates one estimator per camera (in the worker thread);
            MediaPipe `PoseEstimator(model_complexity)` by default.
        model_complexity: MediaPipe model when `estimator_factory` is not given.
        clock: monotonic clock in ns; must be the clock the sources stamp frames with.
        on_publish: called on the worker thread with every new snapshot; must not block.

    Raises:
        PerceptionError: no camera, duplicate camera ids, or invalid parameters.
    """

    def __init__(self, cameras: Sequence[tuple[str, FrameSource, CameraCalibration]], *,
                 process_rate_hz: float = 8.0, world_to_cell: np.ndarray | None = None,
                 max_view_age_s: float = 0.15, max_view_skew_s: float = 0.05, track_timeout_s: float = 0.5,
                 cell_bounds: tuple[np.ndarray, np.ndarray] | None = None, lost_hold_s: float = 5.0,
                 max_reprojection_error_px: float = 5.0, min_confidence: float = 0.3,
                 estimator_factory: Callable[[], Estimator] | None = None, model_complexity: int = 1,
                 clock: Callable[[], int] = time.monotonic_ns,
                 on_publish: Callable[[PerceptionSnapshot], None] | None = None) -> None:
        if not cameras:
            raise PerceptionError("PerceptionPipeline needs at least one camera")
        ids = [c[0] for c in cameras]
        if len(set(ids)) != len(ids):
            raise PerceptionError(f"PerceptionPipeline: duplicate camera ids in {ids}")
        if not process_rate_hz > 0:
            raise PerceptionError(f"process_rate_hz must be positive, got {process_rate_hz!r}")
        T = np.eye(4) if world_to_cell is None else np.asarray(world_to_cell, dtype=np.float64)
        if T.shape != (4, 4) or not np.allclose(T[3], [0, 0, 0, 1]):
            raise PerceptionError(f"world_to_cell must be a (4, 4) homogeneous transform, got shape {T.shape}")
        self._cams = [_CameraState(cid, src, cal) for cid, src, cal in cameras]
        self._period_ns = int(1e9 / process_rate_hz)
        self._T = T
        self._max_view_age_ns = int(max_view_age_s * 1e9)
        self._max_view_skew_ns = int(max_view_skew_s * 1e9)
        self._pending: deque[tuple[_CameraState, tuple[np.ndarray, int, int]]] = deque()
        self._track_timeout_ns = int(track_timeout_s * 1e9)
        self._lost_hold_ns = int(lost_hold_s * 1e9)
        if cell_bounds is not None:
            lo, hi = (np.asarray(b, dtype=np.float64).reshape(3) for b in cell_bounds)
            cell_bounds = (lo, hi)
        self._bounds = cell_bounds
        self._max_err_px = max_reprojection_error_px
        self._min_conf = min_confidence
        self._factory: Callable[[], Estimator] = estimator_factory or (lambda: PoseEstimator(model_complexity))
        self._clock = clock
        self._on_publish = on_publish
        self._snapshot: PerceptionSnapshot | None = None
        self._views: dict[str, tuple[np.ndarray, np.ndarray | None, int]] = {}
        self._track: HumanTrack | None = None
        self._track_seen_ns = 0
        self._centre_history: deque[tuple[int, np.ndarray]] = deque(maxlen=6)
        self._lost: dict[str, int] = {}           # track id -> clock time it was lost
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_cam = 0
        self._estimate_ms: deque[float] = deque(maxlen=2000)
        self._step_ms: deque[float] = deque(maxlen=2000)
        self._reproj_px: deque[float] = deque(maxlen=2000)
        self._triangulations = 0
        self._implausible = 0
        self._mirrored_views = 0
        self._errors = 0

    # ------------------------------------------------------------------ public, any thread
    def snapshot(self) -> PerceptionSnapshot | None:
        """The newest snapshot (None before the first step). Never blocks."""
        return self._snapshot

    def camera_view(self, camera_id: str) -> tuple[np.ndarray, np.ndarray | None, int] | None:
        """Last processed frame of a camera: (frame_bgr read-only, (33, 2) keypoints px or None, capture_ns).

        None when the camera is unknown or nothing was processed yet.
        """
        return self._views.get(camera_id)

    def report(self) -> dict:
        """Timing and quality figures: pose estimation and step times (ms), triangulation
        count and median RMS reprojection error (pixels of the processed frames)."""
        def stats(values: Sequence[float]) -> dict:
            if not values:
                return {"n": 0}
            s = sorted(values)
            return {"n": len(s), "median": round(statistics.median(s), 2), "p95": round(s[int(0.95 * (len(s) - 1))], 2)}
        return {"estimate_ms": stats(list(self._estimate_ms)), "step_ms": stats(list(self._step_ms)),
                "triangulations": self._triangulations, "implausible_keypoints": self._implausible,
                "mirrored_views": self._mirrored_views,
                "reprojection_error_px": stats(list(self._reproj_px)),
                "errors": self._errors}

    @property
    def running(self) -> bool:
        """True while the worker thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ lifecycle, one controlling thread
    def start(self) -> None:
        """Start the camera sources and the worker thread. Idempotent."""
        if self.running:
            return
        for cam in self._cams:
            cam.source.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="perception", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the worker (after its current inference) and the sources."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                _log.warning("perception worker did not stop within %.2f s", timeout_s)
            self._thread = None
        for cam in self._cams:
            cam.source.stop()

    # ------------------------------------------------------------------ worker thread
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.step()
            except Exception:  # the loop must not die: count, log, carry on
                self._errors += 1
                _log.exception("perception step failed")
                worked = False
            if not worked:
                now = self._clock()
                wait_ns = min((c.next_due_ns - now for c in self._cams), default=0)
                self._stop.wait(min(max(wait_ns, 1_000_000), 5_000_000) / 1e9)

    def step(self) -> bool:
        """Process at most one camera frame; publish a snapshot.

        Frames are taken in rounds: when no frame is pending, the newest frame of EVERY
        camera that is due (rate cap) and has a new frame is taken at once, so that the
        views of one round are captured within about one frame period of each other
        (triangulating views captured at different times misplaces a moving person).
        The round's frames are then estimated one per call, round-robin. Frames
        published between two taken frames count as skipped.

        Called by the worker thread (or directly by a test that did not `start()`).

        Returns:
            True when a frame was processed.
        """
        now = self._clock()
        for cam in self._cams:
            latest = cam.source.latest()
            if latest is not None:
                cam.last_seq, cam.last_frame_ns = latest[2], latest[1]
        if not self._pending:
            n = len(self._cams)
            for k in range(n):
                cam = self._cams[(self._next_cam + k) % n]
                latest = cam.source.latest()
                if latest is None or now < cam.next_due_ns or latest[2] == cam.last_processed_seq:
                    continue
                self._pending.append((cam, latest))
                cam.next_due_ns = (cam.next_due_ns or now) + self._period_ns
                if cam.next_due_ns < now:       # fell behind: no burst to catch up
                    cam.next_due_ns = now
            self._next_cam = (self._next_cam + 1) % n
        if not self._pending:
            self._publish(now)
            return False
        t0 = time.perf_counter()
        cam, (image, capture_ns, seq) = self._pending.popleft()
        if cam.estimator is None:
            cam.estimator = self._factory()
        cam.frames_skipped += seq - cam.last_processed_seq - 1 if seq > cam.last_processed_seq else 0
        cam.last_processed_seq, cam.last_processed_ns = seq, capture_ns
        t1 = time.perf_counter()
        pose = cam.estimator.estimate(image)
        self._estimate_ms.append((time.perf_counter() - t1) * 1e3)
        cam.frames_processed += 1
        cam.pose, cam.pose_capture_ns = pose, capture_ns
        if pose is not None:
            cam.frames_with_person += 1
        self._views[cam.camera_id] = (image, None if pose is None else pose.keypoints_px, capture_ns)
        now = self._clock()
        self._update_track(now, newest_ns=capture_ns)
        self._publish(now)
        self._step_ms.append((time.perf_counter() - t0) * 1e3)
        return True

    def _update_track(self, now: int, newest_ns: int | None = None) -> None:
        """Triangulate from the fresh views captured close to `newest_ns`; time the track out."""
        views = [c for c in self._cams if c.pose is not None and now - c.pose_capture_ns <= self._max_view_age_ns]
        if views:
            ref = max(c.pose_capture_ns for c in views) if newest_ns is None else newest_ns
            views = [c for c in views if abs(c.pose_capture_ns - ref) <= self._max_view_skew_ns]
        track = None
        if len(views) >= 2:
            kp = np.stack([c.pose.keypoints_px for c in views])            # type: ignore[union-attr]
            vis = np.stack([c.pose.visibility for c in views])             # type: ignore[union-attr]
            kp, vis, mirrored = resolve_left_right_swaps([c.calibration for c in views], kp, vis, triangulate)
            self._mirrored_views += len(mirrored)
            tri = triangulate([c.calibration for c in views], kp, vis, min_confidence=self._min_conf,
                              max_reprojection_error_px=self._max_err_px)
            if np.isfinite(tri.points[list(_BODY_POINTS)]).all(axis=1).sum() >= _MIN_BODY_POINTS:
                track = self._make_track(views, tri, vis)
        if track is not None:
            self._track, self._track_seen_ns = track, now
            self._lost.pop(track.track_id, None)
        elif self._track is not None and now - self._track_seen_ns > self._track_timeout_ns:
            lost = self._track
            centre = 0.5 * (lost.keypoints_cell[_LEFT_HIP] + lost.keypoints_cell[_RIGHT_HIP])
            if self._bounds is not None and np.all(centre >= self._bounds[0]) and np.all(centre <= self._bounds[1]):
                self._lost[lost.track_id] = now
                _log.warning("track %s lost inside the cell bounds at %s", lost.track_id, np.round(centre, 2))
            self._track = None
            self._centre_history.clear()

    def _make_track(self, views: list[_CameraState], tri, vis: np.ndarray) -> HumanTrack:
        self._triangulations += 1
        used = tri.views_used                                              # (33, V)
        pts_h = np.concatenate([tri.points, np.ones((33, 1))], axis=1)
        pts_cell = (pts_h @ self._T.T)[:, :3]
        with np.errstate(invalid="ignore"):
            conf = np.where(used.any(axis=1), (vis.T * used).sum(axis=1) / np.maximum(used.sum(axis=1), 1), 0.0)
        conf = np.where(np.isfinite(tri.points).all(axis=1), np.clip(conf, 0.0, 1.0), 0.0)
        err = tri.reprojection_error_px
        med_err = float(np.nanmedian(err))
        self._reproj_px.append(med_err)
        # Pixel error -> metres at the person's depth, shrinking with the number of views.
        centre_w = 0.5 * (tri.points[_LEFT_HIP] + tri.points[_RIGHT_HIP])
        if not np.isfinite(centre_w).all():
            centre_w = np.nanmean(tri.points, axis=0)
        depth = np.mean([np.linalg.norm(c.calibration.R @ centre_w + c.calibration.t) for c in views])
        focal = np.mean([c.calibration.K[0, 0] for c in views])
        n_views = float(np.median(tri.num_views[tri.num_views > 0]))
        sigma = max(0.02, med_err * depth / focal / np.sqrt(n_views))
        contributing = [c for v, c in enumerate(views) if used[:, v].any()]
        stamps = [c.pose_capture_ns for c in contributing]
        # Anatomically impossible keypoints (a wrong 2-view match): hold the previous
        # estimate for a short while, stamped with its own (older) capture time so the
        # safety monitor grows that body part by the distance a person covers meanwhile;
        # else drop them (the monitor then covers the limb conservatively).
        bad = implausible_keypoints(pts_cell)
        prev = self._track
        prev_kp_ns = None
        if prev is not None:
            prev_kp_ns = (prev.keypoint_capture_ns if prev.keypoint_capture_ns is not None
                          else np.full(33, prev.capture_ns, dtype=np.int64))
            # A keypoint that jumped farther than a body part moves (a wrong 2-view match).
            dt_s = np.maximum(max(stamps) - prev_kp_ns, 0) / 1e9
            with np.errstate(invalid="ignore"):
                jump = np.linalg.norm(pts_cell - prev.keypoints_cell, axis=1)
            bad |= np.isfinite(jump) & (jump > _MAX_KEYPOINT_SPEED_MPS * dt_s + _KEYPOINT_NOISE_M)
        keypoint_ns = None
        if bad.any():
            pts_cell = pts_cell.copy()
            pts_cell[bad] = np.nan
            conf = np.where(bad, 0.0, conf)
            if prev is not None:
                hold = (bad & np.isfinite(prev.keypoints_cell).all(axis=1) & (prev.confidence > 0)
                        & (max(stamps) - prev_kp_ns <= _MAX_HOLD_NS))
                if hold.any():
                    pts_cell[hold] = prev.keypoints_cell[hold]
                    conf = np.where(hold, prev.confidence, conf)
                    keypoint_ns = np.where(hold, prev_kp_ns, min(stamps)).astype(np.int64)
            self._implausible += int(bad.sum())
        centre_cell = (self._T @ np.append(centre_w, 1.0))[:3]
        t_mean = int(np.mean(stamps))
        if self._centre_history:
            t_prev, c_prev = self._centre_history[-1]
            dt = abs(t_mean - t_prev) * 1e-9
            if np.linalg.norm(centre_cell - c_prev) > _MAX_CENTRE_SPEED_MPS * dt + _CENTRE_NOISE_M:
                # A jump no person makes (a looped clip, a different person): restart the filter.
                self._centre_history.clear()
        self._centre_history.append((t_mean, centre_cell))
        return HumanTrack(track_id="p1", keypoints_cell=pts_cell, confidence=conf,
                          velocity_mps=self._velocity(), sigma_m=float(sigma), capture_ns=min(stamps),
                          newest_capture_ns=max(stamps), views=tuple(c.camera_id for c in contributing),
                          keypoint_capture_ns=keypoint_ns)

    def _velocity(self) -> np.ndarray:
        """Least-squares slope of the body centre over the recent history (m/s, `cell` frame)."""
        hist = [(t, p) for t, p in self._centre_history if np.isfinite(p).all()]
        if len(hist) < 2:
            return np.zeros(3)
        t = np.array([h[0] for h in hist], dtype=np.float64) * 1e-9
        p = np.stack([h[1] for h in hist])
        t -= t.mean()
        denom = float((t ** 2).sum())
        if denom < 1e-6:
            return np.zeros(3)
        return (t[:, None] * (p - p.mean(axis=0))).sum(axis=0) / denom

    def _publish(self, now: int) -> None:
        if self._track is not None and now - self._track_seen_ns > self._track_timeout_ns:
            self._update_track(now)     # times the track out even when no frame arrives
        for tid, t_lost in list(self._lost.items()):
            if now - t_lost > self._lost_hold_ns:
                del self._lost[tid]
        cams = tuple(CameraStatus(c.camera_id, c.last_frame_ns, c.last_processed_ns, c.last_seq,
                                  c.frames_processed, c.frames_skipped, c.frames_with_person) for c in self._cams)
        tracks = () if self._track is None else (self._track,)
        self._snapshot = PerceptionSnapshot(stamp_ns=now, tracks=tracks, cameras=cams,
                                            lost_track_ids=tuple(sorted(self._lost)))
        if self._on_publish is not None:
            self._on_publish(self._snapshot)
