"""Gripper commands over topics: a ros2_control position controller on the finger joints.

Pure logic, no I/O: the `DdsBackend` holds one `GripperMotion` per gripper goal under its lock,
publishes the messages built here, and feeds the finger opening it reads from `/joint_states`
back into `GripperMotion.judge`.

How a goal moves (both controller kinds; the ramp and speed of the `sim` backend's gripper):
the set-point opening ramps from the measured opening to the commanded one at
`GRIPPER_OPENING_SPEED_MPS` times the speed scale in force (both fingers together: each finger
at `robot_bridge.sim.panda.GRIPPER_SPEED_MPS`, the Franka Hand's 0.05 m/s). The
`forward_position` kind streams the ramp as set-points (std_msgs/Float64MultiArray, at most one
per `GRIPPER_COMMAND_PERIOD_S`): a JointGroupPositionController forwards a set-point to the
hardware as it is, so the ramp is what bounds the finger speed, and set-points stop when the
joint states stop. The `joint_trajectory` kind publishes one point due when the ramp ends
(re-published when the speed scale changes); the JointTrajectoryController interpolates.

When a goal ends (`GripperOutcome`), judged on finger samples at their own stamps against the
set-point in force when each was taken (for `forward_position` the newest set-point published
before the sample, so a late set-point never looks like a blocked finger; for
`joint_trajectory` the ramp, which models the controller's interpolation): REACHED, the opening
is within `GRIPPER_TOLERANCE_M` of the target once the set-point got there; STALLED, the
fingers stood still for `GRIPPER_STALL_S` more than `GRIPPER_BLOCKED_M` short of the set-point
after they had moved (closed on a part), or at the end of the ramp; TIMEOUT, no end within
`GRIPPER_SETTLE_TIMEOUT_S` after the set-point reached the target (logged by the backend).

`max_effort_n` (control_msgs/GripperCommand) cannot be carried by a position command: the
grasp force is what the controller and the hardware's effort limits make of the last set-point.
"""

from __future__ import annotations

import bisect
import enum
import math

from robot_bridge.dds import msgs
from robot_bridge.dds.trajectory import MIN_SPEED_SCALE, duration_msg
from robot_bridge.sim.panda import GRIPPER_SPEED_MPS

GRIPPER_OPENING_SPEED_MPS = 2.0 * GRIPPER_SPEED_MPS
"""Speed of the opening (both fingers) at speed scale 1, m/s."""
GRIPPER_COMMAND_PERIOD_S = 0.02
"""Shortest time between two streamed `forward_position` set-points, seconds."""
GRIPPER_TOLERANCE_M = 1e-3
"""A goal is reached when the opening is this close to its target, metres."""
GRIPPER_BLOCKED_M = 2e-3
"""Fingers this far from the set-point, and not moving, are blocked (on a part), metres."""
GRIPPER_STALL_S = 0.15
"""Fingers blocked (or at the end of the ramp) and still this long end the goal, seconds."""
GRIPPER_SETTLE_TIMEOUT_S = 2.0
"""A goal not ended this long after its ramp ended is ended anyway (TIMEOUT), seconds."""
MIN_GRIPPER_TIME_S = 0.05
"""Shortest time_from_start of a gripper trajectory point, seconds."""


class GripperOutcome(enum.Enum):
    """How a gripper goal ended."""

    REACHED = "reached"
    """The fingers are at the commanded opening."""
    STALLED = "stalled"
    """The fingers stopped short of it (closed on a part) or settled off it."""
    TIMEOUT = "timeout"
    """No end within `GRIPPER_SETTLE_TIMEOUT_S` after the ramp ended."""


def grip_evidence(outcome: GripperOutcome, start_m: float, target_m: float,
                  opening_m: float | None) -> bool | None:
    """Evidence of an object between the fingers from how a gripper goal ended
    (`robot_bridge.placed.PlacedObjectTracker`'s `object_evidence`).

    Args:
        outcome: how the goal ended.
        start_m, target_m: the opening it started from and its target, metres.
        opening_m: the measured opening at its end, metres (None: unknown).

    Returns:
        True: a closing goal stalled more than `GRIPPER_BLOCKED_M` short of its target (a part
        stopped the fingers); False: the fingers reached the target (nothing in the way);
        None: anything else (an opening goal, a timeout, the opening unknown, settled just off
        the target): no evidence either way.
    """
    if outcome is GripperOutcome.REACHED:
        return False
    if (outcome is GripperOutcome.STALLED and opening_m is not None and target_m < start_m
            and opening_m - target_m > GRIPPER_BLOCKED_M):
        return True
    return None


def finger_positions(opening_m: float, n_joints: int) -> list[float]:
    """Each commanded finger joint's position for an opening: half of it (the Franka Hand's
    fingers move symmetrically; a single commanded joint drives its mimic twin), metres."""
    return [opening_m / 2.0] * n_joints


def forward_command_msg(opening_m: float, n_joints: int) -> msgs.Float64MultiArray:
    """The forward_command_controller set-point of an opening (empty layout, one value a joint)."""
    return msgs.Float64MultiArray(data=finger_positions(opening_m, n_joints))


def finger_trajectory_msg(joint_names: tuple[str, ...], opening_m: float,
                          time_s: float) -> msgs.JointTrajectory:
    """A one-point JointTrajectory of the finger joints to an opening, at rest, due at `time_s`
    (at least `MIN_GRIPPER_TIME_S`); header.stamp 0: start now."""
    point = msgs.JointTrajectoryPoint(
        positions=finger_positions(opening_m, len(joint_names)),
        velocities=[0.0] * len(joint_names),
        time_from_start=duration_msg(max(time_s, MIN_GRIPPER_TIME_S)),
    )
    return msgs.JointTrajectory(joint_names=list(joint_names), points=[point])


class GripperMotion:
    """One gripper goal in flight: its set-point ramp and the judge of its end.

    Not thread-safe: the `DdsBackend` calls it under its lock. Times are `time.monotonic_ns()`.

    Args:
        goal_id: the GripperCommand's goal id.
        start_m: the measured opening when the goal starts, metres.
        target_m: the commanded opening, metres.
        now_ns: when the goal starts.
        speed_scale: the speed scale in force, [0, 1].
        streamed: the set-points are streamed (`forward_position`: they must be recorded with
            `sent`); False: the controller interpolates to the target by itself.
    """

    def __init__(self, goal_id: str, start_m: float, target_m: float, now_ns: int,
                 speed_scale: float, *, streamed: bool = False) -> None:
        self.goal_id = goal_id
        self.target_m = float(target_m)
        self.start_m = float(start_m)
        self._streamed = streamed
        self._sent_ns: list[int] = []
        self._sent_m: list[float] = []
        self._s0_m = float(start_m)
        self._t0_ns = now_ns
        self._scale = float(speed_scale)
        self._moved = False
        self._still_since_ns: int | None = None
        self._ramp_end_ns: int | None = None
        self.last_sent_m: float | None = None
        self.last_sent_ns = 0

    def _speed_mps(self) -> float:
        return GRIPPER_OPENING_SPEED_MPS * self._scale if self._scale >= MIN_SPEED_SCALE else 0.0

    def setpoint_m(self, now_ns: int) -> float:
        """The set-point opening at `now_ns`, metres."""
        gap = self.target_m - self._s0_m
        travel = self._speed_mps() * max(now_ns - self._t0_ns, 0) / 1e9
        return self.target_m if travel >= abs(gap) else self._s0_m + math.copysign(travel, gap)

    def remaining_s(self, now_ns: int) -> float:
        """Seconds until the ramp reaches the target at the scale in force (inf when paused)."""
        speed = self._speed_mps()
        gap = abs(self.target_m - self.setpoint_m(now_ns))
        return gap / speed if speed > 0.0 else (0.0 if gap == 0.0 else math.inf)

    def rescale(self, now_ns: int, speed_scale: float) -> None:
        """Continue the ramp from where it is at `speed_scale` (below `MIN_SPEED_SCALE`: paused)."""
        self._s0_m = self.setpoint_m(now_ns)
        self._t0_ns = now_ns
        self._scale = float(speed_scale)

    def sent(self, now_ns: int, opening_m: float) -> None:
        """Record a set-point published at `now_ns` (the newest 256 are kept)."""
        self.last_sent_m, self.last_sent_ns = opening_m, now_ns
        self._sent_ns.append(now_ns)
        self._sent_m.append(opening_m)
        if len(self._sent_ns) > 256:
            del self._sent_ns[:128], self._sent_m[:128]

    def _reference_m(self, stamp_ns: int) -> float:
        """The set-point in force when a sample stamped `stamp_ns` was taken."""
        if not self._streamed:
            return self.setpoint_m(stamp_ns)
        i = bisect.bisect_right(self._sent_ns, stamp_ns)
        return self._sent_m[i - 1] if i else self.start_m

    def due_to_send(self, now_ns: int) -> bool:
        """Whether a streamed set-point is due: the set-point changed and a period has passed,
        or the ramp has just reached the target."""
        sp = self.setpoint_m(now_ns)
        if sp == self.last_sent_m:
            return False
        return sp == self.target_m or now_ns - self.last_sent_ns >= GRIPPER_COMMAND_PERIOD_S * 1e9

    def judge(self, now_ns: int, opening_m: float | None, moving: bool) -> GripperOutcome | None:
        """Whether the goal has ended, from a fresh finger sample (samples in stamp order).

        Args:
            now_ns: the sample's stamp (monotonic clock).
            opening_m: the measured opening, metres; None when unknown (then only TIMEOUT ends it).
            moving: the fingers move (faster than the backend's `GRIPPER_MOVING_MPS`).

        Returns:
            The outcome, or None while the goal is in flight.
        """
        sp = self._reference_m(now_ns)
        at_end = sp == self.target_m
        if at_end and self._ramp_end_ns is None:
            self._ramp_end_ns = now_ns
        if opening_m is not None:
            if moving:
                self._moved = True
            if at_end and abs(opening_m - self.target_m) < GRIPPER_TOLERANCE_M:
                return GripperOutcome.REACHED
            blocked = self._moved and abs(opening_m - sp) > GRIPPER_BLOCKED_M
            if not moving and (at_end or blocked):
                if self._still_since_ns is None:
                    self._still_since_ns = now_ns
                if now_ns - self._still_since_ns >= GRIPPER_STALL_S * 1e9:
                    return GripperOutcome.STALLED
            else:
                self._still_since_ns = None
        settle_ns = GRIPPER_SETTLE_TIMEOUT_S * 1e9
        if self._ramp_end_ns is not None and now_ns - self._ramp_end_ns >= settle_ns:
            return GripperOutcome.TIMEOUT
        return None
