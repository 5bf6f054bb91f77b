"""Tests of the PyBullet Panda backend and its pick-and-place planner (robot_bridge.sim)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet")

from content.cell import PickAndPlace, Pose, Robot  # noqa: E402
from robot_bridge import BridgeError, CommandError, ControllerMode, GripperCommand, JointTrajectory, StopCategory  # noqa: E402
from robot_bridge.backend import create_backend  # noqa: E402
from robot_bridge.sim import (  # noqa: E402
    ARM_JOINT_NAMES,
    PANDA_HOME_POSITION,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PANDA_LINK_CAPSULES,
    PHYSICS_RATE_HZ,
    PyBulletPandaBackend,
    plan_pick_and_place,
)
from robot_bridge.commands import sanitize_speed_scale  # noqa: E402
from robot_bridge.sim.control import lowering_rate_per_s, step_speed_scale  # noqa: E402
from robot_bridge.sim.panda import panda_urdf_path  # noqa: E402

ROBOT = Robot(base=Pose(position=(1.0, 2.0, 0.0), yaw_deg=90.0))
# pick/place relative to the base, rotated with the base yaw (90 deg: base x = cell y)
PROGRAM = PickAndPlace(pick=(1.0 + 0.3, 2.0 + 0.5, 0.0), place=(1.0 - 0.3, 2.0 + 0.5, 0.0))
STEPS_PER_S = int(PHYSICS_RATE_HZ)


@pytest.fixture(scope="module")
def plan() -> list:
    return plan_pick_and_place(ROBOT, PROGRAM)


def make(program: PickAndPlace | None = PROGRAM) -> PyBulletPandaBackend:
    backend = PyBulletPandaBackend(ROBOT, program, realtime=False)
    backend.start()
    return backend


@pytest.fixture
def backend():
    b = make()
    yield b
    b.shutdown()


def run_until_done(b: PyBulletPandaBackend, goal_id: str, max_s: float = 10.0) -> list:
    states = []
    for _ in range(int(max_s * STEPS_PER_S)):
        s = b.step(1)
        states.append(s)
        if s.goal_id == goal_id and s.goal_done:
            return states
    raise AssertionError(f"goal {goal_id} not done within {max_s} s")


def sim_t(state) -> float:
    return state.extras["sim_time_s"]


# ------------------------------------------------------------------ pure parts


def test_sanitize_speed_scale_is_fail_safe():
    assert sanitize_speed_scale(0.5) == (0.5, True)
    assert sanitize_speed_scale(float("nan")) == (0.0, False)
    assert sanitize_speed_scale(2.0) == (0.0, False)
    assert sanitize_speed_scale(-0.1) == (0.0, False)


def test_speed_scale_rate_limits():
    assert step_speed_scale(1.0, 0.0, 0.1, lower_rate=2.5, raise_rate=1.0) == pytest.approx(0.75)
    assert step_speed_scale(0.0, 1.0, 0.1, lower_rate=2.5, raise_rate=1.0) == pytest.approx(0.1)
    assert step_speed_scale(0.5, 0.45, 0.1, lower_rate=2.5, raise_rate=1.0) == pytest.approx(0.45)
    # at full speed the rate is a / v_max; a slower robot's scale falls faster, so it stops in v / a
    assert lowering_rate_per_s(2.5, 1.0, 1.0) == pytest.approx(2.5)
    assert lowering_rate_per_s(2.5, 1.0, 0.5) == pytest.approx(5.0)
    assert lowering_rate_per_s(2.5, 1.0, 3.0) == pytest.approx(2.5)


def _obj_vertices(path: Path) -> np.ndarray:
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.array(rows, dtype=np.float64)


def _segment_distance(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip((points - a) @ ab / (ab @ ab), 0.0, 1.0)
    return np.linalg.norm(points - (a + t[:, None] * ab), axis=1)


def test_link_capsules_enclose_the_panda_meshes():
    meshes = panda_urdf_path().parent / "meshes"
    for capsule in PANDA_LINK_CAPSULES:
        stem = capsule.name.removeprefix("panda_")
        files = [meshes / kind / f"{stem}.obj" for kind in ("collision", "visual")]
        verts = np.vstack([_obj_vertices(f) for f in files if f.exists()])
        if stem == "hand":  # both fingers, closed and fully open (finger joints 0.0584 m below)
            finger = np.vstack([_obj_vertices(meshes / k / "finger.obj") for k in ("collision", "visual")])
            parts = [verts]
            for w in (0.0, 0.04):
                parts += [finger + [0, w, 0.0584], finger * [-1, -1, 1] + [0, -w, 0.0584]]
            verts = np.vstack(parts)
        d = _segment_distance(verts, np.array(capsule.a), np.array(capsule.b))
        assert d.max() <= capsule.radius_m, capsule.name
        assert 0.05 <= capsule.radius_m <= 0.11


# ------------------------------------------------------------------ backend


def test_registry_creates_the_sim_backend():
    b = create_backend("sim", robot=ROBOT, realtime=False)
    try:
        assert isinstance(b, PyBulletPandaBackend)
    finally:
        b.shutdown()


def test_starts_in_protective_stop_with_a_complete_state(backend):
    s = backend.latest_state()
    assert s.mode is ControllerMode.STOPPED and s.healthy and s.speed_scale == 0.0
    assert s.joint_names == ARM_JOINT_NAMES
    np.testing.assert_allclose(s.position, PANDA_HOME_POSITION, atol=1e-6)
    assert s.link_segments.shape == (9, 2, 3) and s.link_radii_m.shape == (9,) and s.link_speeds_mps.shape == (9,)
    assert s.link_names[0] == "panda_link0" and s.link_names[-1] == "panda_hand"
    assert backend.joint_lower_limits[3] == pytest.approx(-3.1416)  # as in the URDF and backend.joint_upper_limits[3] == 0.0
    # home pose in front of the base (base yaw 90 deg: base x is cell +y)
    np.testing.assert_allclose(s.tcp_position, [1.0, 2.0 + 0.307, 0.487], atol=0.01)
    with pytest.raises(ValueError):
        s.position[0] = 1.0  # read-only arrays: the state is immutable


def test_execute_while_stopped_is_refused(backend, plan):
    with pytest.raises(CommandError, match=r"refused, a protective stop is held .*call reset\(\) first"):
        backend.execute(plan[0])
    with pytest.raises(CommandError, match="protective stop is held"):
        backend.execute(GripperCommand(0.0))


def test_malformed_commands_are_refused(backend, plan):
    backend.reset()
    backend.step(1)
    traj = plan[0]
    with pytest.raises(CommandError, match="joint_names must be the robot's joints panda_joint1, "):
        backend.execute(JointTrajectory(("a", "b"), np.zeros((1, 2)), np.array([1.0])))
    bad = traj.positions.copy()
    bad[-1, 3] = 0.5
    with pytest.raises(CommandError, match=r"puts panda_joint4 at 0.5000 rad, outside its limits"):
        backend.execute(JointTrajectory(ARM_JOINT_NAMES, bad, traj.time_from_start_s, "bad"))
    far = traj.positions + [0.3, 0, 0, 0, 0, 0, 0]
    with pytest.raises(CommandError, match=r"first point is 0.300 rad from the current position in panda_joint1"):
        backend.execute(JointTrajectory(ARM_JOINT_NAMES, far, traj.time_from_start_s, "far"))
    with pytest.raises(CommandError, match=r"position_m must be in \[0, 0.08\] m, got 0.2"):
        backend.execute(GripperCommand(0.2))
    threaded = PyBulletPandaBackend(ROBOT, realtime=True)
    with pytest.raises(BridgeError, match="only available with realtime=False"):
        threaded.step(1)
    threaded.shutdown()


@pytest.fixture(scope="module")
def cycle(plan):
    """One full pick-and-place cycle at speed scale 1, every state recorded."""
    b = make()
    b.reset()
    b.step(STEPS_PER_S)  # the applied scale ramps up to 1 (1.0 / s)
    t0 = sim_t(b.latest_state())
    states, goals = [], []
    for command in plan:
        b.execute(command)
        part = run_until_done(b, command.goal_id)
        states += part
        goals.append((command.goal_id, part[-1].goal_done))
    duration = sim_t(states[-1]) - t0
    b.shutdown()
    return {"states": states, "goals": goals, "duration_s": duration}


def test_pick_and_place_cycle_completes_every_goal(cycle, plan):
    assert [g for g, _ in cycle["goals"]] == [c.goal_id for c in plan]
    assert all(done for _, done in cycle["goals"])
    assert 4.0 < cycle["duration_s"] < 9.0


def test_tcp_peak_speed_stays_at_the_programmed_limit(cycle):
    peak = max(float(np.linalg.norm(s.tcp_velocity_mps)) for s in cycle["states"])
    assert 0.9 < peak <= 1.05


def test_joint_velocity_limits_are_respected(cycle, plan):
    limits = np.array(PANDA_JOINT_VELOCITY_LIMITS_RADPS)
    measured = np.max([np.abs(s.velocity) for s in cycle["states"]], axis=0)
    assert np.all(measured <= limits)
    for command in plan:
        if isinstance(command, JointTrajectory):
            planned = np.abs(np.diff(command.positions, axis=0)) / np.diff(command.time_from_start_s)[:, None]
            assert np.all(planned <= limits)


def test_the_box_is_carried_to_the_place_position(cycle):
    states = cycle["states"]
    box = np.array(states[-1].extras["workpiece_position"])
    assert np.linalg.norm(box[:2] - np.array(PROGRAM.place[:2])) < 0.01
    assert abs(box[2] - PROGRAM.box_size_m / 2) < 0.005
    # it was lifted, i.e. really grasped and carried
    assert max(s.extras["workpiece_position"][2] for s in states) > PROGRAM.approach_height_m


def test_the_box_returns_to_pick_when_the_next_cycle_starts(plan):
    b = make()
    b.reset()
    for command in plan:
        b.execute(command)
        run_until_done(b, command.goal_id)
    b.execute(plan[0])
    b.step(1)
    box = np.array(b.latest_state().extras["workpiece_position"])
    assert np.linalg.norm(box[:2] - np.array(PROGRAM.pick[:2])) < 0.005
    b.shutdown()


def _timed_run(plan, scale: float) -> tuple[float, np.ndarray]:
    b = make(None)
    b.set_speed_scale(scale, seq=1)
    b.reset()
    b.step(STEPS_PER_S + 10)  # let the applied scale reach its target
    assert b.latest_state().speed_scale == pytest.approx(scale)
    t0 = sim_t(b.latest_state())
    b.execute(plan[0])
    states = run_until_done(b, plan[0].goal_id)
    b.shutdown()
    return sim_t(states[-1]) - t0, np.array([s.tcp_position for s in states])


def test_speed_scale_retimes_the_trajectory_and_keeps_the_path(plan):
    t_full, path_full = _timed_run(plan, 1.0)
    t_half, path_half = _timed_run(plan, 0.5)
    assert t_half / t_full == pytest.approx(2.0, rel=0.08)
    # every point of the slow run lies on the fast run's path (a polyline of its samples)
    a, b = path_full[:-1], path_full[1:]
    ab = b - a
    t = np.clip(np.einsum("nmk,mk->nm", path_half[:, None, :] - a, ab) / np.maximum((ab * ab).sum(1), 1e-12), 0, 1)
    d = np.linalg.norm(path_half[:, None, :] - (a + t[..., None] * ab), axis=2).min(axis=1)
    assert d.max() < 0.002


def _run_to_speed(b, command, v_mps: float):
    b.reset()
    b.step(STEPS_PER_S)
    b.execute(command)
    for _ in range(3 * STEPS_PER_S):
        s = b.step(1)
        if np.linalg.norm(s.tcp_velocity_mps) >= v_mps:
            return s
    raise AssertionError("never reached the speed")


def test_stop_1_decelerates_to_standstill_and_holds(backend, plan):
    s = _run_to_speed(backend, plan[0], 0.7)
    v0 = float(np.linalg.norm(s.tcp_velocity_mps))
    t0 = sim_t(s)
    backend.protective_stop(StopCategory.STOP_1, seq=7)
    s = backend.step(2)  # states come at 200 Hz, steps at 240 Hz
    assert s.mode is ControllerMode.STOPPING and s.safety_seq == 7
    decel = ROBOT.stop.deceleration_mps2
    for _ in range(STEPS_PER_S):
        s = backend.step(1)
        if s.mode is ControllerMode.STOPPED:
            break
    assert s.mode is ControllerMode.STOPPED and s.speed_scale == 0.0
    assert sim_t(s) - t0 <= v0 / decel + 0.06
    held = s.tcp_position.copy()
    backend.step(STEPS_PER_S // 2)
    assert np.linalg.norm(backend.latest_state().tcp_position - held) < 1e-3
    with pytest.raises(CommandError, match="protective stop is held"):
        backend.execute(plan[0])
    # reset: the held trajectory resumes and finishes
    backend.reset()
    states = run_until_done(backend, plan[0].goal_id)
    assert states[-1].goal_done and np.abs(states[-1].position - plan[0].positions[-1]).max() < 0.005


def test_stop_0_stops_at_once(backend, plan):
    _run_to_speed(backend, plan[0], 0.7)
    backend.protective_stop(StopCategory.STOP_0, seq=3)
    s = backend.step(2)
    assert s.mode is ControllerMode.STOPPED and s.speed_scale == 0.0 and s.safety_seq == 3
    backend.step(6)  # 25 ms
    assert backend.latest_state().max_speed_mps < 0.05
    held = backend.latest_state().tcp_position.copy()
    backend.step(STEPS_PER_S // 2)
    assert np.linalg.norm(backend.latest_state().tcp_position - held) < 2e-3


def test_safety_seq_echoes_the_applied_speed_scale_command(backend):
    backend.reset()
    backend.step(STEPS_PER_S)
    before = time.monotonic_ns()
    backend.set_speed_scale(0.7, seq=41)
    assert backend.latest_state().safety_seq != 41  # not applied before the next control step
    s = backend.step(2)  # the next published state (200 Hz states, 240 Hz steps)
    assert s.safety_seq == 41 and s.safety_applied_ns >= before
    assert s.speed_scale < 1.0  # the applied scale has started to move towards 0.7
    backend.step(STEPS_PER_S // 2)
    assert backend.latest_state().speed_scale == pytest.approx(0.7)
    assert backend.latest_state().safety_seq == 41


@pytest.mark.parametrize("bad", [float("nan"), 2.0, -0.5])
def test_invalid_speed_scale_means_stop(backend, bad, caplog):
    backend.reset()
    backend.step(STEPS_PER_S)
    with caplog.at_level(logging.WARNING, logger="robot_bridge.sim.backend"):
        backend.set_speed_scale(bad, seq=9)
    assert "not a number in [0, 1]; using 0 (fail-safe)" in caplog.text
    backend.step(STEPS_PER_S // 2)
    s = backend.latest_state()
    assert s.speed_scale == 0.0 and s.safety_seq == 9


def test_realtime_thread_publishes_at_the_state_rate_and_shuts_down_in_a_stop():
    b = PyBulletPandaBackend(ROBOT, PROGRAM, realtime=True)
    states: list = []
    b.subscribe(states.append)
    b.start()
    b.reset()
    time.sleep(1.0)
    first, last = states[0], states[-1]
    span_s = (last.stamp_ns - first.stamp_ns) / 1e9
    # Real time the thread gave up catching up with (a loaded machine) is not simulated; the
    # rest is, at the state rate, give or take the 0.1 s the thread may still be catching up.
    skipped_s = last.extras["resync_skipped_s"] - first.extras.get("resync_skipped_s", 0.0)
    expected = (span_s - skipped_s) * ROBOT.state_rate_hz
    assert span_s > 0.5
    assert 0.9 * expected - 0.1 * ROBOT.state_rate_hz <= len(states) - 1 <= 1.1 * expected + 1
    assert b.latest_state().mode is ControllerMode.IDLE
    t0 = time.monotonic()
    b.shutdown()
    assert time.monotonic() - t0 < 1.0
    assert b.latest_state().mode is ControllerMode.STOPPED
    with pytest.raises(CommandError, match="the backend is shut down"):
        b.reset()
    assert not math.isnan(b.latest_state().extras["cpu_ms_per_sim_s"])


def test_safeguard_stop_input_holds_the_robot_and_releases_it(plan):
    guard = [True]
    b = PyBulletPandaBackend(ROBOT, PROGRAM, realtime=False, safeguard_stop=lambda: guard[0])
    b.start()
    try:
        b.reset()
        b.execute(plan[0])
        start = b.step(1).position.copy()
        for _ in range(STEPS_PER_S // 2):
            state = b.step(1)
        assert state.speed_scale == 0.0 and np.abs(state.position - start).max() < 1e-3
        guard[0] = False
        for _ in range(STEPS_PER_S // 2):
            state = b.step(1)
        assert state.speed_scale > 0.3 and np.abs(state.position - start).max() > 0.01
        guard[0] = True  # braking at the stop data's deceleration, then holding
        for _ in range(STEPS_PER_S):
            state = b.step(1)
        assert state.speed_scale == 0.0 and state.max_speed_mps < 0.01
    finally:
        b.shutdown()


@pytest.mark.parametrize("category", list(StopCategory))
def test_a_stop_and_reset_leave_a_finished_grip_as_it_is(plan, category):
    """A stop while the arm lifts the grasped box: the finished grip keeps pressing (the box is
    not dropped), and after the reset the lift completes with the box in the fingers."""
    b = make()
    b.reset()
    lift = next(i for i, c in enumerate(plan) if c.goal_id.endswith("-lift"))
    for command in plan[:lift + 1]:
        b.execute(command)
        if command is not plan[lift]:
            run_until_done(b, command.goal_id)
    def below_tcp_m(state) -> float:
        return float(state.tcp_position[2] - state.extras["workpiece_position"][2])

    gripped = b.step(int(0.3 * STEPS_PER_S))          # lifting, the box in the fingers
    width = gripped.gripper_opening_m
    assert gripped.extras["workpiece_position"][2] > PROGRAM.box_size_m / 2 + 0.01
    b.protective_stop(category, seq=3)
    held = b.step(STEPS_PER_S)
    assert held.mode is ControllerMode.STOPPED
    assert held.gripper_opening_m == pytest.approx(width, abs=1e-3)
    assert below_tcp_m(held) == pytest.approx(below_tcp_m(gripped), abs=0.005)   # not dropped
    b.reset()
    done = run_until_done(b, plan[lift].goal_id)[-1]
    assert done.gripper_opening_m == pytest.approx(width, abs=1e-3)
    assert below_tcp_m(done) == pytest.approx(below_tcp_m(gripped), abs=0.005)
    assert done.extras["workpiece_position"][2] > PROGRAM.approach_height_m   # carried up
    b.shutdown()
