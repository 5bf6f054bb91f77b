"""The XR server: REST + Socket.IO for the dashboard, the HMI pages and the AR glasses.

`create_app` composes a Flask app and a Flask-SocketIO server around three inputs owned by the
caller: a twin source (the newest `twin_state` message, see `xr_server/twin_schema.json`), the
camera views (JPEGs of the newest processed frames) and the user store.

Why ``async_mode="threading"``: the rest of xrcell is plain threads (the safety monitor's
fixed-rate loop, the robot backend, the camera pipeline). eventlet and gevent need monkey
patching, which would swap `threading`, `time.sleep` and the socket module under the safety
loop, and the safety loop must never depend on a cooperative scheduler that a blocking
C call (OpenCV, MediaPipe, PyBullet) can starve. In threading mode each HTTP request and each
WebSocket runs in its own OS thread (Werkzeug + simple-websocket), every client has its own send
queue, and an emit only enqueues: a slow browser delays nobody else.

Routes (all JSON errors are ``{"error": message}``):

    GET  /healthz                     200 "ok", no auth
    GET  /login                       login page, no auth
    POST /api/login                   {username, password} -> {token, roles, expires_s} + cookie
    POST /api/logout                  clears the cookie
    GET  /api/me                      {username, roles}
    GET  /api/twin                    newest twin_state (503 before the first one)
    GET  /api/cameras                 camera ids
    GET  /api/cameras/<id>/mjpeg      multipart/x-mixed-replace JPEG stream, at most 5 fps
    POST /api/safety/reset            ask to clear a latched fault stop -> {accepted, reason}:
                                      200 accepted, 403 role refused, 409 otherwise refused,
                                      503 without a safety monitor
    GET  /  and  /hmi                 dashboard and HMI pages (redirect to /login without a token)
    GET  /static/<file>               the pages' JS and CSS, no auth
    GET  /vendor/...                  three.js and socket.io-client from node_modules, no auth

Every other route needs a token, from the ``xrcell_token`` cookie (HttpOnly, SameSite=Strict) or
an ``Authorization: Bearer`` header. Socket.IO namespace ``/xr``: the connection needs
``auth={"token": ...}`` or the cookie; the client joins room ``cell:<cell_name>``, receives the
newest ``twin_state`` at once and then at `twin_rate_hz` from one background task.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import flask
import flask_socketio
import socketio.exceptions as socketio_exceptions

from xr_server.auth import DEFAULT_TOKEN_LIFETIME_S, TokenError, TokenSigner

log = logging.getLogger(__name__)

COOKIE_NAME = "xrcell_token"
NAMESPACE = "/xr"
#: Upper bound of the MJPEG frame rate per viewer (the dashboard is not a video player).
MJPEG_MAX_FPS = 5.0
WEB_DIR = Path(__file__).resolve().parent / "web"
_BOUNDARY = "xrcell-frame"
#: A `SafetyReset` reason with this prefix means the caller's roles were refused (answered 403).
ROLE_REFUSAL_PREFIX = "role:"
_PUBLIC_PATHS = frozenset({"/healthz", "/login", "/api/login", "/api/logout", "/favicon.ico"})
_PUBLIC_PREFIXES = ("/static/", "/vendor/")
#: Files served from node_modules: URL name -> path below node_modules.
_VENDOR_FILES = {
    "three.module.js": "three/build/three.module.js",
    "three.core.js": "three/build/three.core.js",
    "socket.io.esm.min.js": "socket.io-client/dist/socket.io.esm.min.js",
    "socket.io.esm.min.js.map": "socket.io-client/dist/socket.io.esm.min.js.map",
}


class CameraViews(Protocol):
    """The newest processed frame of each cell camera. Called from request threads: thread-safe."""

    def ids(self) -> list[str]: ...

    def jpeg(self, camera_id: str) -> bytes | None: ...


#: Asks to clear a latched fault stop: ``(actor_name, roles) -> (accepted, reason)``, for example
#: `safety.monitor.SafetyMonitor.reset`. Called from request threads: must be thread-safe. It checks
#: the roles itself; a refusal for lack of role has a reason starting with ``"role:"``.
SafetyReset = Callable[[str, frozenset[str]], tuple[bool, str]]


def node_modules_dir() -> Path:
    """Where the npm packages are: ``$XRCELL_NODE_MODULES`` or ``<repo>/node_modules``."""
    override = os.environ.get("XRCELL_NODE_MODULES")
    return Path(override) if override else Path(__file__).resolve().parents[1] / "node_modules"


def _inline_script_hashes() -> list[str]:
    """CSP hashes of the inline scripts (import maps) of the pages, so no 'unsafe-inline' is needed."""
    hashes = set()
    for page in WEB_DIR.glob("*.html"):
        for body in re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page.read_text(), re.S):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            hashes.add(f"'sha256-{digest}'")
    return sorted(hashes)


def _json_error(status: int, message: str) -> flask.Response:
    response = flask.jsonify(error=message)
    response.status_code = status
    return response


def create_app(*, twin_source: Callable[[], dict | None], camera_views: CameraViews, user_store: Any,
               secret_key: str, cell_name: str = "demo", twin_rate_hz: float = 30.0,
               token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S, safety_reset: SafetyReset | None = None
               ) -> tuple[flask.Flask, flask_socketio.SocketIO]:
    """Build the server.

    Args:
        twin_source: returns the newest `twin_state` dict (JSON-serialisable) or None; called from
            the broadcast task and request threads, so it must be thread-safe and fast.
        camera_views: `CameraViews`.
        user_store: `content.storage.UserStore` (anything with ``verify(username, password)``).
        secret_key: signs the session tokens; at least 16 characters.
        cell_name: the cell this server shows; Socket.IO room ``cell:<cell_name>``.
        twin_rate_hz: rate of the ``twin_state`` broadcast.
        token_lifetime_s: how long a login stays valid (default 8 h).
        safety_reset: `SafetyReset` behind ``POST /api/safety/reset``; None answers 503.

    Returns:
        ``(app, socketio)``. Run with ``socketio.run(app, ...)``; ``app.xrcell_stop()`` ends the
        broadcast task and the MJPEG streams (idempotent, returns within about one period).
    """
    if twin_rate_hz <= 0:
        raise ValueError(f"twin_rate_hz must be positive, got {twin_rate_hz}")
    signer = TokenSigner(secret_key, token_lifetime_s)
    app = flask.Flask(__name__, static_folder=None)
    app.config["SECRET_KEY"] = secret_key
    socketio = flask_socketio.SocketIO(app, async_mode="threading", logger=False, engineio_logger=False)
    room = f"cell:{cell_name}"
    stop_event = threading.Event()
    csp = ("default-src 'self'; script-src 'self' " + " ".join(_inline_script_hashes())
           + "; img-src 'self' data: blob:; style-src 'self'; connect-src 'self'; object-src 'none';"
           " base-uri 'none'; frame-ancestors 'none'; form-action 'self'")

    def current_twin() -> dict | None:
        try:
            return twin_source()
        except Exception:  # noqa: BLE001 - a broken source must not take the server down
            log.exception("twin_source failed")
            return None

    def request_token() -> str | None:
        header = flask.request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            return header[len("Bearer "):].strip() or None
        return flask.request.cookies.get(COOKIE_NAME)

    # ----------------------------------------------------------------------------------- auth
    @app.before_request
    def _require_token() -> flask.Response | None:
        path = flask.request.path
        if path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
            return None
        try:
            flask.g.claims = signer.verify(request_token())
        except TokenError as exc:
            if path.startswith("/api/"):
                return _json_error(401, str(exc))
            return flask.redirect(flask.url_for("login_page", next=flask.request.full_path.rstrip("?")))
        return None

    @app.after_request
    def _security_headers(response: flask.Response) -> flask.Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", csp)
        if flask.request.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.get("/healthz")
    def healthz() -> flask.Response:
        return flask.Response("ok\n", mimetype="text/plain")

    @app.get("/login")
    def login_page() -> flask.Response:
        return flask.send_file(WEB_DIR / "login.html", max_age=0)

    @app.post("/api/login")
    def login() -> flask.Response:
        body = flask.request.get_json(silent=True)
        if not isinstance(body, dict):
            return _json_error(400, "body must be a JSON object with fields 'username' and 'password'")
        for field in ("username", "password"):
            if field not in body:
                return _json_error(400, f"missing field '{field}'")
            if not isinstance(body[field], str):
                return _json_error(400, f"field '{field}' must be a string")
        user = user_store.verify(body["username"], body["password"])
        if user is None:
            log.info("login refused for %r from %s", body["username"], flask.request.remote_addr)
            return _json_error(401, "invalid username or password")
        token = signer.issue(user.username, user.roles)
        response = flask.jsonify(token=token, roles=list(user.roles), expires_s=int(signer.lifetime_s))
        response.set_cookie(COOKIE_NAME, token, max_age=int(signer.lifetime_s), httponly=True,
                            samesite="Strict", secure=flask.request.is_secure, path="/")
        log.info("login of %r (%s)", user.username, ",".join(user.roles))
        return response

    @app.post("/api/logout")
    def logout() -> flask.Response:
        response = flask.jsonify(ok=True)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict")
        return response

    @app.get("/api/me")
    def me() -> flask.Response:
        claims = flask.g.claims
        return flask.jsonify(username=claims.username, roles=list(claims.roles), cell=cell_name)

    # ------------------------------------------------------------------------------ twin, cameras
    @app.get("/api/twin")
    def twin() -> flask.Response:
        state = current_twin()
        if state is None:
            return _json_error(503, "no twin state yet")
        return flask.jsonify(state)

    @app.get("/api/cameras")
    def cameras() -> flask.Response:
        return flask.jsonify(list(camera_views.ids()))

    @app.get("/api/cameras/<camera_id>/mjpeg")
    def camera_mjpeg(camera_id: str) -> flask.Response:
        if camera_id not in camera_views.ids():
            return _json_error(404, f"no camera {camera_id!r}")

        def frames() -> Iterator[bytes]:
            period = 1.0 / MJPEG_MAX_FPS
            last = None
            while not stop_event.is_set():
                t0 = time.monotonic()
                jpeg = camera_views.jpeg(camera_id)
                if jpeg is not None and jpeg is not last:
                    last = jpeg
                    yield (f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                           f"Content-Length: {len(jpeg)}\r\n\r\n").encode() + jpeg + b"\r\n"
                stop_event.wait(max(0.0, period - (time.monotonic() - t0)))

        return flask.Response(frames(), mimetype=f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
                              headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------------------------ safety
    @app.post("/api/safety/reset")
    def safety_reset_request() -> flask.Response:
        claims = flask.g.claims
        if safety_reset is None:
            log.warning("fault stop reset by %r refused: no safety monitor", claims.username)
            return _json_error(503, "no safety monitor")
        try:
            accepted, reason = safety_reset(claims.username, frozenset(claims.roles))
        except Exception:  # noqa: BLE001 - a failing monitor must not take the server down
            log.exception("fault stop reset by %r failed", claims.username)
            return _json_error(500, "safety reset failed")
        log.warning("fault stop reset by %r (%s): %s, %s", claims.username, ",".join(claims.roles),
                    "accepted" if accepted else "refused", reason)
        response = flask.jsonify(accepted=bool(accepted), reason=reason)
        if not accepted:
            response.status_code = 403 if reason.startswith(ROLE_REFUSAL_PREFIX) else 409
        return response

    # ------------------------------------------------------------------------------------ pages
    @app.get("/")
    def dashboard_page() -> flask.Response:
        return flask.send_file(WEB_DIR / "dashboard.html", max_age=0)

    @app.get("/hmi")
    def hmi_page() -> flask.Response:
        return flask.send_file(WEB_DIR / "hmi.html", max_age=0)

    @app.get("/static/<path:name>")
    def static_file(name: str) -> flask.Response:
        if not name.endswith((".js", ".css", ".svg", ".png")):
            flask.abort(404)
        return flask.send_from_directory(WEB_DIR, name, max_age=0)

    @app.get("/vendor/<name>")
    def vendor_file(name: str) -> flask.Response:
        relative = _VENDOR_FILES.get(name)
        if relative is None:
            flask.abort(404)
        return _send_vendor("", relative)

    @app.get("/vendor/addons/<path:name>")
    def vendor_addon(name: str) -> flask.Response:
        if not name.endswith(".js"):
            flask.abort(404)
        return _send_vendor("three/examples/jsm", name)

    def _send_vendor(folder: str, relative: str) -> flask.Response:
        root = node_modules_dir()
        if not root.is_dir():
            log.error("node_modules not found at %s: run `make demo` or `npm ci`", root)
            return _json_error(404, "node_modules missing on the server: run `npm ci` (or `make demo`)")
        # send_from_directory refuses paths that leave `root / folder`.
        return flask.send_from_directory(root / folder, relative, max_age=3600)

    # -------------------------------------------------------------------------------- Socket.IO
    broadcaster_lock = threading.Lock()
    broadcaster: list[Any] = []  # the one background task, once started

    def broadcast_loop() -> None:
        """Emit the newest twin_state to the room at twin_rate_hz until stop; never blocks on
        clients (emit only enqueues per client) and never dies of an exception."""
        period = 1.0 / twin_rate_hz
        next_t = time.monotonic()
        while not stop_event.is_set():
            state = current_twin()
            if state is not None:
                try:
                    socketio.emit("twin_state", state, to=room, namespace=NAMESPACE)
                except Exception:  # noqa: BLE001
                    log.exception("twin_state broadcast failed")
            next_t += period
            now = time.monotonic()
            if next_t < now - period:  # fell behind (suspend, overload): skip, do not burst
                next_t = now
            stop_event.wait(max(0.0, next_t - now))

    @socketio.on("connect", namespace=NAMESPACE)
    def on_connect(auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = signer.verify(token or flask.request.cookies.get(COOKIE_NAME))
        except TokenError as exc:
            raise socketio_exceptions.ConnectionRefusedError(str(exc)) from exc
        flask_socketio.join_room(room)
        log.info("%s joined %s on %s", claims.username, room, NAMESPACE)
        state = current_twin()
        if state is not None:
            flask_socketio.emit("twin_state", state)
        with broadcaster_lock:
            if not broadcaster and not stop_event.is_set():
                broadcaster.append(socketio.start_background_task(broadcast_loop))

    def stop() -> None:
        stop_event.set()
        with broadcaster_lock:
            for task in broadcaster:
                task.join(timeout=2.0)

    app.xrcell_stop = stop  # type: ignore[attr-defined]
    return app, socketio
