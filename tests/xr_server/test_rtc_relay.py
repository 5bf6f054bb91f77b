"""WebRTC through the server with real aiortc peers on 127.0.0.1: a worker publishes frames of
the real Pose2Sim footage, two experts subscribe, both receive the worker's frames through the
one relay; the worker's departure ends the video for the session."""

import asyncio
import re
import threading

import numpy as np
import requests
from aiortc import RTCConfiguration, RTCPeerConnection

from content.storage import AnnotationStore
from tests.xr_server.live import accounts_store, start_live_server
from tests.xr_server.rtc_peers import CLIP, ClipTrack, negotiate, until, video_track


def test_the_workers_video_reaches_every_expert_of_the_session(live):
    wendy, eve, sam = live.client("wendy"), live.client("eve"), live.client("sam")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    for expert in (eve, sam):
        expert.call("session_join", {"session": session, "role": "expert"})
    rtc = RTCConfiguration(iceServers=[])

    media = live.app.extensions["xrcell_sessions"].media

    async def scenario():
        worker = RTCPeerConnection(rtc)
        worker.addTrack(ClipTrack(CLIP))
        await negotiate(wendy, worker, session)
        state = await asyncio.to_thread(eve.wait_for, "session_state", lambda s: s["video"] is not None)
        # nobody watches yet, and still the server decodes and drops the worker's frames as they
        # come (aiortc would otherwise queue them all for the first expert)
        await until(lambda: media.video(session).frames_received >= 10)
        assert media.video(session).track_id == state["video"]
        assert (media.video(session).width, media.video(session).height) == (320, 240)
        received = {}
        experts = []
        for name, client in (("eve", eve), ("sam", sam)):
            pc = RTCPeerConnection(rtc)
            track = await video_track(pc)
            await negotiate(client, pc, session)
            experts.append(pc)
            remote = await asyncio.wait_for(track, 10)
            frames = [await asyncio.wait_for(remote.recv(), 10) for _ in range(15)]
            received[name] = [f.to_ndarray(format="bgr24") for f in frames[-5:]]
        metrics = (await asyncio.to_thread(requests.get, f"{live.base}/metrics", timeout=5)).text
        await worker.close()
        for pc in experts:
            await pc.close()
        return state, received, metrics

    state, received, metrics = asyncio.run(scenario())
    assert "xrcell_xr_sessions 1.0" in metrics
    assert "xrcell_webrtc_peer_connections 3.0" in metrics  # the worker's and two experts'
    assert re.search(r"^xrcell_video_frames_dropped_total \d+\.0$", metrics, re.M)
    assert state["session"] == session and state["worker"] == "wendy"
    for name, frames in received.items():
        assert frames[0].shape == (240, 320, 3), name
        assert min(f.mean() for f in frames) > 20, f"{name} received black frames"
        assert max(np.abs(a.astype(float) - b).mean() for a, b in zip(frames, frames[1:])) > 0.5, \
            f"{name} received a still image"
    # the worker's connection closed: everyone in the session hears the video ended
    eve.wait_for("session_state", lambda s: s["video"] is None and len(eve.received("session_state")) > 2)
    for client in (wendy, eve, sam):
        threading.Thread(target=client.close, daemon=True).start()


def test_stopping_the_server_closes_every_peer_connection(tmp_path):
    db = f"sqlite:///{tmp_path / 'xrcell.sqlite'}"
    store = accounts_store(db, {"wendy": ["worker"]})
    server = start_live_server(store, AnnotationStore(db))
    wendy = server.client("wendy")
    session = wendy.call("session_create", {"cell": "lab"})["session"]

    gateway = server.app.extensions["xrcell_rtc_gateway"]

    async def scenario():
        worker = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        worker.addTrack(ClipTrack(CLIP, count=5))
        await negotiate(wendy, worker, session)
        await asyncio.to_thread(wendy.wait_for, "session_state", lambda s: s["video"] is not None)
        assert gateway.peer_count() == 1
        await asyncio.to_thread(server.app.xrcell_stop)
        await worker.close()

    asyncio.run(scenario())
    assert not gateway.running and gateway.peer_count() == 0
    threading.Thread(target=wendy.close, daemon=True).start()


def test_a_worker_who_offers_again_gives_the_session_a_new_video(live):
    """After a reconnect the worker sends a new offer: the session announces a new video id and a
    new offer from the expert gets the new stream."""
    wendy, eve = live.client("wendy"), live.client("eve")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    eve.call("session_join", {"session": session, "role": "expert"})
    rtc = RTCConfiguration(iceServers=[])

    async def watch() -> tuple[RTCPeerConnection, np.ndarray]:
        pc = RTCPeerConnection(rtc)
        track = await video_track(pc)
        await negotiate(eve, pc, session)
        remote = await asyncio.wait_for(track, 10)
        frames = [await asyncio.wait_for(remote.recv(), 10) for _ in range(5)]
        return pc, frames[-1].to_ndarray(format="bgr24")

    async def scenario():
        first = RTCPeerConnection(rtc)
        first.addTrack(ClipTrack(CLIP, count=10))
        await negotiate(wendy, first, session)
        one = await asyncio.to_thread(eve.wait_for, "session_state", lambda s: s["video"] is not None)
        pc1, frame1 = await watch()
        second = RTCPeerConnection(rtc)
        second.addTrack(ClipTrack(CLIP, count=10))
        await negotiate(wendy, second, session)  # the same connection offers again
        two = await asyncio.to_thread(eve.wait_for, "session_state",
                                      lambda s: s["video"] not in (None, one["video"]))
        pc2, frame2 = await watch()
        for pc in (first, second, pc1, pc2):
            await pc.close()
        return one, two, frame1, frame2

    one, two, frame1, frame2 = asyncio.run(scenario())
    assert one["video"] != two["video"]
    assert frame1.mean() > 20 and frame2.mean() > 20
    for client in (wendy, eve):
        threading.Thread(target=client.close, daemon=True).start()
