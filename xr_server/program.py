"""The program runner: plays a robot program by submitting each command through the safety gate.

Where each step starts: a program's steps are planned one after the other, each from where the
previous one ends, so a step may be sent only while the robot rests where it starts. The runner
keeps that position (`expected start`: the first point of a step that starts at 0 s, else the end
of the last motion it forwarded) and checks it before every step it sends: at rest (no joint faster
than `robot_goto.GOTO_AT_REST_RADPS`), within `RESUME_TOLERANCE_RAD` of the expected start, the
previous goal done. A robot found elsewhere (someone moved it between steps) or a step replaced by
another goal (someone's jog or go-to) pauses the program with the reason; it never sends a step
from the wrong place.

Pause and resume (`ProgramRunner.pause`, `ProgramRunner.resume`): a pause takes effect at the end
of the step in flight (the robot comes to rest where the step was planned to end, or where the gate
shortened it), so the robot is at rest and free for a person's go-to or jog. A resume first brings
the robot back to the expected start of the next step if it is not there (a go-to planned by
`return_planner` from rest, through the gate like every command; goal ids
``program/return/<n>``), then goes on.

States (`ProgramState`) and what moves them:

    running   --pause-->  pausing (a step in flight) / paused (none in flight)
    pausing   --the step in flight ends-->  paused
    pausing   --resume-->  running (the pause had not taken effect)
    paused    --resume-->  running (the robot rests at the expected start) / returning
    returning --the return move ends at the expected start-->  running
    returning --pause-->  pausing (the return move in flight) / paused
    any       --a step or return replaced by another goal, the robot found elsewhere-->  paused
    running   --a step ends aborted (`RobotState.goal_aborted`: a stop ended a gripper goal)-->
              running, the same step again from the same start (paused after
              `MAX_STEP_ATTEMPTS` aborted ends in a row)

Thread safety: `poll()` runs in the runner's thread (or a scenario's clock loop); `pause()`,
`resume()` and `status()` from any thread. Decisions take `_lock`; `status()` reads an immutable
snapshot published after every change, so readers (the twin broadcast at 30 Hz) never wait for the
gate's path sweep that `poll()` may be doing under the lock.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from typing import Callable, Literal, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from robot_bridge.types import JointTrajectory, RobotCommand, RobotState
from safety.decision import SafetyMode, SafetyState
from safety.gate import Actor, CommandGate, GateAnswer
from xr_server.robot_goto import GOTO_AT_REST_RADPS, GotoRefused

log = logging.getLogger(__name__)

#: The identity the runner submits commands as; it holds the operator role.
PROGRAM_ACTOR = Actor("program", frozenset({"operator"}))
#: Largest joint distance from a step's expected start at which the step may be sent, radians
#: (the position controller settles within a few thousandths of a radian).
RESUME_TOLERANCE_RAD = 0.01
#: Goal ids of the moves back to the expected start are ``program/return/<n>``; user commands may
#: not use the ``program/`` prefix (`ProgramRunner.reserves`).
RETURN_GOAL_PREFIX = "program/return/"
#: Return moves tried in a row before the runner gives up and pauses (each ends short: a controller
#: that settles off the target, a gate that keeps shortening it).
MAX_RETURN_ATTEMPTS = 3
#: Aborted ends of one step in a row (`RobotState.goal_aborted`) before the runner pauses: a grasp
#: a protective stop ended is sent again after the reset, a gripper that never reaches its target
#: (a part that jams, a finger fault) is not retried for ever.
MAX_STEP_ATTEMPTS = 3

#: ``(goal_id, positions) -> JointTrajectory`` from the robot's position at rest to `positions`
#: (radians, joint order), e.g. `xr_server.robot_goto.GotoPlanner.plan`; raises `GotoRefused`
#: (its message the reason) when it cannot plan now (the robot moving, no state, out of reach).
ReturnPlanner = Callable[[str, Sequence[float]], JointTrajectory]


class ProgramState(str, enum.Enum):
    """Where the program is: ``running``; ``pausing`` (the step in flight finishes first);
    ``paused`` (at rest, free for manual motions); ``returning`` (resumed: moving back to where the
    next step starts)."""

    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    RETURNING = "returning"


class ProgramStatus(BaseModel):
    """A snapshot of the program (`ProgramRunner.status`; the ``status`` of ``/api/program``)."""

    model_config = ConfigDict(frozen=True)

    state: Literal["running", "pausing", "paused", "returning"] = Field(
        description="`pausing`: the step in flight finishes first; `returning`: resumed, moving "
                    "back to where the next step starts.")
    step: int = Field(description="Index of the current or next step.")
    steps: int = Field(description="Steps in one cycle of the program.")
    goal_id: str = Field(description="Goal id of the current or next step.")
    cycles_completed: int = Field(description="Whole cycles done.")
    resume_at: tuple[float, ...] | None = Field(
        description="Joint positions where the next step starts, radians (a resume brings the "
                    "robot back there first); null when not known.")
    reason: str = Field(description="Why the program paused by itself (the robot moved by "
                                    "someone else, a step interrupted) or why the move back waits "
                                    "(a gate rule, `motion:` ...); empty when neither.")


class ProgramRunner:
    """Loops a program: submit a command through the gate, wait for it to finish, next.

    While the monitor holds a stop, the runner waits rather than flooding the gate;
    a command the gate rejects is retried after `retry_s`. When the gate shortens a trajectory
    (MODIFIED: it would have brought the robot too close to a person), the runner waits for
    the shortened goal and then submits the rest the gate handed back, so the step finishes
    where it was planned to. The logic is `poll()`, which a scenario run calls on its simulated
    clock; `start()` runs it every 10 ms in a thread. Pause, resume, where a step starts and the
    threads: see the module docstring.

    Args:
        return_planner: plans the move back to a step's start on resume (None: a resume with the
            robot elsewhere is refused).
    """

    def __init__(self, commands: Sequence[RobotCommand], gate: CommandGate,
                 robot_source: Callable[[], RobotState | None],
                 safety_source: Callable[[], SafetyState | None], *, retry_s: float = 0.25,
                 clock_s: Callable[[], float] = time.monotonic,
                 return_planner: ReturnPlanner | None = None) -> None:
        self.return_planner = return_planner
        self._commands = list(commands)
        self._goal_ids = frozenset(str(getattr(c, "goal_id", "")) for c in self._commands) - {""}
        self._gate = gate
        self._robot = robot_source
        self._safety = safety_source
        self._retry_s = retry_s
        self._clock_s = clock_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._state = ProgramState.RUNNING
        self._reason = ""
        self._index = 0
        self._pending: RobotCommand | None = self._commands[0] if self._commands else None
        self._rest: RobotCommand | None = None
        self._waiting_goal = ""
        self._seen_waiting = False     # the robot reported the goal we wait for at least once
        self._waiting_return = False   # the goal in flight is a return move
        self._submitted = False
        self._next_try_s = -math.inf
        self._expected_at: np.ndarray | None = None
        self._flight_start: np.ndarray | None = None   # where the goal in flight started
        self._returns = 0              # return moves sent (goal id counter)
        self._return_attempts = 0      # return moves in a row that ended short
        self._aborted_in_row = 0       # aborted ends of the current step in a row
        self.cycles_completed = 0
        self.last_answer: GateAnswer | None = None
        self._update_expected_start()
        self._status = self._snapshot()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="program-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(0.01)

    # ---------------------------------------------------------------------------- users' requests
    def reserves(self, goal_id: str) -> bool:
        """Whether `goal_id` is the program's (a step's, a shortened step's, a return move's): a
        user command with it would be taken for the program's goal."""
        return goal_id.startswith("program/") or goal_id.removesuffix("/shortened") in self._goal_ids

    def pause(self) -> tuple[bool, str]:
        """Pause at the end of the step in flight. Returns (accepted, what happens / why not)."""
        with self._lock:
            if self._stop.is_set():
                return False, "program: the runner has stopped"
            if not self._commands:
                return False, "program: the program has no steps"
            if self._state in (ProgramState.PAUSING, ProgramState.PAUSED):
                return True, f"program: already {self._state.value}"
            if not self._submitted:
                self._set_state(ProgramState.PAUSED, "")
                return True, "program: paused (no step in flight)"
            what = "return move" if self._waiting_return else "step"
            self._set_state(ProgramState.PAUSING, "")
            return True, f"program: pausing at the end of the {what} in flight"

    def resume(self) -> tuple[bool, str]:
        """Go on after a pause: back to where the next step starts first if the robot is not
        there, then the next step. Returns (accepted, what happens / why not)."""
        with self._lock:
            if self._stop.is_set():
                return False, "program: the runner has stopped"
            if self._state is ProgramState.RUNNING:
                return True, "program: already running"
            if self._state is ProgramState.RETURNING:
                return True, "program: already returning to where the next step starts"
            if self._state is ProgramState.PAUSING:
                # the step (or return move) in flight goes on; its end is handled as usual
                self._set_state(ProgramState.RETURNING if self._waiting_return else ProgramState.RUNNING, "")
                return True, "program: running (the pause had not taken effect yet)"
            self._return_attempts = 0
            self._aborted_in_row = 0
            self._next_try_s = -math.inf
            if self._ready(self._robot()) == "":
                self._set_state(ProgramState.RUNNING, "")
                return True, "program: running"
            if self.return_planner is None or self._expected_at is None:
                return False, ("program: the robot is not where the next step starts and this server "
                               "cannot plan the way back; move it back first")
            self._set_state(ProgramState.RETURNING, "")
            return True, "program: returning to where the next step starts, then running"

    def status(self) -> ProgramStatus:
        """The newest snapshot (lock-free; published after every change)."""
        return self._status

    # ------------------------------------------------------------------------------- the loop
    def poll(self) -> None:
        """Advance the program: submit the next command when allowed, or notice it finished."""
        if not self._commands:
            return
        with self._lock:
            self._poll()
            self._status = self._snapshot()

    def _poll(self) -> None:
        if self._submitted:
            self._follow(self._robot())
            return
        if self._state in (ProgramState.PAUSED, ProgramState.PAUSING):
            if self._state is ProgramState.PAUSING:
                self._set_state(ProgramState.PAUSED, "")
            return
        now = self._clock_s()
        if now < self._next_try_s:
            return
        state = self._safety()
        if state is None or state.mode not in (SafetyMode.FULL_SPEED, SafetyMode.REDUCED_SPEED):
            self._next_try_s = now + self._retry_s
            return
        robot = self._robot()
        if self._state is ProgramState.RETURNING:
            self._send_return(robot, now)
            return
        not_ready = self._ready(robot)
        if not_ready:
            if _settling(not_ready):      # still moving (settling, someone's motion): wait
                self._next_try_s = now + self._retry_s
                return
            self._set_state(ProgramState.PAUSED, f"{not_ready}; resume to go on")
            return
        command = self._pending if self._pending is not None else self._commands[self._index]
        self.last_answer = self._gate.submit(command, PROGRAM_ACTOR)
        if not self.last_answer.forwarded:
            log.debug("program command %s not forwarded: %s", command.goal_id, self.last_answer.reason)
            self._next_try_s = now + self._retry_s
            return
        forwarded = self.last_answer.command if self.last_answer.command is not None else command
        self._wait_for(forwarded, is_return=False)
        self._rest = self.last_answer.rest

    def _follow(self, robot: RobotState | None) -> None:
        """The goal in flight: done, replaced by someone else's, or still going."""
        if robot is None:
            return
        if robot.goal_id != self._waiting_goal:
            if self._seen_waiting:             # another goal took over the robot
                self._submitted = False
                self._rest = None              # a shortened step is sent whole again, from its start
                self._expected_at = self._flight_start
                what = "return move" if self._waiting_return else f"step {self._index + 1}"
                self._set_state(ProgramState.PAUSED,
                                f"the {what} was interrupted by goal {robot.goal_id!r}; resume to go "
                                "back to where the step starts")
            return
        self._seen_waiting = True
        if not robot.goal_done:
            return
        self._submitted = False
        if self._waiting_return:
            self._return_done(robot)
            return
        if robot.goal_aborted:
            self._step_aborted(robot)
            return
        self._aborted_in_row = 0
        if self._rest is not None:
            self._pending, self._rest = self._rest, None
        else:
            self._index += 1
            if self._index == len(self._commands):
                self._index = 0
                self.cycles_completed += 1
            self._pending = self._commands[self._index]
        self._update_expected_start()
        if self._state is ProgramState.PAUSING:
            self._set_state(ProgramState.PAUSED, "")

    def _step_aborted(self, robot: RobotState) -> None:
        """The step in flight ended short of its target: send the same step again from where it
        started (`_ready` checks the robot is there first), or pause after `MAX_STEP_ATTEMPTS`."""
        self._aborted_in_row += 1
        self._rest = None
        self._expected_at = self._flight_start
        log.warning("program step %d (goal %r) ended aborted (%d in a row)", self._index + 1,
                    robot.goal_id, self._aborted_in_row)
        if self._aborted_in_row >= MAX_STEP_ATTEMPTS:
            self._set_state(ProgramState.PAUSED, f"step {self._index + 1} (goal {robot.goal_id!r}) "
                            f"ended short of its target {MAX_STEP_ATTEMPTS} times in a row; resume "
                            "to try it again")
        elif self._state is ProgramState.PAUSING:
            self._set_state(ProgramState.PAUSED, "")

    def _return_done(self, robot: RobotState) -> None:
        if self._state is ProgramState.PAUSING:
            self._set_state(ProgramState.PAUSED, "")
        elif self._ready(robot) == "":
            self._set_state(ProgramState.RUNNING, "")
        else:
            self._return_attempts += 1
            if self._return_attempts >= MAX_RETURN_ATTEMPTS:
                self._set_state(ProgramState.PAUSED, f"{MAX_RETURN_ATTEMPTS} return moves in a row "
                                f"ended short of where the step starts ({self._ready(robot)})")

    def _send_return(self, robot: RobotState | None, now: float) -> None:
        if self._expected_at is None or self.return_planner is None:   # resume() refuses this
            self._set_state(ProgramState.PAUSED, "the way back to where the step starts cannot be "
                            "planned on this server; move the robot there, then resume")
            return
        if self._ready(robot) == "":
            self._set_state(ProgramState.RUNNING, "")
            return
        goal_id = f"{RETURN_GOAL_PREFIX}{self._returns + 1}"
        try:
            command = self.return_planner(goal_id, [float(v) for v in self._expected_at])
        except (GotoRefused, KeyError, ValueError) as exc:
            self._reason = f"the move back waits: {exc}"
            self._next_try_s = now + self._retry_s
            return
        except Exception:  # noqa: BLE001 - a planner bug must not end the loop; the program waits
            log.exception("planning the program's return move failed")
            self._set_state(ProgramState.PAUSED, "the move back could not be planned (see the log)")
            return
        self.last_answer = self._gate.submit(command, PROGRAM_ACTOR)
        if not self.last_answer.forwarded:
            self._reason = f"the move back waits: {self.last_answer.reason}"
            self._next_try_s = now + self._retry_s
            return
        self._reason = ""
        self._returns += 1
        forwarded = self.last_answer.command if self.last_answer.command is not None else command
        self._wait_for(forwarded, is_return=True)     # a shortened return is planned again after it

    def _wait_for(self, command: RobotCommand, *, is_return: bool) -> None:
        self._flight_start = self._expected_at
        self._submitted = True
        self._waiting_goal = str(command.goal_id)
        self._seen_waiting = False
        self._waiting_return = is_return
        if isinstance(command, JointTrajectory) and len(command.positions) and not is_return:
            self._expected_at = np.array(command.positions[-1], dtype=np.float64)

    def _update_expected_start(self) -> None:
        """The next step starts at its own first point when that point is at 0 s (a planned
        program), else where the last forwarded motion ended."""
        nxt = self._pending
        if isinstance(nxt, JointTrajectory) and len(nxt.positions) and nxt.time_from_start_s[0] == 0.0:
            self._expected_at = np.array(nxt.positions[0], dtype=np.float64)

    def _ready(self, robot: RobotState | None) -> str:
        """"" when the next step may be sent now, else why not: `_MOVING` reasons (no state yet,
        the robot executing a goal or still moving: wait) or the robot resting elsewhere."""
        if self._expected_at is None:          # a program whose first step starts wherever it is
            return ""
        if robot is None:
            return f"{_MOVING}no robot state"
        if not robot.goal_done:
            return f"{_MOVING}the robot is executing goal {robot.goal_id!r}"
        speed = float(np.max(np.abs(np.asarray(robot.velocity, dtype=np.float64)), initial=0.0))
        if speed > GOTO_AT_REST_RADPS:
            return f"{_MOVING}the robot is moving ({speed:.2f} rad/s at a joint)"
        q = np.asarray(robot.position, dtype=np.float64)
        off = float(np.max(np.abs(q - self._expected_at), initial=0.0)) if q.shape == self._expected_at.shape \
            else math.inf
        if off > RESUME_TOLERANCE_RAD:
            return f"the robot is {off:.3f} rad from where step {self._index + 1} starts"
        return ""

    def _set_state(self, state: ProgramState, reason: str) -> None:
        if state is not self._state or reason != self._reason:
            log.info("program %s -> %s before step %d (%s)%s", self._state.value, state.value,
                     self._index + 1, self._commands[self._index].goal_id if self._commands else "",
                     f": {reason}" if reason else "")
        self._state = state
        self._reason = reason
        self._status = self._snapshot()

    def _snapshot(self) -> ProgramStatus:
        return ProgramStatus(
            state=self._state.value, step=self._index, steps=len(self._commands),
            goal_id=str(getattr(self._commands[self._index], "goal_id", "")) if self._commands else "",
            cycles_completed=self.cycles_completed,
            resume_at=None if self._expected_at is None else tuple(float(v) for v in self._expected_at),
            reason=self._reason)


#: Prefix of `ProgramRunner._ready` reasons that pass by themselves (wait, do not pause).
_MOVING = "not at rest: "


def _settling(reason: str) -> bool:
    return reason.startswith(_MOVING)
