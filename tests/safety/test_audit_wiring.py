"""The monitor, the gate and the zones write the audit log; the chain verifies."""

import numpy as np

from content.cell import SafetyParameters, StopData, Zone
from robot_bridge.types import JointTrajectory
from safety.audit import AuditLog
from safety.gate import Actor, CommandGate
from safety.monitor import SafetyMonitor
from safety.zones import CellZones
from tests.safety.fakes import MS, FakeBackend, robot_state, snapshot, standing_person


def test_mode_changes_gate_answers_resets_and_zone_changes_are_audited(tmp_path):
    audit = AuditLog(f"sqlite:///{tmp_path / 'a.sqlite'}")
    backend = FakeBackend()
    now = [10_000 * MS]
    people = [[]]
    gate_holder = {}
    gate = CommandGate(backend, lambda: gate_holder["m"].latest(), np.array([1.0]), audit=audit)
    zones = CellZones([], on_change=lambda actor, old, new: audit.append(
        "zone_change", actor, {"zones": len(new)}, "zones replaced", durable=True))
    monitor = SafetyMonitor(lambda: robot_state(now[0], speed_mps=0.0), lambda: snapshot(now[0], people[0]),
                            gate.safety_channel(), SafetyParameters(), StopData(), 1.0, clock_ns=lambda: now[0],
                            zones=zones, audit=audit)
    gate_holder["m"] = monitor

    def cycle(n=1):
        for _ in range(n):
            now[0] += 10 * MS
            monitor.step()

    cycle()                                  # start-up -> full speed
    people[0] = [standing_person(0.3)]
    cycle()                                  # -> protective stop
    move = JointTrajectory(("j1",), np.array([[0.5]]), np.array([1.0]), goal_id="g1")
    answer = gate.submit(move, Actor("olga", frozenset({"operator"})))  # rejected in a stop
    assert not answer.forwarded
    accepted, _ = monitor.reset("walt", frozenset({"worker"}))
    assert not accepted
    zones.replace([Zone(name="w", kind="warning", box={"min": (5, 5, 0), "max": (6, 6, 1)})], "sam",
                  frozenset({"supervisor"}))
    assert audit.flush()
    records = audit.tail(20)
    kinds = [r.kind for r in records]
    mode = next(r for r in records if r.kind == "mode_change")
    assert mode.actor == "monitor" and mode.inputs["to"] == "protective_stop"
    assert "gate_answer" in kinds and "reset" in kinds and "zone_change" in kinds
    gate_rec = next(r for r in records if r.kind == "gate_answer")
    assert gate_rec.actor == "olga" and "no motion command is accepted in protective_stop" in gate_rec.reason
    reset_rec = next(r for r in records if r.kind == "reset")
    assert reset_rec.actor == "walt" and "may not reset" in reset_rec.reason
    assert audit.verify() is None
    audit.close()


def test_the_monitor_drives_the_safety_output_and_faults_when_it_is_unhealthy():
    from safety.decision import SafetyMode
    from safety.output import SimSafetyOutput

    now = [10_000 * MS]
    output = SimSafetyOutput(clock_ns=lambda: now[0])
    output.start()
    backend = FakeBackend()
    holder = {}
    gate = CommandGate(backend, lambda: holder["m"].latest(), np.array([1.0]))
    people = [[]]
    monitor = SafetyMonitor(lambda: robot_state(now[0], speed_mps=0.0), lambda: snapshot(now[0], people[0]),
                            gate.safety_channel(), SafetyParameters(), StopData(), 1.0, clock_ns=lambda: now[0],
                            output=output)
    holder["m"] = monitor

    def cycle():
        now[0] += 10 * MS
        return monitor.step()

    assert cycle().mode is SafetyMode.FULL_SPEED and output.stop_required is False
    # The verdict is the heartbeat: when the cycles stop, the certified side stops on its own.
    now[0] += 150 * MS
    assert output.stop_required is True
    assert cycle().mode is SafetyMode.FULL_SPEED and output.stop_required is False
    people[0] = [standing_person(0.3)]
    assert cycle().mode is SafetyMode.PROTECTIVE_STOP and output.stop_required is True
    people[0] = []
    output.inject_fault("link lost")
    state = cycle()
    assert state.mode is SafetyMode.FAULT_STOP and "safety output sim: link lost" in state.reason
    assert output.stop_required is True
