"""The JSON bodies of the REST API and the payloads of the Socket.IO events, as pydantic models.

One definition serves three purposes: validating what a network peer sends (`parse`, which never
raises anything but `PayloadError` with a message naming the field), the OpenAPI document
(`xr_server.openapi` turns every model here into a component schema) and the docs.

Client payloads are strict: a string must be a JSON string, unknown fields are refused.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

import pydantic
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator


class PayloadError(ValueError):
    """A body or event payload from a client does not match its model; the message names the field
    and is safe to send back."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --------------------------------------------------------------------------------- REST bodies
class LoginRequest(_Strict):
    """Body of ``POST /api/login``."""

    username: str = Field(description="Login name.")
    password: str = Field(description="Password; sent over TLS only in production.")


class LoginResponse(_Out):
    """Answer of a successful ``POST /api/login``; the same token is also set as the
    ``xrcell_token`` cookie (HttpOnly, SameSite=Strict)."""

    token: str = Field(description="Signed session token for `Authorization: Bearer` or Socket.IO `auth.token`.")
    roles: list[Literal["worker", "expert", "supervisor", "operator", "admin"]]
    expires_s: int = Field(description="Seconds the token stays valid from now.")


class LogoutResponse(_Out):
    """Answer of ``POST /api/logout``."""

    ok: Literal[True]
    revoked: bool = Field(description="A valid token came with the request and is now revoked on the server.")


class Me(_Out):
    """Answer of ``GET /api/me``."""

    username: str
    roles: list[str] = Field(description="Roles of the token that the account still holds.")
    cell: str = Field(description="The cell this server shows.")


class ResetAnswer(_Out):
    """Answer of ``POST /api/safety/reset`` (HTTP 200 accepted, 403 role refused, 409 refused)."""

    accepted: bool
    reason: str = Field(description="The monitor's reason; starts with `role:` when the caller's roles were refused.")


class Error(_Out):
    """Every JSON error of the API."""

    error: str = Field(description="What went wrong, in words; safe to show to the user.")


class SafetyEvent(_Out):
    """One record of the safety audit log (`safety.audit`): hash-chained, append-only."""

    seq: int = Field(description="Position in the log, from 1, no gaps.")
    t: float = Field(description="UNIX seconds of the append.")
    stamp_ns: int = Field(description="Monotonic clock of the appending process, ns.")
    kind: str = Field(description="`mode_change`, `gate_answer`, `reset`, `zone_change`, ...")
    actor: str = Field(description="Who caused it: a user name, `monitor` or `program`.")
    inputs: dict = Field(description="Summary of the inputs of the decision.")
    reason: str = Field(description="The decision in words.")
    prev_hash: str = Field(description="SHA-256 (hex) of the previous record; 64 zeros for the first.")
    hash: str = Field(description="SHA-256 (hex) of this record's canonical bytes and `prev_hash`.")


class SafetyEventPage(_Out):
    """Answer of ``GET /api/safety/events``."""

    events: list[SafetyEvent] = Field(description="Ascending by `seq`.")
    next_after_seq: int | None = Field(description="Pass as `after_seq` for the next page; null on the last page.")
    head_seq: int = Field(description="Newest `seq` in the log; 0 when it is empty.")


class ComponentHealth(_Out):
    """State of one input of the cell as the server sees it."""

    status: Literal["ok", "degraded"]
    age_ms: float | None = Field(description="Age of the newest record, ms (monotonic clock); null: none yet.")
    reason: str = Field(description="Why degraded; empty when ok.")
    mode: str | None = Field(default=None, description="Monitor only: the safety mode.")
    cameras: dict[str, float | None] | None = Field(
        default=None, description="Tracking only: camera id -> age of its newest frame, ms.")


class Health(_Out):
    """Answer of ``GET /healthz``."""

    status: Literal["ok", "degraded"] = Field(description="`degraded` when any component is.")
    components: dict[str, ComponentHealth] = Field(
        description="`robot`, `tracking`, `monitor`: those this server was given.")


class TrajectoryPoint(_Strict):
    """One point of a joint trajectory (trajectory_msgs/JointTrajectoryPoint semantics)."""

    positions: list[float] = Field(
        description="Joint positions, radians, in the order of `joint_names`.")
    time_from_start_s: float = Field(
        description="When the point is due, seconds from the goal's start; strictly increasing, "
                    "the first >= 0 (0: start here).")


class JointTrajectoryRequest(_Strict):
    """Body of ``POST /api/robot/trajectory``: a joint trajectory goal for the cell's robot
    (trajectory_msgs/JointTrajectory semantics), checked by the command gate before any robot
    sees it."""

    joint_names: list[str] = Field(min_length=1, max_length=32,
                                   description="The robot's joint names.")
    points: list[TrajectoryPoint] = Field(min_length=1, max_length=10_000)
    goal_id: str = Field("", max_length=64,
                         description="Reported back as the robot state's goal id.")


class CommandAnswer(_Out):
    """Answer of the command gate to a robot command (HTTP 200 forwarded, 403 role refused,
    409 refused by another rule)."""

    verdict: Literal["accepted", "modified", "rejected"]
    reason: str = Field(description="`forwarded`; `shortened: ...` (modified: where it stops and why; submit the rest once the way is clear); or the rule that refused it (`role:`, `mode:`, "
                                    "`limits:`, `keep-out:`, `schema:`, `robot:` ...).")
    rest: JointTrajectoryRequest | None = Field(
        None, description="`modified` trajectories only: the part that was not forwarded, re-timed "
                          "to start from rest where the forwarded part stops (same `goal_id`); "
                          "POST it once the forwarded goal is done and the way is clear (the gate "
                          "checks it again). Absent otherwise.")


# --------------------------------------------------------------------------- Socket.IO payloads
class TwinStateRequest(_Strict):
    """Client event ``twin_state_request``: send me the newest ``twin_state`` now."""

    cell: str = Field(description="The cell; must be the one this server shows.")


_SESSION_ID = Field(pattern=r"^[0-9a-f]{16}$", description="The session id: 16 lowercase hex digits.")
_UV = Field(min_length=2, max_length=2)
_COLOR = Field(default="#ffcc00", pattern=r"^#[0-9a-fA-F]{6}$", description="`#rrggbb`.")
_FREEZE = Field(default=None, ge=1, description=(
    "The freeze-frame drawn on (the id `freeze_frame` answered), null for the live view. The 3D "
    "anchor uses the worker's camera pose pinned when the frame was frozen, however long ago."))


class SessionCreate(_Strict):
    """Client event ``session_create``: open a session in this cell as its worker (roles
    `worker`, `admin`)."""

    cell: str = Field(description="The cell; must be the one this server shows.")


class SessionJoin(_Strict):
    """Client event ``session_join``: join an open session as its worker (the user who created
    it, after a reconnect) or as an expert (roles `expert`, `supervisor`, `admin`)."""

    session: str = _SESSION_ID
    role: Literal["worker", "expert"] = Field(description="The part to play in the session.")


class SessionLeave(_Strict):
    """Client event ``session_leave``: leave the session (its video connection is closed)."""

    session: str = _SESSION_ID


class SessionRecord(_Strict):
    """Client event ``session_record``: start (an expert of the session) or stop (any participant)
    recording the session: twin, events and the worker's video (`xr_server.recording`)."""

    session: str = _SESSION_ID
    record: bool = Field(description="True starts a recording, false stops it.")


class SessionVideoCap(_Strict):
    """Client event ``session_video_cap``: an expert of the session (an expert, supervisor or
    admin account joined as expert) caps every video the server sends in the session, at once and
    until changed: the lowest of the cell's, the connection's and this cap applies."""

    session: str = _SESSION_ID
    max_bitrate_kbps: int | None = Field(ge=250, le=20000, description=(
        "The session's cap, kbit/s, 250 to 20000 (W3C `RTCRtpEncodingParameters.maxBitrate`); "
        "null lifts it."))


class Recording(_Out):
    """A recording of an XR session (its ``manifest.json``, `xr_server.recording`)."""

    recording: str = Field(description="`<session>-<YYYYmmddTHHMMSSZ>`.")
    session: str
    cell: str
    started_by: str
    started_at: float = Field(description="UNIX seconds.")
    stopped_by: str | None
    stopped_at: float | None = Field(description="UNIX seconds; null while recording.")
    twin_rate_hz: float
    files: list[str] = Field(description="File names, for `GET /api/recordings/<recording>/<name>`.")


class RecordingList(_Out):
    """Answer of ``GET /api/recordings``."""

    recordings: list[Recording]


class SessionListRequest(_Strict):
    """Client event ``session_list``: the open sessions of a cell (roles `expert`, `supervisor`, `admin`)."""

    cell: str = Field(description="The cell; must be the one this server shows.")


class RtcOffer(_Strict):
    """Client event ``rtc_offer``: a W3C `RTCSessionDescriptionInit` of type offer, sent once ICE
    gathering is complete (no trickled candidates). From the session's worker it sends the camera;
    from an expert it receives the worker's video."""

    session: str = _SESSION_ID
    type: Literal["offer"] = Field(description="Always `offer`: the server answers.")
    sdp: str = Field(max_length=65536, description="The offer's SDP with all ICE candidates, at most 64 KiB.")
    composited: bool = Field(default=False, description=(
        "The worker only: send the camera back with the twin drawn in (needs a sendrecv video "
        "transceiver; drawn from the pose of the newest `hmi_camera`)."))
    device: str | None = Field(default=None, min_length=1, max_length=128, description=(
        "The worker only: the HMI's device id, for a cell that uses that device as a camera "
        "(cell file `cameras`, `kind: hmi`, `device`)."))
    max_bitrate_kbps: int | None = Field(default=None, ge=250, le=20000, description=(
        "Cap of the video the server sends on this connection (the worker's composited view, an "
        "expert's relay), kbit/s, 250 to 20000 (W3C `RTCRtpEncodingParameters.maxBitrate`); the "
        "server's own cap applies too. The resolution steps down while the budget is low."))


def _inside_image(value: list[float]) -> list[float]:
    if not all(0.0 < c < 1.0 for c in value):
        raise ValueError(f"must be inside the image (each from 0 to 1), got {value}")
    return value


#: A principal point (u, v), fractions of the image width and height, strictly inside the image.
_PrincipalPoint = Annotated[list[float], Field(min_length=2, max_length=2),
                           AfterValidator(_inside_image)]


class HmiCameraPose(_Strict):
    """Client event ``hmi_camera`` (the session's worker): where the HMI's camera is, so that
    annotations get a 3D anchor in the `cell` frame and, where the cell uses the HMI as a camera,
    its frames join worker tracking. Send again whenever it moves (for tracking, with every
    WebXR frame or at least as often as the cell's `max_pose_age_s` asks: a video frame is used
    only with a pose received within that time of its capture)."""

    session: str = _SESSION_ID
    position_m: list[float] = Field(min_length=3, max_length=3, description="Optical centre, m, `cell` frame.")
    orientation: list[float] = Field(min_length=4, max_length=4, description=(
        "Unit quaternion (x, y, z, w) of the optical frame (x right, y down, z forward) in the `cell` frame."))
    hfov_deg: float = Field(description="Horizontal field of view, degrees.")
    aspect: float = Field(description="Image width / height.")
    principal_point: _PrincipalPoint = Field(default=[0.5, 0.5], description=(
        "Principal point (u, v) as fractions of the image width and height (WebXR's projection "
        "matrix gives it); the image centre by default."))


class XrViewerPose(_Strict):
    """Client event ``xr_viewer_pose`` (the session's worker, in WebXR ``immersive-ar``): the pose
    of the first XRView of the viewer in the ``local-floor`` reference space, as WebXR gives it
    (XRRigidTransform), for a marker registration (``marker_align``). Send it with every XR
    frame (at least every 100 ms) while a registration runs: a video frame is used with the pose
    received within 0.1 s of its capture."""

    session: str = _SESSION_ID
    position: list[float] = Field(min_length=3, max_length=3, description=(
        "The view's position in local-floor, metres (XRRigidTransform.position)."))
    orientation: list[float] = Field(min_length=4, max_length=4, description=(
        "Unit quaternion (x, y, z, w) of the view in local-floor (it looks along its -z, y up)."))
    hfov_deg: float = Field(gt=0, lt=180, description="Horizontal field of view, degrees.")
    aspect: float = Field(gt=0, description="Image width / height.")
    principal_point: _PrincipalPoint = Field(
        default=[0.5, 0.5],
        description="Principal point (u, v) as fractions of the image width and height.")

    @field_validator("orientation")
    @classmethod
    def _unit(cls, value: list[float]) -> list[float]:
        norm = sum(q * q for q in value) ** 0.5
        if not abs(norm - 1.0) < 1e-3:
            raise ValueError(f"must be a unit quaternion (x, y, z, w), got norm {norm:.4f}")
        return value


class MarkerAlign(_Strict):
    """Client event ``marker_align`` (the session's worker, while its video and ``xr_viewer_pose``
    reach the server): register the cell in the HMI's WebXR local-floor space from a marker of
    the cell file seen in the video (`xr_server.marker_alignment`). Answers, after up to about
    2 s, ``{session, origin, yaw_rad, marker, frames_used, frames_seen, reprojection_px,
    spread_mm, spread_deg, tilt_deg}`` (the alignment as the manual step stores it, and its
    residuals) or an error saying why it was refused."""

    session: str = _SESSION_ID


class AnnotationCreate(_Strict):
    """Client event ``annotation_create`` (experts of the session): a mark on the worker's view,
    in normalised image coordinates (u right, v down, each 0 to 1)."""

    session: str = _SESSION_ID
    kind: Literal["arrow", "circle", "label", "stroke"]
    points: list[list[float]] = Field(min_length=1, max_length=256, description=(
        "`[[u, v], ...]`: arrow `[tail, head]`, circle `[centre]`, label `[anchor]`, stroke "
        "(freehand) 2 to 256 points along the line."))
    radius: float | None = Field(default=None, gt=0, le=1, description="Circle only: fraction of the image width.")
    text: str = Field(default="", max_length=200, description="Label text (required for a label), or a caption.")
    color: str = _COLOR
    ref: str = Field(default="", max_length=64, description="The client's own id, echoed in the `annotation` event.")
    freeze: int | None = _FREEZE


class AnnotationUpdate(_Strict):
    """Client event ``annotation_update`` (its author only): new values for the given fields."""

    session: str = _SESSION_ID
    id: int = Field(description="The annotation id.")
    points: list[list[float]] | None = Field(default=None, min_length=1, max_length=256)
    radius: float | None = Field(default=None, gt=0, le=1)
    text: str | None = Field(default=None, max_length=200)
    color: str | None = Field(default=None, pattern=r"^#[0-9a-fA-F]{6}$")
    freeze: int | None = _FREEZE


class FreezeFrame(_Strict):
    """Client event ``freeze_frame`` (an expert of the session): the expert froze its view of
    the worker's video; the server pins the worker's camera pose of now and answers
    ``{session, freeze}``, the id that annotations drawn on that frame carry."""

    session: str = _SESSION_ID


class AnnotationDelete(_Strict):
    """Client event ``annotation_delete`` (its author only)."""

    session: str = _SESSION_ID
    id: int = Field(description="The annotation id.")


class SocketError(_Out):
    """Server event ``error``: a client event was refused, or the session ended."""

    event: str = Field(description="The client event refused (`connect` when the session ended).")
    error: str = Field(description="Why, naming the field for a malformed payload.")


#: Every model, by the name it has in the OpenAPI components.
MODELS: tuple[type[BaseModel], ...] = (
    LoginRequest, LoginResponse, LogoutResponse, Me, ResetAnswer, Error, SafetyEvent, SafetyEventPage,
    ComponentHealth, Health, TrajectoryPoint, JointTrajectoryRequest, CommandAnswer, TwinStateRequest,
    SocketError, SessionCreate, SessionJoin, SessionLeave, SessionRecord, Recording, RecordingList,
    SessionListRequest, RtcOffer, HmiCameraPose,
    AnnotationCreate, AnnotationUpdate, AnnotationDelete)

_M = TypeVar("_M", bound=BaseModel)


def _fields(model: type[BaseModel]) -> str:
    names = [f"'{n}'" for n in model.model_fields]
    if not names:
        return ""
    if len(names) == 1:
        return f" with field {names[0]}"
    return f" with fields {', '.join(names[:-1])} and {names[-1]}"


def describe(exc: pydantic.ValidationError, model: type[BaseModel], what: str) -> str:
    """One line naming each wrong field of `exc` (a failed validation of `model`); `what` names the
    whole input ("body", "payload")."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        kind = err["type"]
        if not loc:
            parts.append(f"{what} must be a JSON object{_fields(model)}")
        elif kind == "missing":
            parts.append(f"missing field '{loc}'")
        elif kind == "extra_forbidden":
            parts.append(f"unexpected field '{loc}'")
        elif kind == "string_type":
            parts.append(f"field '{loc}' must be a string")
        else:
            parts.append(f"field '{loc}': {err['msg']}")
    return "; ".join(parts)


def parse(model: type[_M], data: object, what: str) -> _M:
    """`data` (decoded JSON) as `model`; raises `PayloadError` with `describe`'s message."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise PayloadError(describe(exc, model, what)) from None
