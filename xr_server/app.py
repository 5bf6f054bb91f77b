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
queue, and an emit only enqueues: a slow browser delays nobody else. The queue keeps only the
newest ``twin_state`` (`xr_server.twin_queue`): a slow client drops stale twin states, never events.

Routes (all JSON errors are ``{"error": message}``; the OpenAPI 3.1 document at
``/api/openapi.json`` has every ``/api/`` route with its schemas, built from the docstrings below
by `xr_server.openapi`; docs/xr_server.md is the reader's guide):

    GET  /healthz                     {status: ok|degraded, components: {robot, tracking, monitor}}
                                      (ages in ms); always 200 while serving; no auth
    GET  /metrics                     Prometheus text format (`xr_server.metrics`); no auth, see
                                      docs/xr_server.md "Why /metrics has no login"
    GET  /api/openapi.json            the OpenAPI document, no auth
    GET  /login                       login page, no auth
    POST /api/login                   {username, password} -> {token, roles, expires_s} + cookie
    POST /api/logout                  revokes the presented token on the server, clears the cookie
    GET  /api/me                      {username, roles, cell}
    GET  /api/twin                    newest twin_state (503 before the first one)
    GET  /api/cells/<cell>/twin.glb   the static twin, glTF 2.0 binary (`content.twin_asset`),
                                      strong ETag, 304 on If-None-Match; 404 for another cell
    GET  /api/cameras                 camera ids
    GET  /api/cameras/<id>/mjpeg      multipart/x-mixed-replace JPEG stream, at most 5 fps
    POST /api/safety/reset            ask to clear a latched fault stop -> {accepted, reason}:
                                      200 accepted, 403 role refused, 409 otherwise refused,
                                      503 without a safety monitor
    POST /api/robot/trajectory        a joint trajectory goal, through the command gate ->
                                      {verdict, reason[, rest]}: 200 forwarded (modified: the
                                      rest to submit later), 400 malformed, 403 role
                                      refused, 409 refused by another rule, 503 without a gate
    POST /api/robot/jog|goto|gripper|stop, GET /api/robot/named_poses
                                      (`xr_server.robot_events`)
    POST /api/program/pause|resume, GET /api/program
                                      the robot program (`xr_server.program_events`)
    GET  /, /hmi, /expert             dashboard, HMI and remote-expert pages (redirect to /login
                                      without a token)
    GET  /static/<file>               the pages' JS and CSS, no auth
    GET  /vendor/...                  three.js and socket.io-client from node_modules, no auth

Every other route needs a token, from the ``xrcell_token`` cookie (HttpOnly, SameSite=Strict) or
an ``Authorization: Bearer`` header: a valid signature within its lifetime, not revoked by a
logout, of a user that still exists (`xr_server.auth.SessionGuard`); otherwise 401 with the reason.

Socket.IO namespace ``/xr``: the connection needs ``auth={"token": ...}`` or the cookie; the
client joins room ``cell:<cell_name>``, receives the newest ``twin_state`` at once and then at
`twin_rate_hz` from one background task. The same task re-checks every session's token about
every `SESSION_CHECK_PERIOD_S` and ends (``error`` event, then disconnect) a session whose token
expired, was revoked or whose user was removed. Client events are registered with
``client_event(name, model)``: the token is re-checked, the payload validated with the pydantic
`model`, and any refusal or handler failure is answered with an ``error`` event
``{event, error}`` (`xr_server.api_models.SocketError`), never an exception in the server:

    twin_state_request {cell}         -> twin_state now (to this client only)
    robot_command {kind, ...}          -> the command gate / the monitor's stop and reset
                                         (`xr_server.robot_events`)
    program_control {action}          -> pause / resume the robot program (`xr_server.program_events`)
    session_create/_join/_leave/_list, rtc_offer, hmi_camera, xr_viewer_pose, marker_align,
    freeze_frame,
    annotation_create/_update/_delete
                                      -> XR sessions, WebRTC signalling through the `RtcGateway`,
                                         annotations (`xr_server.session_events`)
    any other event                   -> error "unknown event '<name>'"

What a handler returns is the event's acknowledgement; a refusal (`XrServerError`) is an ``error``
event with its message (and the acknowledgement).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import flask
import flask.typing
import flask_socketio
import prometheus_client
import socketio.exceptions as socketio_exceptions
from aiortc import RTCIceServer
from pydantic import BaseModel

from content.cell import FiducialMarker
from content.errors import ContentError
from content.storage import AnnotationStore
from content.twin_asset import TwinAsset
from robot_bridge.errors import CommandError
from robot_bridge.types import JointTrajectory, RobotState
from safety.errors import SafetyError
from safety.gate import MOTION_ROLES, Actor, GateAnswer, Verdict
from safety.perception.types import PerceptionSnapshot
from xr_server import rtc_receiver
from xr_server.anchors import SceneCapsule, scene_capsules
from xr_server.api_models import (
    JointTrajectoryRequest,
    LoginRequest,
    PayloadError,
    TwinStateRequest,
    parse,
)
from xr_server.auth import (
    DEFAULT_SESSION_REFRESH_S,
    DEFAULT_TOKEN_LIFETIME_S,
    SessionGuard,
    TokenClaims,
    TokenError,
    TokenSigner,
)
from xr_server.errors import SessionError, XrServerError
from xr_server.hmi_cameras import HmiCameras
from xr_server.marker_alignment import MarkerAligner
from xr_server.health import DEFAULT_STALE_AFTER_S, health_report
from xr_server.metrics import CellCollector, GateCounts, MonitorFigures, make_registry
from xr_server.openapi import build_openapi
from xr_server.recording import Recordings
from xr_server.robot_events import (
    RobotCommandEnvelope,
    RobotCommandRouter,
    SafetyStop,
    refusal_status,
    register_robot_routes,
)
from xr_server.program_events import Program, ProgramControl, register_program_events
from xr_server.rtc_gateway import RtcGateway
from xr_server.robot_goto import GotoPlanner
from xr_server.session_events import AuditAppend, SessionEvents, register_session_events
from xr_server.sessions import EXPERT_ROLES, cell_room
from xr_server.twin_queue import TwinSendQueues

log = logging.getLogger(__name__)

COOKIE_NAME = "xrcell_token"
NAMESPACE = "/xr"
#: Upper bound of the MJPEG frame rate per viewer (the dashboard is not a video player).
MJPEG_MAX_FPS = 5.0
WEB_DIR = Path(__file__).resolve().parent / "web"
_BOUNDARY = "xrcell-frame"
#: Seconds between two checks of every Socket.IO session's token by the broadcast task.
SESSION_CHECK_PERIOD_S = 0.25
_PUBLIC_PATHS = frozenset({"/healthz", "/metrics", "/login", "/api/login", "/api/logout", "/api/openapi.json",
                           "/favicon.ico"})
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
#: ``(after_seq, limit, kind) -> page``, as `safety.audit.AuditLog.page`; raises `SafetyError`
#: (its `AuditError`) with a message naming the bad argument.
SafetyEvents = Callable[[str, str, str | None], dict]


class RobotCommands(Protocol):
    """The command gate (`safety.gate.CommandGate`): the only path from a user to the robot.
    Called from request threads: must be thread-safe; answers, never raises for a bad command."""

    def submit(self, command: object, actor: Actor) -> GateAnswer: ...


def node_modules_dir() -> Path:
    """Where the npm packages are: ``$XRCELL_NODE_MODULES`` or ``<repo>/node_modules``."""
    override = os.environ.get("XRCELL_NODE_MODULES")
    return Path(override) if override else Path(__file__).resolve().parents[1] / "node_modules"


def _inline_script_hashes() -> list[str]:
    """CSP hashes of the inline scripts (import maps) of the pages, so no 'unsafe-inline' is needed."""
    hashes = set()
    for page in WEB_DIR.glob("*.html"):
        for body in re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page.read_text(), re.DOTALL):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            hashes.add(f"'sha256-{digest}'")
    return sorted(hashes)


def _json_error(status: int, message: str) -> flask.Response:
    response = flask.jsonify(error=message)
    response.status_code = status
    return response


def create_app(*, twin_source: Callable[[], dict | None], camera_views: CameraViews, user_store: Any,
               secret_key: str, cell_name: str = "demo", twin_rate_hz: float = 30.0,
               token_lifetime_s: float = DEFAULT_TOKEN_LIFETIME_S, safety_reset: SafetyReset | None = None,
               monitor: MonitorFigures | None = None,
               robot_source: Callable[[], RobotState | None] | None = None,
               perception_source: Callable[[], PerceptionSnapshot | None] | None = None,
               gate: GateCounts | None = None, stale_after_s: float = DEFAULT_STALE_AFTER_S,
               session_refresh_s: float = DEFAULT_SESSION_REFRESH_S,
               safety_events: SafetyEvents | None = None,
               annotation_store: AnnotationStore | None = None, ice_servers: Sequence[RTCIceServer] = (),
               robot_commands: RobotCommands | None = None,
               recordings: Recordings | None = None,
               twin_asset: Callable[[], TwinAsset] | None = None,
               safety_stop: SafetyStop | None = None,
               hmi_cameras: HmiCameras | None = None,
               max_bitrate_kbps: int | None = None,
               robot_goto: GotoPlanner | None = None,
               markers: Sequence[FiducialMarker] = (),
               audit: AuditAppend | None = None,
               program: Program | None = None,
               ) -> tuple[flask.Flask, flask_socketio.SocketIO]:
    """Build the server.

    Args:
        twin_source: returns the newest `twin_state` dict (JSON-serialisable) or None; called from
            the broadcast task and request threads, so it must be thread-safe and fast.
        camera_views: `CameraViews`.
        user_store: `content.storage.UserStore` (``verify``, ``list`` and the token revocations
            ``revoke_token``, ``revoked_token_ids``).
        secret_key: signs the session tokens; at least 16 characters.
        cell_name: the cell this server shows; Socket.IO room ``cell:<cell_name>``.
        twin_rate_hz: rate of the ``twin_state`` broadcast.
        token_lifetime_s: how long a login stays valid (default 8 h).
        safety_reset: `SafetyReset` behind ``POST /api/safety/reset``; None answers 503.
        monitor: the safety monitor (`xr_server.metrics.MonitorFigures`) for ``/healthz`` and
            ``/metrics``; None leaves it out of both.
        robot_source: returns the newest `RobotState` (for ``/healthz`` and ``/metrics``).
        perception_source: returns the newest `PerceptionSnapshot` (same).
        gate: the command gate's counters (``/metrics``).
        stale_after_s: age beyond which ``/healthz`` calls a record stale.
        session_refresh_s: largest age of the server's copy of revocations and users (a logout on
            another server process takes effect here within this time).
        safety_events: pages through the safety audit log (`safety.audit.AuditLog.page`) for
            ``GET /api/safety/events``; None answers 503.
        annotation_store: where the annotations of XR sessions are stored before they are
            acknowledged; None refuses annotations.
        ice_servers: STUN/TURN servers of the WebRTC peer connections; none by default (host
            candidates only: a LAN, or a VPN to it).
        robot_commands: the command gate behind ``POST /api/robot/trajectory``, ``/jog``,
            ``/gripper`` and the ``robot_command`` event; None answers 503.
        safety_stop: the monitor's stop request (`SafetyMonitor.request_stop`) behind
            ``POST /api/robot/stop`` and ``robot_command`` kind ``stop``; None answers 503.
        recordings: where ``session_record`` records XR sessions and ``GET /api/recordings``
            lists them (`xr_server.recording`); None refuses recording and answers 503.
        twin_asset: returns the cell's static twin (`content.TwinAsset`, built once and cached by
            the caller, e.g. `content.TwinAssetCache`) for ``GET /api/cells/<cell>/twin.glb``;
            called from request threads; None answers 503.
        hmi_cameras: the HMIs the cell uses as cameras (`xr_server.hmi_cameras.HmiCameras`); the
            worker videos and poses of those HMIs go to worker tracking. None: no HMI camera.
        max_bitrate_kbps: the cap of every video the server sends over WebRTC (experts' relay,
            composited views), kbit/s; None: the receivers' REMB estimates alone
            (`xr_server.rtc_adapt`).
        robot_goto: plans ``robot_command`` kind ``goto`` and ``POST /api/robot/goto`` (named
            poses, joint and TCP targets) into trajectories for `robot_commands`, and lists the
            named poses at ``GET /api/robot/named_poses``; None answers 503.
        markers: the cell file's fiducial markers, for the ``marker_align`` registration of
            HMIs (`xr_server.marker_alignment`); none: ``marker_align`` is refused.
        audit: ``(kind, actor, inputs, reason)`` (`safety.audit.AuditLog.append`) for what users
            change in XR sessions (``session_video_cap``, accepted marker registrations as
            ``alignment_change``), the go-tos refused before the gate (``goto_refused``) and
            program pauses and resumes (``program_pause``, ``program_resume``); None: not audited.
        program: the cell's robot program (`xr_server.program.ProgramRunner`) for the
            ``program_control`` event and ``/api/program`` (`xr_server.program_events`); None
            answers 503 (``no program``).

    Returns:
        ``(app, socketio)``. Run with ``socketio.run(app, ...)``; ``app.xrcell_stop()`` ends the
        broadcast task and the MJPEG streams and stops the WebRTC gateway, closing every peer
        connection (idempotent, returns within about one period).
    """
    if twin_rate_hz <= 0:
        raise ValueError(f"twin_rate_hz must be positive, got {twin_rate_hz}")
    program_control = ProgramControl(program, audit)
    signer = TokenSigner(secret_key, token_lifetime_s)
    guard = SessionGuard(user_store, session_refresh_s)
    sessions: dict[str, TokenClaims] = {}  # Socket.IO sid -> claims; guarded by sessions_lock
    sessions_lock = threading.Lock()
    app = flask.Flask(__name__, static_folder=None)
    app.config["SECRET_KEY"] = secret_key
    socketio = flask_socketio.SocketIO(app, async_mode="threading", logger=False, engineio_logger=False)
    twin_queues = TwinSendQueues(NAMESPACE)  # per client: only the newest twin_state waits
    twin_queues.install(socketio.server)
    room = cell_room(cell_name)
    gateway = RtcGateway(ice_servers)
    def anchor_scene() -> list[SceneCapsule]:
        return scene_capsules(robot_source() if robot_source else None,
                              perception_source() if perception_source else None)

    xr_sessions = SessionEvents(socketio, NAMESPACE, cell_name, gateway, annotation_store,
                                anchor_scene=anchor_scene, recordings=recordings,
                                twin_source=twin_source,
                                twin_states_dropped=twin_queues.dropped,
                                hmi_cameras=hmi_cameras,
                                max_bitrate_kbps=max_bitrate_kbps,
                                marker_aligner=MarkerAligner(markers) if markers else None,
                                audit=audit)
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
    def _require_token() -> flask.typing.ResponseReturnValue | None:
        path = flask.request.path
        if path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
            return None
        try:
            flask.g.claims = guard.check(signer.verify(request_token()))
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
        """Health of the cell's inputs.
        ---
        get:
          summary: State of the robot backend, worker tracking and the safety monitor.
          description: >-
            200 while the server serves, whatever the components say (a dashboard is most needed
            when the robot is in a fault); alert on `status`. Components the server was not given
            are left out. Ages are milliseconds on the monotonic clock.
          security: []
          responses:
            '200':
              description: The health report.
              content:
                application/json:
                  schema: Health
        """
        def read(source: Callable[[], Any] | None) -> Any:
            try:
                return source()  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - a failing source is reported as "none yet"
                log.exception("health source failed")
                return None
        inputs: dict[str, Any] = {}
        if robot_source is not None:
            inputs["robot"] = read(robot_source)
        if perception_source is not None:
            inputs["tracking"] = read(perception_source)
        if monitor is not None:
            inputs["monitor"] = read(monitor.latest)
        return flask.jsonify(health_report(time.monotonic_ns(), stale_after_s=stale_after_s, **inputs))

    @app.get("/metrics")
    def metrics() -> flask.Response:
        """Prometheus metrics.
        ---
        get:
          summary: The cell's figures in the Prometheus text exposition format 0.0.4.
          description: >-
            Safety mode, speed scale, separation, S_p, the monitor's cycle time histogram, camera
            frames processed and skipped, input ages, twin clients, gate commands accepted and
            rejected. No login (a scraper cannot log in and tokens expire each shift; nothing here
            is personal or secret); restrict it on the network, see docs/xr_server.md.
          security: []
          responses:
            '200':
              description: The metrics.
              content:
                text/plain:
                  schema:
                    type: string
        """
        return flask.Response(prometheus_client.generate_latest(registry),
                              content_type=prometheus_client.CONTENT_TYPE_LATEST)

    @app.get("/api/openapi.json")
    def openapi_document() -> flask.Response:
        """This document.
        ---
        get:
          summary: The OpenAPI 3.1 document of this API.
          security: []
          responses:
            '200':
              description: The document.
              content:
                application/json:
                  schema:
                    type: object
        """
        return flask.jsonify(openapi_doc)

    @app.get("/login")
    def login_page() -> flask.Response:
        return flask.send_file(WEB_DIR / "login.html", max_age=0)

    @app.post("/api/login")
    def login() -> flask.Response:
        """Log in.
        ---
        post:
          summary: Log in with a username and password; returns a token and sets the session cookie.
          security: []
          requestBody:
            required: true
            content:
              application/json:
                schema: LoginRequest
          responses:
            '200':
              description: Logged in.
              content:
                application/json:
                  schema: LoginResponse
            '400': BadRequest
            '401':
              description: "`invalid username or password` (the same for an unknown user)."
              content:
                application/json:
                  schema: Error
        """
        try:
            body = parse(LoginRequest, flask.request.get_json(silent=True), "body")
        except PayloadError as exc:
            return _json_error(400, str(exc))
        user = user_store.verify(body.username, body.password)
        if user is None:
            log.info("login refused for %r from %s", body.username, flask.request.remote_addr)
            return _json_error(401, "invalid username or password")
        token = signer.issue(user.username, user.roles)
        response = flask.jsonify(token=token, roles=list(user.roles), expires_s=int(signer.lifetime_s))
        response.set_cookie(COOKIE_NAME, token, max_age=int(signer.lifetime_s), httponly=True,
                            samesite="Strict", secure=flask.request.is_secure, path="/")
        log.info("login of %r (%s)", user.username, ",".join(user.roles))
        return response

    @app.post("/api/logout")
    def logout() -> flask.Response:
        """Log out.
        ---
        post:
          summary: Revoke the presented token on the server (every process sharing the user store) and clear the cookie.
          description: >-
            Needs no valid token: without one (or with an expired one) it only clears the cookie
            and answers `revoked: false`. Socket.IO sessions of a revoked token are ended.
          security: []
          responses:
            '200':
              description: Logged out.
              content:
                application/json:
                  schema: LogoutResponse
            '503':
              description: "`cannot revoke the token: user store unavailable`; the cookie is kept."
              content:
                application/json:
                  schema: Error
        """
        revoked = False
        try:
            claims = signer.verify(request_token())
        except TokenError:
            claims = None
        if claims is not None:
            try:
                guard.revoke(claims)
            except Exception:  # noqa: BLE001 - StorageError or anything else from the store
                log.exception("logout of %r: revoking the token failed", claims.username)
                return _json_error(503, "cannot revoke the token: user store unavailable")
            revoked = True
            log.info("logout of %r: token revoked", claims.username)
        response = flask.jsonify(ok=True, revoked=revoked)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="Strict")
        return response

    @app.get("/api/me")
    def me() -> flask.Response:
        """Who am I.
        ---
        get:
          summary: The account of the token, its roles and this server's cell.
          responses:
            '200':
              description: The account.
              content:
                application/json:
                  schema: Me
            '401': Unauthorized
        """
        claims = flask.g.claims
        return flask.jsonify(username=claims.username, roles=list(claims.roles), cell=cell_name)

    # ------------------------------------------------------------------------------ twin, cameras
    @app.get("/api/twin")
    def twin() -> flask.Response:
        """The twin now.
        ---
        get:
          summary: The newest `twin_state` of the cell (the message Socket.IO streams at 30 Hz).
          responses:
            '200':
              description: The newest twin state.
              content:
                application/json:
                  schema: TwinState
            '401': Unauthorized
            '503': Unavailable
        """
        state = current_twin()
        if state is None:
            return _json_error(503, "no twin state yet")
        return flask.jsonify(state)

    @app.get("/api/cells/<cell>/twin.glb")
    def twin_glb(cell: str) -> flask.Response:
        """The static twin.
        ---
        get:
          summary: The cell's robot (one node per URDF link) and zones as glTF 2.0 binary, y-up.
          description: >-
            Node `cell` turns the z-up `cell` frame into glTF's y-up frame; every node below it is in
            the `cell` frame. Each link node's `extras` say how its joint moves it, so a client
            animates the robot from `twin_state.robot.q` (docs/xr_server.md "The static twin").
            Strong ETag (a hash of the URDF, its meshes, the base pose and the zones): send
            `If-None-Match` to get 304.
          parameters:
            - name: cell
              in: path
              required: true
              schema:
                type: string
          responses:
            '200':
              description: The GLB.
              content:
                model/gltf-binary:
                  schema:
                    type: string
                    contentMediaType: model/gltf-binary
            '304':
              description: Not modified (the `If-None-Match` ETag is current).
            '401': Unauthorized
            '404': NotFound
            '503': Unavailable
        """
        if cell != cell_name:
            return _json_error(404, f"unknown cell {cell!r}: this server shows {cell_name!r}")
        if twin_asset is None:
            return _json_error(503, "this server has no static twin")
        try:
            asset = twin_asset()
        except ContentError as exc:
            log.error("static twin of cell %r: %s", cell_name, exc)
            return _json_error(503, f"static twin unavailable: {exc}")
        response = flask.Response(asset.glb, mimetype="model/gltf-binary")
        response.set_etag(asset.key)
        response.headers["Cache-Control"] = "private, no-cache"  # revalidate with the ETag
        return response.make_conditional(flask.request)

    @app.get("/api/cameras")
    def cameras() -> flask.Response:
        """Camera ids.
        ---
        get:
          summary: The ids of the cell cameras that have a view.
          responses:
            '200':
              description: Camera ids.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      type: string
            '401': Unauthorized
        """
        return flask.jsonify(list(camera_views.ids()))

    @app.get("/api/cameras/<camera_id>/mjpeg")
    def camera_mjpeg(camera_id: str) -> flask.Response:
        """A camera's processed view.
        ---
        get:
          summary: The camera's newest processed frames (with 2D skeletons) as an MJPEG stream, at most 5 fps.
          parameters:
            - name: camera_id
              in: path
              required: true
              schema:
                type: string
          responses:
            '200':
              description: "`multipart/x-mixed-replace; boundary=xrcell-frame`, one JPEG per part; ends when the server stops or the token expires or is revoked."
              content:
                multipart/x-mixed-replace:
                  schema:
                    type: string
                    contentMediaType: image/jpeg
            '401': Unauthorized
            '404': NotFound
        """
        if camera_id not in camera_views.ids():
            return _json_error(404, f"no camera {camera_id!r}")

        claims = flask.g.claims

        def frames() -> Iterator[bytes]:
            """Until the server stops or the token stops being good (expired, revoked, user removed)."""
            period = 1.0 / MJPEG_MAX_FPS
            last = None
            while not stop_event.is_set():
                t0 = time.monotonic()
                try:
                    guard.check(claims)
                except TokenError as exc:
                    log.info("MJPEG stream of %s to %r ended: %s", camera_id, claims.username, exc)
                    return
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
        """Reset a fault stop.
        ---
        post:
          summary: Ask the safety monitor to clear a latched fault stop (supervisor or admin).
          description: >-
            Accepted means the reset takes effect on the monitor's next cycle if the fault's cause
            is gone. Logged with the user and the answer.
          responses:
            '200':
              description: Accepted.
              content:
                application/json:
                  schema: ResetAnswer
            '401': Unauthorized
            '403':
              description: The caller's roles may not reset (`reason` starts with `role:`).
              content:
                application/json:
                  schema: ResetAnswer
            '409':
              description: Refused for another reason, e.g. nothing latched.
              content:
                application/json:
                  schema: ResetAnswer
            '500':
              description: "`safety reset failed`: the monitor raised."
              content:
                application/json:
                  schema: Error
            '503':
              description: "`no safety monitor`: this server has none."
              content:
                application/json:
                  schema: Error
        """
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
            response.status_code = refusal_status(reason)
        return response

    @app.get("/api/safety/events")
    def safety_events_page() -> flask.Response:
        """The safety audit log, a page at a time.
        ---
        get:
          summary: Page through the safety audit log (mode changes, gate answers, resets, zone changes).
          description: >-
            Records ascend by `seq`. Start with `after_seq=0` and pass `next_after_seq` as `after_seq`
            for the next page until it is null. Any logged-in role may read the log.
            `xrcell audit verify` checks the hash chain.
          parameters:
            - {name: after_seq, in: query, schema: {type: integer, minimum: 0, default: 0},
               description: Only records with a larger seq.}
            - {name: limit, in: query, schema: {type: integer, minimum: 1, maximum: 1000, default: 100},
               description: Records per page.}
            - {name: kind, in: query, schema: {type: string},
               description: "Only records of this kind (e.g. `mode_change`, `gate_answer`)."}
          responses:
            '200':
              description: One page.
              content:
                application/json:
                  schema: SafetyEventPage
            '400': BadRequest
            '401': Unauthorized
            '503': Unavailable
        """
        if safety_events is None:
            return _json_error(503, "no safety audit log")
        args = flask.request.args
        try:
            page = safety_events(args.get("after_seq", "0"), args.get("limit", "100"), args.get("kind"))
        except SafetyError as exc:
            return _json_error(400, str(exc))
        return flask.jsonify(page)
    # -------------------------------------------------------------------------------- recordings
    def recordings_or_error() -> Recordings | flask.Response:
        if recordings is None:
            return _json_error(503, "no recordings folder: this server does not record")
        if not EXPERT_ROLES & set(flask.g.claims.roles):
            return _json_error(403, "role: recordings need one of the roles "
                                    f"{', '.join(sorted(EXPERT_ROLES))}")
        return recordings

    @app.get("/api/recordings")
    def recordings_list() -> flask.Response:
        """The recordings of XR sessions.
        ---
        get:
          summary: List the recordings of XR sessions, newest first (expert, supervisor, admin).
          description: >-
            Each recording is a folder of plain files: `manifest.json`, `twin.jsonl` (twin states
            at 10 Hz), `events.jsonl` (participants, annotations, safety mode changes) and
            `video-NNN.mp4` (the worker's camera, H.264). `stopped_at` is null while recording.
          responses:
            '200':
              description: The recordings.
              content:
                application/json:
                  schema: RecordingList
            '401': Unauthorized
            '403': Forbidden
            '503': Unavailable
        """
        found = recordings_or_error()
        if isinstance(found, flask.Response):
            return found
        return flask.jsonify(recordings=[r.as_dict() for r in found.list()])

    @app.get("/api/recordings/<recording>/<name>")
    def recording_file(recording: str, name: str) -> flask.Response:
        """One file of a recording.
        ---
        get:
          summary: Download one file of a recording (expert, supervisor, admin).
          parameters:
            - {name: recording, in: path, required: true, schema: {type: string},
               description: "The recording id, `<session>-<YYYYmmddTHHMMSSZ>`."}
            - {name: name, in: path, required: true, schema: {type: string},
               description: "`manifest.json`, `twin.jsonl`, `events.jsonl` or `video-NNN.mp4`."}
          responses:
            '200':
              description: The file (JSON, JSON lines or MP4).
            '401': Unauthorized
            '403': Forbidden
            '404': NotFound
            '503': Unavailable
        """
        found = recordings_or_error()
        if isinstance(found, flask.Response):
            return found
        try:
            path = found.file(recording, name)
        except SessionError as exc:
            return _json_error(404, str(exc))
        mimetype = {"json": "application/json", "jsonl": "application/x-ndjson",
                    "mp4": "video/mp4"}[name.rsplit(".", 1)[1]]
        return flask.send_file(path, mimetype=mimetype, max_age=0, conditional=True)

    # ------------------------------------------------------------------------------------- robot
    @app.post("/api/robot/trajectory")
    def robot_trajectory() -> flask.Response:
        """Send a trajectory goal to the robot.
        ---
        post:
          summary: >-
            Send a joint trajectory goal to the cell's robot through the command gate
            (operator or admin).
          description: >-
            The gate checks the caller's role, the safety mode, joint position and velocity
            limits and the robot keep-out zones along the whole path before the robot backend
            sees the goal, then the backend checks it against the robot (joint names, limits,
            start within 0.1 rad of the current position when the first point is at 0 s).
            Every answer is audited. Progress shows in the twin state's robot (`q`, `mode`).
          requestBody:
            required: true
            content:
              application/json:
                schema: JointTrajectoryRequest
          responses:
            '200':
              description: >-
                Forwarded to the robot: `accepted` as sent, or `modified` (shortened before a
                conflict with a person; `rest` holds what was not sent).
              content:
                application/json:
                  schema: CommandAnswer
            '400': BadRequest
            '401': Unauthorized
            '403':
              description: The caller's roles may not move the robot (`reason` starts with `role:`).
              content:
                application/json:
                  schema: CommandAnswer
            '409':
              description: Refused by another rule of the gate or by the robot; `reason` names it.
              content:
                application/json:
                  schema: CommandAnswer
            '503':
              description: "`no command gate`: this server drives no robot."
              content:
                application/json:
                  schema: Error
        """
        claims = flask.g.claims
        if robot_commands is None:
            return _json_error(503, "no command gate")
        try:
            body = parse(JointTrajectoryRequest, flask.request.get_json(silent=True), "body")
            for i, point in enumerate(body.points):
                if len(point.positions) != len(body.joint_names):
                    raise PayloadError(f"field 'points.{i}.positions': expected "
                                       f"{len(body.joint_names)} values (one per joint name), "
                                       f"got {len(point.positions)}")
            command = JointTrajectory(
                tuple(body.joint_names), [p.positions for p in body.points],
                [p.time_from_start_s for p in body.points], goal_id=body.goal_id)
        except PayloadError as exc:
            return _json_error(400, str(exc))
        except (CommandError, ValueError) as exc:  # ragged rows, non-finite values, bad times
            return _json_error(400, f"body: {exc}")
        refusal = (program_control.manual_motion_refusal(body.goal_id)
                   if set(claims.roles) & MOTION_ROLES else None)   # others: the gate's role rule
        if refusal is not None:
            response = flask.jsonify({"verdict": "rejected", "reason": refusal})
            response.status_code = 409
            return response
        answer = robot_commands.submit(command, Actor(claims.username, frozenset(claims.roles)))
        log.info("trajectory %r from %r: %s, %s", body.goal_id, claims.username,
                 answer.verdict.value, answer.reason)
        reply: dict[str, object] = {"verdict": answer.verdict.value, "reason": answer.reason}
        if answer.rest is not None:
            rest = answer.rest
            reply["rest"] = {
                "joint_names": list(rest.joint_names),
                "goal_id": rest.goal_id,
                "points": [{"positions": [float(v) for v in row], "time_from_start_s": float(t)}
                           for row, t in zip(rest.positions, rest.time_from_start_s)],
            }
        response = flask.jsonify(reply)
        if answer.verdict is Verdict.REJECTED:
            response.status_code = refusal_status(answer.reason)
        return response

    # ------------------------------------------------------------------------------------ pages
    @app.get("/")
    def dashboard_page() -> flask.Response:
        return flask.send_file(WEB_DIR / "dashboard.html", max_age=0)

    @app.get("/hmi")
    def hmi_page() -> flask.Response:
        return flask.send_file(WEB_DIR / "hmi.html", max_age=0)

    @app.get("/favicon.ico")
    def favicon() -> flask.Response:
        return flask.Response(status=204)  # none; without this route browsers log a 404 on every page

    @app.get("/expert")
    def expert_page() -> flask.Response:
        return flask.send_file(WEB_DIR / "expert.html", max_age=0)

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

    def emit_error(event: str, reason: str, sid: str | None = None) -> None:
        """Send the ``error`` event (`SocketError`) to `sid` (default: the current client)."""
        payload = {"event": event, "error": reason}
        if sid is None:
            flask_socketio.emit("error", payload)
        else:
            socketio.emit("error", payload, to=sid, namespace=NAMESPACE)

    def end_session(sid: str, reason: str) -> None:
        """Tell the client why, then disconnect it (from any thread)."""
        with sessions_lock:
            claims = sessions.pop(sid, None)
        log.info("ending Socket.IO session of %s: %s", claims.username if claims else sid, reason)
        try:
            emit_error("connect", reason, sid)
            socketio.server.disconnect(sid, namespace=NAMESPACE)
        except Exception:  # noqa: BLE001 - the client may be gone already
            log.debug("disconnect of %s failed", sid, exc_info=True)

    def check_sessions() -> None:
        """End every session whose token expired, was revoked, or whose user was removed."""
        with sessions_lock:
            current = list(sessions.items())
        for sid, claims in current:
            try:
                guard.check(claims)
            except TokenError as exc:
                end_session(sid, str(exc))

    def broadcast_loop() -> None:
        """Emit the newest twin_state to the room at twin_rate_hz and check the sessions' tokens
        every SESSION_CHECK_PERIOD_S until stop; never blocks on clients (emit only enqueues per
        client) and never dies of an exception."""
        period = 1.0 / twin_rate_hz
        next_t = time.monotonic()
        next_check = next_t
        while not stop_event.is_set():
            state = current_twin()
            if state is not None:
                try:  # clients with an open twin data channel get it there instead
                    xr_sessions.twin_channels.send(state)
                    socketio.emit("twin_state", state, to=room, namespace=NAMESPACE,
                                  skip_sid=xr_sessions.twin_channels.sids() or None)
                except Exception:  # noqa: BLE001
                    log.exception("twin_state broadcast failed")
            now = time.monotonic()
            if now >= next_check:
                next_check = now + SESSION_CHECK_PERIOD_S
                try:
                    check_sessions()
                except Exception:  # noqa: BLE001
                    log.exception("session check failed")
            next_t += period
            now = time.monotonic()
            if next_t < now - period:  # fell behind (suspend, overload): skip, do not burst
                next_t = now
            stop_event.wait(max(0.0, next_t - now))

    @socketio.on("connect", namespace=NAMESPACE)
    def on_connect(auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        try:
            claims = guard.check(signer.verify(token or flask.request.cookies.get(COOKIE_NAME)))
        except TokenError as exc:
            raise socketio_exceptions.ConnectionRefusedError(str(exc)) from exc
        with sessions_lock:
            sessions[flask.request.sid] = claims  # type: ignore[attr-defined]
        flask_socketio.join_room(room)
        log.info("%s joined %s on %s", claims.username, room, NAMESPACE)
        state = current_twin()
        if state is not None:
            flask_socketio.emit("twin_state", state)
        with broadcaster_lock:
            if not broadcaster and not stop_event.is_set():
                broadcaster.append(socketio.start_background_task(broadcast_loop))

    @socketio.on("disconnect", namespace=NAMESPACE)
    def on_disconnect(*_: Any) -> None:
        sid = flask.request.sid  # type: ignore[attr-defined]
        with sessions_lock:
            sessions.pop(sid, None)
        try:
            xr_sessions.leave(sid)
        except Exception:  # noqa: BLE001 - a disconnect must always complete
            log.exception("leaving the XR session of %s failed", sid)

    def session_claims() -> TokenClaims | None:
        """The current client's claims after a fresh check; ends the session and returns None
        when the token is no longer good."""
        sid = flask.request.sid  # type: ignore[attr-defined]
        with sessions_lock:
            claims = sessions.get(sid)
        if claims is None:
            end_session(sid, "no session")
            return None
        try:
            return guard.check(claims)
        except TokenError as exc:
            end_session(sid, str(exc))
            return None

    def client_event(name: str, model: type[BaseModel]) -> Callable[[Callable], Callable]:
        """Register ``handler(claims, payload)`` for the client event `name` on `NAMESPACE`.

        Before the handler runs, the session's token is re-checked (a bad one ends the session)
        and the event's single argument is validated as `model`; a malformed payload, a refusal
        (`XrServerError`, its message is the reason) or a handler that raises anything else is
        answered with an ``error`` event naming the event and the reason. What the handler
        returns is the event's acknowledgement (for clients that ask for one); after an error
        the acknowledgement is the ``error`` event's payload.
        """
        def register(handler: Callable[[TokenClaims, Any], Any]) -> Callable:
            def refuse(reason: str) -> dict:
                emit_error(name, reason)
                return {"event": name, "error": reason}

            def dispatch(*args: Any) -> Any:
                claims = session_claims()
                if claims is None:
                    return None
                if len(args) != 1:
                    return refuse(f"event '{name}' takes one JSON object, got {len(args)} arguments")
                try:
                    payload = parse(model, args[0], "payload")
                except PayloadError as exc:
                    return refuse(f"invalid '{name}' payload: {exc}")
                try:
                    return handler(claims, payload)
                except XrServerError as exc:
                    log.info("Socket.IO event %r from %r refused: %s", name, claims.username, exc)
                    return refuse(str(exc))
                except Exception:  # noqa: BLE001 - a handler bug must not reach the server
                    log.exception("Socket.IO event %r from %r failed", name, claims.username)
                    return refuse(f"internal error while handling '{name}'")
            socketio.on_event(name, dispatch, namespace=NAMESPACE)
            return handler
        return register

    @socketio.on("*", namespace=NAMESPACE)
    def on_unknown_event(event: Any, *_: Any) -> None:
        if session_claims() is not None:
            emit_error(str(event), f"unknown event {str(event)!r}")

    @client_event("twin_state_request", TwinStateRequest)
    def on_twin_state_request(claims: TokenClaims, request: TwinStateRequest) -> None:
        if request.cell != cell_name:
            emit_error("twin_state_request", f"unknown cell {request.cell!r}: this server shows {cell_name!r}")
            return
        state = current_twin()
        if state is None:
            emit_error("twin_state_request", "no twin state yet")
            return
        flask_socketio.emit("twin_state", state)

    register_session_events(client_event, xr_sessions)
    robot_router = RobotCommandRouter(None if robot_commands is None else robot_commands.submit,
                                      safety_stop, safety_reset, robot_goto, audit,
                                      program_control.manual_motion_refusal)
    client_event("robot_command", RobotCommandEnvelope)(robot_router.on_event)
    register_robot_routes(app, robot_router)
    register_program_events(client_event, app, program_control)

    def twin_clients() -> int:
        with sessions_lock:
            return len(sessions)

    registry = make_registry(CellCollector(monitor=monitor, robot_source=robot_source,
                                           perception_source=perception_source, gate=gate,
                                           twin_clients=twin_clients, xr_sessions=xr_sessions.registry.count,
                                           peer_connections=gateway.peer_count,
                                           twin_states_dropped=twin_queues.dropped_total,
                                           video_frames_dropped=rtc_receiver.dropped_frames_total,
                                           hmi_cameras=None if hmi_cameras is None else hmi_cameras.status))
    openapi_doc = build_openapi(app, cookie_name=COOKIE_NAME)

    def stop() -> None:
        stop_event.set()
        with broadcaster_lock:
            for task in broadcaster:
                task.join(timeout=2.0)
        xr_sessions.stop_recordings()      # finishes the video files on the gateway's loop
        if recordings is not None:
            recordings.close()             # its retention thread
        gateway.stop()

    app.xrcell_stop = stop  # type: ignore[attr-defined]
    app.extensions["xrcell_rtc_gateway"] = gateway
    app.extensions["xrcell_sessions"] = xr_sessions
    app.extensions["xrcell_twin_queues"] = twin_queues
    app.xrcell_client_event = client_event  # type: ignore[attr-defined]
    return app, socketio
