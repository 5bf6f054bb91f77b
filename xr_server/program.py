"""The program runner: plays a robot program by submitting each command through the safety gate."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Callable, Sequence

from robot_bridge.types import RobotCommand, RobotState
from safety.decision import SafetyMode, SafetyState
from safety.gate import Actor, CommandGate, GateAnswer

log = logging.getLogger(__name__)

#: The identity the runner submits commands as; it holds the operator role.
PROGRAM_ACTOR = Actor("program", frozenset({"operator"}))


class ProgramRunner:
    """Loops a program: submit a command through the gate, wait for it to finish, next.

    While the monitor holds a stop, the runner waits rather than flooding the gate;
    a command the gate rejects is retried after `retry_s`. When the gate shortens a trajectory
    (MODIFIED: it would have brought the robot too close to a person), the runner waits for
    the shortened goal and then submits the rest the gate handed back, so the step finishes
    where it was planned to. The logic is `poll()`, which a
    scenario run calls on its simulated clock; `start()` runs it every 10 ms in a thread.
    Thread: `poll()` from one thread at a time; `start()`/`stop()` from any thread.
    """

    def __init__(self, commands: Sequence[RobotCommand], gate: CommandGate,
                 robot_source: Callable[[], RobotState | None],
                 safety_source: Callable[[], SafetyState | None], *, retry_s: float = 0.25,
                 clock_s: Callable[[], float] = time.monotonic) -> None:
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

    def poll(self) -> None:
        """Advance the program: submit the next command when allowed, or notice it finished."""
        if not self._commands:
            return
        if self._submitted:
            state = self._robot()
            if state is not None and state.goal_id == self._waiting_goal and state.goal_done:
                self._submitted = False
                if self._rest is not None:
                    self._pending, self._rest = self._rest, None
                    return
                self._index += 1
                if self._index == len(self._commands):
                    self._index = 0
                    self.cycles_completed += 1
                self._pending = self._commands[self._index]
            return
        command = self._pending if self._pending is not None else self._commands[self._index]
        now = self._clock_s()
        if now < self._next_try_s:
            return
        state = self._safety()
        if state is None or state.mode not in (SafetyMode.FULL_SPEED, SafetyMode.REDUCED_SPEED):
            self._next_try_s = now + self._retry_s
            return
        self.last_answer = self._gate.submit(command, PROGRAM_ACTOR)
        if self.last_answer.forwarded:
            self._submitted = True
            forwarded = self.last_answer.command
            self._waiting_goal = command.goal_id if forwarded is None else forwarded.goal_id
            self._rest = self.last_answer.rest
        else:
            log.debug("program command %s not forwarded: %s", command.goal_id, self.last_answer.reason)
            self._next_try_s = now + self._retry_s
