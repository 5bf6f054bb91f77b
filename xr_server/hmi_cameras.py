"""HMIs as cameras of worker tracking: the worker video of an XR session, posed from its WebXR
``hmi_camera`` events, handed to worker tracking as a view whose extrinsics change per frame.

The cell file names the HMIs it uses as cameras (`content.cell.HmiCamera`: ``kind: hmi`` with a
``user`` or ``device`` selector). When such a worker publishes its video (`xr_server.rtc`), every
frame the session's reader decodes anyway (the one decode of the relay) comes here:

1. its capture time on this host's monotonic clock (`safety.perception.hmi.CaptureClock`: media
   time plus the stream's smallest observed delay; later than the true capture by that smallest
   delay, never earlier),
2. frames closer together than the camera's ``process_rate_hz`` period are dropped before they
   are converted (counted as skipped),
3. the pose at that time from the session's ``hmi_camera`` events (`PoseHistory.at`, within the
   camera's ``max_pose_age_s``; the pose is stamped with its receipt here); a frame without one
   is rejected and counted (no pose yet, or none close enough),
4. converted once to BGR, scaled, and handed with its calibration to the sink
   (`safety.perception.process.PerceptionProcess.push_frame`), which keeps only the newest.

Threads: `frame` and `video_ended` run on the WebRTC gateway's loop, `pose` and
`video_started` in Socket.IO handler threads, `status` anywhere; one lock guards the state.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from content.calibration import CameraCalibration
from content.cell import HmiCamera
from safety.errors import PerceptionError
from safety.perception.hmi import CaptureClock, HmiPose, PoseHistory, calibration_from_pose

log = logging.getLogger(__name__)

#: ``sink(camera_id, image_bgr, capture_ns, calibration)``: hands a posed frame to tracking;
#: must not block.
FrameSink = Callable[[str, np.ndarray, int, CameraCalibration], None]


@dataclass(frozen=True)
class HmiCameraStatus:
    """Figures of one HMI camera since the server started.

    Attributes:
        camera_id: the camera's id in the cell file.
        session: the XR session whose video it is now (None: no video).
        frames_received: frames decoded from the HMI's video.
        frames_used: frames handed to tracking with a pose.
        frames_skipped: frames dropped by the camera's rate cap (not converted).
        frames_rejected_no_pose: frames dropped because the session had no pose at all.
        frames_rejected_stale_pose: frames dropped because no pose was within ``max_pose_age_s``
            of their capture time.
        frames_rejected_bad_pose: frames whose pose does not fit them (aspect ratio).
    """

    camera_id: str
    session: str | None
    frames_received: int
    frames_used: int
    frames_skipped: int
    frames_rejected_no_pose: int
    frames_rejected_stale_pose: int
    frames_rejected_bad_pose: int


@dataclass
class _Camera:
    config: HmiCamera
    session: str | None = None
    clock: CaptureClock = field(default_factory=CaptureClock)
    next_due_ns: int = 0
    received: int = 0
    used: int = 0
    skipped: int = 0
    no_pose: int = 0
    stale_pose: int = 0
    bad_pose: int = 0


class HmiCameras:
    """The HMI cameras of one cell.

    Args:
        cameras: the cell's HMI cameras (`CellDescription.hmi_cameras()`).
        sink: `FrameSink` of worker tracking.
        clock: monotonic clock, ns (the clock of every capture stamp in tracking).
    """

    def __init__(self, cameras: Sequence[HmiCamera], sink: FrameSink,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._cameras = {c.id: _Camera(c) for c in cameras}
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._poses: dict[str, PoseHistory] = {}      # session id -> its HMI's poses
        self._by_session: dict[str, _Camera] = {}     # session id -> the camera its video is

    def camera_for(self, username: str, device: str | None) -> str | None:
        """The id of the HMI camera of `username` sending from `device`, None if not a camera."""
        for cam in self._cameras.values():
            if (cam.config.user is not None and cam.config.user == username) or (
                    cam.config.device is not None and cam.config.device == device):
                return cam.config.id
        return None

    # ----------------------------------------------------------------- Socket.IO handler threads
    def pose(self, session_id: str, position_m: Sequence[float], orientation: Sequence[float],
             hfov_deg: float, aspect: float, principal_point: Sequence[float] = (0.5, 0.5)) -> None:
        """Keep a pose of the session's HMI, stamped now (see `HmiPose` for the fields)."""
        pose = HmiPose(self._clock(), (float(position_m[0]), float(position_m[1]), float(position_m[2])),
                       tuple(float(q) for q in orientation),  # type: ignore[arg-type]
                       float(hfov_deg), float(aspect), (float(principal_point[0]), float(principal_point[1])))
        with self._lock:
            self._poses.setdefault(session_id, PoseHistory()).add(pose)

    def video_started(self, session_id: str, username: str, device: str | None) -> str | None:
        """The worker `username` started the video of `session_id`: if it is an HMI camera, its
        frames go to tracking from now on. Returns the camera id (None: not a camera)."""
        camera_id = self.camera_for(username, device)
        with self._lock:
            self._by_session.pop(session_id, None)
            if camera_id is None:
                return None
            cam = self._cameras[camera_id]
            if cam.session is not None:
                self._by_session.pop(cam.session, None)
            cam.session = session_id
            cam.clock.reset()
            self._by_session[session_id] = cam
        log.info("session %s: the video of %s is HMI camera %s", session_id, username, camera_id)
        return camera_id

    def session_ended(self, session_id: str) -> None:
        """Forget the session's poses and video."""
        self.video_ended(session_id)
        with self._lock:
            self._poses.pop(session_id, None)

    # ------------------------------------------------------------------------------- the loop
    def video_ended(self, session_id: str) -> None:
        """The session's video ended: its camera has no frames until a video starts again."""
        with self._lock:
            cam = self._by_session.pop(session_id, None)
            if cam is not None and cam.session == session_id:
                cam.session = None

    def frame(self, session_id: str, frame: Any) -> None:
        """A decoded frame of the session's worker video (`av.VideoFrame`); see the module
        docstring for what happens to it. Never raises."""
        receipt_ns = self._clock()
        with self._lock:
            cam = self._by_session.get(session_id)
            if cam is None:
                return
            cam.received += 1
            media_time = frame.time
            capture_ns = receipt_ns if media_time is None else cam.clock.capture_ns(media_time, receipt_ns)
            if receipt_ns < cam.next_due_ns:
                cam.skipped += 1
                return
            history = self._poses.get(session_id)
            pose = None if history is None else history.at(capture_ns, int(cam.config.max_pose_age_s * 1e9))
            if pose is None:
                if history is None or not len(history):
                    cam.no_pose += 1
                else:
                    cam.stale_pose += 1
                return
            period_ns = int(1e9 / cam.config.process_rate_hz)
            due = cam.next_due_ns + period_ns        # keeps the cadence while frames keep up
            cam.next_due_ns = due if receipt_ns < due <= receipt_ns + period_ns else receipt_ns + period_ns
            config = cam.config
        try:
            image = _scaled(frame.to_ndarray(format="bgr24"), config.resize, config.max_width_px)
            h, w = image.shape[:2]
            calibration = calibration_from_pose(config.id, pose, w, h)
        except PerceptionError as exc:
            with self._lock:
                cam.bad_pose += 1
            log.debug("HMI camera %s: %s", config.id, exc)
            return
        try:
            self._sink(config.id, image, capture_ns, calibration)
        except Exception:  # noqa: BLE001 - tracking's problem must not break the media loop
            log.exception("HMI camera %s: worker tracking refused a frame", config.id)
            return
        with self._lock:
            cam.used += 1

    # ---------------------------------------------------------------------------- any thread
    def status(self) -> list[HmiCameraStatus]:
        """The figures of every HMI camera, in cell order. Thread-safe."""
        with self._lock:
            return [HmiCameraStatus(c.config.id, c.session, c.received, c.used, c.skipped, c.no_pose,
                                    c.stale_pose, c.bad_pose) for c in self._cameras.values()]


def _scaled(image: np.ndarray, resize: float, max_width_px: int) -> np.ndarray:
    """`image` scaled by `resize`, and further down to `max_width_px` wide if wider."""
    h, w = image.shape[:2]
    factor = min(resize, max_width_px / w)
    if factor >= 1.0:
        return image
    return cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))),
                      interpolation=cv2.INTER_AREA)
