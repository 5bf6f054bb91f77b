"""Safety outputs: how the monitor's verdict reaches the cell's certified safety chain.

xrcell is the supervisory layer, not a certified safety function (DESIGN.md, "Safety model").
The final stop is done by the certified chain: a safety PLC input, or the robot's
safeguard-stop input. A `SafetyOutput` drives that input every monitor cycle and carries a
heartbeat the certified side watches: when the heartbeat stops (xrcell hangs, crashes, loses the
network), the certified side stops the robot on its own. What is sent is a signal to a
certified chain; the output itself is not a certified function and claims no performance level.

Backends (`SAFETY_OUTPUTS`, created by `create_safety_output`):

    sim      `safety.output.sim.SimSafetyOutput`: in-process; the sim robot reads its
             `stop_required` as its safeguard-stop input.
    modbus   `safety.output.modbus.ModbusSafetyOutput`: Modbus TCP through pymodbus; a
             "run permitted" coil and a heartbeat counter in a holding register.
"""

from safety.output.base import (
    SAFETY_OUTPUTS,
    OutputStatus,
    SafetyOutput,
    SafetyOutputError,
    create_safety_output,
)
from safety.output.sim import SimSafetyOutput

__all__ = [
    "SAFETY_OUTPUTS",
    "OutputStatus",
    "SafetyOutput",
    "SafetyOutputError",
    "SimSafetyOutput",
    "create_safety_output",
]
