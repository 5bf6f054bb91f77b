"""Checks a received sensor_msgs/JointState against the robot's joints. Pure functions.

A driver may publish more joints than xrcell commands (fingers, external axes); those are
ignored. Anything else that does not fit is rejected with a reason naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robot_bridge.errors import BridgeError


class JointStateRejected(BridgeError):
    """A received JointState does not describe the robot's joints; the message says why."""


@dataclass(frozen=True)
class JointSample:
    """The robot's joints from one JointState, in the robot's joint order.

    Attributes:
        stamp_unix_ns: header.stamp as integer UNIX nanoseconds (0 when the driver left it 0).
        position: (n,) radians (metres for prismatic joints).
        velocity: (n,) rad/s, or None when the message carried no velocities.
    """

    stamp_unix_ns: int
    position: np.ndarray
    velocity: np.ndarray | None


def check_joint_state(msg: object, joint_names: tuple[str, ...]) -> JointSample:
    """Extract the robot's joints from a JointState message.

    Args:
        msg: a `robot_bridge.dds.msgs.JointState` (anything with its fields).
        joint_names: the robot's joints, in the order of the returned vectors.

    Returns:
        The sample.

    Raises:
        JointStateRejected: lengths of `name`/`position`/`velocity`/`effort` differ, a name
            repeats, a joint of the robot is missing, or a value is not finite.
    """
    names = list(msg.name)  # type: ignore[attr-defined]
    position = list(msg.position)  # type: ignore[attr-defined]
    velocity = list(msg.velocity)  # type: ignore[attr-defined]
    effort = list(msg.effort)  # type: ignore[attr-defined]
    n = len(names)
    if len(position) != n:
        raise JointStateRejected(f"JointState: {n} names but {len(position)} positions")
    if velocity and len(velocity) != n:
        raise JointStateRejected(f"JointState: {n} names but {len(velocity)} velocities")
    if effort and len(effort) != n:
        raise JointStateRejected(f"JointState: {n} names but {len(effort)} efforts")
    if len(set(names)) != n:
        dup = next(x for x in names if names.count(x) > 1)
        raise JointStateRejected(f"JointState: joint name {dup!r} appears more than once")
    where = {name: i for i, name in enumerate(names)}
    missing = [j for j in joint_names if j not in where]
    if missing:
        raise JointStateRejected(
            f"JointState: lacks joint {missing[0]!r} of the robot (has {', '.join(names) or 'none'})"
        )
    idx = [where[j] for j in joint_names]
    q = np.array([position[i] for i in idx], dtype=np.float64)
    bad = ~np.isfinite(q)
    if bad.any():
        raise JointStateRejected(f"JointState: position of {joint_names[int(np.argmax(bad))]!r} is not finite")
    qd = None
    if velocity:
        qd = np.array([velocity[i] for i in idx], dtype=np.float64)
        bad = ~np.isfinite(qd)
        if bad.any():
            raise JointStateRejected(
                f"JointState: velocity of {joint_names[int(np.argmax(bad))]!r} is not finite"
            )
    stamp = msg.header.stamp  # type: ignore[attr-defined]
    stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
    if not math.isfinite(stamp_ns) or stamp.nanosec >= 1_000_000_000:
        raise JointStateRejected(f"JointState: header.stamp.nanosec {stamp.nanosec} is not below 1e9")
    return JointSample(stamp_ns, q, qd)


def gripper_opening(msg: object, finger_names: tuple[str, ...]
                    ) -> tuple[float, float | None] | None:
    """The finger opening from a JointState that carries the gripper's joints.

    Args:
        msg: a `robot_bridge.dds.msgs.JointState` (already accepted by `check_joint_state`).
        finger_names: the gripper's prismatic finger joints; the opening is the sum of their
            positions (Panda: `panda_finger_joint1` + `panda_finger_joint2`, 0 .. 0.08 m).

    Returns:
        (opening, metres; finger speed, m/s: the sum of the fingers' absolute velocities, or None
        when the message has no velocities), or None when a finger joint is missing or a value
        is not finite (the grip is then unknown for this sample).
    """
    names = list(msg.name)  # type: ignore[attr-defined]
    position = list(msg.position)  # type: ignore[attr-defined]
    velocity = list(msg.velocity)  # type: ignore[attr-defined]
    if not finger_names or any(f not in names for f in finger_names):
        return None
    idx = [names.index(f) for f in finger_names]
    opening = float(sum(position[i] for i in idx))
    if not math.isfinite(opening):
        return None
    if not velocity:
        return opening, None
    speed = float(sum(abs(velocity[i]) for i in idx))
    return (opening, speed) if math.isfinite(speed) else (opening, None)
