"""The point-to-point profile: rest to rest along the joint-space line, within every joint's
velocity and acceleration limit, all joints arriving together."""

import numpy as np
import pytest

from robot_bridge.errors import CommandError
from robot_bridge.point_to_point import plan_point_to_point, stretch, trapezoid_duration_s
from robot_bridge.sim.panda import (
    ARM_JOINT_NAMES,
    PANDA_HOME_POSITION,
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
)

VEL = np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS)
ACC = np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2)


def derivatives(traj):
    t, q = traj.time_from_start_s, traj.positions
    v = np.diff(q, axis=0) / np.diff(t)[:, None]
    mid = (t[1:] + t[:-1]) / 2
    a = np.diff(v, axis=0) / np.diff(mid)[:, None]
    return v, a


@pytest.mark.parametrize("delta", [
    [1.5, -0.5, 0.3, 0.8, -1.0, 0.4, 2.0],      # long: trapezoid, joint 1 and 7 limit
    [0.02, 0.0, 0.0, -0.01, 0.0, 0.0, 0.0],     # short: triangle
])
def test_rest_to_rest_within_the_limits_along_the_line(delta):
    q0 = np.asarray(PANDA_HOME_POSITION)
    q1 = q0 + delta
    traj = plan_point_to_point(ARM_JOINT_NAMES, q0, q1, VEL, ACC, "g")
    assert traj.goal_id == "g" and traj.time_from_start_s[0] == 0.0
    np.testing.assert_array_equal(traj.positions[0], q0)
    np.testing.assert_array_equal(traj.positions[-1], q1)
    v, a = derivatives(traj)
    assert (np.abs(v) <= VEL * 1.0001).all()
    assert (np.abs(a) <= ACC * 1.02).all()            # finite differences of a trapezoid
    assert np.abs(v[0]).max() < 0.1 * VEL.max() and np.abs(v[-1]).max() < 0.1 * VEL.max()
    # on the line: every point is q0 + s * delta with one s for all joints
    s = (traj.positions - q0) @ np.asarray(delta) / np.dot(delta, delta)
    np.testing.assert_allclose(traj.positions, q0 + s[:, None] * np.asarray(delta), atol=1e-12)
    assert (np.diff(s) >= 0).all()


def test_the_duration_is_the_slowest_joints():
    # joint 2 alone: 1 rad at 2.175 rad/s and 7.5 rad/s^2 -> 1/2.175 + 2.175/7.5
    q0 = np.zeros(7)
    q1 = np.array([0, 1.0, 0, 0, 0, 0, 0])
    traj = plan_point_to_point(ARM_JOINT_NAMES, q0, q1, VEL, ACC)
    assert traj.time_from_start_s[-1] == pytest.approx(1 / 2.175 + 2.175 / 7.5)
    assert trapezoid_duration_s(10.0, 4.0) == pytest.approx(1.0)  # triangle: 2 / sqrt(a)


def test_no_motion_is_two_points_and_bad_limits_are_named():
    q = np.asarray(PANDA_HOME_POSITION)
    traj = plan_point_to_point(ARM_JOINT_NAMES, q, q, VEL, ACC)
    assert traj.positions.shape == (2, 7)
    bad = ACC.copy()
    bad[3] = 0.0
    with pytest.raises(CommandError, match="the acceleration limit of panda_joint4 must be > 0"):
        plan_point_to_point(ARM_JOINT_NAMES, q, q + 0.1, VEL, bad)
    with pytest.raises(CommandError, match="positions must be finite"):
        plan_point_to_point(ARM_JOINT_NAMES, q, q + np.nan, VEL, ACC)


def test_stretch_slows_the_same_path():
    q0 = np.asarray(PANDA_HOME_POSITION)
    traj = plan_point_to_point(ARM_JOINT_NAMES, q0, q0 + 0.5, VEL, ACC)
    slow = stretch(traj, 2.0)
    np.testing.assert_array_equal(slow.positions, traj.positions)
    np.testing.assert_allclose(slow.time_from_start_s, 2 * traj.time_from_start_s)
    with pytest.raises(CommandError, match="stretch: factor must be >= 1, got 0.5"):
        stretch(traj, 0.5)
