"""The jog planner (`robot_bridge.jog`) and the jog records: pure functions, no robot."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_bridge.commands import check_joint_jog
from robot_bridge.errors import CommandError
from robot_bridge.jog import (
    JOG_LIMIT_MARGIN_RAD,
    dls_joint_velocity,
    plan_displacement_jog,
    plan_velocity_jog,
)
from robot_bridge.sim.panda import (
    ARM_JOINT_NAMES,
    PANDA_HOME_POSITION,
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
)
from robot_bridge.types import CartesianJog, JointJog

NAMES = ARM_JOINT_NAMES
ACC = np.array(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2)
VEL = np.array(PANDA_JOINT_VELOCITY_LIMITS_RADPS)
LOWER = np.full(7, -2.8)
UPPER = np.full(7, 2.8)
HOME = np.array(PANDA_HOME_POSITION)


def velocities(traj):
    return np.diff(traj.positions, axis=0) / np.diff(traj.time_from_start_s)[:, None]


def test_a_velocity_jog_ramps_holds_for_the_deadman_and_ramps_to_rest():
    target = np.array([0.5, 0, 0, 0, 0, 0, 0])
    plan = plan_velocity_jog(NAMES, HOME, np.zeros(7), target, 0.2, ACC, LOWER, UPPER, "j")
    traj = plan.trajectory
    assert traj.time_from_start_s[0] == 0.0 and np.allclose(traj.positions[0], HOME)
    # ramp 0.5 / 15 s, hold to 0.2 s, ramp down 0.5 / 15 s: at rest at 0.2333 s
    assert plan.stop_time_s == pytest.approx(0.2 + 0.5 / 15.0)
    assert traj.time_from_start_s[-1] == pytest.approx(plan.stop_time_s)
    # moved the area of the trapezoid: 0.5 * (0.2 - 0.5 / 15 / 2 + 0.5 / 15 / 2)
    assert traj.positions[-1, 0] - HOME[0] == pytest.approx(0.5 * 0.2, abs=1e-9)
    v = velocities(traj)
    assert np.abs(v[:, 1:]).max() == 0.0 and v[:, 0].max() <= 0.5 + 1e-9
    mid = traj.time_from_start_s[:-1] + np.diff(traj.time_from_start_s) / 2
    assert v[(mid > 0.05) & (mid < 0.18), 0] == pytest.approx(0.5)
    assert plan.velocity_factor == 1.0


def test_a_jog_starts_from_the_measured_velocity_within_the_acceleration_limits():
    v0 = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    plan = plan_velocity_jog(NAMES, HOME, v0, -v0, 0.2, ACC, LOWER, UPPER)
    t = plan.trajectory.time_from_start_s
    v = velocities(plan.trajectory)
    acc = np.abs(np.diff(v, axis=0)) / (np.diff(t)[1:, None] / 2 + np.diff(t)[:-1, None] / 2)
    assert v[0, 3] > 0.8  # first segment still moving the way it was
    assert (acc <= ACC * 1.01).all()
    assert plan.stop_time_s == pytest.approx(0.2 + 1.0 / 12.5)


def test_a_jog_towards_a_position_limit_is_slowed_to_stop_before_it():
    start = HOME.copy()
    start[0] = UPPER[0] - 0.05
    plan = plan_velocity_jog(NAMES, start, np.zeros(7), np.array([2.0, 0, 0, 0, 0, 0, 0]), 0.2, ACC,
                             LOWER, UPPER)
    assert 0.0 < plan.velocity_factor < 1.0
    assert plan.trajectory.positions[:, 0].max() <= UPPER[0] - JOG_LIMIT_MARGIN_RAD + 1e-6
    assert plan.trajectory.positions[:, 0].max() >= UPPER[0] - JOG_LIMIT_MARGIN_RAD - 1e-3
    # moving away from the limit is not slowed
    away = plan_velocity_jog(NAMES, start, np.zeros(7), np.array([-2.0, 0, 0, 0, 0, 0, 0]), 0.2, ACC,
                             LOWER, UPPER)
    assert away.velocity_factor == 1.0


def test_a_robot_that_cannot_stop_before_its_limit_is_named():
    start = HOME.copy()
    start[1] = UPPER[1] - 0.03
    v0 = np.zeros(7)
    v0[1] = 2.0  # 2 rad/s at 7.5 rad/s^2 needs 0.27 rad
    with pytest.raises(CommandError, match=r"JointJog 'x': panda_joint2 cannot stop before its position limit"):
        plan_velocity_jog(NAMES, start, v0, np.zeros(7), 0.2, ACC, LOWER, UPPER, "x")


@pytest.mark.parametrize("duration_s", [1.0, 0.05])
def test_a_displacement_jog_ends_exactly_at_the_displacement(duration_s):
    d = np.array([0.0, 0.0, 0.1, 0.0, 0.0, -0.05, 0.0])
    plan = plan_displacement_jog(NAMES, HOME, d, duration_s, VEL, ACC)
    assert np.allclose(plan.trajectory.positions[-1], HOME + d)
    v = velocities(plan.trajectory)
    assert (np.abs(v) <= VEL + 1e-9).all()
    assert np.allclose(np.abs(np.diff(plan.trajectory.positions, axis=0)).sum(axis=0), np.abs(d))  # monotone


def test_a_displacement_jog_too_fast_for_the_joints_is_refused():
    with pytest.raises(CommandError, match=r"panda_joint1 would move at 10.00 rad/s .* above its limit 2.17"):
        plan_displacement_jog(NAMES, HOME, np.array([1.0, 0, 0, 0, 0, 0, 0]), 0.1, VEL, ACC)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-2.6, 2.6), min_size=7, max_size=7),
       st.lists(st.floats(-2.0, 2.0), min_size=7, max_size=7),
       st.floats(0.01, 0.5))
def test_property_a_velocity_jog_always_ends_at_rest_inside_the_limit_band(q0, target, hold_s):
    plan = plan_velocity_jog(NAMES, np.array(q0), np.zeros(7), np.array(target), hold_s, ACC, LOWER, UPPER)
    pos = plan.trajectory.positions
    assert (pos >= LOWER + JOG_LIMIT_MARGIN_RAD - 1e-6).all() and (pos <= UPPER - JOG_LIMIT_MARGIN_RAD + 1e-6).all()
    v = velocities(plan.trajectory)
    assert (np.abs(v) <= np.abs(np.array(target)) + 1e-6).all()
    # at rest: the last segment moves at most what decelerating over one sample allows
    assert (np.abs(v[-1]) <= ACC * 0.02 + 1e-6).all()
    assert plan.stop_time_s <= hold_s + float(np.max(np.abs(target) / ACC)) + 1e-9


def test_damped_least_squares_inverts_a_well_conditioned_jacobian_and_stays_bounded_at_a_singularity():
    rng = np.random.default_rng(3)
    jac = rng.normal(size=(6, 7))
    twist = np.array([0.1, -0.05, 0.02, 0.0, 0.1, 0.0])
    qd = dls_joint_velocity(jac, twist, damping=1e-4)
    assert np.allclose(jac @ qd, twist, atol=1e-6)
    singular = jac.copy()
    singular[1] = singular[0] * 1e-9  # rows 0 and 1 aligned: y motion is out of reach
    qd = dls_joint_velocity(singular, np.array([0.0, 0.1, 0, 0, 0, 0]))
    assert np.linalg.norm(qd) < 10.0


def test_jog_records_refuse_malformed_values():
    with pytest.raises(CommandError, match="give exactly one of velocities or displacements"):
        JointJog(("panda_joint1",), velocities=[0.1], displacements=[0.1], duration_s=1.0)
    with pytest.raises(CommandError, match=r"JointJog.velocities: expected 2 values \(one per joint name\), got 1"):
        JointJog(("panda_joint1", "panda_joint2"), velocities=[0.1])
    with pytest.raises(CommandError, match="JointJog.velocities: values must be finite"):
        JointJog(("panda_joint1",), velocities=[float("nan")])
    with pytest.raises(CommandError, match="JointJog.duration_s: must be finite and > 0 with displacements"):
        JointJog(("panda_joint1",), displacements=[0.1])
    with pytest.raises(CommandError, match="JointJog.joint_names: need distinct joint names"):
        JointJog(("panda_joint1", "panda_joint1"), velocities=[0.1, 0.1])
    with pytest.raises(CommandError, match="CartesianJog.frame_id: must be one of cell, tool, got 'world'"):
        CartesianJog("world", [0, 0, 0], [0, 0, 0])
    with pytest.raises(CommandError, match=r"CartesianJog.linear_mps: expected 3 values \(x, y, z\), got 2"):
        CartesianJog("cell", [0, 0], [0, 0, 0])
    with pytest.raises(CommandError, match="CartesianJog.angular_radps: values must be finite"):
        CartesianJog("tool", [0, 0, 0], [0, float("inf"), 0])


def test_a_joint_jog_is_put_in_the_robots_joint_order():
    jog = JointJog(("panda_joint3", "panda_joint1"), velocities=[0.3, -0.1])
    assert check_joint_jog(jog, NAMES).tolist() == [-0.1, 0, 0.3, 0, 0, 0, 0]
    with pytest.raises(CommandError, match=r"JointJog 'g': unknown joint\(s\) elbow; the robot's joints are"):
        check_joint_jog(JointJog(("elbow",), velocities=[0.1], goal_id="g"), NAMES)
