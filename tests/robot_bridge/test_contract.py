"""The `RobotBackend` contract: every backend available on this machine behaves the same.

Parametrised over the backends that can run here: `sim` (PyBullet, real time, its own thread)
and `dds` (Cyclone DDS against `dds/peer.py`, a separate process playing a ROS 2
JointTrajectoryController-like robot on loopback) always; `ros2` only where `rclpy` imports
and the backend is registered (it is not listed otherwise, not skipped).

The robot side going silent is injected at each backend's seam: the sim's stepping thread is
held inside its safeguard-stop input (a constructor argument), the peer stops publishing. Waits
poll with a generous deadline; what is asserted is behaviour (states, modes, positions, error
messages), and the one bound that involves time is the watchdog's, with generous slack.
"""

from __future__ import annotations

import importlib.util
import inspect
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from content.cell import Robot
from robot_bridge.backend import BACKENDS, RobotBackend, create_backend
from robot_bridge.errors import CommandError
from robot_bridge.types import (
    CartesianJog,
    ControllerMode,
    GripperCommand,
    JointJog,
    JointTrajectory,
    RobotState,
    StopCategory,
)
from tests.robot_bridge.dds.peer_client import Peer, fingers_settled, next_domain, wait_for

STATE_TIMEOUT_S = 0.5
RATE_HZ = 200.0
#: Slack on the watchdog bound for polling and scheduling on a loaded 2-core machine, s.
WATCHDOG_SLACK_S = 0.5


def available_backends() -> list[str]:
    """The backends this machine can run: sim and dds always, ros2 where rclpy imports."""
    names = ["sim", "dds"]
    if "ros2" in BACKENDS and importlib.util.find_spec("rclpy") is not None:
        names.append("ros2")
    return names


@dataclass
class Cell:
    """A started backend and its robot side: `stall()` silences it, `unstall()` revives it."""

    backend: object
    rate_hz: float
    stall: Callable[[], None]
    unstall: Callable[[], None]
    cleanup: list[Callable[[], None]] = field(default_factory=list)


def _sim_cell() -> Cell:
    running = threading.Event()
    running.set()

    def safeguard_input() -> bool:  # read every control step on the stepping thread
        running.wait()
        return False

    backend = create_backend(
        "sim",
        robot=Robot(state_rate_hz=RATE_HZ),
        safeguard_stop=safeguard_input,
        state_timeout_s=STATE_TIMEOUT_S,
    )
    backend.start()
    return Cell(backend, RATE_HZ, running.clear, running.set, [running.set, backend.shutdown])


def _dds_cell() -> Cell:
    from robot_bridge.dds import LOOPBACK_CONFIG

    domain = next_domain()
    # the Franka Hand's finger joints and a JointTrajectoryController on them, as a cell file's
    # robot.dds.gripper_controller names it
    topic = "/gripper_controller/joint_trajectory"
    peer = Peer(domain, "--rate-hz", str(RATE_HZ), "--fingers", "0.08",
                "--gripper-kind", "joint_trajectory", "--gripper-topic", topic)
    robot = Robot.model_validate({"dds": {"gripper_controller": {"kind": "joint_trajectory", "topic": topic}}})
    backend = create_backend(
        "dds",
        robot=robot,
        domain_id=domain,
        dds_config=LOOPBACK_CONFIG,
        tcp_link="panda_grasptarget",
        state_timeout_s=STATE_TIMEOUT_S,
    )
    cell = Cell(
        backend, RATE_HZ, lambda: peer.send("pause"), lambda: peer.send("resume"), [peer.close]
    )
    try:
        backend.start()
    except Exception:
        peer.close()
        raise
    cell.cleanup.insert(0, backend.shutdown)
    return cell


CELLS: dict[str, Callable[[], Cell]] = {"sim": _sim_cell, "dds": _dds_cell}


@pytest.fixture(params=available_backends())
def cell(request) -> Iterator[Cell]:
    made = CELLS[request.param]()
    try:
        wait_for(lambda: made.backend.latest_state() is not None, "the first state")
        yield made
    finally:
        for step in made.cleanup:
            step()


def state_where(backend, predicate: Callable[[RobotState], bool], what: str) -> RobotState:
    return wait_for(
        lambda: (lambda s: s if s is not None and predicate(s) else None)(backend.latest_state()),
        what,
    )


class Recorder:
    """Every state a backend publishes, from its subscription."""

    def __init__(self, backend) -> None:
        self.states: list[RobotState] = []
        self._lock = threading.Lock()
        self.stop = backend.subscribe(self._add)

    def _add(self, state: RobotState) -> None:
        with self._lock:
            self.states.append(state)

    def snapshot(self) -> list[RobotState]:
        with self._lock:
            return list(self.states)


def released(cell: Cell) -> RobotState:
    """Release the start-up stop and wait for full speed at standstill."""
    cell.backend.reset()
    return state_where(
        cell.backend,
        lambda s: s.mode is ControllerMode.IDLE and s.speed_scale >= 0.999,
        "IDLE at full speed",
    )


def move(backend, delta: np.ndarray, duration_s: float, goal_id: str) -> np.ndarray:
    """Send a two-point trajectory from the current position by `delta`; returns its goal."""
    q0 = np.asarray(backend.latest_state().position)
    goal = q0 + delta
    backend.execute(
        JointTrajectory(
            backend.joint_names, np.vstack([q0, goal]), np.array([0.0, duration_s]), goal_id=goal_id
        )
    )
    return goal


def delta(**joints: float) -> np.ndarray:
    out = np.zeros(7)
    for name, value in joints.items():
        out[int(name[1:]) - 1] = value
    return out


def test_the_backend_has_every_member_of_the_protocol_with_its_signature(cell):
    # Protocols are structural and not checked at run time: a backend missing `subscribe` (or
    # taking other parameters) would fail only where that member is first used.
    for name, member in vars(RobotBackend).items():
        if name.startswith("_") or not callable(member):
            continue
        implemented = getattr(cell.backend, name, None)
        assert callable(implemented), name
        assert list(inspect.signature(implemented).parameters) == \
            list(inspect.signature(member).parameters)[1:], name
    for name in RobotBackend.__annotations__:
        assert hasattr(cell.backend, name), name


def test_state_is_published_at_the_backend_rate_with_a_monotonic_stamp(cell):
    t_start = time.monotonic_ns()
    rec = Recorder(cell.backend)
    wait_for(lambda: len(rec.snapshot()) >= 200, "200 states")
    rec.stop()
    states = rec.snapshot()
    n = len(cell.backend.joint_names)
    assert n == 7
    for s in states:
        assert s.joint_names == cell.backend.joint_names
        assert s.position.shape == (n,) and s.velocity.shape == (n,)
        assert np.isfinite(s.position).all() and np.isfinite(s.velocity).all()
        assert s.healthy
    stamps = np.array([s.stamp_ns for s in states])
    assert (np.diff(stamps) > 0).all(), "stamps must strictly increase"
    assert (
        stamps[-1] <= time.monotonic_ns() and stamps[0] >= t_start - 1_000_000_000
    )  # the monotonic clock
    # the typical interval is the backend's period (a late sample now and then is not a rate; the
    # slack is for a loaded machine, a backend at half its rate still fails)
    assert np.median(np.diff(stamps)) <= 1.5e9 / cell.rate_hz


def test_a_trajectory_goal_moves_the_robot_to_its_goal(cell):
    released(cell)
    goal = move(cell.backend, delta(j1=0.25, j4=0.2), 1.0, "g1")
    state = state_where(cell.backend, lambda s: s.goal_id == "g1" and s.goal_done, "goal g1 done")
    np.testing.assert_allclose(state.position, goal, atol=0.01)
    assert (
        state_where(cell.backend, lambda s: s.mode is ControllerMode.IDLE, "IDLE").goal_id == "g1"
    )


def _path_time_s(states: list[RobotState], start: np.ndarray, goal: np.ndarray) -> float:
    """Stamp time the robot took from 10 % to 90 % of the way along joint 1."""
    frac = (np.array([s.position[0] for s in states]) - start[0]) / (goal[0] - start[0])
    stamps = np.array([s.stamp_ns for s in states]) / 1e9
    return float(stamps[np.argmax(frac >= 0.9)] - stamps[np.argmax(frac >= 0.1)])


def test_speed_scaling_slows_the_motion(cell):
    backend = cell.backend
    released(cell)
    times = []
    for scale, sign, seq in ((1.0, 1.0, 1), (0.5, -1.0, 2)):
        backend.set_speed_scale(scale, seq=seq)
        state_where(
            backend,
            lambda s: s.safety_seq == seq and s.speed_scale == scale,
            f"speed scale {scale}",
        )
        start = np.asarray(backend.latest_state().position)
        rec = Recorder(backend)
        goal = move(backend, delta(j1=sign * 0.3), 1.0, f"scaled-{seq}")
        state_where(backend, lambda s: s.goal_id == f"scaled-{seq}" and s.goal_done, "goal done")
        rec.stop()
        times.append(_path_time_s(rec.snapshot(), start, goal))
    assert times[1] >= 1.5 * times[0], (
        f"half speed took {times[1]:.2f} s vs {times[0]:.2f} s at full speed"
    )


def _moving(cell: Cell, goal_id: str) -> tuple[Recorder, np.ndarray]:
    released(cell)
    rec = Recorder(cell.backend)
    goal = move(cell.backend, delta(j1=0.8), 2.0, goal_id)
    state_where(cell.backend, lambda s: np.abs(s.velocity).max() > 0.2, "motion")
    return rec, goal


def test_stop_category_0_cuts_motion_at_once(cell):
    rec, _ = _moving(cell, "cut")
    cell.backend.protective_stop(StopCategory.STOP_0, seq=5)
    state_where(
        cell.backend, lambda s: s.safety_seq == 5 and np.abs(s.velocity).max() < 0.01, "standstill"
    )
    rec.stop()
    after = [s for s in rec.snapshot() if s.safety_seq == 5]
    assert after[0].mode is ControllerMode.STOPPED and after[0].speed_scale == 0.0
    assert all(s.mode is ControllerMode.STOPPED for s in after), (
        "category 0 never decelerates along the path"
    )
    with pytest.raises(
        CommandError,
        match=r"refused, a protective stop is held \(goal 'next'\); call reset\(\) first",
    ):
        move(cell.backend, delta(j1=0.1), 1.0, "next")


@pytest.mark.parametrize("category", [StopCategory.STOP_1, StopCategory.STOP_2])
def test_stop_categories_1_and_2_decelerate_then_2_holds(cell, category):
    rec, _ = _moving(cell, "decel")
    cell.backend.protective_stop(category, seq=6)
    stopped = state_where(
        cell.backend, lambda s: s.safety_seq == 6 and s.mode is ControllerMode.STOPPED, "STOPPED"
    )
    assert stopped.speed_scale == 0.0 and np.abs(stopped.velocity).max() < 0.05
    held = stopped.position.copy()
    t_held = stopped.stamp_ns
    state_where(cell.backend, lambda s: s.stamp_ns - t_held > 300_000_000, "0.3 s of standstill")
    rec.stop()
    after = [s for s in rec.snapshot() if s.safety_seq == 6]
    assert after[0].mode is ControllerMode.STOPPING, "category 1/2 decelerates along the path"
    braking = [s for s in after if s.mode is ControllerMode.STOPPING]
    assert max(float(np.abs(s.velocity).max()) for s in braking) > 0.05, (
        "it kept moving while braking"
    )
    assert stopped.position[0] - after[0].position[0] > 1e-3, (
        "it came to rest further along its path"
    )
    if category is StopCategory.STOP_2:
        drift = max(float(np.abs(s.position - held).max()) for s in after if s.stamp_ns >= t_held)
        assert drift < 2e-3, f"category 2 holds position (drifted {drift:.4f} rad)"
        assert all(s.mode is ControllerMode.STOPPED for s in after if s.stamp_ns >= t_held)


def test_reset_releases_the_stop_and_the_goal_completes(cell):
    rec, goal = _moving(cell, "resumed")
    rec.stop()
    cell.backend.protective_stop(StopCategory.STOP_1, seq=7)
    state_where(
        cell.backend, lambda s: s.safety_seq == 7 and s.mode is ControllerMode.STOPPED, "STOPPED"
    )
    assert not cell.backend.latest_state().goal_done
    cell.backend.reset()
    state = state_where(
        cell.backend, lambda s: s.goal_id == "resumed" and s.goal_done, "the goal completes"
    )
    np.testing.assert_allclose(state.position, goal, atol=0.01)
    assert state_where(cell.backend, lambda s: s.mode is ControllerMode.IDLE, "IDLE").healthy


def test_malformed_commands_are_rejected_with_a_clear_error(cell):
    backend = cell.backend
    q0 = np.asarray(released(cell).position)
    names = backend.joint_names
    with pytest.raises(
        CommandError,
        match=r"JointTrajectory 'x': joint_names must be the robot's joints "
        r"panda_joint1, .*; got a, b, c, d, e, f, g",
    ):
        backend.execute(
            JointTrajectory(tuple("abcdefg"), q0[None, :], np.array([1.0]), goal_id="x")
        )
    with pytest.raises(CommandError, match=r"joint_names must be the robot's joints"):
        backend.execute(
            JointTrajectory(names[:6] + names[:1], q0[None, :], np.array([1.0]), goal_id="dup")
        )
    far = q0.copy()
    far[3] = 0.5  # panda_joint4 above its upper limit (-0.0698 rad)
    with pytest.raises(
        CommandError, match=r"point 1 puts panda_joint4 at 0.5000 rad, outside its limits"
    ):
        backend.execute(
            JointTrajectory(names, np.vstack([q0, far]), np.array([0.0, 2.0]), goal_id="lim")
        )
    with pytest.raises(
        CommandError,
        match=r"first point is 0.300 rad from the current position in panda_joint1 "
        r"\(tolerance 0.1 rad\)",
    ):
        backend.execute(
            JointTrajectory(names, (q0 + delta(j1=0.3))[None, :], np.array([0.0]), goal_id="jump")
        )
    with pytest.raises(CommandError, match=r"JointTrajectory: positions and times must be finite"):
        JointTrajectory(names, np.full((1, 7), np.nan), np.array([1.0]))
    with pytest.raises(CommandError, match=r"\.execute: unsupported command type str"):
        backend.execute("move to home")  # type: ignore[arg-type]
    backend.set_speed_scale(float("nan"), seq=9)  # fail-safe: an implausible scale means 0
    state = state_where(backend, lambda s: s.safety_seq == 9 and s.speed_scale == 0.0, "scale 0")
    np.testing.assert_allclose(state.position, q0, atol=2e-3)  # nothing reached the robot
    assert state.healthy


def test_stale_state_is_unhealthy_within_the_watchdog_bound_and_commands_are_refused(cell):
    backend = cell.backend
    released(cell)
    cell.stall()
    state = state_where(backend, lambda s: not s.healthy, "unhealthy")
    seen_ns = time.monotonic_ns()
    age_s = (seen_ns - state.stamp_ns) / 1e9  # the stamp stays that of the newest data
    assert STATE_TIMEOUT_S <= age_s <= STATE_TIMEOUT_S + WATCHDOG_SLACK_S
    assert state.mode is ControllerMode.FAULT and state.speed_scale == 0.0
    with pytest.raises(
        CommandError, match=r"\.execute: refused, no fresh robot state \(goal 'stale'\)"
    ):
        move(backend, delta(j1=0.1), 1.0, "stale")
    backend.reset()  # refused while stale (logged): the fault stays
    cell.unstall()
    state = state_where(backend, lambda s: s.healthy and s.stamp_ns > seen_ns, "fresh states again")
    assert state.mode is ControllerMode.FAULT, "the fault stays latched until reset"
    with pytest.raises(
        CommandError, match=r"refused, a protective stop is held \(goal 'latched'\)"
    ):
        move(backend, delta(j1=0.1), 1.0, "latched")
    backend.reset()
    state_where(backend, lambda s: s.mode is ControllerMode.IDLE and s.healthy, "IDLE after reset")
    goal = move(backend, delta(j1=0.1), 0.5, "after")
    state = state_where(backend, lambda s: s.goal_id == "after" and s.goal_done, "goal after reset")
    np.testing.assert_allclose(state.position, goal, atol=0.01)


def test_jogs_through_the_gate_move_the_robot_and_it_stops_by_itself(cell):
    """A stream of jogs (joint, then Cartesian) through the command gate moves the robot; when the
    stream stops, the robot comes to rest by itself (the deadman) and stays there."""
    from robot_bridge.sim import (
        PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
        PANDA_JOINT_VELOCITY_LIMITS_RADPS,
        PandaLinkKinematics,
    )
    from safety.decision import SafetyMode, SafetyState
    from safety.gate import Actor, CommandGate, Verdict

    kin = PandaLinkKinematics(Robot())
    cell.cleanup.append(kin.close)
    gate = CommandGate(cell.backend, lambda: SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "t"),
                       np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS), kinematics=kin,
                       joint_acceleration_limits_radps2=np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2))
    operator = Actor("olga", frozenset({"operator"}))
    q0 = released(cell).position.copy()

    def at_rest(what: str) -> RobotState:
        return state_where(cell.backend, lambda s: s.goal_done and float(np.abs(s.velocity).max()) < 0.01, what)

    for i in range(8):
        answer = gate.submit(JointJog(("panda_joint1",), velocities=[0.5], goal_id=f"jj{i}"), operator)
        assert answer.verdict is Verdict.ACCEPTED, answer.reason
        time.sleep(0.05)
    rest = at_rest("at rest after the joint jogs")
    assert rest.goal_id == "jj7"
    moved = rest.position - q0
    assert moved[0] > 0.1 and np.abs(moved[1:]).max() < 0.02
    time.sleep(0.3)
    assert np.abs(cell.backend.latest_state().position - rest.position).max() < 0.005  # stays
    tcp0 = rest.tcp_position.copy()
    for i in range(8):
        jog = CartesianJog("cell", np.array([0.0, 0.0, 0.1]), np.zeros(3), goal_id=f"cj{i}")
        assert gate.submit(jog, operator).verdict is Verdict.ACCEPTED
        time.sleep(0.05)
    lifted = at_rest("at rest after the Cartesian jogs").tcp_position - tcp0
    assert lifted[2] > 0.02 and np.abs(lifted[:2]).max() < 0.01


def test_a_gripper_goal_is_in_flight_until_the_fingers_get_there(cell):
    backend = cell.backend
    start = released(cell)
    assert start.gripper_opening_m == pytest.approx(0.08, abs=2e-3)
    seq = start.gripper_seq
    backend.execute(GripperCommand(0.0, goal_id="close"))
    flight = state_where(backend, lambda s: s.gripper_seq == seq + 1 and not s.goal_done, "the close in flight")
    assert flight.goal_id == "close" and flight.mode is ControllerMode.EXECUTING
    closed = state_where(backend, lambda s: s.goal_id == "close" and s.goal_done, "the close to end")
    assert closed.gripper_opening_m == pytest.approx(0.0, abs=2e-3) and not closed.goal_aborted
    state_where(backend, lambda s: s.mode is ControllerMode.IDLE, "IDLE after the close")
    backend.execute(GripperCommand(0.08, goal_id="open"))
    opened = state_where(backend, lambda s: s.goal_id == "open" and s.goal_done, "the open to end")
    assert opened.gripper_opening_m == pytest.approx(0.08, abs=2e-3) and opened.gripper_seq == seq + 2
    with pytest.raises(CommandError, match=r"GripperCommand 'wide': position_m must be in \[0, 0.08\] m, got 0.1"):
        backend.execute(GripperCommand(0.1, goal_id="wide"))


@pytest.mark.parametrize("category", list(StopCategory))
def test_a_protective_stop_ends_a_closing_gripper_goal_and_reset_does_not_resume_it(cell, category):
    """Every backend, every stop category: a closing gripper is held at its measured opening (it
    squeezes no further), its goal ends with the stop, and a reset does not start it again (the
    stop may have come because someone reached in: a new command has to pass the gate)."""
    backend = cell.backend
    seq = released(cell).gripper_seq
    backend.execute(GripperCommand(0.0, goal_id="close"))
    before = state_where(backend, lambda s: s.goal_id == "close" and 0.03 < s.gripper_opening_m < 0.06,
                         "the fingers half closed")
    backend.protective_stop(category, seq=11)
    stopped = state_where(backend, lambda s: s.safety_seq == 11 and s.goal_done,
                          "the stop to end the gripper goal")
    assert stopped.goal_id == "close" and stopped.mode in (ControllerMode.STOPPING, ControllerMode.STOPPED)
    assert stopped.goal_aborted, "a goal a stop ended short of its target is reported aborted"
    rest = fingers_settled(backend, "the fingers to stand still", tolerance_m=1e-4)
    # held about where they were when the stop came, far from closed
    assert before.gripper_opening_m - 0.02 < rest.gripper_opening_m <= before.gripper_opening_m + 1e-3
    with pytest.raises(CommandError, match=r"refused, a protective stop is held \(goal 'again'\)"):
        backend.execute(GripperCommand(0.0, goal_id="again"))
    backend.reset()
    idle = state_where(backend, lambda s: s.mode is ControllerMode.IDLE and s.speed_scale >= 0.999,
                       "IDLE at full speed after the reset")
    after = state_where(backend, lambda s: s.stamp_ns > idle.stamp_ns + 300_000_000,
                        "0.3 s of states after the reset")
    assert after.gripper_opening_m == pytest.approx(rest.gripper_opening_m, abs=1e-3), "not resumed"
    assert after.mode is ControllerMode.IDLE and after.goal_id == "close" and after.goal_done and after.goal_aborted
    assert after.gripper_seq == seq + 1
    backend.execute(GripperCommand(0.0, goal_id="close again"))  # a new command closes them
    closed = state_where(backend, lambda s: s.goal_id == "close again" and s.goal_done, "the new close")
    assert closed.gripper_opening_m == pytest.approx(0.0, abs=2e-3) and not closed.goal_aborted
