"""Zones: capsule-in-zone geometry, people and robot violations, the decision's answers."""

import numpy as np
import pytest

from content.cell import Zone, parse_cell
from content.errors import CellDescriptionError
from safety.decision import Memory, SafetyMode, decide
from safety.errors import SafetyError
from safety.ssm import StoppingModel
from safety.zones import CellZones, ZoneSet
from tests.safety.fakes import MS, robot_state, snapshot, standing_person
from content.cell import SafetyParameters

PARAMS = SafetyParameters()
STOP = StoppingModel(0.05, 2.5)
T0 = 10_000 * MS


def zone(kind="restricted", **shape):
    if not shape:
        shape = {"footprint": [(2.0, -1.0), (4.0, -1.0), (4.0, 1.0), (2.0, 1.0)], "z_range_m": (0.0, 2.0)}
    return Zone(name=f"z-{kind}", kind=kind, **shape)


def test_capsule_inside_outside_and_near_the_prism():
    zs = ZoneSet([zone()])
    segs = np.array([
        [[3.0, 0.0, 0.5], [3.0, 0.0, 1.5]],    # inside
        [[1.5, 0.0, 0.5], [1.5, 0.0, 1.5]],    # 0.5 m in front: out
        [[1.95, 0.0, 0.5], [1.95, 0.0, 1.5]],  # 5 cm in front, radius 0.06: in (touches)
        [[3.0, 0.0, 2.2], [3.0, 0.0, 3.0]],    # above the top by 0.2 m: out
        [[1.0, 0.0, 1.0], [5.0, 0.0, 1.0]],    # passes through: in
        [[3.0, 0.0, np.nan], [3.0, 0.0, 1.0]],  # not finite: counted inside (fail-safe)
    ])
    radii = np.array([0.06, 0.06, 0.06, 0.06, 0.06, 0.06])
    assert zs.capsules_inside(0, segs, radii).tolist() == [True, False, True, False, True, True]


def test_box_zone_equals_the_same_prism():
    box = ZoneSet([zone(box={"min": (2.0, -1.0, 0.0), "max": (4.0, 1.0, 2.0)})])
    prism = ZoneSet([zone()])
    rng = np.random.default_rng(1)
    segs = rng.uniform(-1, 5, size=(500, 2, 3))
    radii = rng.uniform(0.0, 0.2, size=500)
    assert (box.capsules_inside(0, segs, radii) == prism.capsules_inside(0, segs, radii)).all()


def test_person_in_a_restricted_zone_stops_the_robot_and_resumes_after_it_is_clear():
    zs = ZoneSet([zone("restricted")])
    mem = decide(T0, robot_state(T0, speed_mps=0.0), snapshot(T0), PARAMS, STOP, 1.0, Memory(), zs)[1]
    now = T0 + 10 * MS
    # 3 m from the robot: SSM alone would allow full speed; the zone stops it.
    state, mem = decide(now, robot_state(now, speed_mps=0.0), snapshot(now, [standing_person(3.0)]),
                        PARAMS, STOP, 1.0, mem, zs)
    assert state.mode is SafetyMode.PROTECTIVE_STOP and state.speed_scale == 0.0
    assert "restricted zone z-restricted" in state.reason
    assert [(v.zone, v.subject) for v in state.zone_violations] == [("z-restricted", "p1")]
    t = now
    while state.mode is SafetyMode.PROTECTIVE_STOP and t < now + 3000 * MS:
        t += 10 * MS
        state, mem = decide(t, robot_state(t, speed_mps=0.0), snapshot(t, [standing_person(6.0)]),
                            PARAMS, STOP, 1.0, mem, zs)
    assert state.mode is SafetyMode.FULL_SPEED and t - now >= PARAMS.resume_delay_s * 1e9


def test_warning_zone_is_reported_without_slowing():
    zs = ZoneSet([zone("warning")])
    mem = decide(T0, robot_state(T0, speed_mps=0.0), snapshot(T0), PARAMS, STOP, 1.0, Memory(), zs)[1]
    now = T0 + 10 * MS
    state, _ = decide(now, robot_state(now, speed_mps=0.0), snapshot(now, [standing_person(3.0)]),
                      PARAMS, STOP, 1.0, mem, zs)
    assert state.mode is SafetyMode.FULL_SPEED
    assert [v.kind for v in state.zone_violations] == ["warning"]


def test_robot_link_in_a_keep_out_zone_is_a_latched_fault():
    keep_out = zone("robot_keep_out", box={"min": (-0.5, -0.5, 0.9), "max": (0.5, 0.5, 1.5)})
    zs = ZoneSet([keep_out])
    state, mem = decide(T0, robot_state(T0, speed_mps=0.0), snapshot(T0), PARAMS, STOP, 1.0, Memory(), zs)
    assert state.mode is SafetyMode.FAULT_STOP
    assert "robot keep-out zone z-robot_keep_out: link0 inside" in state.reason
    # Not latched during start-up; a robot that is inside after start-up latches.
    clear = ZoneSet([zone("robot_keep_out", box={"min": (-0.5, -0.5, 1.2), "max": (0.5, 0.5, 1.5)})])
    _, mem = decide(T0 + 10 * MS, robot_state(T0 + 10 * MS, speed_mps=0.0), snapshot(T0 + 10 * MS),
                    PARAMS, STOP, 1.0, Memory(), clear)
    state, _ = decide(T0 + 20 * MS, robot_state(T0 + 20 * MS, speed_mps=0.0), snapshot(T0 + 20 * MS),
                      PARAMS, STOP, 1.0, mem, zs)
    assert state.mode is SafetyMode.FAULT_STOP and state.latched


def test_zone_changes_need_a_supervisor_and_are_reported():
    seen = []
    cz = CellZones([zone("warning")], on_change=lambda actor, old, new: seen.append((actor, len(old), len(new))))
    with pytest.raises(SafetyError, match="role: 'olga' may not change zones; that needs supervisor or admin"):
        cz.replace([], "olga", frozenset({"operator"}))
    assert len(cz.current()) == 1
    cz.replace([zone("warning"), zone("restricted")], "sam", frozenset({"supervisor"}))
    assert len(cz.current()) == 2 and seen == [("sam", 1, 2)]


@pytest.mark.parametrize("z, message", [
    ({"name": "a", "kind": "warning"}, "give exactly one of footprint"),
    ({"name": "a", "kind": "warning", "footprint": [[0, 0], [1, 1], [1, 0], [0, 1]]},
     "footprint is not a simple polygon: Self-intersection"),
    ({"name": "a", "kind": "warning", "footprint": [[0, 0], [1, 1]]}, "footprint needs at least 3 vertices"),
    ({"name": "a", "kind": "warning", "box": {"min": [0, 0, 1], "max": [1, 1, 0]}},
     r"box min \[0.0, 0.0, 1.0\] must be below max"),
    ({"name": "a", "kind": "fence", "box": {"min": [0, 0, 0], "max": [1, 1, 1]}}, "zones\\[0\\].kind"),
])
def test_bad_zones_are_named(z, message):
    with pytest.raises(CellDescriptionError, match=message):
        parse_cell({"name": "c", "zones": [z]})


def test_repeated_zone_names_are_refused():
    z = {"name": "a", "kind": "warning", "box": {"min": [0, 0, 0], "max": [1, 1, 1]}}
    with pytest.raises(CellDescriptionError, match="zone names must be unique, repeated: a"):
        parse_cell({"name": "c", "zones": [z, z]})
