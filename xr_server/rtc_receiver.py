"""The server's video receive path: no frame waits longer than it must, none queues up.

Two changes to aiortc's `RTCRtpReceiver` (aiortc 1.16), for video only:

1. **Frame-complete jitter buffer.** aiortc's `JitterBuffer` (`aiortc/jitterbuffer.py`) finds
   the end of a video frame only when the first packet of the *next* frame arrives (a packet with
   a new RTP timestamp). At 30 fps that holds every frame for one frame interval, about 33 ms, on
   every hop. The RTP marker bit says where a frame ends: for VP8 "the marker bit MUST be set for
   the last packet of a frame" (RFC 7741 section 4.1), for H.264 it is set on the last packet of
   an access unit (RFC 6184 section 5.1), and both aiortc's sender and browsers set it.
   `FrameJitterBuffer` releases the oldest frame when its packets, from the buffer's origin on,
   are contiguous (no sequence gap) and end with a marker packet. A lost marker packet, or a gap,
   falls back to aiortc's own rule, so nothing is released before it is complete.

2. **A decoder queue that drops instead of queueing.** aiortc hands every complete encoded frame
   to its decoder thread through an unbounded `queue.Queue`. When that thread is starved (a
   loaded machine: `bench/glass_to_glass.py` measured up to 25 frames, 0.8 s, waiting there at
   load 20, and a latency that grew by 1.6 s over a 10 s window), every later frame waits behind
   the backlog. In `LatestDecodableQueue` no frame waits longer than `MAX_DECODER_WAIT_S`: when
   the oldest has, the waiting frames are dropped, and so is everything after them until the next
   keyframe (a predicted frame cannot be decoded without the ones it refers to); the receiver is
   asked to send a Picture Loss Indication (RFC 4585 section 6.3.1), so the sender's next frame
   is a keyframe. The picture freezes for a few frames instead of running seconds late. Frames
   dropped are counted (`frames_dropped`, per receiver; `dropped_frames_total()` for all).

`install()` makes every peer connection created afterwards in this process build its receivers
as `XrRtpReceiver`. The seams are aiortc's: the name `RTCRtpReceiver` in
`aiortc.rtcpeerconnection` and three private attributes of the receiver (its jitter buffer, its
decoder queue, its decoder-error event that triggers the PLI). `install()` raises if the first is
gone; a receiver whose private attributes are gone keeps aiortc's behaviour and logs an error
once; tests pin both.
"""

from __future__ import annotations

import collections
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, Optional

import aiortc.rtcpeerconnection as _pc_module
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)

#: Longest an encoded frame may wait for the decoder thread (3 frames at 30 fps) before the
#: waiting frames are dropped and the decoder resumes at the next keyframe.
MAX_DECODER_WAIT_S = 0.1
#: While waiting for a keyframe, ask again (another PLI) at most this often: a PLI per dropped
#: frame would make the sender send keyframe after keyframe, the heaviest frames to decode.
KEYFRAME_REQUEST_INTERVAL_S = 0.3

_JITTER = "_RTCRtpReceiver__jitter_buffer"
_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
_DECODER_ERROR = "_RTCRtpReceiver__decoder_error"
_dropped_lock = threading.Lock()
_dropped_seen = 0
_warned = False


class FrameJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing a video frame at its marker packet (see module doc).

    Audio buffers (``is_video=False``) keep aiortc's behaviour unchanged: their prefetch is the
    playout delay.
    """

    def _remove_frame(self, sequence_number: int) -> Optional[JitterFrame]:
        frame = super()._remove_frame(sequence_number)  # a newer timestamp completes the oldest
        while frame is not None and self._is_video and not frame.data:
            # Padding that followed a frame released at its marker (same timestamp, no payload;
            # libwebrtc sends it on the media stream without RTX) is no frame: an empty packet
            # would put FFmpeg's decoder into drain mode for good. It is gone; look again.
            frame = super()._remove_frame(sequence_number)
        if frame is not None or not self._is_video or self._origin is None:
            return frame
        packets: list[RtpPacket] = []
        timestamp = None
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None or (timestamp is not None and packet.timestamp != timestamp):
                return None  # a gap: wait (NACK may fill it), or the base rule's case
            timestamp = packet.timestamp
            packets.append(packet)
            if packet.marker:
                self.remove(count + 1)
                return JitterFrame(data=b"".join(p._data for p in packets),  # type: ignore[attr-defined]
                                   timestamp=timestamp)
        return None


def is_keyframe(codec_name: str, data: bytes) -> bool:
    """Whether `data`, one depayloaded encoded frame, decodes on its own.

    VP8: bit 0 of the frame tag is 0 for a key frame (RFC 6386 section 9.1). H.264 (Annex B, as
    aiortc depayloads it): the access unit holds an IDR slice, NAL unit type 5 (ITU-T H.264
    table 7-1). Other codecs: True (never held back).
    """
    if not data:
        return False
    if codec_name == "VP8":
        return data[0] & 0x01 == 0
    if codec_name == "H264":
        start = data.find(b"\x00\x00\x01")
        while start != -1 and start + 3 < len(data):
            if data[start + 3] & 0x1F == 5:
                return True
            start = data.find(b"\x00\x00\x01", start + 3)
        return False
    return True


class LatestDecodableQueue(queue.Queue):
    """The decoder thread's input, which never holds a frame longer than `max_wait_s`; see the
    module doc.

    Items are aiortc's ``(codec, JitterFrame)`` tuples, or None (the receiver stopping), which is
    always kept. A frame is put when it is complete, so a burst of frames that NACK recovered
    at once is young and kept; only frames the decoder thread did not take in time are dropped.
    `request_keyframe` is the receiver's decoder-error event: setting it makes the receiver send
    a PLI with its next packet; it is set when the queue starts waiting for a keyframe and again
    only every `KEYFRAME_REQUEST_INTERVAL_S` while none comes (no PLI per frame).
    """

    def __init__(self, request_keyframe: threading.Event, max_wait_s: float = MAX_DECODER_WAIT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._request_keyframe = request_keyframe
        self._max_wait_s = max_wait_s
        self._clock = clock
        self._waiting_for_keyframe = False
        self._requested_at = -math.inf
        self.frames_dropped = 0

    # queue.Queue's extension points (as in PriorityQueue): items wait with their put time
    def _init(self, maxsize: int) -> None:
        self.queue: collections.deque = collections.deque()

    def _put(self, item: Any) -> None:
        self.queue.append((self._clock(), item))

    def _get(self) -> Any:
        return self.queue.popleft()[1]

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:
            super().put(item, block, timeout)
            return
        codec, frame = item
        if not frame.data:
            return  # nothing to decode (and an empty packet would drain FFmpeg's decoder)
        key = is_keyframe(codec.name, frame.data)
        now = self._clock()
        with self.mutex:
            if self._waiting_for_keyframe and not key:
                dropped, keep = 1, False
            else:
                self._waiting_for_keyframe = False
                waiting = [put_at for put_at, i in self.queue if i is not None]
                dropped, keep = 0, True
                if waiting and now - waiting[0] > self._max_wait_s:  # the decoder is behind
                    self.queue = collections.deque(e for e in self.queue if e[1] is None)
                    dropped = len(waiting)
                    if not key:  # the decoder resumes at the next keyframe
                        dropped, keep = dropped + 1, False
                        self._waiting_for_keyframe = True
            ask = self._waiting_for_keyframe and now - self._requested_at >= KEYFRAME_REQUEST_INTERVAL_S
            if ask:
                self._requested_at = now
        if dropped:
            self.frames_dropped += dropped
            _count_dropped(dropped)
            log.debug("video decoder behind: dropped %d encoded frame(s)", dropped)
        if ask:
            self._request_keyframe.set()  # the receiver sends a PLI with its next packet
        if keep:
            super().put(item, block, timeout)


def _count_dropped(n: int) -> None:
    global _dropped_seen
    with _dropped_lock:
        _dropped_seen += n


def dropped_frames_total() -> int:
    """Encoded video frames dropped by every `LatestDecodableQueue` of this process."""
    with _dropped_lock:
        return _dropped_seen


class XrRtpReceiver(RTCRtpReceiver):
    """aiortc's receiver with, for video, `FrameJitterBuffer` and `LatestDecodableQueue`."""

    def __init__(self, kind: str, transport: Any) -> None:
        super().__init__(kind, transport)
        if kind != "video":
            return
        global _warned
        if not all(hasattr(self, a) for a in (_JITTER, _DECODER_QUEUE, _DECODER_ERROR)):
            if not _warned:
                _warned = True
                log.error("this aiortc's RTCRtpReceiver has no %s: video keeps aiortc's own receive "
                          "path (xr_server.rtc_receiver needs updating)", ", ".join(
                              a for a in (_JITTER, _DECODER_QUEUE, _DECODER_ERROR) if not hasattr(self, a)))
            return
        setattr(self, _JITTER, FrameJitterBuffer(capacity=getattr(self, _JITTER).capacity, is_video=True))
        setattr(self, _DECODER_QUEUE, LatestDecodableQueue(getattr(self, _DECODER_ERROR)))

    @property
    def frames_dropped(self) -> int:
        """Encoded frames this receiver dropped because its decoder was behind (video)."""
        q = getattr(self, _DECODER_QUEUE, None)
        return q.frames_dropped if isinstance(q, LatestDecodableQueue) else 0


def install() -> None:
    """Make peer connections created from now on use `XrRtpReceiver`. Idempotent.

    Raises:
        RuntimeError: this aiortc no longer builds its receivers through
            `aiortc.rtcpeerconnection.RTCRtpReceiver` (the adapter needs updating).
    """
    current = getattr(_pc_module, "RTCRtpReceiver", None)
    if current is XrRtpReceiver:
        return
    if current is not RTCRtpReceiver:
        raise RuntimeError("aiortc.rtcpeerconnection.RTCRtpReceiver is not aiortc's RTCRtpReceiver any "
                           "more: xr_server.rtc_receiver needs updating for this aiortc")
    _pc_module.RTCRtpReceiver = XrRtpReceiver  # type: ignore[misc]
    log.debug("aiortc video receivers: frame-complete jitter buffer, bounded decoder queue")
