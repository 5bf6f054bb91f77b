"""Modbus TCP safety output (pymodbus): a "run permitted" coil and a heartbeat register.

What the safety PLC sees (addresses are the protocol's 0-based data addresses, configurable):

    coil `run_permitted_coil` (default 0)        written with function 05 (Write Single Coil)
        1 = the monitor permits motion, 0 = stop. Written every period.
    holding register `heartbeat_register` (default 0)   written with function 06 (Write Single Register)
        a counter 0..65535 (wrapping) that advances by 1 every `period_s` (default 50 ms) while
        the monitor's verdicts keep arriving. Written after the coil of the same period, so a
        new counter value also means the coil was just refreshed.

The PLC program (certified, not xrcell's) must stop the robot when the coil is 0 OR the counter
has not changed within its watchdog time (for example 4 x `period_s` plus the network's worst
latency). The coil alone is not enough: a crashed xrcell leaves its last value, 1, in place; only
the watchdog on the counter catches that. This output is a signal into that certified chain; it
is not a certified safety function itself, and Modbus TCP is not a safety protocol (no CRC
over the application data, no sequence protection of its own beyond the counter).

When the monitor stops calling `set_safe` for `input_timeout_s`, the output writes 0 to the coil
and stops advancing the counter. When the link fails (connection refused or lost, timeout,
exception response), `healthy()` turns False with the reason, and the output's thread reconnects
with exponential backoff from `reconnect_min_s` to `reconnect_max_s`, never blocking the caller.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusException

from safety.output.base import OutputStatus, SafetyOutputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModbusOutputConfig:
    """Where and how often the output writes.

    Attributes:
        host: the PLC's address.
        port: TCP port (502 is Modbus TCP's).
        device_id: Modbus unit identifier (1 to 247; many TCP devices ignore it).
        run_permitted_coil: coil address, 0-based (coil 00001 in 1-based tables is 0).
        heartbeat_register: holding register address, 0-based (40001 is 0).
        period_s: write period and heartbeat step, s.
        input_timeout_s: no `set_safe` for longer than this: write stop, freeze the counter, s.
        health_timeout_s: no successful write for longer than this: unhealthy, s
            (default 3 x period_s).
        request_timeout_s: connect and response timeout of one request, s.
        reconnect_min_s, reconnect_max_s: backoff between reconnection attempts, s.

    Raises:
        SafetyOutputError: a field out of range; the message names it.
    """

    host: str
    port: int = 502
    device_id: int = 1
    run_permitted_coil: int = 0
    heartbeat_register: int = 0
    period_s: float = 0.05
    input_timeout_s: float = 0.1
    health_timeout_s: float | None = None
    request_timeout_s: float = 0.25
    reconnect_min_s: float = 0.1
    reconnect_max_s: float = 2.0

    def __post_init__(self) -> None:
        def bad(field: str, rule: str) -> SafetyOutputError:
            return SafetyOutputError(f"modbus output: {field} must be {rule}, got {getattr(self, field)!r}")

        if not isinstance(self.host, str) or not self.host:
            raise bad("host", "a host name or address")
        for field, low, high in (("port", 1, 65535), ("device_id", 0, 247),
                                 ("run_permitted_coil", 0, 65535), ("heartbeat_register", 0, 65535)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise bad(field, f"an integer from {low} to {high}")
        for field in ("period_s", "input_timeout_s", "request_timeout_s", "reconnect_min_s", "reconnect_max_s"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise bad(field, "> 0 s")
        if self.health_timeout_s is not None and not self.health_timeout_s >= self.period_s:
            raise bad("health_timeout_s", f">= period_s ({self.period_s} s)")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise bad("reconnect_max_s", f">= reconnect_min_s ({self.reconnect_min_s} s)")

    @property
    def health_timeout(self) -> float:
        """`health_timeout_s` or its default, s."""
        return 3.0 * self.period_s if self.health_timeout_s is None else self.health_timeout_s


class _Refused(Exception):
    """The device answered a write with a Modbus exception response."""


class ModbusSafetyOutput:
    """`SafetyOutput` over Modbus TCP (see the module docstring for the register map).

    Thread safety: `set_safe`, `healthy` and `status` may be called from any thread and return
    at once (they read or replace one tuple under a lock). The thread "safety-output-modbus"
    owns the pymodbus client: connects, writes every `period_s`, reconnects.

    Args:
        host: the PLC's address; the other keyword arguments are `ModbusOutputConfig` fields.
        name: the output's name in the status and logs.
        config: a whole `ModbusOutputConfig` instead of the keyword arguments.

    Raises:
        SafetyOutputError: a bad configuration value (the message names the field).
    """

    def __init__(self, host: str | None = None, *, name: str = "modbus",
                 config: ModbusOutputConfig | None = None, **fields: object) -> None:
        if config is None:
            config = ModbusOutputConfig(host=host, **fields)  # type: ignore[arg-type]
        elif host is not None or fields:
            raise SafetyOutputError("modbus output: give either config or host and fields, not both")
        self.name = name
        self.config = config
        self._lock = threading.Lock()
        self._latest: tuple[bool, int, int | None] = (True, 0, None)  # (stop_required, seq, stamp_ns)
        self._sent: bool | None = None
        self._heartbeat = 0
        self._last_ok_ns: int | None = None
        self._problem: str | None = "not started"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the monitor's side -----------------------------------------------------------------
    def start(self) -> None:
        """Start the writer thread (connects in the background)."""
        if self._thread is not None:
            return
        with self._lock:
            self._problem = "connecting"
        self._thread = threading.Thread(target=self._run, name="safety-output-modbus", daemon=True)
        self._thread.start()

    def set_safe(self, stop_required: bool, seq: int) -> None:
        """Store the newest verdict (and so beat the heartbeat); never blocks."""
        latest = (bool(stop_required), int(seq), time.monotonic_ns())
        with self._lock:
            self._latest = latest

    def healthy(self) -> bool:
        """True while the last write succeeded and was no older than the health timeout."""
        return self.status().healthy

    def status(self) -> OutputStatus:
        """See `OutputStatus`."""
        now = time.monotonic_ns()
        with self._lock:
            stop, seq, _stamp = self._latest
            problem, last_ok = self._problem, self._last_ok_ns
            sent, heartbeat = self._sent, self._heartbeat
        if problem is None and (last_ok is None or now - last_ok > self.config.health_timeout * 1e9):
            age = "never" if last_ok is None else f"{(now - last_ok) / 1e9:.3f} s ago"
            problem = (f"no successful write to {self.config.host}:{self.config.port} within "
                       f"{self.config.health_timeout:g} s (last {age})")
        return OutputStatus(self.name, problem is None, problem or "ok", stop, seq, sent, heartbeat, last_ok)

    def stop(self) -> None:
        """Write coil 0 once if the link is up, stop the heartbeat, close. Idempotent."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(2 * self.config.request_timeout_s + 1.0)
        with self._lock:
            self._problem = "stopped"

    # -- the writer thread ------------------------------------------------------------------
    def _set_problem(self, problem: str | None) -> None:
        with self._lock:
            old, self._problem = self._problem, problem
        if old != problem:
            if problem is None:
                log.info("safety output %s: %s -> ok", self.name, old)
            else:
                log.warning("safety output %s: %s", self.name, problem)

    def _write(self, client: ModbusTcpClient, run_permitted: bool, heartbeat: int | None) -> None:
        cfg = self.config
        response = client.write_coil(cfg.run_permitted_coil, run_permitted, device_id=cfg.device_id)
        if response.isError():
            raise _Refused(f"coil {cfg.run_permitted_coil}: exception code {getattr(response, 'exception_code', '?')}")
        if heartbeat is not None:
            response = client.write_register(cfg.heartbeat_register, heartbeat, device_id=cfg.device_id)
            if response.isError():
                raise _Refused(f"holding register {cfg.heartbeat_register}: exception code "
                               f"{getattr(response, 'exception_code', '?')}")

    def _run(self) -> None:
        cfg = self.config
        where = f"{cfg.host}:{cfg.port}"
        client: ModbusTcpClient | None = None
        backoff_s = 0.0
        period_ns = int(cfg.period_s * 1e9)
        next_ns = time.monotonic_ns()
        while not self._stopping.is_set():
            try:
                if client is None:
                    client = ModbusTcpClient(cfg.host, port=cfg.port, timeout=cfg.request_timeout_s,
                                             retries=0, name=f"safety-output-{self.name}")
                    if not client.connect():
                        raise ModbusException(f"cannot connect to {where}")
                    log.info("safety output %s: connected to %s", self.name, where)
                with self._lock:
                    stop, _seq, stamp = self._latest
                now = time.monotonic_ns()
                fresh = stamp is not None and now - stamp <= cfg.input_timeout_s * 1e9
                run_permitted = fresh and not stop
                heartbeat = (self._heartbeat + 1) & 0xFFFF if fresh else self._heartbeat
                self._write(client, run_permitted, heartbeat)
                with self._lock:
                    self._heartbeat, self._sent, self._last_ok_ns = heartbeat, run_permitted, time.monotonic_ns()
                self._set_problem(None)
                backoff_s = 0.0
            except (ModbusException, _Refused, OSError) as exc:
                self._fail(f"write to {where} failed: {exc}", client)
                client = None
                backoff_s = min(cfg.reconnect_max_s, max(cfg.reconnect_min_s, 2 * backoff_s))
                self._stopping.wait(backoff_s)
                next_ns = time.monotonic_ns()
                continue
            except Exception as exc:  # noqa: BLE001 - the output's thread must not die
                log.exception("safety output %s: unexpected error", self.name)
                self._fail(f"unexpected error: {type(exc).__name__}: {exc}", client)
                client = None
                backoff_s = min(cfg.reconnect_max_s, max(cfg.reconnect_min_s, 2 * backoff_s))
                self._stopping.wait(backoff_s)
                next_ns = time.monotonic_ns()
                continue
            next_ns += period_ns
            delay_ns = next_ns - time.monotonic_ns()
            if delay_ns > 0:
                self._stopping.wait(delay_ns / 1e9)
            else:
                next_ns = time.monotonic_ns()  # overran: no burst of catch-up writes
        if client is not None:
            try:  # best effort: a clean stop tells the PLC "stop" at once, not after its watchdog
                self._write(client, False, None)
                with self._lock:
                    self._sent = False
            except Exception:  # noqa: BLE001
                log.warning("safety output %s: final stop write failed", self.name)
            client.close()

    def _fail(self, problem: str, client: ModbusTcpClient | None) -> None:
        self._set_problem(problem.splitlines()[0][:300])
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001
                pass
