"""Worker tracking in its own process, so pose estimation never starves the safety loop.

On a 2-core machine MediaPipe takes about one core and, in the same process, competes
with the safety monitor and the robot simulation for the interpreter lock. The
tracking process runs the cameras and `PerceptionPipeline` at a lower scheduling
priority (`nice`) and sends every new `PerceptionSnapshot` to the parent through a
pipe; camera views for the dashboard travel as JPEG when asked for. Capture stamps
are `time.monotonic_ns()`, which is one system-wide clock on Linux, so the parent
measures data age and reaction time against the same clock. If the child dies or
stalls, its snapshots go stale and the safety monitor stops the robot.

HMI cameras (a worker's glasses) have no video in the child: the parent receives their frames
over WebRTC, matches each with the HMI's pose, and `push_frame` sends the newest posed frame of
each HMI to the child (a sender thread; a frame not yet sent when the next one comes is dropped,
never queued), where an `HmiFrameSource` hands it to the pipeline.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from content.calibration import CameraCalibration
from content.video_source import video_source_kind
from safety.errors import PerceptionError
from safety.perception.types import PerceptionSnapshot

if TYPE_CHECKING:
    from safety.perception.cameras import ReplayClock, VideoFileCamera
    from safety.perception.stream import StreamCamera

_log = logging.getLogger(__name__)

#: A snapshot is forwarded at once when its tracks changed, else at most this often (camera health).
HEARTBEAT_S = 0.02
#: Camera views are sent to the parent at most this often per camera while views are enabled.
VIEW_PERIOD_S = 0.2


@dataclass(frozen=True)
class CameraSpec:
    """One camera for the tracking process.

    Attributes:
        camera_id: the camera's id.
        video: the video file replayed as the camera, or a live source (an RTSP/HTTP URL or a
            ``/dev/videoN`` device, read by `StreamCamera`).
        calibration: calibration at the resolution of the frames after `resize`.
        resize: scale factor applied to the decoded frames.
        loop: replay at the end; `pingpong` plays forwards then backwards (files).
        capture_latency_s: live sources: exposure-to-receipt time subtracted from each stamp, s.
    """

    camera_id: str
    video: Path | str
    calibration: CameraCalibration
    resize: float = 0.5
    loop: bool = True
    pingpong: bool = False
    capture_latency_s: float = 0.0

    def source(self, replay: ReplayClock) -> VideoFileCamera | StreamCamera:
        """The camera's frame source: a live `StreamCamera` for URLs and devices, else the file
        replayed on `replay` (shared by the recorded cameras of a rig).

        Raises:
            PerceptionError: the file cannot be read, or the source is not valid.
        """
        from safety.perception.cameras import VideoFileCamera
        from safety.perception.stream import StreamCamera

        if video_source_kind(str(self.video)) != "file":
            w, h = self.calibration.image_size
            return StreamCamera(self.camera_id, str(self.video), resize=self.resize,
                                capture_latency_s=self.capture_latency_s,
                                expected_size=(round(w / self.resize), round(h / self.resize)))
        return VideoFileCamera(self.camera_id, self.video, resize=self.resize, loop=self.loop,
                               pingpong=self.pingpong, replay_clock=replay)


def _child_main(conn, specs: list[CameraSpec], process_rate_hz: float, nice: int, model_complexity: int,
                cell_bounds: tuple[np.ndarray, np.ndarray] | None = None,
                hmi_ids: Sequence[str] = (), floor_z_m: float = 0.0) -> None:  # pragma: no cover - child
    import cv2

    from safety.perception.cameras import ReplayClock
    from safety.perception.hmi import HmiFrameSource
    from safety.perception.pipeline import PerceptionPipeline, draw_skeleton

    import signal

    # Ctrl-C reaches the whole process group; the parent decides when the child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(nice)
    except OSError:
        pass
    send_lock = threading.Lock()

    def send(msg) -> None:
        with send_lock:
            conn.send(msg)

    replay = ReplayClock()      # the recorded cameras of the cell show the same moment
    try:
        cams: list = [(s.camera_id, s.source(replay), s.calibration) for s in specs]
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a domain error
        send(("error", f"{type(exc).__name__}: {exc}"))
        return
    hmis = {cam_id: HmiFrameSource(cam_id) for cam_id in hmi_ids}
    cams += [(cam_id, source, None) for cam_id, source in hmis.items()]
    last = {"tracks": (), "t": 0.0}

    def on_publish(snapshot: PerceptionSnapshot) -> None:
        now = time.monotonic()
        key = tuple(id(t) for t in snapshot.tracks) + snapshot.lost_track_ids
        if key != last["tracks"] or now - last["t"] >= HEARTBEAT_S:
            last["tracks"], last["t"] = key, now
            send(("snap", snapshot))

    pipeline = PerceptionPipeline(cams, process_rate_hz=process_rate_hz, on_publish=on_publish,
                                  model_complexity=model_complexity, cell_bounds=cell_bounds, floor_z_m=floor_z_m)
    views = False
    next_views = 0.0
    pipeline.start()
    send(("ready",))
    try:
        while True:
            if conn.poll(VIEW_PERIOD_S):
                msg = conn.recv()
                if msg[0] == "stop":
                    break
                if msg[0] == "views":
                    views = bool(msg[1])
                if msg[0] == "hmi":
                    try:
                        hmis[msg[1]].push(msg[2], msg[3], msg[4])
                    except Exception:  # noqa: BLE001 - a bad frame must not end tracking
                        _log.exception("HMI frame refused")
            if views and time.monotonic() >= next_views:
                next_views = time.monotonic() + VIEW_PERIOD_S
                for cam_id, _, _ in cams:
                    view = pipeline.camera_people(cam_id)
                    if view is None:
                        continue
                    frame, people, _ = view
                    for keypoints in people:
                        frame = draw_skeleton(frame, keypoints)
                    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 70])
                    if ok:
                        send(("view", cam_id, buf.tobytes()))
    except (EOFError, OSError):
        pass
    finally:
        pipeline.stop(0.5)
        try:
            send(("report", pipeline.report()))
        except (OSError, ValueError):
            pass


class PerceptionProcess:
    """Runs worker tracking in a child process and mirrors its newest snapshot here.

    Thread safety: `snapshot()`, `camera_jpeg()` and `report()` are safe from any thread
    and never block; `start()`, `stop()` and `enable_views()` belong to one controlling
    thread. A receiver thread owned by this object reads the pipe.

    Args:
        cameras: the cameras to track from.
        process_rate_hz: pose estimation rate per camera.
        nice: scheduling niceness added in the child (0: same priority as the parent).
        model_complexity: MediaPipe landmark model, 0 lite, 1 full, 2 heavy.
        cell_bounds: ((3,) min, (3,) max) box in the `cell` frame, metres: a track that ends
            inside it is reported in `PerceptionSnapshot.lost_track_ids` (a fault for safety).
            None: no track is ever reported lost.
        hmi_cameras: ids of the HMI cameras, whose frames come through `push_frame`.
        floor_z_m: height of the floor in `cell`, metres: a person one camera alone sees is
            placed on it (`safety.perception.floor`).

    Raises:
        PerceptionError: no camera at all, or a model is missing.
    """

    def __init__(self, cameras: list[CameraSpec], *, process_rate_hz: float = 8.0, nice: int = 5,
                 model_complexity: int = 1,
                 cell_bounds: tuple[np.ndarray, np.ndarray] | None = None,
                 hmi_cameras: Sequence[str] = (), floor_z_m: float = 0.0) -> None:
        if not cameras and not hmi_cameras:
            raise PerceptionError("PerceptionProcess needs at least one camera")
        from safety.perception.models import require_model

        require_model(model_complexity)     # fail here, with the fix in the message, not in the child
        self._model_complexity = model_complexity
        self._cell_bounds = cell_bounds
        self._floor_z_m = floor_z_m
        self._specs = list(cameras)
        self._rate = process_rate_hz
        self._nice = nice
        self._snapshot: PerceptionSnapshot | None = None
        self._views: dict[str, bytes] = {}
        self._report: dict = {}
        self._ready = threading.Event()
        self._error: str | None = None
        self._proc = None
        self._conn = None
        self._receiver: threading.Thread | None = None
        self._hmi_ids = tuple(hmi_cameras)
        self._send_lock = threading.Lock()           # the controlling and the HMI sender thread
        self._hmi_lock = threading.Lock()
        self._hmi_pending: dict[str, tuple] = {}     # camera id -> newest frame not yet sent
        self._hmi_wake = threading.Event()
        self._hmi_sender: threading.Thread | None = None
        self.hmi_frames_sent = 0
        self.hmi_frames_replaced = 0                 # dropped: a newer one came before sending

    def push_frame(self, camera_id: str, image_bgr: np.ndarray, capture_ns: int,
                   calibration: CameraCalibration) -> None:
        """Hand a posed frame of HMI camera `camera_id` to tracking. Never blocks; any thread.

        Args:
            camera_id: one of `hmi_cameras`.
            image_bgr: (H, W, 3) uint8 BGR, the size `calibration` refers to.
            capture_ns: monotonic capture time, ns.
            calibration: the camera at that frame (`safety.perception.hmi.calibration_from_pose`).

        Raises:
            PerceptionError: `camera_id` is not an HMI camera of this process.
        """
        if camera_id not in self._hmi_ids:
            raise PerceptionError(f"{camera_id!r} is not an HMI camera of worker tracking "
                                  f"(has {', '.join(self._hmi_ids) or 'none'})")
        with self._hmi_lock:
            if camera_id in self._hmi_pending:
                self.hmi_frames_replaced += 1
            self._hmi_pending[camera_id] = ("hmi", camera_id, image_bgr, int(capture_ns), calibration)
        self._hmi_wake.set()

    def _send_hmi(self) -> None:
        while self._proc is not None:
            self._hmi_wake.wait(0.2)
            self._hmi_wake.clear()
            with self._hmi_lock:
                pending, self._hmi_pending = self._hmi_pending, {}
            for msg in pending.values():
                if not self._send(msg):
                    return
                self.hmi_frames_sent += 1

    def _send(self, msg: tuple) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            with self._send_lock:
                conn.send(msg)
            return True
        except (OSError, ValueError):
            return False

    def snapshot(self) -> PerceptionSnapshot | None:
        """The newest snapshot from the child (None before the first)."""
        return self._snapshot

    @property
    def cell_bounds(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The box where an ended track is reported lost (see the class docstring)."""
        return self._cell_bounds

    def camera_ids(self) -> list[str]:
        """The camera ids: the fixed cameras in cell order, then the HMI cameras."""
        return [s.camera_id for s in self._specs] + list(self._hmi_ids)

    def camera_jpeg(self, camera_id: str) -> bytes | None:
        """JPEG of the newest processed frame of `camera_id` with its 2D skeleton (views enabled)."""
        return self._views.get(camera_id)

    def report(self) -> dict:
        """The pipeline's timing figures, available after `stop()`."""
        return dict(self._report)

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the child, wait until its cameras are decoded and tracking runs.

        Raises:
            PerceptionError: the child could not open a camera or did not get ready in time.
        """
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self._proc = ctx.Process(target=_child_main, args=(child_conn, self._specs, self._rate, self._nice,
                                                             self._model_complexity, self._cell_bounds,
                                                             self._hmi_ids, self._floor_z_m),
                                 name="xrcell-perception", daemon=True)
        self._proc.start()
        child_conn.close()
        self._receiver = threading.Thread(target=self._receive, name="perception-receiver", daemon=True)
        self._receiver.start()
        if not self._ready.wait(timeout_s) or self._error:
            self.stop()
            raise PerceptionError(f"worker tracking did not start: {self._error or f'not ready after {timeout_s:.0f} s'}")
        if self._hmi_ids:
            self._hmi_sender = threading.Thread(target=self._send_hmi, name="perception-hmi-sender", daemon=True)
            self._hmi_sender.start()

    def enable_views(self, enabled: bool = True) -> None:
        """Ask the child to send camera views (JPEG, 5 per second per camera) or to stop sending them."""
        self._send(("views", enabled))

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the child (it sends its report) and join it; kill it if it does not end in time."""
        if self._proc is None:
            return
        self._send(("stop",))
        self._proc.join(timeout_s)
        if self._proc.is_alive():
            _log.warning("worker tracking process did not stop within %.1f s; terminating it", timeout_s)
            self._proc.terminate()
            self._proc.join(0.5)
        if self._receiver is not None:
            self._receiver.join(0.5)
        self._proc = None
        self._hmi_wake.set()
        if self._hmi_sender is not None:
            self._hmi_sender.join(0.5)
            self._hmi_sender = None

    def _receive(self) -> None:
        while True:
            try:
                msg = self._conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "snap":
                self._snapshot = msg[1]
            elif kind == "view":
                self._views[msg[1]] = msg[2]
            elif kind == "ready":
                self._ready.set()
            elif kind == "report":
                self._report = msg[1]
            elif kind == "error":
                self._error = msg[1]
                self._ready.set()
        if not self._ready.is_set():
            self._error = self._error or "the tracking process ended during start-up"
            self._ready.set()
