"""Safety audit log: the hash chain as documented, tamper detection naming the first broken
record, durability across a hard process exit, overflow recorded as a gap, the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from safety.audit import (
    GENESIS_HASH,
    AuditBreak,
    AuditCommitTimeout,
    AuditError,
    AuditKind,
    AuditLog,
    BreakProblem,
)
from safety.errors import SafetyError
from xr_server.cli import main as xrcell

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "xrcell.sqlite"


@pytest.fixture
def log(db):
    audit = AuditLog(f"sqlite:///{db}")
    yield audit
    audit.close()


def fill(audit: AuditLog, n: int) -> None:
    for i in range(n):
        audit.append(AuditKind.MODE_CHANGE, "monitor", {"i": i, "mode": "reduced_speed"}, f"cycle {i}")
    assert audit.flush(10.0)


def tamper(db: Path, *statements: str) -> None:
    """Change the table the way an attacker with file access would: drop the guards first."""
    con = sqlite3.connect(db)
    con.execute("DROP TRIGGER safety_audit_no_update")
    con.execute("DROP TRIGGER safety_audit_no_delete")
    for sql in statements:
        con.execute(sql)
    con.commit()
    con.close()


def auditor_hash(row: dict) -> str:
    """The check as the module docstring tells an auditor to write it, independent of the code."""
    fields = {k: row[k] for k in ("actor", "inputs", "kind", "prev_hash", "reason", "seq", "stamp_ns", "t_us")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()


# -- the chain ----------------------------------------------------------------------------------

def test_records_chain_from_genesis_and_an_independent_auditor_reproduces_every_hash(log, db):
    log.append("gate_answer", "ana", {"command": "JointTrajectory", "points": np.int64(3),
                                      "goal": np.array([0.1, 0.2]), "dist": float("nan")},
               'rejected: "limits"\nj1 ünter\x01', durable=True)
    fill(log, 4)
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM safety_audit ORDER BY seq")]
    con.close()
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    for prev, row in zip([None] + rows, rows):
        assert auditor_hash(row) == row["hash"]
        if prev is not None:
            assert row["prev_hash"] == prev["hash"]
    assert json.loads(rows[0]["inputs"]) == {"command": "JointTrajectory", "dist": "NaN",
                                             "goal": [0.1, 0.2], "points": 3}
    assert log.verify() is None


def test_durable_append_returns_the_committed_record_and_everything_queued_before_it(log):
    for i in range(30):
        log.append("mode_change", "monitor", {"i": i}, "r")
    record = log.append("reset", "sam", {"fault": "camera stale"}, "reset requested", durable=True)
    assert record.seq == 31 and record.kind == "reset" and record.actor == "sam"
    assert record.inputs == {"fault": "camera stale"}
    assert log.head() == record
    assert log.status().committed == 31 and log.status().healthy


def test_sqlite_is_in_wal_mode_with_synchronous_full(log, db):
    assert log.durability() == {"journal_mode": "wal", "synchronous": "full"}
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    con.close()


def test_concurrent_appenders_produce_one_unbroken_chain(log):
    def worker(name):
        for i in range(200):
            log.append("gate_answer", name, {"i": i}, "accepted")

    threads = [threading.Thread(target=worker, args=(f"t{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert log.flush(10.0)
    assert log.head().seq == 800
    assert log.verify() is None


def test_two_logs_on_one_database_continue_the_same_chain(db):
    first = AuditLog(f"sqlite:///{db}")
    second = AuditLog(f"sqlite:///{db}")
    for i in range(50):
        first.append("mode_change", "a", {"i": i}, "r")
        second.append("mode_change", "b", {"i": i}, "r")
    first.close()
    second.close()
    reader = AuditLog(f"sqlite:///{db}", read_only=True)
    assert reader.head().seq == 100 and reader.verify() is None
    reader.close()


# -- tampering ----------------------------------------------------------------------------------

def test_the_table_refuses_update_and_delete(log, db):
    fill(log, 3)
    con = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="safety_audit is append-only"):
        con.execute("UPDATE safety_audit SET reason = 'nothing happened' WHERE seq = 2")
    with pytest.raises(sqlite3.IntegrityError, match="safety_audit is append-only"):
        con.execute("DELETE FROM safety_audit WHERE seq = 2")
    con.close()
    assert log.verify() is None


@pytest.mark.parametrize(("statements", "seq", "problem", "detail"), [
    (["UPDATE safety_audit SET reason = 'nothing happened' WHERE seq = 5"], 5,
     BreakProblem.HASH_MISMATCH, r"stored hash [0-9a-f]{16}… but the fields hash to [0-9a-f]{16}…"),
    (["UPDATE safety_audit SET inputs = '{\"i\":99}' WHERE seq = 7"], 7, BreakProblem.HASH_MISMATCH, "stored hash"),
    (["UPDATE safety_audit SET t_us = t_us + 1 WHERE seq = 3"], 3, BreakProblem.HASH_MISMATCH, "stored hash"),
    (["UPDATE safety_audit SET t_us = 'yesterday' WHERE seq = 4"], 4, BreakProblem.HASH_MISMATCH,
     "field t_us holds 'yesterday', not an integer"),
    # The first byte always changes (a hash that starts with ff, 1 in 256, becomes 00): the
    # record's time is in its hash, so a fixed 'ff' left one run in 256 untampered.
    (["UPDATE safety_audit SET hash = CASE WHEN substr(hash, 1, 2) = 'ff' THEN '00' ELSE 'ff' END"
      " || substr(hash, 3) WHERE seq = 10"], 10, BreakProblem.HASH_MISMATCH, "stored hash (ff|00)"),
    (["DELETE FROM safety_audit WHERE seq = 6"], 6, BreakProblem.SEQ_GAP,
     "record 6 is missing; the next record is 7"),
    (["DELETE FROM safety_audit WHERE seq IN (1, 2)"], 1, BreakProblem.SEQ_GAP,
     "records 1 to 2 are missing; the next record is 3"),
    (["UPDATE safety_audit SET prev_hash = hash WHERE seq = 1"], 1, BreakProblem.PREV_HASH_MISMATCH,
     r"of the first record is not the genesis hash \(64 zeros\)"),
], ids=["reason", "inputs", "time", "type", "hash", "deleted", "deleted-first", "genesis"])
def test_verify_names_the_first_broken_record(log, db, statements, seq, problem, detail):
    fill(log, 10)
    tamper(db, *statements)
    broken = log.verify()
    assert isinstance(broken, AuditBreak)
    assert (broken.seq, broken.problem) == (seq, problem)
    assert re.search(detail, broken.detail), broken.detail


def test_a_record_rewritten_with_a_fresh_hash_breaks_the_next_record(log, db):
    fill(log, 8)
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM safety_audit WHERE seq = 4").fetchone())
    con.close()
    row["reason"] = "the robot was stopped"
    tamper(db, f"UPDATE safety_audit SET reason = '{row['reason']}', hash = '{auditor_hash(row)}' WHERE seq = 4")
    broken = log.verify()
    assert broken.seq == 5 and broken.problem is BreakProblem.PREV_HASH_MISMATCH
    assert str(broken).startswith("record 5: prev hash mismatch: prev_hash ")
    assert "is not the hash" in broken.detail and "of record 4" in broken.detail


def test_verify_only_up_to_a_seq_ignores_later_records(log, db):
    fill(log, 10)
    tamper(db, "UPDATE safety_audit SET reason = 'x' WHERE seq = 9")
    assert log.verify(upto_seq=8) is None
    assert log.verify(upto_seq=9).seq == 9


def test_verify_across_chunks_finds_a_break_in_a_later_chunk(log, db):
    fill(log, 25)
    tamper(db, "UPDATE safety_audit SET actor = 'nobody' WHERE seq = 23")
    assert log.verify(chunk=10).seq == 23


# -- durability across a crash ------------------------------------------------------------------

def test_a_durable_record_survives_the_process_exiting_right_after(db):
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(REPO)!r})
        from safety.audit import AuditLog
        log = AuditLog({f"sqlite:///{db}"!r})
        for i in range(40):
            log.append("mode_change", "monitor", {{"i": i}}, "queued before")
        record = log.append("gate_answer", "ana", {{"verdict": "accepted"}}, "accepted", durable=True)
        print(record.seq, record.hash, flush=True)
        os._exit(0)   # no close, no flush, no atexit: as if the process died here
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    seq, digest = out.stdout.split()
    assert int(seq) == 41
    reader = AuditLog(f"sqlite:///{db}", read_only=True)
    head = reader.head()
    assert (head.seq, head.hash, head.kind) == (41, digest, "gate_answer")
    assert reader.verify() is None
    reader.close()


# -- a stuck writer -----------------------------------------------------------------------------

def test_a_full_queue_drops_without_blocking_and_records_the_gap_when_the_writer_recovers(db):
    audit = AuditLog(f"sqlite:///{db}", queue_max=5, busy_timeout_s=0.05)
    audit.append("mode_change", "monitor", {"i": -1}, "before", durable=True)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the writer cannot commit
    try:
        for i in range(20):
            assert audit.append("mode_change", "monitor", {"i": i}, "while stuck") is None
        with pytest.raises(AuditError, match=r"audit queue full \(5 records; writer: .*\); "
                                             r"record 'gate_answer' not queued"):
            audit.append("gate_answer", "ana", {}, "accepted", durable=True)
        status = audit.status()
        assert status.queued == 5 and status.dropped_total == 16
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert audit.flush(10.0)
    audit.append("mode_change", "monitor", {"i": 100}, "after")
    assert audit.flush(10.0)
    records = audit.tail(100)
    assert [r.kind for r in records] == ["mode_change"] * 6 + ["audit_gap", "mode_change"]
    gap = records[6]
    assert gap.actor == "audit" and gap.inputs["dropped"] == 16
    assert gap.inputs["kinds"] == {"mode_change": 15, "gate_answer": 1}
    assert gap.inputs["first_t"] <= gap.inputs["last_t"]
    assert gap.reason.startswith("16 audit records were dropped because the audit queue was full")
    assert [r.inputs["i"] for r in records if r.kind == "mode_change"] == [-1, 0, 1, 2, 3, 4, 100]
    assert audit.verify() is None
    assert audit.status().gaps_recorded == 1 and audit.status().healthy
    audit.close()


def test_a_gap_is_recorded_even_when_nothing_is_appended_after_the_loss(db):
    audit = AuditLog(f"sqlite:///{db}", queue_max=2, busy_timeout_s=0.05)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    for i in range(5):
        audit.append("mode_change", "monitor", {"i": i}, "while stuck")
    blocker.execute("ROLLBACK")
    blocker.close()
    assert audit.close() == 0
    reader = AuditLog(f"sqlite:///{db}", read_only=True)
    assert [r.kind for r in reader.tail(10)] == ["mode_change", "mode_change", "audit_gap"]
    assert reader.tail(1)[0].inputs["dropped"] == 3
    reader.close()


def test_a_durable_record_that_cannot_commit_in_time_raises_and_is_committed_later(db):
    audit = AuditLog(f"sqlite:///{db}", busy_timeout_s=0.05)
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    with pytest.raises(AuditCommitTimeout, match=r"audit record 'reset' was not committed within 0.2 s "
                                                 r"\(writer: .*\); it stays queued and may still be committed"):
        audit.append("reset", "sam", {}, "reset requested", durable=True, timeout_s=0.2)
    deadline = time.monotonic() + 30.0
    while audit.status().last_error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not audit.status().healthy and "database is locked" in audit.status().last_error
    blocker.execute("ROLLBACK")
    blocker.close()
    assert audit.flush(10.0)
    assert audit.head().kind == "reset" and audit.status().healthy
    audit.close()


# -- input checks -------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (("Mode Change", "monitor", {}, "r"), r"audit kind 'Mode Change' is not a lower-case identifier of 1 to 64 characters"),
    (("audit_gap", "monitor", {}, "r"), r"audit kind 'audit_gap' is written by the audit log itself"),
    (("reset", "", {}, "r"), r"audit actor must be 1 to 64 characters, got ''"),
    (("reset", "sam", [1, 2], "r"), r"audit inputs must be a mapping \(a JSON object\), got list"),
    (("reset", "sam", {}, None), r"audit reason must be text, got NoneType"),
])
def test_bad_records_are_refused_with_the_field_named(log, args, message):
    with pytest.raises(AuditError, match=message):
        log.append(*args)
    assert issubclass(AuditError, SafetyError)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"after_seq": -1}, r"after_seq must be an integer >= 0, got -1"),
    ({"after_seq": "x"}, r"after_seq must be an integer >= 0, got 'x'"),
    ({"limit": 0}, r"limit must be an integer from 1 to 1000, got 0"),
    ({"limit": 5000}, r"limit must be an integer from 1 to 1000, got 5000"),
    ({"kind": 3}, r"kind must be text, got 3"),
])
def test_bad_page_queries_name_the_parameter(log, kwargs, message):
    with pytest.raises(AuditError, match=message):
        log.page(**kwargs)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"queue_max": 0}, r"queue_max must be an integer >= 1, got 0"),
    ({"durable_timeout_s": 0}, r"durable_timeout_s must be > 0 s, got 0"),
])
def test_bad_settings_are_refused(db, kwargs, message):
    with pytest.raises(AuditError, match=message):
        AuditLog(f"sqlite:///{db}", **kwargs)


def test_closed_and_read_only_logs_refuse_appends(db):
    audit = AuditLog(f"sqlite:///{db}")
    audit.close()
    with pytest.raises(AuditError, match=r"the audit log is closed; record 'reset' not queued"):
        audit.append("reset", "sam", {}, "r")
    reader = AuditLog(f"sqlite:///{db}", read_only=True)
    with pytest.raises(AuditError, match=r"the audit log is open read-only"):
        reader.append("reset", "sam", {}, "r")
    reader.close()
    with pytest.raises(AuditError, match=r"no audit database at .*missing.sqlite"):
        AuditLog(f"sqlite:///{db.parent / 'missing.sqlite'}", read_only=True)


# -- paging -------------------------------------------------------------------------------------

def test_page_walks_the_log_and_filters_by_kind(log):
    for i in range(7):
        log.append("gate_answer" if i % 3 == 0 else "mode_change", "monitor", {"i": i}, f"r{i}")
    assert log.flush(10.0)
    first = log.page(after_seq=0, limit=3)
    assert [e["seq"] for e in first["events"]] == [1, 2, 3]
    assert first["next_after_seq"] == 3 and first["head_seq"] == 7
    event = first["events"][0]
    assert set(event) == {"seq", "t", "stamp_ns", "kind", "actor", "inputs", "reason", "prev_hash", "hash"}
    assert event["inputs"] == {"i": 0} and isinstance(event["t"], float)
    json.dumps(first)  # JSON-ready
    last = log.page(after_seq="6", limit="3")
    assert [e["seq"] for e in last["events"]] == [7] and last["next_after_seq"] is None
    gates = log.page(kind="gate_answer")
    assert [e["inputs"]["i"] for e in gates["events"]] == [0, 3, 6]


def test_in_memory_log_works_across_threads():
    audit = AuditLog("sqlite://")
    audit.append("reset", "sam", {}, "r", durable=True)
    assert audit.page()["head_seq"] == 1 and audit.verify() is None
    assert audit.durability() == {"journal_mode": "memory", "synchronous": "full"}
    audit.close()


# -- the CLI ------------------------------------------------------------------------------------

def test_cli_verify_reports_an_intact_chain_and_then_names_the_broken_record(log, db, capsys):
    fill(log, 12)
    assert xrcell(["audit", "verify", "--db", f"sqlite:///{db}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ok: 12 records, chain intact"
    assert out[1] == f"head: seq 12 hash {log.head().hash}"
    tamper(db, "UPDATE safety_audit SET reason = 'x' WHERE seq = 7")
    assert xrcell(["audit", "verify", "--db", f"sqlite:///{db}"]) == 1
    assert capsys.readouterr().out.startswith("broken: record 7: hash mismatch: stored hash ")


def test_cli_tail_prints_the_newest_records(log, db, capsys):
    fill(log, 5)
    assert xrcell(["audit", "tail", "-n", "2", "--db", f"sqlite:///{db}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[:3][0] == "4" and "mode_change" in lines[0] and "cycle 3" in lines[0]
    assert lines[1].split()[0] == "5" and '{"i": 4, "mode": "reduced_speed"}' in lines[1]


def test_cli_errors_name_the_problem(db, capsys):
    assert xrcell(["audit", "verify", "--db", f"sqlite:///{db}"]) == 2
    assert "xrcell: error: no audit database at" in capsys.readouterr().err
    AuditLog(f"sqlite:///{db}").close()
    assert xrcell(["audit", "tail", "-n", "0", "--db", f"sqlite:///{db}"]) == 2
    assert "xrcell: error: n must be an integer >= 1, got 0" in capsys.readouterr().err
    assert xrcell(["audit", "verify", "--db", f"sqlite:///{db}"]) == 0
    assert capsys.readouterr().out == "ok: 0 records, chain intact\n"


def test_the_cli_is_a_separate_process_that_sees_a_running_log(log, db):
    fill(log, 3)
    out = subprocess.run([sys.executable, "-m", "xr_server.cli", "audit", "verify", "--db", f"sqlite:///{db}"],
                         capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok: 3 records, chain intact")
