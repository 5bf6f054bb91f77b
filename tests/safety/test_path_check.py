"""Simulate, then apply: the gate plays a commanded path against the people's predicted positions
and refuses a motion the monitor would have to stop half-way (`safety.path_check`)."""

import re

import numpy as np
import pytest

from content.cell import PickAndPlace, Pose, Robot, SafetyParameters
from robot_bridge.sim import PANDA_JOINT_VELOCITY_LIMITS_RADPS, PandaLinkKinematics, PyBulletPandaBackend, \
    plan_pick_and_place
from robot_bridge.types import JointTrajectory
from safety.decision import SafetyMode, SafetyState
from safety.distance import ARM_CAPSULE_NAMES
from safety.gate import Actor, CommandGate, PeopleOnPath, Verdict
from safety.path_check import first_path_conflict
from safety.ssm import StoppingModel, max_robot_speed_mps
from tests.safety.fakes import MS, FakeBackend, robot_state, snapshot, standing_person

NOW = 10_000 * MS
PARAMS = SafetyParameters()
STOPPING = StoppingModel(0.05, 2.5)
NOMINAL_MPS = 1.0
OPERATOR = Actor("olga", frozenset({"operator"}))


class ColumnKinematics:
    """One joint moves a vertical column (1 m tall, radius 0.1 m) along x: x = q metres."""

    link_names = ("column",)
    link_radii_m = np.array([0.1])

    def link_segments(self, positions):
        q = np.asarray(positions, float)[:, 0]
        segs = np.zeros((len(q), 1, 2, 3))
        segs[:, 0, 0, 0] = segs[:, 0, 1, 0] = q
        segs[:, 0, 1, 2] = 1.0
        return segs


def column_path(x_from, x_to, duration_s, samples=201):
    x = np.linspace(x_from, x_to, samples)
    return ColumnKinematics().link_segments(x[:, None]), np.linspace(0.0, duration_s, samples)


def conflict(segs, times, people, *, velocity=(0.0, 0.0, 0.0), params=PARAMS):
    snap = snapshot(NOW, people, velocity=velocity)
    return first_path_conflict(segs, ColumnKinematics.link_radii_m, ColumnKinematics.link_names, times, snap,
                               NOW, params, STOPPING, NOMINAL_MPS)


def test_the_threshold_is_where_the_monitor_would_stop():
    # the column slides from x=0 to x=2 in 4 s; a person stands at x=2.5
    segs, times = column_path(0.0, 2.0, 4.0)
    found = conflict(segs, times, [standing_person(2.5)])
    assert found is not None and found.person == "p1" and found.link == "column"
    # at that separation the monitor's allowed speed is below the minimum useful speed ...
    # each body part at its own ISO 13855 approach speed
    v_h = PARAMS.hand_arm_speed_mps if found.body_part in ARM_CAPSULE_NAMES else PARAMS.human_speed_mps
    t_r = PARAMS.reaction_time_s + 0.05 + 1.0 / PARAMS.rate_hz
    common = dict(v_h_mps=v_h, reaction_time_s=t_r, stopping=STOPPING,
                  intrusion_distance_m=PARAMS.intrusion_distance_m, z_d_m=PARAMS.human_uncertainty_m,
                  z_r_m=PARAMS.robot_uncertainty_m)
    v_min = PARAMS.min_speed_scale * NOMINAL_MPS
    planned = found.required_m - PARAMS.separation_buffer_m - PARAMS.path_clearance_m
    assert max_robot_speed_mps(separation_m=planned, **common) == \
        pytest.approx(v_min, rel=1e-6)
    assert found.separation_m < found.required_m
    # ... and one sample earlier it was not
    s = int(np.searchsorted(times, found.time_s))
    assert s > 0
    earlier = conflict(segs[:s], times[:s], [standing_person(2.5)])
    assert earlier is None


def test_a_path_away_from_a_person_passes():
    # the person stands 1.2 m from the column's start, the column moves away
    segs, times = column_path(0.0, -1.0, 2.0)
    assert conflict(segs, times, [standing_person(1.3)]) is None


def test_a_walking_person_is_met_along_the_path_unless_prediction_is_off():
    # the column holds at x=0 for 2 s; the person 2 m away walks in along -x
    segs = ColumnKinematics().link_segments(np.zeros((101, 1)))
    times = np.linspace(0.0, 2.0, 101)
    person = [standing_person(2.0)]
    assert conflict(segs, times, person) is None                        # standing: far enough
    found = conflict(segs, times, person, velocity=(-1.5, 0.0, 0.0))    # walking in at 1.5 m/s
    assert found is not None and 0.0 < found.time_s <= PARAMS.path_prediction_horizon_s
    no_prediction = PARAMS.model_copy(update={"path_prediction_horizon_s": 0.0})
    assert conflict(segs, times, person, velocity=(-1.5, 0.0, 0.0), params=no_prediction) is None


def test_the_first_conflict_in_path_order_wins_over_people():
    segs, times = column_path(0.0, 2.0, 4.0)
    found = conflict(segs, times, [standing_person(2.5), standing_person(1.8)])
    assert found.person == "p2"


def test_shapes_that_disagree_are_an_error():
    segs, times = column_path(0.0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"path shapes disagree: link_segments \(201, 1, 2, 3\), radii \(1,\), "
                                         r"1 names, times \(200,\)"):
        conflict(segs, times[:-1], [standing_person(2.0)])


# ------------------------------------------------------------------------------------ the gate
def column_gate(people, *, kinematics=ColumnKinematics(), velocity=(0.0, 0.0, 0.0), scale=1.0, accel=None):
    backend = FakeBackend()
    backend.joint_lower_limits, backend.joint_upper_limits = (-3.0,), (3.0,)
    backend.state = robot_state(NOW)
    mode = SafetyState(NOW, SafetyMode.FULL_SPEED if scale == 1.0 else SafetyMode.REDUCED_SPEED, scale,
                       None, None, None, "test")
    snap = snapshot(NOW, people, velocity=velocity)
    gate = CommandGate(backend, lambda: mode, np.array([2.0]), kinematics=kinematics,
                       people=PeopleOnPath(lambda: snap, PARAMS, STOPPING, NOMINAL_MPS, clock_ns=lambda: NOW),
                       joint_acceleration_limits_radps2=accel)
    return gate, backend


def move(x, t=2.0, goal="g"):
    return JointTrajectory(("j1",), np.array([[x]]), np.array([t]), goal_id=goal)


def test_the_gate_refuses_a_path_into_a_person_and_forwards_nothing():
    gate, backend = column_gate([standing_person(1.5)])
    answer = gate.submit(move(1.4), OPERATOR)
    assert answer.verdict is Verdict.REJECTED
    assert re.fullmatch(r"people: at t = \d\.\d\d s of the path, column would be 0\.\d{3} m from person p1 "
                        r"\([a-z_-]+\), below the 0\.\d{3} m the monitor needs to let the robot move \(with the "
                        r"planning clearance\)", answer.reason), answer.reason
    assert backend.calls == [] and gate.planned_path() is None


def test_the_gate_forwards_a_path_that_keeps_clear_and_keeps_it_as_the_planned_path():
    gate, backend = column_gate([standing_person(2.5)])
    answer = gate.submit(move(-0.5, goal="away"), OPERATOR)
    assert answer.verdict is Verdict.ACCEPTED and [c[0] for c in backend.calls] == ["execute"]
    plan = gate.planned_path()
    assert plan.goal_id == "away"
    assert plan.tool_points[0] == pytest.approx([0.0, 0.0, 1.0]) and plan.tool_points[-1] == pytest.approx([-0.5, 0, 1])
    assert plan.times_s[0] == 0.0 and plan.times_s[-1] == 2.0
    # a refused command leaves the forwarded path in place
    assert gate.submit(move(2.4), OPERATOR).verdict is Verdict.REJECTED
    assert gate.planned_path().goal_id == "away"


def test_a_lower_speed_scale_gives_a_walking_person_more_time_to_arrive():
    # full speed: the column is past the person's line before they get there; at 10 % it is not
    walker = [standing_person(1.0, y_m=2.4)]
    fast, _ = column_gate(walker, velocity=(0.0, -1.5, 0.0))
    assert fast.submit(move(2.8, t=1.5), OPERATOR).verdict is Verdict.ACCEPTED
    slow, _ = column_gate(walker, velocity=(0.0, -1.5, 0.0), scale=0.1)
    assert slow.submit(move(2.8, t=1.5), OPERATOR).verdict is Verdict.REJECTED


def test_without_a_robot_model_a_trajectory_is_refused_while_someone_is_tracked():
    gate, backend = column_gate([standing_person(2.5)], kinematics=None)
    answer = gate.submit(move(0.5), OPERATOR)
    assert answer.reason == "people: no robot model to play the path against the people in the cell"
    assert backend.calls == []
    nobody, backend = column_gate([], kinematics=None)
    assert nobody.submit(move(0.5), OPERATOR).verdict is Verdict.ACCEPTED


def test_a_person_at_the_place_position_stops_the_panda_program_before_it_moves_there():
    robot = Robot(base=Pose(position=(0.0, 0.0, 0.0)))
    program = PickAndPlace(pick=(0.5, -0.3, 0.0), place=(0.5, 0.3, 0.0))
    backend = PyBulletPandaBackend(robot, None, realtime=False)
    backend.start()
    kin = PandaLinkKinematics(robot)
    try:
        person = standing_person(0.55, y_m=1.1)  # 0.8 m beyond the place position, across the table
        snap = snapshot(NOW, [person])
        running = SafetyState(NOW, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")
        gate = CommandGate(backend, lambda: running, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS), kinematics=kin,
                           people=PeopleOnPath(lambda: snap, PARAMS, StoppingModel.from_stop_data(robot.stop),
                                               robot.max_tcp_speed_mps, clock_ns=lambda: NOW))
        moves = {c.goal_id.split("-", 1)[1]: c for c in plan_pick_and_place(robot, program)
                 if isinstance(c, JointTrajectory)}
        assert gate._check(moves["approach_pick"], OPERATOR).why is None   # the pick side is clear
        # over to the place side is not (swept from the robot's position; the gate's own check
        # would first refuse a step that does not start where the robot is)
        why = gate._check_path(moves["transfer"], 1.0).why
        assert why is not None and why.startswith("people: ") and "person p1" in why and "panda_" in why
    finally:
        kin.close()
        backend.shutdown()


# ------------------------------------------------------------------ shortened (MODIFIED) answers
def test_the_gate_shortens_a_path_into_a_person_to_a_stop_before_and_hands_back_the_rest():
    gate, backend = column_gate([standing_person(2.5)], accel=np.array([2.0]))
    answer = gate.submit(move(2.0, t=2.0, goal="g"), OPERATOR)
    assert answer.verdict is Verdict.MODIFIED and answer.forwarded
    assert re.fullmatch(r"shortened: stops at t = \d\.\d\d s instead of 2\.00 s, because people: at t = .*",
                        answer.reason), answer.reason
    (kind, forwarded), = backend.calls
    assert kind == "execute" and forwarded is answer.command and forwarded.goal_id == "g/shortened"
    # the forwarded part keeps the planning distance from the person all the way
    end_x = forwarded.positions[-1, 0]
    segs, times = column_path(0.0, end_x, 1.0)
    assert conflict(segs, times, [standing_person(2.5)]) is None
    assert 0.5 < end_x < 2.0
    assert answer.rest.goal_id == "g" and answer.rest.positions[-1, 0] == pytest.approx(2.0)
    assert gate.planned_path().goal_id == "g/shortened"


def test_without_acceleration_limits_the_gate_refuses_instead_of_shortening():
    gate, backend = column_gate([standing_person(2.5)])
    answer = gate.submit(move(2.0, t=2.0), OPERATOR)
    assert answer.verdict is Verdict.REJECTED and answer.reason.startswith("people: ") and backend.calls == []


def test_the_program_runner_finishes_a_shortened_step_once_the_person_has_gone():
    import dataclasses

    from xr_server.program import ProgramRunner
    people = {"now": [standing_person(2.5)]}
    backend = FakeBackend()
    backend.joint_lower_limits, backend.joint_upper_limits = (-3.0,), (3.0,)
    backend.state = robot_state(NOW)
    mode = SafetyState(NOW, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")
    gate = CommandGate(backend, lambda: mode, np.array([2.0]), kinematics=ColumnKinematics(),
                       people=PeopleOnPath(lambda: snapshot(NOW, people["now"]), PARAMS, STOPPING, NOMINAL_MPS,
                                           clock_ns=lambda: NOW),
                       joint_acceleration_limits_radps2=np.array([2.0]))
    runner = ProgramRunner([move(2.0, t=2.0, goal="step")], gate, lambda: backend.state, lambda: mode,
                           clock_s=lambda: 0.0)
    runner.poll()
    assert runner.last_answer.verdict is Verdict.MODIFIED
    prefix = backend.calls[-1][1]
    runner.poll()                                   # still executing the shortened goal: nothing new
    assert len(backend.calls) == 1
    backend.state = dataclasses.replace(robot_state(NOW), position=prefix.positions[-1], goal_id="step/shortened",
                                        goal_done=True)
    people["now"] = []                              # the person walked away
    runner.poll()                                   # notices the shortened goal is done
    runner.poll()                                   # submits the rest
    assert runner.last_answer.verdict is Verdict.ACCEPTED and backend.calls[-1][1].goal_id == "step"
    assert runner.cycles_completed == 0
    backend.state = dataclasses.replace(robot_state(NOW), position=np.array([2.0]), goal_id="step", goal_done=True)
    runner.poll()
    assert runner.cycles_completed == 1
