"""Fixtures of the XR server tests."""

import threading

import argon2
import pytest

from content.storage import UserStore
from tests.xr_server.live import start_live_server_with_accounts


@pytest.fixture
def make_store(tmp_path):
    """``make_store(name=(password, roles), ...)``: a SQLite user store with Argon2 at test cost."""
    counter = iter(range(1000))

    def make(**users):
        store = UserStore(f"sqlite:///{tmp_path / f'users{next(counter)}.sqlite'}",
                          hasher=argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
        for name, (password, roles) in users.items():
            store.add(name, password, roles)
        return store
    return make


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """A live server with the `USERS` accounts (`start_live_server_with_accounts`), one per test
    module; a module whose server needs other inputs defines its own ``live``."""
    server = start_live_server_with_accounts(tmp_path_factory.mktemp("live"))
    yield server
    server.app.xrcell_stop()


@pytest.fixture
def clients(live):
    """``clients(username)``: a signed-in `XrClient` of the module's ``live`` server; every client
    opened closes after the test, in the background (Werkzeug never sends the close frame a client
    waits 3 s for, and the next test uses sessions of its own)."""
    opened = []

    def open_client(username):
        client = live.client(username)
        opened.append(client)
        return client
    yield open_client
    for client in opened:
        threading.Thread(target=client.close, daemon=True).start()
