"""User store: accounts with roles, passwords hashed with Argon2id.

SQLAlchemy 2 over SQLite by default (`sqlite:///data/xrcell.sqlite`); any SQLAlchemy URL works
(PostgreSQL beyond one machine, see DESIGN.md "Scale"). Passwords are never stored or logged in
clear: `argon2-cffi`'s `PasswordHasher` (Argon2id, RFC 9106 parameters) stores a PHC string with
its own salt and parameters, and `verify` rehashes transparently when the parameters change.
"""

from __future__ import annotations

import builtins
import enum
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import argon2
import sqlalchemy as sa
from sqlalchemy import orm

from content.errors import StorageError

_log = logging.getLogger(__name__)


class Role(enum.Enum):
    """What a user may do (DESIGN.md "Interfaces").

    WORKER: sees the twin and the instructions on the HMI.
    EXPERT: joins a worker's first-person view remotely.
    SUPERVISOR: also resets a fault stop and edits work instructions.
    OPERATOR: also commands the robot (through the safety gate).
    ADMIN: everything, including user management.
    """

    WORKER = "worker"
    EXPERT = "expert"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"
    ADMIN = "admin"


ROLE_NAMES: tuple[str, ...] = tuple(r.value for r in Role)


@dataclass(frozen=True)
class User:
    """One account as the store returns it (never carries the password or its hash).

    Attributes:
        username: unique login name.
        roles: role names, a subset of `ROLE_NAMES`, in `Role` order.
        created_at: UNIX seconds.
    """

    username: str
    roles: tuple[str, ...]
    created_at: float


class _Base(orm.DeclarativeBase):
    pass


class _UserRow(_Base):
    __tablename__ = "users"

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True)
    username: orm.Mapped[str] = orm.mapped_column(sa.String(64), unique=True, index=True)
    password_hash: orm.Mapped[str] = orm.mapped_column(sa.String(255))
    roles: orm.Mapped[str] = orm.mapped_column(sa.String(255))  # comma-separated role names
    created_at: orm.Mapped[float] = orm.mapped_column(sa.Float)

    def to_user(self) -> User:
        return User(self.username, tuple(r for r in self.roles.split(",") if r), self.created_at)


class _RevokedTokenRow(_Base):
    """A session token revoked before its expiry (logout); kept until it would have expired."""

    __tablename__ = "revoked_tokens"

    token_id: orm.Mapped[str] = orm.mapped_column(sa.String(64), primary_key=True)
    expires_at: orm.Mapped[float] = orm.mapped_column(sa.Float, index=True)  # UNIX seconds


def _check_roles(roles: Sequence[str]) -> tuple[str, ...]:
    if isinstance(roles, str):
        roles = [roles]
    if not roles:
        raise StorageError(f"a user needs at least one role: one of {', '.join(ROLE_NAMES)}")
    for role in roles:
        if role not in ROLE_NAMES:
            raise StorageError(f"unknown role {role!r}: expected one of {', '.join(ROLE_NAMES)}")
    return tuple(r for r in ROLE_NAMES if r in roles)


class UserStore:
    """Accounts in a SQL database.

    Thread-safe: every method opens its own short session on a shared engine (SQLAlchemy
    engines and their connection pools are thread-safe), so the web server's request threads
    may call it concurrently.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///data/xrcell.sqlite`` or ``sqlite://`` (in memory).
        hasher: Argon2 parameters; the default is argon2-cffi's RFC 9106 low-memory profile.
    """

    def __init__(self, url: str, *, hasher: argon2.PasswordHasher | None = None) -> None:
        try:
            parsed = sa.engine.make_url(url)
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = sa.create_engine(url)
            _Base.metadata.create_all(self._engine)
        except (sa.exc.SQLAlchemyError, sa.exc.ArgumentError, OSError) as exc:
            raise StorageError(f"cannot open the user store at {url!r}: {exc}") from exc
        self._sessions = orm.sessionmaker(self._engine, expire_on_commit=False)
        self._hasher = hasher or argon2.PasswordHasher()
        # Verifying an unknown user costs as much as a known one (no user enumeration by timing).
        self._dummy_hash = self._hasher.hash("xrcell-dummy-password")

    def add(self, username: str, password: str, roles: Sequence[str]) -> User:
        """Create an account; raises `StorageError` on a duplicate name, empty input or an unknown role."""
        if not username or not username.strip() or len(username) > 64:
            raise StorageError("username must be 1 to 64 characters")
        if not password:
            raise StorageError(f"password of user {username!r} must not be empty")
        role_names = _check_roles(roles)
        row = _UserRow(username=username, password_hash=self._hasher.hash(password),
                       roles=",".join(role_names), created_at=time.time())
        try:
            with self._sessions.begin() as session:
                if session.scalar(sa.select(_UserRow.id).where(_UserRow.username == username)) is not None:
                    raise StorageError(f"user {username!r} already exists")
                session.add(row)
        except sa.exc.IntegrityError as exc:
            raise StorageError(f"user {username!r} already exists") from exc
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"cannot add user {username!r}: {exc}") from exc
        return row.to_user()

    def verify(self, username: str, password: str) -> User | None:
        """The user if the password matches, else None (unknown user and wrong password alike)."""
        with self._sessions.begin() as session:
            row = session.scalar(sa.select(_UserRow).where(_UserRow.username == username))
            if row is None:
                try:
                    self._hasher.verify(self._dummy_hash, password)
                except argon2.exceptions.VerificationError:
                    pass
                return None
            try:
                self._hasher.verify(row.password_hash, password)
            except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
                return None
            if self._hasher.check_needs_rehash(row.password_hash):
                row.password_hash = self._hasher.hash(password)
            return row.to_user()

    def list(self) -> builtins.list[User]:
        """Every account, by username."""
        with self._sessions() as session:
            return [r.to_user() for r in session.scalars(sa.select(_UserRow).order_by(_UserRow.username))]

    def remove(self, username: str) -> None:
        """Delete an account; raises `StorageError` if there is none of that name."""
        with self._sessions.begin() as session:
            row = session.scalar(sa.select(_UserRow).where(_UserRow.username == username))
            if row is None:
                raise StorageError(f"no user {username!r}")
            session.delete(row)

    def revoke_token(self, token_id: str, expires_at: float) -> None:
        """Record that the session token `token_id` is revoked (logout) until `expires_at`, UNIX
        seconds, when it would expire anyway; rows already past their expiry are purged on the way.
        Idempotent. Every server process on the same database sees the revocation.

        Raises:
            StorageError: empty `token_id`, or the database failed.
        """
        if not token_id:
            raise StorageError("token_id must not be empty")
        try:
            with self._sessions.begin() as session:
                session.execute(sa.delete(_RevokedTokenRow).where(_RevokedTokenRow.expires_at < time.time()))
                if session.get(_RevokedTokenRow, token_id) is None:
                    session.add(_RevokedTokenRow(token_id=token_id, expires_at=float(expires_at)))
        except sa.exc.IntegrityError:
            pass  # revoked concurrently by another request: the outcome is the same
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"cannot revoke a token: {exc}") from exc

    def revoked_token_ids(self) -> frozenset[str]:
        """Ids of the revoked session tokens that have not expired yet.

        Raises:
            StorageError: the database failed.
        """
        try:
            with self._sessions() as session:
                return frozenset(session.scalars(sa.select(_RevokedTokenRow.token_id)
                                                 .where(_RevokedTokenRow.expires_at >= time.time())))
        except sa.exc.SQLAlchemyError as exc:
            raise StorageError(f"cannot read the revoked tokens: {exc}") from exc


# -- safety audit log ---------------------------------------------------------------------------
# The table of `safety.audit.AuditLog` (the hash chain, its canonical form and the writer live
# there). It sits in the same database as the users. Append-only for the application: xrcell has
# no update or delete path, and on SQLite two triggers refuse UPDATE and DELETE outright, so
# only someone who drops them first can change a record, and `xrcell audit verify` then names it.

class AuditRow(_Base):
    """One record of the safety audit log; see `safety.audit` for the meaning of each column."""

    __tablename__ = "safety_audit"

    # INTEGER (not BIGINT) on SQLite so that the key is the rowid; 64-bit either way.
    seq: orm.Mapped[int] = orm.mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=False)
    t_us: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)
    stamp_ns: orm.Mapped[int] = orm.mapped_column(sa.BigInteger)
    kind: orm.Mapped[str] = orm.mapped_column(sa.String(64), index=True)
    actor: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    inputs: orm.Mapped[str] = orm.mapped_column(sa.Text)
    reason: orm.Mapped[str] = orm.mapped_column(sa.Text)
    prev_hash: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    hash: orm.Mapped[str] = orm.mapped_column(sa.String(64))


for _verb in ("UPDATE", "DELETE"):
    sa.event.listen(AuditRow.__table__, "after_create", sa.DDL(
        f"CREATE TRIGGER IF NOT EXISTS safety_audit_no_{_verb.lower()} BEFORE {_verb} ON safety_audit "
        f"BEGIN SELECT RAISE(ABORT, 'safety_audit is append-only'); END").execute_if(dialect="sqlite"))
del _verb


# -- XR session annotations ---------------------------------------------------------------------
ANNOTATION_KINDS: tuple[str, ...] = ("arrow", "circle", "label", "stroke")


@dataclass(frozen=True)
class Annotation:
    """A mark a remote expert placed on a worker's view.

    Geometry is in normalised image coordinates of the worker's video: ``u`` from the left edge
    (0) to the right edge (1), ``v`` from the top (0) to the bottom (1), so it holds at any
    resolution the video is sent at.

    Attributes:
        annotation_id: unique, increasing.
        session_id: the XR session it belongs to.
        cell: the cell of that session.
        author: username of the expert who placed it (the only one who may change it).
        kind: one of `ANNOTATION_KINDS`: ``arrow`` (points: tail, head), ``circle`` (points:
            centre; `radius`), ``label`` (points: anchor; `text` shown), ``stroke`` (points: a
            freehand line, 2 to 256).
        points: ``((u, v), ...)``, normalised image coordinates.
        radius: circle radius as a fraction of the image width; None for other kinds.
        text: the label, or a caption of an arrow or circle ('' for none).
        color: ``#rrggbb``.
        created_at, updated_at: UNIX seconds.
        anchor_m: (x, y, z) metres in the `cell` frame where the annotation's point lies in 3D, or
            None when the server could not place it (see `xr_server.anchors`).
        anchor_on: what the anchor lies on (``floor``, ``robot:<link>``, ``person:<id>:<part>``);
            None without an anchor.
    """

    annotation_id: int
    session_id: str
    cell: str
    author: str
    kind: str
    points: tuple[tuple[float, float], ...]
    radius: float | None
    text: str
    color: str
    created_at: float
    updated_at: float
    anchor_m: tuple[float, float, float] | None = None
    anchor_on: str | None = None


class _AnnotationRow(_Base):
    __tablename__ = "annotations"

    id: orm.Mapped[int] = orm.mapped_column(primary_key=True, autoincrement=True)
    session_id: orm.Mapped[str] = orm.mapped_column(sa.String(32), index=True)
    cell: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    author: orm.Mapped[str] = orm.mapped_column(sa.String(64))
    kind: orm.Mapped[str] = orm.mapped_column(sa.String(16))
    points: orm.Mapped[str] = orm.mapped_column(sa.Text)  # JSON [[u, v], ...]
    radius: orm.Mapped[float | None] = orm.mapped_column(sa.Float, nullable=True)
    text: orm.Mapped[str] = orm.mapped_column(sa.Text)
    color: orm.Mapped[str] = orm.mapped_column(sa.String(7))
    created_at: orm.Mapped[float] = orm.mapped_column(sa.Float)
    updated_at: orm.Mapped[float] = orm.mapped_column(sa.Float)
    # JSON {"position_m": [x, y, z], "on": "..."}, or NULL; rows written before `on` existed
    # hold the bare [x, y, z] of a floor anchor.
    anchor: orm.Mapped[str | None] = orm.mapped_column(sa.Text, nullable=True)

    def to_annotation(self) -> Annotation:
        anchor, on = None, None
        if self.anchor:
            stored = json.loads(self.anchor)
            if isinstance(stored, list):
                stored = {"position_m": stored, "on": "floor"}
            x, y, z = (float(c) for c in stored["position_m"])
            anchor, on = (x, y, z), str(stored["on"])
        points = tuple((float(u), float(v)) for u, v in json.loads(self.points))
        return Annotation(self.id, self.session_id, self.cell, self.author, self.kind, points,
                          self.radius, self.text, self.color, self.created_at, self.updated_at,
                          anchor, on)


def _anchor_json(anchor_m: Sequence[float], anchor_on: str) -> str:
    return json.dumps({"position_m": [float(c) for c in anchor_m], "on": anchor_on})


class AnnotationStore:
    """The annotations of XR sessions in a SQL database (the user store's, by default).

    `add`, `update` and `remove` return only once the change is committed: a caller that
    acknowledges after them never acknowledges a change a crash would lose (SQLite's default
    journal is durable at commit). Thread-safe like `UserStore`. Use a file or server database:
    an in-memory SQLite URL gives each thread its own empty database.

    Args:
        url: SQLAlchemy URL.

    Raises (every method):
        StorageError: with a message safe to show to a client; database failures are logged
            with their cause and reported as ``cannot <verb> annotation: database unavailable``.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = sa.engine.make_url(url)
            if (parsed.get_backend_name() == "sqlite"
                    and parsed.database not in (None, "", ":memory:")):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = sa.create_engine(url)
            _Base.metadata.create_all(self._engine)
        except (sa.exc.SQLAlchemyError, sa.exc.ArgumentError, OSError) as exc:
            raise StorageError(f"cannot open the annotation store at {url!r}: {exc}") from exc
        self._sessions = orm.sessionmaker(self._engine, expire_on_commit=False)

    def add(self, session_id: str, cell: str, author: str, kind: str,
            points: Sequence[Sequence[float]], radius: float | None, text: str, color: str,
            anchor_m: Sequence[float] | None = None, anchor_on: str = "floor") -> Annotation:
        """Store a new annotation (see `Annotation` for the fields) and return it with its id."""
        if kind not in ANNOTATION_KINDS:
            raise StorageError(f"unknown annotation kind {kind!r}: "
                               f"expected one of {', '.join(ANNOTATION_KINDS)}")
        now = time.time()
        row = _AnnotationRow(session_id=session_id, cell=cell, author=author, kind=kind,
                             points=json.dumps([[float(u), float(v)] for u, v in points]),
                             radius=radius,
                             text=text, color=color, created_at=now, updated_at=now,
                             anchor=None if anchor_m is None else _anchor_json(anchor_m, anchor_on))
        try:
            with self._sessions.begin() as session:
                session.add(row)
        except sa.exc.SQLAlchemyError as exc:
            _log.error("cannot add annotation: %s", exc)
            raise StorageError("cannot add annotation: database unavailable") from exc
        return row.to_annotation()

    def update(self, annotation_id: int, session_id: str, author: str, *,
               points: Sequence[Sequence[float]] | None = None, radius: float | None = None,
               text: str | None = None, color: str | None = None,
               anchor_m: Sequence[float] | None = None, anchor_on: str = "floor") -> Annotation:
        """Change the given fields of an annotation of `session_id` placed by `author`.

        Raises:
            StorageError: no such annotation in the session, `author` is not its author, or the
                database failed.
        """
        try:
            with self._sessions.begin() as session:
                row = self._own(session, annotation_id, session_id, author, "change")
                if points is not None:
                    row.points = json.dumps([[float(u), float(v)] for u, v in points])
                if radius is not None:
                    row.radius = radius
                if text is not None:
                    row.text = text
                if color is not None:
                    row.color = color
                if anchor_m is not None:
                    row.anchor = _anchor_json(anchor_m, anchor_on)
                row.updated_at = time.time()
                return row.to_annotation()
        except sa.exc.SQLAlchemyError as exc:
            _log.error("cannot update annotation %s: %s", annotation_id, exc)
            raise StorageError("cannot update annotation: database unavailable") from exc

    def remove(self, annotation_id: int, session_id: str, author: str) -> None:
        """Delete an annotation of `session_id` placed by `author`; same errors as `update`."""
        try:
            with self._sessions.begin() as session:
                session.delete(self._own(session, annotation_id, session_id, author, "delete"))
        except sa.exc.SQLAlchemyError as exc:
            _log.error("cannot delete annotation %s: %s", annotation_id, exc)
            raise StorageError("cannot delete annotation: database unavailable") from exc

    def list(self, session_id: str) -> builtins.list[Annotation]:
        """The annotations of a session, oldest first."""
        try:
            with self._sessions() as session:
                rows = session.scalars(sa.select(_AnnotationRow)
                                       .where(_AnnotationRow.session_id == session_id)
                                       .order_by(_AnnotationRow.id))
                return [r.to_annotation() for r in rows]
        except sa.exc.SQLAlchemyError as exc:
            _log.error("cannot read the annotations of session %s: %s", session_id, exc)
            raise StorageError("cannot read annotations: database unavailable") from exc

    @staticmethod
    def _own(session: orm.Session, annotation_id: int, session_id: str, author: str,
             verb: str) -> _AnnotationRow:
        row = session.get(_AnnotationRow, annotation_id)
        if row is None or row.session_id != session_id:
            raise StorageError(f"no annotation {annotation_id} in session {session_id}")
        if row.author != author:
            raise StorageError(f"annotation {annotation_id} was placed by {row.author!r}: "
                               f"only its author may {verb} it")
        return row
