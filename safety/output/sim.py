"""The simulated safety output of the sim cell: what a safeguard-stop input would see."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Callable

from safety.output.base import OutputStatus, SafetyOutputError

log = logging.getLogger(__name__)


class SimSafetyOutput:
    """An in-process `SafetyOutput`: records every verdict; the sim robot reads `stop_required`
    as its safeguard-stop input, the way a robot controller reads a wired input.

    `stop_required` behaves like the certified side of a real cell: it is True (stop) before
    `start()`, after `stop()`, when the newest verdict says stop, and when no `set_safe` came
    within `input_timeout_s` (the heartbeat watchdog of a safety PLC). `healthy()` is True while
    started, unless a fault was injected with `inject_fault` (fault-injection tests of the
    monitor's contract).

    Thread safety: every method may be called from any thread; all return at once.

    Args:
        name: the output's name.
        input_timeout_s: heartbeat watchdog, s: no `set_safe` for longer means stop.
        history: how many verdicts `history()` keeps.
        clock_ns: monotonic clock (tests may pass a fake one).

    Raises:
        SafetyOutputError: `input_timeout_s` <= 0 or `history` < 1.
    """

    def __init__(self, name: str = "sim", *, input_timeout_s: float = 0.1, history: int = 10_000,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        if not input_timeout_s > 0:
            raise SafetyOutputError(f"sim output {name!r}: input_timeout_s must be > 0, got {input_timeout_s}")
        if history < 1:
            raise SafetyOutputError(f"sim output {name!r}: history must be >= 1, got {history}")
        self.name = name
        self._timeout_ns = int(input_timeout_s * 1e9)
        self._clock = clock_ns
        self._lock = threading.Lock()
        self._running = False
        self._fault: str | None = None
        self._latest: tuple[bool, int, int] | None = None  # (stop_required, seq, stamp_ns)
        self._heartbeat = 0
        self._history: collections.deque[tuple[int, bool, int]] = collections.deque(maxlen=history)

    def start(self) -> None:
        """Arm the output (stop_required stays True until the first verdict says otherwise)."""
        with self._lock:
            self._running = True

    def set_safe(self, stop_required: bool, seq: int) -> None:
        """Store the verdict and beat the heartbeat."""
        now = self._clock()
        with self._lock:
            self._latest = (bool(stop_required), int(seq), now)
            self._heartbeat = (self._heartbeat + 1) & 0xFFFF
            self._history.append((now, bool(stop_required), int(seq)))

    @property
    def stop_required(self) -> bool:
        """The safeguard-stop input as the sim robot sees it: True = stop and hold."""
        with self._lock:
            return self._stop_required_locked(self._clock())

    def _stop_required_locked(self, now: int) -> bool:
        if not self._running or self._latest is None:
            return True
        stop, _seq, stamp = self._latest
        return stop or now - stamp > self._timeout_ns

    def healthy(self) -> bool:
        """True while started and no fault is injected."""
        with self._lock:
            return self._running and self._fault is None

    def inject_fault(self, reason: str) -> None:
        """Make the output unhealthy with `reason` (as a lost link would)."""
        with self._lock:
            self._fault = reason
        log.warning("sim safety output %s: fault injected: %s", self.name, reason)

    def clear_fault(self) -> None:
        """Undo `inject_fault`."""
        with self._lock:
            self._fault = None

    def status(self) -> OutputStatus:
        """See `OutputStatus`; `run_permitted_sent` is the negated `stop_required` input."""
        now = self._clock()
        with self._lock:
            stop, seq, stamp = self._latest if self._latest is not None else (True, 0, None)
            if not self._running:
                reason = "not started" if stamp is None else "stopped"
            else:
                reason = self._fault or "ok"
            return OutputStatus(self.name, self._running and self._fault is None, reason, stop, seq,
                                None if stamp is None else not self._stop_required_locked(now),
                                self._heartbeat, stamp)

    def history(self) -> list[tuple[int, bool, int]]:
        """The kept verdicts, oldest first: (monotonic ns, stop_required, seq)."""
        with self._lock:
            return list(self._history)

    def stop(self) -> None:
        """Disarm: stop_required becomes True for good."""
        with self._lock:
            self._running = False
