"""Worker tracking: cell cameras -> 2D people per camera -> tracked people in 3D.

`PerceptionPipeline` owns ONE worker thread that visits the cameras round-robin, runs
multi-person pose estimation (`MultiPersonEstimator`) on the newest frame of each camera
that is due (a per-camera rate cap), hands the latest people of every camera whose result
is recent to the `MultiPersonTracker` (association across views, triangulation, identities,
Kalman filter), and publishes an immutable `PerceptionSnapshot` after every step.
"""

from __future__ import annotations

import gc
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
from safety.blas import single_threaded_blas
from safety.errors import PerceptionError
from safety.perception.multipose import Detector, Estimator, MultiPersonEstimator
from safety.perception.pose import PersonDetector, Pose2D, PoseEstimator
from safety.perception.tracker import MultiPersonTracker, View
from safety.perception.types import POSE_LIMBS, CameraStatus, PerceptionSnapshot

_log = logging.getLogger(__name__)

#: A step that estimated nothing publishes only when the last snapshot is this old (ns).
_IDLE_PUBLISH_NS = 10_000_000


class FrameSource(Protocol):
    """A camera as the pipeline sees it (e.g. `VideoFileCamera`, `HmiFrameSource`).

    `latest()` returns ``(frame_bgr, capture_ns, seq)``; a moving camera (an HMI) adds the
    `CameraCalibration` of that frame as a fourth element. A source with a true ``optional``
    attribute is a camera whose absence is not a fault (`CameraStatus.optional`).
    """

    def latest(self) -> tuple | None: ...
    def start(self) -> None: ...
    def stop(self, timeout_s: float = 0.5) -> None: ...


@dataclass
class _CameraState:
    camera_id: str
    source: FrameSource
    calibration: CameraCalibration | None         # None: every frame brings its own
    optional: bool = False
    estimator: MultiPersonEstimator | None = None
    last_seq: int = 0                 # newest sequence number seen
    last_frame_ns: int = 0
    last_processed_seq: int = 0
    last_processed_ns: int = 0        # capture time of the newest processed frame
    next_due_ns: int = 0              # clock time when the camera may be processed again
    frames_processed: int = 0
    frames_skipped: int = 0
    frames_with_person: int = 0
    people: tuple[Pose2D, ...] = ()   # latest 2D result (empty: nobody in the last processed frame)
    pose_capture_ns: int = 0
    people_calibration: CameraCalibration | None = None   # of the frame `people` come from


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
    """Multi-camera tracking of every worker in the cell (tracks "p1", "p2", ...).

    Lifecycle: created idle; `start()` starts the sources and the worker thread;
    `stop()` stops both. The worker thread owns all mutable state; `snapshot()`,
    `camera_view()`, `camera_people()` and `report()` only read references that the
    worker replaces atomically, so they are safe from any thread and never block on inference.

    Args:
        cameras: (camera_id, source, calibration) per camera; the calibration must refer to
            the resolution of the source's frames (use `CameraCalibration.scaled`). A moving
            camera (an HMI, `HmiFrameSource`) gives None: each of its frames carries its own.
        process_rate_hz: maximum pose-estimation rate per camera; newer frames replace
            older ones and the frames in between count as skipped.
        world_to_cell: (4, 4) homogeneous transform from the calibration's world frame to
            the `cell` frame (identity by default).
        max_view_age_s: a camera's latest 2D result joins a triangulation while its frame
            is younger than this. The age reaches the monitor in the capture stamps (its
            reaction time includes it), so a slow step on a loaded machine must not cost the
            track its measurement: 0.5 s, the track time-out.
        max_view_skew_s: views whose capture times differ by more than this are not
            triangulated together (a moving person would be misplaced).
        track_timeout_s: unused while the tracker coasts (its default): a track measured by no
            view (triangulated or placed on the floor) coasts until its sigma passes 1 m
            (`safety.perception.tracker`).
        cell_bounds: ((3,) min, (3,) max) corners of a box in the `cell` frame, metres; a track
            that ends inside it is reported in `lost_track_ids` for `lost_hold_s`, one that
            ends outside is not reported; either keeps its id for `lost_hold_s` for a person
            measured again within reach of where it ended.
        lost_hold_s: how long a lost track id stays in `lost_track_ids` (unless seen again).
        max_reprojection_error_px: view rejection threshold of `triangulate`, pixels of the
            processed frames (5 px at half resolution is 10 px at full resolution).
        min_confidence: minimum landmark visibility used for triangulation.
        estimator_factory: creates a single-person estimator (one per person followed in a
            camera, plus a spare shared by the cameras; built by `warm_up()` or the worker
            thread); MediaPipe `PoseEstimator(model_complexity)` by default.
        model_complexity: MediaPipe model when `estimator_factory` is not given.
        detector_factory: creates the person detector (one, shared by the cameras); by
            default MediaPipe's `PersonDetector` when `estimator_factory` is not given, else
            none (one person per camera).
        max_people_per_view: most people followed in one camera.
        detect_period_s: how often the cell looks for new people while everyone in view is
            followed: every `detect_period_s` ONE camera (round-robin) runs its person
            detector, so the detector costs the same however many cameras there are; a
            camera whose detector finds a new person makes every other camera look at its
            next frame. A camera that follows nobody runs its detector on every frame.
        warm_up_timeout_s: `start()` waits this long for each camera's first frame to build
            and run its models before tracking starts (see `MultiPersonEstimator.warm_up`).
        clock: monotonic clock in ns; must be the clock the sources stamp frames with.
        on_publish: called on the worker thread with every new snapshot; must not block.
        floor_z_m: height of the floor in `cell`, metres: a person seen by one camera only is
            placed on it (`MultiPersonTracker`, `safety.perception.floor`); None: not placed.

    Raises:
        PerceptionError: no camera, duplicate camera ids, or invalid parameters.
    """

    def __init__(self, cameras: Sequence[tuple[str, FrameSource, CameraCalibration]], *,
                 process_rate_hz: float = 8.0, world_to_cell: np.ndarray | None = None,
                 max_view_age_s: float = 0.5, max_view_skew_s: float = 0.05, track_timeout_s: float = 0.5,
                 cell_bounds: tuple[np.ndarray, np.ndarray] | None = None, lost_hold_s: float = 5.0,
                 max_reprojection_error_px: float = 5.0, min_confidence: float = 0.3,
                 estimator_factory: Callable[[], Estimator] | None = None, model_complexity: int = 1,
                 detector_factory: Callable[[], Detector] | None = None, max_people_per_view: int = 4,
                 detect_period_s: float = 1.0, warm_up_timeout_s: float = 5.0,
                 clock: Callable[[], int] = time.monotonic_ns, floor_z_m: float | None = 0.0,
                 on_publish: Callable[[PerceptionSnapshot], None] | None = None) -> None:
        if not cameras:
            raise PerceptionError("PerceptionPipeline needs at least one camera")
        single_threaded_blas()      # tiny matrices: OpenBLAS's spinning workers cost a core
        ids = [c[0] for c in cameras]
        if len(set(ids)) != len(ids):
            raise PerceptionError(f"PerceptionPipeline: duplicate camera ids in {ids}")
        if not process_rate_hz > 0:
            raise PerceptionError(f"process_rate_hz must be positive, got {process_rate_hz!r}")
        if max_people_per_view < 1:
            raise PerceptionError(f"max_people_per_view must be at least 1, got {max_people_per_view!r}")
        if world_to_cell is not None and not np.allclose(world_to_cell, np.eye(4)) and any(
                c[2] is None for c in cameras):
            raise PerceptionError("an HMI camera's poses are in the cell frame: world_to_cell must be "
                                  "the identity when the cell has one")
        self._tracker = MultiPersonTracker(world_to_cell=world_to_cell, cell_bounds=cell_bounds,
                                           track_timeout_s=track_timeout_s, lost_hold_s=lost_hold_s,
                                           max_reprojection_error_px=max_reprojection_error_px,
                                           min_confidence=min_confidence, floor_z_m=floor_z_m)
        self._cams = [_CameraState(cid, src, cal, optional=bool(getattr(src, "optional", False)))
                      for cid, src, cal in cameras]
        self._period_ns = int(1e9 / process_rate_hz)
        self._max_view_age_ns = int(max_view_age_s * 1e9)
        self._max_view_skew_ns = int(max_view_skew_s * 1e9)
        self._pending: deque[tuple[_CameraState, tuple]] = deque()
        self._factory: Callable[[], Estimator] = estimator_factory or (lambda: PoseEstimator(model_complexity))
        if detector_factory is None and estimator_factory is None:
            detector_factory = PersonDetector
        self._detector_factory = detector_factory
        self._max_people = max_people_per_view
        self._detect_period_ns = int(detect_period_s * 1e9)
        self._detector: Detector | None = None
        self._spares: list[Estimator] = []
        self._detect_turn = 0                     # index of the camera whose detector runs next
        self._detect_due_ns = 0                   # clock time from which it runs
        self._look_now: set[str] = set()          # cameras asked to detect at their next frame
        self._warm_up_timeout_s = warm_up_timeout_s
        self._last_stamp_ns = 0
        self._clock = clock
        self._on_publish = on_publish
        self._snapshot: PerceptionSnapshot | None = None
        self._views: dict[str, tuple[np.ndarray, tuple[np.ndarray, ...], int]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_cam = 0
        self._estimate_ms: deque[float] = deque(maxlen=2000)
        self._step_ms: deque[float] = deque(maxlen=2000)
        self._errors = 0

    # ------------------------------------------------------------------ public, any thread
    def snapshot(self) -> PerceptionSnapshot | None:
        """The newest snapshot (None before the first step). Never blocks."""
        return self._snapshot

    def camera_view(self, camera_id: str) -> tuple[np.ndarray, np.ndarray | None, int] | None:
        """Last processed frame of a camera: (frame_bgr read-only, (33, 2) keypoints px of its
        first person or None, capture_ns).

        None when the camera is unknown or nothing was processed yet.
        """
        view = self._views.get(camera_id)
        if view is None:
            return None
        return view[0], (view[1][0] if view[1] else None), view[2]

    def camera_people(self, camera_id: str) -> tuple[np.ndarray, tuple[np.ndarray, ...], int] | None:
        """Last processed frame of a camera: (frame_bgr read-only, (33, 2) keypoints px of
        every person found, capture_ns); None when unknown or nothing processed yet."""
        return self._views.get(camera_id)

    def report(self) -> dict:
        """Timing and quality figures: pose estimation (all people of a frame) and step times
        (ms: n, median, p95, max; a step publishes when it ends), triangulation count, median
        RMS reprojection error (pixels of the processed frames), tracks started, person-detector
        runs."""
        def stats(values: Sequence[float]) -> dict:
            if not values:
                return {"n": 0}
            s = sorted(values)
            return {"n": len(s), "median": round(statistics.median(s), 2),
                    "p95": round(s[int(0.95 * (len(s) - 1))], 2), "max": round(s[-1], 2)}
        tr = self._tracker
        return {"estimate_ms": stats(list(self._estimate_ms)), "step_ms": stats(list(self._step_ms)),
                "triangulations": tr.triangulations, "implausible_keypoints": tr.implausible,
                "mirrored_views": tr.mirrored_views, "tracks_started": tr.tracks_started,
                "detector_runs": sum(c.estimator.detector_runs for c in self._cams if c.estimator is not None),
                "spare_estimators": len(self._spares),
                "reprojection_error_px": stats(list(tr.reprojection_px)),
                "errors": self._errors}

    @property
    def running(self) -> bool:
        """True while the worker thread runs."""
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ lifecycle, one controlling thread
    def start(self) -> None:
        """Start the camera sources, `warm_up()`, then start the worker thread. Idempotent.

        Blocks for the warm-up (about 0.1 to 0.5 s per camera).
        """
        if self.running:
            return
        self._stop.clear()
        for cam in self._cams:
            cam.source.start()
        self.warm_up()
        self._thread = threading.Thread(target=self._run, name="perception", daemon=True)
        self._thread.start()

    def warm_up(self) -> None:
        """Build and run every camera's models on its first frame before tracking starts
        (`MultiPersonEstimator.warm_up`), so that no model is built or initialised once
        tracking runs: a step that builds one stalls past the safety monitor's staleness limits.

        Waits at most `warm_up_timeout_s` per camera for a first frame (a camera without one
        builds its models at its first frame instead). Call before the worker runs (`start()`
        does); cameras already warmed are skipped.

        Then everything allocated so far (modules, models, calibrations: the long-lived part
        of the tracking process) is moved out of the garbage collector's generations
        (`gc.freeze`, as the safety monitor does at its start), so that a full collection
        during tracking, which holds the interpreter lock, does not walk it (50-70 ms in the
        process of `bench/perception.py`).
        """
        for cam in self._cams:
            if cam.estimator is not None:
                continue
            if cam.optional:        # an HMI may come much later: warm up on a blank frame
                cam.estimator = self._make_estimator()
                cam.estimator.warm_up(np.zeros((480, 640, 3), np.uint8))
                continue
            deadline = time.monotonic() + self._warm_up_timeout_s
            latest = cam.source.latest()
            while latest is None and time.monotonic() < deadline and not self._stop.is_set():
                time.sleep(0.005)
                latest = cam.source.latest()
            cam.estimator = self._make_estimator()
            if latest is not None:
                cam.estimator.warm_up(latest[0])
        gc.freeze()

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
        """Process at most one camera frame; publish a snapshot (after a step that processed
        nothing, only when the last snapshot is 10 ms old).

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
            # Nothing to estimate: publish for liveness and track time-outs, not at every poll
            # (the worker polls every 1-5 ms while a due camera has no new frame yet).
            if now - self._last_stamp_ns >= _IDLE_PUBLISH_NS:
                self._publish(now)
            return False
        t0 = time.perf_counter()
        cam, (image, capture_ns, seq, *posed) = self._pending.popleft()
        calibration = posed[0] if posed else cam.calibration
        if cam.estimator is None:
            cam.estimator = self._make_estimator()
        cam.frames_skipped += seq - cam.last_processed_seq - 1 if seq > cam.last_processed_seq else 0
        cam.last_processed_seq, cam.last_processed_ns = seq, capture_ns
        t1 = time.perf_counter()
        detect = self._detection_due(cam, now)
        people = tuple(cam.estimator.estimate(image, capture_ns, detect=detect))
        self._estimate_ms.append((time.perf_counter() - t1) * 1e3)
        if cam.estimator.new_people:
            # A newcomer seen by one camera: every other camera looks for him at its next frame.
            self._look_now.update(c.camera_id for c in self._cams if c is not cam)
        cam.frames_processed += 1
        cam.people, cam.pose_capture_ns, cam.people_calibration = people, capture_ns, calibration
        if people:
            cam.frames_with_person += 1
        self._views[cam.camera_id] = (image, tuple(p.keypoints_px for p in people), capture_ns)
        now = self._clock()
        self._update_tracks(now, newest_ns=capture_ns)
        self._publish(now)
        self._step_ms.append((time.perf_counter() - t0) * 1e3)
        return True

    def _make_estimator(self) -> MultiPersonEstimator:
        # One worker thread runs every camera, so the cameras share ONE person detector (it
        # keeps no state between images) and one pool of spare estimators: fewer MediaPipe
        # graphs to build and keep.
        if self._detector is None and self._detector_factory is not None:
            self._detector = self._detector_factory()
        return MultiPersonEstimator(self._factory, self._detector, max_people=self._max_people,
                                    detect_period_s=self._detect_period_ns / 1e9, spares=self._spares)

    def _detection_due(self, cam: _CameraState, now: int) -> bool:
        """Whether `cam` runs its person detector on the frame it is about to process."""
        if cam.camera_id in self._look_now:
            self._look_now.discard(cam.camera_id)
            return True
        if now < self._detect_due_ns:
            return False
        # The camera whose turn it is; a camera that got no frame for a whole period past its
        # turn (stalled) passes the turn on to the camera processed next.
        if self._cams[self._detect_turn] is cam or now >= self._detect_due_ns + self._detect_period_ns:
            self._detect_turn = (self._cams.index(cam) + 1) % len(self._cams)
            self._detect_due_ns = now + self._detect_period_ns
            return True
        return False

    def _update_tracks(self, now: int, newest_ns: int) -> None:
        """Hand the fresh views captured close to `newest_ns` to the tracker."""
        views = [c for c in self._cams if c.people and now - c.pose_capture_ns <= self._max_view_age_ns
                 and abs(c.pose_capture_ns - newest_ns) <= self._max_view_skew_ns]
        self._tracker.update([View(c.camera_id, c.people_calibration, c.pose_capture_ns, c.people)
                              for c in views if c.people_calibration is not None], now)

    def _publish(self, now: int) -> None:
        # Every snapshot has its own stamp, strictly increasing: two publications within one
        # tick of a coarse (or simulated) clock are 1 ns apart, never the same stamp twice.
        now = max(now, self._last_stamp_ns + 1)
        self._last_stamp_ns = now
        self._tracker.expire(now)       # times tracks out even when no frame arrives
        # Each camera's newest frame as of this publication, not as of the start of the step
        # that publishes it: a step of a starved process can take hundreds of ms, and the
        # camera watchdog must see the cameras' own liveness, not the time the step took (that
        # is the tracking output's age, which the tracker watchdog bounds).
        for cam in self._cams:
            latest = cam.source.latest()
            if latest is not None:
                cam.last_seq, cam.last_frame_ns = latest[2], latest[1]
        cams = tuple(CameraStatus(c.camera_id, c.last_frame_ns, c.last_processed_ns, c.last_seq,
                                  c.frames_processed, c.frames_skipped, c.frames_with_person, c.optional)
                     for c in self._cams)
        self._snapshot = PerceptionSnapshot(stamp_ns=now, tracks=self._tracker.tracks(), cameras=cams,
                                            lost_track_ids=self._tracker.lost_ids())
        if self._on_publish is not None:
            self._on_publish(self._snapshot)
