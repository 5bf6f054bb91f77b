"""XR sessions: a worker of a cell and the remote experts who join them.

A session belongs to one cell. A worker creates it (and is its only worker); experts join it.
Each participant is one Socket.IO connection (`sid`) in at most one session at a time. The
Socket.IO rooms follow the registry: ``cell:<cell>`` for everyone connected to the cell's server,
``session:<id>`` for the participants of a session, so an event emitted to a session room reaches
nobody who has not joined it (`xr_server.session_events` does the room bookkeeping).

Who may do what (account roles, `content.storage.Role`):

    create a session, or rejoin it as its worker     worker, admin (rejoin: the same user only)
    join as an expert, list a cell's sessions         expert, supervisor, admin

A session ends when its last participant leaves or disconnects.

Pure bookkeeping: no I/O, no Socket.IO. Thread-safe: every method takes one lock (the
Socket.IO handler threads and the WebRTC gateway's callbacks call it concurrently).
"""

from __future__ import annotations

import enum
import secrets
import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from xr_server.errors import SessionError

#: Account roles that may create a session and be its worker.
WORKER_ROLES = frozenset({"worker", "admin"})
#: Account roles that may join a session as a remote expert and list a cell's sessions.
EXPERT_ROLES = frozenset({"expert", "supervisor", "admin"})
#: A session id: 16 lowercase hex digits (64 random bits).
SESSION_ID_PATTERN = r"^[0-9a-f]{16}$"


class ParticipantRole(enum.Enum):
    """The part a connection plays in a session.

    WORKER: sends the first-person camera view; sees the annotations placed on it.
    EXPERT: receives the worker's view; places, edits and deletes its own annotations.
    """

    WORKER = "worker"
    EXPERT = "expert"


@dataclass(frozen=True)
class Participant:
    """One connection in a session.

    Attributes:
        sid: the Socket.IO session id of the connection.
        username: the account.
        role: its part in the session.
    """

    sid: str
    username: str
    role: ParticipantRole


@dataclass(frozen=True)
class SessionInfo:
    """A snapshot of a session, as sent to clients (`as_dict`).

    Attributes:
        session_id: `SESSION_ID_PATTERN`.
        cell: the cell the session belongs to.
        worker: username of the worker who created it (kept while the worker is away).
        worker_present: the worker is connected to the session now.
        experts: usernames of the experts in it now, in order of joining.
        created_at: UNIX seconds.
    """

    session_id: str
    cell: str
    worker: str
    worker_present: bool
    experts: tuple[str, ...]
    created_at: float

    def as_dict(self) -> dict:
        return {"session": self.session_id, "cell": self.cell, "worker": self.worker,
                "worker_present": self.worker_present, "experts": list(self.experts),
                "created_at": round(self.created_at, 3)}


@dataclass
class _Session:
    session_id: str
    cell: str
    worker: str
    created_at: float
    participants: dict[str, Participant] = field(default_factory=dict)  # sid -> participant

    def info(self) -> SessionInfo:
        members = list(self.participants.values())
        return SessionInfo(self.session_id, self.cell, self.worker,
                           any(p.role is ParticipantRole.WORKER for p in members),
                           tuple(p.username for p in members if p.role is ParticipantRole.EXPERT),
                           self.created_at)


def session_room(session_id: str) -> str:
    """The Socket.IO room of a session's participants."""
    return f"session:{session_id}"


def cell_room(cell: str) -> str:
    """The Socket.IO room of everyone connected to a cell."""
    return f"cell:{cell}"


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


class SessionRegistry:
    """The open XR sessions of the cells one server shows. Thread-safe.

    Args:
        cells: the names of the cells sessions may belong to.
    """

    def __init__(self, cells: Collection[str]) -> None:
        self._cells = frozenset(cells)
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._where: dict[str, str] = {}  # sid -> session id

    def create(self, cell: str, sid: str, username: str, roles: Collection[str]) -> SessionInfo:
        """Open a session in `cell` with the connection `sid` as its worker.

        Raises:
            SessionError: unknown cell, roles without `WORKER_ROLES`, or `sid` already in a session.
        """
        if cell not in self._cells:
            raise SessionError(f"unknown cell {cell!r}: this server shows {_names(self._cells)}")
        if not WORKER_ROLES & set(roles):
            raise SessionError("role: creating a session needs one of the roles "
                               f"{_names(WORKER_ROLES)}")
        with self._lock:
            self._check_free(sid)
            session_id = secrets.token_hex(8)
            while session_id in self._sessions:
                session_id = secrets.token_hex(8)
            session = _Session(session_id, cell, username, time.time())
            session.participants[sid] = Participant(sid, username, ParticipantRole.WORKER)
            self._sessions[session_id] = session
            self._where[sid] = session_id
            return session.info()

    def join(self, session_id: str, sid: str, username: str, roles: Collection[str],
             role: ParticipantRole) -> SessionInfo:
        """Add the connection `sid` to a session as `role`.

        Raises:
            SessionError: no such session; `role` not allowed to these account roles; the worker
                place taken by another connection, or asked for by another user than the
                session's worker; `sid` already in a session.
        """
        allowed = WORKER_ROLES if role is ParticipantRole.WORKER else EXPERT_ROLES
        if not allowed & set(roles):
            raise SessionError(f"role: joining as {role.value} needs one of the roles "
                               f"{_names(allowed)}")
        with self._lock:
            session = self._get(session_id)
            self._check_free(sid)
            if role is ParticipantRole.WORKER:
                if username != session.worker:
                    raise SessionError(f"session {session_id} is the session of worker "
                                       f"{session.worker!r}")
                if any(p.role is ParticipantRole.WORKER for p in session.participants.values()):
                    raise SessionError(f"session {session_id} already has its worker connected")
            session.participants[sid] = Participant(sid, username, role)
            self._where[sid] = session_id
            return session.info()

    def leave(self, sid: str) -> tuple[SessionInfo, bool] | None:
        """Take the connection `sid` out of its session.

        Returns:
            None when it was in none; else the session after it left, and whether that ended the
            session (no participant left).
        """
        with self._lock:
            session_id = self._where.pop(sid, None)
            if session_id is None:
                return None
            session = self._sessions[session_id]
            session.participants.pop(sid, None)
            ended = not session.participants
            if ended:
                del self._sessions[session_id]
            return session.info(), ended

    def participant(self, session_id: str, sid: str) -> Participant:
        """The connection `sid` in session `session_id`.

        Raises:
            SessionError: no such session, or `sid` has not joined it.
        """
        with self._lock:
            session = self._get(session_id)
            participant = session.participants.get(sid)
            if participant is None:
                raise SessionError(f"not a participant of session {session_id}: join it first")
            return participant

    def participants(self, session_id: str) -> list[Participant]:
        """The connections in a session, in order of joining; raises `SessionError` when there
        is no such session."""
        with self._lock:
            return list(self._get(session_id).participants.values())

    def info(self, session_id: str) -> SessionInfo:
        """A snapshot of a session; raises `SessionError` when there is no such session."""
        with self._lock:
            return self._get(session_id).info()

    def sessions(self, cell: str) -> list[SessionInfo]:
        """The open sessions of `cell`, oldest first."""
        with self._lock:
            found = [s.info() for s in self._sessions.values() if s.cell == cell]
        return sorted(found, key=lambda s: s.created_at)

    def count(self) -> int:
        """Open sessions, all cells."""
        with self._lock:
            return len(self._sessions)

    def _get(self, session_id: str) -> _Session:
        session = self._sessions.get(session_id)
        if session is None:
            raise SessionError(f"no session {session_id!r}")
        return session

    def _check_free(self, sid: str) -> None:
        current = self._where.get(sid)
        if current is not None:
            raise SessionError(f"already in session {current}: leave it first")

