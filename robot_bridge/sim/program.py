"""Plan the demo pick-and-place program for the simulated Panda.

Cartesian straight-line segments with a trapezoidal speed profile, turned into joint
trajectories by PyBullet's inverse kinematics in a private DIRECT client (never the client that
the backend steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pybullet

from content.cell import PickAndPlace, Robot
from robot_bridge.commands import FRANKA_HAND_MAX_OPENING_M
from robot_bridge.errors import CommandError
from robot_bridge.sim.panda import (
    ARM_JOINT_NAMES,
    PANDA_HOME_POSITION,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    panda_urdf_path,
    yaw_quaternion,
)
from robot_bridge.types import GripperCommand, JointTrajectory, RobotCommand

MAX_TCP_ACCELERATION_MPS2 = 2.5
"""Peak TCP acceleration of the planned profile, m/s^2."""

JOINT_VELOCITY_MARGIN = 0.9
"""Planned joint speeds stay below this fraction of the datasheet limits (tracking headroom)."""

ROTATION_RADIUS_M = 0.15
"""A pure re-orientation is timed as if a point this far from the TCP had to travel the arc."""

SAMPLE_PERIOD_S = 0.01
"""Time between trajectory points, seconds."""

GRASP_EFFORT_N = 40.0
"""Grasp force, newtons."""

_IK_TOLERANCE_M = 1e-3
_MAX_JOINT_STEP_RAD = 0.15


@dataclass(frozen=True)
class _Pose:
    position: np.ndarray  # (3,) metres, cell frame
    orientation: np.ndarray  # (4,) quaternion (x, y, z, w), cell frame


def trapezoid_profile(length: float, v_max: float, a_max: float) -> tuple[float, Callable[[float], float]]:
    """Trapezoidal (or triangular) distance profile along a path.

    Args:
        length: path length, metres (> 0).
        v_max: peak speed, m/s.
        a_max: acceleration and deceleration, m/s^2.

    Returns:
        (duration_s, distance(t)) with distance in metres, 0 at t=0 and `length` at the end.
    """
    t_acc = v_max / a_max
    if a_max * t_acc * t_acc >= length:  # triangular: never reaches v_max
        t_acc = math.sqrt(length / a_max)
        v_peak = a_max * t_acc
        t_cruise = 0.0
    else:
        v_peak = v_max
        t_cruise = (length - a_max * t_acc * t_acc) / v_max
    duration = 2 * t_acc + t_cruise

    def distance(t: float) -> float:
        t = min(max(t, 0.0), duration)
        if t < t_acc:
            return 0.5 * a_max * t * t
        d_acc = 0.5 * a_max * t_acc * t_acc
        if t < t_acc + t_cruise:
            return d_acc + v_peak * (t - t_acc)
        td = duration - t
        return length - 0.5 * a_max * td * td

    return duration, distance


class _Kinematics:
    """IK/FK for the Panda at the cell's base pose, in a private PyBullet DIRECT client."""

    def __init__(self, robot: Robot) -> None:
        p = pybullet
        self._cid = p.connect(p.DIRECT)
        base_quat = yaw_quaternion(math.radians(robot.base.yaw_deg))
        self.body = p.loadURDF(
            str(panda_urdf_path()), basePosition=list(robot.base.position), baseOrientation=base_quat,
            useFixedBase=True, physicsClientId=self._cid,
        )
        self.movable: list[int] = []
        lower, upper = [], []
        names = {}
        for j in range(p.getNumJoints(self.body, physicsClientId=self._cid)):
            info = p.getJointInfo(self.body, j, physicsClientId=self._cid)
            names[info[12].decode()] = j
            if info[2] != p.JOINT_FIXED:
                self.movable.append(j)
                lower.append(info[8])
                upper.append(info[9])
        self.tcp = names["panda_grasptarget"]
        self.lower, self.upper = lower, upper
        self.ranges = [u - lo for lo, u in zip(lower, upper)]
        self.rest = [*PANDA_HOME_POSITION, 0.04, 0.04]

    def close(self) -> None:
        pybullet.disconnect(self._cid)

    def set(self, q: np.ndarray) -> None:
        for j, v in zip(self.movable[:7], q):
            pybullet.resetJointState(self.body, j, float(v), physicsClientId=self._cid)

    def fk(self, q: np.ndarray) -> _Pose:
        self.set(q)
        ls = pybullet.getLinkState(self.body, self.tcp, computeForwardKinematics=True, physicsClientId=self._cid)
        return _Pose(np.array(ls[4]), np.array(ls[5]))

    def ik(self, pose: _Pose, seed: np.ndarray) -> tuple[np.ndarray, float]:
        """Joint positions reaching `pose` near `seed`; returns (q, position error in metres)."""
        q = seed.copy()
        err = math.inf
        for attempt in range(10):
            self.set(q)
            # first with the null-space pull towards the home pose, then plain refinement
            # (PyBullet's null-space IK leaves a residual of about a millimetre)
            nullspace = (
                dict(lowerLimits=self.lower, upperLimits=self.upper, jointRanges=self.ranges, restPoses=self.rest)
                if attempt == 0
                else {}
            )
            sol = pybullet.calculateInverseKinematics(
                self.body, self.tcp, pose.position.tolist(), pose.orientation.tolist(),
                maxNumIterations=100, residualThreshold=1e-6, physicsClientId=self._cid, **nullspace,
            )
            q = np.clip(np.array(sol[:7]), self.lower[:7], self.upper[:7])
            reached = self.fk(q)
            err = float(np.linalg.norm(reached.position - pose.position))
            rot_err = _quat_angle(reached.orientation, pose.orientation)
            if err < 2e-4 and rot_err < 1e-3:
                break
        return q, err


def _quat_angle(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * math.acos(min(1.0, abs(float(np.dot(a, b)))))


def _slerp(a: np.ndarray, b: np.ndarray, u: float) -> np.ndarray:
    d = float(np.dot(a, b))
    if d < 0:
        b, d = -b, -d
    if d > 0.9995:
        q = a + u * (b - a)
        return q / np.linalg.norm(q)
    th = math.acos(d)
    return (math.sin((1 - u) * th) * a + math.sin(u * th) * b) / math.sin(th)


def _plan_segment(kin: _Kinematics, start_q: np.ndarray, goal: _Pose, name: str, robot: Robot) -> JointTrajectory:
    start = kin.fk(start_q)
    length = max(
        float(np.linalg.norm(goal.position - start.position)),
        ROTATION_RADIUS_M * _quat_angle(start.orientation, goal.orientation),
        1e-4,
    )
    limits = np.array(PANDA_JOINT_VELOCITY_LIMITS_RADPS) * JOINT_VELOCITY_MARGIN
    v_max, a_max = robot.max_tcp_speed_mps, MAX_TCP_ACCELERATION_MPS2
    for _ in range(6):
        duration, distance = trapezoid_profile(length, v_max, a_max)
        n = max(2, math.ceil(duration / SAMPLE_PERIOD_S) + 1)
        times = np.linspace(0.0, duration, n)
        qs = [start_q.copy()]
        for t in times[1:]:
            u = distance(t) / length
            pose = _Pose(start.position + u * (goal.position - start.position), _slerp(start.orientation, goal.orientation, u))
            q, err = kin.ik(pose, qs[-1])
            if err > _IK_TOLERANCE_M:
                raise CommandError(
                    f"pick-and-place {name}: TCP position {np.round(pose.position, 3).tolist()} m "
                    f"(cell frame) is out of reach (IK error {err * 1e3:.1f} mm)"
                )
            if np.abs(q - qs[-1]).max() > _MAX_JOINT_STEP_RAD:
                raise CommandError(f"pick-and-place {name}: inverse kinematics jumped between configurations")
            qs.append(q)
        positions = np.array(qs)
        qd = np.abs(np.diff(positions, axis=0)) / np.diff(times)[:, None]
        ratio = float((qd / limits).max())
        if ratio <= 1.0:
            return JointTrajectory(ARM_JOINT_NAMES, positions, times, goal_id=name)
        v_max /= ratio * 1.02  # slow this segment down so every joint stays within its limit
        a_max /= (ratio * 1.02) ** 2
    raise CommandError(f"pick-and-place {name}: cannot respect the joint velocity limits")


def plan_pick_and_place(
    robot: Robot, program: PickAndPlace, *, start_q: tuple[float, ...] = PANDA_HOME_POSITION
) -> list[RobotCommand]:
    """Plan one pick-and-place cycle as a list of commands to submit one after another.

    Waypoints (TCP = `panda_grasptarget`, the point between the fingertips; gripper pointing
    down): above pick, down to the cube's centre, close the gripper, up, above place, down, open,
    up, back to the start pose. `program.pick` / `program.place` are the centre of the cube's
    bottom face (the surface it stands on), `cell` frame. Each move is a straight line in
    Cartesian space (orientation by slerp) with a trapezoidal speed profile: peak TCP speed
    `robot.max_tcp_speed_mps`, acceleration `MAX_TCP_ACCELERATION_MPS2` (2.5 m/s^2), sampled
    every 10 ms and converted by PyBullet IK in a private DIRECT client. A segment is slowed
    down (uniformly re-timed) until every joint stays below 90 % of the Franka Emika Panda
    datasheet velocity limits (2.175 rad/s joints 1-4, 2.61 rad/s joints 5-7;
    `PANDA_JOINT_VELOCITY_LIMITS_RADPS`). The gripper's yaw is the direction from the base to
    the middle of pick and place, snapped to the cube's faces (multiples of 90 degrees).

    The cube is grasped by friction (see `PyBulletPandaBackend`): close = `GripperCommand(0.0,
    40 N)`, the fingers stop on the cube; open = `GripperCommand(0.08)`.

    Args:
        robot: the cell's robot (base pose, speed limit).
        program: pick and place positions, approach height, cube size.
        start_q: (7,) radians: where the robot is when the program starts and where it returns.

    Returns:
        9 commands: 7 `JointTrajectory` (goal ids `pick_and_place/<n>-<step>`) and 2
        `GripperCommand`; each trajectory's first point is the previous one's last (time 0).

    Raises:
        CommandError: a waypoint is out of reach or the joint limits cannot be respected.
    """
    kin = _Kinematics(robot)
    try:
        q0 = np.array(start_q, dtype=np.float64)
        home = kin.fk(q0)
        half = program.box_size_m / 2
        pick = np.array(program.pick) + [0.0, 0.0, half]
        place = np.array(program.place) + [0.0, 0.0, half]
        up = np.array([0.0, 0.0, program.approach_height_m])
        base = np.array(robot.base.position)
        mid = (pick + place) / 2 - base
        yaw = math.atan2(mid[1], mid[0])
        yaw = round(yaw / (math.pi / 2)) * (math.pi / 2)
        down = np.array(pybullet.getQuaternionFromEuler([math.pi, 0.0, yaw]))
        steps: list[tuple[str, _Pose | GripperCommand]] = [
            ("approach_pick", _Pose(pick + up, down)),
            ("descend_pick", _Pose(pick, down)),
            ("grasp", GripperCommand(0.0, GRASP_EFFORT_N)),
            ("lift", _Pose(pick + up, down)),
            ("transfer", _Pose(place + up, down)),
            ("descend_place", _Pose(place, down)),
            ("release", GripperCommand(FRANKA_HAND_MAX_OPENING_M)),
            ("retreat", _Pose(place + up, down)),
            ("return", home),
        ]
        commands: list[RobotCommand] = []
        q = q0
        for i, (step, target) in enumerate(steps, start=1):
            goal_id = f"pick_and_place/{i}-{step}"
            if isinstance(target, GripperCommand):
                commands.append(GripperCommand(target.position_m, target.max_effort_n, goal_id=goal_id))
                continue
            traj = _plan_segment(kin, q, target, goal_id, robot)
            q = traj.positions[-1]
            commands.append(traj)
        if np.abs(q - q0).max() > 0.05:
            # the return IK found another arm configuration: blend the last points into start_q
            last = commands[-1]
            if isinstance(last, JointTrajectory):
                pos = last.positions.copy()
                pos[-1] = q0
                commands[-1] = JointTrajectory(ARM_JOINT_NAMES, pos, last.time_from_start_s, last.goal_id)
        return commands
    finally:
        kin.close()
