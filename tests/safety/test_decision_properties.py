"""Property-based tests of the decision (hypothesis): monotone in distance and human speed,
fail-safe on stale, non-finite and missing input, and a state machine over inputs, faults,
resets and commands whose invariants hold after every step."""

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from content.cell import SafetyParameters
from safety.decision import STANDSTILL_MPS, Memory, SafetyMode, decide
from safety.ssm import StoppingModel
from tests.safety.fakes import MS, robot_state, snapshot, standing_person

PARAMS = SafetyParameters()
STOP = StoppingModel(0.05, 2.5)
T0 = 10_000 * MS
distance = st.floats(0.2, 6.0)
speed = st.floats(0.0, 3.0)
robot_speed = st.floats(0.0, 1.5)


def started():
    return decide(T0, robot_state(T0), snapshot(T0), PARAMS, STOP, 1.0, Memory())[1]


def first_decision(x_m, v_h, v_r, age_ns=50 * MS):
    now = T0 + 10 * MS
    return decide(now, robot_state(now, speed_mps=v_r),
                  snapshot(now, [standing_person(x_m)], velocity=(-v_h, 0.0, 0.0), capture_age_ns=age_ns),
                  PARAMS, STOP, 1.0, started())[0]


@settings(max_examples=300, deadline=None)
@given(a=distance, b=distance, v_h=speed, v_r=robot_speed)
def test_a_closer_person_never_yields_a_higher_allowed_speed(a, b, v_h, v_r):
    near, far = sorted((a, b))
    assert first_decision(near, v_h, v_r).speed_scale <= first_decision(far, v_h, v_r).speed_scale


@settings(max_examples=300, deadline=None)
@given(x=distance, a=speed, b=speed, v_r=robot_speed)
def test_a_faster_person_never_yields_a_higher_allowed_speed(x, a, b, v_r):
    slow, fast = sorted((a, b))
    assert first_decision(x, fast, v_r).speed_scale <= first_decision(x, slow, v_r).speed_scale


@settings(max_examples=300, deadline=None)
@given(x=distance, v_h=speed, v_r=robot_speed)
def test_a_moving_robot_is_only_let_move_outside_sp(x, v_h, v_r):
    state = first_decision(x, v_h, v_r)
    if state.speed_scale > 0.0 and v_r > STANDSTILL_MPS:
        assert state.separation_m >= state.s_p.total_m


fault = st.sampled_from(["robot_stale", "robot_missing", "robot_nan", "robot_unhealthy", "tracker_stale",
                         "tracker_missing", "camera_stale", "track_nan", "track_lost", "overrun"])


def faulty_inputs(kind, now):
    robot, snap, prev = robot_state(now), snapshot(now, [standing_person(3.0)]), now - 10 * MS
    if kind == "robot_stale":
        robot = robot_state(now - int(PARAMS.robot_timeout_s * 1e9) - MS)
    elif kind == "robot_missing":
        robot = None
    elif kind == "robot_nan":
        segs = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, np.nan]]])
        robot = robot_state(now, segments=segs)
    elif kind == "robot_unhealthy":
        robot = robot_state(now, healthy=False)
    elif kind == "tracker_stale":
        snap = snapshot(now - int(PARAMS.tracker_timeout_s * 1e9) - MS, [standing_person(3.0)])
    elif kind == "tracker_missing":
        snap = None
    elif kind == "camera_stale":
        snap = snapshot(now, [standing_person(3.0)], camera_age_ns=int(PARAMS.camera_timeout_s * 1e9) + MS)
    elif kind == "track_nan":
        kp = standing_person(3.0)
        kp[5] = np.inf
        snap = snapshot(now, [kp])
    elif kind == "track_lost":
        snap = snapshot(now, lost=("p1",))
    elif kind == "overrun":
        prev = now - int(PARAMS.monitor_timeout_s * 1e9) - MS
    return robot, snap, prev


@settings(max_examples=200, deadline=None)
@given(kind=fault, x=distance)
def test_any_stale_non_finite_or_missing_input_stops_the_robot(kind, x):
    mem = started()
    now = T0 + 10 * MS
    robot, snap, prev = faulty_inputs(kind, now)
    from dataclasses import replace
    state, _ = decide(now, robot, snap, PARAMS, STOP, 1.0, replace(mem, prev_cycle_ns=prev))
    assert state.mode is SafetyMode.FAULT_STOP and state.speed_scale == 0.0 and state.latched


class MonitorMachine(RuleBasedStateMachine):
    """Random sequences of people, robot speeds, faults, resets and time steps."""

    @initialize()
    def start(self):
        self.now = T0
        self.mem = started()
        self.robot_speed = 0.0
        self.person = 4.0
        self.fault: str | None = None
        self.state = None
        self.was_faulted = False
        self.step()

    def step(self):
        self.now += 10 * MS
        if self.fault is None:
            robot = robot_state(self.now, speed_mps=self.robot_speed)
            snap = snapshot(self.now, [standing_person(self.person)])
            prev = self.mem.prev_cycle_ns
        else:
            robot, snap, prev = faulty_inputs(self.fault, self.now)
        from dataclasses import replace
        self.state, self.mem = decide(self.now, robot, snap, PARAMS, STOP, 1.0, replace(self.mem, prev_cycle_ns=prev))
        # The simulated robot follows the scale (at most its nominal 1 m/s).
        self.robot_speed = min(self.robot_speed, self.state.speed_scale) if self.state.speed_scale < self.robot_speed \
            else self.state.speed_scale

    @rule(x=distance)
    def person_moves(self, x):
        self.person = x
        self.step()

    @rule(n=st.integers(1, 80))
    def time_passes(self, n):
        for _ in range(n):
            self.step()

    @rule(kind=fault)
    def a_fault_occurs(self, kind):
        self.fault = kind
        self.was_faulted = True
        self.step()

    @rule()
    def the_fault_clears(self):
        self.fault = None
        self.step()

    @rule()
    def a_reset_is_given(self):
        from dataclasses import replace
        self.mem = replace(self.mem, reset_requested=True)
        self.step()

    @invariant()
    def a_fault_input_always_means_a_stop(self):
        if self.fault is not None:
            assert self.state.mode is SafetyMode.FAULT_STOP and self.state.speed_scale == 0.0

    @invariant()
    def a_latched_fault_holds_until_reset(self):
        if self.mem.latched_faults:
            assert self.state.mode is SafetyMode.FAULT_STOP

    @invariant()
    def the_robot_is_never_let_move_inside_sp(self):
        s = self.state
        if s.speed_scale > 0.0 and s.separation_m is not None and s.v_r_mps > STANDSTILL_MPS:
            assert s.separation_m >= s.s_p.total_m

    @invariant()
    def scale_in_range(self):
        assert 0.0 <= self.state.speed_scale <= 1.0 and math.isfinite(self.state.speed_scale)


TestMonitorMachine = MonitorMachine.TestCase
TestMonitorMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
