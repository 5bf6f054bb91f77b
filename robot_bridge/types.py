"""Command and state records shared by every robot backend.

Names follow the ROS 2 messages they mirror (sensor_msgs/JointState,
trajectory_msgs/JointTrajectory) and IEC 60204-1 for stop categories. All
positions are in metres in the `cell` frame (REP 103), angles in radians, times
as integer nanoseconds of `time.monotonic_ns()` unless the name says otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from robot_bridge.errors import CommandError


class StopCategory(enum.IntEnum):
    """IEC 60204-1 clause 9.2.2 stop categories.

    STOP_0: uncontrolled stop, power removed at once (the sim holds the current pose).
    STOP_1: controlled stop, power removed once standstill is reached.
    STOP_2: controlled stop, power kept, standstill is held.
    """

    STOP_0 = 0
    STOP_1 = 1
    STOP_2 = 2


class ControllerMode(enum.Enum):
    """What the backend's controller is doing.

    IDLE: no active goal; a trajectory may be started.
    EXECUTING: following a trajectory at the applied speed scale.
    STOPPING: decelerating for a protective stop (category 1 or 2).
    STOPPED: protective stop held; motion commands are refused until `reset()`.
    FAULT: the backend lost its robot or its data; nothing moves until reset.
    """

    IDLE = "idle"
    EXECUTING = "executing"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAULT = "fault"


@dataclass(frozen=True)
class JointTrajectory:
    """A time-parametrised joint path (trajectory_msgs/JointTrajectory semantics).

    Attributes:
        joint_names: names of the commanded joints, in column order.
        positions: (M, n) float64, radians, one row per point.
        time_from_start_s: (M,) float64, seconds, strictly increasing, first >= 0.
        goal_id: an identifier the backend reports back in `RobotState.goal_id`.
    """

    joint_names: tuple[str, ...]
    positions: np.ndarray
    time_from_start_s: np.ndarray
    goal_id: str = ""

    def __post_init__(self) -> None:
        pos = np.asarray(self.positions, dtype=np.float64)
        tfs = np.asarray(self.time_from_start_s, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != len(self.joint_names):
            raise CommandError(
                f"JointTrajectory.positions: expected shape (M, {len(self.joint_names)}), "
                f"got {pos.shape}"
            )
        if tfs.shape != (pos.shape[0],):
            raise CommandError(
                f"JointTrajectory.time_from_start_s: expected shape ({pos.shape[0]},), got {tfs.shape}"
            )
        if pos.shape[0] < 1:
            raise CommandError("JointTrajectory.positions: at least one point is required")
        if not (np.isfinite(pos).all() and np.isfinite(tfs).all()):
            raise CommandError("JointTrajectory: positions and times must be finite")
        if tfs[0] < 0 or np.any(np.diff(tfs) <= 0):
            raise CommandError("JointTrajectory.time_from_start_s: must start >= 0 and strictly increase")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "time_from_start_s", tfs)


@dataclass(frozen=True)
class GripperCommand:
    """Open or close the gripper (control_msgs/GripperCommand semantics).

    Attributes:
        position_m: finger opening, metres (Panda: 0.0 closed .. 0.08 open).
        max_effort_n: grasp force limit, newtons.
        goal_id: reported back in `RobotState.goal_id`.
    """

    position_m: float
    max_effort_n: float = 40.0
    goal_id: str = ""


RobotCommand = JointTrajectory | GripperCommand


@dataclass(frozen=True)
class RobotState:
    """One sample of the robot (sensor_msgs/JointState plus what safety needs).

    Attributes:
        stamp_ns: monotonic time the sample was taken.
        joint_names: (n,) joint names.
        position: (n,) float64, radians.
        velocity: (n,) float64, rad/s.
        tcp_position: (3,) float64, metres, `cell` frame.
        tcp_velocity_mps: (3,) float64, m/s, `cell` frame.
        link_names: (K,) names of the link capsules.
        link_segments: (K, 2, 3) float64, metres, `cell` frame: capsule axis end points.
        link_radii_m: (K,) float64, metres: capsule radii.
        link_speeds_mps: (K,) float64, m/s: the larger end-point speed of each capsule.
        speed_scale: the speed override applied now, in [0, 1].
        mode: the controller's mode.
        goal_id: the active (or last) goal's id; `goal_done` says if it finished.
        goal_done: True when the goal `goal_id` has completed.
        safety_seq: sequence number of the newest safety command (speed scale or stop)
            the backend has applied; `safety_applied_ns` is when it applied it.
        safety_applied_ns: monotonic time that command took effect.
        healthy: False when the backend lost its robot or its data is implausible.
    """

    stamp_ns: int
    joint_names: tuple[str, ...]
    position: np.ndarray
    velocity: np.ndarray
    tcp_position: np.ndarray
    tcp_velocity_mps: np.ndarray
    link_names: tuple[str, ...]
    link_segments: np.ndarray
    link_radii_m: np.ndarray
    link_speeds_mps: np.ndarray
    speed_scale: float
    mode: ControllerMode
    goal_id: str = ""
    goal_done: bool = True
    safety_seq: int = 0
    safety_applied_ns: int = 0
    healthy: bool = True
    extras: dict = field(default_factory=dict)

    @property
    def max_speed_mps(self) -> float:
        """Largest Cartesian speed of any capsule end point, m/s."""
        return float(self.link_speeds_mps.max()) if self.link_speeds_mps.size else 0.0
