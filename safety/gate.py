"""The command gate: the only path from anyone to a `RobotBackend`.

Every robot command (HMI, expert, REST, CLI, the program runner) goes through
`CommandGate.submit()`, which checks the command's shape, the sender's role, the
safety mode, joint position and velocity limits, and the robot keep-out zones along
the whole commanded path (the path is swept with the robot model's link capsules,
from the robot's current position through every point), and answers `accepted` or
`rejected` with the rule that refused it. The safety monitor drives speed
scaling and stops through the gate's `SafetyChannel`, which the gate hands out
exactly once.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from robot_bridge.backend import RobotBackend
from robot_bridge.errors import BridgeError
from robot_bridge.types import GripperCommand, JointTrajectory, StopCategory
from safety.decision import SafetyMode, SafetyState
from safety.errors import SafetyError
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


class LinkKinematics(Protocol):
    """The robot model the gate sweeps a path with (e.g. `robot_bridge.sim.PandaLinkKinematics`)."""

    link_names: tuple[str, ...]
    link_radii_m: np.ndarray

    def link_segments(self, positions: np.ndarray) -> np.ndarray:
        """(N, n) joint positions (rad) -> (N, K, 2, 3) link capsule axes, metres, `cell` frame."""
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
class Actor:
    """Who sends a command: a user name and its roles."""

    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class GateAnswer:
    """The gate's answer to one command: verdict, rule or change in words."""

    verdict: Verdict
    reason: str

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

    Args:
        backend: the robot.
        mode_source: returns the newest `SafetyState` (None before the first cycle).
        joint_velocity_limits_radps: (n,) per-joint velocity limits, rad/s.
        zones: the cell's zones; trajectories whose swept path enters a robot keep-out zone
            are rejected.
        kinematics: the robot model used to sweep paths. Without one, every trajectory is
            rejected while a keep-out zone is in force (fail-safe).
        audit: the safety audit log; every answer is appended (without waiting).
    """

    def __init__(self, backend: RobotBackend, mode_source: Callable[[], SafetyState | None],
                 joint_velocity_limits_radps: np.ndarray, *, zones: CellZones | None = None,
                 kinematics: LinkKinematics | None = None, audit: "AuditLog | None" = None) -> None:
        self._zones = zones
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

    def _check(self, command: object, actor: Actor) -> str | None:
        if not isinstance(command, (JointTrajectory, GripperCommand)):
            return f"schema: unsupported command type {type(command).__name__}"
        if not (actor.roles & MOTION_ROLES):
            return f"role: {actor.name!r} has roles {sorted(actor.roles)}; moving a robot needs operator or admin"
        state = self._mode_source()
        if state is None:
            return "mode: the safety monitor has not started"
        if state.mode in (SafetyMode.PROTECTIVE_STOP, SafetyMode.FAULT_STOP):
            return f"mode: no motion command is accepted in {state.mode.value} ({state.reason})"
        if isinstance(command, GripperCommand):
            if not (0.0 <= command.position_m <= 0.08 and np.isfinite(command.max_effort_n)):
                return f"limits: gripper position {command.position_m} m outside [0, 0.08]"
            return None
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
        return self._check_keep_out(command)

    def _check_keep_out(self, command: JointTrajectory) -> str | None:
        zones = None if self._zones is None else self._zones.current()
        if zones is None or not zones.has("robot_keep_out"):
            return None
        if self._kinematics is None:
            return "keep-out: no robot model to sweep the path against the keep-out zones"
        state = self._backend.latest_state()
        if state is None:
            return "keep-out: no robot state, the path's start is unknown"
        q, t = sweep_samples(np.asarray(state.position, dtype=np.float64), command.positions,
                             command.time_from_start_s)
        found = zones.first_path_violation(self._kinematics.link_segments(q), self._kinematics.link_radii_m,
                                           self._kinematics.link_names)
        if found is None:
            return None
        sample, v = found
        return f"keep-out: {v.part} would enter keep-out zone {v.zone} at t = {t[sample]:.2f} s of the path"

    def submit(self, command: object, actor: Actor) -> GateAnswer:
        """Check `command` from `actor` and forward it if every rule passes.

        Returns:
            ACCEPTED (forwarded) or REJECTED with the rule in `reason`. Never raises
            for a bad command.
        """
        why = self._check(command, actor)
        if why is None:
            try:
                self._backend.execute(command)  # type: ignore[arg-type]
            except BridgeError as exc:
                why = f"robot: {exc}"
        with self._lock:
            if why is None:
                self.accepted += 1
            else:
                self.rejected += 1
        answer = GateAnswer(Verdict.REJECTED, why) if why is not None else GateAnswer(Verdict.ACCEPTED, "forwarded")
        if why is not None:
            log.info("gate rejected %s from %s: %s", type(command).__name__, actor.name, why)
        if self._audit is not None:
            try:
                self._audit.append("gate_answer", actor.name or "?", {
                    "command": type(command).__name__, "goal_id": getattr(command, "goal_id", None),
                    "roles": sorted(actor.roles), "verdict": answer.verdict.value}, answer.reason)
            except Exception:  # noqa: BLE001 - the audit counts its own losses; the answer stands
                log.exception("audit append failed")
        return answer


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
