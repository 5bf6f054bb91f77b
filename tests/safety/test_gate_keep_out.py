"""The gate sweeps every commanded path with the Panda's link capsules against keep-out zones."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from content.cell import PickAndPlace, Robot, Pose, Zone
from robot_bridge.sim import (
    PANDA_HOME_POSITION,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PandaLinkKinematics,
    PyBulletPandaBackend,
    plan_pick_and_place,
)
from robot_bridge.types import JointTrajectory
from safety.decision import SafetyMode, SafetyState
from safety.gate import Actor, CommandGate, Verdict, sweep_samples
from safety.zones import CellZones, ZoneSet

ROBOT = Robot(base=Pose(position=(0.0, 0.0, 0.0)))
PROGRAM = PickAndPlace(pick=(0.5, -0.3, 0.0), place=(0.5, 0.3, 0.0))
OPERATOR = Actor("olga", frozenset({"operator"}))
RUNNING = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")
#: A keep-out box over the place position (a fixture the robot must not touch).
OVER_PLACE = Zone(name="fixture", kind="robot_keep_out", box={"min": (0.4, 0.2, 0.0), "max": (0.6, 0.4, 0.15)})
#: Far behind the robot: never touched.
BEHIND = Zone(name="wall", kind="robot_keep_out", box={"min": (-1.5, -1.0, 0.0), "max": (-1.2, 1.0, 2.0)})


@pytest.fixture(scope="module")
def cell():
    backend = PyBulletPandaBackend(ROBOT, None, realtime=False)
    backend.start()
    kin = PandaLinkKinematics(ROBOT)
    yield backend, kin
    kin.close()
    backend.shutdown()


def gate_for(cell, zones):
    backend, kin = cell
    return CommandGate(backend, lambda: RUNNING, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
                       zones=CellZones(zones), kinematics=kin)


def test_kinematics_match_the_capsules_the_backend_publishes(cell):
    backend, kin = cell
    state = backend.latest_state()
    segs = kin.link_segments(state.position[None, :])[0]
    assert np.allclose(segs, state.link_segments, atol=1e-6)
    assert kin.link_names == state.link_names


def test_a_path_through_a_keep_out_zone_is_rejected_with_the_link_and_time(cell):
    moves = [c for c in plan_pick_and_place(ROBOT, PROGRAM) if isinstance(c, JointTrajectory)]
    gate = gate_for(cell, [OVER_PLACE])
    # The move down to the place position enters the fixture box; the first move (to above
    # the pick) does not.
    answers = [gate._check_path(m, 1.0).why for m in moves]
    assert answers[0] is None
    refused = [a for a in answers if a is not None]
    assert refused and all("would enter keep-out zone fixture" in a for a in refused)
    assert any(link in refused[0] for link in ("panda_hand", "panda_link7", "panda_link6"))


def test_the_same_program_passes_when_the_zone_is_elsewhere(cell):
    moves = [c for c in plan_pick_and_place(ROBOT, PROGRAM) if isinstance(c, JointTrajectory)]
    gate = gate_for(cell, [BEHIND])
    assert all(gate._check_path(m, 1.0).why is None for m in moves)
    gate.safety_channel().release()  # what the monitor does after start-up
    cell[0].step(2)
    answer = gate.submit(moves[0], OPERATOR)
    assert answer.verdict is Verdict.ACCEPTED


def test_without_a_robot_model_every_trajectory_is_refused_while_a_keep_out_zone_exists(cell):
    backend, _ = cell
    gate = CommandGate(backend, lambda: RUNNING, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
                       zones=CellZones([BEHIND]))
    move = JointTrajectory(backend.joint_names, np.array([PANDA_HOME_POSITION]), np.array([1.0]))
    answer = gate.submit(move, OPERATOR)
    assert answer.verdict is Verdict.REJECTED
    assert answer.reason == "keep-out: no robot model to sweep the path against the keep-out zones"


def test_sweep_samples_bound_the_joint_step():
    start = np.zeros(7)
    pts = np.array([[0.5] * 7, [0.5, -0.3, 0.0, 0.0, 0.0, 0.0, 0.0]])
    q, t = sweep_samples(start, pts, np.array([1.0, 2.0]))
    assert np.abs(np.diff(q, axis=0)).max() <= 0.01 + 1e-12
    assert np.allclose(q[0], start) and np.allclose(q[-1], pts[-1])
    assert (np.diff(t) > 0).all() and t[-1] == 2.0


# Property (issue 3): the gate never forwards a command whose path enters a keep-out zone.
# Independent check: a 10x denser sweep of the forwarded path, tested capsule by capsule.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7),
       corner=st.tuples(st.floats(-0.8, 0.6), st.floats(-0.8, 0.6), st.floats(0.0, 0.9)))
def test_no_forwarded_path_enters_a_keep_out_zone(cell, target, corner):
    backend, kin = cell
    zone = Zone(name="box", kind="robot_keep_out",
                box={"min": corner, "max": (corner[0] + 0.3, corner[1] + 0.3, corner[2] + 0.3)})
    gate = gate_for(cell, [zone])
    home = np.asarray(PANDA_HOME_POSITION)
    goal = np.clip(home + np.asarray(target), backend.joint_lower_limits, backend.joint_upper_limits)
    move = JointTrajectory(backend.joint_names, goal[None, :], np.array([3.0]))
    if gate._check(move, OPERATOR).why is not None:
        return  # refused: nothing to verify
    q = home[None, :] + (goal - home)[None, :] * np.linspace(0.0, 1.0, 1000)[:, None]
    segs = kin.link_segments(q)
    zs = ZoneSet([zone])
    flat = segs.reshape(-1, 2, 3)
    assert not zs.capsules_inside(0, flat, np.tile(kin.link_radii_m, len(q))).any()
