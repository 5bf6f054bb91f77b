"""Pausing and resuming the program runner: the pause waits for the step in flight, the robot is
free while paused, and a resume brings it back to where the program paused before the next step,
every motion through the real command gate."""

import dataclasses

import numpy as np
import pytest

from robot_bridge.point_to_point import plan_point_to_point
from robot_bridge.types import JointTrajectory
from safety.decision import SafetyMode, SafetyState
from safety.gate import Actor, CommandGate, Verdict
from tests.safety.fakes import FakeBackend, robot_state
from xr_server.program import RETURN_GOAL_ID, ProgramRunner

NOW = 10**12
OPERATOR = Actor("olga", frozenset({"operator"}))


def step(x, goal):
    return JointTrajectory(("j1",), np.array([[x]]), np.array([1.0]), goal_id=goal)


class Cell:
    """A one-joint robot behind a real gate, a two-step program, a clock the test moves."""

    def __init__(self, *, planner=True, mode=SafetyMode.FULL_SPEED):
        self.backend = FakeBackend()
        self.at(0.0, goal="", done=True)
        self.mode = SafetyState(NOW, mode, 1.0, None, None, None, "test")
        self.gate = CommandGate(self.backend, lambda: self.mode, np.array([1.0]))
        self.now = 0.0
        self.runner = ProgramRunner([step(0.5, "pick"), step(0.0, "place")], self.gate,
                                    lambda: self.backend.state, lambda: self.mode,
                                    clock_s=lambda: self.now,
                                    return_planner=self.plan_back if planner else None)
        self.planned = []

    def plan_back(self, goal_id, positions):
        state = self.backend.state
        if not state.goal_done:
            raise RuntimeError(f"motion: the robot is executing goal {state.goal_id!r}")
        self.planned.append(list(positions))
        return plan_point_to_point(("j1",), np.array(state.position), np.array(positions),
                                   np.array([1.0]), np.array([2.0]), goal_id)

    def at(self, x, *, goal, done):
        self.backend.state = dataclasses.replace(robot_state(NOW), position=np.array([x]),
                                                 goal_id=goal, goal_done=done)

    def sent(self):
        return [c[1].goal_id for c in self.backend.calls if c[0] == "execute"]

    def poll(self, n=1):
        for _ in range(n):
            self.now += 0.01
            self.runner.poll()


def test_a_pause_waits_for_the_step_in_flight_and_then_sends_nothing():
    cell = Cell()
    cell.poll()
    assert cell.sent() == ["pick"]
    ok, why = cell.runner.pause()
    assert ok and why == "program: pausing at the end of the step in flight"
    assert cell.runner.status()["state"] == "pausing"
    cell.at(0.25, goal="pick", done=False)
    cell.poll(5)
    assert cell.runner.status()["state"] == "pausing"
    cell.at(0.5, goal="pick", done=True)               # the step ends where it was planned to
    cell.poll(50)
    status = cell.runner.status()
    assert status["state"] == "paused" and status["paused_at"] == [0.5]
    assert status["goal_id"] == "place" and status["step"] == 1
    assert cell.sent() == ["pick"]                     # nothing more while paused


def test_a_resume_where_it_paused_goes_on_with_the_next_step():
    cell = Cell()
    cell.poll()
    cell.runner.pause()
    cell.at(0.5, goal="pick", done=True)
    cell.poll()
    assert cell.runner.resume() == (True, "program: running")
    cell.poll()
    assert cell.sent() == ["pick", "place"] and cell.planned == []


def test_a_resume_after_a_manual_move_returns_through_the_gate_first():
    cell = Cell()
    cell.poll()
    cell.runner.pause()
    cell.at(0.5, goal="pick", done=True)
    cell.poll()
    # an operator's go-to while paused: through the gate, the program's state untouched
    answer = cell.gate.submit(step(-0.4, "goto"), OPERATOR)
    assert answer.verdict is Verdict.ACCEPTED
    cell.at(-0.4, goal="goto", done=True)
    ok, why = cell.runner.resume()
    assert ok and why == "program: returning to where it paused, then running"
    cell.poll()
    assert cell.sent() == ["pick", "goto", RETURN_GOAL_ID] and cell.planned == [[0.5]]
    ret = cell.backend.calls[-1][1]
    assert ret.positions[-1, 0] == pytest.approx(0.5)
    assert cell.runner.status()["state"] == "returning"
    cell.poll(5)                                       # the return move is in flight: nothing new
    assert cell.sent()[-1] == RETURN_GOAL_ID
    cell.at(0.5, goal=RETURN_GOAL_ID, done=True)
    cell.poll(2)
    assert cell.runner.status()["state"] == "running"
    assert cell.sent() == ["pick", "goto", RETURN_GOAL_ID, "place"]


def test_the_return_waits_while_the_robot_moves_and_says_why():
    cell = Cell()
    cell.poll()
    cell.runner.pause()
    cell.at(0.5, goal="pick", done=True)
    cell.poll()
    cell.at(-0.2, goal="goto", done=False)             # someone's go-to still running
    assert cell.runner.resume()[0]
    cell.poll(3)
    status = cell.runner.status()
    assert status["state"] == "returning" and status["reason"].startswith("motion: ")
    assert cell.sent() == ["pick"]
    cell.at(-0.4, goal="goto", done=True)
    cell.poll(30)                                      # retried after retry_s
    assert cell.sent() == ["pick", RETURN_GOAL_ID]


def test_the_return_move_is_refused_in_a_stop_like_every_motion():
    cell = Cell()
    cell.poll()
    cell.runner.pause()
    cell.at(0.5, goal="pick", done=True)
    cell.poll()
    cell.at(-0.4, goal="goto", done=True)
    cell.runner.resume()
    cell.mode = SafetyState(NOW, SafetyMode.PROTECTIVE_STOP, 0.0, None, None, None, "person")
    cell.poll(40)
    assert cell.sent() == ["pick"] and cell.runner.status()["state"] == "returning"


def test_without_a_planner_a_resume_from_elsewhere_is_refused_and_the_program_stays_paused():
    cell = Cell(planner=False)
    cell.poll()
    cell.runner.pause()
    cell.at(0.5, goal="pick", done=True)
    cell.poll()
    cell.at(-0.4, goal="goto", done=True)
    ok, why = cell.runner.resume()
    assert not ok and "cannot plan the way back" in why
    assert cell.runner.status()["state"] == "paused"


def test_a_resume_before_the_pause_took_effect_just_carries_on():
    cell = Cell()
    cell.poll()
    cell.runner.pause()
    assert cell.runner.resume() == (True, "program: running (the pause had not taken effect yet)")
    cell.at(0.5, goal="pick", done=True)
    cell.poll(2)
    assert cell.sent() == ["pick", "place"]
