"""A real XR server on 127.0.0.1 (Werkzeug + simple-websocket in a thread, as `xrcell demo` runs
it) and real python-socketio clients for it."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests
import socketio

from content.storage import AnnotationStore
from tests.xr_server.doubles import SECRET, TWIN, FakeCameraViews
from xr_server.app import create_app
from xr_server.serving import serve_in_thread

PASSWORD = "pw-0123456789"
#: username -> roles of the accounts of the live server.
USERS = {"wendy": ["worker"], "walt": ["worker"], "eve": ["expert"], "emil": ["expert"],
         "sam": ["supervisor"], "otto": ["operator"], "ada": ["admin"]}


@dataclass
class LiveServer:
    base: str
    app: object
    store: object
    annotations: AnnotationStore

    def token(self, username: str) -> str:
        response = requests.post(f"{self.base}/api/login", json={"username": username, "password": PASSWORD},
                                 timeout=10)
        response.raise_for_status()
        return response.json()["token"]

    def client(self, username: str) -> XrClient:
        return XrClient.connect(self.base, self.token(username))


def start_live_server(store, annotations: AnnotationStore, cell: str = "lab", twin_source=lambda: TWIN,
                      **sources) -> LiveServer:
    """`sources`: more `create_app` inputs, e.g. ``robot_source`` for the annotation anchors."""
    app, sio = create_app(twin_source=twin_source, camera_views=FakeCameraViews(), user_store=store,
                          secret_key=SECRET, cell_name=cell, twin_rate_hz=5.0, annotation_store=annotations,
                          **sources)
    base = serve_in_thread(app, sio, name="xr-server-live")
    return LiveServer(base, app, store, annotations)


def accounts_store(db: str, users: dict[str, list[str]] | None = None):
    """A `UserStore` at `db` (an SQLAlchemy URL) holding `users` (username -> roles; the `USERS`
    accounts by default), each with password `PASSWORD`; argon2 at its cheapest, this is a test."""
    import argon2

    from content.storage import UserStore

    store = UserStore(db, hasher=argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    for name, roles in (USERS if users is None else users).items():
        store.add(name, PASSWORD, roles)
    return store


def start_live_server_with_accounts(directory, cell: str = "lab", twin_source=lambda: TWIN,
                                    **sources) -> LiveServer:
    """`start_live_server` on a store in `directory`/xrcell.sqlite holding the `USERS` accounts
    (`accounts_store`), annotations in the same database."""
    db = f"sqlite:///{directory / 'xrcell.sqlite'}"
    return start_live_server(accounts_store(db), AnnotationStore(db), cell, twin_source, **sources)


@dataclass
class XrClient:
    """A python-socketio client on ``/xr`` that records every event it receives (but twin_state)."""

    sio: socketio.Client
    events: list[tuple[str, object]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def connect(cls, base: str, token: str) -> XrClient:
        client = cls(socketio.Client(reconnection=False))

        @client.sio.on("*", namespace="/xr")
        def record(event, *args):
            if event != "twin_state":
                with client.lock:
                    client.events.append((event, args[0] if len(args) == 1 else list(args)))

        client.sio.connect(base, namespaces=["/xr"], auth={"token": token}, transports=["websocket"],
                           wait_timeout=10)
        return client

    def call(self, event: str, *args, timeout: float = 15):
        """Emit and wait for the acknowledgement."""
        return self.sio.call(event, args[0] if len(args) == 1 else tuple(args), namespace="/xr", timeout=timeout) \
            if args else self.sio.call(event, namespace="/xr", timeout=timeout)

    def emit(self, event: str, *args) -> None:
        self.sio.emit(event, args[0] if len(args) == 1 else tuple(args), namespace="/xr")

    def received(self, name: str) -> list:
        with self.lock:
            return [payload for event, payload in self.events if event == name]

    def wait_for(self, name: str, predicate=lambda payload: True, timeout_s: float = 10.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for payload in self.received(name):
                if predicate(payload):
                    return payload
            time.sleep(0.02)
        raise AssertionError(f"no {name!r} event matching the condition within {timeout_s} s: "
                             f"got {self.received(name)}")

    def close(self) -> None:
        self.sio.disconnect()
