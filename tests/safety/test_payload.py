"""The carried part (`robot.payload`) as a capsule on the tool flange: it joins the link capsules
for the separation distance, the gate's keep-out sweep and the scenario contact check."""

import numpy as np
import pytest
import yaml

from content.cell import PickAndPlace, Pose, Robot, SafetyParameters, Zone, load_cell
from content.errors import CellDescriptionError
from robot_bridge.sim import PANDA_JOINT_VELOCITY_LIMITS_RADPS, PandaLinkKinematics, PyBulletPandaBackend, \
    plan_pick_and_place
from robot_bridge.types import JointTrajectory
from safety.decision import Memory, SafetyMode, SafetyState, decide
from safety.distance import closest_capsule_pair, human_capsules
from safety.gate import CommandGate, sweep_samples
from safety.ssm import StoppingModel
from safety.zones import CellZones
from tests.safety.fakes import snapshot, standing_person

BARE = Robot(base=Pose(position=(0.0, 0.0, 0.0)))
#: A rod held along the tool's approach axis (z), 0.2 m beyond the TCP.
ROD = {"mass_kg": 0.5, "capsule": {"p0": (0.0, 0.0, 0.0), "p1": (0.0, 0.0, 0.2), "radius_m": 0.03}}
#: A bar held sideways (along the tool's x axis), 0.35 m long.
BAR = {"mass_kg": 0.5, "capsule": {"p0": (0.0, 0.0, 0.0), "p1": (0.35, 0.0, 0.0), "radius_m": 0.04}}
PROGRAM = PickAndPlace(pick=(0.5, -0.3, 0.0), place=(0.5, 0.3, 0.0))
RUNNING = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")


def with_payload(payload: dict) -> Robot:
    return Robot.model_validate({"base": {"position": (0.0, 0.0, 0.0)}, "payload": payload,
                                 "stop": {"payload_kg": payload["mass_kg"]}})


def test_the_payload_capsule_sits_in_the_tool_frame():
    kin = PandaLinkKinematics(with_payload(BAR))
    try:
        q = np.array([0.3, -0.5, 0.1, -2.0, 0.2, 1.8, 0.5])
        segs = kin.link_segments(q[None])[0]
        origin, rot = kin.tool_pose(q)
        assert kin.link_names[-1] == "payload" and kin.link_radii_m[-1] == 0.04
        assert np.allclose(segs[-1], [origin, origin + rot @ np.array([0.35, 0.0, 0.0])], atol=1e-9)
    finally:
        kin.close()


@pytest.fixture(scope="module")
def backend():
    b = PyBulletPandaBackend(BARE, None, realtime=False)
    b.start()
    yield b
    b.shutdown()


def test_a_payload_reaching_into_keep_out_makes_the_gate_refuse_a_path_the_bare_robot_passes(backend):
    moves = [c for c in plan_pick_and_place(BARE, PROGRAM) if isinstance(c, JointTrajectory)]
    bare, rod = PandaLinkKinematics(BARE), PandaLinkKinematics(with_payload(ROD))
    try:
        # a fixture just below the lowest point the bare robot reaches on its program
        start = backend.latest_state().position
        lowest = min(float((bare.link_segments(sweep_samples(start, m.positions, m.time_from_start_s)[0])[..., 2]
                            - bare.link_radii_m[None, :, None]).min()) for m in moves)
        fixture = Zone(name="fixture", kind="robot_keep_out",
                       box={"min": (-1.0, -1.0, lowest - 0.3), "max": (1.0, 1.0, lowest - 0.01)})

        def answers(kin):
            gate = CommandGate(backend, lambda: RUNNING, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
                               zones=CellZones([fixture]), kinematics=kin)
            return [gate._check_path(m, 1.0).why for m in moves]

        assert all(a is None for a in answers(bare))
        refused = [a for a in answers(rod) if a is not None]
        assert refused and all(a.startswith("keep-out: payload would enter keep-out zone fixture") for a in refused)
    finally:
        bare.close()
        rod.close()


def test_the_separation_to_a_person_shrinks_by_the_payload():
    stopping = StoppingModel(0.05, 2.5)
    robot = with_payload(BAR)
    states = {}
    for name, model in (("bare", BARE), ("bar", robot)):
        b = PyBulletPandaBackend(model, None, realtime=False)
        b.start()
        try:
            b.step(1)
            states[name] = b.latest_state()
        finally:
            b.shutdown()
    bar = states["bar"]
    assert bar.link_names[-1] == "payload" and states["bare"].link_names == bar.link_names[:-1]
    # a person standing 0.6 m from the TCP in the direction the bar points
    tcp, end = bar.link_segments[-1]
    direction = (end - tcp) / np.linalg.norm(end - tcp)
    person = standing_person(*(tcp[:2] + 0.6 * direction[:2] / np.linalg.norm(direction[:2])))
    results = {}
    params = SafetyParameters()
    for name, state in states.items():
        now = state.stamp_ns
        mem = decide(now, state, snapshot(now), params, stopping, 1.0, Memory())[1]
        results[name] = decide(now, state, snapshot(now, [person]), params, stopping, 1.0, mem)[0]
    segs, radii, _ = human_capsules(person, np.ones(33))
    expected = closest_capsule_pair(segs, radii, bar.link_segments[-1:], bar.link_radii_m[-1:]).distance_m
    assert results["bar"].closest.link == "payload"
    assert results["bar"].separation_m == pytest.approx(expected, abs=1e-9)
    assert results["bar"].separation_m < results["bare"].separation_m - 0.2


def write(tmp_path, robot: dict):
    path = tmp_path / "cell.yaml"
    path.write_text(yaml.safe_dump({"name": "lab", "robot": robot}))
    return path


def test_the_cell_file_takes_a_payload_and_names_bad_fields(tmp_path):
    cell = load_cell(write(tmp_path, {"payload": {"mass_kg": 1.0, "capsule": BAR["capsule"]},
                                      "stop": {"payload_kg": 1.0}}))
    assert cell.robot.payload.capsule.p1 == (0.35, 0.0, 0.0) and cell.robot.payload.mass_kg == 1.0
    with pytest.raises(CellDescriptionError, match=r"cell.yaml: robot: Value error, robot.stop.payload_kg: 0 kg is "
                                                   r"below robot.payload.mass_kg 1 kg"):
        load_cell(write(tmp_path, {"payload": {"mass_kg": 1.0, "capsule": BAR["capsule"]}}))
    with pytest.raises(CellDescriptionError, match=r"cell.yaml: robot.payload.capsule.radius_m: Input should be "
                                                   r"greater than 0"):
        load_cell(write(tmp_path, {"payload": {"capsule": {**BAR["capsule"], "radius_m": 0.0}}}))
    with pytest.raises(CellDescriptionError, match=r"cell.yaml: robot.payload.capsule.p1: "):
        load_cell(write(tmp_path, {"payload": {"capsule": {"p0": (0, 0, 0), "radius_m": 0.1}}}))
