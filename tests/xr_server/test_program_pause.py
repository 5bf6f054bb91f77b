"""The program runner's pause and resume, and where it sends each step from: a pause waits for the
step in flight; the robot is free while paused; a step is sent only while the robot rests where
the step starts (a resume brings it back there first); a robot moved between steps, or a step
taken over by someone else's goal, pauses the program. Every motion goes through the real command
gate (a one-joint robot behind it)."""

import dataclasses

import numpy as np
import pytest

from robot_bridge.point_to_point import plan_point_to_point
from robot_bridge.types import JointTrajectory
from safety.decision import SafetyMode, SafetyState
from safety.gate import Actor, CommandGate, Verdict
from tests.safety.fakes import FakeBackend, robot_state
from xr_server.program import MAX_RETURN_ATTEMPTS, MAX_STEP_ATTEMPTS, ProgramRunner
from xr_server.robot_goto import GotoRefused

NOW = 10**12
OPERATOR = Actor("olga", frozenset({"operator"}))


def step(x_from, x_to, goal):
    """A planned step: from x_from at 0 s (where the previous one ended) to x_to at 1 s."""
    return JointTrajectory(("j1",), np.array([[x_from], [x_to]]), np.array([0.0, 1.0]), goal_id=goal)


class Cell:
    """A one-joint robot behind a real gate, a two-step program (0 -> 0.5 -> 0), a clock."""

    def __init__(self, *, planner=True):
        self.backend = FakeBackend()
        self.at(0.0, goal="", done=True)
        self.mode = SafetyState(NOW, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")
        self.gate = CommandGate(self.backend, lambda: self.mode, np.array([1.0]))
        self.now = 0.0
        self.runner = ProgramRunner([step(0.0, 0.5, "pick"), step(0.5, 0.0, "place")], self.gate,
                                    lambda: self.backend.state, lambda: self.mode,
                                    clock_s=lambda: self.now,
                                    return_planner=self.plan_back if planner else None)
        self.planned = []

    def plan_back(self, goal_id, positions):
        state = self.backend.state
        if not state.goal_done:
            raise GotoRefused(f"motion: the robot is executing goal {state.goal_id!r}")
        self.planned.append(list(positions))
        return plan_point_to_point(("j1",), np.array(state.position), np.array(positions),
                                   np.array([1.0]), np.array([2.0]), goal_id)

    def at(self, x, *, goal, done, v=0.0, aborted=False):
        self.backend.state = dataclasses.replace(robot_state(NOW), position=np.array([x]),
                                                 velocity=np.array([v]), goal_id=goal, goal_done=done,
                                                 goal_aborted=aborted)

    def sent(self):
        return [c[1].goal_id for c in self.backend.calls if c[0] == "execute"]

    def run_last(self, x, *, aborted=False):
        """The robot executes the last command sent and ends at x (`aborted`: short of its
        target, as a stop ends a gripper goal)."""
        goal = self.sent()[-1]
        self.at(x, goal=goal, done=False)
        self.poll()
        self.at(x, goal=goal, done=True, aborted=aborted)
        self.poll()

    def poll(self, n=1):
        for _ in range(n):
            self.now += 0.01
            self.runner.poll()

    def state(self):
        return self.runner.status().state


def paused_after_pick():
    cell = Cell()
    cell.poll()
    assert cell.sent() == ["pick"]
    assert cell.runner.pause() == (True, "program: pausing at the end of the step in flight")
    assert cell.state() == "pausing"
    cell.run_last(0.5)
    return cell


def test_a_pause_waits_for_the_step_in_flight_and_then_sends_nothing():
    cell = paused_after_pick()
    status = cell.runner.status()
    assert status.state == "paused" and status.resume_at == (0.5,)
    assert status.goal_id == "place" and status.step == 1
    cell.poll(50)
    assert cell.sent() == ["pick"]                     # nothing more while paused


def test_a_resume_where_it_paused_goes_on_with_the_next_step():
    cell = paused_after_pick()
    assert cell.runner.resume() == (True, "program: running")
    cell.poll()
    assert cell.sent() == ["pick", "place"] and cell.planned == []


def test_a_resume_after_a_manual_move_returns_through_the_gate_first():
    cell = paused_after_pick()
    assert cell.gate.submit(step(0.5, -0.4, "aside"), OPERATOR).verdict is Verdict.ACCEPTED
    cell.run_last(-0.4)
    assert cell.runner.resume() == (True, "program: returning to where the next step starts, then running")
    cell.poll()
    assert cell.sent() == ["pick", "aside", "program/return/1"] and cell.planned == [[0.5]]
    assert cell.backend.calls[-1][1].positions[-1, 0] == pytest.approx(0.5)
    cell.poll(5)                                       # the return move is in flight: nothing new
    assert cell.sent()[-1] == "program/return/1" and cell.state() == "returning"
    cell.run_last(0.5)
    cell.poll()
    assert cell.state() == "running"
    assert cell.sent() == ["pick", "aside", "program/return/1", "place"]


def test_a_second_pause_and_resume_returns_to_the_new_steps_start_not_the_old_pause():
    cell = paused_after_pick()
    cell.runner.resume()
    cell.poll()                                        # place sent (0.5 -> 0)
    cell.runner.pause()
    assert cell.runner.resume()[1] == "program: running (the pause had not taken effect yet)"
    cell.run_last(0.0)                                 # place ends at 0: the next step starts there
    cell.poll()
    assert cell.sent() == ["pick", "place", "pick"] and cell.planned == []


def test_a_pause_while_the_return_waits_keeps_the_steps_start():
    cell = paused_after_pick()
    cell.at(-0.2, goal="aside", done=False, v=0.5)    # someone's go-to still running
    cell.runner.resume()
    cell.poll(3)
    status = cell.runner.status()
    assert status.state == "returning" and status.reason.startswith("the move back waits: motion: ")
    cell.at(-0.4, goal="aside", done=True)
    assert cell.runner.pause() == (True, "program: paused (no step in flight)")
    assert cell.runner.resume()[1] == "program: returning to where the next step starts, then running"
    cell.poll()
    assert cell.sent() == ["pick", "program/return/1"] and cell.planned == [[0.5]]


def test_a_step_is_not_sent_while_the_robot_passes_its_start_or_rests_elsewhere():
    cell = paused_after_pick()
    cell.at(0.505, goal="aside", done=False, v=0.8)   # someone's go-to passing the start
    cell.runner.resume()
    cell.poll(3)
    assert cell.sent() == ["pick"]                     # waits: the robot is moving
    assert cell.runner.status().reason.startswith("the move back waits: motion: ")


def test_a_robot_moved_between_steps_pauses_the_program_with_the_reason():
    cell = Cell()
    cell.poll()
    cell.run_last(0.5)                                 # pick done; place is next, from 0.5
    cell.mode = SafetyState(NOW, SafetyMode.PROTECTIVE_STOP, 0.0, None, None, None, "person")
    cell.poll()                                        # waits for the stop to clear
    cell.at(0.3, goal="jog", done=True)                # meanwhile someone moved it
    cell.mode = SafetyState(NOW, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")
    cell.poll(30)
    status = cell.runner.status()
    assert status.state == "paused"
    assert status.reason == "the robot is 0.200 rad from where step 2 starts; resume to go on"
    assert cell.sent() == ["pick"]


def test_a_step_taken_over_by_another_goal_pauses_the_program():
    cell = Cell()
    cell.poll()
    cell.at(0.2, goal="pick", done=False)
    cell.poll()
    cell.at(0.25, goal="someone-elses-jog", done=False)
    cell.poll()
    status = cell.runner.status()
    assert status.state == "paused" and status.resume_at == (0.0,)    # pick starts at 0
    assert status.reason.startswith("the step 1 was interrupted by goal 'someone-elses-jog'")
    cell.at(0.3, goal="someone-elses-jog", done=True)
    cell.runner.resume()
    cell.poll()
    assert cell.sent() == ["pick", "program/return/1"] and cell.planned == [[0.0]]
    cell.run_last(0.0)
    cell.poll()
    assert cell.sent()[-1] == "pick"                   # the interrupted step again, from its start


def test_return_moves_that_keep_ending_short_give_up_and_pause():
    cell = paused_after_pick()
    cell.at(-0.4, goal="aside", done=True)
    cell.runner.resume()
    for _ in range(MAX_RETURN_ATTEMPTS):
        cell.poll()
        cell.run_last(0.45)                            # a controller that settles 50 mrad off
    status = cell.runner.status()
    assert status.state == "paused" and status.reason.startswith(f"{MAX_RETURN_ATTEMPTS} return moves")
    assert cell.sent().count("program/return/1") == 1 and "program/return/3" in cell.sent()


def test_the_return_move_goes_through_the_gate():
    cell = paused_after_pick()
    cell.at(-0.9, goal="aside", done=True)
    cell.runner.return_planner = lambda goal_id, q: JointTrajectory(   # a planner gone wrong
        ("j1",), np.array([[-0.9], [1.5]]), np.array([0.0, 1.0]), goal_id=goal_id)
    cell.runner.resume()
    cell.poll()
    assert cell.sent() == ["pick"]                     # beyond the joint limit: the gate refused
    assert cell.runner.status().reason.startswith("the move back waits: limits:")


def test_without_a_planner_a_resume_from_elsewhere_is_refused_and_the_program_stays_paused():
    cell = Cell(planner=False)
    cell.poll()
    cell.runner.pause()
    cell.run_last(0.5)
    cell.at(-0.4, goal="aside", done=True)
    ok, why = cell.runner.resume()
    assert not ok and "cannot plan the way back" in why
    assert cell.state() == "paused"


def test_the_program_reserves_its_goal_ids():
    cell = Cell()
    assert cell.runner.reserves("pick") and cell.runner.reserves("pick/shortened")
    assert cell.runner.reserves("program/return/7") and not cell.runner.reserves("my-jog")


def test_a_robot_still_settling_after_a_step_delays_the_next_step_without_pausing():
    cell = Cell()
    cell.poll()
    cell.at(0.5, goal="pick", done=False)
    cell.poll()
    cell.at(0.497, goal="pick", done=True, v=0.4)     # goal done, the joint still settling
    cell.poll(3)
    assert cell.sent() == ["pick"] and cell.state() == "running"
    cell.at(0.5, goal="pick", done=True)
    cell.poll(30)
    assert cell.sent() == ["pick", "place"] and cell.state() == "running"


def test_a_step_that_ends_aborted_is_sent_again_not_skipped():
    """A stop ended the step's goal short of its target (a grasp): the program does not go on to
    the next step as if the part were held; it sends the same step again from the same start."""
    cell = Cell()
    cell.poll()
    cell.run_last(0.0, aborted=True)
    cell.poll()
    assert cell.sent() == ["pick", "pick"] and cell.state() == "running"
    cell.run_last(0.5)
    cell.poll()
    assert cell.sent() == ["pick", "pick", "place"]


def test_a_step_aborted_half_way_is_sent_again_only_from_its_start():
    cell = Cell()
    cell.poll()
    cell.run_last(0.2, aborted=True)
    cell.poll()
    status = cell.runner.status()
    assert status.state == "paused" and status.reason.startswith("the robot is 0.200 rad from where step 1 starts")
    assert status.resume_at == (0.0,) and cell.sent() == ["pick"]
    assert cell.runner.resume() == (True, "program: returning to where the next step starts, then running")
    cell.poll()
    cell.run_last(0.0)                                 # the return move
    cell.poll()
    assert cell.sent() == ["pick", "program/return/1", "pick"]


def test_a_step_that_keeps_ending_aborted_pauses_the_program_and_a_resume_tries_again():
    cell = Cell()
    for _ in range(MAX_STEP_ATTEMPTS):
        cell.poll()
        cell.run_last(0.0, aborted=True)
    status = cell.runner.status()
    assert status.state == "paused"
    assert status.reason == (f"step 1 (goal 'pick') ended short of its target {MAX_STEP_ATTEMPTS} times in a row; "
                             "resume to try it again")
    cell.poll(20)
    assert cell.sent() == ["pick"] * MAX_STEP_ATTEMPTS
    assert cell.runner.resume() == (True, "program: running")
    cell.poll()
    assert cell.sent() == ["pick"] * (MAX_STEP_ATTEMPTS + 1)
