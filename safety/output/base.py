"""The `SafetyOutput` protocol, its status record and the registry of outputs."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable, Protocol

from safety.errors import SafetyError


class SafetyOutputError(SafetyError):
    """A safety output cannot be created (unknown name, bad configuration); the message names
    the output and the field."""


@dataclass(frozen=True)
class OutputStatus:
    """What an output knows about itself and its link (any thread may ask).

    Attributes:
        name: the output's name.
        healthy: see `SafetyOutput.healthy`.
        reason: "ok", or what is wrong in words (becomes the monitor's fault cause).
        stop_required: the newest value the monitor gave to `set_safe` (True before the first).
        seq: the `seq` of that call (0 before the first).
        run_permitted_sent: what the certified side last received: True run permitted, False
            stop, None nothing yet.
        heartbeat: the last heartbeat value sent (0 before the first).
        last_ok_ns: monotonic time of the last successful transfer, None if none yet.
    """

    name: str
    healthy: bool
    reason: str
    stop_required: bool
    seq: int
    run_permitted_sent: bool | None
    heartbeat: int
    last_ok_ns: int | None


class SafetyOutput(Protocol):
    """The monitor's line to the certified safety chain.

    Contract with the monitor (which owns the output):

    - `start()` once before the first cycle, `stop()` at shutdown. From `start()` until the
      first successful transfer the output is unhealthy (start-up is a fault stop anyway).
    - `set_safe(stop_required, seq)` on every cycle, whatever the mode and whether or not the
      value changed: the call is also the heartbeat. The output sends the newest value and
      advances its heartbeat only while these calls keep coming (within its input timeout);
      when they stop, it sends "stop" and freezes the heartbeat, so the certified side stops
      the robot if the monitor loop dies or hangs. `set_safe` never blocks and never raises:
      it stores the value; transfers happen on the output's own thread.
    - `healthy()` every cycle: False means the certified side may not be receiving xrcell's
      stop (link down, device refused a write, no successful transfer within the health
      timeout). The monitor must treat False as a fault: `fault_stop`, latched, with
      `status().reason` as the cause, reset by a supervisor once the output is healthy
      again. Meanwhile the certified side sees a frozen heartbeat and stops the robot itself.

    Thread safety: every method may be called from any thread; `set_safe`, `healthy` and
    `status` return at once.
    """

    name: str

    def start(self) -> None:
        """Start the output's thread (if any) and its link."""

    def set_safe(self, stop_required: bool, seq: int) -> None:
        """Store the newest verdict: True = the robot must stop; `seq` = the monitor's cycle
        or command sequence number, kept for the status and the logs."""

    def healthy(self) -> bool:
        """True while the newest verdicts reach the certified side (see the class docstring)."""

    def status(self) -> OutputStatus:
        """The output's state for the dashboard and the audit log."""

    def stop(self) -> None:
        """Send "stop" if possible, stop the heartbeat and release the link. Idempotent."""


#: name -> "module:factory"; imported lazily so that pymodbus loads only when used.
SAFETY_OUTPUTS: dict[str, str] = {
    "sim": "safety.output.sim:SimSafetyOutput",
    "modbus": "safety.output.modbus:ModbusSafetyOutput",
}

OutputFactory = Callable[..., SafetyOutput]


def create_safety_output(kind: str, **options: object) -> SafetyOutput:
    """Create the output registered as `kind` with its options (e.g. ``host=``, ``port=``).

    Raises:
        SafetyOutputError: unknown kind, unknown option or a bad value (the message names it).
    """
    try:
        target = SAFETY_OUTPUTS[kind]
    except KeyError:
        raise SafetyOutputError(
            f"unknown safety output {kind!r}; known: {', '.join(sorted(SAFETY_OUTPUTS))}") from None
    module_name, _, attr = target.partition(":")
    try:
        factory: OutputFactory = getattr(importlib.import_module(module_name), attr)
    except ImportError as exc:
        raise SafetyOutputError(f"safety output {kind!r} needs {exc.name}: {exc}") from exc
    try:
        return factory(**options)
    except TypeError as exc:
        raise SafetyOutputError(f"safety output {kind!r}: {exc}") from exc
