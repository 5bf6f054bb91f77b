"""The safety audit log: append-only, hash-chained, in storage, never blocking the monitor.

Every decision that changes the safety mode, every gate answer, every reset and every zone or
parameter change is appended here with its time, actor, inputs summary and reason (issue 3,
"Audit"). The records live in the `safety_audit` table (`content.storage.AuditRow`) of the
same database as the users; SQLite by default, opened in WAL mode with ``synchronous=FULL``
so that a committed record survives a crash of the process and a loss of power.

Record fields (the table's columns):

    seq        int   1, 2, 3, ... with no gap; assigned by the writer at commit time.
    t_us       int   UNIX time of the event, microseconds (``time.time_ns() // 1000``);
                     `AuditRecord.t` and the JSON give it as UNIX seconds, float.
    stamp_ns   int   ``time.monotonic_ns()`` of the event in the process that appended it.
    kind       str   `AuditKind` value or another lower-case identifier, 1 to 64 characters.
    actor      str   user name, or ``monitor`` / ``gate`` / ``audit`` for xrcell itself.
    inputs     str   the inputs summary as canonical JSON text (a JSON object), see below.
    reason     str   the decision in words.
    prev_hash  str   `hash` of record seq - 1; 64 ``0`` for record 1 (`GENESIS_HASH`).
    hash       str   lower-case hex SHA-256 of the record's canonical bytes, see below.

Canonical bytes of a record (what an auditor re-implements to check the chain): the UTF-8
encoding of the JSON object with exactly the eight keys of `HASHED_FIELDS`, in this order
(which is also sorted order)::

    {"actor":…,"inputs":…,"kind":…,"prev_hash":…,"reason":…,"seq":…,"stamp_ns":…,"t_us":…}

with no whitespace; ``seq``, ``stamp_ns`` and ``t_us`` as plain decimal integers (no sign for
non-negative values, no exponent, no leading zeros); every other value as a JSON string of the
column's text, in which only ``"`` and ``\\`` and the characters below U+0020 are escaped
(``\\b \\t \\n \\f \\r`` by their short forms, the rest as ``\\u00xx`` with lower-case hex) and
every other character is written as itself, in UTF-8. ``inputs`` is hashed as that string, i.e.
the stored JSON text itself, so checking needs no JSON parser and no float formatting rules. It
is Python's ``json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
and RFC 8785 (JCS) for these field types, except that JCS would bound the integers to 2**53.
``hash = sha256(canonical bytes).hexdigest()``; record n is intact when its hash matches its
canonical bytes, its prev_hash equals record n-1's hash, and its seq is n.

What the chain proves and what it does not: any change, insertion or removal of a record before
the newest one breaks the chain at the first record concerned, and `verify` names it. Removing
records at the end (truncation) leaves a shorter chain that is intact; to detect that, note the
head (`head()`: seq and hash, printed by ``xrcell audit verify``) somewhere else, such as a
shift report or a second system, and compare.

Threads: `append` never blocks the caller (the safety monitor calls it from its loop). It puts
the record into a bounded in-memory queue; the writer thread ("safety-audit-writer") commits the
queue in batches, in order. If the queue is full (the writer is stuck: database locked, disk
full), the record is dropped and counted, never waited for; when the queue has room again, an
``audit_gap`` record with the count, the time range and the kinds of what was lost is chained
in where the loss happened. ``append(..., durable=True)`` waits until its record (and so every
record queued before it) is committed, for use by APIs that answer "accepted" to a user: do not
call it on the monitor thread.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from content.storage import AuditRow
from safety.errors import SafetyError

log = logging.getLogger(__name__)

#: prev_hash of record 1.
GENESIS_HASH = "0" * 64
#: The fields the hash covers, in canonical (sorted) order.
HASHED_FIELDS = ("actor", "inputs", "kind", "prev_hash", "reason", "seq", "stamp_ns", "t_us")
#: Largest page `page()` returns.
MAX_PAGE = 1000

_TABLE: sa.Table = AuditRow.__table__  # type: ignore[assignment]
_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class AuditError(SafetyError):
    """The audit log refused a record or a query (bad input, closed log, full queue for a durable
    record) or cannot open its database; the message says which."""


class AuditCommitTimeout(AuditError):
    """A durable record was not committed within its timeout. It stays queued and may still be
    committed later: the caller must not report the action as recorded."""


class AuditKind(enum.Enum):
    """Kinds of audit records xrcell writes; other lower-case identifiers are accepted too.

    MODE_CHANGE: the monitor's mode changed (inputs: old and new mode, separation, S_p, faults).
    GATE_ANSWER: the command gate answered a command (inputs: command summary, verdict).
    RESET: a fault reset was asked for, accepted or refused.
    STOP_REQUEST: a user asked for a protective stop (`SafetyMonitor.request_stop`).
    ZONE_CHANGE: the cell's zones changed at run time.
    PARAMETER_CHANGE: a safety parameter changed at run time.
    OUTPUT_FAULT: a `SafetyOutput` became unhealthy or recovered.
    PLACED_OBJECTS: the occupancy channel refused the robot's placed-objects list for another
        cause (a field, stale), or accepted it again (actor ``occupancy``; inputs: cause,
        previous cause, changes of cause since the last record, objects in the list, masked,
        capture and robot stamps; at most one a second after a burst of 8:
        `safety.perception.depth_input.OccupancyInput`).
    AUDIT_GAP: written by the audit log itself: records were dropped (queue full).
    """

    MODE_CHANGE = "mode_change"
    GATE_ANSWER = "gate_answer"
    RESET = "reset"
    STOP_REQUEST = "stop_request"
    ZONE_CHANGE = "zone_change"
    PARAMETER_CHANGE = "parameter_change"
    OUTPUT_FAULT = "output_fault"
    PLACED_OBJECTS = "placed_objects"
    AUDIT_GAP = "audit_gap"


@dataclass(frozen=True)
class AuditRecord:
    """One committed record; the fields are the table's columns (see the module docstring).

    Attributes:
        inputs_json: the inputs summary as stored (canonical JSON text); `inputs` parses it.
    """

    seq: int
    t_us: int
    stamp_ns: int
    kind: str
    actor: str
    inputs_json: str
    reason: str
    prev_hash: str
    hash: str

    @property
    def t(self) -> float:
        """UNIX time of the event, seconds."""
        return self.t_us / 1e6

    @property
    def inputs(self) -> object:
        """The inputs summary parsed (a dict), or the stored text if it is not valid JSON."""
        try:
            return json.loads(self.inputs_json)
        except (TypeError, ValueError):
            return self.inputs_json

    def to_json(self) -> dict:
        """The record as `page()` gives it (see there for the shape)."""
        return {"seq": self.seq, "t": self.t, "stamp_ns": self.stamp_ns, "kind": self.kind,
                "actor": self.actor, "inputs": self.inputs, "reason": self.reason,
                "prev_hash": self.prev_hash, "hash": self.hash}


class BreakProblem(enum.Enum):
    """How a record breaks the chain.

    SEQ_GAP: the record with this seq is missing (deleted, or the chain was spliced).
    PREV_HASH_MISMATCH: the record's prev_hash is not the previous record's hash (the previous
        record was changed and re-hashed, or this one's prev_hash was changed).
    HASH_MISMATCH: the record's hash does not match its fields (a field or the hash was changed).
    """

    SEQ_GAP = "seq_gap"
    PREV_HASH_MISMATCH = "prev_hash_mismatch"
    HASH_MISMATCH = "hash_mismatch"


@dataclass(frozen=True)
class AuditBreak:
    """The first record where the chain breaks.

    Attributes:
        seq: the record's seq (for SEQ_GAP, the first missing seq).
        problem: what is wrong.
        detail: the evidence in words.
    """

    seq: int
    problem: BreakProblem
    detail: str

    def __str__(self) -> str:
        return f"record {self.seq}: {self.problem.value.replace('_', ' ')}: {self.detail}"


@dataclass(frozen=True)
class AuditStatus:
    """Health of the audit log's writer, for /metrics and the dashboard.

    Attributes:
        queued: records waiting for the writer.
        committed: records this process committed.
        dropped_total: records dropped because the queue was full, since start.
        gaps_recorded: ``audit_gap`` records queued so far.
        last_error: the writer's last database error, None once a commit succeeds again.
        writer_alive: the writer thread runs.
    """

    queued: int
    committed: int
    dropped_total: int
    gaps_recorded: int
    last_error: str | None
    writer_alive: bool

    @property
    def healthy(self) -> bool:
        """True when the writer runs, its last commit succeeded and no loss is pending."""
        return self.writer_alive and self.last_error is None


# -- canonical form -----------------------------------------------------------------------------

_CANONICAL = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # C encoder; keys in given order


def canonical_bytes(*, seq: int, t_us: int, stamp_ns: int, kind: str, actor: str, inputs: str,
                    reason: str, prev_hash: str) -> bytes:
    """The bytes a record's hash covers (the module docstring defines them).

    Raises:
        ValueError: a field has the wrong type (only tampered rows do); the message names it.
    """
    fields = {"actor": actor, "inputs": inputs, "kind": kind, "prev_hash": prev_hash, "reason": reason,
              "seq": seq, "stamp_ns": stamp_ns, "t_us": t_us}  # HASHED_FIELDS order
    for name, value in fields.items():
        if name in ("seq", "stamp_ns", "t_us"):
            if type(value) is not int:
                raise ValueError(f"field {name} holds {value!r}, not an integer")
        elif type(value) is not str:
            raise ValueError(f"field {name} holds {value!r}, not text")
    return _CANONICAL.encode(fields).encode("utf-8")


def record_hash(**fields: object) -> str:
    """Lower-case hex SHA-256 of `canonical_bytes(**fields)`."""
    return hashlib.sha256(canonical_bytes(**fields)).hexdigest()  # type: ignore[arg-type]


def _jsonable(value: object) -> object:
    """`value` as plain JSON types: non-finite floats become "NaN"/"Infinity"/"-Infinity",
    numpy scalars and arrays become numbers and lists, enums their value, the rest `str()`."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, enum.Enum):
        return _jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in items]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return _jsonable(value.tolist())
    return str(value)


def canonical_inputs(inputs: Mapping[str, object]) -> str:
    """The inputs summary as the canonical JSON text that is stored and hashed.

    Raises:
        AuditError: `inputs` is not a mapping.
    """
    if not isinstance(inputs, Mapping):
        raise AuditError(f"audit inputs must be a mapping (a JSON object), got {type(inputs).__name__}")
    return json.dumps(_jsonable(inputs), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


# -- the log ------------------------------------------------------------------------------------

@dataclass
class _Pending:
    kind: str
    actor: str
    inputs: str
    reason: str
    t_us: int
    stamp_ns: int
    done: threading.Event | None = None
    record: AuditRecord | None = None


def _row_record(row: sa.Row) -> AuditRecord:
    return AuditRecord(row.seq, row.t_us, row.stamp_ns, row.kind, row.actor, row.inputs, row.reason,
                       row.prev_hash, row.hash)


def _check_int(name: str, value: object, low: int, high: int | None) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"from {low} to {high}"
        raise AuditError(f"{name} must be an integer {bound}, got {value!r}")
    return value


class AuditLog:
    """The safety audit log of one database (see the module docstring for the record format).

    Thread safety: every method may be called from any thread. `append` without `durable`
    never blocks (it holds a lock only to put the record into a deque). `page`, `tail`,
    `head` and `verify` read in their own transactions (a WAL snapshot on SQLite) and do not
    stop the writer. The writer thread owns all writes; the table has no update or delete path.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///data/xrcell.sqlite`` (the users' database) or
            ``sqlite://`` (in memory, tests). Other databases (PostgreSQL) work; the chain is
            then protected by the primary key on seq (a conflicting writer retries).
        queue_max: records the queue holds before it drops (and counts) new ones.
        batch_max: records per commit at most.
        durable_timeout_s: default wait of ``append(..., durable=True)``, s.
        busy_timeout_s: SQLite: how long one commit waits for another writer's lock before it
            fails and is retried (with backoff), s.
        read_only: open for `verify`/`page`/`tail`/`head` only: no writer thread, no table
            creation, no pragma changes (``xrcell audit``).

    Raises:
        AuditError: a bad argument, or the database cannot be opened.
    """

    def __init__(self, url: str, *, queue_max: int = 10_000, batch_max: int = 500,
                 durable_timeout_s: float = 2.0, busy_timeout_s: float = 5.0,
                 read_only: bool = False) -> None:
        self._queue_max = _check_int("queue_max", queue_max, 1, None)
        self._batch_max = _check_int("batch_max", batch_max, 1, None)
        if not (isinstance(durable_timeout_s, (int, float)) and durable_timeout_s > 0):
            raise AuditError(f"durable_timeout_s must be > 0 s, got {durable_timeout_s!r}")
        self._durable_timeout_s = float(durable_timeout_s)
        if not (isinstance(busy_timeout_s, (int, float)) and busy_timeout_s > 0):
            raise AuditError(f"busy_timeout_s must be > 0 s, got {busy_timeout_s!r}")
        self._busy_timeout_s = float(busy_timeout_s)
        self._read_only = read_only
        self.url = url
        self._open(url)
        # The queue and its bookkeeping, guarded by _cond's lock.
        queue_lock = threading.Lock()
        self._cond = threading.Condition(queue_lock)  # the writer waits on it for work
        self._committed_cond = threading.Condition(queue_lock)  # flush() waits on it for commits
        self._pending: collections.deque[_Pending] = collections.deque()
        self._closing = False
        self._dropped = 0  # dropped since the last gap record
        self._dropped_kinds: collections.Counter[str] = collections.Counter()
        self._dropped_first_us = 0
        self._dropped_last_us = 0
        self._dropped_total = 0
        self._gaps = 0
        self._committed = 0
        self._last_error: str | None = None
        self._close_deadline: float | None = None
        self._writer: threading.Thread | None = None
        if not read_only:
            self._writer = threading.Thread(target=self._run, name="safety-audit-writer", daemon=True)
            self._writer.start()

    # -- database ---------------------------------------------------------------------------
    def _open(self, url: str) -> None:
        try:
            parsed = sa.engine.make_url(url)
            self._sqlite = parsed.get_backend_name() == "sqlite"
            memory = self._sqlite and parsed.database in (None, "", ":memory:")
            if self._sqlite and not memory and not self._read_only:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            if self._sqlite and not memory and self._read_only and not Path(parsed.database).is_file():
                raise AuditError(f"no audit database at {parsed.database}")
            if memory:
                # One connection shared by every thread (a second one would be another database).
                engine = sa.create_engine(url, poolclass=sa.pool.StaticPool,
                                          connect_args={"check_same_thread": False})
                self._setup_sqlite(engine, begin="BEGIN", wal=False)
                self._write_engine = self._read_engine = engine
                self._db_lock: contextlib.AbstractContextManager = threading.RLock()
            elif self._sqlite:
                busy = {"timeout": self._busy_timeout_s}
                self._write_engine = sa.create_engine(url, connect_args=busy)
                self._setup_sqlite(self._write_engine, begin="BEGIN IMMEDIATE", wal=not self._read_only)
                self._read_engine = sa.create_engine(url, connect_args=busy)
                self._setup_sqlite(self._read_engine, begin="BEGIN", wal=False)
                self._db_lock = contextlib.nullcontext()
            else:
                self._write_engine = self._read_engine = sa.create_engine(url)
                self._db_lock = contextlib.nullcontext()
            if not self._read_only:
                with self._db_lock:
                    _TABLE.create(self._write_engine, checkfirst=True)
        except (sa.exc.SQLAlchemyError, sa.exc.ArgumentError, OSError) as exc:
            raise AuditError(f"cannot open the audit log at {url!r}: {exc}") from exc

    @staticmethod
    def _setup_sqlite(engine: sa.Engine, *, begin: str, wal: bool) -> None:
        """Own the transactions (pysqlite's implicit ones would start the write lock late) and,
        for the writer, WAL with synchronous=FULL: a COMMIT is on disk when it returns."""

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(connection) -> None:  # type: ignore[no-untyped-def]
            connection.exec_driver_sql(begin)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection | None]:
        """A read transaction, or None when the table does not exist (read-only, fresh DB)."""
        with self._db_lock, self._read_engine.begin() as conn:
            if self._read_only and not sa.inspect(conn).has_table(_TABLE.name):
                yield None
            else:
                yield conn

    def durability(self) -> dict[str, str]:
        """The writer connection's SQLite settings, e.g. ``{"journal_mode": "wal",
        "synchronous": "full"}``; empty for other databases."""
        if not self._sqlite:
            return {}
        with self._db_lock, self._write_engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            conn.rollback()
        return {"journal_mode": str(mode).lower(),
                "synchronous": {0: "off", 1: "normal", 2: "full", 3: "extra"}.get(sync, str(sync))}

    # -- appending --------------------------------------------------------------------------
    def append(self, kind: AuditKind | str, actor: str, inputs: Mapping[str, object], reason: str, *,
               durable: bool = False, timeout_s: float | None = None,
               stamp_ns: int | None = None) -> AuditRecord | None:
        """Queue one record; with `durable`, wait until it is committed.

        Args:
            kind: an `AuditKind` or a lower-case identifier (``audit_gap`` is reserved).
            actor: user name or xrcell component, 1 to 64 characters.
            inputs: the inputs summary, a JSON-able mapping (numpy values, enums and
                non-finite floats are converted; anything else becomes its `str`).
            reason: the decision in words.
            durable: wait until the record (and every record queued before it) is committed.
                Never on the monitor thread.
            timeout_s: the durable wait, s (default: the log's `durable_timeout_s`).
            stamp_ns: the event's monotonic time (default: now), e.g. a `SafetyState.stamp_ns`.

        Returns:
            The committed record with its seq and hash when `durable`, else None.

        Raises:
            AuditError: bad kind, actor, inputs or reason; the log is closed or read-only; or,
                for a durable record only, the queue is full (the record is counted as dropped).
            AuditCommitTimeout: a durable record was not committed within the timeout.
        """
        kind_name = kind.value if isinstance(kind, AuditKind) else kind
        if not isinstance(kind_name, str) or not _KIND_RE.match(kind_name):
            raise AuditError(f"audit kind {kind_name!r} is not a lower-case identifier of 1 to 64 characters")
        if kind_name == AuditKind.AUDIT_GAP.value:
            raise AuditError("audit kind 'audit_gap' is written by the audit log itself")
        if not isinstance(actor, str) or not 1 <= len(actor) <= 64:
            raise AuditError(f"audit actor must be 1 to 64 characters, got {actor!r}")
        if not isinstance(reason, str):
            raise AuditError(f"audit reason must be text, got {type(reason).__name__}")
        inputs_json = canonical_inputs(inputs)
        if self._read_only:
            raise AuditError("the audit log is open read-only")
        now_us = time.time_ns() // 1000
        item = _Pending(kind_name, actor, inputs_json, reason, now_us,
                        time.monotonic_ns() if stamp_ns is None else int(stamp_ns),
                        threading.Event() if durable else None)
        with self._cond:
            if self._closing:
                raise AuditError(f"the audit log is closed; record {kind_name!r} not queued")
            if len(self._pending) >= self._queue_max:
                self._drop(kind_name, now_us)
                if durable:
                    raise AuditError(f"audit queue full ({self._queue_max} records; writer: "
                                     f"{self._last_error or 'busy'}); record {kind_name!r} not queued")
                return None
            if self._dropped:
                self._pending.append(self._gap_item())
            self._pending.append(item)
            self._cond.notify()
        if not durable:
            return None
        wait_s = self._durable_timeout_s if timeout_s is None else timeout_s
        if not item.done.wait(wait_s):  # type: ignore[union-attr]
            raise AuditCommitTimeout(
                f"audit record {kind_name!r} was not committed within {wait_s:g} s (writer: "
                f"{self._last_error or 'busy'}); it stays queued and may still be committed")
        if item.record is None:
            raise AuditError(f"the audit log closed before record {kind_name!r} was committed")
        return item.record

    def _drop(self, kind: str, t_us: int) -> None:
        """Count a dropped record (caller holds the lock)."""
        if not self._dropped:
            self._dropped_first_us = t_us
            log.error("audit queue full (%d records): dropping records until the writer catches up",
                      self._queue_max)
        self._dropped += 1
        self._dropped_total += 1
        self._dropped_last_us = t_us
        self._dropped_kinds[kind] += 1

    def _gap_item(self) -> _Pending:
        """The audit_gap record for the drops counted so far; resets the count (lock held)."""
        inputs = {"dropped": self._dropped, "first_t": self._dropped_first_us / 1e6,
                  "last_t": self._dropped_last_us / 1e6, "kinds": dict(self._dropped_kinds)}
        reason = (f"{self._dropped} audit records were dropped because the audit queue was full "
                  f"(writer: {self._last_error or 'busy'})")
        self._dropped = 0
        self._dropped_kinds.clear()
        self._gaps += 1
        return _Pending(AuditKind.AUDIT_GAP.value, "audit", canonical_inputs(inputs), reason,
                        time.time_ns() // 1000, time.monotonic_ns())

    # -- the writer -------------------------------------------------------------------------
    def _run(self) -> None:
        backoff_s = 0.0
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait(0.5)
                if not self._pending:  # closing and drained
                    if not self._dropped:
                        return
                    self._pending.append(self._gap_item())
                batch = [self._pending[i] for i in range(min(self._batch_max, len(self._pending)))]
                closing = self._closing
            try:
                records = self._commit(batch)
            except Exception as exc:  # noqa: BLE001 - the writer must outlive any database error
                self._last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                log.error("audit commit of %d records failed: %s", len(batch), self._last_error)
                if closing and self._close_deadline is not None and time.monotonic() > self._close_deadline:
                    return
                backoff_s = min(2.0, max(0.05, backoff_s * 2))
                with self._cond:
                    self._cond.wait_for(lambda: self._closing and not closing, backoff_s)
                continue
            backoff_s = 0.0
            self._last_error = None
            with self._cond:
                for _ in batch:
                    self._pending.popleft()
                self._committed += len(batch)
                if not self._pending and self._dropped:
                    self._pending.append(self._gap_item())
                self._committed_cond.notify_all()
            for item, record in zip(batch, records):
                if item.done is not None:
                    item.record = record
                    item.done.set()

    def _commit(self, batch: list[_Pending]) -> list[AuditRecord]:
        with self._db_lock, self._write_engine.begin() as conn:
            head = conn.execute(sa.select(_TABLE.c.seq, _TABLE.c.hash)
                                .order_by(_TABLE.c.seq.desc()).limit(1)).first()
            seq, prev = (int(head.seq), str(head.hash)) if head is not None else (0, GENESIS_HASH)
            records = []
            for item in batch:
                seq += 1
                digest = record_hash(seq=seq, t_us=item.t_us, stamp_ns=item.stamp_ns, kind=item.kind,
                                     actor=item.actor, inputs=item.inputs, reason=item.reason,
                                     prev_hash=prev)
                records.append(AuditRecord(seq, item.t_us, item.stamp_ns, item.kind, item.actor,
                                           item.inputs, item.reason, prev, digest))
                prev = digest
            conn.execute(sa.insert(_TABLE), [
                {"seq": r.seq, "t_us": r.t_us, "stamp_ns": r.stamp_ns, "kind": r.kind, "actor": r.actor,
                 "inputs": r.inputs_json, "reason": r.reason, "prev_hash": r.prev_hash, "hash": r.hash}
                for r in records])
        return records

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything queued so far is committed; True if it was within `timeout_s`."""
        with self._cond:
            target = self._committed + len(self._pending)
            return self._committed_cond.wait_for(lambda: self._committed >= target, timeout_s)

    def close(self, timeout_s: float = 5.0) -> int:
        """Commit what is queued (retrying for up to `timeout_s`), stop the writer, release the
        database. Returns the number of records left uncommitted (0 normally; logged if not)."""
        with self._cond:
            self._closing = True
            self._close_deadline = time.monotonic() + timeout_s
            self._cond.notify_all()
        if self._writer is not None:
            self._writer.join(timeout_s + 1.0)
        with self._cond:
            left = len(self._pending) + self._dropped
            for item in self._pending:
                if item.done is not None:
                    item.done.set()  # its waiter raises "closed before ... committed"
        if left:
            log.error("audit log closed with %d records not committed", left)
        self._write_engine.dispose()
        self._read_engine.dispose()
        return left

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self) -> AuditStatus:
        """The writer's health (cheap; any thread)."""
        with self._cond:
            return AuditStatus(len(self._pending), self._committed, self._dropped_total, self._gaps,
                               self._last_error, self._writer is not None and self._writer.is_alive())

    # -- reading ----------------------------------------------------------------------------
    def head(self) -> AuditRecord | None:
        """The newest committed record (None for an empty log)."""
        with self._reading() as conn:
            if conn is None:
                return None
            row = conn.execute(sa.select(_TABLE).order_by(_TABLE.c.seq.desc()).limit(1)).first()
        return None if row is None else _row_record(row)

    def tail(self, n: int = 20) -> list[AuditRecord]:
        """The newest `n` records, oldest first.

        Raises:
            AuditError: `n` is not an integer >= 1.
        """
        n = _check_int("n", n, 1, None)
        with self._reading() as conn:
            if conn is None:
                return []
            rows = conn.execute(sa.select(_TABLE).order_by(_TABLE.c.seq.desc()).limit(n)).all()
        return [_row_record(r) for r in reversed(rows)]

    def page(self, after_seq: int = 0, limit: int = 100, kind: str | None = None) -> dict:
        """One page of records for ``GET /api/safety/events?after_seq=&limit=&kind=``.

        Args:
            after_seq: return records with seq > after_seq (0: from the start); an int or a
                string of digits (a query parameter as received).
            limit: records per page, 1 to `MAX_PAGE`; int or string of digits.
            kind: only records of this kind (None or "": all).

        Returns:
            A JSON-ready dict::

                {"events": [{"seq": 12, "t": 1718000000.123456, "stamp_ns": 5120000000,
                             "kind": "mode_change", "actor": "monitor",
                             "inputs": {...}, "reason": "...",
                             "prev_hash": "<64 hex>", "hash": "<64 hex>"}, ...],
                 "next_after_seq": 12,   # pass as after_seq for the next page; null on the last
                 "head_seq": 40}         # newest seq in the log, 0 when empty

            ``events`` ascend by seq; ``t`` is UNIX seconds (float), ``stamp_ns`` the monotonic
            clock of the appending process, ``inputs`` the inputs summary (a JSON object).

        Raises:
            AuditError: a bad argument; the message names it (answer 400 with it).
        """
        after_seq = _check_int("after_seq", after_seq, 0, None)
        limit = _check_int("limit", limit, 1, MAX_PAGE)
        if kind is not None and not isinstance(kind, str):
            raise AuditError(f"kind must be text, got {kind!r}")
        query = sa.select(_TABLE).where(_TABLE.c.seq > after_seq)
        if kind:
            query = query.where(_TABLE.c.kind == kind)
        with self._reading() as conn:
            if conn is None:
                return {"events": [], "next_after_seq": None, "head_seq": 0}
            rows = conn.execute(query.order_by(_TABLE.c.seq).limit(limit)).all()
            head = conn.execute(sa.select(sa.func.max(_TABLE.c.seq))).scalar()
        events = [_row_record(r).to_json() for r in rows]
        return {"events": events, "next_after_seq": events[-1]["seq"] if len(events) == limit else None,
                "head_seq": int(head or 0)}

    def verify(self, *, upto_seq: int | None = None, chunk: int = 5000) -> AuditBreak | None:
        """Check the whole chain from record 1 (to `upto_seq` if given) in one read snapshot.

        Returns:
            The first broken record (see `BreakProblem`), or None when the chain is intact.
            Never raises for tampered rows (wrong types, bad JSON): they are hash mismatches.
        """
        expected, prev = 1, GENESIS_HASH
        with self._reading() as conn:
            if conn is None:
                return None
            while True:
                query = sa.select(_TABLE).where(_TABLE.c.seq >= expected)
                if upto_seq is not None:
                    query = query.where(_TABLE.c.seq <= upto_seq)
                rows = conn.execute(query.order_by(_TABLE.c.seq).limit(chunk)).all()
                for row in rows:
                    broken = _check_row(row, expected, prev)
                    if broken is not None:
                        return broken
                    expected, prev = row.seq + 1, row.hash
                if len(rows) < chunk:
                    return None


def _check_row(row: sa.Row, expected: int, prev: str) -> AuditBreak | None:
    if row.seq != expected:
        missing = f"record {expected} is" if row.seq == expected + 1 else f"records {expected} to {row.seq - 1} are"
        return AuditBreak(expected, BreakProblem.SEQ_GAP, f"{missing} missing; the next record is {row.seq}")
    if row.prev_hash != prev:
        return AuditBreak(row.seq, BreakProblem.PREV_HASH_MISMATCH,
                          f"prev_hash {str(row.prev_hash)[:16]}… is not the hash {prev[:16]}… of record {row.seq - 1}"
                          if row.seq > 1 else f"prev_hash {str(row.prev_hash)[:16]}… of the first record is not "
                                              "the genesis hash (64 zeros)")
    try:
        digest = record_hash(seq=row.seq, t_us=row.t_us, stamp_ns=row.stamp_ns, kind=row.kind,
                             actor=row.actor, inputs=row.inputs, reason=row.reason, prev_hash=row.prev_hash)
    except ValueError as exc:
        return AuditBreak(row.seq, BreakProblem.HASH_MISMATCH, str(exc))
    if digest != row.hash:
        return AuditBreak(row.seq, BreakProblem.HASH_MISMATCH,
                          f"stored hash {str(row.hash)[:16]}… but the fields hash to {digest[:16]}…")
    return None
