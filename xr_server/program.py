"""The program runner: plays a robot program by submitting each command through the safety gate."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Sequence

from robot_bridge.types import RobotCommand, RobotState
from safety.decision import SafetyMode, SafetyState
from safety.gate import Actor, CommandGate

log = logging.getLogger(__name__)

#: The identity the runner submits commands as; it holds the operator role.
PROGRAM_ACTOR = Actor("program", frozenset({"operator"}))


class ProgramRunner:
    """Loops a program: submit a command through the gate, wait for it to finish, next.

    While the monitor holds a stop, the runner waits rather than flooding the gate;
    a command the gate rejects is retried after `retry_s`. Thread: owns one thread;
    `start()`/`stop()` from any thread.
    """

    def __init__(self, commands: Sequence[RobotCommand], gate: CommandGate,
                 robot_source: Callable[[], RobotState | None],
                 safety_source: Callable[[], SafetyState | None], *, retry_s: float = 0.25) -> None:
        self._commands = list(commands)
        self._gate = gate
        self._robot = robot_source
        self._safety = safety_source
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cycles_completed = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="program-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _moving_allowed(self) -> bool:
        state = self._safety()
        return state is not None and state.mode in (SafetyMode.FULL_SPEED, SafetyMode.REDUCED_SPEED)

    def _run(self) -> None:
        while not self._stop.is_set():
            for command in self._commands:
                if not self._submit(command) or not self._wait_done(command):
                    return
            self.cycles_completed += 1

    def _submit(self, command: RobotCommand) -> bool:
        while not self._stop.is_set():
            if self._moving_allowed():
                answer = self._gate.submit(command, PROGRAM_ACTOR)
                if answer.forwarded:
                    return True
                log.debug("program command %s not forwarded: %s", command.goal_id, answer.reason)
            self._stop.wait(self._retry_s)
        return False

    def _wait_done(self, command: RobotCommand) -> bool:
        while not self._stop.is_set():
            state = self._robot()
            if state is not None and state.goal_id == command.goal_id and state.goal_done:
                return True
            self._stop.wait(0.01)
        return False
