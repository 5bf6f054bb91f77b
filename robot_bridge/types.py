"""Command and state records shared by every robot backend.

Names follow the ROS 2 messages they mirror (sensor_msgs/JointState,
trajectory_msgs/JointTrajectory) and IEC 60204-1 for stop categories. All
positions are in metres in the `cell` frame (REP 103), angles in radians, times
as integer nanoseconds of `time.monotonic_ns()` unless the name says otherwise.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

from robot_bridge.errors import CommandError
from robot_bridge.placed import PlacedObject


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


@dataclass(frozen=True)
class JointJog:
    """A short joint-space jog (control_msgs/JointJog semantics, as MoveIt Servo takes it).

    Give exactly one of `velocities` or `displacements`. A velocity jog is held for the gate's
    deadman timeout (or `duration_s` when that is shorter) and then ramps to a stop by itself
    unless a newer jog replaces it; a displacement jog moves the joints by `displacements`
    relative to where they are, reaching them `duration_s` after the start of the motion.

    Attributes:
        joint_names: the jogged joints (a subset of the robot's, any order, no repeats).
        velocities: (n,) float64, rad/s, one per name, or empty.
        displacements: (n,) float64, radians, one per name, or empty.
        duration_s: seconds; required (> 0) with displacements, optional (0: the deadman
            timeout) with velocities.
        goal_id: reported back in `RobotState.goal_id` (of the trajectory the gate forwards).

    Raises:
        CommandError: names repeated or empty, neither or both of velocities and displacements,
            a length that does not match `joint_names`, a non-finite value, or a bad duration.
    """

    joint_names: tuple[str, ...]
    velocities: np.ndarray = field(default_factory=lambda: np.zeros(0))
    displacements: np.ndarray = field(default_factory=lambda: np.zeros(0))
    duration_s: float = 0.0
    goal_id: str = ""

    def __post_init__(self) -> None:
        names = tuple(self.joint_names)
        if not names or len(set(names)) != len(names):
            raise CommandError(
                f"JointJog.joint_names: need distinct joint names, got {list(names)}")
        vel = np.asarray(self.velocities, dtype=np.float64).reshape(-1)
        disp = np.asarray(self.displacements, dtype=np.float64).reshape(-1)
        if (vel.size == 0) == (disp.size == 0):
            raise CommandError("JointJog: give exactly one of velocities or displacements")
        values, what = (vel, "velocities") if vel.size else (disp, "displacements")
        if values.size != len(names):
            raise CommandError(f"JointJog.{what}: expected {len(names)} values "
                               f"(one per joint name), got {values.size}")
        if not np.isfinite(values).all():
            raise CommandError(f"JointJog.{what}: values must be finite")
        duration = float(self.duration_s)
        if not (math.isfinite(duration) and duration >= 0.0) or (disp.size and duration <= 0.0):
            need = "> 0 with displacements" if disp.size else ">= 0"
            raise CommandError(
                f"JointJog.duration_s: must be finite and {need}, got {self.duration_s}")
        object.__setattr__(self, "joint_names", names)
        object.__setattr__(self, "velocities", vel)
        object.__setattr__(self, "displacements", disp)
        object.__setattr__(self, "duration_s", duration)


#: Frames a `CartesianJog` may be expressed in: the cell (world) frame, or the tool frame (the
#: TCP, `panda_grasptarget` on the Panda: z along the gripper's approach direction).
JOG_FRAMES: tuple[str, ...] = ("cell", "tool")


@dataclass(frozen=True)
class CartesianJog:
    """A short Cartesian jog of the TCP (geometry_msgs/TwistStamped semantics, as MoveIt Servo
    takes it). It is held for the gate's deadman timeout and then ramps to a stop by itself
    unless a newer jog replaces it.

    Attributes:
        frame_id: `cell` or `tool` (`JOG_FRAMES`): the frame of both vectors.
        linear_mps: (3,) float64, m/s, the TCP's linear velocity.
        angular_radps: (3,) float64, rad/s, the TCP's angular velocity.
        goal_id: reported back in `RobotState.goal_id` (of the trajectory the gate forwards).

    Raises:
        CommandError: an unknown frame, a vector that is not 3 values, or a non-finite value.
    """

    frame_id: str
    linear_mps: np.ndarray
    angular_radps: np.ndarray
    goal_id: str = ""

    def __post_init__(self) -> None:
        if self.frame_id not in JOG_FRAMES:
            raise CommandError(f"CartesianJog.frame_id: must be one of {', '.join(JOG_FRAMES)}, "
                               f"got {self.frame_id!r}")
        for name in ("linear_mps", "angular_radps"):
            value = np.asarray(getattr(self, name), dtype=np.float64).reshape(-1)
            if value.shape != (3,):
                raise CommandError(
                    f"CartesianJog.{name}: expected 3 values (x, y, z), got {value.size}")
            if not np.isfinite(value).all():
                raise CommandError(f"CartesianJog.{name}: values must be finite")
            object.__setattr__(self, name, value)


RobotCommand = JointTrajectory | GripperCommand
"""What a backend's `execute` takes. Jogs (`JointJog`, `CartesianJog`) never reach a backend as
such: the gate turns each into a short `JointTrajectory` (`robot_bridge.jog`)."""


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
        goal_done: True when the goal `goal_id` has ended (reached its target, or aborted).
        goal_aborted: True when the goal `goal_id` ended without reaching its target
            (action_msgs/GoalStatus STATUS_ABORTED): a protective stop ended a gripper goal in
            flight, which a reset does not resume. A sender that needs the goal done sends it
            again. Always False while `goal_done` is False.
        safety_seq: sequence number of the newest safety command (speed scale or stop)
            the backend has applied; `safety_applied_ns` is when it applied it.
        safety_applied_ns: monotonic time that command took effect.
        healthy: False when the backend lost its robot or its data is implausible.
        extras: backend-specific figures (JSON-ready), e.g. the sim's `sim_time_s`.
        gripper_opening_m: finger opening (both fingers), metres; None when the backend does
            not know it (no gripper joints, or their data is stale).
        payload_carried: the cell's payload (`robot.payload`) counts as held by the gripper
            (`robot_bridge.payload.payload_carried`): its capsule is among the link capsules
            (as `PAYLOAD_LINK`) and the stop data of the carried payload apply. True unless a
            backend knows the gripper is empty (fail-safe default); False without a payload.
        gripper_seq: how many gripper commands the backend has taken up so far; the gate
            counts a gripper command it forwarded as in flight until this reaches it.
        placed_objects: the parts the robot released that lie in the cell (`robot_bridge.placed`:
            released where they lie, until carried again), oldest first, as of `stamp_ns`; the
            occupancy channel removes the points inside them. None: the backend does not know
            (the occupancy channel then masks nothing).
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
    goal_aborted: bool = False
    safety_seq: int = 0
    safety_applied_ns: int = 0
    healthy: bool = True
    extras: dict = field(default_factory=dict)
    gripper_opening_m: float | None = None
    payload_carried: bool = True
    gripper_seq: int = 0
    placed_objects: tuple[PlacedObject, ...] | None = None

    @property
    def max_speed_mps(self) -> float:
        """Largest Cartesian speed of any capsule end point, m/s."""
        return float(self.link_speeds_mps.max()) if self.link_speeds_mps.size else 0.0
