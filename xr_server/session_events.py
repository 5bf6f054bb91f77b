"""The Socket.IO events of XR sessions on ``/xr``: sessions and their rooms, WebRTC signalling,
annotations. `register_session_events` adds them to the server `xr_server.app.create_app` built.

Every handler runs in a Socket.IO handler thread after `client_event` re-checked the token and
validated the payload; a refusal is an `XrServerError` whose message becomes the ``error`` event
``{event, error}`` (and the acknowledgement, for a client that asked for one). WebRTC work goes
to the gateway's loop through `RtcGateway.call`. The events, their payloads and their errors are
listed in docs/xr_server.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import flask
import flask_socketio
from aiortc import RTCSessionDescription

from content.errors import StorageError
from content.storage import AnnotationStore
from xr_server.anchors import CameraPose, anchor_on_plane
from xr_server.annotations import anchor_point, annotation_dict, check_geometry
from xr_server.api_models import (
    AnnotationCreate,
    AnnotationDelete,
    AnnotationUpdate,
    HmiCamera,
    RtcOffer,
    SessionCreate,
    SessionJoin,
    SessionLeave,
    SessionListRequest,
)
from xr_server.auth import TokenClaims
from xr_server.errors import GatewayError, SessionError
from xr_server.rtc import SessionMedia, check_sdp
from xr_server.rtc_gateway import RtcGateway
from xr_server.sessions import (
    EXPERT_ROLES,
    ParticipantRole,
    SessionInfo,
    SessionRegistry,
    session_room,
)

log = logging.getLogger(__name__)

#: Longest a signalling call may take on the gateway, seconds.
SIGNALLING_TIMEOUT_S = 10.0


class SessionEvents:
    """The XR session events of one server.

    Args:
        socketio: the server (emits to rooms from any thread).
        namespace: ``/xr``.
        cell_name: the cell this server shows.
        gateway: the WebRTC gateway (started on the first offer).
        annotations: the annotation store; None refuses annotations.
        twin_states_dropped: ``sid -> count`` of the twin states dropped for a slow connection
            (`xr_server.twin_queue.TwinSendQueues.dropped`; None: not connected); listed per
            participant by ``session_list``.

    Threads: the handlers run in Socket.IO handler threads, `_on_video` on the gateway's loop;
    the registry and the media are thread-safe as documented there.
    """

    def __init__(self, socketio: flask_socketio.SocketIO, namespace: str, cell_name: str,
                 gateway: RtcGateway, annotations: AnnotationStore | None,
                 twin_states_dropped: Callable[[str], int | None] = lambda sid: None) -> None:
        self._socketio = socketio
        self._namespace = namespace
        self._cell = cell_name
        self._gateway = gateway
        self._annotations = annotations
        self._twin_states_dropped = twin_states_dropped
        self.registry = SessionRegistry([cell_name])
        self.media = SessionMedia(gateway, self._on_video)
        self._cameras_lock = threading.Lock()
        self._cameras: dict[str, CameraPose] = {}  # session id -> the worker's newest camera pose

    # ----------------------------------------------------------------------------- helpers
    def _state(self, info: SessionInfo) -> dict:
        return {**info.as_dict(), "video": self.media.video(info.session_id).track_id}

    def _broadcast_state(self, info: SessionInfo) -> None:
        self._socketio.emit("session_state", self._state(info), to=session_room(info.session_id),
                            namespace=self._namespace)

    def _on_video(self, session_id: str, track_id: str | None) -> None:
        try:
            info = self.registry.info(session_id)
        except SessionError:
            return  # ended meanwhile
        self._broadcast_state(info)

    def _joined(self, info: SessionInfo, role: ParticipantRole) -> dict:
        flask_socketio.join_room(session_room(info.session_id))
        annotations = self._list_annotations(info.session_id)
        answer = {**self._state(info), "role": role.value, "annotations": annotations}
        flask_socketio.emit("session_joined", answer)
        self._broadcast_state(info)
        return answer

    def _list_annotations(self, session_id: str) -> list[dict]:
        if self._annotations is None:
            return []
        try:
            return [annotation_dict(a) for a in self._annotations.list(session_id)]
        except StorageError as exc:
            raise SessionError(str(exc)) from exc

    def _check_cell(self, cell: str) -> None:
        if cell != self._cell:
            raise SessionError(f"unknown cell {cell!r}: this server shows {self._cell!r}")

    @staticmethod
    def _sid() -> str:
        return flask.request.sid  # type: ignore[attr-defined]

    def _store(self) -> AnnotationStore:
        if self._annotations is None:
            raise SessionError("annotations need storage: this server has none")
        return self._annotations

    def _emit_annotation(self, session_id: str, op: str, annotation: dict, ref: str = "") -> dict:
        message = {"op": op, "annotation": annotation, "ref": ref}
        self._socketio.emit("annotation", message, to=session_room(session_id),
                            namespace=self._namespace)
        return message

    # ---------------------------------------------------------------------------- sessions
    def session_create(self, claims: TokenClaims, request: SessionCreate) -> dict:
        self._check_cell(request.cell)
        info = self.registry.create(request.cell, self._sid(), claims.username, claims.roles)
        log.info("%s opened XR session %s in %s", claims.username, info.session_id, info.cell)
        return self._joined(info, ParticipantRole.WORKER)

    def session_join(self, claims: TokenClaims, request: SessionJoin) -> dict:
        role = ParticipantRole(request.role)
        info = self.registry.join(request.session, self._sid(), claims.username, claims.roles, role)
        log.info("%s joined XR session %s as %s", claims.username, info.session_id, role.value)
        return self._joined(info, role)

    def session_leave(self, claims: TokenClaims, request: SessionLeave) -> dict:
        sid = self._sid()
        self.registry.participant(request.session, sid)  # refuses a session not joined
        self.leave(sid)
        flask_socketio.leave_room(session_room(request.session))
        answer = {"session": request.session}
        flask_socketio.emit("session_left", answer)
        return answer

    def session_list(self, claims: TokenClaims, request: SessionListRequest) -> dict:
        self._check_cell(request.cell)
        if not EXPERT_ROLES & set(claims.roles):
            raise SessionError("role: listing sessions needs one of the roles "
                               f"{', '.join(sorted(EXPERT_ROLES))}")
        sessions = [{**self._state(s), "participants": self._participants(s.session_id)}
                    for s in self.registry.sessions(request.cell)]
        answer = {"cell": request.cell, "sessions": sessions}
        flask_socketio.emit("session_list", answer)
        return answer

    def _participants(self, session_id: str) -> list[dict]:
        try:
            members = self.registry.participants(session_id)
        except SessionError:
            return []  # ended meanwhile
        return [{"username": p.username, "role": p.role.value,
                 "twin_states_dropped": self._twin_states_dropped(p.sid)} for p in members]

    def leave(self, sid: str) -> None:
        """Take `sid` out of its session (on leave and on disconnect) and close its peer
        connection; the others in the session get the new ``session_state``."""
        left = self.registry.leave(sid)
        if self._gateway.running:
            try:
                self._gateway.call(self.media.close, sid, timeout_s=SIGNALLING_TIMEOUT_S)
            except GatewayError:
                log.warning("closing the peer connection of %s failed", sid, exc_info=True)
        if left is None:
            return
        info, ended = left
        if ended:
            with self._cameras_lock:
                self._cameras.pop(info.session_id, None)
            log.info("XR session %s ended", info.session_id)
        else:
            self._broadcast_state(info)

    # ---------------------------------------------------------------------------- signalling
    def rtc_offer(self, claims: TokenClaims, request: RtcOffer) -> dict:
        sid = self._sid()
        participant = self.registry.participant(request.session, sid)
        check_sdp(request.sdp)
        offer = RTCSessionDescription(sdp=request.sdp, type=request.type)
        self._gateway.start()
        if participant.role is ParticipantRole.WORKER:
            answer = self._gateway.call(self.media.publish, request.session, sid, offer,
                                        timeout_s=SIGNALLING_TIMEOUT_S)
        else:
            answer = self._gateway.call(self.media.subscribe, request.session, sid, offer,
                                        timeout_s=SIGNALLING_TIMEOUT_S)
        try:
            self.registry.participant(request.session, sid)
        except SessionError:  # left or disconnected while the offer was answered
            self._gateway.call(self.media.close, sid, timeout_s=SIGNALLING_TIMEOUT_S)
            raise
        message = {"session": request.session, "type": answer.type, "sdp": answer.sdp}
        flask_socketio.emit("rtc_answer", message)
        return message

    # --------------------------------------------------------------------------- annotations
    def hmi_camera(self, claims: TokenClaims, request: HmiCamera) -> dict:
        participant = self.registry.participant(request.session, self._sid())
        if participant.role is not ParticipantRole.WORKER:
            raise SessionError(f"only the worker of session {request.session} reports its camera")
        x, y, z = request.position_m
        qx, qy, qz, qw = request.orientation
        camera = CameraPose((x, y, z), (qx, qy, qz, qw), request.hfov_deg, request.aspect)
        with self._cameras_lock:
            self._cameras[request.session] = camera
        return {"session": request.session}

    def _anchor(self, session_id: str, kind: str,
                points: list[list[float]]) -> tuple[float, float, float] | None:
        with self._cameras_lock:
            camera = self._cameras.get(session_id)
        return None if camera is None else anchor_on_plane(camera, *anchor_point(kind, points))

    def annotation_create(self, claims: TokenClaims, request: AnnotationCreate) -> dict:
        participant = self.registry.participant(request.session, self._sid())
        if participant.role is not ParticipantRole.EXPERT:
            raise SessionError(f"only an expert of session {request.session} may place annotations")
        check_geometry(request.kind, request.points, request.radius, request.text)
        info = self.registry.info(request.session)
        try:
            stored = self._store().add(request.session, info.cell, claims.username, request.kind,
                                       request.points, request.radius, request.text, request.color,
                                       self._anchor(request.session, request.kind, request.points))
        except StorageError as exc:
            raise SessionError(str(exc)) from exc
        return self._emit_annotation(request.session, "created", annotation_dict(stored),
                                     request.ref)

    def annotation_update(self, claims: TokenClaims, request: AnnotationUpdate) -> dict:
        self.registry.participant(request.session, self._sid())
        store = self._store()
        try:
            current = next((a for a in store.list(request.session)
                            if a.annotation_id == request.id), None)
            if current is None:
                raise SessionError(f"no annotation {request.id} in session {request.session}")
            check_geometry(current.kind, request.points, request.radius, request.text)
            anchor = (None if request.points is None
                      else self._anchor(request.session, current.kind, request.points))
            stored = store.update(request.id, request.session, claims.username,
                                  points=request.points, radius=request.radius, text=request.text,
                                  color=request.color, anchor_m=anchor)
        except StorageError as exc:
            raise SessionError(str(exc)) from exc
        return self._emit_annotation(request.session, "updated", annotation_dict(stored))

    def annotation_delete(self, claims: TokenClaims, request: AnnotationDelete) -> dict:
        self.registry.participant(request.session, self._sid())
        try:
            self._store().remove(request.id, request.session, claims.username)
        except StorageError as exc:
            raise SessionError(str(exc)) from exc
        return self._emit_annotation(request.session, "deleted",
                                     {"id": request.id, "session": request.session})


def register_session_events(client_event: Callable[[str, type], Callable[[Callable], Any]],
                            events: SessionEvents) -> None:
    """Register every XR session event of `events` with `client_event` (see `create_app`)."""
    for name, model in (("session_create", SessionCreate), ("session_join", SessionJoin),
                        ("session_leave", SessionLeave), ("session_list", SessionListRequest),
                        ("rtc_offer", RtcOffer), ("hmi_camera", HmiCamera),
                        ("annotation_create", AnnotationCreate),
                        ("annotation_update", AnnotationUpdate),
                        ("annotation_delete", AnnotationDelete)):
        client_event(name, model)(getattr(events, name))

