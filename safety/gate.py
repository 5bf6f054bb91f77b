"""The command gate: the only path from anyone to a `RobotBackend`.

Every robot command (HMI, expert, REST, CLI, the program runner) goes through
`CommandGate.submit()`, which checks the command's shape, the sender's role, the
safety mode, joint position and velocity limits, and then simulates before it applies:
the whole commanded path is swept with the robot model's link capsules, from the robot's
current position through every point, against the robot keep-out zones and against the
people tracked now, moved along their velocity to the time the robot gets there under the
speed scale in force (`safety.path_check`). Jogs (`JointJog`, `CartesianJog`) are first
turned into the short trajectory they mean (`robot_bridge.jog`: ramp, hold for the deadman
timeout, ramp to rest, slowed to stay inside the joint limits and the reduced speed of manual
mode) and that trajectory is checked and forwarded. It answers `accepted`, `modified` (what
was changed) or `rejected` with the rule that refused it, and keeps the forwarded path
(`planned_path`) for the HMIs' ghost view. The safety monitor drives speed scaling and
stops through the gate's `SafetyChannel`, which the gate hands out exactly once.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from robot_bridge.backend import RobotBackend
from robot_bridge.commands import check_joint_jog, gripper_limits_violation
from robot_bridge.errors import BridgeError, CommandError
from robot_bridge.payload import PAYLOAD_LINK
from robot_bridge.jog import (
    JOG_DEADMAN_S,
    MANUAL_REDUCED_SPEED_MPS,
    JogPlan,
    dls_joint_velocity,
    plan_displacement_jog,
    plan_velocity_jog,
)
from robot_bridge.types import (
    CartesianJog,
    GripperCommand,
    JointJog,
    JointTrajectory,
    RobotCommand,
    RobotState,
    StopCategory,
)
from content.cell import SafetyParameters
from safety.decision import SafetyMode, SafetyState
from safety.directed_speed import ActivePath
from safety.errors import SafetyError
from safety.path_check import PathConflict, first_path_conflict
from safety.path_retime import stop_before
from safety.perception.types import PerceptionSnapshot
from safety.ssm import StoppingModel
from safety.zones import CellZones

if TYPE_CHECKING:
    from safety.audit import AuditLog

log = logging.getLogger(__name__)

#: Roles that may command robot motion (DESIGN.md, "Roles").
MOTION_ROLES = frozenset({"operator", "admin"})
#: Largest joint step between two swept samples of a commanded path, radians. At the
#: Panda's reach (about 1.2 m from joint 1 to the fingertips) 0.01 rad moves a point by at
#: most 12 mm, below the 5 mm capsule margin plus the zone test's conservative rounding.
SWEEP_STEP_RAD = 0.01
#: Largest number of points of the planned path kept for the HMIs' ghost view.
PLANNED_PATH_POINTS = 40
#: Largest joint distance between a trajectory's first point, when it is due at 0 s, and the
#: measured position, radians. A point due at once is a jump the controller would make at
#: whatever speed it can: the path from the measured position has no time to check against the
#: velocity limits. 0.02 rad covers the position controller's settling after a goal (a few
#: thousandths of a radian) and the state's age.
START_TOLERANCE_RAD = 0.02


class LinkKinematics(Protocol):
    """The robot model the gate sweeps a path with (e.g. `robot_bridge.sim.PandaLinkKinematics`)."""

    link_names: tuple[str, ...]
    link_radii_m: np.ndarray

    def link_segments(self, positions: np.ndarray) -> np.ndarray:
        """(N, n) joint positions (rad) -> (N, K, 2, 3) link capsule axes, metres, `cell` frame."""
        ...


class ToolKinematics(LinkKinematics, Protocol):
    """A robot model that also knows its TCP (needed for jogs), e.g. `PandaLinkKinematics`."""

    def tool_pose(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) joint positions -> (TCP origin (3,) metres, rotation (3, 3)), `cell` frame."""
        ...

    def tool_jacobian(self, position: np.ndarray) -> np.ndarray:
        """(n,) joint positions -> (6, n) geometric Jacobian of the TCP, `cell` frame."""
        ...


class Verdict(enum.Enum):
    """The gate's answer.

    ACCEPTED: forwarded to the robot unchanged.
    MODIFIED: forwarded with changes (listed in the answer's reason).
    REJECTED: not forwarded; the reason names the rule.
    """

    ACCEPTED = "accepted"
    MODIFIED = "modified"
    REJECTED = "rejected"


@dataclass(frozen=True)
class PeopleOnPath:
    """What the gate needs to play a commanded path against the people (`safety.path_check`).

    Attributes:
        snapshot: returns the newest tracking snapshot (the monitor's source); must not block.
        params: the cell's safety parameters, as the monitor uses them.
        stopping: the robot's stopping model, as the monitor uses it (with the payload
            carried, where the cell has one).
        nominal_speed_mps: the robot's speed at scale 1, m/s, as the monitor uses it.
        clock_ns: the monotonic clock of the snapshot's stamps.
        stopping_empty: the stopping model while the cell's payload is not carried (the stop
            data of `Robot.stop_payload_kg(False)`); None: `stopping` always.
    """

    snapshot: Callable[[], PerceptionSnapshot | None]
    params: SafetyParameters
    stopping: StoppingModel
    nominal_speed_mps: float
    clock_ns: Callable[[], int] = time.monotonic_ns
    stopping_empty: StoppingModel | None = None


@dataclass(frozen=True)
class PlannedPath:
    """The path of the newest forwarded trajectory, for the HMIs' ghost view.

    Attributes:
        goal_id: the trajectory's goal id.
        times_s: (P,) seconds along the commanded path (before speed scaling).
        tool_points: (P, 3) end of the robot's last link capsule (the tool), metres, `cell` frame.
    """

    goal_id: str
    times_s: np.ndarray
    tool_points: np.ndarray


@dataclass(frozen=True)
class Actor:
    """Who sends a command: a user name and its roles."""

    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class GateAnswer:
    """The gate's answer to one command.

    Attributes:
        verdict: see `Verdict`.
        reason: the rule that refused the command, or the change made, in words.
        command: what was forwarded (the command itself; for a jog, its trajectory; the
            shortened trajectory when MODIFIED by the people check); None when REJECTED.
        rest: MODIFIED only: the part of the trajectory that was not forwarded, re-timed to
            start from rest where the forwarded part ends; submit it once the forwarded goal
            is done (the gate checks it again then).
    """

    verdict: Verdict
    reason: str
    command: RobotCommand | None = None
    rest: JointTrajectory | None = None

    @property
    def forwarded(self) -> bool:
        """True when the command reached the robot."""
        return self.verdict is not Verdict.REJECTED


class SafetyChannel:
    """The monitor's handle on the robot: speed scale, stops, release. Held by the monitor only."""

    def __init__(self, backend: RobotBackend) -> None:
        self._backend = backend

    def set_speed_scale(self, scale: float, seq: int) -> None:
        """Set the robot's speed override in [0, 1]; `seq` comes back in RobotState.safety_seq."""
        self._backend.set_speed_scale(scale, seq)

    def protective_stop(self, category: StopCategory, seq: int) -> None:
        """Stop the robot per IEC 60204-1 `category` and hold."""
        self._backend.protective_stop(category, seq)

    def release(self) -> None:
        """Release a protective stop (after start-up, or after an authorised reset)."""
        self._backend.reset()


class CommandGate:
    """Checks and forwards robot commands.

    Thread safety: `submit()` may be called from any thread; the counters are
    guarded by a lock. `mode_source` must be cheap and thread-safe.

    Carried part: where the robot model has a `PAYLOAD_LINK` capsule, a path is swept with it
    while the payload will be carried: the robot state says so (`RobotState.payload_carried`,
    fail-safe True when the grip is unknown), or a gripper command the gate forwarded has not
    been taken up by the backend yet (`RobotState.gripper_seq` below the gate's count). Else
    the capsule is left out and the people check uses `PeopleOnPath.stopping_empty`.

    Args:
        backend: the robot.
        mode_source: returns the newest `SafetyState` (None before the first cycle).
        joint_velocity_limits_radps: (n,) per-joint velocity limits, rad/s.
        zones: the cell's zones; trajectories whose swept path enters a robot keep-out zone
            are rejected.
        kinematics: the robot model used to sweep paths. Without one, every trajectory is
            rejected while a keep-out zone is in force (fail-safe).
        audit: the safety audit log; every answer is appended (without waiting).
        people: plays each trajectory against the people tracked now; one that the monitor
            would have to stop on the way is shortened to a smooth stop before that point
            (MODIFIED, with the rest handed back) when `joint_acceleration_limits_radps2` is
            given and some motion fits, and refused otherwise (rule `people:`). Without a robot
            model, every trajectory is refused while someone is tracked (fail-safe).
        joint_acceleration_limits_radps2: (n,) per-joint acceleration limits, rad/s², for the
            stop ramp of a shortened trajectory (`safety.path_retime`) and the ramps of jogs
            (without them every jog is refused).
        jog_timeout_s: the deadman timeout of velocity jogs, seconds (> 0): a jog's velocity is
            held this long, then the robot ramps to rest unless a newer jog replaced it.

    Raises:
        SafetyError: `jog_timeout_s` is not a positive finite number.
    """

    def __init__(self, backend: RobotBackend, mode_source: Callable[[], SafetyState | None],
                 joint_velocity_limits_radps: np.ndarray, *, zones: CellZones | None = None,
                 kinematics: LinkKinematics | None = None, audit: "AuditLog | None" = None,
                 people: PeopleOnPath | None = None,
                 joint_acceleration_limits_radps2: np.ndarray | None = None,
                 jog_timeout_s: float = JOG_DEADMAN_S) -> None:
        if not (np.isfinite(jog_timeout_s) and jog_timeout_s > 0):
            raise SafetyError(f"CommandGate: jog_timeout_s must be a positive number of seconds, "
                              f"got {jog_timeout_s!r}")
        self.jog_timeout_s = float(jog_timeout_s)
        self._accel_limits = None if joint_acceleration_limits_radps2 is None else np.asarray(
            joint_acceleration_limits_radps2, dtype=np.float64)
        self._zones = zones
        self._people = people
        self._planned: PlannedPath | None = None
        self._active: ActivePath | None = None
        self._audit = audit
        self._kinematics = kinematics
        self._backend = backend
        self._mode_source = mode_source
        self._vel_limits = np.asarray(joint_velocity_limits_radps, dtype=np.float64)
        self._lower = np.asarray(backend.joint_lower_limits, dtype=np.float64)
        self._upper = np.asarray(backend.joint_upper_limits, dtype=np.float64)
        self._channel_taken = False
        self._lock = threading.Lock()
        self.accepted = 0
        self.rejected = 0
        self._gripper_forwarded = 0

    def safety_channel(self) -> SafetyChannel:
        """The monitor's channel to the robot; can be taken once.

        Raises:
            SafetyError: the channel was already taken.
        """
        with self._lock:
            if self._channel_taken:
                raise SafetyError("the safety channel of this gate is already held by a monitor")
            self._channel_taken = True
        return SafetyChannel(self._backend)

    def _check(self, command: object, actor: Actor) -> _Outcome:
        state = self._mode_source()
        why = self._check_rules(command, actor, state)
        if why is not None or state is None:
            return _Outcome(why)
        if isinstance(command, (JointJog, CartesianJog)):
            return self._check_jog(command, state.speed_scale)
        if not isinstance(command, JointTrajectory):
            return _Outcome(None)
        why = self._check_trajectory(command)
        robot = self._backend.latest_state()
        if why is None and robot is not None:
            why = self._check_start(np.asarray(robot.position, dtype=np.float64), command)
        return _Outcome(why) if why is not None else self._check_path(command, state.speed_scale)

    def _check_rules(self, command: object, actor: Actor, state: SafetyState | None) -> str | None:
        if not isinstance(command, (JointTrajectory, GripperCommand, JointJog, CartesianJog)):
            return f"schema: unsupported command type {type(command).__name__}"
        if not (actor.roles & MOTION_ROLES):
            return f"role: {actor.name!r} has roles {sorted(actor.roles)}; moving a robot needs operator or admin"
        if state is None:
            return "mode: the safety monitor has not started"
        if state.mode in (SafetyMode.PROTECTIVE_STOP, SafetyMode.FAULT_STOP):
            return f"mode: no motion command is accepted in {state.mode.value} ({state.reason})"
        if isinstance(command, GripperCommand):
            outside = gripper_limits_violation(command)
            if outside is not None:
                return f"limits: gripper {outside}"
        return None

    def _check_trajectory(self, command: JointTrajectory) -> str | None:
        if tuple(command.joint_names) != tuple(self._backend.joint_names):
            return f"schema: joint_names {list(command.joint_names)} do not match the robot's {list(self._backend.joint_names)}"
        pos = command.positions
        low = pos < self._lower
        high = pos > self._upper
        if low.any() or high.any():
            point, joint = np.argwhere(low | high)[0]
            return (f"limits: point {point} puts {command.joint_names[joint]} at {pos[point, joint]:.3f} rad, "
                    f"outside [{self._lower[joint]:.3f}, {self._upper[joint]:.3f}]")
        if pos.shape[0] > 1:
            vel = np.abs(np.diff(pos, axis=0)) / np.diff(command.time_from_start_s)[:, None]
            over = vel > self._vel_limits * 1.001
            if over.any():
                seg, joint = np.argwhere(over)[0]
                return (f"limits: segment {seg} moves {command.joint_names[joint]} at {vel[seg, joint]:.2f} rad/s, "
                        f"above its limit {self._vel_limits[joint]:.2f} rad/s")
        return None

    def _check_jog(self, jog: JointJog | CartesianJog, speed_scale: float) -> _Outcome:
        """Turn a jog into its short trajectory, then check that like any other trajectory."""
        try:
            plan, changes = self._plan_jog(jog)
        except _Refused as exc:
            return _Outcome(str(exc))
        why = self._check_trajectory(plan.trajectory)
        if why is not None:
            return _Outcome(why)
        outcome = self._check_path(plan.trajectory, speed_scale)
        if outcome.why is not None:
            return outcome
        if outcome.change is not None:
            changes.append(outcome.change)
        forward = plan.trajectory if outcome.forward is None else outcome.forward
        # a jog shortened for a person has no rest to submit later: the next jog is the rest
        return _Outcome(None, outcome.planned, forward, None, "; ".join(changes) or None, outcome.path)

    def _plan_jog(self, jog: JointJog | CartesianJog) -> tuple[JogPlan, list[str]]:
        """The jog's trajectory from the measured state, and the changes made to it (in words).

        Raises:
            _Refused: the reason the jog cannot be planned (rule prefix included).
        """
        kin = self._kinematics
        if kin is None or not hasattr(kin, "tool_jacobian") or not hasattr(kin, "tool_pose"):
            raise _Refused("jog: no robot model with a TCP to predict the jog's motion")
        if self._accel_limits is None:
            raise _Refused("jog: no joint acceleration limits to plan the jog's ramps")
        state = self._backend.latest_state()
        if state is None:
            raise _Refused("path: no robot state, the jog's start is unknown")
        names = tuple(self._backend.joint_names)
        q0 = np.asarray(state.position, dtype=np.float64)
        jacobian = kin.tool_jacobian(q0)  # type: ignore[attr-defined]
        changes: list[str] = []
        hold_s = self.jog_timeout_s
        if isinstance(jog, JointJog):
            try:
                vector = check_joint_jog(jog, names)
            except CommandError as exc:
                raise _Refused(f"schema: {exc}") from None
            if jog.displacements.size:
                return self._plan_displacement(jog, names, q0, vector, jacobian)
            target = vector
            if jog.duration_s > 0:
                hold_s = min(hold_s, jog.duration_s)
        else:
            linear, angular = jog.linear_mps, jog.angular_radps
            if jog.frame_id == "tool":
                rot = kin.tool_pose(q0)[1]  # type: ignore[attr-defined]
                linear, angular = rot @ linear, rot @ angular
            target = dls_joint_velocity(jacobian, np.concatenate([linear, angular]))
        ratio = float(np.max(np.abs(target) / self._vel_limits))
        if ratio > 1.0:
            j = int(np.argmax(np.abs(target) / self._vel_limits))
            target = target / ratio
            changes.append(f"limits: jog slowed to {100 / ratio:.0f}% ({names[j]} at its "
                           f"velocity limit {self._vel_limits[j]:.2f} rad/s)")
        tcp_mps = float(np.linalg.norm(jacobian[:3] @ target))
        if tcp_mps > MANUAL_REDUCED_SPEED_MPS:
            target = target * (MANUAL_REDUCED_SPEED_MPS / tcp_mps)
            changes.append(f"limits: TCP speed {tcp_mps:.3f} m/s reduced to "
                           f"{MANUAL_REDUCED_SPEED_MPS} m/s (reduced speed of manual mode, "
                           f"ISO 10218-1 5.7.3)")
        scale = max(float(state.speed_scale), 0.05)
        v0 = np.clip(np.asarray(state.velocity, dtype=np.float64) / scale, -self._vel_limits,
                     self._vel_limits)
        try:
            plan = plan_velocity_jog(names, q0, v0, target, hold_s, self._accel_limits, self._lower,
                                     self._upper, jog.goal_id)
        except CommandError as exc:
            raise _Refused(f"limits: {exc}") from None
        if plan.velocity_factor < 1.0:
            changes.append(f"limits: jog slowed to {100 * plan.velocity_factor:.0f}% to stop "
                           f"before a joint position limit")
        return plan, changes

    def _plan_displacement(self, jog: JointJog, names: tuple[str, ...], q0: np.ndarray,
                           displacement: np.ndarray,
                           jacobian: np.ndarray) -> tuple[JogPlan, list[str]]:
        changes: list[str] = []
        duration = jog.duration_s
        need = max(float(np.max(np.abs(displacement) / self._vel_limits)),
                   float(np.linalg.norm(jacobian[:3] @ displacement)) / MANUAL_REDUCED_SPEED_MPS)
        if need > duration:
            changes.append(f"limits: duration stretched from {duration:.3f} s to {need:.3f} s "
                           f"(joint velocity limits and the reduced speed "
                           f"{MANUAL_REDUCED_SPEED_MPS} m/s of manual mode)")
            duration = need * 1.0001
        try:
            plan = plan_displacement_jog(names, q0, displacement, duration, self._vel_limits,
                                         self._accel_limits, jog.goal_id)  # type: ignore[arg-type]
        except CommandError as exc:  # pragma: no cover - the stretch above prevents it
            raise _Refused(f"limits: {exc}") from None
        return plan, changes

    def _check_path(self, command: JointTrajectory, speed_scale: float) -> _Outcome:
        """Simulate, then apply: sweep the path against the keep-out zones and the people."""
        zones = None if self._zones is None else self._zones.current()
        keep_out = zones is not None and zones.has("robot_keep_out")
        snapshot = None if self._people is None else self._people.snapshot()
        if self._kinematics is None:
            if keep_out:
                return _Outcome("keep-out: no robot model to sweep the path against the keep-out zones")
            if snapshot is not None and snapshot.tracks:
                return _Outcome("people: no robot model to play the path against the people in the cell")
            return _Outcome(None)
        state = self._backend.latest_state()
        if state is None:
            return _Outcome("path: no robot state, the path's start is unknown")
        start = np.asarray(state.position, dtype=np.float64)
        q, t = sweep_samples(start, command.positions, command.time_from_start_s)
        model = self._robot_model(self._kinematics, state)
        segments = model.segments(q)
        if zones is not None and keep_out:
            found = zones.first_path_violation(segments, model.radii_m, model.names)
            if found is not None:
                sample, v = found
                return _Outcome(f"keep-out: {v.part} would enter keep-out zone {v.zone} at t = {t[sample]:.2f} s "
                                f"of the path")
        conflict = self._people_conflict(model, segments, t, speed_scale, snapshot)
        if conflict is None:
            return _Outcome(None, self._plan(command.goal_id, segments, t),
                            path=ActivePath.from_sweep(command.goal_id, q, t, segments))
        split = None
        if self._accel_limits is not None and conflict.sample > 0:
            split = stop_before(start, command, float(t[conflict.sample - 1]), self._accel_limits)
        if split is None:
            return _Outcome(conflict.describe())
        prefix, rest = split
        q, t = sweep_samples(start, prefix.positions, prefix.time_from_start_s)
        segments = model.segments(q)
        # slower: re-check
        if self._people_conflict(model, segments, t, speed_scale, snapshot) is not None:
            return _Outcome(conflict.describe())
        change = (f"shortened: stops at t = {prefix.time_from_start_s[-1]:.2f} s instead of "
                  f"{command.time_from_start_s[-1]:.2f} s, because {conflict.describe()}")
        return _Outcome(None, self._plan(prefix.goal_id, segments, t), prefix, rest, change,
                        ActivePath.from_sweep(prefix.goal_id, q, t, segments))

    def _check_start(self, start: np.ndarray, command: JointTrajectory) -> str | None:
        """The way from the measured position `start` (radians) to the first point: within
        `START_TOLERANCE_RAD` when that point is due at 0 s, else within the velocity limits."""
        gap = np.abs(command.positions[0] - start)
        t0 = float(command.time_from_start_s[0])
        if t0 <= 0.0:
            joint = int(np.argmax(gap))
            if gap[joint] > START_TOLERANCE_RAD:
                return (f"path: the first point is due at 0 s but puts {command.joint_names[joint]} "
                        f"{gap[joint]:.3f} rad from where it is (at most {START_TOLERANCE_RAD} rad): "
                        "start the trajectory at the robot's position, or give its first point time")
            return None
        speed = gap / t0
        over = speed > self._vel_limits * 1.001
        if over.any():
            joint = int(np.argmax(over))
            return (f"limits: reaching the first point moves {command.joint_names[joint]} at "
                    f"{speed[joint]:.2f} rad/s, above its limit {self._vel_limits[joint]:.2f} rad/s")
        return None

    def _robot_model(self, kin: LinkKinematics, state: RobotState) -> _SweptModel:
        """The capsules of `kin` to sweep a path with, without `PAYLOAD_LINK` unless the payload
        will be carried (see the class docstring)."""
        names = tuple(kin.link_names)
        with self._lock:
            in_flight = state.gripper_seq < self._gripper_forwarded
        carried = bool(state.payload_carried) or in_flight
        if carried or PAYLOAD_LINK not in names:
            return _SweptModel(kin.link_segments, names, np.asarray(kin.link_radii_m), carried)
        keep = np.array([i for i, n in enumerate(names) if n != PAYLOAD_LINK])
        return _SweptModel(lambda q: kin.link_segments(q)[:, keep], tuple(names[i] for i in keep),
                           np.asarray(kin.link_radii_m)[keep], False)

    def _people_conflict(self, model: _SweptModel, segments: np.ndarray, t: np.ndarray,
                         speed_scale: float, snapshot: PerceptionSnapshot | None
                         ) -> PathConflict | None:
        if self._people is None or snapshot is None or not snapshot.tracks or self._kinematics is None:
            return None
        p = self._people
        stopping = p.stopping if model.carried or p.stopping_empty is None else p.stopping_empty
        # at the scale in force the robot reaches each sample later (a speed override re-times)
        return first_path_conflict(segments, model.radii_m, model.names,
                                   t / max(speed_scale, 1e-3), snapshot, p.clock_ns(), p.params,
                                   stopping, p.nominal_speed_mps)

    @staticmethod
    def _plan(goal_id: str, segments: np.ndarray, t: np.ndarray) -> PlannedPath:
        keep = np.unique(np.linspace(0, len(t) - 1, min(len(t), PLANNED_PATH_POINTS)).round().astype(int))
        return PlannedPath(goal_id, t[keep], segments[keep, -1, 1].copy())

    def active_path(self) -> ActivePath | None:
        """The swept path of the newest trajectory the gate forwarded, at scale 1, for the
        monitor's directed speed v_r (`safety.directed_speed`); None: none, or no robot model.

        Thread-safe (an atomic reference read). It is replaced *before* a trajectory reaches
        the robot, so while the robot still reports the previous goal the monitor sees a goal
        mismatch and uses the undirected speed.
        """
        return self._active

    def planned_path(self) -> PlannedPath | None:
        """The path of the newest trajectory the gate forwarded (None: none yet, or no robot model).

        Thread-safe (an atomic reference read); the twin shows it while the robot's `goal_id`
        is this path's and not done.
        """
        return self._planned

    def submit(self, command: object, actor: Actor) -> GateAnswer:
        """Check `command` from `actor` and forward it if every rule passes.

        Returns:
            ACCEPTED (forwarded as it is), MODIFIED (a trajectory shortened to stop before a
            person, the rest in `rest`; or a jog slowed to the limits; the changes in `reason`)
            or REJECTED with the rule in `reason`. Never raises for a bad command.
        """
        outcome = self._check(command, actor)
        why = outcome.why
        forward = command if outcome.forward is None else outcome.forward
        if why is None:
            if isinstance(forward, JointTrajectory):
                self._active = outcome.path
            try:
                self._backend.execute(forward)  # type: ignore[arg-type]
            except BridgeError as exc:
                why = f"robot: {exc}"
                self._active = None
            else:
                if outcome.planned is not None:
                    self._planned = outcome.planned
                if isinstance(forward, GripperCommand):
                    with self._lock:
                        self._gripper_forwarded += 1
        with self._lock:
            if why is None:
                self.accepted += 1
            else:
                self.rejected += 1
        if why is not None:
            answer = GateAnswer(Verdict.REJECTED, why)
            log.info("gate rejected %s from %s: %s", type(command).__name__, actor.name, why)
        elif outcome.change is not None:
            answer = GateAnswer(Verdict.MODIFIED, outcome.change, forward, outcome.rest)  # type: ignore[arg-type]
            log.info("gate modified %s from %s: %s", type(command).__name__, actor.name, outcome.change)
        else:
            answer = GateAnswer(Verdict.ACCEPTED, "forwarded", forward)  # type: ignore[arg-type]
        if self._audit is not None:
            try:
                self._audit.append("gate_answer", actor.name or "?", {
                    "command": type(command).__name__, "goal_id": getattr(command, "goal_id", None),
                    "roles": sorted(actor.roles), "verdict": answer.verdict.value}, answer.reason)
            except Exception:  # noqa: BLE001 - the audit counts its own losses; the answer stands
                log.exception("audit append failed")
        return answer


@dataclass(frozen=True)
class _SweptModel:
    """The capsules the gate sweeps one path with: `segments` maps (N, n) joint positions to
    (N, K, 2, 3) axes, metres, `cell` frame; `carried`: the payload's capsule is among them
    (or the cell has none and the payload state does not matter)."""

    segments: Callable[[np.ndarray], np.ndarray]
    names: tuple[str, ...]
    radii_m: np.ndarray
    carried: bool


class _Refused(Exception):
    """Inside the gate only: a command cannot be checked further; the message is the reason."""


@dataclass(frozen=True)
class _Outcome:
    """The gate's checks of one command: the rule that refuses it (None: passes), the path to
    show, and for a shortened trajectory what to forward instead, the rest, and the change;
    `path` is the forwarded trajectory's swept path for the monitor (None: no robot model)."""

    why: str | None
    planned: PlannedPath | None = None
    forward: JointTrajectory | None = None
    rest: JointTrajectory | None = None
    change: str | None = None
    path: ActivePath | None = None


def sweep_samples(start: np.ndarray, positions: np.ndarray, time_from_start_s: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions along a commanded path, no joint moving more than `SWEEP_STEP_RAD` between two.

    The path runs from `start` (the robot's position now, time 0) through every point,
    linearly in joint space between points (how a joint trajectory controller interpolates
    positions between close points).

    Args:
        start: (n,) radians.
        positions: (M, n) radians.
        time_from_start_s: (M,) seconds.

    Returns:
        (samples (S, n) radians, times (S,) seconds).
    """
    pts = np.vstack([start[None, :], positions])
    times = np.concatenate([[0.0], time_from_start_s])
    out_q, out_t = [pts[:1]], [times[:1]]
    for i in range(1, len(pts)):
        steps = max(1, int(np.ceil(np.abs(pts[i] - pts[i - 1]).max() / SWEEP_STEP_RAD)))
        f = np.arange(1, steps + 1) / steps
        out_q.append(pts[i - 1] + (pts[i] - pts[i - 1]) * f[:, None])
        out_t.append(times[i - 1] + (times[i] - times[i - 1]) * f)
    return np.vstack(out_q), np.concatenate(out_t)
