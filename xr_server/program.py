"""The program runner: plays a robot program by submitting each command through the safety gate.

Pause and resume (`ProgramRunner.pause`, `ProgramRunner.resume`): a pause takes effect at the end
of the step in flight (the robot comes to rest where the step was planned to end, or where the gate
shortened it), so the robot is at rest and free for a person's go-to or jog. A resume first brings
the robot back to where the program paused, if someone moved it meanwhile (a go-to planned by
`return_planner`, through the gate like every command), then goes on with the next step: the
program's steps were planned from where the previous one ended, so starting one from anywhere else
would sweep an unplanned path.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np

from robot_bridge.types import JointTrajectory, RobotCommand, RobotState
from safety.decision import SafetyMode, SafetyState
from safety.gate import Actor, CommandGate, GateAnswer

log = logging.getLogger(__name__)

#: The identity the runner submits commands as; it holds the operator role.
PROGRAM_ACTOR = Actor("program", frozenset({"operator"}))
#: Largest joint distance from the paused position at which a resume goes on without a return
#: move, radians (the position controller settles within a few thousandths of a radian).
RESUME_TOLERANCE_RAD = 0.01
#: The goal id of the move back to the paused position.
RETURN_GOAL_ID = "program/return"

#: ``(goal_id, positions) -> JointTrajectory`` from the robot's position at rest to `positions`
#: (radians, joint order), e.g. `xr_server.robot_goto.GotoPlanner.plan`; raises an exception whose
#: message is the reason when it cannot plan now (the robot moving, no state).
ReturnPlanner = Callable[[str, Sequence[float]], JointTrajectory]


class ProgramState(str, enum.Enum):
    """Where the program is: ``running``; ``pausing`` (the step in flight finishes first);
    ``paused`` (at rest, free for manual motions); ``returning`` (resumed: moving back to where it
    paused before the next step)."""

    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    RETURNING = "returning"


class ProgramRunner:
    """Loops a program: submit a command through the gate, wait for it to finish, next.

    While the monitor holds a stop, the runner waits rather than flooding the gate;
    a command the gate rejects is retried after `retry_s`. When the gate shortens a trajectory
    (MODIFIED: it would have brought the robot too close to a person), the runner waits for
    the shortened goal and then submits the rest the gate handed back, so the step finishes
    where it was planned to. The logic is `poll()`, which a
    scenario run calls on its simulated clock; `start()` runs it every 10 ms in a thread.
    Pause and resume: see the module docstring.
    Thread: `poll()` from one thread at a time; `start()`/`stop()`, `pause()`, `resume()` and
    `status()` from any thread.

    Args:
        return_planner: plans the move back to the paused position on resume (None: a resume
            after the robot was moved is refused).
    """

    def __init__(self, commands: Sequence[RobotCommand], gate: CommandGate,
                 robot_source: Callable[[], RobotState | None],
                 safety_source: Callable[[], SafetyState | None], *, retry_s: float = 0.25,
                 clock_s: Callable[[], float] = time.monotonic,
                 return_planner: ReturnPlanner | None = None) -> None:
        self.return_planner = return_planner
        self._lock = threading.Lock()
        self._state = ProgramState.RUNNING
        self._paused_at: np.ndarray | None = None
        self._return_reason = ""
        self._commands = list(commands)
        self._gate = gate
        self._robot = robot_source
        self._safety = safety_source
        self._retry_s = retry_s
        self._clock_s = clock_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0
        self._pending: RobotCommand | None = self._commands[0] if self._commands else None
        self._rest: RobotCommand | None = None
        self._waiting_goal = ""
        self._submitted = False
        self._next_try_s = -math.inf
        self.cycles_completed = 0
        self.last_answer: GateAnswer | None = None

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

    def pause(self) -> tuple[bool, str]:
        """Pause at the end of the step in flight. Returns (accepted, what happens / why not)."""
        with self._lock:
            if not self._commands:
                return False, "program: the program has no steps"
            if self._state in (ProgramState.PAUSING, ProgramState.PAUSED):
                return True, f"program: already {self._state.value}"
            if self._state is ProgramState.RETURNING and self._submitted:
                self._state = ProgramState.PAUSING       # pause where the return move ends
                return True, "program: pausing at the end of the return move in flight"
            self._state = ProgramState.PAUSING
            return True, "program: pausing at the end of the step in flight"

    def resume(self) -> tuple[bool, str]:
        """Go on after a pause: back to the paused position first if the robot was moved, then
        the next step. Returns (accepted, what happens / why not)."""
        with self._lock:
            if self._state is ProgramState.RUNNING:
                return True, "program: already running"
            if self._state is ProgramState.RETURNING:
                return True, "program: already returning to where it paused"
            if self._state is ProgramState.PAUSING and self._paused_at is None:
                self._state = ProgramState.RUNNING      # the pause had not taken effect yet
                return True, "program: running (the pause had not taken effect yet)"
            robot = self._robot()
            if robot is not None and self._paused_at is not None and _near(robot, self._paused_at):
                self._state = ProgramState.RUNNING
                return True, "program: running"
            if self.return_planner is None:
                return False, ("program: the robot is not where the program paused and this server "
                               "cannot plan the way back; move it back first")
            self._state = ProgramState.RETURNING
            self._return_reason = ""
            self._next_try_s = -math.inf
            return True, "program: returning to where it paused, then running"

    def status(self) -> dict[str, Any]:
        """``{state, step, steps, goal_id, cycles_completed, paused_at, reason}``: `step` the index
        of the next or current step, `paused_at` the joint positions it paused at (radians) or
        None, `reason` why the return move waits ("" when it does not)."""
        with self._lock:
            return {"state": self._state.value, "step": self._index, "steps": len(self._commands),
                    "goal_id": self._commands[self._index].goal_id if self._commands else "",
                    "cycles_completed": self.cycles_completed,
                    "paused_at": None if self._paused_at is None else [float(v) for v in self._paused_at],
                    "reason": self._return_reason}

    def poll(self) -> None:
        """Advance the program: submit the next command when allowed, or notice it finished."""
        if not self._commands:
            return
        with self._lock:
            self._poll()

    def _poll(self) -> None:
        if self._submitted:
            state = self._robot()
            if state is not None and state.goal_id == self._waiting_goal and state.goal_done:
                self._submitted = False
                if self._waiting_goal.startswith(RETURN_GOAL_ID):
                    if self._state is ProgramState.RETURNING:
                        self._state = ProgramState.RUNNING if _near(state, self._paused_at) \
                            else ProgramState.RETURNING      # shortened for a person: plan again
                    elif self._state is ProgramState.PAUSING:
                        self._state = ProgramState.PAUSED    # keep the original paused position
                    return
                if self._rest is not None:
                    self._pending, self._rest = self._rest, None
                else:
                    self._index += 1
                    if self._index == len(self._commands):
                        self._index = 0
                        self.cycles_completed += 1
                    self._pending = self._commands[self._index]
                if self._state is ProgramState.PAUSING:
                    self._pause_here(state)
            return
        if self._state is ProgramState.PAUSING:
            self._pause_here(self._robot())
        if self._state is ProgramState.PAUSED:
            return
        now = self._clock_s()
        if now < self._next_try_s:
            return
        state = self._safety()
        if state is None or state.mode not in (SafetyMode.FULL_SPEED, SafetyMode.REDUCED_SPEED):
            self._next_try_s = now + self._retry_s
            return
        if self._state is ProgramState.RETURNING:
            command: RobotCommand | None = self._return_command(now)
            if command is None:
                return
        else:
            command = self._pending if self._pending is not None else self._commands[self._index]
        self.last_answer = self._gate.submit(command, PROGRAM_ACTOR)
        if self.last_answer.forwarded:
            self._submitted = True
            forwarded = self.last_answer.command
            self._waiting_goal = command.goal_id if forwarded is None else forwarded.goal_id
            if self._state is ProgramState.RETURNING:
                self._return_reason = ""            # a shortened return is planned again after it
            else:
                self._rest = self.last_answer.rest
        else:
            log.debug("program command %s not forwarded: %s", command.goal_id, self.last_answer.reason)
            if self._state is ProgramState.RETURNING:
                self._return_reason = self.last_answer.reason
            self._next_try_s = now + self._retry_s

    def _pause_here(self, robot: RobotState | None) -> None:
        """The pause takes effect: remember where the robot is (None: unknown, so a resume always
        plans the way back)."""
        self._state = ProgramState.PAUSED
        self._paused_at = None if robot is None else np.array(robot.position, dtype=np.float64)
        log.info("program paused before step %d (%s)", self._index,
                 self._commands[self._index].goal_id)

    def _return_command(self, now: float) -> JointTrajectory | None:
        """The move back to the paused position, planned now from where the robot rests (None:
        not possible yet, `_return_reason` says why; or already there, and the program runs)."""
        robot = self._robot()
        if robot is not None and self._paused_at is not None and _near(robot, self._paused_at):
            self._state = ProgramState.RUNNING
            return None
        if self._paused_at is None or self.return_planner is None:
            self._return_reason = "the paused position is unknown"
            self._next_try_s = now + self._retry_s
            return None
        try:
            return self.return_planner(RETURN_GOAL_ID, [float(v) for v in self._paused_at])
        except Exception as exc:  # noqa: BLE001 - the planner's refusal is the reason to show
            self._return_reason = str(exc)
            self._next_try_s = now + self._retry_s
            return None


def _near(robot: RobotState, position: np.ndarray | None) -> bool:
    """Whether `robot` rests within `RESUME_TOLERANCE_RAD` of `position` at every joint."""
    if position is None:
        return False
    q = np.asarray(robot.position, dtype=np.float64)
    return q.shape == position.shape and float(np.max(np.abs(q - position), initial=0.0)) <= RESUME_TOLERANCE_RAD
