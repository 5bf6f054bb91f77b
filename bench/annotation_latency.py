"""Annotation latency: an expert's mark -> the worker's HMI, over a real XR server on 127.0.0.1.

Issue 6: annotations "are stored before they are acknowledged, broadcast to the session ... and
appear on the worker's HMI within 100 ms on a LAN". The bench starts a real XR server in this
process (`xr_server.app.create_app` served by Werkzeug in a thread, as `xrcell demo` runs it)
with a SQLite annotation store in a temporary directory (each annotation is committed before it
is broadcast), signs in a worker and an expert with real python-socketio clients (WebSocket
transport), opens a session, and has the expert place `--count` arrows one after another, each
after the previous one reached the worker. Latency = the worker client's receipt of the
``annotation`` event - the expert client's emit, both on this process's monotonic clock; it
includes the anchor ray cast, the database commit and both WebSocket hops. A plant LAN adds its
round trip on top.

Prints progress to stderr and one JSON object on its last line:
``{"count": n, "latency_ms": {"p50": f, "p95": f, "p99": f, "max": f}, "target_ms": 100,
"target_met": bool, "load_avg_1min": [before, after]}``.

Usage: PYTHONPATH=$PWD .venv/bin/python bench/annotation_latency.py [--count 200]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-pw-0123456789"


def log(message: str) -> None:
    print(f"[annotation_latency] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    import argon2
    import requests
    import socketio

    from content.storage import AnnotationStore, UserStore
    from tests.xr_server.doubles import TWIN, FakeCameraViews
    from xr_server.app import create_app
    from xr_server.serving import serve_in_thread

    db = f"sqlite:///{Path(tempfile.mkdtemp(prefix='annotation_latency-')) / 'xrcell.sqlite'}"
    store = UserStore(db, hasher=argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    store.add("worker", PASSWORD, ["worker"])
    store.add("expert", PASSWORD, ["expert"])
    app, sio = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(), user_store=store,
                          secret_key="bench-" + "0" * 58, cell_name="lab", twin_rate_hz=30.0,
                          annotation_store=AnnotationStore(db))
    base = serve_in_thread(app, sio, name="annotation-latency")
    load_before = os.getloadavg()[0]

    def client(name: str) -> socketio.Client:
        token = requests.post(f"{base}/api/login", json={"username": name, "password": PASSWORD},
                              timeout=10).json()["token"]
        c = socketio.Client(reconnection=False)
        c.connect(base, namespaces=["/xr"], auth={"token": token}, transports=["websocket"], wait_timeout=10)
        return c

    worker, expert = client("worker"), client("expert")
    arrived: dict[str, int] = {}
    got = threading.Condition()

    @worker.on("annotation", namespace="/xr")
    def on_annotation(message) -> None:
        now = time.monotonic_ns()
        with got:
            arrived.setdefault(message.get("ref", ""), now)
            got.notify_all()

    session = worker.call("session_create", {"cell": "lab"}, namespace="/xr", timeout=10)["session"]
    expert.call("session_join", {"session": session, "role": "expert"}, namespace="/xr", timeout=10)
    latencies: list[float] = []
    for i in range(args.count):
        ref = f"a{i}"
        sent = time.monotonic_ns()
        expert.emit("annotation_create", {"session": session, "kind": "arrow", "ref": ref,
                                          "points": [[0.3, 0.4], [0.5, 0.6]]}, namespace="/xr")
        with got:
            if not got.wait_for(lambda: ref in arrived, timeout=10):
                raise SystemExit(f"annotation {ref} did not reach the worker within 10 s")
        latencies.append((arrived[ref] - sent) / 1e6)
        if (i + 1) % 50 == 0:
            log(f"{i + 1}/{args.count}: p50 so far {np.median(latencies):.1f} ms")
    for c in (worker, expert):
        threading.Thread(target=c.disconnect, daemon=True).start()
    app.xrcell_stop()
    q = {f"p{p}": round(float(np.percentile(latencies, p)), 2) for p in (50, 95, 99)}
    print(json.dumps({"count": len(latencies), "latency_ms": {**q, "max": round(max(latencies), 2)},
                      "transport": "python-socketio over WebSocket, 127.0.0.1; SQLite commit before the broadcast",
                      "target_ms": 100, "target_met": q["p99"] <= 100.0,
                      "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}))
    os._exit(0)  # Werkzeug's server thread and socketio's threads are daemons; do not wait for them


if __name__ == "__main__":
    main()
