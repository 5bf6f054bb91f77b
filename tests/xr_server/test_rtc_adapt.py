"""Bitrate and resolution of the video the server sends: the ladder (pure), the seam into aiortc's
encoder (fails when aiortc changes what it relies on), frames dropped not queued for a slow
consumer, and real aiortc peers on 127.0.0.1: a low cap lowers the received bitrate and size."""

from __future__ import annotations

import asyncio
import inspect
import threading

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, VideoStreamTrack
from aiortc.codecs import get_encoder
from aiortc.contrib.media import MediaRelay
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av import VideoFrame

from tests.xr_server.rtc_peers import (ClipTrack, negotiate, receive_rates_kbps, receive_videos,
                                       until)
from xr_server.rtc_adapt import (EncoderProxy, LadderPolicy, ResolutionLadder, ScaledTrack,
                                 _encoder_of, effective_cap, link_budget_kbps)

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)


def test_the_ladder_steps_down_when_the_budget_stays_low_and_up_with_hysteresis():
    ladder = ResolutionLadder(LadderPolicy(hold_down_s=2.0, hold_up_s=5.0))
    assert ladder.update(500, 0.0) == 1.0          # low, not yet for long
    assert ladder.update(1000, 1.0) == 1.0         # a good moment resets the hold
    assert ladder.update(500, 1.5) == 1.0
    assert ladder.update(500, 3.5) == 0.75         # low for 2 s: one step
    assert ladder.update(300, 4.0) == 0.75
    assert ladder.update(300, 6.0) == 0.5          # below 350 for 2 s: the last step
    assert ladder.update(100, 60.0) == 0.5         # nowhere lower to go
    assert ladder.update(420, 61.0) == 0.5         # above 350 but under 450: stays (hysteresis)
    assert ladder.update(420, 90.0) == 0.5
    assert ladder.update(500, 91.0) == 0.5         # above 450 ...
    assert ladder.update(500, 96.0) == 0.75        # ... for 5 s: one step up
    assert ladder.update(700, 120.0) == 0.75       # between 600 and 800: stays


def test_the_ladders_thresholds_follow_the_source_size():
    ladder = ResolutionLadder(LadderPolicy(hold_down_s=0.0), source_pixels=1280 * 720)
    assert ladder.update(1000, 0.0) == 0.75        # 600 kbit/s at 640x480 is 1800 at 1280x720


@pytest.mark.parametrize("kwargs, match", [
    ({"scales": (0.5, 1.0)}, r"scales must descend within \(0, 1\], got \(0.5, 1.0\)"),
    ({"down_kbps": (600.0,)}, "down_kbps and up_kbps need 2 values each"),
    ({"up_kbps": (500.0, 450.0)}, r"up_kbps must each exceed down_kbps \(hysteresis\)"),
])
def test_a_ladder_policy_names_what_is_wrong(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LadderPolicy(**kwargs)


def test_caps_combine_to_the_lowest_given():
    assert effective_cap([None, None]) is None
    assert effective_cap([2000, None]) == 2000
    assert effective_cap([2000, 300]) == 300


def test_the_estimate_is_a_budget_only_when_it_reports_congestion():
    assert link_budget_kbps(None, None, None) is None
    assert link_budget_kbps(None, 400.0, 800) == 800                # the cap alone
    assert link_budget_kbps(600.0, 400.0, None) is None             # above what is sent: no limit
    assert link_budget_kbps(300.0, 400.0, None) == 300.0            # below it: congestion
    assert link_budget_kbps(300.0, 400.0, 250) == 250               # the lowest wins


# ------------------------------------------------------------------- the seam into aiortc
def test_aiortc_still_keeps_the_encoder_where_the_adapter_looks_and_feeds_it_remb():
    """Fails when aiortc renames its sender's private encoder or stops writing the REMB into
    ``target_bitrate``: then `xr_server.rtc_adapt` must follow."""
    async def scenario():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        sender = pc.addTrack(VideoStreamTrack())
        assert isinstance(sender, RTCRtpSender) and _encoder_of(sender) is None   # before a frame
        await pc.close()
    asyncio.run(scenario())
    source = inspect.getsource(RTCRtpSender)
    assert "self.__encoder.target_bitrate = bitrate" in source          # the REMB path
    assert "self.__encoder = get_encoder(codec)" in source              # created on the first frame


def test_the_encoder_proxy_caps_the_estimate_and_passes_everything_else():
    encoder = get_encoder(VP8)
    proxy = EncoderProxy(encoder, cap_bps=300_000)
    assert encoder.target_bitrate == 300_000          # the default (500 kbit/s) capped at once
    proxy.target_bitrate = 1_200_000                  # what aiortc does on a REMB
    assert (proxy.estimate_bps, proxy.remb_count, encoder.target_bitrate) == (1_200_000, 1, 300_000)
    proxy.target_bitrate = 260_000
    assert encoder.target_bitrate == 260_000 and proxy.target_bitrate == 260_000
    frame = VideoFrame.from_ndarray(np.zeros((480, 640, 3), np.uint8), format="bgr24")
    frame.pts = 0
    payloads, timestamp = proxy.encode(frame)         # the real encoder behind it
    assert payloads and isinstance(timestamp, int)


# ------------------------------------------------------------------------------ latency
class CountingTrack(VideoStreamTrack):
    """640x480 frames as fast as asked, each carrying its sequence number as pts."""

    def __init__(self) -> None:
        super().__init__()
        self.made = 0

    async def recv(self) -> VideoFrame:
        await asyncio.sleep(0.005)
        frame = VideoFrame.from_ndarray(np.full((480, 640, 3), self.made % 255, np.uint8), format="bgr24")
        frame.pts = self.made
        self.made += 1
        return frame


def test_a_slow_consumer_gets_the_newest_frames_never_a_queue():
    async def scenario():
        source = CountingTrack()
        relay = MediaRelay()
        fast = relay.subscribe(source, buffered=False)
        slow = ScaledTrack(relay.subscribe(source, buffered=False))
        slow.scale = 0.5

        async def drain():
            while True:
                await fast.recv()
        drainer = asyncio.ensure_future(drain())
        seen = []
        for _ in range(15):
            frame = await slow.recv()
            seen.append((frame.pts, source.made, frame.width, frame.height))
            await asyncio.sleep(0.1)                  # an encoder 20 times slower than the camera
        drainer.cancel()
        slow.stop()
        fast.stop()
        return seen

    seen = asyncio.run(scenario())
    gaps = [b[0] - a[0] for a, b in zip(seen, seen[1:])]
    # Frames in between were dropped (how many depends on how much CPU the camera got meanwhile)
    assert min(gaps) >= 1 and sum(gaps) > 3 * len(gaps), gaps
    assert max(made - pts for pts, made, _, _ in seen[1:]) <= 3   # each the newest: no backlog
    assert {(w, h) for _, _, w, h in seen} == {(320, 240)}


# ---------------------------------------------------------------------- over real peers
def test_a_low_cap_lowers_the_received_bitrate_and_resolution(live):
    wendy, eve, emil = live.client("wendy"), live.client("eve"), live.client("emil")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    for expert in (eve, emil):
        expert.call("session_join", {"session": session, "role": "expert"})
    answer = emil.call("rtc_offer", {"session": session, "type": "offer", "sdp": "v=0\nm=video",
                                     "max_bitrate_kbps": 100})
    assert "max_bitrate_kbps" in answer["error"] and "greater than or equal to 250" in answer["error"]
    media = live.app.extensions["xrcell_sessions"].media
    rtc = RTCConfiguration(iceServers=[])

    async def scenario():
        worker = RTCPeerConnection(rtc)
        worker.addTrack(ClipTrack(size=(640, 480), count=90))
        await negotiate(wendy, worker, session)
        await until(lambda: media.video(session).frames_received >= 5)
        # eve: no cap, and no REMB (her offer leaves out abs-send-time, which aiortc's receiver
        # estimates from), so the encoder keeps its default target; emil: a 250 kbit/s cap
        peers, sizes, readers = await receive_videos(
            session, [("eve", eve, None, False), ("emil", emil, 250, True)])
        # the capped expert's video steps down to half size (two steps of 2 s each)
        await until(lambda: sizes.get("emil") == (320, 240), 30)
        kbps = await receive_rates_kbps(peers, 4.0)
        listed = await asyncio.to_thread(eve.call, "session_list", {"cell": "lab"})
        for reader in readers:
            reader.cancel()
        for pc in (*peers.values(), worker):
            await pc.close()
        return kbps, dict(sizes), listed

    kbps, sizes, listed = asyncio.run(scenario())
    out = {p["username"]: p["video_out"] for p in listed["sessions"][0]["participants"]}
    assert out["wendy"] is None                               # the worker is sent no video here
    assert out["emil"]["max_bitrate_kbps"] == 250 and out["emil"]["scale"] == 0.5
    assert (out["emil"]["width"], out["emil"]["height"]) == (320, 240)
    assert out["emil"]["target_bitrate_kbps"] <= 250 and out["emil"]["estimate_kbps"] is not None  # REMB came
    assert out["eve"]["max_bitrate_kbps"] is None and out["eve"]["estimate_kbps"] is None
    assert out["eve"]["scale"] == 1.0 and out["eve"]["target_bitrate_kbps"] == 500   # VP8's default
    # measured here (transport bytes, with RTP/SRTP overhead): eve 548 kbit/s at 640x480,
    # emil 277 kbit/s at 320x240
    assert kbps["emil"] < 250 * 1.3, kbps
    assert kbps["emil"] < 0.8 * kbps["eve"], kbps
    assert sizes["emil"] == (320, 240) and sizes["eve"] == (640, 480)
    for client in (wendy, eve, emil):
        threading.Thread(target=client.close, daemon=True).start()
