"""Cell camera sources: a recorded clip replayed as a live camera.

A source publishes frames; consumers read the newest one with `latest()` (newest frame
wins, there is no queue: a consumer that is slower than the camera skips frames by
design and sees that from the sequence numbers).
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from safety.errors import PerceptionError

_log = logging.getLogger(__name__)

#: One published frame: (H, W, 3) uint8 BGR image, monotonic capture time in ns, sequence number (1, 2, ...).
Frame = tuple[np.ndarray, int, int]


class ReplayClock:
    """One replay time base shared by the recorded cameras of a rig.

    The cameras of a cell see the same moment at the same time. Clips replayed by
    independent threads drift apart (a thread that wakes late under load falls a frame
    behind the others for good), and then at the same capture time one camera shows the
    person where another showed him frames earlier: the views no longer agree. Cameras
    that share a `ReplayClock` show clip frame floor((t - epoch) * fps) at time t, all
    of them, whatever their threads' timing; the epoch is the first camera's `start()`.

    Thread-safe.

    Args:
        clock: monotonic clock in ns (the cameras' capture clock).
    """

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._clock = clock
        self._epoch_ns: int | None = None
        self._lock = threading.Lock()

    def epoch_ns(self) -> int:
        """The replay's start time, ns (set by the first call)."""
        with self._lock:
            if self._epoch_ns is None:
                self._epoch_ns = self._clock()
            return self._epoch_ns


class FramePublisher(abc.ABC):
    """Base of the cameras that publish newest-frame-wins from a thread of their own.

    A subclass implements `_run()` (the thread's body, which ends when `self._stop` is set) and
    publishes with `_publish(frame, capture_ns)`. `latest()`, `frames_published` and `running`
    are safe from any thread; `start()`/`stop()` are meant for one controlling thread.
    """

    camera_id: str

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Frame | None = None
        self._published = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def frames_published(self) -> int:
        """Frames published since construction."""
        with self._lock:
            return self._published

    @property
    def running(self) -> bool:
        """True while the publisher thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def latest(self) -> Frame | None:
        """The newest frame `(frame_bgr, capture_ns, seq)`, or None before the first.

        The image is read-only and shared: copy it before drawing on it. `seq` counts
        published frames from 1, so `seq` gaps are frames the caller skipped.
        """
        with self._lock:
            return self._latest

    def start(self) -> None:
        """Start publishing. Idempotent."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 0.5) -> None:
        """Stop publishing and join the thread (within `timeout_s`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                _log.warning("camera %s: publisher thread did not stop within %.2f s", self.camera_id, timeout_s)
            self._thread = None

    def _publish(self, frame: np.ndarray, capture_ns: int) -> None:
        with self._lock:
            self._published += 1
            self._latest = (frame, capture_ns, self._published)

    @abc.abstractmethod
    def _run(self) -> None:
        """The publisher thread's body: publish until `self._stop` is set."""


class VideoFileCamera(FramePublisher):
    """A video file replayed as a live camera at the clip's native frame rate.

    The whole clip is decoded ONCE in the constructor, resized by `resize`, and kept in
    memory (decoding 1088x1920 H.264 costs about 5 ms per frame, too much to do live for
    several cameras). After `start()` a thread publishes the clip frame of the replay
    time every 1/fps seconds, stamped with the clock at publication (its capture time),
    looping when `loop` is set. Like a live camera it never slows down: a publication that
    comes late shows the frame of its time and the frames in between are never published.

    Threads: the publisher thread (owned by this object) writes; `latest()`,
    `frames_published` and `running` are safe from any thread. `start()`/`stop()` are
    meant for one controlling thread.

    Args:
        camera_id: the camera's id in the cell description.
        path: the video file.
        resize: scale factor of the published frames, in (0, 1].
        loop: replay from the start at the end of the clip; otherwise stop publishing.
        pingpong: with `loop`, play the clip forwards then backwards (frames N-2 .. 1) and
            so on, so a person walking in the clip never jumps back at the loop point.
        clock: monotonic clock in ns (the capture stamp of each frame).
        max_preload_frames: refuse clips longer than this (memory bound).
        fps: publication rate; defaults to the clip's own frame rate (30 when unknown).
        replay_clock: shared by the cameras of one rig so they show the same clip frame at
            the same time (see `ReplayClock`); None: this camera's own, started by `start()`.

    Raises:
        PerceptionError: the file is missing or cannot be decoded, `resize` is out of
            range, or the clip has more than `max_preload_frames` frames.
    """

    def __init__(self, camera_id: str, path: str | Path, *, resize: float = 0.5, loop: bool = True,
                 clock: Callable[[], int] = time.monotonic_ns, max_preload_frames: int = 2000,
                 fps: float | None = None, pingpong: bool = False,
                 replay_clock: ReplayClock | None = None) -> None:
        self.camera_id = camera_id
        self.pingpong = pingpong
        self.path = Path(path)
        if not 0.0 < resize <= 1.0:
            raise PerceptionError(f"camera {camera_id!r}: resize must be in (0, 1], got {resize!r}")
        if not self.path.is_file():
            raise PerceptionError(f"camera {camera_id!r}: video file not found: {self.path}")
        self.resize = float(resize)
        self.loop = loop
        self._clock = clock
        self._replay_clock = replay_clock
        self._frames, clip_fps = self._decode(max_preload_frames)
        self.fps = float(fps) if fps else clip_fps
        if not self.fps > 0:
            raise PerceptionError(f"camera {camera_id!r}: frame rate must be positive, got {self.fps!r}")
        super().__init__()

    def _decode(self, max_frames: int) -> tuple[list[np.ndarray], float]:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            raise PerceptionError(f"camera {self.camera_id!r}: cannot open video {self.path}")
        try:
            fps = cap.get(cv2.CAP_PROP_FPS)
            frames: list[np.ndarray] = []
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                if len(frames) >= max_frames:
                    raise PerceptionError(f"camera {self.camera_id!r}: {self.path} has more than "
                                          f"max_preload_frames={max_frames} frames; shorten the clip or raise the cap")
                if self.resize != 1.0:
                    frame = cv2.resize(frame, None, fx=self.resize, fy=self.resize, interpolation=cv2.INTER_AREA)
                frame.setflags(write=False)
                frames.append(frame)
        finally:
            cap.release()
        if not frames:
            raise PerceptionError(f"camera {self.camera_id!r}: no frame could be decoded from {self.path}")
        return frames, (fps if fps and fps > 0 else 30.0)

    @property
    def frame_count(self) -> int:
        """Frames in the clip."""
        return len(self._frames)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) of the published frames, pixels."""
        h, w = self._frames[0].shape[:2]
        return w, h

    def _run(self) -> None:
        replay = self._replay_clock if self._replay_clock is not None else ReplayClock(self._clock)
        epoch_ns = replay.epoch_ns()
        n = len(self._frames)
        order = list(range(n)) + (list(range(n - 2, 0, -1)) if self.pingpong else [])
        last_k = -1
        while not self._stop.is_set():
            # Frames since the epoch, on the replay clock (not counted by this thread).
            k = int((self._clock() - epoch_ns) * self.fps // 1e9)
            if k >= len(order) and not self.loop:
                break
            if k != last_k:
                last_k = k
                now = self._clock()
                self._publish(self._frames[order[k % len(order)]], now)
            next_ns = epoch_ns + int(np.ceil((k + 1) * 1e9 / self.fps))
            delay_ns = next_ns - self._clock()
            if delay_ns > 0:
                self._stop.wait(delay_ns / 1e9)
