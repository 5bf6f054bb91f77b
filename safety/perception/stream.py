"""Live cell cameras: network streams (RTSP, HTTP) and local video devices (V4L2).

A `StreamCamera` reads its source through OpenCV (FFmpeg back-end for URLs, V4L2 for
``/dev/video*``) in its own thread and publishes the newest frame like `VideoFileCamera`:
there is no queue, a consumer slower than the camera skips frames and sees that from the
sequence numbers. A source that fails to open, stops sending, or ends is reopened with a
growing pause (0.5 s doubling to 5 s); while it is down nothing is published, so the
monitor's camera watchdog (`safety.camera_timeout_s`) stops the robot - the camera never
fakes liveness.

Capture time: a stream does not tell when its frames were exposed, so each frame is stamped
with the clock when OpenCV handed it over minus the camera's declared `capture_latency_s`
(exposure, encoding, network, decoding). The safety monitor's reaction time T_r counts the
age of the camera data from that stamp (ISO/TS 15066 5.5.4.2.3 names sensor latency as part
of T_r), so a latency declared too small makes S_p too small: measure it (film a running
millisecond clock next to the camera's own output and compare) and keep the larger figure.

RTSP frames queue: FFmpeg buffers what arrives while it opens the stream (up to a GOP, often
1-2 s on IP cameras), and a reader that stalls finds a backlog. Stamped at receipt, such frames
would look fresh. An RTSP frame is therefore stamped from its RTP presentation time (the
camera's capture clock), mapped onto the monotonic clock by the smallest receipt-minus-
presentation offset seen since the stream opened (`StreamTimeline`): a frame that waited in a
queue keeps its true, older time. After each open the backlog is dropped, not published: frames
that arrive faster than the stream's own pace are the queue draining. RTSP captures also decode
in one thread (FFmpeg's frame threads hold a frame each).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import cv2

from content.video_source import video_source_kind
from safety.errors import PerceptionError
from safety.perception.cameras import FramePublisher

_log = logging.getLogger(__name__)

#: Pause before reopening a source that failed, seconds: first, and the cap of its doubling.
RETRY_S = (0.5, 5.0)


#: Largest difference per axis, pixels, between a stream's frame size and its calibration's
#: that is still the same picture: H.264/H.265 code whole 16x16 macroblocks, and calibration
#: tools that read the coded size report e.g. 1088 rows for a 1080-row picture (the Pose2Sim
#: demo calibration does). Cropping the padding at the bottom/right leaves K unchanged.
CODEC_PADDING_PX = 15


def _is_rtsp(source: str) -> bool:
    return source.lower().startswith(("rtsp://", "rtsps://"))


def open_capture(
    source: str, open_timeout_s: float = 5.0, read_timeout_s: float = 5.0
) -> cv2.VideoCapture:
    """A `cv2.VideoCapture` of a camera's source (not checked for `isOpened()`).

    ``/dev/videoN``: V4L2 with a driver buffer of one frame. URLs: FFmpeg with the timeouts;
    RTSP URLs also with a one-thread decoder (FFmpeg's frame threads each hold a frame: on
    loopback the newest frame's age fell from about 71 to 38 ms, `bench/rtsp_camera.py`).
    RTP transport (checked with gst-rtsp-server, tests/safety/perception/test_rtsp_camera.py):
    OpenCV 4.11 (the pinned wheel) leaves FFmpeg's default, RTP over UDP (TCP only if UDP
    fails), while ``OPENCV_FFMPEG_CAPTURE_OPTIONS`` is unset, and sets up RTP over TCP
    (interleaved in the RTSP connection) whenever that variable is set, whatever its value
    (``rtsp_transport;udp`` too). The variable is read at every open but is process-wide, so
    the transport is chosen for all cameras of a process: set
    ``OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;tcp`` where UDP is blocked or lossy.
    Files: OpenCV's default back-end.
    """
    kind = video_source_kind(source)
    if kind == "device":
        cap = cv2.VideoCapture(source, cv2.CAP_V4L2)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver keeps one frame, not a backlog
        return cap
    if kind == "file":
        return cv2.VideoCapture(source)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout_s * 1000),
    ]
    if _is_rtsp(source):
        params += [cv2.CAP_PROP_N_THREADS, 1]
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)


#: Consecutive frames at the stream's own pace that end a backlog (`StreamTimeline`): one is not
#: enough, a reader thread that the scheduler held for a moment paces one frame by chance.
PACED_FRAMES_TO_LIVE = 3
#: How fast the unqueued offset of `StreamTimeline` may grow, s per s: the camera's clock and
#: ours drift apart (crystals of +-50 ppm each; 200 ppm leaves a margin). Without it a camera
#: clock 100 ppm slow would make its frames look 0.36 s older per hour until the watchdog
#: stopped the robot; queues grow far faster (a 100 ms stall within a second is 0.1 s per s).
CLOCK_DRIFT_ALLOWANCE = 2e-4
#: A backlog that drains for longer than this, seconds, is a reader that does not keep up with
#: the stream (a CPU too busy, a stream too large): `StreamCamera.error` says so.
BACKLOG_ERROR_S = 3.0


class StreamTimeline:
    """When the frames of one opened RTSP stream arrived without queueing, monotonic ns.

    Pure and single-threaded (the camera's reader thread). Each frame gives its presentation
    time (`pts_ns`, the stream's clock, from RTP timestamps) and its receipt time. The smallest
    receipt-minus-presentation offset seen is the stream's unqueued path; `arrival_ns` maps a
    frame's presentation time through it, so a frame that waited in a queue (FFmpeg's buffer
    from the open, a reader that stalled) keeps its older time. The estimate is never later than
    the receipt time. The offset may grow by `CLOCK_DRIFT_ALLOWANCE` of the time elapsed (the
    two clocks drift apart); a queue that builds up more slowly than that is taken for drift.

    Backlog: a frame that arrives less than half its presentation interval after the one before
    is a queue draining faster than the stream's pace. Until `PACED_FRAMES_TO_LIVE` frames in a
    row arrive at the stream's pace, `arrival_ns` returns None (`live` is False): after an open,
    and again after a presentation time that does not increase (no timestamps, or the camera's
    clock jumped back), which also starts the offset over.
    """

    def __init__(self) -> None:
        self.live = False
        self._paced = 0
        self._offset_ns = 0
        self._offset_at_ns = 0  # receipt time when `_offset_ns` was last updated
        self._last: tuple[int, int] | None = None

    def arrival_ns(self, pts_ns: int, received_ns: int) -> int | None:
        """The frame's unqueued arrival time, ns, or None while a backlog may be draining."""
        last, self._last = self._last, (pts_ns, received_ns)
        offset_ns = received_ns - pts_ns
        if last is None or pts_ns <= last[0]:
            self.live, self._paced = False, 0
            self._offset_ns, self._offset_at_ns = offset_ns, received_ns
            return None
        drift_ns = int((received_ns - self._offset_at_ns) * CLOCK_DRIFT_ALLOWANCE)
        self._offset_ns = min(self._offset_ns + drift_ns, offset_ns)
        self._offset_at_ns = received_ns
        if not self.live:
            paced = 2 * (received_ns - last[1]) >= pts_ns - last[0]
            self._paced = self._paced + 1 if paced else 0
            self.live = self._paced >= PACED_FRAMES_TO_LIVE
        return pts_ns + self._offset_ns if self.live else None


def _same_picture_size(size: tuple[int, int], expected: tuple[int, int]) -> bool:
    return all(0 <= e - s <= CODEC_PADDING_PX for s, e in zip(size, expected))


def probe_picture_size(source: str, timeout_s: float = 5.0) -> tuple[int, int]:
    """Open a camera's source once and read one frame: its (width, height), pixels.

    For ``xrcell check-cell --cameras``: a file path, an ``rtsp``/``http(s)`` URL or a
    ``/dev/videoN`` device (`content.video_source.video_source_kind`), opened as a
    `StreamCamera` opens it (`open_capture`).

    Raises:
        PerceptionError: the source cannot be opened or gives no frame within `timeout_s`.
    """
    cap = open_capture(source, timeout_s, timeout_s)
    try:
        if not cap.isOpened():
            raise PerceptionError(f"cannot open {source}")
        ok, frame = cap.read()
        if not ok or frame is None:
            raise PerceptionError(f"no frame from {source}")
        h, w = frame.shape[:2]
        return w, h
    finally:
        cap.release()


def size_mismatch(size: tuple[int, int], expected: tuple[int, int]) -> str | None:
    """None when frames of `size` (width, height) are the pictures a calibration of `expected`
    describes (equal, or up to `CODEC_PADDING_PX` smaller per axis), else why not."""
    if _same_picture_size(size, expected):
        return None
    (w, h), (ew, eh) = size, expected
    return f"frames are {w}x{h} but the calibration is for {ew}x{eh}: set the camera to {ew}x{eh} or calibrate it at {w}x{h}"


class StreamCamera(FramePublisher):
    """A live camera (network stream or V4L2 device) published newest-frame-wins.

    Threads: the reader thread (owned by this object) writes; `latest()` and the counters are
    safe from any thread. `start()`/`stop()` are meant for one controlling thread.

    Args:
        camera_id: the camera's id in the cell description.
        source: an ``rtsp://``, ``rtsps://``, ``http://`` or ``https://`` URL, or ``/dev/videoN``.
        resize: scale factor of the published frames, in (0, 1].
        capture_latency_s: time from exposure to OpenCV handing the frame over, seconds (>= 0);
            subtracted from the receipt time to stamp the frame; for RTSP from the unqueued
            arrival time (`StreamTimeline`), so it covers the path without queues only (see
            the module docstring).
        expected_size: (width, height) of the frames as the camera's calibration expects them
            BEFORE `resize`; frames of another size are not published (the calibration would
            place people wrongly) and `error` says why, except frames up to `CODEC_PADDING_PX`
            smaller (the codec's padding rows and columns). None: not checked.
        clock: monotonic clock in ns (the capture stamps).
        open_timeout_s, read_timeout_s: OpenCV's FFmpeg open and read timeouts for URLs.

    Raises:
        PerceptionError: `source` is neither a supported URL nor a device, `resize` is out of
            range, or `capture_latency_s` is negative.
    """

    optional = False

    def __init__(
        self,
        camera_id: str,
        source: str,
        *,
        resize: float = 0.5,
        capture_latency_s: float = 0.0,
        expected_size: tuple[int, int] | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 2.0,
    ) -> None:
        self.camera_id = camera_id
        self.source = source
        try:
            self.kind = video_source_kind(source)
        except ValueError as exc:
            raise PerceptionError(f"camera {camera_id!r}: {exc}") from None
        if self.kind == "file":
            raise PerceptionError(
                f"camera {camera_id!r}: {source!r} is not a stream URL or a /dev/videoN device"
            )
        if not 0.0 < resize <= 1.0:
            raise PerceptionError(f"camera {camera_id!r}: resize must be in (0, 1], got {resize!r}")
        if not capture_latency_s >= 0.0:
            raise PerceptionError(
                f"camera {camera_id!r}: capture_latency_s must be >= 0, got {capture_latency_s!r}"
            )
        self.resize = float(resize)
        self.expected_size = expected_size
        self._latency_ns = int(round(capture_latency_s * 1e9))
        self._clock = clock
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._opens = 0
        self._dropped = 0
        self._error: str | None = None
        super().__init__()

    @property
    def connections(self) -> int:
        """How many times the source was opened successfully (1 + reconnections)."""
        with self._lock:
            return self._opens

    @property
    def frames_dropped(self) -> int:
        """RTSP frames not published because they had queued (the backlog after each open)."""
        with self._lock:
            return self._dropped

    @property
    def error(self) -> str | None:
        """Why the camera publishes nothing right now (open failure, lost stream, wrong frame
        size), or None while frames flow."""
        with self._lock:
            return self._error

    def _open(self) -> cv2.VideoCapture:
        return open_capture(self.source, self._open_timeout_s, self._read_timeout_s)

    def _set_error(self, error: str | None) -> None:
        with self._lock:
            changed, self._error = error != self._error, error
        if changed and error is not None:
            _log.warning("camera %s: %s", self.camera_id, error)
        elif changed:
            _log.info("camera %s: frames flow from %s", self.camera_id, self.source)

    def _run(self) -> None:
        retry_s = RETRY_S[0]
        while not self._stop.is_set():
            cap = self._open()
            try:
                if not cap.isOpened():
                    self._set_error(f"cannot open {self.source}")
                else:
                    with self._lock:
                        self._opens += 1
                    if self._read(cap):
                        retry_s = RETRY_S[0]  # it delivered: the next failure retries soon
            finally:
                cap.release()
            if self._stop.wait(retry_s):
                break
            retry_s = min(2.0 * retry_s, RETRY_S[1])

    def _read(self, cap: cv2.VideoCapture) -> bool:
        """Publish frames until the source fails or `stop()`; True if any frame was published."""
        delivered = False
        timeline = StreamTimeline() if _is_rtsp(self.source) else None
        draining_since_ns: int | None = None
        while not self._stop.is_set():
            ok, frame = cap.read()
            received_ns = self._clock()
            if ok and frame is not None and timeline is not None:
                pts_ns = int(cap.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
                arrival_ns = timeline.arrival_ns(pts_ns, received_ns)
                if arrival_ns is None:
                    with self._lock:
                        self._dropped += 1
                    if draining_since_ns is None:
                        draining_since_ns = received_ns
                    elif received_ns - draining_since_ns > BACKLOG_ERROR_S * 1e9:
                        self._set_error(
                            f"{self.source}: frames queue for more than {BACKLOG_ERROR_S:g} s "
                            "(the reader does not keep up with the stream); dropped, not published"
                        )
                    continue
                draining_since_ns = None
                received_ns = arrival_ns
            if not ok or frame is None:
                self._set_error(
                    f"{self.source} stopped sending frames"
                    if delivered
                    else f"no frame from {self.source}"
                )
                return delivered
            h, w = frame.shape[:2]
            mismatch = (
                None if self.expected_size is None else size_mismatch((w, h), self.expected_size)
            )
            if mismatch is not None:
                self._set_error(mismatch)
                continue
            if self.resize != 1.0:
                frame = cv2.resize(
                    frame, None, fx=self.resize, fy=self.resize, interpolation=cv2.INTER_AREA
                )
            frame.setflags(write=False)
            self._publish(frame, received_ns - self._latency_ns)
            delivered = True
            self._set_error(None)
        return delivered
