"""Recordings of XR sessions for later review: the twin, the session's events and the worker's video.

A recording is a folder ``<root>/<recording id>/`` (the id is ``<session>-<UTC start time>``)
holding plain files any tool reads:

    manifest.json   {recording, session, cell, started_by, started_at, stopped_by, stopped_at,
                    twin_rate_hz, files}; UNIX seconds; `stopped_at` null while recording (or
                    when the server died during it: the files are still valid up to their last line)
    twin.jsonl      one ``twin_state`` (docs/twin_state.schema, as the HMIs get it) per line,
                    sampled at `twin_rate_hz` (default 10 Hz): robot, planned path, safety state
                    with its mode and closest pair, people, zones
    events.jsonl    one event per line, ``{"t": UNIX s, "kind": ..., ...}``: ``recording_started``,
                    ``participant`` (who joined or left), ``annotation`` (created / updated /
                    deleted, as broadcast), ``safety_mode`` (each change of the monitor's mode
                    seen in the twin, with its reason), ``alignment`` (a marker registration
                    of the HMI, the ``marker_align`` answer), ``video_segment``,
                    ``recording_stopped``
    video-NNN.mp4   the worker's camera (H.264, aiortc's `MediaRecorder`), one file per video
                    stream the worker published while recording (a reconnect starts the next)

Durability: each line of events.jsonl is flushed and fsync'ed before `SessionRecorder.event`
returns, so an event that was acknowledged to a user is on disk; twin.jsonl is flushed every line
and fsync'ed about once a second. The manifest is replaced atomically (write, fsync, rename).

Retention (`RetentionPolicy`): `Recordings.prune` deletes whole recordings, oldest first, that
ended more than `retention_days` ago, then more while all recordings together hold more than
`max_total_mb`; never one in progress, never a folder without a readable manifest (it may not be
ours). `Recordings.start_pruning` prunes at once and then every `prune_period_s` in a thread
("recordings-retention"); every deletion is logged at WARNING and passed to the `on_delete`
listener (`xrcell demo`/`serve` write it to the audit log as ``recording_deleted``).

Threads: `Recordings` and `SessionRecorder` methods may be called from any thread. Each active
recording owns one sampler thread ("recording-<id>") reading the twin source; a twin source that
raises is logged and skipped, never stops the recording.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from xr_server.errors import SessionError

log = logging.getLogger(__name__)

#: Default sampling rate of the twin in a recording, Hz (a third of the HMIs' 30 Hz: enough to
#: review motion and stops, a tenth of the disk).
DEFAULT_TWIN_RATE_HZ = 10.0
#: How often twin.jsonl is fsync'ed, seconds.
TWIN_SYNC_PERIOD_S = 1.0
#: A recording id: the session id, a dash, the UTC start time (YYYYmmddTHHMMSSZ).
RECORDING_ID = re.compile(r"^[0-9a-f]{16}-\d{8}T\d{6}Z$")
#: Files a recording may hold (what `Recordings.file` serves).
FILE_NAME = re.compile(r"^(manifest\.json|twin\.jsonl|events\.jsonl|video-\d{3}\.mp4)$")


#: Default retention: recordings are deleted 30 days after they ended ...
DEFAULT_RETENTION_DAYS = 30.0
#: ... or, oldest first, while all of them together hold more than this, MB (10^6 bytes).
DEFAULT_MAX_TOTAL_MB = 20_000.0
#: How often `Recordings.start_pruning` prunes, seconds.
DEFAULT_PRUNE_PERIOD_S = 3600.0


@dataclass(frozen=True)
class RetentionPolicy:
    """How long recordings are kept (see the module docstring).

    Attributes:
        retention_days: delete a recording this many days after it ended (``stopped_at``, or
            ``started_at`` when it never stopped); None keeps recordings forever.
        max_total_mb: delete the oldest recordings while all together hold more than this, MB
            (10^6 bytes); None sets no bound.
        prune_period_s: the period of `Recordings.start_pruning`, seconds.

    Raises:
        ValueError: a value is not positive, naming the field.
    """

    retention_days: float | None = DEFAULT_RETENTION_DAYS
    max_total_mb: float | None = DEFAULT_MAX_TOTAL_MB
    prune_period_s: float = DEFAULT_PRUNE_PERIOD_S

    def __post_init__(self) -> None:
        for name in ("retention_days", "max_total_mb", "prune_period_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")


@dataclass(frozen=True)
class DeletedRecording:
    """A recording `Recordings.prune` deleted.

    Attributes:
        recording: its id.
        session: its session id.
        size_mb: what it held, MB (10^6 bytes).
        ended_at: when it ended, UNIX seconds (``started_at`` when it never stopped).
        reason: ``"retention_days"`` (too old) or ``"max_total_mb"`` (over the size bound).
    """

    recording: str
    session: str
    size_mb: float
    ended_at: float
    reason: str


#: ``on_delete(deleted)``: called after each deletion, on the pruning thread.
DeleteListener = Callable[[DeletedRecording], None]


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass
    return total


@dataclass(frozen=True)
class RecordingInfo:
    """A recording's manifest (see the module docstring)."""

    recording: str
    session: str
    cell: str
    started_by: str
    started_at: float
    stopped_by: str | None
    stopped_at: float | None
    twin_rate_hz: float
    files: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"recording": self.recording, "session": self.session, "cell": self.cell,
                "started_by": self.started_by, "started_at": round(self.started_at, 3),
                "stopped_by": self.stopped_by,
                "stopped_at": None if self.stopped_at is None else round(self.stopped_at, 3),
                "twin_rate_hz": self.twin_rate_hz, "files": list(self.files)}


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class SessionRecorder:
    """One recording of one session (created and started by `Recordings.start`).

    Args:
        folder: the recording's folder (created; must not exist).
        info: its manifest at the start.
        twin_source: the newest ``twin_state`` dict, or None.
    """

    def __init__(self, folder: Path, info: RecordingInfo, twin_source: Callable[[], dict | None]) -> None:
        self.folder = folder
        self._info = info
        self._twin_source = twin_source
        self._lock = threading.Lock()
        self._stop = threading.Event()
        folder.mkdir(parents=True, exist_ok=False)
        self._events = open(folder / "events.jsonl", "a", encoding="utf-8")
        self._twin = open(folder / "twin.jsonl", "a", encoding="utf-8")
        self._videos = 0
        self._write_manifest()
        self.event("recording_started", {"by": info.started_by, "session": info.session, "cell": info.cell})
        self._thread = threading.Thread(target=self._sample, name=f"recording-{info.recording}",
                                        daemon=True)
        self._thread.start()

    @property
    def info(self) -> RecordingInfo:
        with self._lock:
            return self._info

    def event(self, kind: str, data: dict) -> None:
        """Append ``{"t", "kind", **data}`` to events.jsonl, on disk when this returns."""
        line = json.dumps({"t": round(time.time(), 3), "kind": kind, **data}, separators=(",", ":"))
        with self._lock:
            if self._events.closed:
                return
            self._events.write(line + "\n")
            self._events.flush()
            os.fsync(self._events.fileno())

    def next_video_path(self) -> Path:
        """The file of the next video segment (``video-001.mp4``, ...), listed in the manifest."""
        with self._lock:
            self._videos += 1
            name = f"video-{self._videos:03d}.mp4"
            self._info = replace(self._info, files=self._info.files + (name,))
        self._write_manifest()
        self.event("video_segment", {"file": name})
        return self.folder / name

    def stop(self, actor: str) -> RecordingInfo:
        """Stop sampling, close the files and write the final manifest."""
        self._stop.set()
        self._thread.join(2.0)
        self.event("recording_stopped", {"by": actor})
        with self._lock:
            self._info = replace(self._info, stopped_by=actor, stopped_at=time.time())
            self._events.close()
            self._twin.close()
        self._write_manifest()
        return self.info

    def _write_manifest(self) -> None:
        with self._lock:
            text = json.dumps(self._info.as_dict(), indent=2)
        _write_atomically(self.folder / "manifest.json", text)

    def _sample(self) -> None:
        period = 1.0 / self._info.twin_rate_hz
        next_t = time.monotonic()
        last_sync = next_t
        last_mode = None
        while not self._stop.is_set():
            try:
                twin = self._twin_source()
            except Exception:  # noqa: BLE001 - a broken source must not end the recording
                log.exception("recording %s: twin source failed", self._info.recording)
                twin = None
            if twin is not None:
                line = json.dumps(twin, separators=(",", ":"))
                with self._lock:
                    if self._twin.closed:
                        return
                    self._twin.write(line + "\n")
                    self._twin.flush()
                    if time.monotonic() - last_sync >= TWIN_SYNC_PERIOD_S:
                        os.fsync(self._twin.fileno())
                        last_sync = time.monotonic()
                safety = twin.get("safety") or {}
                mode = safety.get("mode")
                if mode is not None and mode != last_mode:
                    self.event("safety_mode", {"mode": mode, "reason": safety.get("reason", "")})
                    last_mode = mode
            next_t += period
            self._stop.wait(max(0.0, next_t - time.monotonic()))


class Recordings:
    """The recordings of one server: at most one active per session, all kept under `root`.

    Args:
        root: the folder of the recordings (created when the first starts).
        twin_source: the newest ``twin_state`` dict of the cell, or None.
        twin_rate_hz: twin samples per second in a recording.
        retention: what `prune` deletes.
        on_delete: `DeleteListener`, told of every deletion (e.g. to audit it); an exception it
            raises is logged and does not stop the pruning.

    Raises (every method): `SessionError` with a message naming what is wrong.
    """

    def __init__(self, root: Path, twin_source: Callable[[], dict | None],
                 twin_rate_hz: float = DEFAULT_TWIN_RATE_HZ,
                 retention: RetentionPolicy = RetentionPolicy(),
                 on_delete: DeleteListener | None = None) -> None:
        if not twin_rate_hz > 0:
            raise ValueError(f"twin_rate_hz must be positive, got {twin_rate_hz}")
        self.root = Path(root)
        self.retention = retention
        self._twin_source = twin_source
        self._rate = twin_rate_hz
        self._on_delete = on_delete
        self._lock = threading.Lock()
        self._prune_lock = threading.Lock()
        self._active: dict[str, SessionRecorder] = {}
        self._pruner: threading.Thread | None = None
        self._pruner_stop = threading.Event()

    def start(self, session_id: str, cell: str, actor: str) -> RecordingInfo:
        """Start recording `session_id`; refused if it is already being recorded."""
        with self._lock:
            if session_id in self._active:
                raise SessionError(f"session {session_id} is already being recorded "
                                   f"({self._active[session_id].info.recording})")
            now = time.time()
            recording = f"{session_id}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}"
            info = RecordingInfo(recording, session_id, cell, actor, now, None, None, self._rate,
                                 ("manifest.json", "twin.jsonl", "events.jsonl"))
            try:
                recorder = SessionRecorder(self.root / recording, info, self._twin_source)
            except FileExistsError:
                raise SessionError(f"recording {recording} exists: start again in a second") from None
            except OSError as exc:
                raise SessionError(f"cannot record to {self.root}: {exc.strerror}") from exc
            self._active[session_id] = recorder
        log.info("%s started recording %s", actor, recording)
        return recorder.info

    def stop(self, session_id: str, actor: str) -> RecordingInfo:
        """Stop the recording of `session_id`; refused if there is none."""
        with self._lock:
            recorder = self._active.pop(session_id, None)
        if recorder is None:
            raise SessionError(f"session {session_id} is not being recorded")
        info = recorder.stop(actor)
        log.info("%s stopped recording %s", actor, info.recording)
        return info

    def active(self, session_id: str) -> SessionRecorder | None:
        """The active recording of `session_id`, or None."""
        with self._lock:
            return self._active.get(session_id)

    def active_sessions(self) -> list[str]:
        """The sessions being recorded now."""
        with self._lock:
            return list(self._active)

    def event(self, session_id: str, kind: str, data: dict) -> None:
        """Append an event to the session's active recording, if any."""
        recorder = self.active(session_id)
        if recorder is not None:
            recorder.event(kind, data)

    def list(self) -> list[RecordingInfo]:
        """Every recording under `root` (active or not), newest first; unreadable manifests are
        logged and skipped."""
        out = []
        if not self.root.is_dir():
            return out
        for manifest in self.root.glob("*/manifest.json"):
            try:
                data = json.loads(manifest.read_text(encoding="utf-8"))
                out.append(RecordingInfo(**{**data, "files": tuple(data["files"])}))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("skipping recording %s: unreadable manifest: %s", manifest.parent.name, exc)
        return sorted(out, key=lambda r: r.started_at, reverse=True)

    def file(self, recording: str, name: str) -> Path:
        """The path of file `name` of `recording`, after checking both names.

        Raises:
            SessionError: a malformed id or file name, or no such recording or file.
        """
        if not RECORDING_ID.match(recording):
            raise SessionError(f"no recording {recording!r}: ids look like <session>-<YYYYmmddTHHMMSSZ>")
        if not FILE_NAME.match(name):
            raise SessionError(f"no file {name!r} in a recording: manifest.json, twin.jsonl, "
                               "events.jsonl or video-NNN.mp4")
        path = self.root / recording / name
        if not path.is_file():
            raise SessionError(f"recording {recording} has no file {name}")
        return path

    # ------------------------------------------------------------------------------ retention
    def prune(self, now: float | None = None) -> list[DeletedRecording]:
        """Delete what `retention` no longer keeps, oldest first (see the module docstring).

        Args:
            now: the time to age recordings against, UNIX seconds (default: now).

        Returns:
            The deleted recordings, in the order they were deleted.
        """
        now = time.time() if now is None else now
        policy = self.retention
        deleted: list[DeletedRecording] = []
        with self._prune_lock:
            infos = sorted(self.list(), key=lambda r: r.started_at)       # oldest first
            with self._lock:
                active = {r.info.recording for r in self._active.values()}
            sizes = {r.recording: _folder_bytes(self.root / r.recording) for r in infos}
            total = sum(sizes.values())
            for info in infos:
                if info.recording in active:
                    continue
                ended_at = info.started_at if info.stopped_at is None else info.stopped_at
                if (policy.retention_days is not None
                        and now - ended_at > policy.retention_days * 86_400.0):
                    reason = "retention_days"
                elif policy.max_total_mb is not None and total > policy.max_total_mb * 1e6:
                    reason = "max_total_mb"
                else:
                    continue
                folder = self.root / info.recording
                try:
                    shutil.rmtree(folder)
                except OSError as exc:
                    log.error("recording %s not deleted (%s): %s", info.recording, reason, exc)
                    continue
                total -= sizes[info.recording]
                gone = DeletedRecording(info.recording, info.session,
                                        round(sizes[info.recording] / 1e6, 3), ended_at, reason)
                deleted.append(gone)
                log.warning("deleted recording %s of session %s (%.1f MB, ended %s): %s",
                            gone.recording, gone.session, gone.size_mb,
                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ended_at)),
                            "older than retention_days" if reason == "retention_days"
                            else "recordings over max_total_mb")
                if self._on_delete is not None:
                    try:
                        self._on_delete(gone)
                    except Exception:  # noqa: BLE001 - a listener bug must not stop pruning
                        log.exception("recording deletion listener failed")
        return deleted

    def start_pruning(self) -> None:
        """Prune now and then every ``retention.prune_period_s`` in a daemon thread, until
        `close`; nothing if already pruning."""
        with self._lock:
            if self._pruner is not None:
                return
            self._pruner_stop.clear()
            self._pruner = threading.Thread(target=self._prune_loop, name="recordings-retention",
                                            daemon=True)
            self._pruner.start()

    def close(self) -> None:
        """Stop the pruning thread (active recordings go on: stop them with `stop`)."""
        self._pruner_stop.set()
        with self._lock:
            pruner, self._pruner = self._pruner, None
        if pruner is not None:
            pruner.join(5.0)

    def _prune_loop(self) -> None:
        while True:
            try:
                self.prune()
            except Exception:  # noqa: BLE001 - pruning retries next period
                log.exception("pruning the recordings under %s failed", self.root)
            if self._pruner_stop.wait(self.retention.prune_period_s):
                return
