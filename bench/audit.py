"""Audit log figures: append cost and throughput (non-durable and durable), verify time.

Usage: ``.venv/bin/python bench/audit.py [--records 100000] [--durable 1000]``. Uses a fresh
SQLite file (WAL, synchronous=FULL) in a temporary directory on the same disk as /tmp. Prints
one JSON object on its last line:

    {"records": int,
     "append_us": {"p50": f, "p99": f, "max": f},     # caller-side cost of append(), back to back
     "append_paced_us": {"p50": f, "p99": f, "max": f},  # the same, one append per ms (a busy monitor)
     "switch_interval_ms": f,                           # sys.getswitchinterval(): bounds GIL waits
     "append_throughput_per_s": f,                      # appended and committed, end to end
     "durable_appends": int,
     "durable_ms": {"p50": f, "p99": f},                # append(..., durable=True) latency
     "durable_throughput_per_s": f,                     # one thread, one record per commit
     "verify_s": f, "verify_records_per_s": f,          # verify() over all records
     "page_ms": f}                                      # page(after_seq=records/2, limit=100)

append() holds no lock that the writer holds while it commits, but it shares the GIL with the
writer thread (and every other Python thread): its worst case is a GIL hand-over, up to the
interpreter's switch interval, plus whatever the OS scheduler adds on a loaded machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safety.audit import AuditLog  # noqa: E402


def _pct(values_s: list[float], scale: float) -> dict[str, float]:
    arr = np.asarray(values_s) * scale
    return {"p50": round(float(np.percentile(arr, 50)), 2), "p99": round(float(np.percentile(arr, 99)), 2),
            "max": round(float(arr.max()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--durable", type=int, default=1000)
    args = parser.parse_args()
    inputs = {"old": "full_speed", "new": "reduced_speed", "separation_m": 1.2345, "s_p_m": 1.1,
              "speed_scale": 0.62, "person": "p3", "body_part": "left_elbow-left_wrist", "link": "panda_link7"}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        log = AuditLog(url, queue_max=args.records + 10)
        costs = []
        t0 = time.perf_counter()
        for i in range(args.records):
            a = time.perf_counter()
            log.append("mode_change", "monitor", inputs, "a person is near: reduced speed keeps S_p")
            costs.append(time.perf_counter() - a)
        if not log.flush(600):
            raise SystemExit("audit bench: the writer did not catch up within 600 s")
        total_s = time.perf_counter() - t0
        assert log.status().dropped_total == 0

        paced = []
        for i in range(2000):
            a = time.perf_counter()
            log.append("mode_change", "monitor", inputs, "paced")
            paced.append(time.perf_counter() - a)
            time.sleep(0.001)
        assert log.flush(60)

        durable = []
        t1 = time.perf_counter()
        for i in range(args.durable):
            a = time.perf_counter()
            log.append("gate_answer", "ana", {"verdict": "accepted", "i": i}, "forwarded", durable=True)
            durable.append(time.perf_counter() - a)
        durable_s = time.perf_counter() - t1

        t2 = time.perf_counter()
        broken = log.verify()
        verify_s = time.perf_counter() - t2
        if broken is not None:
            raise SystemExit(f"audit bench: chain broken: {broken}")
        n = args.records + len(paced) + args.durable
        t3 = time.perf_counter()
        log.page(after_seq=n // 2, limit=100)
        page_s = time.perf_counter() - t3
        log.close()
    print(json.dumps({
        "records": args.records,
        "append_us": _pct(costs, 1e6),
        "append_throughput_per_s": round(args.records / total_s),
        "append_paced_us": _pct(paced, 1e6),
        "switch_interval_ms": sys.getswitchinterval() * 1e3,
        "durable_appends": args.durable,
        "durable_ms": {k: v for k, v in _pct(durable, 1e3).items() if k != "max"},
        "durable_throughput_per_s": round(args.durable / durable_s, 1),
        "verify_s": round(verify_s, 3), "verify_records_per_s": round(n / verify_s),
        "page_ms": round(page_s * 1e3, 2),
    }))


if __name__ == "__main__":
    main()
