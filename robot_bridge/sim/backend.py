"""`PyBulletPandaBackend`: a Franka Emika Panda cell simulated with PyBullet (DIRECT mode).

The `cell` frame is PyBullet's world frame (REP 103, z up). The physics runs at 240 Hz in the
backend's own thread, paced to real time; with `realtime=False` tests advance it with `step()`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pybullet

from content.cell import PickAndPlace, Robot
from robot_bridge.backend import StateCallback, StateSubscribers
from robot_bridge.commands import (
    FRANKA_HAND_MAX_OPENING_M,
    check_gripper_command,
    check_trajectory,
    sanitize_speed_scale,
)
from robot_bridge.errors import BridgeError, CommandError
from robot_bridge.payload import payload_carried
from robot_bridge.placed import PlacedObjectTracker
from robot_bridge.sim.control import (
    SCALE_RAISE_RATE_PER_S,
    lowering_rate_per_s,
    sample_trajectory,
    step_speed_scale,
)
from robot_bridge.sim.panda import (
    ARM_JOINT_NAMES,
    FINGER_JOINT_NAMES,
    GRIPPER_SPEED_MPS,
    PANDA_HOME_POSITION,
    panda_urdf_path,
    quaternion_matrix,
    robot_capsules,
    yaw_quaternion,
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

PHYSICS_RATE_HZ = 240.0
"""Physics and control rate, Hz (PyBullet's default time step)."""

_POSITION_GAIN = 0.3
_VELOCITY_GAIN = 1.0
_SETTLE_TOLERANCE_RAD = 2e-3
_SETTLE_TIMEOUT_S = 0.5
_STANDSTILL_MPS = 0.01
_STANDSTILL_TIMEOUT_S = 0.3
_GRIPPER_TOLERANCE_M = 1e-3
_GRIPPER_STALL_S = 0.15
_WORKPIECE_MASS_KG = 0.2
_WORKPIECE_CLEARANCE_M = 0.3


@dataclass(frozen=True)
class _Trajectory:
    positions: np.ndarray  # (M, 7) radians, ARM_JOINT_NAMES order
    times_s: np.ndarray  # (M,) seconds, first 0
    goal_id: str


class PyBulletPandaBackend:
    """A simulated Panda cell implementing `robot_bridge.backend.RobotBackend`.

    Controller modes (`ControllerMode`): the backend starts STOPPED (a protective stop is held;
    `execute` is refused until `reset()`). IDLE: no active goal, commands accepted. EXECUTING: a
    trajectory or gripper goal is running at the applied speed scale. STOPPING: category 1/2 stop,
    the speed scale falls at the deceleration limit. STOPPED: standstill held until `reset()`.
    FAULT: PyBullet failed (for good: nothing moves any more), or the stepping thread published
    nothing for `state_timeout_s` (the watchdog: `latest_state()` then says `healthy=False` and
    commands are refused; once states flow again they are healthy but the FAULT stays latched
    until `reset()`).

    Thread ownership: the stepping thread (`xrcell-sim`, or the caller of `step()` when
    `realtime=False`) owns the PyBullet client and every controller variable. All public methods
    are thread-safe: commands are queued under a lock and applied, in order, at the next control
    step; `latest_state()` returns an immutable `RobotState` swapped by reference. `subscribe`
    callbacks run on the stepping thread and must return quickly.

    Simulation: `franka_panda/panda.urdf` from pybullet_data with a fixed base at `robot.base`,
    a plane at z = 0, gravity, and (with a program) a cube of `box_size_m` standing on
    `program.pick` (the centre of its bottom face; a static pedestal fills any gap to the floor).
    Arm joints are driven by POSITION_CONTROL motors with the URDF effort limits and a velocity
    feed-forward; the speed override re-times the trajectory (its path time advances at
    `speed_scale * dt`) and never changes the path.

    Workpiece: it is grasped by friction only (finger and cube lateral friction 1.0, the finger
    motors press with `max_effort_n`); no constraint is created. To let a program loop, the cube
    is put back onto `program.pick` when a new trajectory starts while the cube lies elsewhere,
    touches no part of the robot, and the TCP is at least 0.3 m from both the cube and the pick
    position (in the planned program: when the next cycle starts from the home pose).

    Carried part (`robot.payload`): every state reports the finger opening and the attach rule
    (`robot_bridge.payload.payload_carried`): the part is carried while a gripper goal is under
    way or the opening is within the payload's grasp widths; its capsule is then the last link
    capsule, and left out while the gripper is empty. `gripper_seq` counts gripper commands
    taken up by the control step. Where the payload was released is reported as
    `placed_objects` (`robot_bridge.placed.PlacedObjectTracker`; None without a payload); a
    grasp counts as holding a part only with the physics' evidence of one: both fingers in
    contact with the same movable body from opposite sides (`pybullet.getContactPoints`; the
    floor, a pedestal or a table, static bodies, are no part).

    Gripper and stops (as the `dds` backend): a protective stop of any category (and a latched
    FAULT) ends a gripper goal in flight and holds the fingers at their measured opening, so a
    closing gripper squeezes no further; a finished grip is left as it is, so a held part is not
    dropped. `reset()` does not resume the gripper goal (a new command must pass the gate); an
    unfinished trajectory does resume.

    Args:
        robot: the cell's robot (base pose, speed limit, stop data, state rate).
        program: the pick-and-place program whose workpiece is simulated, or None.
        realtime: True: `start()` runs a thread paced to the wall clock. False: no thread,
            `step(n)` advances the simulation deterministically.
        clock_ns: the clock of the state stamps (`RobotState.stamp_ns`, `safety_applied_ns`);
            a scenario run with `realtime=False` passes its simulated monotonic clock.
        safeguard_stop: the robot's safeguard-stop input, read every control step (e.g.
            `safety.output.SimSafetyOutput.stop_required`): while it returns True the speed
            override falls to 0 at the stop data's deceleration and holds there, the way a
            controller's wired category 2 safeguard input acts, whatever the commands say; it
            resumes by itself when the input returns False. None: no input wired.
        state_timeout_s: the watchdog bound with `realtime=True`, seconds: a newest state older
            than this (the stepping thread stalled) is reported unhealthy by `latest_state()` and
            latches a FAULT. The cell's monitor has its own, usually tighter, `robot_timeout_s`.
    """

    joint_names: tuple[str, ...] = ARM_JOINT_NAMES

    def __init__(self, robot: Robot, program: PickAndPlace | None = None, *, realtime: bool = True,
                 clock_ns: Callable[[], int] = time.monotonic_ns,
                 safeguard_stop: Callable[[], bool] | None = None,
                 state_timeout_s: float = 0.5) -> None:
        if not (math.isfinite(state_timeout_s) and state_timeout_s > 0):
            raise BridgeError(
                f"PyBulletPandaBackend: state_timeout_s must be > 0, got {state_timeout_s!r}"
            )
        self._state_timeout_ns = int(state_timeout_s * 1e9)
        self._stale = False
        self._robot = robot
        self._safeguard_stop = safeguard_stop
        self._clock_ns = clock_ns
        self._program = program
        self._realtime = realtime
        self._dt = 1.0 / PHYSICS_RATE_HZ
        self._publish_period_s = 1.0 / robot.state_rate_hz
        self._max_tcp_speed = robot.max_tcp_speed_mps
        self._decel = robot.stop.deceleration_mps2

        self._lock = threading.Lock()
        self._inbox: list[tuple] = []
        self._stop_latched = True
        self._closed = False
        self._state: RobotState | None = None
        self._subscribers = StateSubscribers()
        self._thread: threading.Thread | None = None
        self._quit = threading.Event()
        self._cpu_ns = 0
        self._resync_skipped_s = 0.0  # real time the realtime thread gave up catching up with

        p = pybullet
        self._cid = p.connect(p.DIRECT)
        try:
            self._build_world()
        except Exception:
            p.disconnect(self._cid)
            raise

        # controller variables, owned by the stepping thread
        self._mode = ControllerMode.STOPPED
        self._stop_category: StopCategory | None = StopCategory.STOP_2
        self._target_scale = 1.0
        self._applied_scale = 0.0
        self._v_ref = self._max_tcp_speed
        self._traj: _Trajectory | None = None
        self._s = 0.0
        self._settle_s = 0.0
        self._hold_q = np.array(PANDA_HOME_POSITION)
        self._goal_id = ""
        self._goal_done = True
        self._goal_aborted = False
        self._gripper_target = FRANKA_HAND_MAX_OPENING_M / 2
        self._gripper_cmd = FRANKA_HAND_MAX_OPENING_M / 2
        self._gripper_effort = 40.0
        self._gripper_goal: str | None = None
        self._gripper_stall_s = 0.0
        self._gripper_seq = 0
        self._standstill_s = 0.0
        self._safety_seq = 0
        self._safety_applied_ns = 0
        self._sim_time_s = 0.0
        self._next_publish_s = 0.0
        self._healthy = True
        self._last_q = np.array(PANDA_HOME_POSITION)
        self._last_speed = 0.0
        self._braking = False

    # ------------------------------------------------------------------ world

    def _build_world(self) -> None:
        p, cid = pybullet, self._cid
        import pybullet_data

        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        p.setTimeStep(self._dt, physicsClientId=cid)
        self._plane = p.loadURDF(str(Path(pybullet_data.getDataPath()) / "plane.urdf"), physicsClientId=cid)
        base = self._robot.base
        self._base_pos = np.array(base.position, dtype=np.float64)
        self._base_quat = yaw_quaternion(math.radians(base.yaw_deg))
        self._base_rot = quaternion_matrix(self._base_quat)
        self._body = p.loadURDF(
            str(panda_urdf_path()),
            basePosition=self._base_pos.tolist(),
            baseOrientation=self._base_quat,
            useFixedBase=True,
            flags=p.URDF_USE_SELF_COLLISION_EXCLUDE_PARENT,
            physicsClientId=cid,
        )
        names = {}
        lower, upper, effort = [], [], []
        for j in range(p.getNumJoints(self._body, physicsClientId=cid)):
            info = p.getJointInfo(self._body, j, physicsClientId=cid)
            names[info[1].decode()] = j
            names[info[12].decode()] = j
        self._arm = [names[n] for n in ARM_JOINT_NAMES]
        self._fingers = [names[n] for n in FINGER_JOINT_NAMES]
        self._tcp_link = names["panda_grasptarget"]
        for j in self._arm:
            info = p.getJointInfo(self._body, j, physicsClientId=cid)
            lower.append(float(info[8]))
            upper.append(float(info[9]))
            effort.append(float(info[10]))
        self.joint_lower_limits: tuple[float, ...] = tuple(lower)
        self.joint_upper_limits: tuple[float, ...] = tuple(upper)
        self._efforts = effort
        capsules = robot_capsules(self._robot.payload)
        self._capsule_links = [names[c.urdf_link] if c.urdf_link != "panda_link0" else -1 for c in capsules]
        self._cap_a = np.array([c.a for c in capsules])
        self._cap_b = np.array([c.b for c in capsules])
        self._cap_radii = np.array([c.radius_m for c in capsules])
        self._cap_radii.setflags(write=False)
        self._cap_names = tuple(c.name for c in capsules)
        # the carried part's capsule is the last one; while the gripper is empty it is left out
        self._payload_capsule = self._robot.payload is not None
        self._cap_radii_empty = self._cap_radii[:-1] if self._payload_capsule else self._cap_radii
        self._cap_names_empty = self._cap_names[:-1] if self._payload_capsule else self._cap_names
        # where the payload was released (`RobotState.placed_objects`), from the attach rule
        self._placed = PlacedObjectTracker()
        self._masses: dict[tuple[int, int], float] = {}  # (body, link) -> kg, `_movable`
        self._state_links = sorted({i for i in self._capsule_links if i >= 0} | {self._tcp_link})
        for j, q in zip(self._arm, PANDA_HOME_POSITION):
            p.resetJointState(self._body, j, q, physicsClientId=cid)
        for j in self._fingers:
            p.resetJointState(self._body, j, FRANKA_HAND_MAX_OPENING_M / 2, physicsClientId=cid)
            p.changeDynamics(self._body, j, lateralFriction=1.0, physicsClientId=cid)
        # the Franka Hand couples its fingers mechanically; the URDF's <mimic> is ignored by
        # PyBullet, so a gear constraint keeps the fingers symmetric (else a part squeezed by
        # two independent force-limited motors slides freely sideways)
        gear = p.createConstraint(
            self._body, self._fingers[0], self._body, self._fingers[1], p.JOINT_GEAR,
            [1, 0, 0], [0, 0, 0], [0, 0, 0], physicsClientId=cid,
        )
        p.changeConstraint(gear, gearRatio=-1, erp=0.1, maxForce=200, physicsClientId=cid)
        # link0 is fixed: its capsule is computed once
        b0a = self._base_pos + self._base_rot @ self._cap_a[0]
        b0b = self._base_pos + self._base_rot @ self._cap_b[0]
        self._link0_segment = np.stack([b0a, b0b])

        self._box: int | None = None
        if self._program is not None:
            size = self._program.box_size_m
            for spot in (self._program.pick, self._program.place):
                if spot[2] > 1e-3:  # a pedestal from the floor up to the spot
                    half = [size, size, spot[2] / 2]
                    shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=cid)
                    p.createMultiBody(0, shape, basePosition=[spot[0], spot[1], spot[2] / 2], physicsClientId=cid)
            shape = p.createCollisionShape(p.GEOM_BOX, halfExtents=[size / 2] * 3, physicsClientId=cid)
            self._box_home = np.array(self._program.pick) + [0.0, 0.0, size / 2]
            self._box = p.createMultiBody(
                _WORKPIECE_MASS_KG, shape, basePosition=self._box_home.tolist(), physicsClientId=cid
            )
            p.changeDynamics(self._box, -1, lateralFriction=1.0, spinningFriction=0.01, physicsClientId=cid)

    # ------------------------------------------------------------ public API

    def start(self) -> None:
        """Publish the first state and, with `realtime=True`, start the stepping thread.

        The backend is in a protective stop (STOPPED) until `reset()`.
        """
        with self._lock:
            if self._closed:
                raise BridgeError("PyBulletPandaBackend: start() after shutdown()")
            if self._state is not None:
                return
        self._publish()
        if self._realtime:
            self._thread = threading.Thread(target=self._run, name="xrcell-sim", daemon=True)
            self._thread.start()

    def step(self, n: int = 1) -> RobotState:
        """Advance the simulation by `n` physics steps (1/240 s each) without a thread.

        Returns:
            The newest state.

        Raises:
            BridgeError: the backend runs in real time (`realtime=True`) or is shut down.
        """
        if self._realtime:
            raise BridgeError("PyBulletPandaBackend.step() is only available with realtime=False")
        if self._closed:
            raise BridgeError("PyBulletPandaBackend: step() after shutdown()")
        if self._state is None:
            self._publish()
        for _ in range(n):
            self._step_once()
        state = self._state
        if state is None:  # pragma: no cover - _publish always sets it
            raise BridgeError("no state")
        return state

    def shutdown(self) -> None:
        """Bring the robot to a category 1 stop, stop the thread (joined within 1 s), disconnect.

        The last published state stays available and shows the protective stop.
        """
        with self._lock:
            if self._closed:
                return
            self._stop_latched = True
            self._inbox.append(("stop", StopCategory.STOP_1, None))
        if self._thread is not None:
            deadline = time.monotonic() + 0.6
            while time.monotonic() < deadline and not self._is_standstill_published():
                time.sleep(0.01)
            self._quit.set()
            self._thread.join(timeout=0.35)
            if self._thread.is_alive():
                log.error("sim thread did not end within 1 s")
        elif self._state is not None and self._healthy:
            for _ in range(int(0.6 * PHYSICS_RATE_HZ)):
                self._step_once()
                if self._mode is ControllerMode.STOPPED:
                    break
        with self._lock:
            self._closed = True
        if self._thread is None or not self._thread.is_alive():
            pybullet.disconnect(self._cid)

    def latest_state(self) -> RobotState | None:
        """The newest state sample, or None before `start()` / the first `step()`.

        With `realtime=True` this also runs the watchdog: a newest state older than
        `state_timeout_s` comes back with `healthy=False`, mode FAULT and speed scale 0 (its
        stamp stays that of the newest data), and the FAULT is latched until `reset()`.
        """
        state = self._state
        if state is None or not self._watchdog():
            return state
        return replace(state, healthy=False, mode=ControllerMode.FAULT, speed_scale=0.0)

    def _watchdog(self) -> bool:
        """True while the newest state is stale (realtime only); latches a FAULT when it turns."""
        state = self._state
        if not self._realtime or self._thread is None or state is None or self._closed:
            return False
        stale = self._clock_ns() - state.stamp_ns > self._state_timeout_ns
        with self._lock:
            if stale and not self._stale:
                log.error("PyBulletPandaBackend: no state for %.0f ms; unhealthy, FAULT latched",
                          (self._clock_ns() - state.stamp_ns) / 1e6)
                self._stop_latched = True
                self._inbox.append(("fault",))
            self._stale = stale
        return stale

    def subscribe(self, callback: StateCallback) -> Callable[[], None]:
        """Call `callback(state)` on the stepping thread for every published state
        (`robot_bridge.backend.StateSubscribers`).

        Returns:
            A function that removes the subscription.
        """
        return self._subscribers.subscribe(callback)

    def execute(self, command: RobotCommand) -> None:
        """Start a trajectory (replacing the active one) or a gripper command.

        A `JointTrajectory` must name exactly the 7 arm joints (any order), stay within the joint
        position limits, and, when its first point is at time 0, start within 0.1 rad of the
        current position. If its first point is later than 0, the motion starts from the current
        commanded position (trajectory_msgs semantics).

        Raises:
            CommandError: a protective stop is held, the backend is shut down, or the command is
                malformed for the Panda (the message says which).
        """
        self._watchdog()
        self._check_accepting(getattr(command, "goal_id", ""))
        if isinstance(command, JointTrajectory):
            item = self._check_trajectory(command)
        elif isinstance(command, GripperCommand):
            item = self._check_gripper(command)
        else:
            raise CommandError(f"PyBulletPandaBackend.execute: unsupported command type {type(command).__name__}")
        with self._lock:
            self._check_accepting(command.goal_id)
            self._inbox.append(item)

    def _check_accepting(self, goal_id: str) -> None:
        if self._closed:
            raise CommandError("PyBulletPandaBackend.execute: the backend is shut down")
        if not self._healthy:
            raise CommandError(
                f"PyBulletPandaBackend.execute: refused, the simulation failed (goal {goal_id!r})"
            )
        if self._stale:
            raise CommandError(
                f"PyBulletPandaBackend.execute: refused, no fresh robot state (goal {goal_id!r})"
            )
        if self._stop_latched:
            raise CommandError(
                f"PyBulletPandaBackend.execute: refused, a protective stop is held "
                f"(goal {goal_id!r}); call reset() first"
            )

    def set_speed_scale(self, scale: float, seq: int) -> None:
        """Set the speed override target in [0, 1]; NaN or out-of-range values mean 0 (logged).

        The applied scale moves to the target from the next control step on, falling at
        `lowering_rate_per_s` and rising at 1.0/s; `seq` is then echoed as `safety_seq`.
        """
        value, valid = sanitize_speed_scale(scale)
        if not valid:
            log.warning("set_speed_scale(%r, seq=%d): not a number in [0, 1]; using 0 (fail-safe)", scale, seq)
        with self._lock:
            self._inbox.append(("scale", value, int(seq)))

    def protective_stop(self, category: StopCategory, seq: int) -> None:
        """Stop per IEC 60204-1 `category` and hold until `reset()`.

        STOP_0: speed scale 0 at once, the current pose is held (the simulation's brakes).
        STOP_1 / STOP_2: the speed scale falls to 0 at the deceleration limit (mode STOPPING),
        then standstill is held (STOPPED). In simulation STOP_1 and STOP_2 behave alike.
        Every category ends a gripper goal in flight, the fingers held at their measured opening.
        """
        category = StopCategory(category)
        with self._lock:
            self._stop_latched = True
            self._inbox.append(("stop", category, int(seq)))

    def reset(self) -> None:
        """Release a protective stop (or a FAULT latched by the watchdog); an unfinished
        trajectory resumes, ramping up to the current target scale (a gripper goal the stop ended
        does not). While the state is stale the stop stays held (logged)."""
        stale = self._watchdog()
        with self._lock:
            if self._closed:
                raise CommandError("PyBulletPandaBackend.reset: the backend is shut down")
            if stale:
                log.warning("PyBulletPandaBackend.reset: refused while the state is stale; "
                            "stop stays held")
                return
            self._stop_latched = False
            self._inbox.append(("reset",))

    # ----------------------------------------------------------- validation

    def _check_trajectory(self, traj: JointTrajectory) -> tuple:
        state = self._state
        pos, times = check_trajectory(traj, ARM_JOINT_NAMES, self.joint_lower_limits,
                                      self.joint_upper_limits,
                                      None if state is None else state.position)
        return ("traj", pos, times, traj.goal_id)

    def _check_gripper(self, cmd: GripperCommand) -> tuple:
        state = self._state
        check_gripper_command(cmd, None if state is None else state.gripper_opening_m,
                              "no robot state yet")
        # each finger motor pushes with max_effort_n: that is the force squeezing the part
        return ("gripper", cmd.position_m / 2, cmd.max_effort_n, cmd.goal_id)

    # --------------------------------------------------------- control loop

    def _is_standstill_published(self) -> bool:
        state = self._state
        return state is not None and state.mode in (ControllerMode.STOPPED, ControllerMode.FAULT)

    def _run(self) -> None:
        period = self._dt
        next_t = time.monotonic()
        while not self._quit.is_set():
            c0 = time.thread_time_ns()
            ok = self._step_once()
            self._cpu_ns += time.thread_time_ns() - c0
            if not ok:
                break
            next_t += period
            delay = next_t - time.monotonic()
            if delay > 0:
                self._quit.wait(delay)
            elif delay < -0.1:
                log.warning("sim thread %.0f ms behind real time; resynchronising", -delay * 1e3)
                self._resync_skipped_s += -delay
                next_t = time.monotonic()

    def _set_mode(self, mode: ControllerMode) -> None:
        if mode is not self._mode:
            log.info("controller mode %s -> %s", self._mode.value, mode.value)
            self._mode = mode

    def _step_once(self) -> bool:
        """One control + physics step. Returns False after a fault (the loop then ends)."""
        if not self._healthy:
            return False
        try:
            self._apply_commands()
            self._control()
            pybullet.stepSimulation(physicsClientId=self._cid)
            self._sim_time_s += self._dt
            if self._sim_time_s + 1e-9 >= self._next_publish_s:
                self._next_publish_s += self._publish_period_s
                if self._next_publish_s < self._sim_time_s:
                    self._next_publish_s = self._sim_time_s + self._publish_period_s
                self._publish()
            return True
        except Exception:  # the loop never dies of an exception: it becomes a FAULT
            log.exception("simulation step failed; backend FAULT")
            self._healthy = False
            self._set_mode(ControllerMode.FAULT)
            last = self._state
            if last is not None:
                self._state = replace(last, stamp_ns=self._clock_ns(), healthy=False, mode=ControllerMode.FAULT)
            return False

    def _apply_commands(self) -> None:
        with self._lock:
            items, self._inbox = self._inbox, []
        for item in items:
            kind = item[0]
            if kind == "scale":
                _, value, seq = item
                self._target_scale = value
                self._ack(seq)
            elif kind == "stop":
                _, category, seq = item
                self._apply_stop(category)
                self._ack(seq)
            elif kind == "reset":
                if self._stop_category is not None:
                    log.info("protective stop %s released", self._stop_category.name)
                self._stop_category = None
                self._set_mode(ControllerMode.EXECUTING if self._busy() else ControllerMode.IDLE)
            elif kind == "fault":
                self._apply_stop(StopCategory.STOP_0)
                self._set_mode(ControllerMode.FAULT)
            elif kind == "traj":
                self._start_trajectory(item[1], item[2], item[3])
            elif kind == "gripper":
                _, target, effort, goal_id = item
                self._gripper_target, self._gripper_effort = target, effort
                self._gripper_cmd = self._finger_position()  # ramp from where the fingers are
                self._gripper_goal, self._gripper_stall_s = goal_id, 0.0
                self._gripper_seq += 1
                self._goal_id, self._goal_done, self._goal_aborted = goal_id, False, False
                if self._stop_category is None:
                    self._set_mode(ControllerMode.EXECUTING)

    def _ack(self, seq: int | None) -> None:
        if seq is not None:
            self._safety_seq = seq
            self._safety_applied_ns = self._clock_ns()

    def _apply_stop(self, category: StopCategory) -> None:
        previous = self._stop_category
        faulted = self._mode is ControllerMode.FAULT  # a FAULT stays the mode until reset()
        self._stop_gripper(category)
        if category is StopCategory.STOP_0:
            self._stop_category = StopCategory.STOP_0
            self._applied_scale = 0.0
            self._braking = True
            if not faulted:
                self._set_mode(ControllerMode.STOPPED)
        elif previous is None:
            self._stop_category = category
            self._standstill_s = 0.0
            if not faulted:
                self._set_mode(ControllerMode.STOPPING)
        log.info("protective stop %s requested (active: %s)", category.name, self._stop_category.name)

    def _stop_gripper(self, category: StopCategory) -> None:
        """A protective stop ends a gripper goal in flight: the fingers are held at their measured
        opening (a closing gripper squeezes no further) and `reset()` does not resume the goal.
        A finished grip is left as it is, so a held part is not dropped (stepping thread)."""
        goal_id = self._gripper_goal
        if goal_id is None:
            return
        hold = self._finger_position()
        self._gripper_target = self._gripper_cmd = hold
        self._gripper_goal = None
        self._finish_goal(goal_id, aborted=True)
        log.warning("gripper goal %r aborted by a protective stop %s; fingers held at %.4f m",
                    goal_id, category.name, 2.0 * hold)

    def _busy(self) -> bool:
        return self._traj is not None or self._gripper_goal is not None

    def _start_trajectory(self, pos: np.ndarray, times: np.ndarray, goal_id: str) -> None:
        start_q = self._commanded_q()
        if times[0] > 0.0:
            pos = np.vstack([start_q, pos])
            times = np.concatenate([[0.0], times])
        if self._traj is not None and not self._goal_done:
            log.info("trajectory %r replaced by %r", self._goal_id, goal_id)
        self._traj = _Trajectory(pos, times, goal_id)
        self._s = 0.0
        self._settle_s = 0.0
        self._goal_id, self._goal_done, self._goal_aborted = goal_id, False, False
        if self._stop_category is None:
            self._set_mode(ControllerMode.EXECUTING)
        self._maybe_reset_workpiece()

    def _commanded_q(self) -> np.ndarray:
        if self._traj is not None:
            return sample_trajectory(self._traj.positions, self._traj.times_s, self._s)[0]
        return self._hold_q.copy()

    def _fingers_touch(self) -> bool:
        """A part is squeezed between the fingers: both touch the same movable body (not the
        robot, not the static world: the floor, a pedestal, a table) from opposite sides (their
        contact normals opposed). Fingertips pressed on the floor, or one finger on a part and
        the other on a table, are no evidence of an object."""
        p, cid = pybullet, self._cid
        normals: list[dict[int, list[np.ndarray]]] = []
        for f in self._fingers:
            by_body: dict[int, list[np.ndarray]] = {}
            for c in p.getContactPoints(bodyA=self._body, linkIndexA=f, physicsClientId=cid):
                if c[2] != self._body and self._movable(c[2], c[4]):
                    by_body.setdefault(c[2], []).append(np.asarray(c[7], dtype=np.float64))
            normals.append(by_body)
        first, second = normals
        return any(float(a @ b) < -0.5 for body in first.keys() & second.keys()
                   for a in first[body] for b in second[body])

    def _movable(self, body: int, link: int) -> bool:
        """The body's link has mass (a static body, mass 0, is part of the world)."""
        key = (body, link)
        if key not in self._masses:
            self._masses[key] = float(pybullet.getDynamicsInfo(body, link, physicsClientId=self._cid)[0])
        return self._masses[key] > 0.0

    def _finger_position(self) -> float:
        js = pybullet.getJointStates(self._body, self._fingers, physicsClientId=self._cid)
        return float(np.mean([s[0] for s in js]))

    def _control(self) -> None:
        p, cid, dt = pybullet, self._cid, self._dt
        js = p.getJointStates(self._body, self._arm, physicsClientId=cid)
        self._last_q = np.array([s[0] for s in js])
        last_qd = np.array([s[1] for s in js])
        stopping = self._stop_category is not None
        # 1. speed override
        if self._stop_category is not StopCategory.STOP_0:
            guarded = self._safeguard_stop is not None and self._safeguard_stop()
            target = 0.0 if stopping or guarded else self._target_scale
            if self._applied_scale > 0.02:
                self._v_ref = min(self._max_tcp_speed, self._last_speed / self._applied_scale)
            rate = lowering_rate_per_s(self._decel, self._max_tcp_speed, self._v_ref)
            self._applied_scale = step_speed_scale(self._applied_scale, target, dt, rate, SCALE_RAISE_RATE_PER_S)
        scale = self._applied_scale
        if self._mode is ControllerMode.STOPPING and scale == 0.0:
            self._standstill_s += dt
            if self._last_speed < _STANDSTILL_MPS or self._standstill_s >= _STANDSTILL_TIMEOUT_S:
                self._set_mode(ControllerMode.STOPPED)
        # 2. arm
        if self._stop_category is StopCategory.STOP_0 and self._braking:
            # STOP_0: brake every joint to zero velocity with its full torque, then hold the
            # pose where the arm came to rest (no spring-back to the pose at the stop request)
            if np.abs(last_qd).max() < 0.01:
                self._braking = False
            self._hold_q = self._last_q.copy()
            p.setJointMotorControlArray(
                self._body, self._arm, p.VELOCITY_CONTROL, targetVelocities=[0.0] * 7,
                forces=self._efforts, physicsClientId=cid,
            )
            q_cmd = None
        elif self._stop_category is StopCategory.STOP_0:
            q_cmd, qd_cmd = self._hold_q, np.zeros(7)
        elif self._traj is not None:
            self._s = min(self._s + scale * dt, float(self._traj.times_s[-1]))
            q_cmd, dq_ds = sample_trajectory(self._traj.positions, self._traj.times_s, self._s)
            qd_cmd = dq_ds * scale
            if self._s >= self._traj.times_s[-1]:
                self._settle_s += dt
                err = float(np.abs(self._last_q - q_cmd).max())
                if err < _SETTLE_TOLERANCE_RAD or self._settle_s >= _SETTLE_TIMEOUT_S:
                    if err >= _SETTLE_TOLERANCE_RAD:
                        log.warning("trajectory %r ended %.4f rad off its last point", self._traj.goal_id, err)
                    self._finish_goal(self._traj.goal_id)
                    self._hold_q = q_cmd.copy()
                    self._traj = None
        else:
            q_cmd, qd_cmd = self._hold_q, np.zeros(7)
        if q_cmd is not None:
            p.setJointMotorControlArray(
                self._body,
                self._arm,
                p.POSITION_CONTROL,
                targetPositions=q_cmd.tolist(),
                targetVelocities=qd_cmd.tolist(),
                forces=self._efforts,
                positionGains=[_POSITION_GAIN] * 7,
                velocityGains=[_VELOCITY_GAIN] * 7,
                physicsClientId=cid,
            )
        # 3. gripper (moves at GRIPPER_SPEED_MPS * scale, frozen by any stop)
        if self._stop_category is not StopCategory.STOP_0:
            delta = self._gripper_target - self._gripper_cmd
            limit = GRIPPER_SPEED_MPS * scale * dt
            self._gripper_cmd += max(-limit, min(limit, delta))
        p.setJointMotorControlArray(
            self._body,
            self._fingers,
            p.POSITION_CONTROL,
            targetPositions=[self._gripper_cmd] * 2,
            forces=[self._gripper_effort] * 2,
            physicsClientId=cid,
        )
        if self._gripper_goal is not None:
            # done when the fingers reach the target, or stall against a part (then they
            # keep pressing with the commanded effort)
            js = p.getJointStates(self._body, self._fingers, physicsClientId=cid)
            finger_q = float(np.mean([s[0] for s in js]))
            finger_v = float(max(abs(s[1]) for s in js))
            at_target = abs(self._gripper_cmd - self._gripper_target) < 1e-9
            blocked = abs(finger_q - self._gripper_cmd) > 2e-3
            stalled = finger_v < 5e-3 and (blocked or at_target)
            self._gripper_stall_s = self._gripper_stall_s + dt if stalled else 0.0
            reached = at_target and abs(finger_q - self._gripper_target) < _GRIPPER_TOLERANCE_M
            if reached or self._gripper_stall_s >= _GRIPPER_STALL_S:
                self._finish_goal(self._gripper_goal)
                self._gripper_goal = None
        if self._mode is ControllerMode.EXECUTING and not self._busy():
            self._set_mode(ControllerMode.IDLE)

    def _finish_goal(self, goal_id: str, *, aborted: bool = False) -> None:
        if goal_id == self._goal_id:
            self._goal_done, self._goal_aborted = True, aborted

    # ------------------------------------------------------------ workpiece

    def _maybe_reset_workpiece(self) -> None:
        if self._box is None:
            return
        p, cid = pybullet, self._cid
        box_pos = np.array(p.getBasePositionAndOrientation(self._box, physicsClientId=cid)[0])
        if np.linalg.norm(box_pos - self._box_home) < 0.02:
            return
        if p.getContactPoints(self._box, self._body, physicsClientId=cid):
            return
        tcp = np.array(p.getLinkState(self._body, self._tcp_link, computeForwardKinematics=True, physicsClientId=cid)[4])
        if min(np.linalg.norm(tcp - box_pos), np.linalg.norm(tcp - self._box_home)) < _WORKPIECE_CLEARANCE_M:
            return
        p.resetBasePositionAndOrientation(self._box, self._box_home.tolist(), (0, 0, 0, 1), physicsClientId=cid)
        p.resetBaseVelocity(self._box, [0, 0, 0], [0, 0, 0], physicsClientId=cid)
        log.info("workpiece put back on the pick position for the next cycle")

    # ---------------------------------------------------------------- state

    def _publish(self) -> None:
        p, cid = pybullet, self._cid
        js = p.getJointStates(self._body, self._arm, physicsClientId=cid)
        q = np.array([s[0] for s in js])
        qd = np.array([s[1] for s in js])
        links = p.getLinkStates(
            self._body, self._state_links, computeLinkVelocity=1, computeForwardKinematics=1, physicsClientId=cid
        )
        by_index = dict(zip(self._state_links, links))
        k = len(self._cap_names)
        segments = np.empty((k, 2, 3))
        speeds = np.zeros(k)
        segments[0] = self._link0_segment
        for c in range(1, k):
            ls = by_index[self._capsule_links[c]]
            origin, rot = np.array(ls[4]), quaternion_matrix(ls[5])
            com, v, w = np.array(ls[0]), np.array(ls[6]), np.array(ls[7])
            ends = origin + np.stack([self._cap_a[c], self._cap_b[c]]) @ rot.T
            segments[c] = ends
            speeds[c] = max(np.linalg.norm(v + np.cross(w, e - com)) for e in ends)
        opening = 2.0 * self._finger_position()
        carried = payload_carried(self._robot.payload, opening,
                                  gripper_moving=self._gripper_goal is not None)
        names, radii = self._cap_names, self._cap_radii
        placed = None
        if self._payload_capsule:
            placed = self._placed.observe(self._clock_ns(), carried, segments[-1],
                                          float(self._cap_radii[-1]),
                                          gripper_moving=self._gripper_goal is not None,
                                          object_evidence=self._fingers_touch() if carried else None)
        if self._payload_capsule and not carried:
            names, radii = self._cap_names_empty, self._cap_radii_empty
            segments, speeds = segments[:-1], speeds[:-1]
        tl = by_index[self._tcp_link]
        tcp = np.array(tl[4])
        tcp_v = np.array(tl[6]) + np.cross(np.array(tl[7]), tcp - np.array(tl[0]))
        self._last_q = q
        self._last_speed = float(max(speeds.max(), np.linalg.norm(tcp_v)))
        extras: dict = {"sim_time_s": self._sim_time_s}
        if self._box is not None:
            extras["workpiece_position"] = tuple(p.getBasePositionAndOrientation(self._box, physicsClientId=cid)[0])
        if self._realtime and self._sim_time_s > 0:
            extras["cpu_ms_per_sim_s"] = self._cpu_ns / 1e6 / self._sim_time_s
            extras["resync_skipped_s"] = self._resync_skipped_s
        arrays = (q, qd, tcp, tcp_v, segments, speeds)
        for a in arrays:
            a.setflags(write=False)
        state = RobotState(
            stamp_ns=self._clock_ns(),
            joint_names=ARM_JOINT_NAMES,
            position=q,
            velocity=qd,
            tcp_position=tcp,
            tcp_velocity_mps=tcp_v,
            link_names=names,
            link_segments=segments,
            link_radii_m=radii,
            link_speeds_mps=speeds,
            speed_scale=self._applied_scale,
            mode=self._mode,
            goal_id=self._goal_id,
            goal_done=self._goal_done,
            goal_aborted=self._goal_aborted,
            safety_seq=self._safety_seq,
            safety_applied_ns=self._safety_applied_ns,
            healthy=self._healthy,
            extras=extras,
            gripper_opening_m=opening,
            payload_carried=carried,
            gripper_seq=self._gripper_seq,
            placed_objects=placed,
        )
        self._state = state
        self._subscribers.notify(state)
