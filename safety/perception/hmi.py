"""HMI cameras: a worker's glasses as a moving camera of worker tracking.

The frames of an HMI arrive over WebRTC and its pose over the XR session (WebXR's viewer pose,
event ``hmi_camera``), each on its own path and clock. This module is the pure core that joins
them; `xr_server.hmi_cameras` is the I/O shell around it:

- `CaptureClock` maps a received frame's media time (RTP timestamp as aiortc's ``frame.time``)
  to the monotonic clock of this host, the clock every capture stamp of tracking is on.
- `PoseHistory` keeps the recent poses of one HMI and gives the pose at a frame's capture time:
  interpolated between the poses around it, or the nearest, or none when no pose is stamped
  within the bound (the frame is then not used).
- `calibration_from_pose` turns a pose and the frame's size into the `CameraCalibration` of that
  one frame (pinhole, no distortion: WebXR's camera model).
- `HmiFrameSource` is the `FrameSource` the tracking pipeline reads: newest posed frame wins,
  no queue, and each frame carries its own calibration.

Times are `time.monotonic_ns()`; positions metres in the `cell` frame; quaternions (x, y, z, w).
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

from content.calibration import CameraCalibration
from content.calibration.model import extrinsics_from_pose
from safety.errors import PerceptionError

#: Drift allowed between the sender's media clock and this host's clock, s per s (100 ppm is
#: ten times what a crystal oscillator drifts; the estimate follows drift up to it).
CLOCK_DRIFT_PER_S = 1e-4
#: Poses kept per HMI, seconds of history.
POSE_HISTORY_S = 2.0


@dataclass(frozen=True)
class HmiPose:
    """One pose of an HMI's camera, as its ``hmi_camera`` event reported it.

    Attributes:
        stamp_ns: monotonic time the pose holds for (its receipt on this host), ns.
        position_m: (3,) optical centre, metres, `cell` frame.
        orientation: (4,) unit quaternion (x, y, z, w) of the optical frame (x right, y down,
            z forward) in the `cell` frame.
        hfov_deg: horizontal field of view, degrees.
        aspect: image width / height the field of view refers to.
        principal_point: (u, v) of the principal point as fractions of the image width and
            height ((0.5, 0.5): the image centre).
    """

    stamp_ns: int
    position_m: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    hfov_deg: float
    aspect: float
    principal_point: tuple[float, float] = (0.5, 0.5)


def calibration_from_pose(name: str, pose: HmiPose, width: int, height: int) -> CameraCalibration:
    """The calibration of one HMI frame of `width` x `height` pixels taken at `pose`.

    Pinhole without distortion, square pixels: fx = fy = width / (2 tan(hfov / 2)), principal
    point `pose.principal_point` scaled to the frame.

    Raises:
        PerceptionError: the frame's aspect ratio differs from the pose's by more than 2 % (the
            field of view does not describe this image: it was cropped, or the pose is another
            camera's).
    """
    if width <= 0 or height <= 0:
        raise PerceptionError(f"HMI camera {name!r}: frame size must be positive, got {width}x{height}")
    if abs(width / height - pose.aspect) > 0.02 * pose.aspect:
        raise PerceptionError(f"HMI camera {name!r}: frame {width}x{height} has aspect "
                              f"{width / height:.3f}, its pose says {pose.aspect:.3f}")
    f = width / (2.0 * math.tan(math.radians(pose.hfov_deg) / 2.0))
    K = np.array([[f, 0.0, pose.principal_point[0] * width],
                  [0.0, f, pose.principal_point[1] * height],
                  [0.0, 0.0, 1.0]])
    R, t = extrinsics_from_pose(pose.position_m, quaternion_xyzw=pose.orientation)
    return CameraCalibration(name, (int(width), int(height)), K, np.zeros(5), R, t)


def _slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (x, y, z, w), shortest arc, a in [0, 1]."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(min(dot, 1.0))
    return (math.sin((1 - a) * theta) * q0 + math.sin(a * theta) * q1) / math.sin(theta)


class PoseHistory:
    """The recent poses of one HMI, oldest first (`POSE_HISTORY_S` of them).

    Not thread-safe: one owner (`xr_server.hmi_cameras` guards it with its lock).
    """

    def __init__(self, history_s: float = POSE_HISTORY_S) -> None:
        self._history_ns = int(history_s * 1e9)
        self._poses: deque[HmiPose] = deque()

    def __len__(self) -> int:
        return len(self._poses)

    def add(self, pose: HmiPose) -> None:
        """Keep `pose`; a pose stamped before the newest one kept is ignored (out of order)."""
        if self._poses and pose.stamp_ns < self._poses[-1].stamp_ns:
            return
        self._poses.append(pose)
        while len(self._poses) > 2 and self._poses[1].stamp_ns < pose.stamp_ns - self._history_ns:
            self._poses.popleft()

    def clear(self) -> None:
        self._poses.clear()

    def at(self, capture_ns: int, max_gap_ns: int) -> HmiPose | None:
        """The pose at `capture_ns`, or None when no pose is stamped within `max_gap_ns` of it.

        Between two poses each within `max_gap_ns` of `capture_ns`: the linear (position) and
        spherical (orientation) interpolation, intrinsics of the nearer one. Otherwise the
        nearest pose within `max_gap_ns`.
        """
        before = after = None
        for pose in reversed(self._poses):
            if pose.stamp_ns <= capture_ns:
                before = pose
                break
            after = pose
        ok_before = before is not None and capture_ns - before.stamp_ns <= max_gap_ns
        ok_after = after is not None and after.stamp_ns - capture_ns <= max_gap_ns
        if ok_before and ok_after and before is not None and after is not None:
            span = after.stamp_ns - before.stamp_ns
            a = (capture_ns - before.stamp_ns) / span if span > 0 else 0.0
            p = (1 - a) * np.asarray(before.position_m) + a * np.asarray(after.position_m)
            q = _slerp(np.asarray(before.orientation, dtype=np.float64),
                       np.asarray(after.orientation, dtype=np.float64), a)
            nearer = before if a <= 0.5 else after
            return HmiPose(capture_ns, (float(p[0]), float(p[1]), float(p[2])),
                           (float(q[0]), float(q[1]), float(q[2]), float(q[3])),
                           nearer.hfov_deg, nearer.aspect, nearer.principal_point)
        if ok_before:
            return before
        if ok_after:
            return after
        return None


class CaptureClock:
    """Capture times of a received video stream on this host's monotonic clock.

    A received frame has a media time (aiortc's ``frame.time``: the RTP timestamp, rebased to the
    stream's first frame, in seconds) and a receipt time here. Their difference is the stream's
    clock offset plus the frame's delay (capture, encoding, network, jitter buffer, decoding),
    which is never negative. The smallest difference seen is the offset plus the stream's
    smallest delay d_min; the capture time of a frame is estimated as its media time plus that
    smallest difference.

    Error bound: the estimate is later than the true capture by d_min (0 < d_min, the fastest
    frame's glass-to-decoded time: about 40 ms for Chromium at 640x480 on loopback, a few ms for
    an aiortc sender), never earlier; drift of the sender's clock against this host's is
    followed at up to `CLOCK_DRIFT_PER_S` (the minimum may rise by that much per second).

    Not thread-safe: one owner (the media loop).
    """

    def __init__(self, drift_per_s: float = CLOCK_DRIFT_PER_S) -> None:
        self._drift = drift_per_s
        self._offset_ns: int | None = None
        self._last_receipt_ns = 0

    def reset(self) -> None:
        """Forget the stream (a new track has a new media time base)."""
        self._offset_ns = None

    def capture_ns(self, media_time_s: float, receipt_ns: int) -> int:
        """The capture time of a frame with media time `media_time_s` received at `receipt_ns`."""
        media_ns = int(round(media_time_s * 1e9))
        offset = receipt_ns - media_ns
        if self._offset_ns is None:
            self._offset_ns = offset
        else:
            allowed = self._offset_ns + int(self._drift * max(receipt_ns - self._last_receipt_ns, 0))
            self._offset_ns = min(allowed, offset)
        self._last_receipt_ns = receipt_ns
        return media_ns + self._offset_ns


#: One posed frame: (H, W, 3) uint8 BGR image, monotonic capture ns, sequence number, its
#: calibration.
PosedFrame = tuple[np.ndarray, int, int, CameraCalibration]


class HmiFrameSource:
    """The frames of one HMI camera as worker tracking reads them (`FrameSource`).

    `push` publishes a frame with the calibration of its pose; `latest` returns the newest (no
    queue: a frame pushed before the pipeline read the previous one replaces it). The camera is
    `optional`: no frames is not a fault (the glasses may be off).

    Thread safety: `push` and `latest` may be called from any thread.
    """

    optional = True

    def __init__(self, camera_id: str) -> None:
        self.camera_id = camera_id
        self._lock = threading.Lock()
        self._latest: PosedFrame | None = None
        self._seq = 0

    def push(self, image_bgr: np.ndarray, capture_ns: int, calibration: CameraCalibration) -> None:
        """Publish a frame (read-only from now on) taken at `capture_ns` with `calibration`.

        Raises:
            PerceptionError: the image is not (H, W, 3) uint8 of the calibration's size.
        """
        image = np.asarray(image_bgr)
        w, h = calibration.image_size
        if image.dtype != np.uint8 or image.shape != (h, w, 3):
            raise PerceptionError(f"HMI camera {self.camera_id!r}: frame must be ({h}, {w}, 3) uint8 "
                                  f"as its calibration, got {image.shape} {image.dtype}")
        image.setflags(write=False)
        with self._lock:
            self._seq += 1
            self._latest = (image, int(capture_ns), self._seq, calibration)

    @property
    def frames_published(self) -> int:
        with self._lock:
            return self._seq

    def latest(self) -> PosedFrame | None:
        """The newest frame ``(frame_bgr, capture_ns, seq, calibration)``, None before the first."""
        with self._lock:
            return self._latest

    def start(self) -> None:
        """Nothing to start: frames are pushed."""

    def stop(self, timeout_s: float = 0.5) -> None:
        """Nothing to stop."""
