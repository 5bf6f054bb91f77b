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
from tests.xr_server.rtc_peers import CLIP, ClipTrack, negotiate, until
from xr_server.errors import SessionError
from xr_server.recording import DeletedRecording, Recordings, RetentionPolicy

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


# --------------------------------------------------------------------------------- retention
DAY_S = 86_400.0


def finished(root, session: str, started_at: float, size_bytes: int, stopped: bool = True) -> str:
    """A finished recording on disk as `Recordings` writes it (manifest and a video file)."""
    recording = f"{session}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started_at))}"
    folder = root / recording
    folder.mkdir(parents=True)
    manifest = {"recording": recording, "session": session, "cell": "lab", "started_by": "eve",
                "started_at": started_at, "stopped_by": "eve" if stopped else None,
                "stopped_at": started_at + 60 if stopped else None, "twin_rate_hz": 10.0,
                "files": ["manifest.json", "video-001.mp4"]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "video-001.mp4").write_bytes(b"\0" * size_bytes)
    return recording


def test_retention_deletes_old_recordings_then_the_oldest_over_the_size_bound(tmp_path, caplog):
    now = time.time()
    old = finished(tmp_path, "a" * 16, now - 40 * DAY_S, 1000)
    died = finished(tmp_path, "b" * 16, now - 35 * DAY_S, 1000, stopped=False)  # server died
    older = finished(tmp_path, "c" * 16, now - 5 * DAY_S, 600_000)
    newer = finished(tmp_path, "d" * 16, now - 3 * DAY_S, 600_000)
    newest = finished(tmp_path, "e" * 16, now - 1 * DAY_S, 600_000)
    (tmp_path / "not-ours").mkdir()                 # no manifest: never touched
    (tmp_path / "not-ours" / "big.bin").write_bytes(b"\0" * 100)
    heard: list[DeletedRecording] = []
    recordings = Recordings(tmp_path, ModeSource(), retention=RetentionPolicy(30.0, 1.5),
                            on_delete=heard.append)
    deleted = recordings.prune(now)
    assert [(d.recording, d.reason) for d in deleted] == [
        (old, "retention_days"), (died, "retention_days"), (older, "max_total_mb")]
    assert heard == deleted and deleted[2].size_mb == pytest.approx(0.6, abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([newer, newest, "not-ours"])
    assert f"deleted recording {old} of session {'a' * 16}" in caplog.text
    assert "recordings over max_total_mb" in caplog.text
    assert recordings.prune(now) == []            # within both bounds now


def test_retention_never_deletes_a_recording_in_progress(tmp_path):
    recordings = Recordings(tmp_path, ModeSource(), retention=RetentionPolicy(1.0, 1e-9))
    active = recordings.start(SESSION, "lab", "eve")
    old = finished(tmp_path, "a" * 16, time.time() - 10 * DAY_S, 10)
    assert [d.recording for d in recordings.prune(time.time() + 100 * DAY_S)] == [old]
    assert (tmp_path / active.recording / "manifest.json").is_file()
    recordings.stop(SESSION, "eve")
    assert [d.recording for d in recordings.prune(time.time() + 100 * DAY_S)] == [active.recording]


def test_pruning_runs_at_start_and_a_listener_bug_does_not_stop_it(tmp_path, caplog):
    def broken(_: DeletedRecording) -> None:
        raise RuntimeError("audit log down")

    first = finished(tmp_path, "a" * 16, time.time() - 40 * DAY_S, 10)
    second = finished(tmp_path, "b" * 16, time.time() - 39 * DAY_S, 10)
    recordings = Recordings(tmp_path, ModeSource(), retention=RetentionPolicy(30.0, None, 3600.0),
                            on_delete=broken)
    recordings.start_pruning()
    deadline = time.monotonic() + 10
    while any((tmp_path / r).exists() for r in (first, second)) and time.monotonic() < deadline:
        time.sleep(0.01)
    recordings.close()
    assert not (tmp_path / first).exists() and not (tmp_path / second).exists()
    assert "recording deletion listener failed" in caplog.text


@pytest.mark.parametrize("kwargs, match", [
    ({"retention_days": 0}, "retention_days must be positive, got 0"),
    ({"max_total_mb": -1.0}, "max_total_mb must be positive, got -1.0"),
    ({"prune_period_s": 0.0}, "prune_period_s must be positive, got 0.0"),
])
def test_a_retention_policy_names_its_bad_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RetentionPolicy(**kwargs)


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
