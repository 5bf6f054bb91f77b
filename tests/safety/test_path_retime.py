"""Shortening a joint path to a smooth stop before a time along it, and the rest from rest."""

import numpy as np
import pytest

from robot_bridge.types import JointTrajectory
from safety.path_retime import RAMP_STEP_S, stop_before

ACCEL = np.array([2.0, 4.0])


def line(duration_s=2.0, points=201, goal=(1.0, -0.5)):
    """Two joints moving at constant speed from 0 to `goal` over `duration_s`, dense points."""
    t = np.linspace(duration_s / points, duration_s, points)
    q = np.outer(t / duration_s, goal)
    return JointTrajectory(("a", "b"), q, t, goal_id="move")


def velocities(traj, start):
    """(segment velocities (M, n), segment mid times (M,)) of `traj` from `start` at time 0."""
    q = np.vstack([start, traj.positions])
    t = np.concatenate([[0.0], traj.time_from_start_s])
    return np.diff(q, axis=0) / np.diff(t)[:, None], (t[1:] + t[:-1]) / 2


def accelerations(traj, start):
    vel, mid = velocities(traj, start)
    return np.abs(np.diff(vel, axis=0)) / np.diff(mid)[:, None]


def test_the_prefix_stops_before_the_limit_within_the_acceleration_limits():
    cmd = line()
    prefix, rest = stop_before(np.zeros(2), cmd, 1.2, ACCEL)
    assert prefix.goal_id == "move/shortened" and rest.goal_id == "move"
    # ends by the limit, where the original path is at t <= 1.2 s: a prefix of the same line
    end = prefix.positions[-1]
    assert end[0] <= 1.2 / 2.0 + 1e-9 and end[1] == pytest.approx(-0.5 * end[0])
    vel, _ = velocities(prefix, np.zeros(2))
    assert np.abs(vel[-1]).max() < 0.06                            # at rest at the end
    assert (accelerations(prefix, np.zeros(2)) <= ACCEL * 1.001).all()   # ramp within the limits
    assert np.abs(vel).max(axis=0) == pytest.approx([0.5, 0.25], rel=1e-3)   # the original speed before


def test_the_rest_starts_at_rest_where_the_prefix_ends_and_reaches_the_goal():
    cmd = line()
    prefix, rest = stop_before(np.zeros(2), cmd, 1.2, ACCEL)
    start = prefix.positions[-1]
    assert rest.time_from_start_s[0] == pytest.approx(RAMP_STEP_S)
    assert np.allclose(rest.positions[-1], cmd.positions[-1])
    vel, _ = velocities(rest, start)
    assert np.abs(vel[0]).max() < 0.06                             # from rest
    assert (accelerations(rest, start) <= ACCEL * 1.001).all()
    assert np.abs(vel).max(axis=0) == pytest.approx([0.5, 0.25], rel=1e-2)   # back to the original speed
    assert (np.diff(rest.time_from_start_s) > 0).all() and (np.diff(prefix.time_from_start_s) > 0).all()


def test_a_sparse_command_is_followed_along_its_straight_line():
    cmd = JointTrajectory(("a", "b"), np.array([[1.0, 1.0]]), np.array([4.0]), goal_id="goto")
    prefix, rest = stop_before(np.array([0.0, -1.0]), cmd, 2.0, ACCEL)
    # on the line from (0, -1) to (1, 1): b = -1 + 2a
    assert np.allclose(prefix.positions[:, 1], -1.0 + 2.0 * prefix.positions[:, 0])
    assert prefix.positions[-1, 0] <= 0.5 + 1e-9
    assert np.allclose(rest.positions[-1], [1.0, 1.0])


def test_no_stop_fits_before_a_limit_too_close():
    cmd = line(duration_s=0.5, goal=(1.0, 1.0))                   # 2 rad/s: needs 0.5 s to stop at 4 rad/s^2
    assert stop_before(np.zeros(2), cmd, 0.05, np.array([4.0, 4.0])) is None


@pytest.mark.parametrize("start, accel, message", [
    (np.zeros(3), ACCEL, r"stop_before: start \(3,\) and accel_limits_radps2 \(2,\) must both be \(2,\)"),
    (np.zeros(2), np.array([1.0, 0.0]), r"stop_before: accel_limits_radps2 must be > 0, got \[1.0, 0.0\]"),
])
def test_bad_arguments_are_named(start, accel, message):
    with pytest.raises(ValueError, match=message):
        stop_before(start, line(), 1.0, accel)
