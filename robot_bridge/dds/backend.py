"""`DdsBackend`: a ROS 2 robot cell on the wire through Cyclone DDS, no ROS installation needed.

Topics only. The backend subscribes `/joint_states` (sensor_msgs/JointState), reads
`/robot_description` (std_msgs/String, transient-local, the URDF), publishes
`/<controller>/joint_trajectory` (trajectory_msgs/JointTrajectory) to a
JointTrajectoryController, and optionally a std_msgs/Float64 speed-scaling topic. Topic names,
type names, QoS and type hashes follow ROS 2 (see `robot_bridge.dds.conventions`).

Out of scope: services and actions. Over raw DDS they are RMW-specific (request/reply topics
`rq/...Request`/`rr/...Reply` with RMW-private sample identities), so there is no
`FollowJointTrajectory` action (no goal result, no tolerances checked by the controller), no
`controller_manager/switch_controller` and no `control_msgs/GripperCommand` action. The `ros2`
backend (rclpy) covers those where ROS 2 is installed. The backend does not publish
`ros_discovery_info`, so `ros2 node list` does not show it (`ros2 topic info` does).

Gripper: over a topic, the way ros2_control cells drive a gripper without an action, to the
controller of the cell file's `robot.dds.gripper_controller` (`content.cell.GripperController`):
`forward_position`, std_msgs/Float64MultiArray set-points (half the opening per finger joint)
on `/<controller>/commands` of a forward_command_controller / JointGroupPositionController,
streamed as a ramp at the Franka Hand's finger speed times the speed scale; or
`joint_trajectory`, a one-point trajectory_msgs/JointTrajectory of the finger joints on
`/<controller>/joint_trajectory`, due when that ramp ends (`robot_bridge.dds.gripper`). Without
the option gripper commands are refused with a message naming it. Commands are checked by
`robot_bridge.commands.check_gripper_command`, as the `sim` backend checks them (opening in
[0, 0.08] m, effort in (0, 140] N: the Franka Hand's; the effort cannot travel in a position
command), and need a fresh finger opening in `/joint_states`. `gripper_seq` counts the
gripper commands published; a gripper goal is in flight (the payload counts as carried, the
mode is EXECUTING) until the fingers reach the target, stall on a part, or a timeout, then the
attach rule judges carried/empty from the opening. A protective stop of any category ends a
gripper goal in flight: the fingers are held at their measured opening (a closing gripper
squeezes no further; a finished grip is left as it is, so a held part is not dropped), and
`reset()` does not resume it: a new command must pass the gate. Pinch forces (ISO/TS 15066
annex A pressure and force limits for quasi-static contact) are out of scope: xrcell does not
know the finger force; the gripper's own force limit applies.

Stops: a protective stop publishes, by default, a one-point "hold" trajectory that brings
every joint to rest (ros2_controllers' JointTrajectoryController rejects an empty trajectory);
`stop_message="empty"` publishes the ROS 1 / industrial_robot_client convention, an empty
JointTrajectory. A topic cannot cut drive power: category 0 is a hold within `STOP_0_TIME_S`,
and the certified stop stays with the cell's safety chain.

Carried part: with the cell's `robot.payload`, its capsule is the last link capsule while the
payload is carried (`robot_bridge.payload.payload_carried`), judged from the gripper's finger
joints in `/joint_states` (`gripper_joint_names`; joint_state_publisher merges them in a
Franka bring-up): their summed opening, and whether they move (faster than
`GRIPPER_MOVING_MPS`). Finger joints missing from the messages for longer than
`state_timeout_s`, or never seen, leave the grip unknown: the part counts as carried. Where
the payload was released is reported as `placed_objects` (`robot_bridge.placed.PlacedObjectTracker`,
as the sim; None without a payload), for the occupancy channel's mask (`safety.placed_mask`). A
grasp counts as holding a part only with evidence of one: the gripper goal this backend sent
closing ended with the fingers stopped more than `GRIPPER_BLOCKED_M` short of its target
(`GripperOutcome.STALLED`: something between them). Reaching the target means nothing was in
the way; a timeout, a stop or a gripper moved by someone else (a ROS 2 program of the cell's
own) leaves the evidence unknown: nothing is placed, a released part shows as occupancy (a
false stop, the fail-safe side). The evidence ends with the grasp it was about (the first state
not carried), so fingers closed again by someone else never inherit it.

Speed scaling: without a speed-scaling topic the backend re-times the trajectory it sent (the
rest of the path is re-published with times divided by the scale; below `MIN_SPEED_SCALE` a
hold pauses it). With `speed_scaling_topic` the cell's controller scales execution, so the
backend publishes the factor there and does not re-time (which would apply it twice).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import replace
from typing import Callable, Literal

import numpy as np

from content.cell import Robot
from robot_bridge.backend import StateCallback, StateSubscribers
from robot_bridge.commands import check_gripper_command, check_trajectory, sanitize_speed_scale
from robot_bridge.dds import msgs
from robot_bridge.dds.conventions import (
    DEFAULT_CONTROLLER,
    JOINT_STATES_TOPIC,
    QOS_PROFILE_DEFAULT,
    QOS_PROFILE_ROBOT_DESCRIPTION,
    QOS_PROFILE_SENSOR_DATA,
    ROBOT_DESCRIPTION_TOPIC,
    controller_topic,
    dds_topic_name,
)
from robot_bridge.dds.gripper import (
    GripperMotion,
    GripperOutcome,
    finger_trajectory_msg,
    forward_command_msg,
    grip_evidence,
)
from robot_bridge.dds.joint_state import JointStateRejected, check_joint_state, gripper_opening
from robot_bridge.dds.kinematics import UrdfKinematics
from robot_bridge.dds.trajectory import (
    MIN_SPEED_SCALE,
    hold_trajectory,
    remaining_trajectory,
    stop_trajectory,
    trajectory_msg,
)
from robot_bridge.errors import BackendUnavailableError, BridgeError, CommandError
from robot_bridge.payload import payload_carried
from robot_bridge.placed import PlacedObjectTracker
from robot_bridge.sim.panda import (
    ARM_JOINT_NAMES,
    FINGER_JOINT_NAMES,
    PANDA_TOOL_LINK,
    LinkCapsule,
)
from robot_bridge.types import (
    ControllerMode,
    GripperCommand,
    JointTrajectory,
    RobotCommand,
    RobotState,
    StopCategory,
)

log = logging.getLogger(__name__)

STOP_0_TIME_S = 0.01
"""time_from_start of the hold point of a category 0 stop, seconds."""
MIN_STOP_TIME_S = 0.05
"""Shortest time given to a category 1/2 stop, seconds."""
GOAL_TOLERANCE_RAD = 0.01
"""A goal is done when its path time has ended and every joint is this close to its last point."""
GOAL_SETTLE_TIMEOUT_S = 2.0
"""After its end plus this time a goal is marked done even if the robot is off its last point (logged)."""
STANDSTILL_MPS = 0.01
"""Largest capsule speed counted as standstill, m/s."""
STANDSTILL_HOLD_S = 0.03
"""A STOPPING robot is STOPPED once every sample for this long showed standstill, seconds."""
GRIPPER_MOVING_MPS = 0.002
"""Finger speed (summed over the fingers) above which the gripper counts as moving, m/s."""
_REJECT_LOG_PERIOD_S = 5.0


class DdsBackend:
    """A ROS 2 robot cell over Cyclone DDS, implementing `robot_bridge.backend.RobotBackend`.

    Controller modes (`ControllerMode`, tracked by the backend: raw DDS has no controller
    feedback): starts STOPPED (a protective stop is held until `reset()`). IDLE: no goal.
    EXECUTING: a trajectory was published and has not reached its last point. STOPPING: a
    category 1/2 stop was published, the robot still moves. STOPPED: stop held. FAULT: the joint
    states went stale (older than `state_timeout_s`); `healthy` is False until fresh states
    arrive, and the stop stays latched until `reset()`.

    Thread ownership: the reader thread `xrcell-dds` owns the `/joint_states` reader, the
    kinematics (a private PyBullet client) and the state; it publishes `RobotState`s and runs
    the watchdog. Command methods may be called from any thread: they take a lock and publish
    with the (thread-safe) DDS writers. `latest_state()` returns an immutable `RobotState`
    swapped by reference. `subscribe` callbacks run on the reader thread and must be quick.

    Args:
        robot: the cell's robot (base pose, stop data, payload, `dds.gripper_controller`);
            None: defaults.
        program: accepted for `create_backend` symmetry with `sim`; a DDS cell runs its own program.
        domain_id: DDS domain (ROS_DOMAIN_ID), 0..232.
        controller: name of the JointTrajectoryController (`/<controller>/joint_trajectory`).
        joint_names: the commanded joints; None: the Franka Panda arm joints.
        speed_scaling_topic: absolute topic for std_msgs/Float64 speed scaling, or None.
        stop_message: "hold" (one-point hold trajectory) or "empty" (empty JointTrajectory).
        state_timeout_s: joint states older than this make the backend unhealthy, seconds.
        description_timeout_s: how long `start()` waits for `/robot_description`, seconds.
        urdf: the URDF text, instead of reading `/robot_description`.
        tcp_link: URDF link whose origin is the TCP; None: child link of the last joint.
        link_radius_m: radius of skeleton capsules when the URDF is not a Panda, metres.
        dds_config: Cyclone DDS XML configuration for the domain (e.g. `node.LOOPBACK_CONFIG`).
        gripper_joint_names: the gripper's finger joints in `/joint_states` (their positions sum
            to the opening, metres); (): no gripper feedback, a payload always counts as carried
            (and `robot.dds.gripper_controller` is refused).

    Raises:
        BridgeError: a bad option, naming it.
    """

    def __init__(
        self,
        robot: Robot | None = None,
        program: object | None = None,
        *,
        domain_id: int = 0,
        controller: str = DEFAULT_CONTROLLER,
        joint_names: tuple[str, ...] | None = None,
        speed_scaling_topic: str | None = None,
        stop_message: Literal["hold", "empty"] = "hold",
        state_timeout_s: float = 0.1,
        description_timeout_s: float = 10.0,
        urdf: str | None = None,
        tcp_link: str | None = None,
        link_radius_m: float = 0.1,
        dds_config: str | None = None,
        gripper_joint_names: tuple[str, ...] = FINGER_JOINT_NAMES,
    ) -> None:
        if not (isinstance(domain_id, int) and 0 <= domain_id <= 232):
            raise BridgeError(f"DdsBackend: domain_id must be an integer in 0..232, got {domain_id!r}")
        if stop_message not in ("hold", "empty"):
            raise BridgeError(f"DdsBackend: stop_message must be 'hold' or 'empty', got {stop_message!r}")
        if not (math.isfinite(state_timeout_s) and state_timeout_s > 0):
            raise BridgeError(f"DdsBackend: state_timeout_s must be > 0, got {state_timeout_s!r}")
        if program is not None:
            log.info("DdsBackend: the program runs on the robot side; ignoring the cell's program")
        self._robot = robot if robot is not None else Robot()
        self._domain_id = domain_id
        self._trajectory_topic = controller_topic(controller)
        self._scaling_topic = speed_scaling_topic
        if speed_scaling_topic is not None:
            dds_topic_name(speed_scaling_topic)  # validates the name
        self._stop_message = stop_message
        self._state_timeout_ns = int(state_timeout_s * 1e9)
        self._description_timeout_s = description_timeout_s
        self._urdf = urdf
        self._tcp_link = tcp_link
        self._link_radius_m = link_radius_m
        self._dds_config = dds_config
        self._finger_names = tuple(gripper_joint_names)
        self._grip: tuple[int, float, bool] | None = None  # (stamp ns, opening m, moving)
        self._gripper_ctl = self._robot.dds.gripper_controller
        if self._gripper_ctl is not None:
            topic = self._gripper_ctl.topic
            dds_topic_name(topic)  # validates the name
            if topic in (self._trajectory_topic, speed_scaling_topic):
                raise BridgeError(f"DdsBackend: robot.dds.gripper_controller.topic {topic!r} is "
                                  "the arm's trajectory or speed-scaling topic")
            if not self._finger_names:
                raise BridgeError("DdsBackend: robot.dds.gripper_controller needs the finger "
                                  "joints in /joint_states (gripper_joint_names is empty)")
        self.joint_names: tuple[str, ...] = tuple(joint_names) if joint_names else ARM_JOINT_NAMES
        self.joint_lower_limits: tuple[float, ...] = (-math.inf,) * len(self.joint_names)
        self.joint_upper_limits: tuple[float, ...] = (math.inf,) * len(self.joint_names)

        self._lock = threading.Lock()
        self._state: RobotState | None = None
        self._subscribers = StateSubscribers()
        self._quit = threading.Event()
        self._thread: threading.Thread | None = None
        self._node = None
        self._kin: UrdfKinematics | None = None
        self._closed = False
        self._started = False
        # command bookkeeping (under _lock)
        self._latched = True
        self._mode = ControllerMode.STOPPED
        self._stop_deadline_ns = 0
        self._standstill_since_ns = 0
        self._scale = 1.0
        self._safety_seq = 0
        self._safety_applied_ns = 0
        self._traj: tuple[np.ndarray, np.ndarray, str] | None = None  # positions, path times, goal id
        self._s0 = 0.0
        self._t0_ns = 0
        self._end_ns = 0
        self._goal_id = ""
        self._goal_done = True
        self._goal_aborted = False
        self._gripper: GripperMotion | None = None  # the gripper goal in flight
        self._gripper_seq = 0
        # where the payload was released (`RobotState.placed_objects`), from the attach rule
        self._placed = PlacedObjectTracker()
        # evidence of an object between the fingers from the last gripper goal (None: unknown)
        self._grip_evidence: bool | None = None
        # reader-thread state
        self._healthy = False
        self._last_receipt_ns = 0
        self._start_ns = 0
        self._prev: tuple[int, np.ndarray] | None = None
        self.rejected_messages = 0
        self.last_reject_reason = ""
        self._reject_logged: dict[str, float] = {}

    # ------------------------------------------------------------ public API

    def start(self) -> None:
        """Join the DDS domain, read the robot description, start the reader thread.

        Raises:
            BackendUnavailableError: no (valid) URDF on `/robot_description` within
                `description_timeout_s`, or the URDF lacks the robot's joints.
            BridgeError: `start()` after `shutdown()`.
        """
        from cyclonedds.core import InstanceState, ReadCondition, SampleState, ViewState, WaitSet

        from robot_bridge.dds.node import RosDdsNode

        with self._lock:
            if self._closed:
                raise BridgeError("DdsBackend: start() after shutdown()")
            if self._started:
                return
            self._started = True
        node = RosDdsNode(self._domain_id, self._dds_config)
        self._node = node
        self._state_reader = node.reader(JOINT_STATES_TOPIC, msgs.JointState, QOS_PROFILE_SENSOR_DATA)
        self._traj_writer = node.writer(self._trajectory_topic, msgs.JointTrajectory, QOS_PROFILE_DEFAULT)
        self._scale_writer = (
            node.writer(self._scaling_topic, msgs.Float64, QOS_PROFILE_DEFAULT) if self._scaling_topic else None
        )
        ctl = self._gripper_ctl
        self._gripper_writer = None if ctl is None else node.writer(
            ctl.topic,
            msgs.Float64MultiArray if ctl.kind == "forward_position" else msgs.JointTrajectory,
            QOS_PROFILE_DEFAULT,
        )
        urdf = self._urdf if self._urdf is not None else self._read_description(node)
        try:
            payload = self._robot.payload
            self._kin = UrdfKinematics(
                urdf, self.joint_names, self._robot.base.position,
                math.radians(self._robot.base.yaw_deg), self._tcp_link, self._link_radius_m,
                payload_capsule=None if payload is None else LinkCapsule(
                    "payload", payload.capsule.p0, payload.capsule.p1, payload.capsule.radius_m,
                    link=PANDA_TOOL_LINK),
            )
        except BridgeError as exc:
            raise BackendUnavailableError(f"DdsBackend: {exc}") from None
        self.joint_lower_limits = self._kin.joint_lower_limits
        self.joint_upper_limits = self._kin.joint_upper_limits
        log.info("DdsBackend: domain %d, %d joints, capsules %s, TCP %s", self._domain_id,
                 len(self.joint_names), self._kin.capsule_model, self._kin.tcp_link)
        self._waitset = WaitSet(node.participant)
        self._condition = ReadCondition(self._state_reader, SampleState.Any | ViewState.Any | InstanceState.Any)
        self._waitset.attach(self._condition)
        self._start_ns = time.monotonic_ns()
        self._thread = threading.Thread(target=self._run, name="xrcell-dds", daemon=True)
        self._thread.start()

    def _read_description(self, node) -> str:  # type: ignore[no-untyped-def]
        reader = node.reader(ROBOT_DESCRIPTION_TOPIC, msgs.String, QOS_PROFILE_ROBOT_DESCRIPTION)
        deadline = time.monotonic() + self._description_timeout_s
        why = "nothing received"
        while time.monotonic() < deadline:
            try:
                samples = reader.take(N=4)
            except Exception as exc:  # an undecodable sample
                why = f"undecodable sample ({exc})"
                samples = []
            for sample in samples:
                if isinstance(sample, msgs.String):
                    if "<robot" in sample.data:
                        return sample.data
                    why = "the message is not a URDF"
            time.sleep(0.02)
        raise BackendUnavailableError(
            f"DdsBackend: no robot description on {ROBOT_DESCRIPTION_TOPIC} in domain {self._domain_id} "
            f"within {self._description_timeout_s} s: {why}"
        )

    def shutdown(self) -> None:
        """Publish a category 1 stop, stop the reader thread and leave the DDS domain."""
        with self._lock:
            if self._closed:
                return
            started = self._started
        if started and self._state is not None:
            try:
                self._publish_stop(StopCategory.STOP_1)
            except Exception:
                log.exception("DdsBackend: the stop at shutdown could not be published")
        self._quit.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        with self._lock:
            self._closed = True
            self._latched = True
        if self._kin is not None:
            self._kin.close()
        if self._node is not None:
            self._node.close()

    def latest_state(self) -> RobotState | None:
        """The newest state, or None before the first valid `/joint_states` sample."""
        return self._state

    def subscribe(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback(state)` on the reader thread for every state
        (`robot_bridge.backend.StateSubscribers`); returns an unsubscribe function."""
        return self._subscribers.subscribe(callback)

    def execute(self, command: RobotCommand) -> None:
        """Publish a trajectory (replacing the active one), or start a gripper goal.

        A `JointTrajectory` must name exactly the robot's joints (any order; published in the
        robot's order), stay within the URDF limits and, when its first point is at time 0,
        start within `robot_bridge.commands.START_TOLERANCE_RAD` of the measured position.

        A `GripperCommand` goes to `robot.dds.gripper_controller` (`robot_bridge.dds.gripper`),
        replacing a gripper goal in flight; it needs a fresh finger opening in `/joint_states`.

        Raises:
            CommandError: a gripper command without `robot.dds.gripper_controller`, with a
                position outside [0, 0.08] m or an effort outside (0, 140] N, or while the
                finger opening is unknown; a malformed trajectory; a held stop; no fresh state.
        """
        if isinstance(command, GripperCommand):
            self._execute_gripper(command)
            return
        if not isinstance(command, JointTrajectory):
            raise CommandError(
                f"DdsBackend.execute: unsupported command type {type(command).__name__}"
            )
        pos, times = self._check_trajectory(command)
        with self._lock:
            self._check_accepting(command.goal_id)
            now = time.monotonic_ns()
            self._traj = (pos, times, command.goal_id)
            self._goal_id, self._goal_done, self._goal_aborted = command.goal_id, False, False
            self._mode = ControllerMode.EXECUTING
            self._s0 = self._publish_remaining(now, start=True)

    def set_speed_scale(self, scale: float, seq: int) -> None:
        """Set the speed override in [0, 1] (NaN or out of range means 0, logged); ack with `seq`.

        Re-times the active trajectory, or publishes the factor on `speed_scaling_topic`.
        """
        value, valid = sanitize_speed_scale(scale)
        if not valid:
            log.warning("set_speed_scale(%r, seq=%d): not a number in [0, 1]; using 0 (fail-safe)", scale, seq)
        with self._lock:
            now = time.monotonic_ns()
            s = self._path_time(now)
            self._scale = value
            if self._scale_writer is not None:
                self._scale_writer.write(msgs.Float64(data=value))
            if self._traj is not None and not self._latched:
                self._s0 = self._publish_remaining(now, path_time_s=s)
            else:
                self._s0, self._t0_ns = s, now
            if self._gripper is not None:
                self._gripper.rescale(now, value)
                self._publish_gripper_plan(now)
            self._ack(seq, now)

    def protective_stop(self, category: StopCategory, seq: int) -> None:
        """Publish a stop (hold trajectory or empty trajectory) and hold it until `reset()`."""
        category = StopCategory(category)
        self._publish_stop(category)
        with self._lock:
            self._ack(seq, time.monotonic_ns())

    def reset(self) -> None:
        """Release a protective stop; an unfinished trajectory resumes from where it stopped.

        While the joint states are stale (FAULT, `healthy` False) the stop stays held (logged).

        Raises:
            CommandError: after `shutdown()`.
        """
        with self._lock:
            if self._closed:
                raise CommandError("DdsBackend.reset: the backend is shut down")
            if not self._healthy:
                log.warning("DdsBackend.reset: refused while the joint states are stale; stop stays held")
                return
            self._latched = False
            now = time.monotonic_ns()
            if self._gripper is not None:  # a stop ended it unless a stale-state fault came alone
                self._end_gripper("aborted: the protective stop was reset; not resumed", aborted=True)
            if self._traj is not None:
                self._mode = ControllerMode.EXECUTING
                self._t0_ns = now
                self._s0 = self._publish_remaining(now, path_time_s=self._s0)
            else:
                self._mode = ControllerMode.IDLE
        log.info("DdsBackend: protective stop released")

    # ------------------------------------------------------------- commands

    def _execute_gripper(self, cmd: GripperCommand) -> None:
        ctl = self._gripper_ctl
        if ctl is None:
            raise CommandError(
                "DdsBackend.execute: gripper commands need robot.dds.gripper_controller in the "
                "cell file (a forward_position or joint_trajectory controller on the finger "
                "joints; the control_msgs/GripperCommand action is out of scope over raw DDS); "
                "refused"
            )
        with self._lock:
            self._check_accepting(cmd.goal_id)
            now = time.monotonic_ns()
            grip = self._grip
            fresh = grip is not None and now - grip[0] <= self._state_timeout_ns
            opening_m = check_gripper_command(
                cmd, grip[1] if grip is not None and fresh else None,
                f"no fresh {', '.join(self._finger_names)} in {JOINT_STATES_TOPIC}",
            )
            if self._gripper is not None:
                log.info("DdsBackend: gripper goal %r replaced by %r",
                         self._gripper.goal_id, cmd.goal_id)
            self._gripper = GripperMotion(cmd.goal_id, opening_m, cmd.position_m, now, self._scale,
                                          streamed=self._gripper_ctl.kind == "forward_position")
            self._grip_evidence = None
            self._gripper_seq += 1
            self._goal_id, self._goal_done, self._goal_aborted = cmd.goal_id, False, False
            self._mode = ControllerMode.EXECUTING
            self._publish_gripper_plan(now)

    def _publish_gripper_plan(self, now_ns: int) -> None:
        """Publish the gripper goal's command at the scale in force (caller holds the lock):
        the next streamed set-point, or the trajectory to the target (a hold of the set-point
        while the scale pauses it)."""
        g, ctl, writer = self._gripper, self._gripper_ctl, self._gripper_writer
        if g is None or ctl is None or writer is None or self._latched:
            return
        if ctl.kind == "forward_position":
            if g.due_to_send(now_ns):
                sp = g.setpoint_m(now_ns)
                self._send_fingers(sp)
                g.sent(now_ns, sp)
            return
        remaining = g.remaining_s(now_ns)
        if math.isinf(remaining):  # paused: hold where the ramp is
            sp = g.setpoint_m(now_ns)
            writer.write(finger_trajectory_msg(ctl.joints, sp, MIN_STOP_TIME_S))
            g.sent(now_ns, sp)
        else:
            writer.write(finger_trajectory_msg(ctl.joints, g.target_m, remaining))
            g.sent(now_ns, g.target_m)

    def _send_fingers(self, opening_m: float, time_s: float = MIN_STOP_TIME_S) -> None:
        """Command the fingers to `opening_m` (the forward set-point, or a trajectory due at
        `time_s`); caller holds the lock."""
        ctl, writer = self._gripper_ctl, self._gripper_writer
        if ctl is None or writer is None:
            return
        if ctl.kind == "forward_position":
            writer.write(forward_command_msg(opening_m, len(ctl.joints)))
        else:
            writer.write(finger_trajectory_msg(ctl.joints, opening_m, time_s))

    def _drive_gripper(self, stamp_ns: int, opening_m: float | None, moving: bool) -> bool:
        """Judge the gripper goal from a fresh finger sample taken at `stamp_ns` and stream its
        set-point (reader thread, caller holds the lock). Returns whether a gripper goal is
        still in flight."""
        g = self._gripper
        if g is None:
            return False
        now = time.monotonic_ns()
        outcome = g.judge(min(stamp_ns, now), opening_m, moving)
        if outcome is None:
            self._publish_gripper_plan(now)
            return True
        timeout = outcome is GripperOutcome.TIMEOUT
        self._grip_evidence = grip_evidence(outcome, g.start_m, g.target_m, opening_m)
        if not timeout and g.last_sent_m != g.target_m and not self._latched:
            self._send_fingers(g.target_m)  # the forward set-point ends at the commanded opening
        at = "unknown" if opening_m is None else f"{opening_m:.4f} m"
        self._end_gripper(f"{outcome.value} at {at} (target {g.target_m:.4f} m)", warn=timeout,
                          aborted=timeout)
        return False

    def _stop_gripper(self, category: StopCategory) -> None:
        """A protective stop ends a gripper goal in flight: the fingers are held where they are
        measured (the newest opening, even stale; else the set-point) and the goal is not
        resumed by `reset()` (caller holds the lock)."""
        g = self._gripper
        if g is None:
            return
        grip = self._grip
        hold = grip[1] if grip is not None else g.setpoint_m(time.monotonic_ns())
        stop_time_s = STOP_0_TIME_S if category is StopCategory.STOP_0 else MIN_STOP_TIME_S
        self._send_fingers(hold, stop_time_s)
        self._end_gripper(f"aborted by a protective stop {category.name}; fingers held at "
                          f"{hold:.4f} m", warn=True, aborted=True)

    def _end_gripper(self, why: str, *, warn: bool = False, aborted: bool = False) -> None:
        """End the gripper goal in flight (`aborted`: short of its target: a stop, a timeout)."""
        g = self._gripper
        if g is None:
            return
        self._gripper = None
        self._finish_goal(g.goal_id, aborted=aborted)
        log.log(logging.WARNING if warn else logging.INFO, "DdsBackend: gripper goal %r %s",
                g.goal_id, why)

    def _check_accepting(self, goal_id: str) -> None:
        if self._closed or not self._started:
            raise CommandError("DdsBackend.execute: the backend is not running")
        if not self._healthy:
            raise CommandError(
                f"DdsBackend.execute: refused, no fresh robot state (goal {goal_id!r})"
            )
        if self._latched:
            raise CommandError(
                f"DdsBackend.execute: refused, a protective stop is held (goal {goal_id!r}); call reset() first"
            )

    def _check_trajectory(self, traj: JointTrajectory) -> tuple[np.ndarray, np.ndarray]:
        state = self._state
        return check_trajectory(traj, self.joint_names, self.joint_lower_limits,
                                self.joint_upper_limits, None if state is None else state.position)

    def _path_time(self, now_ns: int) -> float:
        """Seconds of path time reached at `now_ns` (caller holds the lock)."""
        if self._traj is None or self._latched or self._scale < MIN_SPEED_SCALE:
            return max(self._s0, 0.0)
        return max(self._s0, 0.0) + self._scale * (now_ns - self._t0_ns) / 1e9

    def _publish_remaining(self, now_ns: int, *, path_time_s: float = 0.0, start: bool = False) -> float:
        """Publish the rest of the active trajectory at the current scale (caller holds the lock).

        Returns:
            The path time the published trajectory starts from (the new `_s0`).
        """
        if self._traj is None:
            return max(path_time_s, 0.0)
        pos, times, _ = self._traj
        s = -1.0 if start else path_time_s
        self._t0_ns = now_ns
        if self._scale_writer is not None:
            scale = 1.0  # the controller scales
        elif self._scale < MIN_SPEED_SCALE:
            state = self._state
            if state is not None:
                self._traj_writer.write(hold_trajectory(self.joint_names, state.position, state.velocity, MIN_STOP_TIME_S))
            return max(s, 0.0)
        else:
            scale = self._scale
        rest_pos, rest_t = remaining_trajectory(pos, times, s, scale)
        if rest_pos.shape[0]:
            if start:
                rest_t = times / scale
            self._traj_writer.write(trajectory_msg(self.joint_names, rest_pos, rest_t))
            self._end_ns = now_ns + int(float(rest_t[-1]) * 1e9)
        return max(s, 0.0)

    def _publish_stop(self, category: StopCategory) -> None:
        state = self._state
        with self._lock:
            now = time.monotonic_ns()
            self._s0 = self._path_time(now)
            self._t0_ns = now
            self._latched = True
            if self._stop_message == "empty" or state is None:
                msg = stop_trajectory(self.joint_names)
                stop_time = STOP_0_TIME_S
            else:
                if category is StopCategory.STOP_0:
                    stop_time = STOP_0_TIME_S
                else:
                    stop_time = max(state.max_speed_mps / self._robot.stop.deceleration_mps2, MIN_STOP_TIME_S)
                msg = hold_trajectory(self.joint_names, state.position, state.velocity, stop_time)
            self._traj_writer.write(msg)
            self._stop_gripper(category)
            if self._mode is ControllerMode.FAULT:
                pass  # stays FAULT until reset()
            elif category is StopCategory.STOP_0:
                self._mode = ControllerMode.STOPPED
            else:
                self._mode = ControllerMode.STOPPING
                self._stop_deadline_ns = now + int((stop_time + 0.3) * 1e9)
                self._standstill_since_ns = now
        log.info("DdsBackend: protective stop %s published (%s)", category.name, self._stop_message)

    def _ack(self, seq: int, now_ns: int) -> None:
        self._safety_seq = int(seq)
        self._safety_applied_ns = now_ns

    # ----------------------------------------------------------- reader thread

    def _run(self) -> None:
        period_ns = max(1_000_000, min(self._state_timeout_ns // 4, 20_000_000))
        while not self._quit.is_set():
            try:
                self._waitset.wait(period_ns)
                self._drain()
                self._watchdog()
            except Exception:  # the loop never dies: an unexpected error is logged and counted
                log.exception("DdsBackend reader loop error")
                self.rejected_messages += 1

    def _drain(self) -> None:
        while True:
            try:
                samples = self._state_reader.take(N=64)
            except Exception as exc:  # undecodable CDR: the batch is lost, the reader lives on
                self._reject(f"JointState: undecodable sample ({exc})")
                return
            if not samples:
                return
            receipt_ns, receipt_unix_ns = time.monotonic_ns(), time.time_ns()
            for sample in samples:
                if isinstance(sample, msgs.JointState):
                    self._on_joint_state(sample, receipt_ns, receipt_unix_ns)

    def _reject(self, reason: str) -> None:
        self.rejected_messages += 1
        self.last_reject_reason = reason
        now = time.monotonic()
        if now - self._reject_logged.get(reason, -math.inf) >= _REJECT_LOG_PERIOD_S:
            self._reject_logged[reason] = now
            log.warning("DdsBackend: rejected %s (%d rejected so far)", reason, self.rejected_messages)

    def _on_joint_state(self, msg: msgs.JointState, receipt_ns: int, receipt_unix_ns: int) -> None:
        kin = self._kin
        if kin is None:
            return
        try:
            sample = check_joint_state(msg, self.joint_names)
        except JointStateRejected as exc:
            self._reject(str(exc))
            return
        # sample time on the monotonic clock: receipt minus the transport age when the
        # driver's stamp is plausible (clocks in sync), else the receipt time
        age_ns = receipt_unix_ns - sample.stamp_unix_ns
        stamp_ns = receipt_ns - age_ns if sample.stamp_unix_ns and 0 <= age_ns <= 1_000_000_000 else receipt_ns
        qd = sample.velocity
        if qd is None:
            if self._prev is not None and stamp_ns > self._prev[0]:
                qd = (sample.position - self._prev[1]) / ((stamp_ns - self._prev[0]) / 1e9)
            else:
                qd = np.zeros_like(sample.position)
        self._prev = (stamp_ns, sample.position)
        try:
            tcp, tcp_v, segments, speeds = kin.compute(sample.position, qd)
        except Exception as exc:
            self._reject(f"JointState: kinematics failed ({exc})")
            return
        self._last_receipt_ns = receipt_ns
        if not self._healthy:
            log.info("DdsBackend: joint states %s", "resumed" if self._state is not None else "arriving")
            self._healthy = True
        opening, moving = self._grip_state(msg, stamp_ns)
        max_speed = float(max(speeds.max() if speeds.size else 0.0, np.linalg.norm(tcp_v)))
        with self._lock:
            in_flight = self._drive_gripper(stamp_ns, opening, moving)
            carried = payload_carried(self._robot.payload, opening,
                                      gripper_moving=moving or in_flight)
            names, radii = kin.link_names, kin.link_radii_m
            placed = None
            if self._robot.payload is not None:   # the payload's capsule is the last
                placed = self._placed.observe(stamp_ns, carried, segments[-1], float(radii[-1]),
                                              gripper_moving=moving or in_flight,
                                              object_evidence=self._grip_evidence)
                if not carried:   # the grasp it was about has ended: a later one needs its own
                    self._grip_evidence = None
            if self._robot.payload is not None and not carried:
                names, radii, segments, speeds = names[:-1], radii[:-1], segments[:-1], speeds[:-1]
            self._update_mode(receipt_ns, sample.position, max_speed)
            arrays = (sample.position, qd, tcp, tcp_v, segments, speeds)
            for a in arrays:
                a.setflags(write=False)
            state = RobotState(
                stamp_ns=stamp_ns,
                joint_names=self.joint_names,
                position=sample.position,
                velocity=qd,
                tcp_position=tcp,
                tcp_velocity_mps=tcp_v,
                link_names=names,
                link_segments=segments,
                link_radii_m=radii,
                link_speeds_mps=speeds,
                speed_scale=0.0 if self._latched else self._scale,
                mode=self._mode,
                goal_id=self._goal_id,
                goal_done=self._goal_done,
                goal_aborted=self._goal_aborted,
                safety_seq=self._safety_seq,
                safety_applied_ns=self._safety_applied_ns,
                healthy=True,
                extras={
                    "header_stamp_unix_ns": sample.stamp_unix_ns,
                    "receipt_unix_ns": receipt_unix_ns,
                    "rejected_messages": self.rejected_messages,
                    "last_reject_reason": self.last_reject_reason,
                },
                gripper_opening_m=opening,
                payload_carried=carried,
                gripper_seq=self._gripper_seq,
                placed_objects=placed,
            )
            self._state = state
        self._subscribers.notify(state)

    def _grip_state(self, msg: msgs.JointState, stamp_ns: int) -> tuple[float | None, bool]:
        """(finger opening m or None when unknown or stale, moving) from this message's finger
        joints, or from the newest earlier one within `state_timeout_s` (reader thread only)."""
        found = gripper_opening(msg, self._finger_names)
        if found is not None:
            opening, speed = found
            if speed is None:  # no velocities: the change since the previous finger sample
                prev = self._grip
                speed = 0.0 if prev is None or stamp_ns <= prev[0] else \
                    abs(opening - prev[1]) / ((stamp_ns - prev[0]) / 1e9)
            self._grip = (stamp_ns, opening, speed > GRIPPER_MOVING_MPS)
        grip = self._grip
        if grip is None or stamp_ns - grip[0] > self._state_timeout_ns:
            return None, False
        return grip[1], grip[2]

    def _update_mode(self, now_ns: int, q: np.ndarray, max_speed_mps: float) -> None:
        """Goal completion and stop progress from a fresh sample (caller holds the lock)."""
        if self._mode is ControllerMode.STOPPING:
            if max_speed_mps >= STANDSTILL_MPS:
                self._standstill_since_ns = now_ns
            if now_ns - self._standstill_since_ns >= STANDSTILL_HOLD_S * 1e9 or now_ns >= self._stop_deadline_ns:
                self._mode = ControllerMode.STOPPED
        if self._traj is not None and not self._latched:
            pos, times, goal_id = self._traj
            if self._path_time(now_ns) >= times[-1]:
                err = float(np.abs(q - pos[-1]).max())
                late = now_ns - self._end_ns > GOAL_SETTLE_TIMEOUT_S * 1e9
                if err < GOAL_TOLERANCE_RAD or late:
                    if err >= GOAL_TOLERANCE_RAD:
                        log.warning("DdsBackend: trajectory %r ended %.4f rad off its last point",
                                    goal_id, err)
                    self._finish_goal(goal_id)
                    self._traj = None
        if self._mode is ControllerMode.EXECUTING and self._traj is None and self._gripper is None:
            self._mode = ControllerMode.IDLE

    def _finish_goal(self, goal_id: str, *, aborted: bool = False) -> None:
        """Mark `goal_id` done (`aborted`: without reaching its target) if it is the goal the
        state reports (caller holds the lock)."""
        if goal_id == self._goal_id:
            self._goal_done, self._goal_aborted = True, aborted

    def _watchdog(self) -> None:
        now = time.monotonic_ns()
        since = self._last_receipt_ns
        if not self._healthy or now - since <= self._state_timeout_ns:
            return
        with self._lock:
            self._healthy = False
            self._latched = True
            self._mode = ControllerMode.FAULT
            last = self._state
            if last is not None:
                # the stamp stays that of the newest data: its age is the truth
                self._state = replace(last, healthy=False, mode=ControllerMode.FAULT, speed_scale=0.0)
            state = self._state
        log.error("DdsBackend: no valid %s for %.0f ms; unhealthy, stop latched",
                  JOINT_STATES_TOPIC, (now - since) / 1e6)
        if state is not None:
            self._subscribers.notify(state)
