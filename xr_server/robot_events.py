"""Robot commands from users: the Socket.IO ``robot_command`` event and its REST equivalents.

Every motion command (``jog_joint``, ``jog_cartesian``, ``trajectory``, ``gripper``; ``goto``
once `xr_server.robot_goto` planned it into a trajectory) is handed to the command gate
(`safety.gate.CommandGate.submit`), which checks the role, the mode, the limits, the keep-out
zones and the people and answers; ``stop`` goes to the safety monitor's stop request
(`safety.monitor.SafetyMonitor.request_stop`, any signed-in user may stop), ``reset`` to its reset
(`SafetyMonitor.reset`, supervisor or admin). The answer goes back to the sender only, as the
event's acknowledgement: ``{kind, verdict, reason, goal_id}``.

Payloads are validated in two steps, so that an error names the field of the command the client
meant: ``kind`` first, then the model of that kind (strict: unknown fields are refused).

Threads: `RobotCommandRouter.handle` runs in Socket.IO handler and request threads; it keeps no
state of its own (the gate and the monitor are thread-safe).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Callable, Literal

import flask
from pydantic import BaseModel, ConfigDict, Field

from robot_bridge.commands import FRANKA_HAND_MAX_FORCE_N, FRANKA_HAND_MAX_OPENING_M
from robot_bridge.errors import CommandError
from robot_bridge.types import CartesianJog, GripperCommand, JointJog, JointTrajectory
from safety.gate import MOTION_ROLES, Actor, GateAnswer, Verdict
from xr_server.api_models import PayloadError, TrajectoryPoint, parse
from xr_server.errors import XrServerError
from xr_server.robot_goto import GotoPlanner, GotoRefused

log = logging.getLogger(__name__)

#: ``(actor_name, roles, reason) -> (accepted, reason)``, e.g. `SafetyMonitor.request_stop`.
SafetyStop = Callable[[str, frozenset[str], str], tuple[bool, str]]
#: ``(actor_name, roles) -> (accepted, reason)``, e.g. `SafetyMonitor.reset`.
SafetyReset = Callable[[str, frozenset[str]], tuple[bool, str]]
#: ``(command, actor) -> GateAnswer``: `CommandGate.submit`.
Submit = Callable[[object, Actor], GateAnswer]

_GOAL_ID = Field("", max_length=64, description="Reported back as the robot state's goal id.")
_Vector3 = Annotated[list[float], Field(min_length=3, max_length=3)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class JogJointRequest(_Strict):
    """A joint jog (control_msgs/JointJog semantics): ``robot_command`` kind ``jog_joint`` and
    the body of ``POST /api/robot/jog``. Give `velocities` or `displacements`, not both. A velocity
    jog is held for the gate's deadman timeout (0.2 s by default), then the robot ramps to rest
    unless a newer jog arrived: send jogs continuously (e.g. every 50 ms) while the button is
    held."""

    kind: Literal["jog_joint"]
    joint_names: list[str] = Field(min_length=1, max_length=32,
                                   description="Jogged joints (any subset).")
    velocities: list[float] | None = Field(None, max_length=32,
                                           description="rad/s, one per joint name.")
    displacements: list[float] | None = Field(
        None, max_length=32, description="radians relative to now, one per joint name.")
    duration_s: float = Field(0.0, ge=0.0, le=10.0, description=(
        "Seconds: the time to cover `displacements` (required > 0 with them); with `velocities` a "
        "hold shorter than the deadman timeout (0: the timeout)."))
    goal_id: str = _GOAL_ID


class JogCartesianRequest(_Strict):
    """A Cartesian jog of the TCP (geometry_msgs/TwistStamped semantics): ``robot_command`` kind
    ``jog_cartesian`` and the body of ``POST /api/robot/jog``. Held for the deadman timeout like a
    joint jog; the TCP speed is limited to 0.25 m/s (manual reduced speed)."""

    kind: Literal["jog_cartesian"]
    frame_id: Literal["cell", "tool"] = Field("cell", description="Frame of both vectors.")
    linear_mps: _Vector3 = Field(default_factory=lambda: [0.0, 0.0, 0.0],
                                 description="m/s (x, y, z).")
    angular_radps: _Vector3 = Field(default_factory=lambda: [0.0, 0.0, 0.0],
                                    description="rad/s (x, y, z).")
    goal_id: str = _GOAL_ID


class TrajectoryCommandRequest(_Strict):
    """``robot_command`` kind ``trajectory``: as the body of ``POST /api/robot/trajectory``."""

    kind: Literal["trajectory"]
    joint_names: list[str] = Field(min_length=1, max_length=32)
    points: list[TrajectoryPoint] = Field(min_length=1, max_length=10_000)
    goal_id: str = _GOAL_ID


class GotoRequest(_Strict):
    """"Go to a pose": ``robot_command`` kind ``goto`` and the body of ``POST /api/robot/goto``.
    Give exactly one target: `named_pose` (a name of ``GET /api/robot/named_poses``), `positions`
    (a joint target) or `tcp_position_m` (a TCP target, the TCP's orientation kept). The server
    plans the trajectory from the robot at rest (`xr_server.robot_goto`) and hands it to the gate.
    """

    kind: Literal["goto"]
    named_pose: str | None = Field(None, min_length=1, max_length=32,
                                   description="A named pose of the cell (`robot.named_poses`).")
    positions: list[float] | None = Field(None, max_length=32, description=(
        "Joint target, radians, one per robot joint in the order of `joint_names`."))
    tcp_position_m: _Vector3 | None = Field(None, description=(
        "TCP target (x, y, z), metres, `cell` frame; solved by inverse kinematics."))
    goal_id: str = _GOAL_ID


class GripperCommandRequest(_Strict):
    """A gripper goal (control_msgs/GripperCommand semantics): ``robot_command`` kind ``gripper``
    and the body of ``POST /api/robot/gripper``."""

    kind: Literal["gripper"]
    position_m: float = Field(ge=0.0, le=FRANKA_HAND_MAX_OPENING_M,
                              description="Finger opening, metres (Franka Hand 0 .. 0.08).")
    max_effort_n: float = Field(40.0, gt=0.0, le=FRANKA_HAND_MAX_FORCE_N,
                                description="Grasp force limit, newtons (Franka Hand at most 140).")
    goal_id: str = _GOAL_ID


class StopCommandRequest(_Strict):
    """``robot_command`` kind ``stop`` and the body of ``POST /api/robot/stop``: a protective stop
    (any signed-in user); latched until a supervisor resets it."""

    kind: Literal["stop"]
    reason: str = Field("", max_length=200, description="Why, in words (audited).")


class ResetCommandRequest(_Strict):
    """``robot_command`` kind ``reset``: clear a latched fault stop (supervisor or admin), as
    ``POST /api/safety/reset``."""

    kind: Literal["reset"]


class RobotCommandAnswer(BaseModel):
    """The acknowledgement of ``robot_command`` (and the answer of the REST routes)."""

    model_config = ConfigDict(frozen=True)

    kind: str = Field(description="The command's kind.")
    verdict: Literal["accepted", "modified", "rejected"]
    reason: str = Field(
        description="`forwarded`, the changes made (modified), or the rule that refused it.")
    goal_id: str = Field("", description="The command's goal id (motion commands).")


ROBOT_COMMANDS: dict[str, type[_Strict]] = {
    "jog_joint": JogJointRequest, "jog_cartesian": JogCartesianRequest,
    "trajectory": TrajectoryCommandRequest, "gripper": GripperCommandRequest,
    "goto": GotoRequest, "stop": StopCommandRequest, "reset": ResetCommandRequest,
}
#: The models of this module, for the OpenAPI components.
ROBOT_MODELS: tuple[type[BaseModel], ...] = (*ROBOT_COMMANDS.values(), RobotCommandAnswer)


class RobotCommandEnvelope(BaseModel):
    """What ``client_event`` validates first: an object with a string ``kind``; the rest is
    validated by `parse_robot_command` against the model of that kind."""

    model_config = ConfigDict(extra="allow", frozen=True)

    kind: str


def parse_robot_command(data: object, kinds: tuple[str, ...] = tuple(ROBOT_COMMANDS)) -> _Strict:
    """A ``robot_command`` payload (decoded JSON) as the model of its ``kind``.

    Raises:
        PayloadError: not an object, a missing or unknown ``kind`` (only `kinds` allowed), or a
            field that does not match the kind's model; the message names the field.
    """
    if not isinstance(data, dict):
        raise PayloadError("payload must be a JSON object with field 'kind'")
    kind = data.get("kind")
    if kind not in kinds:
        raise PayloadError(f"field 'kind' must be one of {', '.join(kinds)}; got {kind!r}")
    model = ROBOT_COMMANDS[kind]
    request = parse(model, data, "payload")
    if isinstance(request, JogJointRequest):
        given = [n for n in ("velocities", "displacements") if getattr(request, n) is not None]
        if len(given) != 1:
            raise PayloadError("give exactly one of fields 'velocities' or 'displacements'")
        values = getattr(request, given[0])
        if len(values) != len(request.joint_names):
            raise PayloadError(f"field '{given[0]}': expected {len(request.joint_names)} values "
                               f"(one per joint name), got {len(values)}")
        if given[0] == "displacements" and request.duration_s <= 0:
            raise PayloadError("field 'duration_s' must be > 0 with 'displacements'")
    elif isinstance(request, GotoRequest):
        given = [n for n in ("named_pose", "positions", "tcp_position_m")
                 if getattr(request, n) is not None]
        if len(given) != 1:
            raise PayloadError("give exactly one of fields 'named_pose', 'positions' or "
                               "'tcp_position_m'")
    elif isinstance(request, TrajectoryCommandRequest):
        for i, point in enumerate(request.points):
            if len(point.positions) != len(request.joint_names):
                raise PayloadError(f"field 'points.{i}.positions': expected "
                                   f"{len(request.joint_names)} values (one per joint name), "
                                   f"got {len(point.positions)}")
    return request


def to_command(request: _Strict) -> object:
    """The robot command a motion request means (`JointJog`, `CartesianJog`, `JointTrajectory`,
    `GripperCommand`).

    Raises:
        PayloadError: the values are not a valid command (non-finite, times not increasing...).
    """
    try:
        if isinstance(request, JogJointRequest):
            return JointJog(tuple(request.joint_names), velocities=request.velocities or [],
                            displacements=request.displacements or [],
                            duration_s=request.duration_s, goal_id=request.goal_id)
        if isinstance(request, JogCartesianRequest):
            return CartesianJog(request.frame_id, request.linear_mps, request.angular_radps,
                                request.goal_id)
        if isinstance(request, TrajectoryCommandRequest):
            return JointTrajectory(tuple(request.joint_names),
                                   [p.positions for p in request.points],
                                   [p.time_from_start_s for p in request.points],
                                   goal_id=request.goal_id)
        if isinstance(request, GripperCommandRequest):
            return GripperCommand(request.position_m, request.max_effort_n, request.goal_id)
    except (CommandError, ValueError) as exc:
        raise PayloadError(f"payload: {exc}") from None
    raise PayloadError(f"kind {getattr(request, 'kind', '?')!r} is not a motion command")


class RobotCommandRouter:
    """Hands each robot command to the gate or the safety monitor and words the answer.

    Thread safety: stateless; `handle` may be called from any thread.

    Args:
        submit: the gate's `submit` (None: motion commands are refused, "no command gate").
        goto: plans ``goto`` commands into the trajectory the gate gets (None: they are refused,
            "no go-to planner").
        audit: ``(kind, actor, inputs, reason)`` (`safety.audit.AuditLog.append`): told of every
            go-to the planner refuses before the gate (kind ``goto_refused``) and every command
            refused for the program (``program_refused``); the gate audits its own answers. None:
            not audited.
        request_stop: the monitor's `request_stop` (None: stops are refused, "no safety monitor").
        reset: the monitor's `reset` (None: resets are refused, "no safety monitor").
        program_refusal: ``goal_id -> reason | None``: why a person's motion command must be
            refused because of the robot program (`xr_server.program_events.ProgramControl.
            manual_motion_refusal`: the program is not paused, or the goal id is the program's);
            asked for senders with a motion role only (others get the gate's ``role:``). None: no
            program.
    """

    def __init__(self, submit: Submit | None, request_stop: SafetyStop | None,
                 reset: SafetyReset | None, goto: GotoPlanner | None = None,
                 audit: Callable[[str, str, dict, str], object] | None = None,
                 program_refusal: Callable[[str], str | None] | None = None) -> None:
        self._program_refusal = program_refusal
        self._submit = submit
        self._audit = audit
        self.goto = goto
        self._stop = request_stop
        self._reset = reset

    def handle(self, actor: Actor, request: _Strict) -> RobotCommandAnswer:
        """Carry out one validated request for `actor`.

        Raises:
            XrServerError: the server has no gate (motion), no monitor (stop, reset) or no go-to
                planner (goto).
            PayloadError: the values are not a valid command; an unknown named pose.
        """
        kind = str(getattr(request, "kind"))
        if isinstance(request, StopCommandRequest):
            if self._stop is None:
                raise XrServerError("no safety monitor: this server cannot stop a robot")
            ok, reason = self._stop(actor.name, actor.roles, request.reason)
            return RobotCommandAnswer(kind=kind, verdict="accepted" if ok else "rejected",
                                      reason=reason)
        if isinstance(request, ResetCommandRequest):
            if self._reset is None:
                raise XrServerError("no safety monitor: nothing to reset")
            ok, reason = self._reset(actor.name, actor.roles)
            return RobotCommandAnswer(kind=kind, verdict="accepted" if ok else "rejected",
                                      reason=reason)
        if self._submit is None:
            raise XrServerError("no command gate: this server drives no robot")
        if self._program_refusal is not None and actor.roles & MOTION_ROLES:
            goal_id = str(getattr(request, "goal_id", ""))
            refusal = self._program_refusal(goal_id)
            if refusal is not None:
                log.info("%s %r from %r refused: %s", kind, goal_id, actor.name, refusal)
                if self._audit is not None:
                    try:
                        self._audit("program_refused", actor.name or "?", {
                            "kind": kind, "goal_id": goal_id, "roles": sorted(actor.roles)}, refusal)
                    except Exception:  # noqa: BLE001 - the audit counts its own losses
                        log.exception("audit of a command refused for the program failed")
                return RobotCommandAnswer(kind=kind, verdict="rejected", reason=refusal,
                                          goal_id=goal_id)
        if isinstance(request, GotoRequest):
            if self.goto is None:
                raise XrServerError("no go-to planner: this server plans no go-to")
            try:
                command: object = self.goto.plan(
                    request.goal_id, named_pose=request.named_pose, positions=request.positions,
                    tcp_position_m=request.tcp_position_m)
            except KeyError as exc:
                raise PayloadError(f"field 'named_pose': {exc.args[0]}") from None
            except ValueError as exc:
                raise PayloadError(f"field 'positions': {exc}") from None
            except GotoRefused as exc:
                log.info("goto %r from %r refused: %s", request.goal_id, actor.name, exc)
                if self._audit is not None:
                    try:
                        self._audit("goto_refused", actor.name or "?", {
                            "goal_id": request.goal_id, "roles": sorted(actor.roles),
                            "named_pose": request.named_pose, "positions": request.positions,
                            "tcp_position_m": request.tcp_position_m}, str(exc))
                    except Exception:  # noqa: BLE001 - the audit counts its own losses
                        log.exception("audit of a refused go-to failed")
                return RobotCommandAnswer(kind=kind, verdict="rejected", reason=str(exc),
                                          goal_id=request.goal_id)
        else:
            command = to_command(request)
        answer = self._submit(command, actor)
        goal_id = str(getattr(command, "goal_id", ""))
        if answer.verdict is not Verdict.ACCEPTED:
            log.info("%s %r from %r: %s, %s", kind, goal_id, actor.name, answer.verdict.value,
                     answer.reason)
        return RobotCommandAnswer(kind=kind, verdict=answer.verdict.value, reason=answer.reason,
                                  goal_id=goal_id)

    def on_event(self, claims: Any, envelope: RobotCommandEnvelope) -> dict:
        """The ``robot_command`` handler for `create_app`'s ``client_event``: the ack is the answer.

        Raises:
            XrServerError: a malformed payload (naming the field), or no gate / monitor.
        """
        try:
            request = parse_robot_command(envelope.model_dump())
            answer = self.handle(Actor(claims.username, frozenset(claims.roles)), request)
        except PayloadError as exc:
            raise XrServerError(f"invalid 'robot_command' payload: {exc}") from None
        return answer.model_dump()


#: A refusal whose reason starts with this was the role rule's (the gate's or the safety monitor's).
ROLE_REFUSAL_PREFIX = "role:"


def refusal_status(reason: str) -> int:
    """The HTTP status of a refused robot command or fault-stop reset: 403 when the caller's
    roles were refused (`reason` starts with `ROLE_REFUSAL_PREFIX`), else 409 (another rule)."""
    return 403 if reason.startswith(ROLE_REFUSAL_PREFIX) else 409


def _status(answer: RobotCommandAnswer) -> int:
    return 200 if answer.verdict != "rejected" else refusal_status(answer.reason)


def register_robot_routes(app: flask.Flask, router: RobotCommandRouter) -> None:
    """Add ``POST /api/robot/jog``, ``/api/robot/goto``, ``/api/robot/gripper``, ``/api/robot/stop``
    and ``GET /api/robot/named_poses`` to `app`
    (whose ``before_request`` puts the caller's claims in ``flask.g.claims``)."""

    def answer(kinds: tuple[str, ...]) -> flask.Response:
        claims = flask.g.claims
        try:
            request = parse_robot_command(flask.request.get_json(silent=True), kinds)
            result = router.handle(Actor(claims.username, frozenset(claims.roles)), request)
        except PayloadError as exc:
            response = flask.jsonify(error=str(exc).replace("payload", "body", 1))
            response.status_code = 400
            return response
        except XrServerError as exc:
            response = flask.jsonify(error=str(exc))
            response.status_code = 503
            return response
        response = flask.jsonify(result.model_dump())
        response.status_code = _status(result)
        return response

    @app.post("/api/robot/jog")
    def robot_jog() -> flask.Response:
        """Jog the robot.
        ---
        post:
          summary: >-
            Jog the robot in joint space or Cartesian space, through the command gate
            (operator or admin).
          description: >-
            A joint jog (`kind: jog_joint`, control_msgs/JointJog semantics) or a Cartesian jog of
            the TCP (`kind: jog_cartesian`, geometry_msgs/TwistStamped semantics, frame `cell` or
            `tool`). The gate turns it into a short trajectory (ramp, hold for the deadman timeout,
            ramp to rest), slows it to the joint limits and to 0.25 m/s at the TCP (`modified`),
            and refuses it in a stop, for a role other than operator/admin, or when the motion
            over its horizon would enter a keep-out zone or come too close to a person. Send
            velocity jogs repeatedly (e.g. every 50 ms) while the motion should go on: the robot
            stops by itself when they stop arriving. Every answer is audited.
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  oneOf:
                    - $ref: '#/components/schemas/JogJointRequest'
                    - $ref: '#/components/schemas/JogCartesianRequest'
          responses:
            '200':
              description: Forwarded (`accepted`) or forwarded with changes (`modified`).
              content:
                application/json:
                  schema: RobotCommandAnswer
            '400': BadRequest
            '401': Unauthorized
            '403':
              description: The caller's roles may not move the robot (`reason` starts with `role:`).
              content:
                application/json:
                  schema: RobotCommandAnswer
            '409':
              description: Refused by another rule of the gate; `reason` names it.
              content:
                application/json:
                  schema: RobotCommandAnswer
            '503':
              description: "`no command gate`: this server drives no robot."
              content:
                application/json:
                  schema: Error
        """
        return answer(("jog_joint", "jog_cartesian"))

    @app.post("/api/robot/goto")
    def robot_goto() -> flask.Response:
        """Go to a pose.
        ---
        post:
          summary: >-
            Move the robot to a named pose, a joint target or a TCP target, through the command
            gate (operator or admin).
          description: >-
            The server plans one joint trajectory from the robot's measured position (it must be
            at rest) to the target: the straight line in joint space, a synchronised trapezoidal
            profile at the joint velocity and acceleration limits, slowed so the TCP stays within
            0.25 m/s. A TCP target (`cell` frame) keeps the TCP's orientation and is solved by
            inverse kinematics; one out of reach is rejected with the rule `reach:`. The gate then
            checks the trajectory like any other (role, mode, limits, keep-out sweep, people) and
            answers; its path shows in the twin as the planned path.
          requestBody:
            required: true
            content:
              application/json:
                schema: GotoRequest
          responses:
            '200':
              description: Forwarded (`accepted`) or forwarded with changes (`modified`).
              content:
                application/json:
                  schema: RobotCommandAnswer
            '400': BadRequest
            '401': Unauthorized
            '403':
              description: The caller's roles may not move the robot (`reason` starts with `role:`).
              content:
                application/json:
                  schema: RobotCommandAnswer
            '409':
              description: >-
                Refused by a rule of the gate, or not planned (`reach:` out of reach, `motion:` the
                robot is moving, `path:` no robot state); `reason` names it.
              content:
                application/json:
                  schema: RobotCommandAnswer
            '503':
              description: "`no command gate` or `no go-to planner`."
              content:
                application/json:
                  schema: Error
        """
        return answer(("goto",))

    @app.get("/api/robot/named_poses")
    def robot_named_poses() -> flask.Response:
        """The robot's named poses.
        ---
        get:
          summary: The cell's named poses and what a go-to may target (any signed-in user).
          description: >-
            `{joint_names, named_poses: {name: [rad, ...]}, tcp_targets, tcp_speed_mps}`:
            `named_poses` from the cell file's `robot.named_poses`, positions in radians in the
            order of `joint_names`; `tcp_targets` tells whether TCP targets can be solved. A
            server that plans no go-to (no robot) answers empty lists, no poses and speed 0.
          responses:
            '200':
              description: The poses.
            '401': Unauthorized
        """
        if router.goto is None:
            return flask.jsonify(joint_names=[], named_poses={}, tcp_targets=False,
                                 tcp_speed_mps=0.0)
        return flask.jsonify(router.goto.describe())

    @app.post("/api/robot/gripper")
    def robot_gripper() -> flask.Response:
        """Open or close the gripper.
        ---
        post:
          summary: A gripper goal through the command gate (operator or admin).
          requestBody:
            required: true
            content:
              application/json:
                schema: GripperCommandRequest
          responses:
            '200':
              description: Forwarded to the robot.
              content:
                application/json:
                  schema: RobotCommandAnswer
            '400': BadRequest
            '401': Unauthorized
            '403':
              description: The caller's roles may not move the robot.
              content:
                application/json:
                  schema: RobotCommandAnswer
            '409':
              description: Refused by another rule of the gate or by the robot.
              content:
                application/json:
                  schema: RobotCommandAnswer
            '503':
              description: "`no command gate`: this server drives no robot."
              content:
                application/json:
                  schema: Error
        """
        return answer(("gripper",))

    @app.post("/api/robot/stop")
    def robot_stop() -> flask.Response:
        """Stop the robot.
        ---
        post:
          summary: A protective stop, latched until a supervisor resets it (any signed-in user).
          requestBody:
            required: true
            content:
              application/json:
                schema: StopCommandRequest
          responses:
            '200':
              description: The stop is requested; it takes effect on the monitor's next cycle.
              content:
                application/json:
                  schema: RobotCommandAnswer
            '400': BadRequest
            '401': Unauthorized
            '503':
              description: "`no safety monitor`."
              content:
                application/json:
                  schema: Error
        """
        return answer(("stop",))
