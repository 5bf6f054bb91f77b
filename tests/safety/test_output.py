"""Safety outputs: the simulated safeguard-stop input, and Modbus TCP against a real pymodbus
server on loopback playing the safety PLC, with the PLC's heartbeat watchdog."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from safety.errors import SafetyError
from safety.output import (
    SAFETY_OUTPUTS,
    SafetyOutput,
    SafetyOutputError,
    SimSafetyOutput,
    create_safety_output,
)
from safety.output.modbus import ModbusOutputConfig, ModbusSafetyOutput

REPO = Path(__file__).resolve().parents[2]
COIL, REGISTER = 5, 10  # not the defaults, to show the addresses are honoured
WATCHDOG_S = 0.2


def wait_until(predicate, timeout_s: float = 20.0, what: str = "condition") -> None:
    """Poll `predicate` (not a timing assertion: the bound only stops a hung test)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class FakeSafetyPlc:
    """A Modbus TCP server on 127.0.0.1 standing in for the safety PLC: records every write with
    its monotonic time, and implements the PLC's heartbeat watchdog on those records."""

    def __init__(self, port: int = 0) -> None:
        self.writes: list[tuple[int, str, int, object]] = []  # (t_ns, "coil"/"register", address, value)
        self.disconnects: list[int] = []  # t_ns of each client disconnection
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: ModbusTcpServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(port,), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "PLC server did not start"
        self.port = self._server.transport.sockets[0].getsockname()[1]

    async def _action(self, function_code, _start, address, _count, _registers, set_values):
        if set_values is not None:
            kind = "coil" if function_code in (5, 15) else "register"
            with self._lock:
                self.writes.append((time.monotonic_ns(), kind, address, set_values[0]))
        return None

    def _connect(self, connected: bool) -> None:
        if not connected:
            with self._lock:
                self.disconnects.append(time.monotonic_ns())

    def _serve(self, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        device = SimDevice(1, simdata=([SimData(0, count=16, values=False, datatype=DataType.BITS)],
                                       [SimData(0, count=16, values=False, datatype=DataType.BITS)],
                                       [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)],
                                       [SimData(0, count=16, values=0, datatype=DataType.REGISTERS)]),
                           action=self._action)

        async def main():
            self._server = ModbusTcpServer(device, address=("127.0.0.1", port), trace_connect=self._connect)
            await self._server.serve_forever(background=True)
            self._ready.set()
            await self._server.serving

        self._loop.run_until_complete(main())

    def shutdown(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop).result(10)
            self._thread.join(10)

    # -- what the PLC program looks at ------------------------------------------------------
    def snapshot(self) -> list[tuple[int, str, int, object]]:
        with self._lock:
            return list(self.writes)

    def coil(self) -> bool | None:
        values = [v for _, k, a, v in self.snapshot() if k == "coil" and a == COIL]
        return bool(values[-1]) if values else None

    def heartbeats(self) -> list[tuple[int, int]]:
        return [(t, v) for t, k, a, v in self.snapshot() if k == "register" and a == REGISTER]

    def last_change_ns(self) -> int | None:
        """When the counter last took a new value."""
        last, changed = None, None
        for t, value in self.heartbeats():
            if value != last:
                last, changed = value, t
        return changed

    def robot_enabled(self, now_ns: int) -> bool:
        """The PLC's logic: run only while the coil is 1 and the counter changed within WATCHDOG_S."""
        changed = self.last_change_ns()
        return bool(self.coil()) and changed is not None and now_ns - changed <= WATCHDOG_S * 1e9


@pytest.fixture
def plc():
    server = FakeSafetyPlc()
    yield server
    server.shutdown()


def modbus_output(port: int, **kw) -> ModbusSafetyOutput:
    options = dict(port=port, run_permitted_coil=COIL, heartbeat_register=REGISTER, period_s=0.01,
                   input_timeout_s=0.1, reconnect_min_s=0.02, reconnect_max_s=0.1)
    options.update(kw)
    return ModbusSafetyOutput("127.0.0.1", **options)


class Beat:
    """The monitor's side: calls set_safe every 10 ms from its own thread."""

    def __init__(self, output, stop_required: bool = False) -> None:
        self.output, self.stop_required, self.seq = output, stop_required, 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._halt.is_set():
            self.seq += 1
            self.output.set_safe(self.stop_required, self.seq)
            self._halt.wait(0.01)

    def halt(self) -> None:
        self._halt.set()
        self._thread.join()


def increments(beats: list[tuple[int, int]]) -> set[int]:
    return {(b - a) & 0xFFFF for (_, a), (_, b) in zip(beats, beats[1:])}


# -- Modbus TCP against a real server -----------------------------------------------------------

def test_coil_follows_stop_required_and_the_counter_advances_by_one_each_period(plc):
    out = modbus_output(plc.port)
    out.start()
    beat = Beat(out, stop_required=False)
    try:
        wait_until(lambda: plc.coil() is True and len(plc.heartbeats()) >= 10, what="run permitted")
        assert out.healthy() and out.status().run_permitted_sent is True
        beat.stop_required = True
        wait_until(lambda: plc.coil() is False, what="coil 0 after stop_required")
        n = len(plc.heartbeats())
        wait_until(lambda: len(plc.heartbeats()) >= n + 5, what="heartbeat while stopped")
        assert plc.coil() is False  # a stop keeps the heartbeat: the link is fine, motion is not
        beat.stop_required = False
        wait_until(lambda: plc.coil() is True, what="coil 1 again")
    finally:
        beat.halt()
        out.stop()
    beats = plc.heartbeats()
    assert increments(beats) == {1}  # every period exactly one step while verdicts arrive
    assert {a for _, k, a, _v in plc.snapshot()} == {COIL, REGISTER}
    # Each heartbeat follows a coil write of the same period.
    kinds = [k for _, k, _a, _v in plc.snapshot()]
    assert all(kinds[i - 1] == "coil" for i, k in enumerate(kinds) if k == "register")


def test_stop_writes_stop_and_freezes_the_counter_so_the_plc_watchdog_trips(plc):
    out = modbus_output(plc.port)
    out.start()
    beat = Beat(out)
    wait_until(lambda: plc.robot_enabled(time.monotonic_ns()), what="robot enabled")
    beat.halt()
    out.stop()
    stopped_ns = time.monotonic_ns()
    assert not out.healthy() and out.status().reason == "stopped"
    writes = plc.snapshot()
    assert writes[-1][1:] == ("coil", COIL, False)  # the final best-effort "stop"
    assert plc.last_change_ns() <= stopped_ns  # so the watchdog trips within WATCHDOG_S of stop()
    time.sleep(3 * WATCHDOG_S)
    assert plc.snapshot() == writes  # nothing written after stop()
    assert not plc.robot_enabled(time.monotonic_ns())


def test_when_the_monitor_stops_calling_the_output_writes_stop_and_freezes_the_counter(plc):
    out = modbus_output(plc.port)
    out.start()
    beat = Beat(out)
    wait_until(lambda: plc.robot_enabled(time.monotonic_ns()), what="robot enabled")
    beat.halt()  # the monitor loop hangs; the output's own thread goes on
    wait_until(lambda: plc.coil() is False, what="coil 0 after input timeout")
    frozen_at = len(plc.heartbeats())
    wait_until(lambda: len(plc.heartbeats()) >= frozen_at + 10, what="more writes")
    out.stop()
    later = [v for _, v in plc.heartbeats()[frozen_at - 1:]]
    assert len(set(later)) == 1  # the counter stands still
    assert out.status().run_permitted_sent is False


def test_killing_the_xrcell_process_stops_the_counter_and_only_the_watchdog_catches_it(plc):
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from safety.output.modbus import ModbusSafetyOutput
        out = ModbusSafetyOutput("127.0.0.1", port={plc.port}, run_permitted_coil={COIL},
                                 heartbeat_register={REGISTER}, period_s=0.01, input_timeout_s=5.0)
        out.start()
        seq = 0
        while True:
            seq += 1
            out.set_safe(False, seq)
            time.sleep(0.01)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        wait_until(lambda: plc.robot_enabled(time.monotonic_ns()) and len(plc.heartbeats()) >= 10,
                   what="robot enabled by the child")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # TCP is ordered: once the PLC sees the dead process's connection close, it has handled
    # every request the process sent before it died.
    wait_until(lambda: plc.disconnects, what="the PLC sees the connection close")
    dead_ns = plc.disconnects[0]
    writes = plc.snapshot()
    time.sleep(3 * WATCHDOG_S)
    assert plc.snapshot() == writes and plc.last_change_ns() <= dead_ns
    assert plc.coil() is True  # the dead process left "run permitted" on the coil...
    assert not plc.robot_enabled(time.monotonic_ns())  # ...and the watchdog stops the robot


def test_connection_loss_makes_the_output_unhealthy_and_it_reconnects_without_blocking_the_caller(plc):
    out = modbus_output(plc.port)
    out.start()
    beat = Beat(out)
    try:
        wait_until(out.healthy, what="healthy")
        port = plc.port
        plc.shutdown()
        wait_until(lambda: not out.healthy(), what="unhealthy after the PLC went away")
        reason = out.status().reason
        assert reason.startswith(f"write to 127.0.0.1:{port} failed: ") or reason.startswith("no successful write")
        seq_before = beat.seq
        wait_until(lambda: beat.seq > seq_before + 20, what="set_safe goes on while the link is down")
        wait_until(lambda: "failed" in out.status().reason, what="a failed reconnection attempt")
        restarted = FakeSafetyPlc(port)
        try:
            wait_until(lambda: out.healthy() and len(restarted.heartbeats()) >= 5, what="reconnected")
            assert restarted.coil() is True and increments(restarted.heartbeats()) == {1}
        finally:
            restarted.shutdown()
    finally:
        beat.halt()
        out.stop()


def test_an_output_with_no_plc_is_unhealthy_and_says_why():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once closed
    out = modbus_output(port)
    assert not out.healthy() and out.status().reason == "not started"
    out.start()
    out.set_safe(False, 1)
    wait_until(lambda: "cannot connect" in out.status().reason, what="connect failure")
    assert out.status().reason == f"write to 127.0.0.1:{port} failed: Modbus Error: cannot connect to 127.0.0.1:{port}"
    assert not out.healthy() and out.status().run_permitted_sent is None
    out.stop()


def test_an_exception_response_from_the_plc_is_unhealthy_naming_the_address(plc):
    out = modbus_output(plc.port, run_permitted_coil=200)  # outside the PLC's coils
    out.start()
    out.set_safe(False, 1)
    wait_until(lambda: "coil 200" in out.status().reason, what="refused write")
    assert out.status().reason == f"write to 127.0.0.1:{plc.port} failed: coil 200: exception code 2"
    assert not out.healthy()
    out.stop()


@pytest.mark.parametrize(("fields", "message"), [
    ({"host": ""}, r"modbus output: host must be a host name or address, got ''"),
    ({"port": 0}, r"modbus output: port must be an integer from 1 to 65535, got 0"),
    ({"device_id": 300}, r"modbus output: device_id must be an integer from 0 to 247, got 300"),
    ({"run_permitted_coil": -1}, r"modbus output: run_permitted_coil must be an integer from 0 to 65535, got -1"),
    ({"heartbeat_register": 1.5}, r"modbus output: heartbeat_register must be an integer from 0 to 65535, got 1.5"),
    ({"period_s": 0}, r"modbus output: period_s must be > 0 s, got 0"),
    ({"period_s": 0.1, "health_timeout_s": 0.05},
     r"modbus output: health_timeout_s must be >= period_s \(0.1 s\), got 0.05"),
    ({"reconnect_min_s": 1.0, "reconnect_max_s": 0.5},
     r"modbus output: reconnect_max_s must be >= reconnect_min_s \(1.0 s\), got 0.5"),
])
def test_bad_modbus_configuration_names_the_field(fields, message):
    with pytest.raises(SafetyOutputError, match=message):
        ModbusOutputConfig(**{"host": "127.0.0.1", **fields})
    assert issubclass(SafetyOutputError, SafetyError)


def test_defaults_of_the_register_map():
    config = ModbusOutputConfig("plc.local")
    assert (config.port, config.device_id, config.run_permitted_coil, config.heartbeat_register) == (502, 1, 0, 0)
    assert config.period_s == 0.05 and config.health_timeout == pytest.approx(0.15)


# -- the registry -------------------------------------------------------------------------------

def test_registry_creates_each_output_and_names_bad_requests():
    assert sorted(SAFETY_OUTPUTS) == ["modbus", "sim"]
    sim = create_safety_output("sim", name="cell-1")
    modbus = create_safety_output("modbus", host="127.0.0.1", port=1502)
    for output in (sim, modbus):
        assert isinstance(output.name, str) and not output.healthy()
    assert isinstance(modbus, ModbusSafetyOutput) and modbus.config.port == 1502
    with pytest.raises(SafetyOutputError, match=r"unknown safety output 'opcua'; known: modbus, sim"):
        create_safety_output("opcua")
    with pytest.raises(SafetyOutputError, match=r"safety output 'modbus': .*unexpected keyword argument 'colour'"):
        create_safety_output("modbus", host="h", colour="red")
    with pytest.raises(SafetyOutputError, match=r"modbus output: port must be an integer from 1 to 65535, got 70000"):
        create_safety_output("modbus", host="h", port=70000)


def _conforms(output: SafetyOutput) -> None:
    for method in ("start", "set_safe", "healthy", "status", "stop"):
        assert callable(getattr(output, method))


# -- the simulated output -----------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def test_sim_output_is_a_safeguard_stop_input_with_a_heartbeat_watchdog():
    clock = FakeClock()
    out = SimSafetyOutput("sim", input_timeout_s=0.1, clock_ns=clock)
    _conforms(out)
    assert out.stop_required and not out.healthy() and out.status().reason == "not started"
    out.start()
    assert out.stop_required  # no verdict yet
    out.set_safe(False, 1)
    assert not out.stop_required and out.healthy()
    clock.ns += 100_000_000
    assert not out.stop_required  # exactly at the timeout: still fresh
    clock.ns += 1
    assert out.stop_required  # the monitor went quiet: stop
    out.set_safe(False, 2)
    assert not out.stop_required
    out.set_safe(True, 3)
    assert out.stop_required
    status = out.status()
    assert (status.stop_required, status.seq, status.heartbeat, status.run_permitted_sent) == (True, 3, 3, False)
    assert [(s, q) for _, s, q in out.history()] == [(False, 1), (False, 2), (True, 3)]
    out.set_safe(False, 4)
    out.stop()
    assert out.stop_required and not out.healthy() and out.status().reason == "stopped"


def test_sim_output_fault_injection_makes_it_unhealthy_with_the_reason():
    out = SimSafetyOutput()
    out.start()
    out.set_safe(False, 1)
    out.inject_fault("PLC link lost")
    assert not out.healthy() and out.status().reason == "PLC link lost"
    out.clear_fault()
    assert out.healthy() and out.status().reason == "ok"


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"input_timeout_s": 0}, r"sim output 'sim': input_timeout_s must be > 0, got 0"),
    ({"history": 0}, r"sim output 'sim': history must be >= 1, got 0"),
])
def test_sim_output_bad_settings(kwargs, message):
    with pytest.raises(SafetyOutputError, match=message):
        SimSafetyOutput(**kwargs)


def test_the_safety_core_does_not_import_pymodbus():
    out = subprocess.run([sys.executable, "-c", "import sys, safety, safety.output, safety.audit; "
                          "print('pymodbus' in sys.modules)"], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60, check=True)
    assert out.stdout.strip() == "False"
