"""`build_twin_state` against its JSON Schema, and the ghost path of the forwarded trajectory."""

import dataclasses
import json

import jsonschema
import numpy as np
import pytest

from safety.decision import SafetyMode, SafetyState
from safety.gate import PlannedPath
from tests.safety.fakes import MS, robot_state, snapshot, standing_person
from xr_server.openapi import TWIN_SCHEMA_PATH
from xr_server.program import ProgramStatus
from xr_server.twin import build_twin_state

SCHEMA = json.loads(TWIN_SCHEMA_PATH.read_text())
NOW = 5_000 * MS
PLAN = PlannedPath("pick_and_place/1-approach_pick", np.linspace(0.0, 1.5, 40),
                   np.column_stack([np.linspace(0.3, 0.5, 40), np.zeros(40), np.full(40, 0.48)]))


def executing(goal_id, done=False):
    return dataclasses.replace(robot_state(NOW), goal_id=goal_id, goal_done=done)


@pytest.fixture
def safety():
    return SafetyState(NOW, SafetyMode.FULL_SPEED, 1.0, None, None, None, "full speed: nobody tracked in the cell")


def test_the_plan_is_shown_while_the_robot_executes_it(safety):
    twin = build_twin_state("lab", executing(PLAN.goal_id), safety, snapshot(NOW, [standing_person(2.0)]), PLAN)
    jsonschema.validate(twin, SCHEMA)
    assert twin["plan"]["goal_id"] == PLAN.goal_id
    assert len(twin["plan"]["points"]) == 40 and twin["plan"]["points"][-1] == [0.5, 0.0, 0.48]
    assert twin["plan"]["t"][0] == 0.0 and twin["plan"]["t"][-1] == 1.5


@pytest.mark.parametrize("robot", [executing(PLAN.goal_id, done=True), executing("another"), None])
def test_no_plan_once_it_is_done_or_replaced(safety, robot):
    twin = build_twin_state("lab", robot, safety, None, PLAN)
    jsonschema.validate(twin, SCHEMA)
    assert twin["plan"] is None


def test_a_plan_with_too_many_points_breaks_the_schema(safety):
    long = PlannedPath(PLAN.goal_id, np.linspace(0, 1, 41), np.zeros((41, 3)))
    with pytest.raises(jsonschema.ValidationError, match="is too long"):
        jsonschema.validate(build_twin_state("lab", executing(PLAN.goal_id), safety, None, long), SCHEMA)


def test_the_zones_in_force_are_prisms_in_the_cell_frame(safety):
    from content.cell import Zone
    from safety.zones import ZoneSet
    zones = ZoneSet([
        Zone(name="fixture", kind="robot_keep_out", box={"min": (0.4, 0.2, 0.0), "max": (0.6, 0.4, 0.15)}),
        # clockwise footprint: given back counter-clockwise
        Zone(name="bench", kind="restricted", footprint=[(1.0, 1.0), (1.0, 2.0), (2.0, 2.0), (2.0, 1.0)],
             z_range_m=(0.0, 2.0)),
    ])
    twin = build_twin_state("lab", None, safety, None, None, zones)
    jsonschema.validate(twin, SCHEMA)
    fixture, bench = twin["zones"]
    assert fixture["name"] == "fixture" and fixture["kind"] == "robot_keep_out"
    assert sorted(map(tuple, fixture["footprint"])) == [(0.4, 0.2), (0.4, 0.4), (0.6, 0.2), (0.6, 0.4)]
    assert fixture["z_range_m"] == [0.0, 0.15]
    fp = np.array(bench["footprint"])
    signed_area = 0.5 * np.sum(fp[:, 0] * np.roll(fp[:, 1], -1) - np.roll(fp[:, 0], -1) * fp[:, 1])
    assert signed_area == pytest.approx(1.0)        # counter-clockwise seen from above (z up)
    assert build_twin_state("lab", None, safety, None)["zones"] == []


def test_the_twin_says_which_distance_channels_are_in_force(safety):
    twin = build_twin_state("lab", None, safety, None, None)
    jsonschema.validate(twin, SCHEMA)
    assert twin["safety"]["channels"] == ["skeleton"] and twin["safety"]["occupancy_separation_m"] is None
    both = dataclasses.replace(safety, channels=("skeleton", "occupancy"), occupancy_separation_m=1.23456)
    twin = build_twin_state("lab", None, both, None, None)
    jsonschema.validate(twin, SCHEMA)
    assert twin["safety"]["channels"] == ["skeleton", "occupancy"]
    assert twin["safety"]["occupancy_separation_m"] == 1.2346


@pytest.mark.parametrize("carried, opening", [(True, 0.0502), (False, 0.08), (True, None)])
def test_the_twin_says_whether_the_payload_is_carried(safety, carried, opening):
    robot = dataclasses.replace(robot_state(NOW), payload_carried=carried,
                                gripper_opening_m=opening)
    twin = build_twin_state("lab", robot, safety, None, None)
    jsonschema.validate(twin, SCHEMA)
    assert twin["robot"]["payload_carried"] is carried
    assert twin["robot"]["gripper_opening_m"] == opening
    with pytest.raises(jsonschema.ValidationError, match="'yes' is not of type 'boolean'"):
        jsonschema.validate({**twin, "robot": {**twin["robot"], "payload_carried": "yes"}}, SCHEMA)


def test_a_person_says_how_he_was_placed_and_how_uncertain_he_is(safety):
    snap = snapshot(NOW, [standing_person(1.5)], sigma_m=0.02)
    one_view = dataclasses.replace(snap, tracks=(dataclasses.replace(snap.tracks[0], track_id="p2", placement="floor",
                                                                     sigma_m=0.4567, views=("glasses",)),))
    for s, placement, sigma in ((snap, "triangulated", 0.02), (one_view, "floor", 0.4567)):
        twin = build_twin_state("lab", None, safety, s, None)
        jsonschema.validate(twin, SCHEMA)
        (person,) = twin["people"]
        assert person["placement"] == placement and person["sigma_m"] == sigma
    twin["people"][0]["placement"] = "guessed"
    with pytest.raises(jsonschema.ValidationError, match="'guessed' is not one of"):
        jsonschema.validate(twin, SCHEMA)


def test_the_programs_state_is_in_the_twin_when_there_is_a_program(safety):
    status = ProgramStatus(state="paused", step=3, steps=9, goal_id="pick_and_place/4-up",
                           cycles_completed=2, resume_at=(0.0,) * 7, reason="")
    twin = build_twin_state("lab", None, safety, None, program=status)
    jsonschema.validate(twin, SCHEMA)
    assert twin["program"] == {"state": "paused", "step": 3, "steps": 9, "goal_id": "pick_and_place/4-up",
                               "reason": ""}
    assert "program" not in build_twin_state("lab", None, safety, None)
    twin["program"]["state"] = "halted"
    with pytest.raises(jsonschema.ValidationError, match="'halted' is not one of"):
        jsonschema.validate(twin, SCHEMA)
