"""Per-client twin queues: a slow client keeps only the newest `twin_state` and drops the stale
ones (counted), never an event, and slows nobody else.

The queue itself is tested directly; the server over real sockets on 127.0.0.1, with a raw
Socket.IO client that stops reading its socket (a browser on bad Wi-Fi) next to a python-socketio
client that reads everything.
"""

import json
import socket
import threading
import time

import pytest
import requests
import socketio
from engineio import packet as eio_packet
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Ping, Request, TextMessage

from tests import polling
from tests.xr_server.doubles import SECRET, FakeCameraViews
from tests.xr_server.live import PASSWORD
from xr_server.app import create_app
from xr_server.serving import serve_in_thread
from xr_server.twin_queue import LatestTwinQueue, TwinSendQueues

RATE_HZ = 30.0
#: Padding of every twin state (4 KiB, a twin with a few people and a path preview).
PAD = "x" * 4096


def message(data: str) -> eio_packet.Packet:
    return eio_packet.Packet(eio_packet.MESSAGE, data)


# ------------------------------------------------------------------------------- the queue
def test_the_queue_keeps_the_newest_twin_state_after_the_events_before_it():
    queues = TwinSendQueues("/xr")
    q = LatestTwinQueue(queues.prefix, queues)
    q.put(message('2/xr,["twin_state",{"seq":1}]'))
    q.put(message('2/xr,["annotation",{"n":1}]'))
    q.put(message('2/xr,["twin_state",{"seq":2}]'))
    q.put(eio_packet.Packet(eio_packet.PING))
    q.put(message('2/xr,["twin_state",{"seq":3}]'))
    q.put(message('2/xr,["session_state",{"n":2}]'))
    q.put(message('2["twin_state",{"other namespace":true}]'))
    sent = []
    while not q.empty():
        sent.append(q.get().data)
        q.task_done()
    assert sent == ['2/xr,["annotation",{"n":1}]', None, '2/xr,["twin_state",{"seq":3}]',
                    '2/xr,["session_state",{"n":2}]', '2["twin_state",{"other namespace":true}]']
    assert q.dropped == 2 and queues.dropped_total() == 2
    assert q.unfinished_tasks == 0  # so engine.io's close(wait=True) -> join() returns


def test_the_prefix_is_how_python_socketio_encodes_a_twin_state_on_the_namespace():
    encoded = socketio.packet.Packet(socketio.packet.EVENT, namespace="/xr",
                                     data=["twin_state", {"v": 1}]).encode()
    assert encoded.startswith(TwinSendQueues("/xr").prefix)
    assert not encoded.startswith(TwinSendQueues("/other").prefix)


def test_a_queue_read_as_fast_as_it_is_filled_drops_nothing():
    queues = TwinSendQueues("/xr")
    q = LatestTwinQueue(queues.prefix, queues)
    for seq in range(5):
        q.put(message(f'2/xr,["twin_state",{{"seq":{seq}}}]'))
        assert q.get().data.endswith(f'{{"seq":{seq}}}]')
    assert q.dropped == 0 and queues.dropped_total() == 0


def test_install_refuses_another_async_mode():
    class Eio:
        async_mode = "eventlet"

    class Server:
        eio = Eio()

    with pytest.raises(ValueError, match="twin send queues need async_mode 'threading', got 'eventlet'"):
        TwinSendQueues("/xr").install(Server())


# --------------------------------------------------------------------------- live server
class CountingTwin:
    """A twin source numbering its states (`seq`), padded to 4 KiB."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seq = 0

    def __call__(self) -> dict:
        with self.lock:
            self.seq += 1
            seq = self.seq
        return {"v": 1, "t": time.time(), "cell": "lab", "robot": None, "safety": None,
                "people": [], "cameras": [], "seq": seq, "pad": PAD}


class RawClient:
    """A Socket.IO v5 client on a real TCP socket (wsproto framing) that reads only when asked
    to, with a small receive buffer: between two `read_until` calls it is a stalled client."""

    def __init__(self, base: str, token: str):
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=f"{host}:{port}",
                                               target="/socket.io/?EIO=4&transport=websocket")))
        self.events: list[tuple[str, dict]] = []  # Socket.IO events on /xr, in order
        self._part = ""
        self.read_until(lambda text: text.startswith("0"))
        self.send("40/xr," + json.dumps({"token": token}))
        connected = self.read_until(lambda text: text.startswith("40/xr"))
        self.sid = json.loads(connected.removeprefix("40/xr,"))["sid"]

    def send(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(text)))

    def emit(self, event: str, data: dict) -> None:
        self.send("42/xr," + json.dumps([event, data]))

    def read_until(self, done, timeout_s: float = 30.0) -> str:
        """Read and record until a text message for which `done(text)` holds; return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            self.ws.receive_data(self.sock.recv(1 << 16) or None)
            for event in self.ws.events():
                if isinstance(event, Ping):
                    self.sock.sendall(self.ws.send(event.response()))
                elif isinstance(event, TextMessage):
                    self._part += event.data
                    if not event.message_finished:
                        continue
                    text, self._part = self._part, ""
                    if text == "2":
                        self.send("3")  # Engine.IO ping -> pong
                    elif text.startswith("42/xr,"):
                        name, data = json.loads(text.removeprefix("42/xr,"))
                        self.events.append((name, data))
                    if done(text):
                        return text
                elif not isinstance(event, AcceptConnection):
                    raise AssertionError(f"unexpected websocket event {event!r}")
        raise AssertionError(f"nothing expected arrived within {timeout_s} s")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory, make_store_module):
    twin = CountingTwin()
    store = make_store_module
    app, sio = create_app(twin_source=twin, camera_views=FakeCameraViews(), user_store=store,
                          secret_key=SECRET, cell_name="lab", twin_rate_hz=RATE_HZ)
    base = serve_in_thread(app, sio, name="xr-server-twin-queue")
    yield base, app, sio, twin
    app.xrcell_stop()


@pytest.fixture(scope="module")
def make_store_module(tmp_path_factory):
    import argon2

    from content.storage import UserStore

    db = f"sqlite:///{tmp_path_factory.mktemp('twin-queue') / 'users.sqlite'}"
    store = UserStore(db, hasher=argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    for name, roles in {"wendy": ["worker"], "eve": ["expert"], "fred": ["worker"]}.items():
        store.add(name, PASSWORD, roles)
    return store


def token(base: str, username: str) -> str:
    response = requests.post(f"{base}/api/login", json={"username": username, "password": PASSWORD},
                             timeout=10)
    response.raise_for_status()
    return response.json()["token"]


def fast_client(base: str, username: str, seqs: list) -> socketio.Client:
    client = socketio.Client(reconnection=False)
    client.on("twin_state", lambda state: seqs.append(state["seq"]), namespace="/xr")
    client.connect(base, namespaces=["/xr"], auth={"token": token(base, username)},
                   transports=["websocket"], wait_timeout=10)
    return client


def wait_for(condition, what: str) -> None:
    polling.wait_for(condition, what, timeout_s=30.0, interval_s=0.05)


def test_a_stalled_client_drops_stale_twin_states_keeps_its_events_and_slows_nobody(live):
    base, app, sio, twin = live
    queues = app.extensions["xrcell_twin_queues"]
    fast_seqs: list[int] = []
    fast = fast_client(base, "fred", fast_seqs)
    slow = RawClient(base, token(base, "wendy"))
    slow.emit("session_create", {"cell": "lab"})
    slow.read_until(lambda text: text.startswith('42/xr,["session_joined"'))
    try:
        # From here on the slow client reads nothing: its socket buffers fill, then its queue.
        stalled_at, fast_before = twin.seq, len(fast_seqs)
        wait_for(lambda: (queues.dropped(slow.sid) or 0) >= 30, what="30 drops for the stalled client")
        for n in range(5):  # events to the stalled client are queued, never dropped
            sio.emit("notice", {"n": n}, to=slow.sid, namespace="/xr")
        wait_for(lambda: (queues.dropped(slow.sid) or 0) >= 40, what="40 drops")
        produced = twin.seq - stalled_at
        eio_socket = sio.server.eio.sockets[sio.server.manager.eio_sid_from_sid(slow.sid, "/xr")]
        waiting = [p for p in list(eio_socket.queue.queue)
                   if isinstance(p.data, str) and p.data.startswith(queues.prefix)]
        assert len(waiting) <= 1  # the server holds one twin state for it, not a backlog

        # The fast client went on receiving (nearly) every state meanwhile.
        assert len(fast_seqs) - fast_before >= 0.5 * produced, (len(fast_seqs) - fast_before, produced)

        # The count shows in the session listing and in /metrics.
        expert = socketio.Client(reconnection=False)
        expert.connect(base, namespaces=["/xr"], auth={"token": token(base, "eve")},
                       transports=["websocket"], wait_timeout=10)
        listed = expert.call("session_list", {"cell": "lab"}, namespace="/xr", timeout=10)
        expert.disconnect()
        participants = listed["sessions"][0]["participants"]
        assert participants[0]["username"] == "wendy" and participants[0]["role"] == "worker"
        assert participants[0]["twin_states_dropped"] >= 40
        metrics = requests.get(f"{base}/metrics", timeout=10).text
        total = next(float(line.split()[1]) for line in metrics.splitlines()
                     if line.startswith("xrcell_twin_states_dropped_total "))
        assert total >= participants[0]["twin_states_dropped"]

        # Reading again: every event arrives, in order; the twin catches up to the newest state
        # after the few stale ones still in the socket buffers (not the hundreds produced).
        resumed_at, read_before = twin.seq, len(slow.events)
        slow.read_until(lambda text: text.startswith('42/xr,["twin_state"')
                        and json.loads(text[6:])[1]["seq"] >= resumed_at)
        stale = [data["seq"] for name, data in slow.events[read_before:-1] if name == "twin_state"]
        assert len(stale) <= 20, (len(stale), produced)
        notices = [data["n"] for name, data in slow.events if name == "notice"]
        assert notices == [0, 1, 2, 3, 4]
        seqs = [data["seq"] for name, data in slow.events if name == "twin_state"]
        assert seqs == sorted(set(seqs))
        assert len(seqs) + queues.dropped(slow.sid) <= twin.seq  # dropped ones never arrive
    finally:
        slow.close()
        fast.disconnect()


def test_a_client_that_reconnects_gets_the_current_state_at_once(live):
    base, _app, _sio, twin = live
    first: list[tuple[str, object]] = []
    client = socketio.Client(reconnection=False)
    client.on("*", lambda event, *args: first.append((event, args)), namespace="/xr")
    client.connect(base, namespaces=["/xr"], auth={"token": token(base, "fred")},
                   transports=["websocket"], wait_timeout=10)
    wait_for(lambda: first, what="the first event")
    client.disconnect()
    first.clear()
    time.sleep(0.5)  # the stream goes on while it is away
    away_until = twin.seq
    client.connect(base, namespaces=["/xr"], auth={"token": token(base, "fred")},
                   transports=["websocket"], wait_timeout=10)
    try:
        wait_for(lambda: first, what="the first event after the reconnect")
        event, args = first[0]
        assert event == "twin_state" and args[0]["seq"] >= away_until
    finally:
        client.disconnect()
