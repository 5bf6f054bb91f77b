"""The monitor pauses Python's cyclic garbage collector while a cycle runs (`COLLECTION_PAUSE`)."""

import gc
import threading

import numpy as np

from content.cell import SafetyParameters, StopData
from safety.gate import CommandGate
from safety.monitor import COLLECTION_PAUSE, SafetyMonitor
from tests.safety.fakes import FakeBackend, robot_state, snapshot


def test_a_cycle_runs_with_the_collector_paused_and_leaves_it_enabled():
    seen = []

    def robot_source():
        seen.append(gc.isenabled())
        return robot_state(clock())

    t = [10_000_000_000]

    def clock():
        t[0] += 5_000_000
        return t[0]

    gate = CommandGate(FakeBackend(), lambda: None, np.array([1.0]))
    mon = SafetyMonitor(robot_source, lambda: snapshot(clock()), gate.safety_channel(),
                        SafetyParameters(), StopData(category=1), 1.0, clock_ns=clock)
    assert gc.isenabled()
    mon.step()
    mon.step()
    assert seen == [False, False]
    assert gc.isenabled()


def test_overlapping_cycles_enable_the_collector_when_the_last_one_ends():
    inside, release = threading.Event(), threading.Event()

    def other_monitor():
        with COLLECTION_PAUSE:
            inside.set()
            release.wait(5.0)

    thread = threading.Thread(target=other_monitor)
    thread.start()
    assert inside.wait(5.0)
    with COLLECTION_PAUSE:
        assert not gc.isenabled()
    assert not gc.isenabled()         # the other cycle still runs
    release.set()
    thread.join(5.0)
    assert gc.isenabled()


def test_a_collector_disabled_by_someone_else_stays_disabled():
    gc.disable()
    try:
        with COLLECTION_PAUSE:
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
