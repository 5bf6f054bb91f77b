"""Jogs through the command gate, on the real PyBullet Panda stepped in simulated time.

The gate turns each jog into its short trajectory (`robot_bridge.jog`) and checks it like any
other path: role, mode, joint and reduced-speed limits, keep-out zones over the jog's horizon,
the people. The deadman is asserted on the simulation's own clock (`extras["sim_time_s"]`),
never on the wall clock.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from content.cell import Pose, Robot, SafetyParameters, StopData, Zone
from robot_bridge.jog import JOG_DEADMAN_S, MANUAL_REDUCED_SPEED_MPS
from robot_bridge.sim import (
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PHYSICS_RATE_HZ,
    PandaLinkKinematics,
    PyBulletPandaBackend,
)
from robot_bridge.types import CartesianJog, JointJog, JointTrajectory
from safety.audit import AuditLog
from safety.decision import SafetyMode, SafetyState
from safety.errors import SafetyError
from safety.gate import Actor, CommandGate, PeopleOnPath, Verdict
from safety.ssm import StoppingModel
from safety.zones import CellZones, ZoneSet
from tests.safety.fakes import snapshot, standing_person

ROBOT = Robot(base=Pose(position=(0.0, 0.0, 0.0)))
OPERATOR = Actor("olga", frozenset({"operator"}))
WORKER = Actor("walt", frozenset({"worker"}))
SUPERVISOR = Actor("sam", frozenset({"supervisor"}))
NOW_NS = 50_000_000_000
#: Steps between two jogs of a stream: 12 / 240 Hz = 50 ms (20 jogs/s, as an HMI sends them).
STREAM_STEPS = 12
#: Position-controller lag of the simulated Panda after its commanded trajectory has come to
#: rest, seconds: the settling the deadman bound allows on top of timeout + stopping time.
CONTROLLER_SETTLE_S = 0.15


def running(mode=SafetyMode.FULL_SPEED):
    return SafetyState(0, mode, 1.0, None, None, None, "test")


@pytest.fixture(scope="module")
def kin():
    k = PandaLinkKinematics(ROBOT)
    yield k
    k.close()


@pytest.fixture
def robot():
    backend = PyBulletPandaBackend(ROBOT, None, realtime=False)
    backend.start()
    backend.set_speed_scale(1.0, 1)
    backend.reset()
    backend.step(int(PHYSICS_RATE_HZ))  # speed override ramps up to 1
    yield backend
    backend.shutdown()


def make_gate(backend, kin, *, mode=SafetyMode.FULL_SPEED, zones=(), people=None, audit=None, **kwargs):
    current = {"s": running(mode)}
    gate = CommandGate(backend, lambda: current["s"], np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
                       zones=CellZones(list(zones)), kinematics=kin, people=people, audit=audit,
                       joint_acceleration_limits_radps2=np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2),
                       **kwargs)
    return gate, current


def sim_time(backend) -> float:
    return backend.latest_state().extras["sim_time_s"]


def stream(gate, backend, make_jog, n):
    """Submit `n` jogs, one every 50 ms of simulated time; returns the answers."""
    answers = []
    for i in range(n):
        answers.append(gate.submit(make_jog(i), OPERATOR))
        backend.step(STREAM_STEPS)
    return answers


def cartesian(linear, frame="cell", angular=(0.0, 0.0, 0.0)):
    return lambda i: CartesianJog(frame, np.array(linear, float), np.array(angular, float), goal_id=f"jog{i}")


def test_a_stream_of_cartesian_jogs_moves_the_tcp_along_the_twist(robot, kin):
    gate, _ = make_gate(robot, kin)
    start = robot.latest_state().tcp_position.copy()
    answers = stream(gate, robot, cartesian((0.1, 0.0, 0.0)), 10)
    assert {a.verdict for a in answers} == {Verdict.ACCEPTED}
    assert all(isinstance(a.command, JointTrajectory) for a in answers)
    moved = robot.latest_state().tcp_position - start
    # 0.5 s of jogging at up to 0.1 m/s: mostly along +x, nowhere else
    assert 0.035 < moved[0] < 0.055
    assert np.abs(moved[1:]).max() < 0.005


def test_a_tool_frame_jog_moves_along_the_tool_axis(robot, kin):
    gate, _ = make_gate(robot, kin)
    state = robot.latest_state()
    approach = kin.tool_pose(state.position)[1][:, 2]  # tool z: the gripper's approach direction
    assert approach[2] < -0.9  # at the ready pose the gripper points down
    stream(gate, robot, cartesian((0.0, 0.0, 0.1), frame="tool"), 8)
    moved = robot.latest_state().tcp_position - state.tcp_position
    assert np.dot(moved, approach) > 0.025
    assert np.linalg.norm(moved - np.dot(moved, approach) * approach) < 0.005


def test_deadman_the_robot_is_at_rest_within_timeout_plus_stopping_time_when_jogs_stop(robot, kin):
    gate, _ = make_gate(robot, kin)
    answers = stream(gate, robot, cartesian((0.0, 0.2, 0.0)), 6)
    last_t = sim_time(robot) - STREAM_STEPS / PHYSICS_RATE_HZ  # when the last jog arrived
    stop_s = float(answers[-1].command.time_from_start_s[-1])  # hold + ramp to rest
    assert JOG_DEADMAN_S < stop_s < JOG_DEADMAN_S + 0.1
    speeds, times = [], []
    for _ in range(int(0.6 * PHYSICS_RATE_HZ)):
        state = robot.step(1)
        speeds.append(float(np.linalg.norm(state.tcp_velocity_mps)))
        times.append(state.extras["sim_time_s"] - last_t)
    speeds, times = np.array(speeds), np.array(times)
    # still moving before the deadman timeout ...
    assert speeds[(times > 0.08) & (times < JOG_DEADMAN_S - 0.02)].min() > 0.1
    # ... and at rest (< 2 mm/s) from timeout + stopping time + controller settling on
    assert speeds[times >= stop_s + CONTROLLER_SETTLE_S].max() < 0.002
    assert robot.latest_state().goal_done


def test_the_deadman_timeout_is_configurable_and_checked(robot, kin):
    gate, _ = make_gate(robot, kin, jog_timeout_s=0.5)
    answer = gate.submit(JointJog(("panda_joint1",), velocities=[0.3]), OPERATOR)
    assert answer.verdict is Verdict.ACCEPTED
    assert answer.command.time_from_start_s[-1] == pytest.approx(0.5 + 0.3 / 15.0)
    with pytest.raises(SafetyError, match=r"jog_timeout_s must be a positive number of seconds, got 0"):
        make_gate(robot, kin, jog_timeout_s=0)


def test_a_joint_jog_moves_only_its_joint(robot, kin):
    gate, _ = make_gate(robot, kin)
    q0 = robot.latest_state().position.copy()
    stream(gate, robot, lambda i: JointJog(("panda_joint7",), velocities=[0.8], goal_id=f"j{i}"), 6)
    robot.step(int(0.5 * PHYSICS_RATE_HZ))
    dq = robot.latest_state().position - q0
    assert dq[6] > 0.15
    assert np.abs(dq[:6]).max() < 0.01


def test_a_displacement_jog_reaches_its_displacement(robot, kin):
    gate, _ = make_gate(robot, kin)
    q0 = robot.latest_state().position.copy()
    answer = gate.submit(JointJog(("panda_joint4",), displacements=[0.1], duration_s=0.5, goal_id="d"), OPERATOR)
    assert answer.verdict is Verdict.ACCEPTED
    robot.step(int(1.2 * PHYSICS_RATE_HZ))
    state = robot.latest_state()
    assert state.goal_id == "d" and state.goal_done
    assert state.position[3] - q0[3] == pytest.approx(0.1, abs=3e-3)


@pytest.mark.parametrize("actor, mode, match", [
    (WORKER, SafetyMode.FULL_SPEED, r"role: 'walt' has roles \['worker'\]; moving a robot needs operator or admin"),
    (SUPERVISOR, SafetyMode.FULL_SPEED, r"role: 'sam' .* needs operator or admin"),
    (OPERATOR, SafetyMode.PROTECTIVE_STOP, r"mode: no motion command is accepted in protective_stop"),
    (OPERATOR, SafetyMode.FAULT_STOP, r"mode: no motion command is accepted in fault_stop"),
])
def test_jogs_are_refused_by_role_and_in_a_stop_and_never_reach_the_robot(robot, kin, actor, mode, match):
    gate, _ = make_gate(robot, kin, mode=mode)
    for jog in (CartesianJog("cell", np.array([0.1, 0, 0]), np.zeros(3), goal_id="c"),
                JointJog(("panda_joint1",), velocities=[0.5], goal_id="j")):
        answer = gate.submit(jog, actor)
        assert answer.verdict is Verdict.REJECTED and answer.command is None
        assert __import__("re").search(match, answer.reason), answer.reason
    robot.step(10)
    assert robot.latest_state().goal_id == ""  # nothing was forwarded
    assert gate.rejected == 2 and gate.accepted == 0


def test_a_jog_faster_than_manual_reduced_speed_is_slowed_and_says_so(robot, kin):
    gate, _ = make_gate(robot, kin)
    answer = gate.submit(CartesianJog("cell", np.array([0.4, 0, 0]), np.zeros(3)), OPERATOR)
    assert answer.verdict is Verdict.MODIFIED
    assert answer.reason.startswith("limits: TCP speed")
    assert "reduced to 0.25 m/s" in answer.reason
    traj = answer.command
    q = traj.positions
    jac = kin.tool_jacobian(q[0])
    v = np.diff(q, axis=0) / np.diff(traj.time_from_start_s)[:, None]
    assert max(np.linalg.norm(jac[:3] @ row) for row in v) <= MANUAL_REDUCED_SPEED_MPS + 1e-6
    answer = gate.submit(JointJog(("panda_joint6",), velocities=[9.0]), OPERATOR)
    assert answer.verdict is Verdict.MODIFIED
    assert "limits: jog slowed to 29% (panda_joint6 at its velocity limit 2.61 rad/s)" in answer.reason


def test_unknown_joints_are_refused_by_name(robot, kin):
    gate, _ = make_gate(robot, kin)
    answer = gate.submit(JointJog(("elbow",), velocities=[0.1], goal_id="e"), OPERATOR)
    assert answer.verdict is Verdict.REJECTED
    assert answer.reason.startswith("schema: JointJog 'e': unknown joint(s) elbow")


def test_a_jog_without_a_robot_model_is_refused(robot):
    gate = CommandGate(robot, lambda: running(), np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
                       joint_acceleration_limits_radps2=np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2))
    answer = gate.submit(JointJog(("panda_joint1",), velocities=[0.1]), OPERATOR)
    assert answer.reason == "jog: no robot model with a TCP to predict the jog's motion"


def front_of_the_hand(state) -> float:
    """x of the front surface of the hand and wrist capsules, metres, `cell` frame."""
    segs, radii = state.link_segments, state.link_radii_m
    return float(max(segs[k, :, 0].max() + radii[k] for k in range(len(radii)) if k >= 6))


def keep_out_ahead(state, gap_m):
    x = front_of_the_hand(state) + gap_m
    z = float(state.tcp_position[2])
    return Zone(name="fixture", kind="robot_keep_out",
                box={"min": (x, -0.5, z - 0.3), "max": (x + 0.3, 0.5, z + 0.3)})


def test_keep_out_is_checked_over_the_jogs_horizon(robot, kin):
    state = robot.latest_state()
    # 2 cm ahead: a 0.25 m/s jog covers about 5 cm before it is at rest -> refused, robot untouched
    gate, _ = make_gate(robot, kin, zones=[keep_out_ahead(state, 0.02)])
    answer = gate.submit(CartesianJog("cell", np.array([0.25, 0, 0]), np.zeros(3), goal_id="k"), OPERATOR)
    assert answer.verdict is Verdict.REJECTED
    assert answer.reason.startswith("keep-out: ") and "would enter keep-out zone fixture" in answer.reason
    # away from the zone: fine; and a zone beyond the horizon does not refuse the jog
    assert gate.submit(CartesianJog("cell", np.array([-0.1, 0, 0]), np.zeros(3)), OPERATOR).forwarded
    gate, _ = make_gate(robot, kin, zones=[keep_out_ahead(state, 0.15)])
    assert gate.submit(CartesianJog("cell", np.array([0.25, 0, 0]), np.zeros(3)), OPERATOR).forwarded


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(direction=st.sampled_from([(1, 0, 0), (0, 1, 0), (0, 0, -1), (1, 1, 0), (1, 0, -1)]),
       gap_m=st.floats(0.005, 0.12), speed_mps=st.floats(0.05, 0.4))
def test_property_a_jog_never_moves_a_link_into_keep_out(robot, kin, direction, gap_m, speed_mps):
    """Whatever the gate forwards, the simulated robot's links never enter the zone."""
    state = robot.latest_state()
    d = np.array(direction, float) / np.linalg.norm(direction)
    # a slab of keep-out ahead of the hand along the jog direction, `gap_m` from its capsules
    reach = max(float(np.dot(p, d)) + r for seg, r in zip(state.link_segments[6:], state.link_radii_m[6:])
                for p in seg)
    centre = state.tcp_position + d * (reach - float(np.dot(state.tcp_position, d)) + gap_m + 0.15)
    half = np.where(np.abs(d) > 0.1, 0.15 * np.abs(d) + 0.001, 0.5)
    zone = Zone(name="slab", kind="robot_keep_out", box={"min": tuple(centre - half), "max": tuple(centre + half)})
    zones = ZoneSet([zone])
    if zones.robot_violations(state.link_segments, state.link_radii_m, state.link_names):
        return  # the box as drawn already touches the robot: not this property's case
    gate, _ = make_gate(robot, kin, zones=[zone])
    for i in range(4):
        answer = gate.submit(CartesianJog("cell", d * speed_mps, np.zeros(3), goal_id=f"p{i}"), OPERATOR)
        for _ in range(STREAM_STEPS):
            s = robot.step(1)
            assert not zones.robot_violations(s.link_segments, s.link_radii_m, s.link_names), answer
    for _ in range(int(0.5 * PHYSICS_RATE_HZ)):
        s = robot.step(1)
        assert not zones.robot_violations(s.link_segments, s.link_radii_m, s.link_names)


def people(snap):
    return PeopleOnPath(lambda: snap, SafetyParameters(), StoppingModel.from_stop_data(StopData()), 1.0,
                        clock_ns=lambda: NOW_NS)


def test_a_jog_towards_a_person_is_refused_or_shortened_and_away_is_forwarded(robot, kin):
    tcp = robot.latest_state().tcp_position
    near = snapshot(NOW_NS, [standing_person(float(tcp[0]) + 0.9, float(tcp[1]))])
    gate, _ = make_gate(robot, kin, people=people(near))
    answer = gate.submit(CartesianJog("cell", np.array([0.25, 0, 0]), np.zeros(3)), OPERATOR)
    assert answer.verdict in (Verdict.REJECTED, Verdict.MODIFIED)
    assert "people: " in answer.reason and "from person p1" in answer.reason
    assert answer.rest is None  # a jog has no rest to submit later
    far = snapshot(NOW_NS, [standing_person(6.0, 0.0)])
    gate, _ = make_gate(robot, kin, people=people(far))
    assert gate.submit(CartesianJog("cell", np.array([0.25, 0, 0]), np.zeros(3)), OPERATOR).verdict \
        is Verdict.ACCEPTED


def test_jog_answers_are_audited(robot, kin, tmp_path):
    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    try:
        gate, _ = make_gate(robot, kin, audit=audit)
        gate.submit(CartesianJog("tool", np.array([0, 0, 0.05]), np.zeros(3), goal_id="a1"), OPERATOR)
        gate.submit(JointJog(("panda_joint1",), velocities=[0.1], goal_id="a2"), WORKER)
        assert audit.flush(10.0)
        events = audit.page(kind="gate_answer")["events"]
    finally:
        audit.close()
    assert [(e["actor"], e["inputs"]["command"], e["inputs"]["goal_id"], e["inputs"]["verdict"])
            for e in events] == [("olga", "CartesianJog", "a1", "accepted"), ("walt", "JointJog", "a2", "rejected")]
    assert events[1]["reason"].startswith("role: ")
