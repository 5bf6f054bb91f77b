"""The directed robot speed v_r (ISO/TS 15066 clause 5.5.4.2.3) over the active path, its
fallbacks to the undirected speed, and how the monitor's decision uses it."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from content.cell import SafetyParameters
from safety.decision import Memory, SafetyMode, decide
from safety.directed_speed import DIRECTION_FLOOR_M, ActivePath, directed_speeds_mps
from safety.gate import Actor, CommandGate, Verdict
from safety.ssm import StoppingModel, max_robot_speed_mps, protective_separation_distance
from tests.safety.fakes import MS, FakeBackend, robot_state, snapshot, standing_person
from tests.safety.test_path_check import ColumnKinematics

PARAMS = SafetyParameters()
STOP = StoppingModel(0.05, 2.5)
T0 = 10_000 * MS
NOMINAL_MPS = 1.0


def column_sweep(x_to: float, duration_s: float, goal: str = "g", samples: int = 201) -> ActivePath:
    """The fake robot's one joint slides a column (radius 0.1 m, 1 m tall) from x = 0 to `x_to`."""
    q = np.linspace(0.0, x_to, samples)[:, None]
    return ActivePath.from_sweep(goal, q, np.linspace(0.0, duration_s, samples), ColumnKinematics().link_segments(q))


def moving_robot(now: int, speed_mps: float, goal: str = "g", x: float = 0.0, scale: float = 1.0):
    return dataclasses.replace(robot_state(now, speed_mps=speed_mps), goal_id=goal, goal_done=False,
                               position=np.array([x]), speed_scale=scale)


def started() -> Memory:
    return decide(T0, robot_state(T0), snapshot(T0), PARAMS, STOP, NOMINAL_MPS, Memory())[1]


def first(x_person: float, path: ActivePath | None, robot=None, v_h: float = 0.0, scale: float = 1.0):
    now = T0 + 10 * MS
    robot = moving_robot(now, 0.5) if robot is None else robot
    snap = snapshot(now, [standing_person(x_person)], velocity=(-v_h, 0.0, 0.0))
    memory = dataclasses.replace(started(), scale=scale)
    return decide(now, robot, snap, PARAMS, STOP, NOMINAL_MPS, memory, path=path)[0]


def test_the_directed_speed_is_the_velocity_towards_the_person_clamped_at_zero():
    path = column_sweep(1.0, 2.0)                       # 0.5 m/s along +x
    window = path.window(0, 1.0)
    ahead = np.array([[[2.0, 0.0, 0.5]]])               # level with the axis, in front
    behind = np.array([[[-2.0, 0.0, 0.5]]])
    aside = np.array([[[0.0, 2.0, 0.5]]])               # perpendicular to the motion
    assert directed_speeds_mps(path, window, ahead)[0][0, 0] == pytest.approx(0.5)
    assert directed_speeds_mps(path, window, behind)[0][0, 0] == 0.0
    # aside: the column's future positions move past the person, never towards it faster
    # than 0.5 * sin(angle): at most 0.5 * 0.5 / sqrt(0.5^2 + 2^2) by the end of the window
    directed, undirected = directed_speeds_mps(path, window, aside)
    assert 0.0 <= directed[0, 0] <= 0.5 * 0.5 / np.hypot(0.5, 2.0) + 1e-9
    assert undirected[0] == pytest.approx(0.5)


def test_the_window_covers_the_horizon_from_the_robot_on_the_path():
    path = column_sweep(1.0, 2.0)
    here = path.progress(np.array([0.5]))
    assert here == 100 and path.progress(np.array([1.06])) is None   # off the path
    window = path.window(here, 0.3)
    assert path.times_s[window[0]] == pytest.approx(0.99) and path.times_s[window[-1]] <= 1.0 + 0.3 + 1e-9
    assert len(window) <= 16


def test_a_robot_moving_away_has_v_r_zero_and_no_robot_terms():
    state = first(1.5, column_sweep(-1.0, 2.0))          # slides away from the person at 0.5 m/s
    assert state.closest.v_r_directed and state.v_r_mps == 0.0
    assert state.s_p.s_r == 0.0 and state.s_p.s_s == 0.0
    # S_h = v_h (T_r + t_d) with T_r the configured time + the data's age + one period
    t_r = PARAMS.reaction_time_s + 0.05 + 1.0 / PARAMS.rate_hz
    assert state.s_p.s_h == pytest.approx(PARAMS.human_speed_mps * (t_r + STOP.latency_s))
    assert state.mode is SafetyMode.FULL_SPEED and state.speed_scale == 1.0


def slowed(speed_mps: float = 0.2, scale: float = 0.4):
    """A robot running its path at `scale` (the monitor's last scale too)."""
    return dict(robot=moving_robot(T0 + 10 * MS, speed_mps, scale=scale), scale=scale)


def test_a_robot_moving_towards_the_person_has_its_full_speed_as_v_r():
    # the path runs at 0.5 m/s at scale 1, the robot at scale 0.4: 0.2 m/s straight at the person
    state = first(1.0, column_sweep(1.0, 2.0), **slowed())
    assert state.closest.v_r_directed and state.v_r_mps == pytest.approx(0.2)
    t_r = state.reaction_time_s
    assert state.s_p.s_r == pytest.approx(0.2 * t_r)
    assert state.s_p.s_s == pytest.approx(0.2 * STOP.latency_s + 0.04 / (2 * STOP.deceleration_mps2))
    assert state.s_p.s_h == pytest.approx(state.v_h_mps * (t_r + STOP.latency_s + 0.2 / STOP.deceleration_mps2))
    assert state.mode is SafetyMode.REDUCED_SPEED


def test_the_allowed_scale_is_v_max_over_the_directed_speed_at_scale_one():
    # towards the person at 0.5 m/s at scale 1, the column (radius 0.1) 1.0 m from the axis:
    # arms bind (radius 0.06, v_h 2.0 m/s): v_max(d) / 0.5; a path twice as slow allows twice the scale
    fast = first(1.0, column_sweep(1.0, 2.0), **slowed())
    slow = first(1.0, column_sweep(1.0, 4.0), **slowed(0.1))
    d = 1.0 - 0.1 - 0.06 - PARAMS.separation_buffer_m
    v_max = max_robot_speed_mps(separation_m=d, v_h_mps=PARAMS.hand_arm_speed_mps,
                                reaction_time_s=fast.reaction_time_s, stopping=STOP,
                                intrusion_distance_m=PARAMS.intrusion_distance_m, z_d_m=PARAMS.human_uncertainty_m,
                                z_r_m=PARAMS.robot_uncertainty_m)
    assert v_max / 0.5 < 1.0 and fast.speed_scale == pytest.approx(v_max / 0.5)
    assert slow.speed_scale == pytest.approx(min(1.0, v_max / 0.25)) and slow.speed_scale > fast.speed_scale
    # without a path, the same situation is judged at the nominal (undirected) speed
    undirected = first(1.0, None, **slowed())
    assert undirected.speed_scale == pytest.approx(v_max / NOMINAL_MPS) and not undirected.closest.v_r_directed


@pytest.mark.parametrize("case", ["no_path", "other_goal", "off_path", "faster_than_path"])
def test_without_a_path_that_explains_the_motion_v_r_is_undirected(case):
    now = T0 + 10 * MS
    path = None if case == "no_path" else column_sweep(-1.0, 2.0)   # moving away
    robot = {"no_path": moving_robot(now, 0.5), "other_goal": moving_robot(now, 0.5, goal="other"),
             "off_path": moving_robot(now, 0.5, x=0.3),
             "faster_than_path": moving_robot(now, 1.5)}[case]
    state = first(1.5, path, robot=robot)
    assert not state.closest.v_r_directed and state.v_r_mps == robot.max_speed_mps
    assert state.speed_scale < 1.0


def test_below_the_direction_floor_v_r_is_the_links_undirected_speed_on_the_path():
    # the column moves away at 0.5 m/s but the person's torso is within DIRECTION_FLOOR_M of it
    state = first(0.1 + 0.15 + DIRECTION_FLOOR_M - 0.05, column_sweep(-1.0, 2.0))
    assert state.separation_m < DIRECTION_FLOOR_M
    assert not state.closest.v_r_directed and state.v_r_mps == pytest.approx(0.5)


def test_a_robot_still_slowing_down_counts_at_its_actual_speed():
    # the path is 0.5 m/s at scale 1, the scale is 0.2 but the robot still moves at 0.4 m/s
    state = first(1.5, column_sweep(1.0, 2.0), robot=moving_robot(T0 + 10 * MS, 0.4, scale=0.2), scale=0.2)
    assert state.v_r_mps == pytest.approx(0.4)
    expected = protective_separation_distance(
        v_h_mps=state.v_h_mps, v_r_mps=0.4, reaction_time_s=state.reaction_time_s, stopping=STOP,
        intrusion_distance_m=PARAMS.intrusion_distance_m, z_d_m=PARAMS.human_uncertainty_m,
        z_r_m=PARAMS.robot_uncertainty_m)
    assert state.s_p == expected


def test_a_path_that_turns_towards_the_person_within_the_horizon_counts():
    # sideways (+y) first, then towards the person (+x) 0.2 s later: within T_r + T_s
    q = np.linspace(0.0, 1.0, 101)[:, None]
    segs = np.zeros((101, 1, 2, 3))
    segs[:, 0, 1, 2] = 1.0
    turn = 10
    segs[:turn + 1, 0, :, 1] = q[:turn + 1] * 1.0           # y grows for the first 0.2 s
    segs[turn + 1:, 0, :, 1] = q[turn, 0]
    segs[turn + 1:, 0, :, 0] = (q[turn + 1:] - q[turn])      # then x grows
    path = ActivePath.from_sweep("g", q, np.linspace(0.0, 2.0, 101), segs)
    window = path.window(0, 0.5)
    directed, _ = directed_speeds_mps(path, window, np.array([[[3.0, 0.1, 0.5]]]))
    assert directed[0, 0] == pytest.approx(0.5, rel=1e-3)
    assert directed_speeds_mps(path, path.window(0, 0.1), np.array([[[3.0, 0.1, 0.5]]]))[0][0, 0] < 0.1


def test_the_gate_hands_the_forwarded_path_to_the_monitor():
    from robot_bridge.types import JointTrajectory
    from safety.decision import SafetyState

    backend = FakeBackend()
    backend.joint_lower_limits, backend.joint_upper_limits = (-3.0,), (3.0,)
    backend.state = robot_state(T0)
    mode = SafetyState(T0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")
    gate = CommandGate(backend, lambda: mode, np.array([2.0]), kinematics=ColumnKinematics())
    assert gate.active_path() is None
    answer = gate.submit(JointTrajectory(("j1",), np.array([[1.0]]), np.array([2.0]), "g1"),
                         Actor("olga", frozenset({"operator"})))
    assert answer.verdict is Verdict.ACCEPTED
    path = gate.active_path()
    assert path.goal_id == "g1" and path.positions[-1, 0] == 1.0 and path.speeds[0, 0] == pytest.approx(0.5)


@settings(max_examples=200, deadline=None)
@given(x=st.floats(0.6, 5.0), v_h=st.floats(0.0, 2.5), speed=st.floats(0.05, 1.0))
def test_a_robot_moving_away_never_yields_a_lower_allowed_speed_than_moving_towards(x, v_h, speed):
    robot = moving_robot(T0 + 10 * MS, speed)
    away = first(x, column_sweep(-1.0, 1.0 / speed), robot=robot, v_h=v_h)
    towards = first(x, column_sweep(1.0, 1.0 / speed), robot=robot, v_h=v_h)
    assert away.speed_scale >= towards.speed_scale
