"""Token hygiene and Socket.IO input checks: logout revokes on the server, removed users and
dropped roles take effect, live Socket.IO sessions end when their token expires or is revoked,
and every malformed client event is answered with an `error` event naming the reason."""

import time
from unittest import mock

import pytest

from content.errors import StorageError
from tests.xr_server.doubles import SECRET, TWIN, FakeCameraViews
from xr_server.app import COOKIE_NAME, create_app
from xr_server.auth import SessionGuard, TokenError, TokenSigner

DEADLINE_S = 5.0  # generous: the broadcast task checks the sessions every 0.25 s


def wait_until(condition):
    end = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def store(make_store):
    return make_store(ana=("s3cret", ["operator", "supervisor"]), bob=("b0b-pw", ["worker"]))


@pytest.fixture
def server(store):
    app, socketio = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(), user_store=store,
                               secret_key=SECRET, cell_name="lab", twin_rate_hz=20.0, session_refresh_s=1e-6)
    app.testing = True
    yield app, socketio
    app.xrcell_stop()


def login(app, username="ana", password="s3cret"):
    client = app.test_client()
    response = client.post("/api/login", json={"username": username, "password": password})
    assert response.status_code == 200
    return client, response.get_json()["token"]


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def errors(sio):
    """The `error` events received on /xr (also after the server disconnected the client, which
    `get_received` refuses to read), consumed."""
    received = [m for m in sio.queue if m["namespace"] == "/xr"]
    sio.queue[:] = [m for m in sio.queue if m["namespace"] != "/xr"]
    return [m["args"][0] for m in received if m["name"] == "error"]


# ------------------------------------------------------------------------------------- REST
def test_logout_revokes_the_token_on_the_server(server):
    app, _ = server
    client, token = login(app)
    response = client.post("/api/logout", headers=bearer(token))
    assert response.get_json() == {"ok": True, "revoked": True}
    assert f"{COOKIE_NAME}=;" in response.headers["Set-Cookie"]
    again = app.test_client().get("/api/me", headers=bearer(token))  # a copy of the token kept elsewhere
    assert again.status_code == 401 and again.get_json() == {"error": "token revoked"}


def test_logout_without_a_valid_token_only_clears_the_cookie(server):
    app, _ = server
    for headers in ({}, bearer("not-a-token")):
        response = app.test_client().post("/api/logout", headers=headers)
        assert response.status_code == 200 and response.get_json() == {"ok": True, "revoked": False}


def test_logout_when_the_store_cannot_revoke_is_503_and_keeps_the_cookie(server, store):
    app, _ = server
    client, token = login(app)
    with mock.patch.object(store, "revoke_token", side_effect=StorageError("disk full")):
        response = client.post("/api/logout", headers=bearer(token))
    assert response.status_code == 503
    assert response.get_json() == {"error": "cannot revoke the token: user store unavailable"}
    assert "Set-Cookie" not in response.headers
    assert client.get("/api/me").status_code == 200


def test_a_removed_user_is_refused_at_once(server, store):
    app, _ = server
    _, token = login(app, "bob", "b0b-pw")
    store.remove("bob")
    response = app.test_client().get("/api/me", headers=bearer(token))
    assert response.status_code == 401 and response.get_json() == {"error": "token of a removed user"}


def test_roles_the_user_lost_are_dropped_from_the_token(server, store):
    app, _ = server
    _, token = login(app)
    store.remove("ana")
    store.add("ana", "s3cret", ["supervisor", "worker"])
    assert app.test_client().get("/api/me", headers=bearer(token)).get_json()["roles"] == ["supervisor"]
    store.remove("ana")
    store.add("ana", "s3cret", ["worker"])
    response = app.test_client().get("/api/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json() == {"error": "token roles no longer held by 'ana'"}


def test_an_unavailable_store_fails_closed(server, store):
    app, _ = server
    _, token = login(app)
    with mock.patch.object(store, "list", side_effect=RuntimeError("database is locked")):
        response = app.test_client().get("/api/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.get_json() == {"error": "cannot check the token: user store unavailable"}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_revocation_reaches_another_server_process_within_the_refresh_period(store):
    signer = TokenSigner(SECRET)
    claims = signer.verify(signer.issue("ana", ["operator"]))
    clock = Clock()
    here, there = SessionGuard(store, 1.0, clock), SessionGuard(store, 1.0, clock)
    there.check(claims)  # loads its copy
    here.revoke(claims)
    with pytest.raises(TokenError, match="^token revoked$"):
        here.check(claims)  # at once in the process that revoked
    assert there.check(claims) == claims  # the other copy is still fresh
    clock.now += 1.0
    with pytest.raises(TokenError, match="^token revoked$"):
        there.check(claims)


def test_guard_refuses_an_expired_token_and_a_bad_refresh_period(store):
    signer = TokenSigner(SECRET, lifetime_s=60)
    claims = signer.verify(signer.issue("ana", ["operator"]))
    with mock.patch("time.time", return_value=claims.expires_at), \
            pytest.raises(TokenError, match="^token expired$"):
        SessionGuard(store).check(claims)
    with pytest.raises(ValueError, match="refresh_s must be positive, got 0"):
        SessionGuard(store, 0)


def test_an_mjpeg_stream_ends_when_its_token_is_revoked(server):
    app, _ = server
    client, _ = login(app)
    response = client.get("/api/cameras/cam01/mjpeg", buffered=False)
    frames = iter(response.response)
    assert next(frames).startswith(b"--xrcell-frame\r\n")
    client.post("/api/logout")
    assert list(frames) == []  # the generator returned instead of streaming on
    response.close()


def test_revoked_tokens_are_purged_once_expired(store):
    store.revoke_token("old", time.time() - 1)
    store.revoke_token("new", time.time() + 60)
    store.revoke_token("new", time.time() + 60)  # idempotent
    assert store.revoked_token_ids() == frozenset({"new"})
    with pytest.raises(StorageError, match="^token_id must not be empty$"):
        store.revoke_token("", time.time())


def test_revocation_storage_failures_name_the_operation(store, tmp_path):
    import sqlite3
    [path] = tmp_path.glob("users*.sqlite")  # the store's file (conftest.make_store)
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE revoked_tokens")
    with pytest.raises(StorageError, match="^cannot read the revoked tokens: "):
        store.revoked_token_ids()
    with pytest.raises(StorageError, match="^cannot revoke a token: "):
        store.revoke_token("abc", time.time() + 60)


def test_tokens_without_an_id_are_invalid():
    import itsdangerous
    old_style = itsdangerous.URLSafeTimedSerializer(SECRET, salt="xrcell-session-v1").dumps({"u": "ana", "r": ["admin"]})
    with pytest.raises(TokenError, match="^invalid or expired token$"):
        TokenSigner(SECRET).verify(old_style)


# -------------------------------------------------------------------------------- Socket.IO
def connect(server, token):
    app, socketio = server
    sio = socketio.test_client(app, namespace="/xr", auth={"token": token})
    assert sio.is_connected("/xr")
    return sio


def test_a_revoked_token_cannot_connect(server):
    app, socketio = server
    client, token = login(app)
    client.post("/api/logout", headers=bearer(token))
    assert not socketio.test_client(app, namespace="/xr", auth={"token": token}).is_connected("/xr")


def test_logout_ends_the_live_socketio_session(server):
    app, _ = server
    client, token = login(app)
    sio = connect(server, token)
    other = connect(server, login(app, "bob", "b0b-pw")[1])
    client.post("/api/logout", headers=bearer(token))
    assert wait_until(lambda: not sio.is_connected("/xr"))
    assert {"event": "connect", "error": "token revoked"} in errors(sio)
    assert other.is_connected("/xr")  # another user's session is untouched


def test_an_expiring_token_ends_the_live_socketio_session(server):
    app, _ = server
    _, token = login(app)
    sio = connect(server, token)
    with mock.patch("time.time", return_value=time.time() + 8 * 3600 + 1):
        assert wait_until(lambda: not sio.is_connected("/xr"))
    assert {"event": "connect", "error": "token expired"} in errors(sio)


def test_removing_the_user_ends_the_live_socketio_session(server, store):
    app, _ = server
    sio = connect(server, login(app, "bob", "b0b-pw")[1])
    store.remove("bob")
    assert wait_until(lambda: not sio.is_connected("/xr"))
    assert {"event": "connect", "error": "token of a removed user"} in errors(sio)


def test_twin_state_request_answers_this_client_with_the_twin(server):
    app, _ = server
    sio = connect(server, login(app)[1])
    sio.get_received("/xr")
    sio.emit("twin_state_request", {"cell": "lab"}, namespace="/xr")
    received = sio.get_received("/xr")
    assert any(m["name"] == "twin_state" and m["args"][0]["cell"] == "lab" for m in received)
    assert [m for m in received if m["name"] == "error"] == []


@pytest.mark.parametrize(("args", "reason"), [
    ([{}], "invalid 'twin_state_request' payload: missing field 'cell'"),
    ([{"cell": 5}], "invalid 'twin_state_request' payload: field 'cell' must be a string"),
    (["lab"], "invalid 'twin_state_request' payload: payload must be a JSON object with field 'cell'"),
    ([None], "invalid 'twin_state_request' payload: payload must be a JSON object with field 'cell'"),
    ([{"cell": "lab", "x": 1}], "invalid 'twin_state_request' payload: unexpected field 'x'"),
    ([], "event 'twin_state_request' takes one JSON object, got 0 arguments"),
    ([{"cell": "lab"}, 2], "event 'twin_state_request' takes one JSON object, got 2 arguments"),
    ([{"cell": "hall-b"}], "unknown cell 'hall-b': this server shows 'lab'"),
])
def test_a_malformed_event_gets_an_error_event_and_the_session_goes_on(server, args, reason):
    app, _ = server
    sio = connect(server, login(app)[1])
    sio.get_received("/xr")
    sio.emit("twin_state_request", *args, namespace="/xr")
    assert errors(sio) == [{"event": "twin_state_request", "error": reason}]
    assert sio.is_connected("/xr")
    sio.emit("twin_state_request", {"cell": "lab"}, namespace="/xr")  # still served
    assert any(m["name"] == "twin_state" for m in sio.get_received("/xr"))


def test_an_unknown_event_is_named(server):
    app, _ = server
    sio = connect(server, login(app)[1])
    sio.get_received("/xr")
    sio.emit("fly", {"to": "moon"}, namespace="/xr")
    assert errors(sio) == [{"event": "fly", "error": "unknown event 'fly'"}]
    assert sio.is_connected("/xr")


def test_no_twin_yet_is_an_error_event(store):
    app, socketio = create_app(twin_source=lambda: None, camera_views=FakeCameraViews(), user_store=store,
                               secret_key=SECRET, cell_name="lab")
    _, token = login(app)
    sio = socketio.test_client(app, namespace="/xr", auth={"token": token})
    sio.emit("twin_state_request", {"cell": "lab"}, namespace="/xr")
    assert errors(sio) == [{"event": "twin_state_request", "error": "no twin state yet"}]
    app.xrcell_stop()


def test_a_failing_handler_is_an_error_event_not_a_server_exception(server, caplog):
    app, _ = server
    from pydantic import BaseModel

    class Poke(BaseModel):
        n: int

    @app.xrcell_client_event("poke", Poke)
    def on_poke(claims, payload):
        raise ZeroDivisionError("bug in a handler")

    sio = connect(server, login(app)[1])
    sio.get_received("/xr")
    sio.emit("poke", {"n": 1}, namespace="/xr")
    assert errors(sio) == [{"event": "poke", "error": "internal error while handling 'poke'"}]
    assert "Socket.IO event 'poke' from 'ana' failed" in caplog.text
    assert sio.is_connected("/xr")


def test_an_event_with_a_revoked_token_ends_the_session_instead_of_running(server):
    app, _ = server
    calls = []
    from pydantic import BaseModel

    class Poke(BaseModel):
        n: int

    app.xrcell_client_event("poke", Poke)(lambda claims, payload: calls.append(payload))
    client, token = login(app)
    sio = connect(server, token)
    client.post("/api/logout", headers=bearer(token))
    if sio.is_connected("/xr"):  # the event gets there before the periodic check
        sio.emit("poke", {"n": 1}, namespace="/xr")
    assert wait_until(lambda: not sio.is_connected("/xr"))
    assert calls == []
    assert {"event": "connect", "error": "token revoked"} in errors(sio)
