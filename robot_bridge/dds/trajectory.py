"""Building trajectory_msgs/JointTrajectory messages: conversion, re-timing, stops. Pure functions."""

from __future__ import annotations

import numpy as np

from robot_bridge.dds import msgs

MIN_SPEED_SCALE = 1e-3
"""Below this speed scale a trajectory is paused (a hold is sent) instead of re-timed."""


def duration_msg(t_s: float) -> msgs.Duration:
    """builtin_interfaces/Duration of `t_s` seconds (>= 0), rounded to the nanosecond."""
    ns = int(round(t_s * 1e9))
    return msgs.Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def trajectory_msg(
    joint_names: tuple[str, ...],
    positions: np.ndarray,
    times_s: np.ndarray,
    velocities: np.ndarray | None = None,
) -> msgs.JointTrajectory:
    """A JointTrajectory to start now (header.stamp 0, the JointTrajectoryController convention).

    Args:
        joint_names: (n,) joint names.
        positions: (M, n) radians.
        times_s: (M,) time_from_start, seconds.
        velocities: (M, n) rad/s or None (then the points carry no velocities).
    """
    points = [
        msgs.JointTrajectoryPoint(
            positions=[float(x) for x in positions[i]],
            velocities=[] if velocities is None else [float(x) for x in velocities[i]],
            time_from_start=duration_msg(float(times_s[i])),
        )
        for i in range(positions.shape[0])
    ]
    return msgs.JointTrajectory(joint_names=list(joint_names), points=points)


def remaining_trajectory(
    positions: np.ndarray, times_s: np.ndarray, path_time_s: float, speed_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """The part of a trajectory after `path_time_s`, re-timed for `speed_scale`.

    The controller interpolates from where the robot is to the first remaining point, so the
    path is kept and only its timing changes (as an industrial speed override does).

    Args:
        positions: (M, n) radians.
        times_s: (M,) seconds of path time, increasing.
        path_time_s: how far along the path the robot is, seconds of path time.
        speed_scale: in [MIN_SPEED_SCALE, 1].

    Returns:
        (positions (K, n), time_from_start (K,)): the points after `path_time_s`, due at
        `(t - path_time_s) / speed_scale`; K may be 0 when the path time is past the end.
    """
    keep = times_s > path_time_s + 1e-9
    return positions[keep], (times_s[keep] - path_time_s) / speed_scale


def hold_trajectory(
    joint_names: tuple[str, ...], position: np.ndarray, velocity: np.ndarray, stop_time_s: float
) -> msgs.JointTrajectory:
    """A one-point trajectory that brings the joints to rest within `stop_time_s`.

    The point is where each joint comes to rest under constant deceleration from `velocity`
    (q + v·T/2), with zero velocity, due at T = `stop_time_s`.

    Args:
        joint_names: (n,) joint names.
        position: (n,) radians, the newest measured position.
        velocity: (n,) rad/s, the newest measured velocity.
        stop_time_s: T, seconds (> 0).
    """
    rest = position + velocity * stop_time_s / 2.0
    return trajectory_msg(joint_names, rest[None, :], np.array([stop_time_s]), np.zeros((1, position.size)))


def stop_trajectory(joint_names: tuple[str, ...]) -> msgs.JointTrajectory:
    """An empty JointTrajectory (joint names, no points): the ROS 1 / industrial_robot_client
    stop convention. ros2_controllers' JointTrajectoryController rejects it ("Empty
    trajectory received."); use `hold_trajectory` for it."""
    return msgs.JointTrajectory(joint_names=list(joint_names), points=[])
