"""XR server over Flask's test client and Flask-SocketIO's test client (no sockets, no threads
except the broadcast task): login, tokens, the auth wall, cameras and the /xr namespace."""

import time
from pathlib import Path
from unittest import mock

import argon2
import cv2
import numpy as np
import pytest

from content.storage import UserStore
from xr_server.app import COOKIE_NAME, create_app, node_modules_dir
from xr_server.auth import TokenSigner

SECRET = "test-secret-0123456789abcdef"
TWIN = {"v": 1, "t": 0.0, "cell": "lab", "robot": None, "safety": None, "people": [], "cameras": []}


class FakeCameraViews:
    def __init__(self):
        ok, buf = cv2.imencode(".jpg", np.full((48, 64, 3), 128, np.uint8))
        self.frame = buf.tobytes()

    def ids(self):
        return ["cam01"]

    def jpeg(self, camera_id):
        return self.frame if camera_id == "cam01" else None


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "users.sqlite"
    users = UserStore(f"sqlite:///{path}", hasher=argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    users.add("ana", "s3cret", ["operator"])
    users.add("sam", "s4m-pw", ["operator", "supervisor", "admin"])  # tokens issued directly in the reset tests
    return users


@pytest.fixture
def server(store):
    counter = {"n": 0}

    def twin_source():
        counter["n"] += 1
        return dict(TWIN, t=float(counter["n"]))

    app, socketio = create_app(twin_source=twin_source, camera_views=FakeCameraViews(), user_store=store,
                               secret_key=SECRET, cell_name="lab", twin_rate_hz=50.0)
    app.testing = True
    yield app, socketio
    app.xrcell_stop()


@pytest.fixture
def client(server):
    return server[0].test_client()


def login(client, username="ana", password="s3cret"):
    return client.post("/api/login", json={"username": username, "password": password})


def test_login_returns_a_token_and_sets_an_httponly_strict_cookie(client):
    response = login(client)
    assert response.status_code == 200
    body = response.get_json()
    assert body["roles"] == ["operator"] and body["expires_s"] == 8 * 3600 and body["token"]
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}={body['token']}")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert client.get("/api/twin").status_code == 200  # the cookie alone is enough
    assert client.get("/api/me").get_json() == {"username": "ana", "roles": ["operator"], "cell": "lab"}


def test_wrong_password_and_unknown_user_are_401_with_one_message(client):
    for user, password in (("ana", "wrong"), ("nobody", "s3cret")):
        response = login(client, user, password)
        assert response.status_code == 401
        assert response.get_json() == {"error": "invalid username or password"}
        assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(("body", "message"), [
    (None, "body must be a JSON object with fields 'username' and 'password'"),
    ({"username": "ana"}, "missing field 'password'"),
    ({"password": "x"}, "missing field 'username'"),
    ({"username": 3, "password": "x"}, "field 'username' must be a string"),
])
def test_malformed_login_is_400_naming_the_field(client, body, message):
    response = client.post("/api/login", json=body) if body is not None else client.post("/api/login", data="x")
    assert response.status_code == 400
    assert response.get_json() == {"error": message}


def test_api_without_token_is_401(client):
    for path in ("/api/twin", "/api/cameras", "/api/me", "/api/cameras/cam01/mjpeg"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.get_json() == {"error": "missing token"}


def test_bearer_token_gives_the_twin(client):
    token = login(client).get_json()["token"]
    fresh = client.application.test_client()  # no cookie
    response = fresh.get("/api/twin", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json()["cell"] == "lab"
    assert response.headers["Cache-Control"] == "no-store"


def forged_tokens():
    good = TokenSigner(SECRET).issue("ana", ["admin"])
    with mock.patch("time.time", return_value=time.time() - 8 * 3600 - 5):
        expired = TokenSigner(SECRET).issue("ana", ["admin"])
    return {
        "other key": TokenSigner("another-secret-0123456789").issue("ana", ["admin"]),
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "garbage": "not-a-token",
        "expired": expired,
    }


@pytest.mark.parametrize("kind", ["other key", "tampered", "garbage", "expired"])
def test_forged_or_expired_token_is_refused_by_api_pages_and_socketio(server, kind):
    app, socketio = server
    token = forged_tokens()[kind]
    client = app.test_client()
    response = client.get("/api/twin", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.get_json() == {"error": "invalid or expired token"}
    client.set_cookie(COOKIE_NAME, token)
    page = client.get("/hmi")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=/hmi"
    sio = socketio.test_client(app, namespace="/xr", auth={"token": token})
    assert not sio.is_connected("/xr")


def test_a_token_is_valid_until_its_lifetime(server):
    app, _ = server
    token = TokenSigner(SECRET).issue("ana", ["operator"])
    with mock.patch("time.time", return_value=time.time() + 8 * 3600 - 60):
        assert app.test_client().get("/api/twin", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    with mock.patch("time.time", return_value=time.time() + 8 * 3600 + 60):
        assert app.test_client().get("/api/twin", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_healthz_needs_no_token(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok", "components": {}}


def test_pages_redirect_to_login_without_a_cookie_and_serve_with_one(client):
    for path, target in (("/", "/login?next=/"), ("/hmi", "/login?next=/hmi")):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"] == target
    assert client.get("/login").status_code == 200
    login(client)
    page = client.get("/")
    assert page.status_code == 200 and b'<script type="importmap">' in page.data
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self' 'sha256-" in csp and "unsafe-inline" not in csp


def test_logout_clears_the_cookie(client):
    login(client)
    assert client.post("/api/logout").status_code == 200
    assert client.get("/api/twin").get_json() == {"error": "missing token"}


def test_cameras_list_unknown_camera_404_and_mjpeg_parts(server, client):
    login(client)
    assert client.get("/api/cameras").get_json() == ["cam01"]
    missing = client.get("/api/cameras/cam99/mjpeg")
    assert missing.status_code == 404 and missing.get_json() == {"error": "no camera 'cam99'"}
    response = client.get("/api/cameras/cam01/mjpeg", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "multipart/x-mixed-replace"
    first = next(iter(response.response))
    assert first.startswith(b"--xrcell-frame\r\nContent-Type: image/jpeg\r\n")
    assert b"\r\n\r\n\xff\xd8" in first  # JPEG start of image
    server[0].xrcell_stop()  # ends the stream
    assert list(response.response) == []
    response.close()


def test_twin_is_503_before_the_first_state(store):
    app, _ = create_app(twin_source=lambda: None, camera_views=FakeCameraViews(), user_store=store,
                        secret_key=SECRET)
    client = app.test_client()
    login(client)
    assert client.get("/api/twin").get_json() == {"error": "no twin state yet"}
    app.xrcell_stop()


def test_socketio_without_token_is_refused(server):
    app, socketio = server
    sio = socketio.test_client(app, namespace="/xr")
    assert not sio.is_connected("/xr")


def test_socketio_with_token_gets_the_twin_at_once_then_at_the_rate(server):
    app, socketio = server
    client = app.test_client()
    token = login(client).get_json()["token"]
    sio = socketio.test_client(app, namespace="/xr", auth={"token": token})
    assert sio.is_connected("/xr")
    first = sio.get_received("/xr")
    assert first and first[0]["name"] == "twin_state" and first[0]["args"][0]["cell"] == "lab"
    time.sleep(0.5)
    received = [m for m in sio.get_received("/xr") if m["name"] == "twin_state"]
    assert 10 <= len(received) <= 40  # 50 Hz for 0.5 s, with slack for a loaded machine
    stamps = [m["args"][0]["t"] for m in received]
    assert stamps == sorted(stamps)
    app.xrcell_stop()
    time.sleep(0.1)
    sio.get_received("/xr")
    time.sleep(0.2)
    assert sio.get_received("/xr") == []  # the broadcast task has ended
    sio.disconnect("/xr")


def test_socketio_accepts_the_session_cookie(server):
    app, socketio = server
    client = app.test_client()
    login(client)
    sio = socketio.test_client(app, namespace="/xr", flask_test_client=client)
    assert sio.is_connected("/xr")


def test_vendor_modules_are_served_from_node_modules(client):
    if not (node_modules_dir() / "three" / "build" / "three.module.js").is_file():
        pytest.fail(f"npm packages missing in {node_modules_dir()}: run `make test` (it runs `npm ci`)")
    for path in ("/vendor/three.module.js", "/vendor/three.core.js", "/vendor/socket.io.esm.min.js",
                 "/vendor/addons/controls/OrbitControls.js"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.mimetype in ("text/javascript", "application/javascript"), path
        response.close()
    assert client.get("/vendor/package.json").status_code == 404
    assert client.get("/vendor/addons/../../package.json").status_code == 404
    assert client.get("/vendor/addons/../../../three/src/Three.js").status_code == 404


def test_no_page_or_script_loads_anything_from_outside():
    web = Path(__file__).resolve().parents[2] / "xr_server" / "web"
    for f in web.iterdir():
        text = f.read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, f.name


class FakeSafetyReset:
    """Answers like `SafetyMonitor.reset`: checks the roles, then whether a fault stop is latched."""

    def __init__(self, latched=True):
        self.latched = latched
        self.calls = []

    def __call__(self, actor_name, roles):
        self.calls.append((actor_name, roles))
        if not roles & {"supervisor", "admin"}:
            return False, f"role: {actor_name!r} may not reset; a reset needs supervisor or admin"
        if not self.latched:
            return False, "nothing to reset: no latched fault stop"
        self.latched = False
        return True, "reset requested"


def reset_app(store, safety_reset):
    app, _ = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(), user_store=store,
                        secret_key=SECRET, cell_name="lab", safety_reset=safety_reset)
    app.testing = True
    return app


def post_reset(app, username, roles):
    token = TokenSigner(SECRET).issue(username, roles)
    return app.test_client().post("/api/safety/reset", headers={"Authorization": f"Bearer {token}"})


def test_safety_reset_without_token_is_401(store):
    fake = FakeSafetyReset()
    response = reset_app(store, fake).test_client().post("/api/safety/reset")
    assert response.status_code == 401
    assert response.get_json() == {"error": "missing token"}
    assert fake.calls == [] and fake.latched


def test_safety_reset_without_supervisor_role_is_403_with_the_reason(store):
    fake = FakeSafetyReset()
    response = post_reset(reset_app(store, fake), "ana", ["operator"])
    assert response.status_code == 403
    assert response.get_json() == {"accepted": False,
                                   "reason": "role: 'ana' may not reset; a reset needs supervisor or admin"}
    assert fake.calls == [("ana", frozenset({"operator"}))] and fake.latched


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_safety_reset_by_supervisor_or_admin_is_accepted(store, role):
    fake = FakeSafetyReset()
    response = post_reset(reset_app(store, fake), "sam", ["operator", role])
    assert response.status_code == 200
    assert response.get_json() == {"accepted": True, "reason": "reset requested"}
    assert not fake.latched


def test_safety_reset_with_nothing_latched_is_409(store):
    response = post_reset(reset_app(store, FakeSafetyReset(latched=False)), "sam", ["supervisor"])
    assert response.status_code == 409
    assert response.get_json() == {"accepted": False, "reason": "nothing to reset: no latched fault stop"}


def test_safety_reset_without_a_monitor_is_503(store):
    response = post_reset(reset_app(store, None), "sam", ["supervisor"])
    assert response.status_code == 503
    assert response.get_json() == {"error": "no safety monitor"}


def test_safety_reset_is_logged_with_user_and_result(store, caplog):
    with caplog.at_level("INFO", logger="xr_server.app"):
        post_reset(reset_app(store, FakeSafetyReset()), "sam", ["supervisor"])
    assert "fault stop reset by 'sam' (supervisor): accepted, reset requested" in caplog.text
