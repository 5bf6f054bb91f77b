"""Safety: speed and separation monitoring (ISO/TS 15066), the command gate, watchdogs.

Heavy libraries (MediaPipe) load only in `safety.perception`; the names below load on first use,
so importing `safety.perception` does not load the decision core (its numba kernels).
"""

import importlib

#: Where each public name lives. Loaded on first use (PEP 562): `import safety.perception...` (the
#: tracking process, `xrcell track`) must not load the decision core's compiled kernels (numba:
#: about 1.7 s of CPU from its cache, several seconds to compile without one) nor SQLAlchemy.
_EXPORTS = {
    "safety.decision": ("ClosestPair", "Memory", "SafetyMode", "SafetyState", "decide"),
    "safety.errors": ("OccupancyError", "PerceptionError", "SafetyError"),
    "safety.occupancy": ("BackgroundModel", "OccupancyChannel", "OccupancyMeasurement"),
    "safety.placed_mask": ("PlacedObjectMask", "validate_placed_objects"),
    "safety.gate": ("Actor", "CommandGate", "GateAnswer", "SafetyChannel", "Verdict"),
    "safety.monitor": ("SafetyMonitor",),
    "safety.output": ("OutputStatus", "SafetyOutput", "SafetyOutputError", "SimSafetyOutput",
                      "create_safety_output"),
    "safety.ssm": ("ProtectiveSeparationDistance", "StoppingModel", "max_robot_speed_mps",
                   "protective_separation_distance"),
    "safety.audit": ("AuditBreak", "AuditCommitTimeout", "AuditError", "AuditKind", "AuditLog",
                     "AuditRecord", "AuditStatus", "BreakProblem"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> object:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'safety' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    *_EXPORTS["safety.audit"],
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
