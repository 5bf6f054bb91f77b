"""Twin fan-out benchmark: N Socket.IO clients on one cell's 30 Hz `twin_state` stream.

The bench starts a real XR server in this process (`xr_server.app.create_app` served in a thread
by Werkzeug + simple-websocket, `async_mode="threading"`, as `xrcell demo` runs it) with a
scripted twin source: every call builds a fresh message with `xr_server.twin.build_twin_state`
from a Panda-like robot (7 joints, 8 link capsules, moving) and two tracked people with 33
keypoints each, so the twin's `t` (UNIX seconds, ms resolution) is stamped when the broadcast
builds it. N clients (real websockets on 127.0.0.1) log in through `POST /api/login` and connect
to `/xr`; they run in `--procs` separate client processes, so the server process's CPU is
measured on its own. `--client`:
- `socketio`: python-socketio `Client`s. python-engineio's client starts a new thread
  for every received message; on 2 cores these clients saturate the machine from 50 clients on
  and the figures then measure them, not the server (`client_bound`);
- `inline`: the same clients handling each message in their reader thread;
- `raw` (default): minimal Socket.IO v5 clients (wsproto framing, one selector thread per
  process, `t` read by regex): cheap enough that the server is the part measured.

For each N (default 50, 100, 200), after all clients are connected and a 2 s settling time,
over a `--window-s` window:
- `rate_hz_per_client`: messages delivered per client per second, mean over clients (and `min`);
- `produced_hz`: twin messages the broadcast built per second (the upper bound of the rate);
- `latency_ms`: client receipt time - `t` (same machine clock) over all messages, p50/p99/max;
- `cpu_percent`: the server process's CPU time / wall time (100 = one core of 2);
  `client_cpu_percent` the same for the client processes, `machine_cpu_percent` for all;
- `rss_mb`: the server process's resident memory at the end of the window.
- `dropped_per_client`: twin states the server dropped from the measured clients' send queues
  because a newer one superseded them (`xr_server.twin_queue`), mean over clients;
  `missed_per_client` = produced - delivered messages (mean over clients).
With `--slow-clients K`, K more clients connect from this process and then never read their
socket (a browser on bad Wi-Fi): the figures above are still those of the N reading clients,
and `slow_clients.dropped_per_client` / `slow_clients.queued_twin_states_max` show what the
server did for the stalled ones (dropped stale states; at most one waiting per client).
The server is shared by all N in turn (RSS may grow between them).

Prints progress to stderr and one JSON object on its last line. Target (issue 6): 200 clients
at 30 Hz with p99 <= 50 ms on this machine (`target_met`; null when not run at 200 or when the
clients, not the server, were the bottleneck).

Usage: PYTHONPATH=$PWD .venv/bin/python bench/twin_fanout.py [--clients 50 100 200]
       [--window-s 10] [--procs 2] [--client raw|socketio|inline] [--slow-clients K]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing as mp
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "bench-pw-0123456789"
RATE_HZ = 30.0


def log(message: str) -> None:
    print(f"[twin_fanout] {message}", file=sys.stderr, flush=True)


def scripted_twin(counter: list[int]):
    """A twin source: a Panda-like robot swinging joint 1 and two people walking, each call
    building a fresh `twin_state` stamped now; `counter[0]` counts the calls."""
    from robot_bridge.types import ControllerMode, RobotState
    from safety.decision import SafetyMode, SafetyState
    from tests.safety.fakes import snapshot, standing_person
    from xr_server.twin import build_twin_state

    names = tuple(f"panda_joint{i}" for i in range(1, 8))
    heights = np.array([0.0, 0.333, 0.333, 0.649, 0.649, 1.033, 1.033, 1.107, 1.21])
    radii = np.array([0.09, 0.08, 0.08, 0.07, 0.07, 0.06, 0.06, 0.05])

    def source() -> dict:
        counter[0] += 1
        now = time.monotonic_ns()
        phase = time.time() % 10.0 / 10.0 * 2 * math.pi
        q = np.array([math.sin(phase), -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
        reach = np.linspace(0.0, 0.35, len(heights))
        points = np.column_stack([reach * math.cos(q[0]), reach * math.sin(q[0]), heights])
        segments = np.stack([points[:-1], points[1:]], axis=1)
        robot = RobotState(
            stamp_ns=now, joint_names=names, position=q, velocity=np.full(7, 0.3),
            tcp_position=points[-1], tcp_velocity_mps=np.array([0.2, 0.1, 0.0]),
            link_names=tuple(f"panda_link{i}" for i in range(8)), link_segments=segments,
            link_radii_m=radii, link_speeds_mps=np.linspace(0.0, 0.25, 8), speed_scale=0.6,
            mode=ControllerMode.EXECUTING, healthy=True, safety_seq=0, safety_applied_ns=0)
        x = 1.6 + 0.4 * math.sin(phase)
        walkers = [standing_person(x, 0.3), standing_person(2.5, -0.8 + 0.2 * math.cos(phase))]
        people = snapshot(now, walkers, velocity=(0.4, 0.0, 0.0))
        safety = SafetyState(now, SafetyMode.REDUCED_SPEED, 0.6, x - 0.4, None, None,
                             "reduced speed: person p1 within the protective separation distance")
        return build_twin_state("bench", robot, safety, people)
    return source


def start_server(twin_source) -> tuple[str, object, object]:
    """Start the XR server in a daemon thread; return its base URL once /healthz answers, the
    app and the Socket.IO server."""
    import tempfile

    import argon2

    from content.storage import UserStore
    from tests.xr_server.doubles import FakeCameraViews
    from xr_server.app import create_app
    from xr_server.serving import serve_in_thread

    db = Path(tempfile.mkdtemp(prefix="twin_fanout-")) / "users.sqlite"
    cheap = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    store = UserStore(f"sqlite:///{db}", hasher=cheap)
    store.add("bench", PASSWORD, ["worker"])
    app, sio = create_app(twin_source=twin_source, camera_views=FakeCameraViews(), user_store=store,
                          secret_key="bench-" + "0" * 58, cell_name="bench", twin_rate_hz=RATE_HZ)
    return serve_in_thread(app, sio), app, sio


def socketio_clients(base: str, tokens: list[str], records: list, inline: bool) -> list:
    """python-socketio clients (a reader thread each). `inline`: handle each message in the
    reader thread; python-engineio's client otherwise starts one new thread per message."""
    import socketio

    clients = []
    for token, rec in zip(tokens, records):
        client = socketio.Client(reconnection=False)
        client.on("twin_state", lambda m, rec=rec: rec.append((time.time(), m["t"])),
                  namespace="/xr")
        client.connect(base, namespaces=["/xr"], auth={"token": token}, transports=["websocket"],
                       wait_timeout=30)
        if inline:
            client.eio.start_background_task = lambda fn, *a, **kw: fn(*a, **kw)  # type: ignore
        clients.append(client)
    return clients


def raw_clients(base: str, tokens: list[str], records: list, stop: threading.Event) -> None:
    """Minimal Socket.IO v5 clients (wsproto framing, one selector thread for all): open, connect
    to /xr with the token, answer pings, read `t` of each twin_state by regex (no full JSON)."""
    import re
    import selectors

    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Ping, Request, TextMessage

    host, port = base.removeprefix("http://").split(":")
    stamp = re.compile(r'^42/xr,\["twin_state",\{"v":[^,]*,"t":([0-9.]+)')
    sel, connected = selectors.DefaultSelector(), [0]
    for token, rec in zip(tokens, records):
        sock = socket.create_connection((host, int(port)))
        ws = WSConnection(ConnectionType.CLIENT)
        target = "/socket.io/?EIO=4&transport=websocket"
        sock.sendall(ws.send(Request(host=f"{host}:{port}", target=target)))
        sel.register(sock, selectors.EVENT_READ, (ws, token, rec, [""]))
    ready = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            for key, _ in sel.select(0.2):
                data = key.fileobj.recv(1 << 20)  # type: ignore[union-attr]
                now = time.time()
                ws, token, rec, part = key.data
                ws.receive_data(data or None)
                for event in ws.events():
                    out = None
                    if isinstance(event, Ping):
                        out = event.response()
                    elif isinstance(event, TextMessage):
                        part[0] += event.data
                        if not event.message_finished:
                            continue
                        msg, part[0] = part[0], ""
                        if (m := stamp.match(msg)) is not None:
                            rec.append((now, float(m.group(1))))
                        elif msg.startswith("0"):
                            out = TextMessage("40/xr," + json.dumps({"token": token}))
                        elif msg == "2":
                            out = TextMessage("3")
                        elif msg.startswith("40/xr"):
                            connected[0] += 1
                            if connected[0] == len(tokens):
                                ready.set()
                        elif msg.startswith("44/xr"):
                            raise RuntimeError(f"connection refused: {msg}")
                    elif not isinstance(event, AcceptConnection):
                        raise RuntimeError(f"unexpected websocket event {event!r}")
                    if out is not None:
                        key.fileobj.sendall(ws.send(out))  # type: ignore[union-attr]

    threading.Thread(target=loop, daemon=True).start()
    if not ready.wait(120):
        raise RuntimeError(f"only {connected[0]} of {len(tokens)} raw clients connected in 120 s")


def stalled_clients(base: str, tokens: list[str]) -> list[tuple[socket.socket, str]]:
    """Connect one raw client per token to /xr (small receive buffer), then never read again;
    returns (socket, Socket.IO sid) pairs to close after the window."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import Request, TextMessage

    host, port = base.removeprefix("http://").split(":")
    stalled = []
    for token in tokens:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(ws.send(Request(host=f"{host}:{port}",
                                     target="/socket.io/?EIO=4&transport=websocket")))
        sid = None
        while sid is None:
            ws.receive_data(sock.recv(1 << 16) or None)
            for event in ws.events():
                if not isinstance(event, TextMessage):
                    continue
                if event.data.startswith("0"):
                    sock.sendall(ws.send(TextMessage("40/xr," + json.dumps({"token": token}))))
                elif event.data.startswith("40/xr"):
                    sid = json.loads(event.data.removeprefix("40/xr,"))["sid"]
        stalled.append((sock, sid))
    return stalled


def client_process(base: str, tokens: list[str], kind: str, ready, stop, results) -> None:
    """Connect one client per token, record (receipt UNIX time, t) of every twin_state until
    `stop` gives the window, then put (counts, latencies ms) within the window on `results`."""
    records: list[list[tuple[float, float]]] = [[] for _ in tokens]
    done = threading.Event()
    clients = raw_clients(base, tokens, records, done) if kind == "raw" else \
        socketio_clients(base, tokens, records, inline=kind == "inline")
    ready.put(len(tokens))
    window = stop.get()  # (start, end) UNIX seconds
    done.set()
    counts, latencies = [], []
    for rec in records:
        inside = [(r, t) for r, t in list(rec) if window[0] <= r < window[1]]
        counts.append(len(inside))
        latencies.extend((r - t) * 1000.0 for r, t in inside)
    results.put((counts, latencies))
    for client in clients or []:
        client.disconnect()


def drops(app, sio) -> dict[str, int]:
    """Socket.IO sid -> twin states dropped so far, for every client connected to /xr."""
    queues = app.extensions["xrcell_twin_queues"]
    sids = [sid for sid, _eio in sio.server.manager.get_participants("/xr", "cell:bench")]
    return {sid: queues.dropped(sid) or 0 for sid in sids}


def queued_twin_states(app, sio, sids: set[str]) -> list[int]:
    """Twin states waiting in the send queue of each of `sids` now."""
    prefix = app.extensions["xrcell_twin_queues"].prefix
    waiting = []
    for sid in sids:
        socket_ = sio.server.eio.sockets.get(sio.server.manager.eio_sid_from_sid(sid, "/xr"))
        if socket_ is not None:
            waiting.append(sum(isinstance(p.data, str) and p.data.startswith(prefix)
                               for p in list(socket_.queue.queue)))
    return waiting


def run(base: str, n: int, procs: int, window_s: float, kind: str, counter: list[int],
        app, sio, slow: int = 0) -> dict:
    import psutil
    import requests

    tokens = [requests.post(f"{base}/api/login", json={"username": "bench", "password": PASSWORD},
                            timeout=10).json()["token"] for _ in range(n + slow)]
    tokens, slow_tokens = tokens[:n], tokens[n:]
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    stops = [ctx.Queue() for _ in range(procs)]
    workers = [ctx.Process(target=client_process,
                           args=(base, tokens[i::procs], kind, ready, stops[i], results))
               for i in range(procs)]
    for w in workers:
        w.start()
    connected = sum(ready.get(timeout=300) for _ in workers)
    stalled = stalled_clients(base, slow_tokens)  # after the others: they do not answer pings
    slow_sids = {sid for _sock, sid in stalled}
    log(f"{connected} clients connected; settling 2 s, measuring {window_s} s")
    time.sleep(2.0)
    me = psutil.Process()
    kids = [psutil.Process(w.pid) for w in workers]
    psutil.cpu_percent()
    drops0 = drops(app, sio)
    start, produced0, cpu0 = time.time(), counter[0], sum(me.cpu_times()[:2])
    kids0 = sum(sum(k.cpu_times()[:2]) for k in kids)
    time.sleep(window_s)
    end, produced1, cpu1 = time.time(), counter[0], sum(me.cpu_times()[:2])
    kids1 = sum(sum(k.cpu_times()[:2]) for k in kids)
    machine = psutil.cpu_percent()
    rss_mb = me.memory_info().rss / 2**20
    drops1 = drops(app, sio)
    dropped = {sid: drops1[sid] - drops0.get(sid, 0) for sid in drops1}
    fast_drops = [d for sid, d in dropped.items() if sid not in slow_sids]
    slow_drops = [d for sid, d in dropped.items() if sid in slow_sids]
    waiting = queued_twin_states(app, sio, slow_sids)
    for sock, _sid in stalled:
        sock.close()
    for q in stops:
        q.put((start, end))
    counts: list[int] = []
    latencies: list[float] = []
    for _ in workers:
        c, lat = results.get(timeout=120)
        counts += c
        latencies += lat
    for w in workers:
        w.join(timeout=60)
    time.sleep(1.0)  # let the server see the disconnects before the next N
    wall = end - start
    rates = np.array(counts) / wall
    produced = produced1 - produced0
    lat = np.array(latencies) if latencies else np.array([math.nan])
    return {
        "clients": connected,
        "rate_hz_per_client": round(float(rates.mean()), 2),
        "rate_hz_per_client_min": round(float(rates.min()), 2),
        "produced_hz": round(produced / wall, 2),
        "missed_per_client": round(float(produced - np.mean(counts)), 1),
        "dropped_per_client": round(float(np.mean(fast_drops)), 1) if fast_drops else 0.0,
        "messages": len(latencies),
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 2),
                       "p99": round(float(np.percentile(lat, 99)), 2),
                       "max": round(float(lat.max()), 2)},
        "cpu_percent": round((cpu1 - cpu0) / wall * 100.0, 1),
        "client_cpu_percent": round((kids1 - kids0) / wall * 100.0, 1),
        "machine_cpu_percent": round(machine * psutil.cpu_count(), 1),
        "rss_mb": round(rss_mb, 1),
        "client_bound": (kids1 - kids0) / wall > 0.7 * min(procs, psutil.cpu_count() or 1),
        **({"slow_clients": {"clients": slow, "produced": produced,
                             "dropped_per_client": round(float(np.mean(slow_drops)), 1),
                             "queued_twin_states_max": max(waiting, default=0)}}
           if slow else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--slow-clients", type=int, default=0, metavar="K",
                        help="K more clients that connect and then never read their socket")
    parser.add_argument("--client", choices=["socketio", "inline", "raw"], default="raw",
                        help="python-socketio (stock / dispatch in the reader thread) or minimal")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access line per login
    counter = [0]
    source = scripted_twin(counter)
    size = len(json.dumps(source()).encode())
    base, app, sio = start_server(source)
    log(f"server at {base}; twin_state is {size} bytes of JSON")
    results = []
    for n in args.clients:
        log(f"N = {n}")
        result = run(base, n, args.procs, args.window_s, args.client, counter, app, sio,
                     args.slow_clients)
        log(json.dumps(result))
        results.append(result)
    at_200 = [r for r in results if r["clients"] >= 200]
    met = None if not at_200 or any(r["client_bound"] for r in at_200) else all(
        r["rate_hz_per_client_min"] >= 0.95 * RATE_HZ and r["latency_ms"]["p99"] <= 50.0 for r in at_200)
    print(json.dumps({"rate_hz": RATE_HZ, "message_bytes": size, "window_s": args.window_s,
                      "client_processes": args.procs, "client": args.client, "results": results,
                      "target": "200 clients at 30 Hz (min >= 28.5 Hz), p99 <= 50 ms",
                      "target_met": met}))


if __name__ == "__main__":
    main()
