"""The command gate and the monitor thread against a fake robot backend."""

import time

import numpy as np
import pytest

from content.cell import SafetyParameters, StopData
from robot_bridge.types import GripperCommand, JointTrajectory, StopCategory
from safety.decision import SafetyMode, SafetyState
from safety.errors import SafetyError
from safety.gate import Actor, CommandGate, Verdict
from safety.monitor import SafetyMonitor
from tests.safety.fakes import MS, FakeBackend, robot_state, snapshot, standing_person

OPERATOR = Actor("olga", frozenset({"operator"}))
WORKER = Actor("walt", frozenset({"worker"}))


def state(mode):
    return SafetyState(0, mode, 1.0 if mode is SafetyMode.FULL_SPEED else 0.0, None, None, None, "test")


def traj(q, t=(0.0, 1.0)):
    return JointTrajectory(("j1",), np.array(q, float).reshape(-1, 1), np.array(t), goal_id="g")


def make_gate(mode=SafetyMode.FULL_SPEED):
    backend = FakeBackend()
    current = {"s": state(mode)}
    gate = CommandGate(backend, lambda: current["s"], np.array([1.0]))
    return gate, backend, current


def test_gate_forwards_a_valid_command_from_an_operator():
    gate, backend, _ = make_gate()
    answer = gate.submit(traj([0.0, 0.5]), OPERATOR)
    assert answer.verdict is Verdict.ACCEPTED and answer.forwarded
    assert [c[0] for c in backend.calls] == ["execute"]
    assert gate.accepted == 1 and gate.rejected == 0


@pytest.mark.parametrize("command, actor, mode, match", [
    (traj([0.0, 0.5]), WORKER, SafetyMode.FULL_SPEED, r"role: 'walt' .* needs operator or admin"),
    (traj([0.0, 0.5]), OPERATOR, SafetyMode.PROTECTIVE_STOP, r"mode: no motion command is accepted in protective_stop"),
    (traj([0.0, 0.5]), OPERATOR, SafetyMode.FAULT_STOP, r"mode: no motion command is accepted in fault_stop"),
    (traj([0.0, 1.5]), OPERATOR, SafetyMode.FULL_SPEED, r"limits: point 1 puts j1 at 1.500 rad, outside \[-1.000, 1.000\]"),
    (traj([0.0, 0.9], (0.0, 0.5)), OPERATOR, SafetyMode.FULL_SPEED, r"limits: segment 0 moves j1 at 1.80 rad/s, above its limit 1.00"),
    ("move!", OPERATOR, SafetyMode.FULL_SPEED, r"schema: unsupported command type str"),
    (GripperCommand(0.2), OPERATOR, SafetyMode.FULL_SPEED, r"limits: gripper position_m must be in \[0, 0.08\] m, got 0.2$"),
    (GripperCommand(0.04, 150.0), OPERATOR, SafetyMode.FULL_SPEED, r"limits: gripper max_effort_n must be in \(0, 140\] N, got 150.0$"),
    (GripperCommand(0.04, float("nan")), OPERATOR, SafetyMode.FULL_SPEED, r"limits: gripper max_effort_n must be in \(0, 140\] N, got nan$"),
    (GripperCommand(0.04, 0.0), OPERATOR, SafetyMode.FULL_SPEED, r"limits: gripper max_effort_n must be in \(0, 140\] N, got 0.0$"),
    (JointTrajectory(("jx",), np.zeros((1, 1)), np.zeros(1)), OPERATOR, SafetyMode.FULL_SPEED, r"schema: joint_names \['jx'\]"),
])
def test_gate_rejects_with_the_rule(command, actor, mode, match):
    gate, backend, _ = make_gate(mode)
    answer = gate.submit(command, actor)
    assert answer.verdict is Verdict.REJECTED
    assert __import__("re").search(match, answer.reason), answer.reason
    assert backend.calls == [] and gate.rejected == 1


def test_a_trajectory_starts_where_the_robot_is_or_gives_its_first_point_time():
    gate, backend, _ = make_gate()
    backend.state = robot_state(0)                                  # the joint at 0 rad
    answer = gate.submit(traj([0.5, 0.6]), OPERATOR)                # 0.5 rad away, due at once
    assert answer.verdict is Verdict.REJECTED and answer.reason == (
        "path: the first point is due at 0 s but puts j1 0.500 rad from where it is (at most 0.02 "
        "rad): start the trajectory at the robot's position, or give its first point time")
    answer = gate.submit(traj([0.5, 0.6], t=(0.1, 1.0)), OPERATOR)  # 5 rad/s to get there
    assert answer.verdict is Verdict.REJECTED and answer.reason == (
        "limits: reaching the first point moves j1 at 5.00 rad/s, above its limit 1.00 rad/s")
    assert backend.calls == []
    assert gate.submit(traj([0.5, 0.6], t=(0.6, 1.0)), OPERATOR).verdict is Verdict.ACCEPTED
    assert gate.submit(traj([0.015, 0.1]), OPERATOR).verdict is Verdict.ACCEPTED   # settling


def test_gate_rejects_before_the_monitor_runs():
    backend = FakeBackend()
    gate = CommandGate(backend, lambda: None, np.array([1.0]))
    assert "has not started" in gate.submit(traj([0.0, 0.1]), OPERATOR).reason


def test_safety_channel_is_handed_out_once():
    gate, _, _ = make_gate()
    gate.safety_channel()
    with pytest.raises(SafetyError, match="already held by a monitor"):
        gate.safety_channel()


class Clock:
    def __init__(self):
        self.now = 10_000 * MS

    def __call__(self):
        return self.now


def make_monitor():
    backend = FakeBackend()
    gate = CommandGate(backend, lambda: None, np.array([1.0]))
    clock = Clock()
    feeds = {"robot": None, "snap": None}
    mon = SafetyMonitor(lambda: feeds["robot"], lambda: feeds["snap"], gate.safety_channel(),
                        SafetyParameters(), StopData(category=1), 1.0, clock_ns=clock)
    return mon, backend, clock, feeds


def tick(mon, clock, feeds, *, people=(), robot_kwargs=None, dt=10 * MS):
    clock.now += dt
    feeds["robot"] = robot_state(clock.now, **(robot_kwargs or {}))
    feeds["snap"] = snapshot(clock.now, people)
    return mon.step()


def test_monitor_releases_after_start_up_and_stops_on_stale_robot():
    mon, backend, clock, feeds = make_monitor()
    assert mon.step().mode is SafetyMode.FAULT_STOP
    assert backend.calls == []  # the backend starts stopped; nothing to release yet
    state = tick(mon, clock, feeds)
    assert state.mode is SafetyMode.FULL_SPEED
    assert backend.calls[:2] == [("scale", 1.0, 1), ("reset",)]
    clock.now += 10 * MS
    feeds["robot"] = robot_state(clock.now - 100 * MS)
    state = mon.step()
    assert state.mode is SafetyMode.FAULT_STOP
    assert backend.calls[-1] == ("stop", StopCategory.STOP_1, 2)


def test_monitor_reset_needs_supervisor_and_clears_the_latch():
    mon, backend, clock, feeds = make_monitor()
    tick(mon, clock, feeds)
    clock.now += 10 * MS
    feeds["robot"] = None
    mon.step()
    ok, why = mon.reset("walt", frozenset({"operator"}))
    assert not ok and "needs supervisor or admin" in why
    tick(mon, clock, feeds)
    assert mon.latest().latched
    ok, why = mon.reset("sue", frozenset({"supervisor"}))
    assert ok
    state = tick(mon, clock, feeds)
    assert state.mode is SafetyMode.PROTECTIVE_STOP and backend.calls[-1] == ("reset",)


def test_report_separates_the_start_up_fault_stop_from_later_ones():
    mon, backend, clock, feeds = make_monitor()
    mon.step()                                  # no input yet: start-up
    clock.now += 30 * MS
    mon.step()
    assert mon.report()["startup_s"] is None    # not started yet
    tick(mon, clock, feeds)                     # every input live: started, 40 ms after the first cycle
    report = mon.report()
    assert report["startup_s"] == pytest.approx(0.040)
    assert report["fault_stop_after_startup_s"] == 0.0
    clock.now += 10 * MS
    feeds["robot"] = robot_state(clock.now - 100 * MS)   # stale robot state: a watchdog trips
    assert mon.step().mode is SafetyMode.FAULT_STOP
    for _ in range(3):
        tick(mon, clock, feeds)                 # latched until a reset: 30 ms more in fault stop
    report = mon.report()
    assert report["startup_s"] == pytest.approx(0.040)
    assert report["fault_stop_after_startup_s"] == pytest.approx(0.030)
    assert report["time_in_mode_s"]["fault_stop"] == pytest.approx(0.070)
    # The report names the watchdog that tripped after start-up, when and how stale (the start-up
    # fault stop is not listed: its causes are the inputs not live yet).
    assert report["fault_stops_after_startup"] == [
        {"at_s": pytest.approx(0.050), "causes": ["robot state stale: 100 ms old (limit 50 ms)"]}]


def test_report_lists_each_entry_into_fault_stop_after_start_up_with_its_causes():
    mon, backend, clock, feeds = make_monitor()
    mon.step()                                  # start-up
    tick(mon, clock, feeds)                     # started
    clock.now += 10 * MS
    feeds["robot"] = None                       # the robot state is lost
    mon.step()
    tick(mon, clock, feeds)                     # the cause is gone; the latch holds
    assert mon.reset("sue", frozenset({"supervisor"}))[0]
    tick(mon, clock, feeds)                     # reset: protective stop, then it resumes
    for _ in range(60):
        tick(mon, clock, feeds)
    clock.now += 10 * MS
    feeds["snap"] = snapshot(clock.now - 600 * MS, ())  # the tracker went quiet
    mon.step()
    stops = mon.report()["fault_stops_after_startup"]
    assert len(stops) == 2
    assert stops[0]["causes"] == ["no robot state received"]
    assert stops[1]["causes"][0] == "worker tracking stale: 600 ms old"   # then its cameras
    assert stops[0]["at_s"] == pytest.approx(0.020)
    assert stops[1]["at_s"] > stops[0]["at_s"]


def test_monitor_measures_reaction_from_capture_to_applied():
    mon, backend, clock, feeds = make_monitor()
    tick(mon, clock, feeds)
    tick(mon, clock, feeds, people=[standing_person(1.6)])
    seq = backend.calls[-1][2]
    # The backend applies it 4 ms later; the frame was captured 25 ms (newest) / 50 ms (oldest) ago.
    applied = clock.now + 4 * MS
    tick(mon, clock, feeds, people=[standing_person(1.6)], robot_kwargs=dict(safety_seq=seq, applied_ns=applied))
    report = mon.report()
    assert report["reaction_samples"] == 1
    assert report["reaction_ms"]["p50"] == pytest.approx(29.0)
    assert report["reaction_oldest_view_ms"]["p50"] == pytest.approx(54.0)


def test_monitor_survives_an_exception_in_its_inputs_as_a_fault_stop():
    mon, backend, clock, feeds = make_monitor()
    tick(mon, clock, feeds)

    def boom():
        raise RuntimeError("camera driver exploded")
    mon._perception_source = boom
    state = mon.step()
    assert state.mode is SafetyMode.FAULT_STOP and "camera driver exploded" in state.reason
    assert backend.calls[-1][0] == "stop"


def test_monitor_thread_runs_at_its_rate_and_stop_leaves_a_protective_stop():
    backend = FakeBackend()
    gate = CommandGate(backend, lambda: None, np.array([1.0]))
    cycle_ns: list[int] = []

    def robot_source():  # stamped when read: the monitor reads its clock after its inputs
        cycle_ns.append(time.monotonic_ns())
        return robot_state(cycle_ns[-1])

    mon = SafetyMonitor(robot_source, lambda: snapshot(time.monotonic_ns()),
                        gate.safety_channel(), SafetyParameters(rate_hz=100), StopData(), 1.0)
    mon.start()
    time.sleep(0.5)
    mon.stop()
    report = mon.report()
    # Every period between the first and the last cycle is either a cycle or counted as missed
    # (an overrun skips its periods instead of bursting), so this holds on a loaded machine too.
    span_periods = (cycle_ns[-1] - cycle_ns[0]) / 1e9 * 100
    assert report["cycles"] >= 2 and report["cycles"] == len(cycle_ns)
    assert 0.9 * span_periods - 1 <= report["cycles"] - 1 + report["missed_periods"] <= 1.1 * span_periods + 2
    # A cycle costs a fraction of its 10 ms period (overruns come from a starved thread, not
    # from the cycle): the median over the run, robust to the machine's load.
    assert report["cycle_time_ms"]["p50"] < 5.0, report["cycle_time_ms"]
    assert backend.calls[-1][0] == "stop"
    state = mon.latest()
    # Inputs were live all along; only the monitor's own watchdog may have stopped it, when the
    # machine stalled its thread for over 10 periods (then it says so).
    assert state.mode is SafetyMode.FULL_SPEED or (
        state.mode is SafetyMode.FAULT_STOP and "monitor cycle overrun" in state.reason), state.reason


def test_a_users_stop_request_latches_a_fault_stop_that_a_supervisor_resets():
    mon, backend, clock, feeds = make_monitor()
    tick(mon, clock, feeds)
    assert mon.latest().mode is SafetyMode.FULL_SPEED
    ok, why = mon.request_stop("walt", frozenset({"worker"}), "tool change")
    assert ok and why.startswith("protective stop requested")
    state = tick(mon, clock, feeds)
    assert state.mode is SafetyMode.FAULT_STOP and state.latched
    assert "stop requested by walt: tool change" in state.reason
    assert backend.calls[-1] == ("stop", StopCategory.STOP_1, 2)
    state = tick(mon, clock, feeds)  # the cause is gone, the stop holds until a reset
    assert state.mode is SafetyMode.FAULT_STOP and "reset required" in state.reason
    ok, why = mon.reset("olga", frozenset({"operator"}))
    assert not ok and why.startswith("role: ")
    assert mon.reset("sam", frozenset({"supervisor"}))[0]
    tick(mon, clock, feeds)
    assert backend.calls[-1] == ("reset",)


def test_inputs_published_while_the_cycle_reads_them_are_never_from_the_future():
    """A live input may publish a new record between the monitor's reads. Each record is stamped
    when it is read here, on a clock that advances 5 ms at every reading (a descheduled monitor
    thread): the monitor takes its time after its inputs, so no clock-jump fault comes of it."""
    backend = FakeBackend()
    gate = CommandGate(backend, lambda: None, np.array([1.0]))
    t = [1_000 * MS]

    def clock():
        t[0] += 5 * MS
        return t[0]

    mon = SafetyMonitor(lambda: robot_state(clock()), lambda: snapshot(clock()), gate.safety_channel(),
                        SafetyParameters(), StopData(category=1), 1.0, clock_ns=clock)
    states = [mon.step() for _ in range(5)]
    assert [s.mode for s in states[1:]] == [SafetyMode.FULL_SPEED] * 4, [s.reason for s in states]
    assert not any("clock jump" in s.reason for s in states)
