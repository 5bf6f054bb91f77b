"""The per-session video cap (``session_video_cap``): who may set it, its validation, its audit,
and over real aiortc peers on 127.0.0.1 that it applies at once to every video of the session
(the lowest of the cell's, the connection's and the session's caps) and shows in
``session_list``."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.codecs import get_encoder

from safety.audit import AuditLog
from tests.xr_server.live import start_live_server_with_accounts
from tests.xr_server.rtc_peers import (ClipTrack, negotiate, receive_rates_kbps, receive_videos,
                                       until)
from tests.xr_server.test_rtc_adapt import VP8
from xr_server.rtc_adapt import EncoderProxy


def test_the_encoder_proxy_takes_a_new_cap_at_once():
    encoder = get_encoder(VP8)                        # starts at 500 kbit/s
    proxy = EncoderProxy(encoder, cap_bps=None)
    proxy.set_cap(300_000)
    assert encoder.target_bitrate == 300_000
    proxy.set_cap(None)                               # no estimate yet: back to the start target
    assert encoder.target_bitrate == 500_000
    proxy.target_bitrate = 900_000                    # a REMB
    proxy.set_cap(400_000)
    assert encoder.target_bitrate == 400_000
    proxy.set_cap(2_000_000)                          # above the estimate: the estimate
    assert encoder.target_bitrate == 900_000


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    directory = tmp_path_factory.mktemp("session-cap")
    audit = AuditLog(f"sqlite:///{directory / 'xrcell.sqlite'}")
    server = start_live_server_with_accounts(directory, audit=audit.append,
                                             safety_events=audit.page)
    server.audit = audit
    yield server
    server.app.xrcell_stop()
    audit.close()


def audited(live) -> list[dict]:
    """The ``video_cap`` records of the safety audit log, committed."""
    deadline = time.monotonic() + 10
    while True:
        events = live.audit.page(0, 100, "video_cap")["events"]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_only_an_expert_of_the_session_sets_a_valid_cap(live):
    wendy, walt, eve = live.client("wendy"), live.client("walt"), live.client("eve")
    try:
        session = wendy.call("session_create", {"cell": "lab"})["session"]
        eve.call("session_join", {"session": session, "role": "expert"})
        cap = {"session": session, "max_bitrate_kbps": 500}
        assert wendy.call("session_video_cap", cap)["error"] == (
            f"only an expert of session {session} sets its video cap")
        assert walt.call("session_video_cap", cap)["error"] == (
            f"not a participant of session {session}: join it first")
        for payload, field in (({**cap, "max_bitrate_kbps": 100}, "field 'max_bitrate_kbps': Input "
                                "should be greater than or equal to 250"),
                               ({"session": session}, "missing field 'max_bitrate_kbps'"),
                               ({**cap, "max_bitrate_kbps": "fast"}, "field 'max_bitrate_kbps'")):
            error = eve.call("session_video_cap", payload)["error"]
            assert error.startswith("invalid 'session_video_cap' payload: ") and field in error, error
        assert eve.sio.connected
        assert live.audit.page(0, 100, "video_cap")["events"] == []
        answer = eve.call("session_video_cap", cap)
        assert answer == {"session": session, "max_bitrate_kbps": 500, "previous_kbps": None, "videos": 0}
        state = wendy.wait_for("session_state", lambda s: s["max_bitrate_kbps"] == 500)
        assert state["session"] == session
        (record,) = audited(live)
        assert (record["actor"], record["inputs"], record["reason"]) == (
            "eve", answer, "session video cap 500 kbit/s")
        lifted = eve.call("session_video_cap", {**cap, "max_bitrate_kbps": None})
        assert lifted["previous_kbps"] == 500 and lifted["max_bitrate_kbps"] is None
        deadline = time.monotonic() + 10
        while len(audited(live)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r["reason"] for r in audited(live)] == ["session video cap 500 kbit/s",
                                                        "session video cap lifted"]
    finally:
        for client in (wendy, walt, eve):
            client.close()


def test_a_session_cap_lowers_every_video_of_the_session_at_once(live):
    wendy, eve, sam = live.client("wendy"), live.client("eve"), live.client("sam")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    for expert in (eve, sam):
        expert.call("session_join", {"session": session, "role": "expert"})
    media = live.app.extensions["xrcell_sessions"].media
    rtc = RTCConfiguration(iceServers=[])

    def listed() -> dict:
        answer = eve.call("session_list", {"cell": "lab"})
        (entry,) = [s for s in answer["sessions"] if s["session"] == session]
        return entry

    async def scenario():
        worker = RTCPeerConnection(rtc)
        worker.addTrack(ClipTrack(size=(640, 480), count=90))
        await negotiate(wendy, worker, session)
        await until(lambda: media.video(session).frames_received >= 5)
        # no REMB on either (abs-send-time left out), so each encoder holds its target; sam's
        # offer caps his connection at 1000 kbit/s
        peers, sizes, readers = await receive_videos(
            session, [("eve", eve, None, False), ("sam", sam, 1000, False)])
        await until(lambda: sizes.get("eve") == (640, 480) and sizes.get("sam") == (640, 480), 15)
        await until(lambda: [o["video_out"]["target_bitrate_kbps"] for o in listed()["participants"]
                             if o["video_out"] is not None] == [500, 500], 15)
        before = await receive_rates_kbps(peers, 3.0)
        # sam (a supervisor, joined as expert) caps the session: both experts' videos follow
        capped = await asyncio.to_thread(sam.call, "session_video_cap",
                                         {"session": session, "max_bitrate_kbps": 250})
        at_once = await asyncio.to_thread(listed)
        await until(lambda: sizes.get("eve") == (320, 240) and sizes.get("sam") == (320, 240), 30)
        after = await receive_rates_kbps(peers, 4.0)
        lifted = await asyncio.to_thread(eve.call, "session_video_cap",
                                         {"session": session, "max_bitrate_kbps": None})
        uncapped = await asyncio.to_thread(listed)
        for reader in readers:
            reader.cancel()
        for pc in (*peers.values(), worker):
            await pc.close()
        return before, capped, at_once, after, lifted, uncapped

    before, capped, at_once, after, lifted, uncapped = asyncio.run(scenario())
    assert capped == {"session": session, "max_bitrate_kbps": 250, "previous_kbps": None, "videos": 2}
    assert at_once["max_bitrate_kbps"] == 250
    out = {p["username"]: p["video_out"] for p in at_once["participants"]}
    assert out["wendy"] is None
    for name in ("eve", "sam"):            # the snapshot and the encoder changed at once
        assert out[name]["max_bitrate_kbps"] == 250 and out[name]["target_bitrate_kbps"] == 250, out
    # measured here (transport bytes, RTP/SRTP overhead included, load 14): 500 and 493 kbit/s
    # before (VP8's 500 kbit/s start target, no REMB), 246 and 240 after, at 320x240
    for name in ("eve", "sam"):
        assert after[name] < 250 * 1.3 and after[name] < 0.8 * before[name], (before, after)
    assert lifted["previous_kbps"] == 250 and lifted["videos"] == 2
    out = {p["username"]: p["video_out"] for p in uncapped["participants"]}
    assert uncapped["max_bitrate_kbps"] is None
    assert out["eve"]["max_bitrate_kbps"] is None and out["eve"]["target_bitrate_kbps"] == 500
    assert out["sam"]["max_bitrate_kbps"] == 1000 and out["sam"]["target_bitrate_kbps"] == 500
    for client in (wendy, eve, sam):
        threading.Thread(target=client.close, daemon=True).start()
