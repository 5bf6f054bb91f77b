"""The composited view: the worker's own camera video sent back to its HMI with the twin drawn in.

`CompositedTrack` is a W3C `MediaStreamTrack` (kind ``video``) that the server sends on the
worker's peer connection when its offer asked for it (``rtc_offer`` with ``composited: true``).
Its source is an *unbuffered* `MediaRelay` proxy of the worker's decoded camera track, which holds
the newest frame only. aiortc's `RTCRtpSender` pulls: it awaits `recv`, encodes the frame, sends
it, and only then asks again. So each frame is composited once and encoded once, and while one
frame is composited and encoded the camera's newer frames replace each other in the proxy: the
frame composited next is always the newest decoded one, older ones are dropped, never queued.
Latency therefore cannot build up, whatever the load; the cost is a lower frame rate.

The drawing (`xr_server.overlay.draw_overlay`, with `OverlayInputs` read at that moment: the
newest twin state, the HMI's camera pose, the session's annotations) runs in the loop's default
executor, as aiortc runs its encoders, so the gateway's loop keeps serving the other connections
while a frame is drawn.

Threads: `recv` and `stop` belong to the gateway's loop; `inputs` and the drawing run in an
executor thread; `status` is thread-safe.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiortc import MediaStreamTrack
from av import VideoFrame

from xr_server.overlay import OverlayInputs, draw_overlay

log = logging.getLogger(__name__)

#: Compositing times kept for `CompositeStatus` (the newest ones).
TIMES_KEPT = 300


@dataclass(frozen=True)
class CompositeStatus:
    """The composited view of one connection, a snapshot.

    Attributes:
        frames_sent: frames composited and handed to the encoder.
        composite_ms: the compositing time (decoded frame to BGR, drawing, back to a frame) of
            the newest frames (up to `TIMES_KEPT`), milliseconds, oldest first.
    """

    frames_sent: int
    composite_ms: tuple[float, ...]


class CompositedTrack(MediaStreamTrack):
    """The worker's camera with the overlay, newest frame first.

    Args:
        source: the worker's decoded video through an unbuffered relay proxy
            (``MediaRelay.subscribe(track, buffered=False)``); stopped with this track.
        inputs: returns what to draw now; called from an executor thread for every frame.
    """

    kind = "video"

    def __init__(self, source: MediaStreamTrack, inputs: Callable[[], OverlayInputs]) -> None:
        super().__init__()
        self._source = source
        self._inputs = inputs
        self._lock = threading.Lock()
        self._frames = 0
        self._times_ms: deque[float] = deque(maxlen=TIMES_KEPT)

    async def recv(self) -> VideoFrame:
        """The newest frame of the worker's camera, composited.

        Raises:
            MediaStreamError: the worker's video ended (or this track was stopped).
        """
        frame = await self._source.recv()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, self._composite, frame)

    def _composite(self, frame: VideoFrame) -> VideoFrame:
        start_ns = time.monotonic_ns()
        image = frame.to_ndarray(format="bgr24")
        try:
            draw_overlay(image, self._inputs())
        except Exception:  # noqa: BLE001 - a bad twin message must not end the worker's video
            log.exception("drawing the overlay failed; sending the frame without it")
        out = VideoFrame.from_ndarray(image, format="bgr24")
        out.pts, out.time_base = frame.pts, frame.time_base
        with self._lock:
            self._frames += 1
            self._times_ms.append((time.monotonic_ns() - start_ns) / 1e6)
        return out

    def stop(self) -> None:
        """End the track and stop reading the worker's video."""
        super().stop()
        self._source.stop()

    def status(self) -> CompositeStatus:
        """Frames sent and compositing times so far. Thread-safe."""
        with self._lock:
            return CompositeStatus(self._frames, tuple(self._times_ms))
