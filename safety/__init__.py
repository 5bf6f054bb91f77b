"""Safety: speed and separation monitoring (ISO/TS 15066), the command gate, watchdogs.

Heavy libraries (MediaPipe) load only in `safety.perception`; this package and its
decision core import in milliseconds.
"""

from safety.decision import ClosestPair, Memory, SafetyMode, SafetyState, decide
from safety.errors import PerceptionError, SafetyError
from safety.gate import Actor, CommandGate, GateAnswer, SafetyChannel, Verdict
from safety.monitor import SafetyMonitor
from safety.ssm import (
    ProtectiveSeparationDistance,
    StoppingModel,
    max_robot_speed_mps,
    protective_separation_distance,
)

__all__ = [
    "Actor",
    "ClosestPair",
    "CommandGate",
    "GateAnswer",
    "Memory",
    "PerceptionError",
    "ProtectiveSeparationDistance",
    "SafetyChannel",
    "SafetyError",
    "SafetyMode",
    "SafetyMonitor",
    "SafetyState",
    "StoppingModel",
    "Verdict",
    "decide",
    "max_robot_speed_mps",
    "protective_separation_distance",
]
