"""Recordings of XR sessions: the files on disk (unit), and a whole recording over real sockets
and real WebRTC (a worker publishing real footage, an expert recording and annotating)."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import av
import pytest
import requests
from aiortc import RTCConfiguration, RTCPeerConnection

from tests.xr_server.live import start_live_server_with_accounts
from tests.xr_server.test_rtc_audio import ToneTrack, dominant_hz
from tests.xr_server.test_rtc_relay import CLIP, ClipTrack, negotiate, until
from xr_server.errors import SessionError
from xr_server.recording import Recordings

SESSION = "0123456789abcdef"


class ModeSource:
    """A twin source whose safety mode a test switches."""

    def __init__(self) -> None:
        self.mode = "full_speed"
        self.calls = 0

    def __call__(self) -> dict:
        self.calls += 1
        return {"v": 1, "cell": "lab", "safety": {"mode": self.mode, "reason": f"because {self.mode}"}}


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_recording_holds_the_twin_the_events_and_a_manifest(tmp_path):
    source = ModeSource()
    recordings = Recordings(tmp_path, source, twin_rate_hz=50.0)
    info = recordings.start(SESSION, "lab", "eve")
    assert info.recording.startswith(SESSION + "-") and info.stopped_at is None
    with pytest.raises(SessionError, match=f"session {SESSION} is already being recorded"):
        recordings.start(SESSION, "lab", "emil")
    folder = tmp_path / info.recording
    # An event is on disk when event() returns: another reader sees it at once.
    recordings.event(SESSION, "annotation", {"op": "created", "annotation": {"id": 1}})
    assert [e["annotation"] for e in lines(folder / "events.jsonl") if e["kind"] == "annotation"] == [{"id": 1}]
    deadline = time.monotonic() + 10
    while source.calls < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    source.mode = "protective_stop"
    while source.calls < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert json.loads((folder / "manifest.json").read_text())["stopped_at"] is None   # still running
    stopped = recordings.stop(SESSION, "wendy")
    assert stopped.stopped_by == "wendy" and stopped.stopped_at >= stopped.started_at
    with pytest.raises(SessionError, match=f"session {SESSION} is not being recorded"):
        recordings.stop(SESSION, "wendy")
    twin = lines(folder / "twin.jsonl")
    assert len(twin) >= 8 and twin[0]["cell"] == "lab"
    events = lines(folder / "events.jsonl")
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "recording_started" and kinds[-1] == "recording_stopped"
    modes = [(e["mode"], e["reason"]) for e in events if e["kind"] == "safety_mode"]
    assert modes == [("full_speed", "because full_speed"), ("protective_stop", "because protective_stop")]
    assert [r.recording for r in recordings.list()] == [info.recording]
    assert json.loads((folder / "manifest.json").read_text())["stopped_by"] == "wendy"


def test_files_are_served_only_by_their_checked_names(tmp_path):
    recordings = Recordings(tmp_path, ModeSource())
    info = recordings.start(SESSION, "lab", "eve")
    recordings.stop(SESSION, "eve")
    assert recordings.file(info.recording, "twin.jsonl") == tmp_path / info.recording / "twin.jsonl"
    with pytest.raises(SessionError, match="ids look like <session>-<YYYYmmddTHHMMSSZ>"):
        recordings.file("../etc", "twin.jsonl")
    with pytest.raises(SessionError, match="no file '../../xrcell.sqlite' in a recording"):
        recordings.file(info.recording, "../../xrcell.sqlite")
    with pytest.raises(SessionError, match=f"recording {info.recording} has no file video-001.mp4"):
        recordings.file(info.recording, "video-001.mp4")


def test_a_broken_twin_source_or_manifest_loses_nothing_else(tmp_path, caplog):
    def broken():
        raise RuntimeError("twin source down")

    recordings = Recordings(tmp_path, broken, twin_rate_hz=100.0)
    info = recordings.start(SESSION, "lab", "eve")
    time.sleep(0.05)
    recordings.event(SESSION, "participant", {"op": "joined"})
    recordings.stop(SESSION, "eve")
    assert [e["kind"] for e in lines(tmp_path / info.recording / "events.jsonl")] == \
        ["recording_started", "participant", "recording_stopped"]
    (tmp_path / "junk-20260101T000000Z").mkdir()
    (tmp_path / "junk-20260101T000000Z" / "manifest.json").write_text("{not json")
    assert [r.recording for r in recordings.list()] == [info.recording]
    assert "unreadable manifest" in caplog.text


# ------------------------------------------------------------------------- over the wire
@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("recording")
    source = ModeSource()
    server = start_live_server_with_accounts(root, recordings=Recordings(root / "recordings", source))
    yield server
    server.app.xrcell_stop()


def test_an_expert_records_a_session_with_the_workers_video(live):
    wendy, eve = live.client("wendy"), live.client("eve")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    eve.call("session_join", {"session": session, "role": "expert"})
    assert wendy.call("session_record", {"session": session, "record": True})["error"] == \
        f"only an expert of session {session} starts a recording"
    media = live.app.extensions["xrcell_sessions"].media

    async def scenario():
        worker = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        worker.addTrack(ClipTrack(CLIP))
        worker.addTrack(ToneTrack(440))
        await negotiate(wendy, worker, session)
        await until(lambda: media.video(session).frames_received >= 5)
        started = await asyncio.to_thread(eve.call, "session_record", {"session": session, "record": True})
        assert "error" not in started, started
        # The worker is told, unmistakably: the session state names the recording.
        await asyncio.to_thread(wendy.wait_for, "session_state",
                                lambda s: s["recording"] == started["recording"]["recording"])
        await asyncio.to_thread(eve.call, "annotation_create",
                                {"session": session, "kind": "label", "points": [[0.5, 0.5]], "text": "this one"})
        frames = media.video(session).frames_received
        await until(lambda: media.video(session).frames_received >= frames + 45)   # 1.5 s of video
        # The worker may stop it too (it is the worker who is filmed).
        stopped = await asyncio.to_thread(wendy.call, "session_record", {"session": session, "record": False})
        await worker.close()
        return started["recording"], stopped["recording"]

    started, stopped = asyncio.run(scenario())
    assert stopped["recording"] == started["recording"] and stopped["stopped_by"] == "wendy"
    assert "video-001.mp4" in stopped["files"]
    token = live.token("eve")
    listed = requests.get(f"{live.base}/api/recordings", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert listed.status_code == 200
    assert [r["recording"] for r in listed.json()["recordings"]] == [started["recording"]]
    base = f"{live.base}/api/recordings/{started['recording']}"
    events = requests.get(f"{base}/events.jsonl", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    kinds = [json.loads(line)["kind"] for line in events.text.splitlines()]
    assert kinds[0] == "recording_started" and "annotation" in kinds and "video_segment" in kinds
    assert kinds[-1] == "recording_stopped"
    video = requests.get(f"{base}/video-001.mp4", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert video.status_code == 200 and video.headers["Content-Type"] == "video/mp4"
    path = live.app.extensions["xrcell_sessions"].recordings.file(started["recording"], "video-001.mp4")
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    with av.open(str(path)) as container:
        sound = list(container.decode(audio=0))
    assert len(decoded) >= 20 and decoded[0].shape == (240, 320)
    assert min(f.mean() for f in decoded) > 20                # the real footage, not black frames
    hz, rms = dominant_hz(sound[len(sound) // 2:])
    assert hz == pytest.approx(440, abs=10) and rms > 0.01, (hz, rms)   # the worker's microphone
    # Workers may not browse recordings; unknown files are 404 naming them.
    worker_token = live.token("wendy")
    refused = requests.get(f"{live.base}/api/recordings", headers={"Authorization": f"Bearer {worker_token}"},
                           timeout=10)
    assert refused.status_code == 403 and refused.json()["error"].startswith("role: recordings need one of")
    missing = requests.get(f"{base}/video-009.mp4", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert missing.status_code == 404
    assert missing.json() == {"error": f"recording {started['recording']} has no file video-009.mp4"}
    for client in (wendy, eve):
        threading.Thread(target=client.close, daemon=True).start()
