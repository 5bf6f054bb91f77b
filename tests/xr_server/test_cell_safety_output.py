"""A cell file's `safety_output` reaches the composed cell: a Modbus TCP output against a real
pymodbus server on loopback playing the safety PLC, driven by the cell's own monitor."""

from __future__ import annotations

import time

import pytest

from content.cell import parse_cell
from content.errors import CellDescriptionError
from safety.decision import SafetyMode
from safety.output import SimSafetyOutput
from tests.safety.test_output import COIL, REGISTER, FakeSafetyPlc, wait_until
from xr_server.compose import _safety_output, build_cell, start_cell


def cell_with(output: dict | None, **extra):
    data = {"name": "plc-cell", **extra}
    if output is not None:
        data["safety_output"] = output
    return parse_cell(data, source="cell.yaml")


def test_default_output_is_the_in_process_sim_with_the_monitor_timeout():
    cell = cell_with(None, safety={"monitor_timeout_s": 0.3})
    output = _safety_output(cell)
    assert isinstance(output, SimSafetyOutput)


@pytest.mark.parametrize("output, match", [
    ({"kind": "modbus"}, r"cell.yaml: safety_output: Value error, kind modbus needs host"),
    ({"kind": "sim", "host": "10.0.0.5"}, r"cell.yaml: safety_output: Value error, host applies to kind modbus only"),
    ({"kind": "opcua", "host": "plc"}, r"cell.yaml: safety_output.kind: Input should be 'sim' or 'modbus'"),
    ({"kind": "modbus", "host": "plc", "port": 0}, r"cell.yaml: safety_output.port: Input should be greater than or equal to 1"),
])
def test_bad_output_is_named(output, match):
    with pytest.raises(CellDescriptionError, match=match):
        cell_with(output)


@pytest.fixture
def plc():
    server = FakeSafetyPlc()
    yield server
    server.shutdown()


def test_cell_monitor_drives_the_plc_coil_and_heartbeat(plc):
    cell = cell_with({"kind": "modbus", "host": "127.0.0.1", "port": plc.port, "run_permitted_coil": COIL,
                      "heartbeat_register": REGISTER, "period_s": 0.01})
    composed = build_cell(cell)
    start_cell(composed)
    try:
        # No cameras: nobody tracked; once every input is live the monitor permits motion.
        wait_until(lambda: (s := composed.monitor.latest()) is not None and s.mode is SafetyMode.FULL_SPEED,
                   what="full speed")
        wait_until(lambda: plc.coil() is True, what="run permitted on the PLC coil")
        wait_until(lambda: len({v for _, v in plc.heartbeats()}) >= 5, what="an advancing heartbeat")
        assert plc.robot_enabled(time.monotonic_ns())
    finally:
        composed.stop()
    # Stopping the cell sends stop to the PLC.
    wait_until(lambda: plc.coil() is False, what="stop on the PLC coil after the cell stopped")
