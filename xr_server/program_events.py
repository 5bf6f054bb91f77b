"""Pause and resume the cell's robot program from a page: the Socket.IO ``program_control`` event,
``POST /api/program/pause``, ``POST /api/program/resume`` and ``GET /api/program``.

A pause takes effect at the end of the step in flight (`xr_server.program.ProgramRunner.pause`);
while paused the robot rests and a person may go to a pose or jog it. A resume brings the robot
back to where the program paused (a go-to through the command gate) before the next step. Neither
is a safety function: the STOP button (``robot_command`` kind ``stop``) stops the robot at once,
whatever the program does.

Roles: pausing needs operator, supervisor or admin (it only withholds motion); resuming needs
operator or admin, the roles that may move the robot (`safety.gate.MOTION_ROLES`). On a server
with a program every pause and resume, accepted or refused, is audited (``program_pause``,
``program_resume``); the return move itself is audited by the gate (actor ``program``).

While the program is not paused the robot is the program's: a person's jog, go-to, gripper or
trajectory command is refused (``program:``, `ProgramControl.manual_motion_refusal`, checked by
`xr_server.robot_events.RobotCommandRouter` and ``POST /api/robot/trajectory``), and so is any
command that uses one of the program's goal ids.

Threads: `ProgramControl.handle` runs in Socket.IO handler and request threads; the runner is
thread-safe.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Literal, Protocol

import flask
from pydantic import BaseModel, ConfigDict, Field

from safety.gate import MOTION_ROLES
from xr_server.errors import XrServerError
from xr_server.program import ProgramStatus

log = logging.getLogger(__name__)

#: Roles that may pause the program.
PAUSE_ROLES = frozenset({"operator", "supervisor", "admin"})
#: Roles that may resume it (the robot moves again).
RESUME_ROLES = MOTION_ROLES
NO_PROGRAM = "no program: this server runs no robot program"
#: ``audit(kind, actor, inputs, reason)``: `safety.audit.AuditLog.append`.
Audit = Callable[[str, str, dict, str], Any]


class Program(Protocol):
    """What the events need of the program runner (`xr_server.program.ProgramRunner`)."""

    def pause(self) -> tuple[bool, str]: ...
    def resume(self) -> tuple[bool, str]: ...
    def status(self) -> ProgramStatus: ...
    def reserves(self, goal_id: str) -> bool: ...


class ProgramControlRequest(BaseModel):
    """The ``program_control`` event: ``{action: "pause" | "resume" | "status"}``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    action: Literal["pause", "resume", "status"]


class ProgramControlAnswer(BaseModel):
    """The answer to a pause, a resume or a status request."""

    model_config = ConfigDict(frozen=True)

    accepted: bool
    reason: str = Field(description="What happens, or why not (`role:` for a role refused, "
                                     "`no program` on a server that runs none).")
    status: ProgramStatus | None = Field(description="null: this server runs no robot program.")


#: Models for the OpenAPI document.
PROGRAM_MODELS: tuple[type[BaseModel], ...] = (ProgramControlRequest, ProgramStatus,
                                               ProgramControlAnswer)


class ProgramControl:
    """Checks the role, asks the runner, audits, answers.

    Args:
        program: the cell's program runner; None: this server runs no program (requests are
            refused with ``no program``).
        audit: where pause and resume requests are recorded; None records nothing.
    """

    def __init__(self, program: Program | None, audit: Audit | None = None) -> None:
        self._program = program
        self._audit = audit

    def handle(self, username: str, roles: frozenset[str], action: str) -> ProgramControlAnswer:
        """Carry out `action` ("pause", "resume", "status") for the user.

        Raises:
            XrServerError: a pause or resume on a server without a program (a status request is
                answered with ``status`` None).
        """
        if self._program is None:
            if action == "status":
                return self._answer(True, NO_PROGRAM)
            raise XrServerError(NO_PROGRAM)
        if action == "status":
            return self._answer(True, "")
        allowed = PAUSE_ROLES if action == "pause" else RESUME_ROLES
        if not roles & allowed:
            accepted, reason = False, (f"role: {username!r} has roles {sorted(roles)}; to {action} "
                                       f"the program needs {' or '.join(sorted(allowed))}")
        elif action == "pause":
            accepted, reason = self._program.pause()
        else:
            accepted, reason = self._program.resume()
        answer = self._answer(accepted, reason)
        log.info("program %s by %r: %s", action, username, reason)
        if self._audit is not None:
            try:
                self._audit(f"program_{action}", username or "?", {
                    "roles": sorted(roles), "accepted": accepted,
                    "state": answer.status.state, "step": answer.status.step}, reason)
            except Exception:  # noqa: BLE001 - the audit counts its own losses
                log.exception("audit of a program %s failed", action)
        return answer

    def _answer(self, accepted: bool, reason: str) -> ProgramControlAnswer:
        return ProgramControlAnswer(accepted=accepted, reason=reason,
                                    status=None if self._program is None else self._program.status())

    def manual_motion_refusal(self, goal_id: str) -> str | None:
        """Why a person's motion command (jog, go-to, gripper, trajectory) must be refused now, or
        None: while the program runs (or pauses, or returns) the robot is the program's; and a
        goal id of the program's would be taken for the program's goal."""
        if self._program is None:
            return None
        if self._program.reserves(goal_id):
            return f"program: goal id {goal_id!r} is reserved for the robot program; use another"
        state = self._program.status().state
        if state != "paused":
            return (f"program: the robot program is {state}; pause it first (\"Pause program\" on "
                    "the dashboard, POST /api/program/pause)")
        return None


def register_program_events(client_event: Callable[[str, type], Callable[[Callable], Any]],
                            app: flask.Flask, control: ProgramControl) -> None:
    """Add the ``program_control`` event (its acknowledgement is the `ProgramControlAnswer`) and
    ``POST /api/program/pause``, ``POST /api/program/resume``, ``GET /api/program`` to `app`
    (whose ``before_request`` puts the caller's claims in ``flask.g.claims``)."""

    @client_event("program_control", ProgramControlRequest)
    def on_program_control(claims: Any, request: ProgramControlRequest) -> dict:
        return control.handle(claims.username, frozenset(claims.roles), request.action).model_dump()

    def answer(action: str) -> flask.Response:
        claims = flask.g.claims
        try:
            result = control.handle(claims.username, frozenset(claims.roles), action)
        except XrServerError as exc:
            response = flask.jsonify(error=str(exc))
            response.status_code = 503
            return response
        response = flask.jsonify(result.model_dump())
        response.status_code = (200 if result.accepted
                                else 403 if result.reason.startswith("role:") else 409)
        return response

    @app.post("/api/program/pause")
    def program_pause() -> flask.Response:
        """Pause the program.
        ---
        post:
          summary: Pause the robot program at the end of the step in flight (operator, supervisor or admin).
          description: >-
            The step the robot is executing finishes (where it was planned to end, or where the
            safety gate shortened it); then the program sends nothing until it is resumed, and the
            robot rests, free for a go-to or a jog. Not a stop: `POST /api/robot/stop` stops the
            robot at once. Audited.
          responses:
            '200':
              description: Pausing, or already paused.
              content:
                application/json:
                  schema: ProgramControlAnswer
            '401': Unauthorized
            '403':
              description: The caller's roles may not pause the program (`reason` starts with `role:`).
              content:
                application/json:
                  schema: ProgramControlAnswer
            '409':
              description: Refused (a program without steps); `reason` says why.
              content:
                application/json:
                  schema: ProgramControlAnswer
            '503':
              description: "`no program`: this server runs no robot program."
              content:
                application/json:
                  schema: Error
        """
        return answer("pause")

    @app.post("/api/program/resume")
    def program_resume() -> flask.Response:
        """Resume the program.
        ---
        post:
          summary: Resume the paused robot program (operator or admin).
          description: >-
            If the robot was moved while paused, it first goes back to where the program paused (a
            go-to planned from rest, through the safety gate like every motion; it waits, with the
            reason in `status.reason`, while the robot moves or the gate refuses), then the program
            goes on with its next step. Audited.
          responses:
            '200':
              description: Running, or returning to where it paused.
              content:
                application/json:
                  schema: ProgramControlAnswer
            '401': Unauthorized
            '403':
              description: The caller's roles may not move the robot (`reason` starts with `role:`).
              content:
                application/json:
                  schema: ProgramControlAnswer
            '409':
              description: Refused (the robot was moved and no way back can be planned); `reason` says why.
              content:
                application/json:
                  schema: ProgramControlAnswer
            '503':
              description: "`no program`: this server runs no robot program."
              content:
                application/json:
                  schema: Error
        """
        return answer("resume")

    @app.get("/api/program")
    def program_status() -> flask.Response:
        """The program's state.
        ---
        get:
          summary: Where the robot program is (any signed-in user).
          responses:
            '200':
              description: >-
                The program's state in `status`; `status` null (and `reason` `no program`) when
                this server runs no robot program.
              content:
                application/json:
                  schema: ProgramControlAnswer
            '401': Unauthorized
        """
        return answer("status")
