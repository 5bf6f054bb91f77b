"""Safety: speed and separation monitoring (ISO/TS 15066), the command gate, watchdogs.

Heavy libraries (MediaPipe) load only in `safety.perception`; this package and its
decision core import in milliseconds.
"""

from safety.decision import ClosestPair, Memory, SafetyMode, SafetyState, decide
from safety.errors import OccupancyError, PerceptionError, SafetyError
from safety.occupancy import BackgroundModel, OccupancyChannel, OccupancyMeasurement
from safety.placed_mask import PlacedObjectMask, validate_placed_objects
from safety.gate import Actor, CommandGate, GateAnswer, SafetyChannel, Verdict
from safety.monitor import SafetyMonitor
from safety.output import (
    OutputStatus,
    SafetyOutput,
    SafetyOutputError,
    SimSafetyOutput,
    create_safety_output,
)
from safety.ssm import (
    ProtectiveSeparationDistance,
    StoppingModel,
    max_robot_speed_mps,
    protective_separation_distance,
)

# The audit log needs SQLAlchemy (about 0.2 s to import): loaded on first use (PEP 562).
_AUDIT_NAMES = ("AuditBreak", "AuditCommitTimeout", "AuditError", "AuditKind", "AuditLog", "AuditRecord",
                "AuditStatus", "BreakProblem")


def __getattr__(name: str) -> object:
    if name in _AUDIT_NAMES:
        from safety import audit
        return getattr(audit, name)
    raise AttributeError(f"module 'safety' has no attribute {name!r}")


__all__ = [
    *_AUDIT_NAMES,
    "Actor",
    "BackgroundModel",
    "ClosestPair",
    "CommandGate",
    "GateAnswer",
    "Memory",
    "OccupancyChannel",
    "OccupancyError",
    "OccupancyMeasurement",
    "OutputStatus",
    "PerceptionError",
    "PlacedObjectMask",
    "ProtectiveSeparationDistance",
    "SafetyChannel",
    "SafetyError",
    "SafetyMode",
    "SafetyMonitor",
    "SafetyOutput",
    "SafetyOutputError",
    "SafetyState",
    "SimSafetyOutput",
    "StoppingModel",
    "Verdict",
    "create_safety_output",
    "decide",
    "max_robot_speed_mps",
    "protective_separation_distance",
    "validate_placed_objects",
]
