""""Go to a pose" from a page: a named pose, a typed joint target or a TCP target, as the joint
trajectory it means (`robot_command` kind ``goto``; ``GET /api/robot/named_poses`` lists the poses).

`GotoPlanner.plan` turns a target into one `JointTrajectory` from the robot's measured position
(at rest) to the goal: the straight line in joint space with a synchronised trapezoidal profile at
the joint velocity and acceleration limits (`robot_bridge.point_to_point`), slowed so the TCP stays
within `GOTO_TCP_SPEED_MPS`. That trajectory then goes to the command gate like every command
(`xr_server.robot_events.RobotCommandRouter`): role, mode, limits, keep-out sweep and people.
A TCP target keeps the TCP's orientation of now and is solved by inverse kinematics
(`robot_bridge.sim.PandaLinkKinematics.tool_ik`); the joint-space line to the solution is not a
straight TCP line, and the gate sweeps that very path.

Threads: `plan` may be called from any thread (the robot model serialises its own client; the
planner keeps no state).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from robot_bridge.jog import MANUAL_REDUCED_SPEED_MPS
from robot_bridge.point_to_point import plan_point_to_point, stretch
from robot_bridge.types import JointTrajectory, RobotState

#: Largest TCP speed of a go-to, m/s: the motion is commanded by a person watching the cell from a
#: page, i.e. manual operation, so ISO 10218-1:2011 clause 5.7.3 reduced speed (<= 250 mm/s).
GOTO_TCP_SPEED_MPS = MANUAL_REDUCED_SPEED_MPS
#: Largest distance of the TCP reached by inverse kinematics from a TCP target, metres.
GOTO_IK_TOLERANCE_M = 0.002
#: A go-to starts from rest: largest joint speed of the measured state it starts from, rad/s. The
#: position controller's settling after a goal (a few hundredths of rad/s) stays below it; the
#: step from there to the profile's start at rest is what the joint acceleration limits (>= 7.5
#: rad/s^2) cover in under 30 ms.
GOTO_AT_REST_RADPS = 0.2


class GotoKinematics(Protocol):
    """The robot model a go-to needs (`robot_bridge.sim.PandaLinkKinematics`)."""

    def tool_pose(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) joint positions, radians -> (TCP origin (3,) m, axes (3, 3)), `cell` frame."""
        ...

    def tool_ik(self, position: np.ndarray, orientation: np.ndarray,
                seed: np.ndarray) -> tuple[np.ndarray, float]:
        """TCP pose, `cell` frame -> ((n,) joint positions, radians; distance missed, m)."""
        ...


class GotoRefused(Exception):
    """A go-to that cannot be planned; the message is the reason, starting with its rule
    (``reach:``, ``motion:``, ``path:``), as the gate words its rules."""


class GotoPlanner:
    """Plans go-to trajectories for one robot.

    Thread safety: stateless after construction; `plan` may be called from any thread.

    Args:
        named_poses: name -> (n,) joint positions, radians (`content.cell.Robot.named_poses`).
        joint_names: (n,) the robot's joints, in the order of every position vector.
        velocity_limits_radps, acceleration_limits_radps2: (n,) joint limits, > 0.
        state_source: the robot's newest measured state (None: none yet); must not block.
        kinematics: the robot model for TCP speeds and TCP targets (None: TCP targets refused and
            the TCP speed is not limited beyond the joint limits).
        tcp_speed_mps: the TCP speed limit, m/s.
    """

    def __init__(self, named_poses: Mapping[str, Sequence[float]], joint_names: Sequence[str],
                 velocity_limits_radps: Sequence[float],
                 acceleration_limits_radps2: Sequence[float],
                 state_source: Callable[[], RobotState | None],
                 kinematics: GotoKinematics | None,
                 tcp_speed_mps: float = GOTO_TCP_SPEED_MPS) -> None:
        self.joint_names = tuple(joint_names)
        self.named_poses = {name: tuple(float(v) for v in q) for name, q in named_poses.items()}
        self._vel = np.asarray(velocity_limits_radps, dtype=np.float64)
        self._acc = np.asarray(acceleration_limits_radps2, dtype=np.float64)
        self._state = state_source
        self._kin = kinematics
        self.tcp_speed_mps = float(tcp_speed_mps)

    def describe(self) -> dict[str, Any]:
        """What a page needs to offer go-to controls: ``{joint_names, named_poses:
        {name: [rad, ...]}, tcp_targets: bool, tcp_speed_mps}``."""
        return {"joint_names": list(self.joint_names),
                "named_poses": {n: list(q) for n, q in self.named_poses.items()},
                "tcp_targets": self._kin is not None, "tcp_speed_mps": self.tcp_speed_mps}

    def _start(self) -> np.ndarray:
        state = self._state()
        if state is None:
            raise GotoRefused("path: no robot state, the motion's start is unknown")
        if not state.goal_done:
            raise GotoRefused(f"motion: the robot is executing goal {state.goal_id!r}; a go-to "
                              "starts from rest: wait for it or stop it first")
        speed = float(np.max(np.abs(np.asarray(state.velocity, dtype=np.float64)), initial=0.0))
        if speed > GOTO_AT_REST_RADPS:
            raise GotoRefused(f"motion: the robot is moving ({speed:.2f} rad/s at a joint); a "
                              "go-to starts from rest: wait for it or stop it first")
        return np.asarray(state.position, dtype=np.float64)

    def joint_goal(self, named_pose: str | None, positions: Sequence[float] | None,
                   tcp_position_m: Sequence[float] | None, start: np.ndarray) -> np.ndarray:
        """The joint goal of a target given one way (the others None).

        Raises:
            KeyError: an unknown `named_pose` (the message lists the known ones).
            ValueError: `positions` of the wrong length.
            GotoRefused: a TCP target without a robot model, or out of reach.
        """
        if named_pose is not None:
            if named_pose not in self.named_poses:
                known = ", ".join(sorted(self.named_poses)) or "none"
                raise KeyError(f"unknown pose {named_pose!r}; the cell's poses: {known}")
            return np.asarray(self.named_poses[named_pose])
        if positions is not None:
            if len(positions) != len(self.joint_names):
                raise ValueError(f"expected {len(self.joint_names)} values (one per joint: "
                                 f"{', '.join(self.joint_names)}), got {len(positions)}")
            return np.asarray(positions, dtype=np.float64)
        if tcp_position_m is None:
            raise ValueError("no target")
        if self._kin is None:
            raise GotoRefused("reach: no robot model to solve a TCP target")
        target = np.asarray(tcp_position_m, dtype=np.float64)
        _, rotation = self._kin.tool_pose(start)
        q, missed_m = self._kin.tool_ik(target, rotation, start)
        if missed_m > GOTO_IK_TOLERANCE_M:
            raise GotoRefused(f"reach: TCP target {np.round(target, 3).tolist()} m (cell frame) "
                              f"is out of reach with the TCP's orientation of now (closest "
                              f"{missed_m * 1e3:.0f} mm away)")
        return q

    def plan(self, goal_id: str, *, named_pose: str | None = None,
             positions: Sequence[float] | None = None,
             tcp_position_m: Sequence[float] | None = None) -> JointTrajectory:
        """The trajectory to one target (exactly one of `named_pose`, `positions` (radians, joint
        order), `tcp_position_m` (metres, `cell` frame)), from the measured position at rest.

        Returns:
            A `JointTrajectory` (goal id `goal_id`), first point the start at 0 s. Joint position
            limits are the gate's to check.

        Raises:
            KeyError, ValueError: see `joint_goal`.
            GotoRefused: no robot state, the robot is executing a goal or moving faster than
                `GOTO_AT_REST_RADPS`, a TCP target out of reach.
        """
        start = self._start()
        goal = self.joint_goal(named_pose, positions, tcp_position_m, start)
        trajectory = plan_point_to_point(self.joint_names, start, goal, self._vel, self._acc,
                                         goal_id)
        if self._kin is None or len(trajectory.positions) < 2:
            return trajectory
        tcp = np.array([self._kin.tool_pose(q)[0] for q in trajectory.positions])
        speeds = (np.linalg.norm(np.diff(tcp, axis=0), axis=1)
                  / np.diff(trajectory.time_from_start_s))
        fastest = float(speeds.max())
        if fastest > self.tcp_speed_mps:
            trajectory = stretch(trajectory, fastest / self.tcp_speed_mps * 1.0001)
        return trajectory
