"""The monitor thread's real-time scheduling (`SafetyParameters.realtime_priority`)."""

import logging
import os
import threading
import time

import numpy as np
import pytest
from pydantic import ValidationError

from content.cell import SafetyParameters, StopData
from safety import monitor as monitor_module
from safety.gate import CommandGate
from safety.monitor import SafetyMonitor, set_realtime_priority
from tests.safety.fakes import FakeBackend, robot_state, snapshot


def _kernel_grants_fifo() -> bool:
    """Whether this process may put a thread under SCHED_FIFO (asked on a throwaway thread)."""
    granted = []

    def probe() -> None:
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
            granted.append(True)
        except OSError:
            granted.append(False)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return granted[0]


def _started_monitor(params: SafetyParameters) -> SafetyMonitor:
    gate = CommandGate(FakeBackend(), lambda: None, np.array([1.0]))
    mon = SafetyMonitor(lambda: robot_state(time.monotonic_ns()),
                        lambda: snapshot(time.monotonic_ns()), gate.safety_channel(), params,
                        StopData(category=1), 1.0)
    mon.start()
    deadline = time.monotonic() + 10.0
    while mon.latest() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mon.latest() is not None, "no cycle within 10 s"
    return mon


def test_the_monitor_thread_runs_at_the_requested_priority_or_reports_why_not():
    granted = _kernel_grants_fifo()
    mon = _started_monitor(SafetyParameters(realtime_priority=7))
    try:
        tid = mon._thread.native_id
        report = mon.report()["scheduling"]
        if granted:
            assert os.sched_getscheduler(tid) == os.SCHED_FIFO | os.SCHED_RESET_ON_FORK
            assert os.sched_getparam(tid).sched_priority == 7
            assert report == {"policy": "SCHED_FIFO", "priority": 7}
        else:
            assert os.sched_getscheduler(tid) == os.SCHED_OTHER
            assert report["policy"] == "SCHED_OTHER" and report["requested_priority"] == 7
            assert report["refused"]
        # Only the monitor's own thread: the rest of the process keeps normal scheduling.
        assert os.sched_getscheduler(threading.get_native_id()) == os.SCHED_OTHER
    finally:
        mon.stop()


def test_without_a_priority_the_monitor_keeps_normal_scheduling():
    mon = _started_monitor(SafetyParameters())
    try:
        assert os.sched_getscheduler(mon._thread.native_id) == os.SCHED_OTHER
        assert mon.report()["scheduling"] == {"policy": "SCHED_OTHER"}
    finally:
        mon.stop()


def test_a_refused_priority_is_logged_reported_and_the_thread_runs_on(monkeypatch, caplog):
    def refuse(pid, policy, param):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(monitor_module.os, "sched_setscheduler", refuse)
    with caplog.at_level(logging.ERROR, logger="safety.monitor"):
        result = set_realtime_priority(20)
    assert result == {"policy": "SCHED_OTHER", "requested_priority": 20,
                      "refused": "Operation not permitted"}
    assert "SCHED_FIFO priority 20 refused (Operation not permitted)" in caplog.text


@pytest.mark.parametrize("value", [0, 99, -1, "10", True, 1.5])
def test_the_priority_outside_1_to_98_or_not_an_integer_is_refused_naming_the_field(value):
    with pytest.raises(ValidationError, match="realtime_priority"):
        SafetyParameters(realtime_priority=value)


def test_threads_started_from_a_realtime_thread_get_normal_scheduling():
    if not _kernel_grants_fifo():
        # Without the capability there is no real-time class to inherit: the refusal is the
        # behaviour, and it is pinned above.
        assert set_realtime_priority(5)["refused"]
        return
    seen = {}

    def monitor_like() -> None:
        seen["own"] = set_realtime_priority(5)
        child = threading.Thread(target=lambda: seen.update(child=os.sched_getscheduler(0)))
        child.start()
        child.join()
        seen["self"] = os.sched_getscheduler(0)

    thread = threading.Thread(target=monitor_like)
    thread.start()
    thread.join()
    assert seen["own"] == {"policy": "SCHED_FIFO", "priority": 5}
    assert seen["self"] & ~os.SCHED_RESET_ON_FORK == os.SCHED_FIFO
    assert seen["child"] == os.SCHED_OTHER
