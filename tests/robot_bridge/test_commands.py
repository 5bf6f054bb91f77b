"""The command checks every backend shares (`robot_bridge.commands`): pure, no robot needed."""

from __future__ import annotations

import math

import pytest

from robot_bridge.commands import (
    FRANKA_HAND_MAX_FORCE_N,
    FRANKA_HAND_MAX_OPENING_M,
    check_gripper_command,
)
from robot_bridge.errors import CommandError
from robot_bridge.types import GripperCommand


def test_the_franka_hand_limits_are_the_datasheets():
    assert FRANKA_HAND_MAX_OPENING_M == 0.08
    assert FRANKA_HAND_MAX_FORCE_N == 140.0


@pytest.mark.parametrize("position_m, max_effort_n", [
    (0.0, 40.0), (FRANKA_HAND_MAX_OPENING_M, 40.0), (0.04, FRANKA_HAND_MAX_FORCE_N), (0.04, 1e-3),
])
def test_a_command_within_the_limits_passes_and_gives_the_measured_opening(position_m, max_effort_n):
    assert check_gripper_command(GripperCommand(position_m, max_effort_n, "ok"), 0.031, "-") == 0.031


@pytest.mark.parametrize("command, match", [
    (GripperCommand(-0.001, goal_id="a"), r"^GripperCommand 'a': position_m must be in \[0, 0.08\] m, got -0.001$"),
    (GripperCommand(0.0801, goal_id="b"), r"^GripperCommand 'b': position_m must be in \[0, 0.08\] m, got 0.0801$"),
    (GripperCommand(math.nan, goal_id="c"), r"^GripperCommand 'c': position_m must be in \[0, 0.08\] m, got nan$"),
    (GripperCommand(math.inf, goal_id="c"), r"^GripperCommand 'c': position_m must be in \[0, 0.08\] m, got inf$"),
    (GripperCommand(0.02, 0.0, goal_id="d"), r"^GripperCommand 'd': max_effort_n must be in \(0, 140\] N, got 0.0$"),
    (GripperCommand(0.02, -5.0, goal_id="d"), r"^GripperCommand 'd': max_effort_n must be in \(0, 140\] N, got -5.0$"),
    (GripperCommand(0.02, 140.5, goal_id="e"), r"^GripperCommand 'e': max_effort_n must be in \(0, 140\] N, got 140.5$"),
    (GripperCommand(0.02, math.nan, goal_id="f"), r"^GripperCommand 'f': max_effort_n must be in \(0, 140\] N, got nan$"),
])
def test_a_command_outside_the_franka_hand_limits_is_refused_naming_the_field(command, match):
    with pytest.raises(CommandError, match=match):
        check_gripper_command(command, 0.08, "-")


@pytest.mark.parametrize("opening_m", [None, math.nan])
def test_a_command_without_a_measured_opening_is_refused(opening_m):
    with pytest.raises(CommandError, match=r"^GripperCommand 'blind': refused, the finger opening is "
                                           r"unknown \(no fresh finger joints\)$"):
        check_gripper_command(GripperCommand(0.0, goal_id="blind"), opening_m, "no fresh finger joints")


def test_the_limits_are_checked_before_the_opening():
    """A malformed command is named for its field even while the opening is unknown."""
    with pytest.raises(CommandError, match=r"position_m must be in"):
        check_gripper_command(GripperCommand(0.5, goal_id="x"), None, "no state")
