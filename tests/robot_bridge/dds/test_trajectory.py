"""Trajectory messages: conversion, re-timing for speed scaling, stop messages."""

import numpy as np

from robot_bridge.dds import msgs
from robot_bridge.dds.trajectory import (
    duration_msg,
    hold_trajectory,
    remaining_trajectory,
    stop_trajectory,
    trajectory_msg,
)


def test_duration_rounds_to_the_nanosecond():
    assert duration_msg(0.0) == msgs.Duration(0, 0)
    assert duration_msg(1.5) == msgs.Duration(1, 500_000_000)
    assert duration_msg(2.9999999999) == msgs.Duration(3, 0)


def test_trajectory_msg_carries_every_point():
    m = trajectory_msg(("a", "b"), np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.0, 0.25]))
    assert m.joint_names == ["a", "b"]
    assert [p.positions for p in m.points] == [[1.0, 2.0], [3.0, 4.0]]
    assert [p.time_from_start for p in m.points] == [msgs.Duration(0, 0), msgs.Duration(0, 250_000_000)]
    assert m.header.stamp == msgs.Time(0, 0)  # start now


def test_remaining_is_retimed_by_the_scale():
    pos = np.array([[0.0], [1.0], [2.0], [3.0]])
    times = np.array([0.0, 1.0, 2.0, 3.0])
    rest, t = remaining_trajectory(pos, times, 1.5, 0.5)
    assert rest[:, 0].tolist() == [2.0, 3.0]
    assert t.tolist() == [1.0, 3.0]  # (2 - 1.5) / 0.5, (3 - 1.5) / 0.5
    rest, t = remaining_trajectory(pos, times, 3.0, 1.0)
    assert rest.shape == (0, 1) and t.shape == (0,)


def test_hold_brings_joints_to_rest_at_constant_deceleration():
    m = hold_trajectory(("a", "b"), np.array([1.0, 2.0]), np.array([0.4, -0.2]), 0.5)
    (point,) = m.points
    assert point.positions == [1.0 + 0.4 * 0.25, 2.0 - 0.2 * 0.25]
    assert point.velocities == [0.0, 0.0]
    assert point.time_from_start == msgs.Duration(0, 500_000_000)


def test_stop_trajectory_is_empty():
    m = stop_trajectory(("a",))
    assert m.joint_names == ["a"] and m.points == []
