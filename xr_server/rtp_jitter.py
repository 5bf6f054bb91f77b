"""Hand a received video frame to the decoder as soon as it is complete, not one frame later.

aiortc's `JitterBuffer` (aiortc 1.16, `aiortc/jitterbuffer.py`) finds the end of a video frame
only when the first packet of the *next* frame arrives (a packet with a new RTP timestamp). At
30 fps that holds every frame for one frame interval, about 33 ms, on every hop: the worker's
camera into the server, and the composited view back out to the worker.

The RTP marker bit says where a frame ends: for VP8 "the marker bit MUST be set for the last
packet of a frame" (RFC 7741 section 4.1), for H.264 it is set on the last packet of an access
unit (RFC 6184 section 5.1), and both aiortc's sender and browsers set it. `FrameJitterBuffer`
adds that rule: the oldest frame is released when its packets, from the buffer's origin on, are
contiguous (no sequence gap) and end with a marker packet. A lost marker packet, or a gap, falls
back to aiortc's own rule, so nothing is released earlier than it is complete; a lost packet is
still recovered by NACK or a keyframe request as before.

`install()` makes every video receiver created afterwards in this process use it. aiortc builds
its receivers' buffers through the name `JitterBuffer` in `aiortc.rtcrtpreceiver`; that name is
the one seam this module touches, and `install()` raises if an aiortc upgrade removes it (a test
pins it).
"""

from __future__ import annotations

import logging
from typing import Optional

import aiortc.rtcrtpreceiver as _receiver_module
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

log = logging.getLogger(__name__)


class FrameJitterBuffer(JitterBuffer):
    """aiortc's jitter buffer, releasing a video frame at its marker packet (see module doc).

    Audio buffers (``is_video=False``) keep aiortc's behaviour unchanged: their prefetch is the
    playout delay.
    """

    def _remove_frame(self, sequence_number: int) -> Optional[JitterFrame]:
        frame = super()._remove_frame(sequence_number)  # a newer timestamp completes the oldest
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


def install() -> None:
    """Make aiortc video receivers created from now on use `FrameJitterBuffer`. Idempotent.

    Raises:
        RuntimeError: this aiortc no longer builds its receivers' buffers through
            `aiortc.rtcrtpreceiver.JitterBuffer` (the adapter needs updating).
    """
    current = getattr(_receiver_module, "JitterBuffer", None)
    if current is FrameJitterBuffer:
        return
    if current is not JitterBuffer:
        raise RuntimeError("aiortc.rtcrtpreceiver.JitterBuffer is not aiortc's JitterBuffer any more: "
                           "xr_server.rtp_jitter needs updating for this aiortc")
    _receiver_module.JitterBuffer = FrameJitterBuffer  # type: ignore[misc]
    log.debug("aiortc video receivers release frames at their RTP marker packet")
