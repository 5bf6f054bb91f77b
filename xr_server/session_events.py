"""The Socket.IO events of XR sessions on ``/xr``: sessions and their rooms, WebRTC signalling,
annotations. `register_session_events` adds them to the server `xr_server.app.create_app` built.

Every handler runs in a Socket.IO handler thread after `client_event` re-checked the token and
validated the payload; a refusal is an `XrServerError` whose message becomes the ``error`` event
``{event, error}`` (and the acknowledgement, for a client that asked for one). WebRTC work goes
to the gateway's loop through `RtcGateway.call`. The events, their payloads and their errors are
listed in docs/xr_server.md.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import flask
import flask_socketio
from aiortc import RTCSessionDescription

from content.errors import StorageError
from content.storage import AnnotationStore
from xr_server.anchors import Anchor, CameraPose, SceneCapsule, anchor_in_scene
from xr_server.annotations import anchor_point, annotation_dict, check_geometry
from xr_server.api_models import (
    AnnotationCreate,
    AnnotationDelete,
    AnnotationUpdate,
    FreezeFrame,
    HmiCameraPose,
    MarkerAlign,
    RtcOffer,
    SessionCreate,
    SessionJoin,
    SessionLeave,
    SessionListRequest,
    SessionRecord,
    SessionVideoCap,
    XrViewerPose,
)
from xr_server.auth import TokenClaims
from xr_server.errors import GatewayError, SessionError
from xr_server.hmi_cameras import HmiCameras
from xr_server.marker_alignment import MarkerAligner
from xr_server.overlay import OverlayInputs
from xr_server.rtc import SessionMedia, check_sdp
from xr_server.recording import Recordings
from xr_server.rtc_gateway import RtcGateway
from xr_server.twin_channel import TwinChannels
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
#: ``audit(kind, actor, inputs, reason)``: appends a record to the safety audit log
#: (`safety.audit.AuditLog.append`); must not block.
AuditAppend = Callable[[str, str, dict, str], object]

#: Freeze-frames kept per session (`freeze_frame`); older ones are forgotten.
MAX_FREEZES = 32


class SessionEvents:
    """The XR session events of one server.

    Args:
        socketio: the server (emits to rooms from any thread).
        namespace: ``/xr``.
        cell_name: the cell this server shows.
        gateway: the WebRTC gateway (started on the first offer).
        annotations: the annotation store; None refuses annotations.
        anchor_scene: what annotations can be anchored on besides the floor: the robot's link
            capsules and the tracked people's body capsules now (`xr_server.anchors`); None:
            the floor only. Called from handler threads; must not raise.
        recordings: where session recordings go (`xr_server.recording`); None refuses them.
        twin_source: the newest `twin_state` message (or None), for the composited views; None
            refuses composited views.
        twin_states_dropped: ``sid -> count`` of the twin states dropped for a slow connection
            (`xr_server.twin_queue.TwinSendQueues.dropped`; None: not connected); listed per
            participant by ``session_list``.
        hmi_cameras: the HMIs the cell uses as cameras (`xr_server.hmi_cameras`): their worker
            videos and ``hmi_camera`` poses go to worker tracking; None: no HMI is a camera.
        max_bitrate_kbps: the cap of every video the server sends, kbit/s (None: the link's
            estimate alone; `xr_server.rtc_adapt`).
        marker_aligner: registers HMIs from the cell file's markers (``marker_align``,
            ``xr_viewer_pose``); None refuses them.
        audit: ``(kind, actor, inputs, reason)``, e.g. `safety.audit.AuditLog.append`: told of
            every session video cap set (kind ``video_cap``) and accepted marker registration
            (kind ``alignment_change``); None: not audited. Must not block.

    Threads: the handlers run in Socket.IO handler threads, `_on_video` on the gateway's loop,
    `_overlay` in executor threads of the loop; the registry and the media are thread-safe as
    documented there, the camera poses and the drawn annotations are guarded by `_lock`.
    """

    def __init__(self, socketio: flask_socketio.SocketIO, namespace: str, cell_name: str,
                 gateway: RtcGateway, annotations: AnnotationStore | None,
                 anchor_scene: Callable[[], Sequence[SceneCapsule]] | None = None,
                 recordings: Recordings | None = None,
                 twin_source: Callable[[], dict | None] | None = None,
                 twin_states_dropped: Callable[[str], int | None] = lambda sid: None,
                 hmi_cameras: HmiCameras | None = None,
                 max_bitrate_kbps: int | None = None,
                 marker_aligner: MarkerAligner | None = None,
                 audit: AuditAppend | None = None) -> None:
        self._socketio = socketio
        self._namespace = namespace
        self._cell = cell_name
        self._gateway = gateway
        self._annotations = annotations
        self._anchor_scene = anchor_scene
        self.recordings = recordings
        self._twin_states_dropped = twin_states_dropped
        self.registry = SessionRegistry([cell_name])
        self._twin_source = twin_source
        self.hmi_cameras = hmi_cameras
        self.marker_aligner = marker_aligner
        self._audit = audit
        self._devices: dict[str, str | None] = {}   # session id -> device of its worker's offer
        self.twin_channels = TwinChannels(gateway, self._refuse_twin_channel)
        self.media = SessionMedia(gateway, self._on_video,
                                  None if twin_source is None else self._overlay,
                                  (None if hmi_cameras is None and marker_aligner is None
                                   else self._on_frame),
                                  on_data_channel=self.twin_channels.attach,
                                  max_bitrate_kbps=max_bitrate_kbps)
        self._lock = threading.Lock()
        # session id -> the worker's newest camera pose
        self._cameras: dict[str, CameraPose] = {}
        # session id -> freeze id -> the camera pose pinned by `freeze_frame` (None: none yet)
        self._freezes: dict[str, dict[int, CameraPose | None]] = {}
        self._freeze_ids = itertools.count(1)
        # session id -> annotation id -> its `annotation_dict`, for the composited views
        self._drawn: dict[str, dict[int, dict]] = {}

    # ----------------------------------------------------------------------------- helpers
    def _state(self, info: SessionInfo) -> dict:
        recorder = None if self.recordings is None else self.recordings.active(info.session_id)
        return {**info.as_dict(), "video": self.media.video(info.session_id).track_id,
                "recording": None if recorder is None else recorder.info.recording,
                "max_bitrate_kbps": self.media.session_cap(info.session_id)}

    def _record(self, session_id: str, kind: str, data: dict) -> None:
        if self.recordings is not None:
            try:
                self.recordings.event(session_id, kind, data)
            except OSError:  # a full disk must not refuse the session's events
                log.exception("recording of session %s: cannot write a %s event", session_id, kind)

    def _broadcast_state(self, info: SessionInfo) -> None:
        self._socketio.emit("session_state", self._state(info), to=session_room(info.session_id),
                            namespace=self._namespace)

    def _overlay(self, session_id: str) -> OverlayInputs:
        """What the composited view of `session_id` shows now (an executor thread)."""
        try:
            twin = self._twin_source() if self._twin_source is not None else None
        except Exception:  # noqa: BLE001 - a broken source must not end the video
            log.exception("twin_source failed")
            twin = None
        with self._lock:
            camera = self._cameras.get(session_id)
            annotations = tuple(self._drawn.get(session_id, {}).values())
        return OverlayInputs(twin, camera, annotations)

    def _refuse_twin_channel(self, sid: str, reason: str) -> None:
        self._socketio.emit("error", {"event": "twin_channel", "error": reason}, to=sid,
                            namespace=self._namespace)

    def _on_frame(self, session_id: str, frame: Any) -> None:
        """Every decoded frame of a worker video (the gateway's loop): to worker tracking and to
        a running marker registration."""
        if self.hmi_cameras is not None:
            self.hmi_cameras.frame(session_id, frame)
        if self.marker_aligner is not None:
            self.marker_aligner.frame(session_id, frame)

    def _on_video(self, session_id: str, track_id: str | None) -> None:
        if self.marker_aligner is not None:
            self.marker_aligner.video_ended(session_id)
        if self.hmi_cameras is not None and track_id is None:
            self.hmi_cameras.video_ended(session_id)
        try:
            info = self.registry.info(session_id)
        except SessionError:
            return  # ended meanwhile
        if self.hmi_cameras is not None and track_id is not None:
            self.hmi_cameras.video_started(session_id, info.worker, self._devices.get(session_id))
        self._broadcast_state(info)

    def _joined(self, info: SessionInfo, role: ParticipantRole) -> dict:
        flask_socketio.join_room(session_room(info.session_id))
        self._record(info.session_id, "participant", {"op": "joined", "role": role.value,
                                                      **info.as_dict()})
        annotations = self._list_annotations(info.session_id)
        with self._lock:
            self._drawn[info.session_id] = {a["id"]: a for a in annotations}
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
        self._record(session_id, "annotation", message)
        with self._lock:
            drawn = self._drawn.setdefault(session_id, {})
            if op == "deleted":
                drawn.pop(annotation["id"], None)
            else:
                drawn[annotation["id"]] = annotation
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
        on_channel = set(self.twin_channels.sids())
        return [{"username": p.username, "role": p.role.value,
                 "twin_transport": "datachannel" if p.sid in on_channel else "socketio",
                 "twin_states_dropped": (self.twin_channels.dropped(p.sid) if p.sid in on_channel
                                         else self._twin_states_dropped(p.sid)),
                 "video_out": None if (out := self.media.video_out(p.sid)) is None
                 else out.as_dict()} for p in members]

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
        self._record(info.session_id, "participant", {"op": "left", **info.as_dict()})
        if ended:
            with self._lock:
                self._cameras.pop(info.session_id, None)
                self._freezes.pop(info.session_id, None)
                self._drawn.pop(info.session_id, None)
                self._devices.pop(info.session_id, None)
            if self.hmi_cameras is not None:
                self.hmi_cameras.session_ended(info.session_id)
            if self.marker_aligner is not None:
                self.marker_aligner.session_ended(info.session_id)
            if self.recordings is not None and self.recordings.active(info.session_id) is not None:
                self._stop_recording(info.session_id, "session ended")
            self.media.set_session_cap(info.session_id, None)
            log.info("XR session %s ended", info.session_id)
        else:
            self._broadcast_state(info)

    # ---------------------------------------------------------------------------- recording
    def session_record(self, claims: TokenClaims, request: SessionRecord) -> dict:
        participant = self.registry.participant(request.session, self._sid())
        if self.recordings is None:
            raise SessionError("recording needs a recordings folder: this server has none")
        info = self.registry.info(request.session)
        if request.record:
            if participant.role is not ParticipantRole.EXPERT:
                raise SessionError(f"only an expert of session {request.session} starts a recording")
            started = self.recordings.start(request.session, info.cell, claims.username)
            recorder = self.recordings.active(request.session)
            self._record(request.session, "participant", {"op": "present", **info.as_dict()})
            if recorder is not None:
                self._gateway.start()
                self._gateway.call(self.media.record, request.session, recorder.next_video_path,
                                   timeout_s=SIGNALLING_TIMEOUT_S)
            answer = {"session": request.session, "recording": started.as_dict()}
        else:
            answer = {"session": request.session,
                      "recording": self._stop_recording(request.session, claims.username).as_dict()}
        self._broadcast_state(info)
        return answer

    def stop_recordings(self) -> None:
        """Finish every active recording (server shutdown), video files included."""
        if self.recordings is None:
            return
        for session_id in self.recordings.active_sessions():
            try:
                self._stop_recording(session_id, "server stopped")
            except SessionError:
                pass

    def _stop_recording(self, session_id: str, actor: str):
        if self._gateway.running:
            try:
                self._gateway.call(self.media.stop_recording, session_id, timeout_s=SIGNALLING_TIMEOUT_S)
            except GatewayError:
                log.warning("finishing the video of session %s failed", session_id, exc_info=True)
        return self.recordings.stop(session_id, actor)

    # --------------------------------------------------------------------------- video cap
    def session_video_cap(self, claims: TokenClaims, request: SessionVideoCap) -> dict:
        """Cap (or uncap) every video the server sends in the session, at once; audited."""
        participant = self.registry.participant(request.session, self._sid())
        if participant.role is not ParticipantRole.EXPERT:
            raise SessionError(f"only an expert of session {request.session} sets its video cap")
        info = self.registry.info(request.session)
        previous = self.media.set_session_cap(request.session, request.max_bitrate_kbps)
        videos = 0
        if self._gateway.running:
            videos = self._gateway.call(self.media.apply_session_cap, request.session,
                                        timeout_s=SIGNALLING_TIMEOUT_S)
        change = {"session": request.session, "max_bitrate_kbps": request.max_bitrate_kbps,
                  "previous_kbps": previous, "videos": videos}
        log.info("%s set the video cap of session %s: %s -> %s kbit/s (%d videos)",
                 claims.username, request.session, previous, request.max_bitrate_kbps, videos)
        self._record(request.session, "video_cap", {**change, "by": claims.username})
        if self._audit is not None:
            try:
                self._audit("video_cap", claims.username, change,
                            "session video cap " + ("lifted" if request.max_bitrate_kbps is None
                                                    else f"{request.max_bitrate_kbps} kbit/s"))
            except Exception:  # noqa: BLE001 - the audit counts its own losses; the cap stands
                log.exception("audit of the video cap failed")
        self._broadcast_state(info)
        return change

    # ---------------------------------------------------------------------------- signalling
    def rtc_offer(self, claims: TokenClaims, request: RtcOffer) -> dict:
        sid = self._sid()
        participant = self.registry.participant(request.session, sid)
        check_sdp(request.sdp)
        if request.composited and participant.role is not ParticipantRole.WORKER:
            raise SessionError("field 'composited': only the worker of session "
                               f"{request.session} receives the composited view")
        if request.device is not None and participant.role is not ParticipantRole.WORKER:
            raise SessionError(f"field 'device': only the worker of session {request.session} "
                               "sends from an HMI device")
        offer = RTCSessionDescription(sdp=request.sdp, type=request.type)
        self._gateway.start()
        if participant.role is ParticipantRole.WORKER:
            with self._lock:
                self._devices[request.session] = request.device
            answer = self._gateway.call(self.media.publish, request.session, sid, offer,
                                        request.composited, request.max_bitrate_kbps,
                                        timeout_s=SIGNALLING_TIMEOUT_S)
        else:
            answer = self._gateway.call(self.media.subscribe, request.session, sid, offer,
                                        request.max_bitrate_kbps, timeout_s=SIGNALLING_TIMEOUT_S)
        try:
            self.registry.participant(request.session, sid)
        except SessionError:  # left or disconnected while the offer was answered
            self._gateway.call(self.media.close, sid, timeout_s=SIGNALLING_TIMEOUT_S)
            raise
        message = {"session": request.session, "type": answer.type, "sdp": answer.sdp}
        flask_socketio.emit("rtc_answer", message)
        return message

    # --------------------------------------------------------------------------- annotations
    def hmi_camera(self, claims: TokenClaims, request: HmiCameraPose) -> dict:
        participant = self.registry.participant(request.session, self._sid())
        if participant.role is not ParticipantRole.WORKER:
            raise SessionError(f"only the worker of session {request.session} reports its camera")
        x, y, z = request.position_m
        qx, qy, qz, qw = request.orientation
        camera = CameraPose((x, y, z), (qx, qy, qz, qw), request.hfov_deg, request.aspect)
        with self._lock:
            self._cameras[request.session] = camera
        if self.hmi_cameras is not None:
            self.hmi_cameras.pose(request.session, request.position_m, request.orientation,
                                  request.hfov_deg, request.aspect, request.principal_point)
        return {"session": request.session}

    def _aligner(self, claims: TokenClaims, session_id: str, what: str) -> MarkerAligner:
        participant = self.registry.participant(session_id, self._sid())
        if participant.role is not ParticipantRole.WORKER:
            raise SessionError(f"only the worker of session {session_id} {what}")
        if self.marker_aligner is None:
            raise SessionError("marker registration needs markers in the cell file (markers:): "
                               "this cell declares none")
        return self.marker_aligner

    def xr_viewer_pose(self, claims: TokenClaims, request: XrViewerPose) -> dict:
        self._aligner(claims, request.session, "reports its WebXR viewer pose").viewer_pose(
            request.session, request.position, request.orientation, request.hfov_deg,
            request.aspect, request.principal_point)
        return {"session": request.session}

    def marker_align(self, claims: TokenClaims, request: MarkerAlign) -> dict:
        """Register the worker's HMI from a marker (blocks this handler thread up to about 2 s)."""
        aligner = self._aligner(claims, request.session, "registers its HMI with a marker")
        alignment = aligner.align(request.session)
        answer = {"session": request.session, **alignment.as_dict()}
        log.info("%s registered the cell with marker %d in session %s: %s", claims.username,
                 alignment.marker_id, request.session, answer)
        self._record(request.session, "alignment", answer)
        if self._audit is not None:
            try:
                self._audit("alignment_change", claims.username, answer,
                            f"HMI registered with marker {alignment.marker_id}: spread "
                            f"{alignment.spread_mm:.1f} mm, {alignment.spread_deg:.2f} deg, "
                            f"reprojection {alignment.reprojection_px:.2f} px over "
                            f"{alignment.frames_used} frames")
            except Exception:  # noqa: BLE001 - the audit log's problem must not refuse the answer
                log.exception("audit of the marker registration failed")
        return answer

    def freeze_frame(self, claims: TokenClaims, request: FreezeFrame) -> dict:
        """Pin the worker's camera pose of now for annotations drawn on a frozen frame."""
        participant = self.registry.participant(request.session, self._sid())
        if participant.role is not ParticipantRole.EXPERT:
            raise SessionError(f"only an expert of session {request.session} freezes a frame")
        with self._lock:
            freeze = next(self._freeze_ids)
            pinned = self._freezes.setdefault(request.session, {})
            pinned[freeze] = self._cameras.get(request.session)
            while len(pinned) > MAX_FREEZES:
                del pinned[next(iter(pinned))]           # the oldest
        return {"session": request.session, "freeze": freeze}

    def _camera(self, session_id: str, freeze: int | None) -> CameraPose | None:
        """The worker's camera pose: pinned by freeze-frame `freeze`, else the newest; None
        before the first report.

        Raises:
            SessionError: `freeze` is not a freeze-frame of the session (or a forgotten one).
        """
        with self._lock:
            if freeze is None:
                return self._cameras.get(session_id)
            pinned = self._freezes.get(session_id, {})
            if freeze not in pinned:
                raise SessionError(f"field 'freeze': no freeze-frame {freeze} in session "
                                   f"{session_id}: freeze the frame again")
            return pinned[freeze]

    def _anchor(self, session_id: str, kind: str, points: list[list[float]],
                freeze: int | None = None) -> Anchor | None:
        camera = self._camera(session_id, freeze)
        if camera is None:
            return None
        capsules: Sequence[SceneCapsule] = ()
        if self._anchor_scene is not None:
            try:
                capsules = self._anchor_scene()
            except Exception:  # noqa: BLE001 - the floor still anchors the annotation
                log.exception("anchor scene unavailable; anchoring on the floor")
        return anchor_in_scene(camera, *anchor_point(kind, points), capsules)

    def annotation_create(self, claims: TokenClaims, request: AnnotationCreate) -> dict:
        participant = self.registry.participant(request.session, self._sid())
        if participant.role is not ParticipantRole.EXPERT:
            raise SessionError(f"only an expert of session {request.session} may place annotations")
        check_geometry(request.kind, request.points, request.radius, request.text)
        info = self.registry.info(request.session)
        try:
            anchor = self._anchor(request.session, request.kind, request.points, request.freeze)
            stored = self._store().add(request.session, info.cell, claims.username, request.kind,
                                       request.points, request.radius, request.text, request.color,
                                       None if anchor is None else anchor.position_m,
                                       "floor" if anchor is None else anchor.on)
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
                      else self._anchor(request.session, current.kind, request.points,
                                        request.freeze))
            stored = store.update(request.id, request.session, claims.username,
                                  points=request.points, radius=request.radius, text=request.text,
                                  color=request.color,
                                  anchor_m=None if anchor is None else anchor.position_m,
                                  anchor_on="floor" if anchor is None else anchor.on)
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
                        ("session_record", SessionRecord),
                        ("session_video_cap", SessionVideoCap),
                        ("rtc_offer", RtcOffer), ("hmi_camera", HmiCameraPose),
                        ("xr_viewer_pose", XrViewerPose), ("marker_align", MarkerAlign),
                        ("freeze_frame", FreezeFrame),
                        ("annotation_create", AnnotationCreate),
                        ("annotation_update", AnnotationUpdate),
                        ("annotation_delete", AnnotationDelete)):
        client_event(name, model)(getattr(events, name))

