"""The frame-complete jitter buffer (`xr_server.rtp_jitter`): a video frame reaches the decoder at
its marker packet, never before all its packets are in; audio and the fall-backs stay aiortc's."""

from __future__ import annotations

import asyncio
import fractions

import aiortc.rtcrtpreceiver
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket
from av import VideoFrame

from xr_server import rtp_jitter
from xr_server.rtp_jitter import FrameJitterBuffer


def packet(seq: int, timestamp: int, marker: bool = False) -> RtpPacket:
    p = RtpPacket(sequence_number=seq % 65536, timestamp=timestamp, marker=int(marker))
    p._data = f"{seq}.".encode()  # the depayloaded bytes, as the receiver sets them
    return p


def feed(buffer: JitterBuffer, packets: list[RtpPacket]) -> list[tuple[int, bytes, int]]:
    """(index of the packet whose arrival released the frame, frame data, frame timestamp)."""
    out = []
    for i, p in enumerate(packets):
        _, frame = buffer.add(p)
        if frame is not None:
            out.append((i, frame.data, frame.timestamp))
    return out


def test_a_frame_is_released_at_its_marker_packet_not_at_the_next_frame():
    packets = [packet(10, 3000), packet(11, 3000), packet(12, 3000, marker=True),
               packet(13, 6000), packet(14, 6000, marker=True)]
    assert feed(FrameJitterBuffer(512, is_video=True), packets) == [
        (2, b"10.11.12.", 3000), (4, b"13.14.", 6000)]
    # aiortc's own buffer: each frame only when the next frame's first packet arrives
    assert feed(JitterBuffer(512, is_video=True), packets) == [(3, b"10.11.12.", 3000)]


def test_a_reordered_frame_waits_for_its_missing_packet():
    packets = [packet(20, 3000), packet(22, 3000, marker=True), packet(21, 3000)]
    assert feed(FrameJitterBuffer(512, is_video=True), packets) == [(2, b"20.21.22.", 3000)]


def test_a_lost_marker_packet_falls_back_to_the_next_frame_and_a_gap_holds_the_frame():
    lost_marker = [packet(30, 3000), packet(31, 3000), packet(33, 6000, marker=True)]
    # 32 (3000's marker) never arrives: 3000 has no known end and a gap before 6000; nothing is
    # released, as aiortc's own buffer would not either, until NACK or a keyframe request helps.
    assert feed(FrameJitterBuffer(512, is_video=True), lost_marker) == []
    unmarked = [packet(40, 3000), packet(41, 3000), packet(42, 6000), packet(43, 6000, marker=True)]
    # A sender that never sets the marker: 3000 completes when 6000 starts (aiortc's rule).
    assert feed(FrameJitterBuffer(512, is_video=True), unmarked) == [
        (2, b"40.41.", 3000), (3, b"42.43.", 6000)]


def test_sequence_numbers_wrap_around():
    packets = [packet(65534, 3000), packet(65535, 3000, marker=True), packet(0, 6000),
               packet(1, 6000, marker=True)]
    assert feed(FrameJitterBuffer(512, is_video=True), packets) == [
        (1, b"65534.65535.", 3000), (3, b"0.1.", 6000)]


def test_audio_keeps_aiortcs_prefetch():
    packets = [packet(50 + i, 960 * i, marker=i == 0) for i in range(8)]
    ours = feed(FrameJitterBuffer(16, prefetch=4), packets)
    theirs = feed(JitterBuffer(16, prefetch=4), packets)
    assert ours == theirs and ours[0][0] == 4


def test_install_replaces_aiortcs_receiver_buffer_and_video_arrives_through_it():
    """The seam: aiortc builds receivers' buffers through `aiortc.rtcrtpreceiver.JitterBuffer`.
    After `install()`, a real loopback call's video receiver uses `FrameJitterBuffer` and frames
    still decode (this fails when an aiortc upgrade moves the seam)."""
    rtp_jitter.install()
    rtp_jitter.install()  # idempotent
    assert aiortc.rtcrtpreceiver.JitterBuffer is FrameJitterBuffer

    class Grey(MediaStreamTrack):
        kind = "video"

        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        async def recv(self) -> VideoFrame:
            await asyncio.sleep(1 / 30)
            self.n += 1
            frame = VideoFrame.from_ndarray(np.full((120, 160, 3), 40 + self.n % 100, np.uint8),
                                            format="bgr24")
            frame.pts, frame.time_base = self.n * 3000, fractions.Fraction(1, 90000)
            return frame

    async def call() -> tuple[type, int]:
        sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        got = asyncio.get_running_loop().create_future()
        receiver.on("track", lambda t: got.set_result(t) if not got.done() else None)
        sender.addTrack(Grey())
        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        track = await asyncio.wait_for(got, 10)
        frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(5)]
        kind = type(receiver.getReceivers()[0]._RTCRtpReceiver__jitter_buffer)
        await sender.close()
        await receiver.close()
        return kind, frames[-1].width

    kind, width = asyncio.run(call())
    assert kind is FrameJitterBuffer and width == 160


def test_install_refuses_an_aiortc_whose_seam_moved(monkeypatch):
    monkeypatch.setattr(aiortc.rtcrtpreceiver, "JitterBuffer", object)
    with pytest.raises(RuntimeError, match="xr_server.rtp_jitter needs updating for this aiortc"):
        rtp_jitter.install()
