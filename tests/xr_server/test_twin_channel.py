"""The twin stream over a WebRTC data channel (`xr_server.twin_channel`), with real aiortc peers
and python-socketio clients against a live server on 127.0.0.1: an unordered, no-retransmit
``twin`` channel gets every twin_state and Socket.IO stops sending it to that client; other
settings are refused with a reason; closing the channel brings the Socket.IO stream back."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from av import VideoFrame

from tests.xr_server.doubles import TWIN
from tests.xr_server.live import start_live_server_with_accounts
from tests.xr_server.rtc_peers import negotiate


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    counter = {"n": 0}

    def twin():  # a new stamp every broadcast, so each received state can be told apart
        counter["n"] += 1
        return {**TWIN, "t": float(counter["n"])}

    server = start_live_server_with_accounts(tmp_path_factory.mktemp("twin-channel"), twin_source=twin)
    yield server
    server.app.xrcell_stop()


class Grey(VideoStreamTrack):
    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(np.full((120, 160, 3), 100, np.uint8), format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def socket_twins(client) -> list[float]:
    """Stamps of the twin_states `client` gets over Socket.IO from now on."""
    got: list[float] = []
    client.sio.on("twin_state", lambda state: got.append(state["t"]), namespace="/xr")
    return got


async def offer_with_channel(client, session: str, **init) -> tuple[RTCPeerConnection, object]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel("twin", **init)
    pc.addTransceiver(Grey(), direction="sendonly")
    await negotiate(client, pc, session)
    return pc, channel


def close_later(*clients) -> None:
    for client in clients:  # Werkzeug never sends the close frame a client waits 3 s for
        threading.Thread(target=client.close, daemon=True).start()


def test_an_unordered_twin_channel_carries_the_stream_instead_of_socketio(live):
    wendy, eve = live.client("wendy"), live.client("eve")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    eve.call("session_join", {"session": session, "role": "expert"})
    over_socket = socket_twins(wendy)

    async def scenario():
        pc, channel = await offer_with_channel(wendy, session, ordered=False, maxRetransmits=0)
        got: list[dict] = []
        channel.on("message", lambda m: got.append(json.loads(m)))
        t0 = time.monotonic()
        while len(got) < 3 and time.monotonic() - t0 < 15:
            await asyncio.sleep(0.05)
        socket_before = len(over_socket)
        listed = await asyncio.to_thread(eve.call, "session_list", {"cell": "lab"})
        await asyncio.sleep(1.0)  # five broadcasts at 5 Hz
        socket_during = len(over_socket) - socket_before
        channel_during = len(got)
        channel.close()
        await asyncio.sleep(1.0)
        socket_after = len(over_socket) - socket_before - socket_during
        await pc.close()
        return got, listed, socket_during, channel_during, socket_after

    got, listed, socket_during, channel_during, socket_after = asyncio.run(scenario())
    assert len(got) >= 3
    assert {k: v for k, v in got[-1].items() if k != "t"} == {k: v for k, v in TWIN.items() if k != "t"}
    stamps = [state["t"] for state in got]
    assert len(stamps) == len(set(stamps))  # distinct states, none repeated (order: unordered channel)
    assert channel_during >= len(got[:3]) + 3  # the stream went on over the channel ...
    assert socket_during <= 1  # ... and not over Socket.IO (one may have been in flight)
    assert socket_after >= 3  # closed: Socket.IO resumes
    wendy_entry = next(p for s in listed["sessions"] if s["session"] == session
                       for p in s["participants"] if p["username"] == "wendy")
    assert wendy_entry["twin_transport"] == "datachannel" and wendy_entry["twin_states_dropped"] == 0
    close_later(wendy, eve)


def test_a_reliable_twin_channel_is_refused_with_a_reason_and_socketio_goes_on(live):
    walt = live.client("walt")
    session = walt.call("session_create", {"cell": "lab"})["session"]
    over_socket = socket_twins(walt)

    async def scenario():
        pc, channel = await offer_with_channel(walt, session)  # ordered and reliable by default
        t0 = time.monotonic()
        while channel.readyState != "closed" and time.monotonic() - t0 < 15:
            await asyncio.sleep(0.05)
        state = channel.readyState
        before = len(over_socket)
        await asyncio.sleep(1.0)
        await pc.close()
        return state, len(over_socket) - before

    state, socket_during = asyncio.run(scenario())
    assert state == "closed"
    assert socket_during >= 3
    error = walt.wait_for("error")
    assert error == {"event": "twin_channel", "error": "data channel 'twin': must be unordered with "
                     "maxRetransmits 0 (got ordered=true, maxRetransmits=None); the twin stays on Socket.IO"}
    close_later(walt)
