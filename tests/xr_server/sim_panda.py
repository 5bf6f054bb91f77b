"""The real simulated Panda (PyBullet, real time) behind the real command gate, as the XR server's
robot tests and the dashboard's e2e tests drive it."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from content.cell import PickAndPlace, Robot
from robot_bridge.sim import (
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PandaLinkKinematics,
    PyBulletPandaBackend,
)
from safety.decision import SafetyState
from safety.gate import CommandGate


def started_panda(robot: Robot, program: PickAndPlace | None = None,
                  **options: Any) -> PyBulletPandaBackend:
    """A started `PyBulletPandaBackend` of `robot` (with the scene of `program`, if any: its cube)
    at full speed, reset to its home position; `options` go to the backend (e.g.
    ``state_timeout_s``). Shut it down after use."""
    backend = PyBulletPandaBackend(robot, program, **options)
    backend.start()
    backend.set_speed_scale(1.0, 1)
    backend.reset()
    return backend


def panda_gate(backend: PyBulletPandaBackend, mode_source: Callable[[], SafetyState | None],
               kinematics: PandaLinkKinematics, **options: Any) -> CommandGate:
    """The command gate in front of `backend` with the Panda's joint velocity and acceleration
    limits and `kinematics`; `options` go to `CommandGate` (e.g. ``zones``)."""
    accelerations = np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2)
    return CommandGate(backend, mode_source, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
                       kinematics=kinematics, joint_acceleration_limits_radps2=accelerations,
                       **options)
