"""The server's video receive path (`xr_server.rtc_receiver`): a video frame reaches the decoder
at its marker packet, never before all its packets are in (audio and the fall-backs stay
aiortc's); a decoder that falls behind drops its backlog and resumes at a keyframe it asks for."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time

import aiortc.rtcpeerconnection
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket
from av import VideoFrame

from xr_server import rtc_receiver
from xr_server.rtc_receiver import FrameJitterBuffer, LatestDecodableQueue, XrRtpReceiver, is_keyframe


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


def encoded_frames(codec_name: str, count: int) -> list[tuple[bytes, bool]]:
    """(depayloaded frame, whether the encoder was told to make a keyframe) from aiortc's own
    encoder and depayloader, on a moving picture."""
    from aiortc.codecs import depayload, get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    codec = RTCRtpCodecParameters(mimeType=f"video/{codec_name}", clockRate=90000, payloadType=96,
                                  parameters={"packetization-mode": "1"} if codec_name == "H264" else {})
    encoder = get_encoder(codec)
    out = []
    for i in range(count):
        image = np.full((120, 160, 3), 60, np.uint8)
        image[:, (i * 7) % 160] = 250
        frame = VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = i * 3000, fractions.Fraction(1, 90000)
        force = i in (0, 5)
        payloads, _ = encoder.encode(frame, force_keyframe=force)
        out.append((b"".join(depayload(codec, p) for p in payloads), force))
    return out


@pytest.mark.parametrize("codec_name", ["VP8", "H264"])
def test_keyframes_are_told_from_predicted_frames_of_real_encoders(codec_name):
    frames = encoded_frames(codec_name, 8)
    assert [is_keyframe(codec_name, data) for data, _ in frames] == [forced for _, forced in frames]
    assert not is_keyframe(codec_name, b"")


class Codec:
    def __init__(self, name: str) -> None:
        self.name = name


def jitter_frame(data: bytes, timestamp: int):
    from aiortc.jitterbuffer import JitterFrame

    return JitterFrame(data=data, timestamp=timestamp)


KEY, DELTA = b"\x10rest", b"\x11rest"  # VP8 frame tags: bit 0 clear = key frame


def drain(q: LatestDecodableQueue) -> list:
    items = []
    while not q.empty():
        item = q.get_nowait()
        items.append(None if item is None else item[1].timestamp)
    return items


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_frames_that_waited_too_long_are_dropped_and_decoding_resumes_at_a_keyframe_asked_for_once():
    asked, clock = threading.Event(), Clock()
    q = LatestDecodableQueue(asked, max_wait_s=0.1, clock=clock)
    vp8 = Codec("VP8")
    for ts in (1, 2, 3):
        q.put((vp8, jitter_frame(DELTA, ts)))
        clock.t += 0.033
    assert q.qsize() == 3 and not asked.is_set()  # the oldest waited 99 ms: kept
    clock.t += 0.01
    q.put((vp8, jitter_frame(DELTA, 4)))  # the oldest waited 109 ms: all go, this one too
    assert q.qsize() == 0 and q.frames_dropped == 4 and asked.is_set()
    asked.clear()
    clock.t += 0.033
    q.put((vp8, jitter_frame(DELTA, 5)))  # still no keyframe: dropped, but no second PLI yet
    assert q.qsize() == 0 and q.frames_dropped == 5 and not asked.is_set()
    clock.t += 0.3
    q.put((vp8, jitter_frame(DELTA, 6)))  # 0.33 s after the PLI and no keyframe: ask again
    assert q.frames_dropped == 6 and asked.is_set()
    q.put((vp8, jitter_frame(KEY, 7)))
    q.put((vp8, jitter_frame(DELTA, 8)))
    assert drain(q) == [7, 8] and q.frames_dropped == 6


def test_a_burst_of_frames_recovered_at_once_is_kept():
    """After a retransmission fills a gap, the frames held behind it complete within
    milliseconds: many waiting frames, none old. The count alone says nothing."""
    asked, clock = threading.Event(), Clock()
    q = LatestDecodableQueue(asked, max_wait_s=0.1, clock=clock)
    vp8 = Codec("VP8")
    for ts in range(1, 9):
        q.put((vp8, jitter_frame(DELTA, ts)))
        clock.t += 0.002
    assert drain(q) == list(range(1, 9)) and q.frames_dropped == 0 and not asked.is_set()


def test_a_keyframe_replaces_a_stale_backlog_the_stop_marker_is_kept_and_empty_frames_are_ignored():
    asked, clock = threading.Event(), Clock()
    q = LatestDecodableQueue(asked, max_wait_s=0.1, clock=clock)
    vp8 = Codec("VP8")
    q.put((vp8, jitter_frame(DELTA, 1)))
    q.put(None)  # the receiver stopping
    q.put((vp8, jitter_frame(DELTA, 2)))
    q.put((vp8, jitter_frame(b"", 9)))  # nothing to decode
    clock.t += 0.2
    q.put((vp8, jitter_frame(KEY, 3)))
    assert drain(q) == [None, 3] and q.frames_dropped == 2 and not asked.is_set()


def test_padding_after_a_frame_released_at_its_marker_is_no_frame():
    """libwebrtc without RTX pads on the media stream: a packet with the timestamp of the frame
    just released and no payload. aiortc's rule would release it as an empty frame."""
    padding = packet(61, 3000)
    padding._data = b""
    packets = [packet(60, 3000, marker=True), padding, packet(62, 6000, marker=True)]
    assert feed(FrameJitterBuffer(512, is_video=True), packets) == [(0, b"60.", 3000), (2, b"62.", 6000)]


class CounterCamera(MediaStreamTrack):
    """A 30 fps camera whose frame n (from 1) is `picture(n)`, with pts n on the 90 kHz clock."""

    kind = "video"

    def __init__(self, picture) -> None:
        super().__init__()
        self.picture = picture
        self.n = 0

    async def recv(self) -> VideoFrame:
        await asyncio.sleep(1 / 30)
        self.n += 1
        frame = VideoFrame.from_ndarray(self.picture(self.n), format="bgr24")
        frame.pts, frame.time_base = self.n * 3000, fractions.Fraction(1, 90000)
        return frame


async def loopback_call(camera: MediaStreamTrack):
    """A real aiortc call on 127.0.0.1 sending `camera`: (sender pc, receiver pc, received track)."""
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    got = asyncio.get_running_loop().create_future()
    receiver.on("track", lambda t: got.set_result(t) if not got.done() else None)
    sender.addTrack(camera)
    await sender.setLocalDescription(await sender.createOffer())
    await receiver.setRemoteDescription(sender.localDescription)
    await receiver.setLocalDescription(await receiver.createAnswer())
    await sender.setRemoteDescription(receiver.localDescription)
    return sender, receiver, await asyncio.wait_for(got, 10)


def test_install_gives_peer_connections_the_xrcell_receiver_and_video_arrives_through_it():
    """The seams: aiortc builds receivers through `aiortc.rtcpeerconnection.RTCRtpReceiver`, and
    the receiver keeps its jitter buffer, decoder queue and decoder-error event in private
    attributes. After `install()`, a real loopback call's video receiver has ours and frames
    still decode (this fails when an aiortc upgrade moves a seam)."""
    rtc_receiver.install()
    rtc_receiver.install()  # idempotent
    assert aiortc.rtcpeerconnection.RTCRtpReceiver is XrRtpReceiver

    async def call():
        sender, receiver, track = await loopback_call(
            CounterCamera(lambda n: np.full((120, 160, 3), 40 + n % 100, np.uint8)))
        frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(5)]
        rx = receiver.getReceivers()[0]
        parts = (type(rx), type(rx._RTCRtpReceiver__jitter_buffer), type(rx._RTCRtpReceiver__decoder_queue))
        await sender.close()
        await receiver.close()
        return parts, frames[-1].width

    parts, width = asyncio.run(call())
    assert parts == (XrRtpReceiver, FrameJitterBuffer, LatestDecodableQueue) and width == 160


def test_install_refuses_an_aiortc_whose_seam_moved(monkeypatch):
    monkeypatch.setattr(aiortc.rtcpeerconnection, "RTCRtpReceiver", object)
    with pytest.raises(RuntimeError, match="xr_server.rtc_receiver needs updating for this aiortc"):
        rtc_receiver.install()


def picture(n: int) -> np.ndarray:
    """Frame `n` of the counter camera: a white bar 4 px wide at column 5 n mod 124 on grey (5 is
    invertible mod 124, so the bar names n mod 124). A predicted frame decoded against the wrong
    reference shows a smeared or doubled bar."""
    image = np.full((96, 128, 3), 60, np.uint8)
    x = (5 * n) % 124
    image[:, x:x + 4] = 250
    return image


def frame_number(gray: np.ndarray) -> tuple[int, bool]:
    """(frame number mod 124 from the bar, whether the picture is clean: one bar of 3-5 bright
    columns and a flat background)."""
    columns = gray.mean(axis=0)
    bright = np.flatnonzero(columns > 155)
    clean = (3 <= len(bright) <= 5 and bright[-1] - bright[0] == len(bright) - 1
             and float(np.abs(np.delete(columns, range(max(bright[0] - 2, 0), bright[-1] + 3)) - 60).max()) < 12
             if len(bright) else False)
    x = int(bright[0]) if len(bright) else -1
    return (25 * x) % 124, clean  # 25 = 5^-1 mod 124


def test_a_stalled_decoder_over_a_real_call_drops_its_backlog_and_resumes_on_a_fresh_keyframe():
    """A real loopback call; the receiver's decoder thread is stalled for 0.6 s (a starved
    thread on a loaded machine). The backlog is dropped instead of decoded late, the receiver
    asks for a keyframe (PLI) and aiortc's sender sends one: every frame decoded after the stall
    is a clean picture (no smeared or doubled bar), and the first one after the stalled frame is
    recent, not the frame that waited longest."""
    rtc_receiver.install()

    async def call():
        source = CounterCamera(picture)
        sender, receiver, track = await loopback_call(source)
        for _ in range(10):
            await asyncio.wait_for(track.recv(), 10)
        rx = receiver.getReceivers()[0]
        q = rx._RTCRtpReceiver__decoder_queue
        original_get, stall = q.get, threading.Event()
        stall.set()

        def stalled_get(*args, **kwargs):
            item = original_get(*args, **kwargs)
            if stall.is_set():
                stall.clear()
                time.sleep(0.6)  # the decoder thread gets no CPU for 0.6 s
            return item

        q.get = stalled_get
        after = []
        while len(after) < 15:
            frame = await asyncio.wait_for(track.recv(), 10)
            after.append((frame_number(frame.to_ndarray(format="gray")), source.n))
        dropped = rx.frames_dropped
        await sender.close()
        await receiver.close()
        return after, dropped

    after, dropped = asyncio.run(call())
    assert dropped >= 3
    numbers = [n for (n, _), _ in after]
    assert all(clean for (_, clean), _ in after), after
    # The frame in the decoder when it stalled comes out late; the frames that waited behind it
    # never do (a jump of about 0.6 s of frames), and from then on every frame is at most a few
    # frames behind the newest one sent (no backlog is being worked off).
    gaps = [(sent - n) % 124 for (n, _), sent in after]
    jumps = [b - a for a, b in zip(numbers, numbers[1:])]
    assert all(j >= 0 for j in jumps), numbers
    assert max(jumps) >= 8, numbers
    resumed = jumps.index(max(jumps)) + 1
    assert all(g <= 8 for g in gaps[resumed:]), (numbers, gaps)
