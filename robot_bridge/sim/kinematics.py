"""Link capsules of the Panda at any joint positions: the robot model the gate sweeps a path with.

A private PyBullet DIRECT client holds the URDF at the cell's base pose; forward kinematics
places each link capsule of `PANDA_LINK_CAPSULES` in the `cell` frame. The same capsules the
simulated backend publishes in `RobotState`, so the gate checks a path with the geometry the
monitor uses.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pybullet

from content.cell import Robot
from robot_bridge.sim.panda import (
    ARM_JOINT_NAMES,
    PANDA_LINK_CAPSULES,
    panda_urdf_path,
    quaternion_matrix,
    robot_capsules,
    yaw_quaternion,
)


class PandaLinkKinematics:
    """Forward kinematics of the Panda's link capsules.

    Thread safety: `link_segments` may be called from any thread (a lock serialises the
    PyBullet client).

    Args:
        robot: the cell's robot (its base pose, and its payload's capsule: `link_names` then
            ends with `payload`).
    """

    link_names: tuple[str, ...] = tuple(c.name for c in PANDA_LINK_CAPSULES)
    link_radii_m: np.ndarray = np.array([c.radius_m for c in PANDA_LINK_CAPSULES])
    joint_names: tuple[str, ...] = ARM_JOINT_NAMES

    def __init__(self, robot: Robot) -> None:
        p = pybullet
        capsules = robot_capsules(robot.payload)
        self.link_names = tuple(c.name for c in capsules)
        self.link_radii_m = np.array([c.radius_m for c in capsules])
        self._lock = threading.Lock()
        self._cid = p.connect(p.DIRECT)
        base_pos = np.array(robot.base.position, dtype=np.float64)
        base_quat = yaw_quaternion(math.radians(robot.base.yaw_deg))
        self._body = p.loadURDF(str(panda_urdf_path()), basePosition=base_pos.tolist(),
                                baseOrientation=base_quat, useFixedBase=True, physicsClientId=self._cid)
        names = {}
        for j in range(p.getNumJoints(self._body, physicsClientId=self._cid)):
            info = p.getJointInfo(self._body, j, physicsClientId=self._cid)
            names[info[1].decode()] = j
            names[info[12].decode()] = j
        self._arm = [names[n] for n in ARM_JOINT_NAMES]
        self._links = [names.get(c.urdf_link, -1) if c.urdf_link != "panda_link0" else -1 for c in capsules]
        self._a = np.array([c.a for c in capsules])
        self._b = np.array([c.b for c in capsules])
        rot = quaternion_matrix(base_quat)
        self._base_rot = rot
        self._link0 = np.stack([base_pos + rot @ self._a[0], base_pos + rot @ self._b[0]])
        self._moving = sorted({i for i in self._links if i >= 0})
        self._tcp = names["panda_grasptarget"]
        # calculateJacobian wants a value for every movable joint (arm and fingers), in index order
        cid = self._cid
        self._movable = [j for j in range(p.getNumJoints(self._body, physicsClientId=cid))
                         if p.getJointInfo(self._body, j, physicsClientId=cid)[2] != p.JOINT_FIXED]
        self._arm_cols = [self._movable.index(j) for j in self._arm]

    def link_segments(self, positions: np.ndarray) -> np.ndarray:
        """Capsule axes of every link at each row of joint positions.

        Args:
            positions: (N, 7) arm joint positions, radians, `joint_names` order.

        Returns:
            (N, K, 2, 3) float64 capsule axis end points, metres, `cell` frame; radii are
            `link_radii_m`, names `link_names`.
        """
        q = np.atleast_2d(np.asarray(positions, dtype=np.float64))
        out = np.empty((q.shape[0], len(self._links), 2, 3))
        p, cid = pybullet, self._cid
        with self._lock:
            for n, row in enumerate(q):
                for j, v in zip(self._arm, row):
                    p.resetJointState(self._body, j, float(v), physicsClientId=cid)
                states = p.getLinkStates(self._body, self._moving, computeForwardKinematics=1, physicsClientId=cid)
                frames = dict(zip(self._moving, states))
                out[n, 0] = self._link0
                for c, link in enumerate(self._links):
                    if link < 0:
                        continue
                    origin, rot = np.array(frames[link][4]), quaternion_matrix(frames[link][5])
                    out[n, c, 0] = origin + rot @ self._a[c]
                    out[n, c, 1] = origin + rot @ self._b[c]
        return out

    def _set(self, q: np.ndarray) -> None:
        for j, v in zip(self._arm, q):
            pybullet.resetJointState(self._body, j, float(v), physicsClientId=self._cid)

    def tool_pose(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pose of the TCP (`panda_grasptarget`, the tool frame of a `CartesianJog`).

        Args:
            position: (7,) arm joint positions, radians, `joint_names` order.

        Returns:
            (origin (3,) metres, rotation (3, 3) tool axes as columns), `cell` frame.
        """
        p, cid = pybullet, self._cid
        with self._lock:
            self._set(np.asarray(position, dtype=np.float64))
            ls = p.getLinkState(self._body, self._tcp, computeForwardKinematics=1,
                                physicsClientId=cid)
        return np.array(ls[4]), quaternion_matrix(ls[5])

    def tool_jacobian(self, position: np.ndarray) -> np.ndarray:
        """Geometric Jacobian of the TCP (PyBullet's `calculateJacobian`).

        Args:
            position: (7,) arm joint positions, radians, `joint_names` order.

        Returns:
            (6, 7) float64, `cell` frame: rows 0-2 the TCP origin's linear velocity per joint
            velocity (m/rad), rows 3-5 the angular velocity (rad/rad).
        """
        p, cid = pybullet, self._cid
        q = np.asarray(position, dtype=np.float64)
        with self._lock:
            self._set(q)
            full = [float(s[0]) for s in
                    p.getJointStates(self._body, self._movable, physicsClientId=cid)]
            zeros = [0.0] * len(full)
            lin, ang = p.calculateJacobian(self._body, self._tcp, [0.0, 0.0, 0.0], full, zeros,
                                           zeros, physicsClientId=cid)
        # with a fixed base, PyBullet gives the Jacobian in the base frame: rotate it into `cell`
        jac = np.vstack([self._base_rot @ np.asarray(lin), self._base_rot @ np.asarray(ang)])
        return jac[:, self._arm_cols]

    def tool_ik(self, position: np.ndarray, orientation: np.ndarray,
                seed: np.ndarray) -> tuple[np.ndarray, float]:
        """Joint positions that put the TCP at a pose, near `seed` (PyBullet's
        `calculateInverseKinematics`, damped least squares, within the URDF's joint limits).

        Args:
            position: (3,) TCP origin, metres, `cell` frame.
            orientation: (3, 3) TCP axes as columns (as `tool_pose` gives them), `cell` frame.
            seed: (7,) joint positions to start from, radians, `joint_names` order.

        Returns:
            ((7,) joint positions, radians, within the URDF's limits; the distance of the TCP
            reached there from `position`, metres). A target out of reach gives the closest the
            solver found and a large distance: the caller decides what is close enough.
        """
        p, cid = pybullet, self._cid
        target = np.asarray(position, dtype=np.float64)
        rot = np.asarray(orientation, dtype=np.float64)
        # PyBullet solves in its world frame, which is `cell` here (the URDF is loaded at the base)
        quat = _matrix_quaternion(rot)
        best_q, best_err = np.asarray(seed, dtype=np.float64), math.inf
        with self._lock:
            lower = [p.getJointInfo(self._body, j, physicsClientId=cid)[8] for j in self._arm]
            upper = [p.getJointInfo(self._body, j, physicsClientId=cid)[9] for j in self._arm]
            q = best_q.copy()
            for _ in range(10):
                self._set(q)
                sol = p.calculateInverseKinematics(
                    self._body, self._tcp, target.tolist(), quat, maxNumIterations=100,
                    residualThreshold=1e-6, physicsClientId=cid)
                q = np.clip(np.asarray(sol[:7], dtype=np.float64), lower, upper)
                self._set(q)
                reached = np.array(p.getLinkState(self._body, self._tcp, computeForwardKinematics=1,
                                                  physicsClientId=cid)[4])
                err = float(np.linalg.norm(reached - target))
                if err < best_err:
                    best_q, best_err = q.copy(), err
                if err < 2e-4:
                    break
        return best_q, best_err

    def close(self) -> None:
        """Release the PyBullet client."""
        with self._lock:
            pybullet.disconnect(self._cid)


def _matrix_quaternion(rot: np.ndarray) -> list[float]:
    """Unit quaternion (x, y, z, w) of a (3, 3) rotation matrix (Shepperd's method)."""
    m = rot
    trace = float(m[0, 0] + m[1, 1] + m[2, 2])
    if trace > 0:
        k = 2.0 * math.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / k, (m[0, 2] - m[2, 0]) / k, (m[1, 0] - m[0, 1]) / k, k / 4]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k_ = (i + 1) % 3, (i + 2) % 3
        k = 2.0 * math.sqrt(1.0 + m[i, i] - m[j, j] - m[k_, k_])
        q = [0.0, 0.0, 0.0, (m[k_, j] - m[j, k_]) / k]
        q[i] = k / 4
        q[j] = (m[j, i] + m[i, j]) / k
        q[k_] = (m[k_, i] + m[i, k_]) / k
    return [float(v) for v in q]
