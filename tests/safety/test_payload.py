"""The carried part (`robot.payload`) as a capsule on the tool flange while the gripper holds it:
it joins the link capsules for the separation distance, the gate's keep-out and people sweep and
the scenario contact check, and its stop data rows apply; an empty gripper leaves it out."""

from dataclasses import replace

import numpy as np
import pytest
import yaml

from content.cell import PickAndPlace, Pose, Robot, SafetyParameters, StopData, Zone, load_cell
from content.errors import CellDescriptionError
from robot_bridge.payload import PAYLOAD_LINK, payload_carried
from robot_bridge.sim import PANDA_JOINT_VELOCITY_LIMITS_RADPS, PandaLinkKinematics, PyBulletPandaBackend, \
    plan_pick_and_place
from robot_bridge.types import GripperCommand, JointTrajectory
from safety.decision import Memory, SafetyMode, SafetyState, decide
from safety.distance import closest_capsule_pair, human_capsules
from safety.gate import Actor, CommandGate, Verdict, sweep_samples
from safety.monitor import SafetyMonitor
from safety.ssm import StoppingModel
from safety.zones import CellZones
from tests.safety.fakes import FakeBackend, robot_state, snapshot, standing_person

BARE = Robot(base=Pose(position=(0.0, 0.0, 0.0)))
#: A rod held along the tool's approach axis (z), 0.2 m beyond the TCP.
ROD = {"mass_kg": 0.5, "capsule": {"p0": (0.0, 0.0, 0.0), "p1": (0.0, 0.0, 0.2), "radius_m": 0.03}}
#: A bar held sideways (along the tool's x axis), 0.35 m long.
BAR = {"mass_kg": 0.5, "capsule": {"p0": (0.0, 0.0, 0.0), "p1": (0.35, 0.0, 0.0), "radius_m": 0.04}}
#: The 5 cm cube the simulated gripper closes on.
PROGRAM = PickAndPlace(pick=(0.5, -0.3, 0.0), place=(0.5, 0.3, 0.0))
RUNNING = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")
OPERATOR = Actor("op", frozenset({"operator"}))


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


def run(backend: PyBulletPandaBackend, gate: CommandGate, command, max_s: float = 8.0):
    """Submit `command` through the gate and step the simulation until its goal is done."""
    answer = gate.submit(command, OPERATOR)
    assert answer.verdict is Verdict.ACCEPTED, answer.reason
    return until_done(backend, command.goal_id, max_s)


def until_done(backend: PyBulletPandaBackend, goal_id: str, max_s: float = 8.0):
    for _ in range(int(max_s * 60)):
        state = backend.step(4)
        if state.goal_id == goal_id and state.goal_done:
            return state
    raise AssertionError(f"{goal_id} not done in {max_s} s")


def cell_backend(payload: dict, zones=None):
    """A simulated cell with the cube on PROGRAM.pick, released, and a gate with the payload's
    robot model; the program's commands by step name."""
    robot = with_payload(payload)
    backend = PyBulletPandaBackend(robot, PROGRAM, realtime=False)
    backend.start()
    backend.reset()
    kin = PandaLinkKinematics(robot)
    gate = CommandGate(backend, lambda: RUNNING, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
                       zones=zones, kinematics=kin)
    steps = {c.goal_id.split("-", 1)[1]: c for c in plan_pick_and_place(robot, PROGRAM)}
    return backend, gate, kin, steps


@pytest.mark.parametrize("opening_m, moving, grasped, carried", [
    (None, False, False, True),                 # unknown grip: carried (fail-safe)
    (float("nan"), False, False, True),          # implausible reading: carried
    (0.08, True, False, True),                   # a gripper goal under way: carried
    (0.001, False, True, True),                  # the backend reports a grasp
    (0.05, False, False, True),                  # closed on the part
    (0.001, False, False, False),                # closed on nothing
    (0.08, False, False, False),                 # open
])
def test_the_attach_rule(opening_m, moving, grasped, carried):
    payload = with_payload(BAR).payload
    assert payload_carried(payload, opening_m, gripper_moving=moving, grasped=grasped) is carried
    assert payload_carried(None, opening_m, gripper_moving=moving, grasped=grasped) is False


def test_the_sim_attaches_the_part_when_the_gripper_closes_on_it_and_detaches_it_when_it_opens():
    backend, gate, kin, steps = cell_backend(BAR)
    try:
        state = backend.latest_state()
        assert not state.payload_carried and PAYLOAD_LINK not in state.link_names
        assert state.gripper_opening_m == pytest.approx(0.08, abs=1e-3) and state.gripper_seq == 0
        run(backend, gate, steps["approach_pick"])
        run(backend, gate, steps["descend_pick"])
        gate.submit(steps["grasp"], OPERATOR)
        moving = backend.step(3)   # (states are published at 200 Hz, physics runs at 240 Hz)
        assert moving.payload_carried and moving.gripper_seq == 1   # a gripper goal under way
        held = until_done(backend, steps["grasp"].goal_id)
        assert held.payload_carried and held.link_names[-1] == PAYLOAD_LINK and held.link_radii_m[-1] == 0.04
        assert held.gripper_opening_m == pytest.approx(PROGRAM.box_size_m, abs=0.005)
        assert held.link_segments.shape == (len(held.link_names), 2, 3) == (10, 2, 3)
        # a person 0.6 m from the TCP where the bar points: the bar is the closest link
        tcp, end = held.link_segments[-1]
        direction = (end - tcp)[:2] / np.linalg.norm((end - tcp)[:2])
        person = standing_person(*(tcp[:2] + 0.6 * direction))
        separation = {}
        for name, state in (("held", held), ("released", None)):
            if state is None:
                state = run(backend, gate, steps["release"])
                assert not state.payload_carried and PAYLOAD_LINK not in state.link_names
                assert state.link_names == held.link_names[:-1]
            now, params, stopping = state.stamp_ns, SafetyParameters(), StoppingModel(0.05, 2.5)
            mem = decide(now, state, snapshot(now), params, stopping, 1.0, Memory())[1]
            separation[name] = decide(now, state, snapshot(now, [person]), params, stopping, 1.0, mem)[0]
        segs, radii, _ = human_capsules(person, np.ones(33))
        expected = closest_capsule_pair(segs, radii, held.link_segments[-1:], held.link_radii_m[-1:]).distance_m
        assert separation["held"].closest.link == PAYLOAD_LINK
        assert separation["held"].separation_m == pytest.approx(expected, abs=1e-9)
        assert separation["held"].separation_m < separation["released"].separation_m - 0.2
    finally:
        backend.shutdown()
        kin.close()


def test_a_gripper_closed_on_nothing_carries_nothing():
    robot = with_payload(BAR)
    backend = PyBulletPandaBackend(robot, None, realtime=False)
    backend.start()
    backend.reset()
    try:
        backend.execute(GripperCommand(0.0, 40.0, goal_id="close"))
        state = until_done(backend, "close")
        assert state.gripper_opening_m < robot.payload.grasp_min_width_m
        assert not state.payload_carried and PAYLOAD_LINK not in state.link_names
    finally:
        backend.shutdown()


def test_the_gate_sweeps_the_carried_part_from_the_grasp_command_on_and_not_after_the_release():
    bare = PandaLinkKinematics(BARE)
    backend, _, kin, steps = cell_backend(ROD)
    try:
        # a fixture just below the lowest point the bare robot reaches on its program
        q = backend.latest_state().position
        lowest = np.inf
        for move in (c for c in steps.values() if isinstance(c, JointTrajectory)):
            sweep = bare.link_segments(sweep_samples(q, move.positions, move.time_from_start_s)[0])
            lowest = min(lowest, float((sweep[..., 2] - bare.link_radii_m[None, :, None]).min()))
            q = move.positions[-1]
        fixture = Zone(name="fixture", kind="robot_keep_out",
                       box={"min": (-1.0, -1.0, lowest - 0.3), "max": (1.0, 1.0, lowest - 0.01)})
        gate = CommandGate(backend, lambda: RUNNING, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
                           zones=CellZones([fixture]), kinematics=kin)
        run(backend, gate, steps["approach_pick"])     # gripper open: the rod is not swept
        run(backend, gate, steps["descend_pick"])
        assert gate.submit(steps["grasp"], OPERATOR).forwarded
        # the close command is in flight (the backend has not taken it up): carried already
        assert backend.latest_state().gripper_seq == 0 and not backend.latest_state().payload_carried
        answer = gate.submit(steps["lift"], OPERATOR)
        assert answer.verdict is Verdict.REJECTED
        assert answer.reason.startswith("keep-out: payload would enter keep-out zone fixture at t = 0.00 s")
        assert until_done(backend, steps["grasp"].goal_id).payload_carried
        assert gate.submit(steps["lift"], OPERATOR).reason.startswith("keep-out: payload would enter")
        released = run(backend, gate, steps["release"])
        assert not released.payload_carried
        assert gate.submit(steps["lift"], OPERATOR).verdict is Verdict.ACCEPTED
    finally:
        backend.shutdown()
        kin.close()
        bare.close()


class UnknownGrip:
    """A backend whose states carry no grip data (`RobotState` defaults), e.g. a robot without
    gripper feedback: its payload counts as carried."""

    def __init__(self, inner: PyBulletPandaBackend) -> None:
        self._inner = inner
        self.joint_names = inner.joint_names
        self.joint_lower_limits, self.joint_upper_limits = inner.joint_lower_limits, inner.joint_upper_limits

    def latest_state(self):
        s = self._inner.latest_state()
        return replace(s, gripper_opening_m=None, payload_carried=payload_carried(with_payload(ROD).payload, None))

    def execute(self, command) -> None:
        self._inner.execute(command)


def test_an_unknown_grip_is_swept_as_carried():
    inner = PyBulletPandaBackend(with_payload(ROD), None, realtime=False)
    inner.start()
    kin = PandaLinkKinematics(with_payload(ROD))
    try:
        state = inner.latest_state()
        assert not state.payload_carried          # the sim knows: its gripper is open
        # a fixture around the rod's far end, 0.2 m beyond the TCP (clear of the bare robot)
        tip = kin.link_segments(state.position[None])[0, -1, 1]
        fixture = Zone(name="fixture", kind="robot_keep_out",
                       box={"min": tuple(tip - 0.02), "max": tuple(tip + 0.02)})
        hold = JointTrajectory(inner.joint_names, state.position[None], np.array([0.5]), goal_id="hold")
        known = CommandGate(inner, lambda: RUNNING, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
                            zones=CellZones([fixture]), kinematics=kin)
        assert known._check_path(hold, 1.0).why is None
        unknown = CommandGate(UnknownGrip(inner), lambda: RUNNING,  # type: ignore[arg-type]
                              np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS), zones=CellZones([fixture]),
                              kinematics=kin)
        assert unknown._check_path(hold, 1.0).why.startswith("keep-out: payload would enter keep-out zone fixture")
    finally:
        inner.shutdown()
        kin.close()


TABLE = [
    {"speed_mps": 0.5, "payload_kg": 0, "stopping_time_s": 0.15, "stopping_distance_m": 0.04},
    {"speed_mps": 1.0, "payload_kg": 0, "stopping_time_s": 0.30, "stopping_distance_m": 0.21},
    {"speed_mps": 0.5, "payload_kg": 3, "stopping_time_s": 0.25, "stopping_distance_m": 0.08},
    {"speed_mps": 1.0, "payload_kg": 3, "stopping_time_s": 0.45, "stopping_distance_m": 0.35},
]


def test_the_stop_data_rows_follow_the_payload_state():
    robot = Robot.model_validate({"payload": {**BAR, "mass_kg": 2.0},
                                  "stop": {"payload_kg": 2.0, "table": TABLE}})
    assert robot.stop_payload_kg(True) == 2.0 and robot.stop_payload_kg(False) == 0.0
    heavy, light = (StoppingModel.from_stop_data(robot.stop, robot.stop_payload_kg(c)) for c in (True, False))
    assert heavy == StoppingModel.from_stop_data(robot.stop) != light
    now = [10**9]
    person = standing_person(1.5)
    feeds = {"robot": robot_state(now[0], speed_mps=0.5)}
    monitor = SafetyMonitor(lambda: feeds["robot"], lambda: snapshot(now[0], [person]),
                            CommandGate(FakeBackend(), lambda: None, np.ones(1)).safety_channel(),
                            SafetyParameters(), robot.stop, 1.0, clock_ns=lambda: now[0],
                            empty_payload_kg=robot.stop_payload_kg(False))
    s_s = {}
    for carried in (True, False, True):
        now[0] += 10**7
        feeds["robot"] = replace(robot_state(now[0], speed_mps=0.5), payload_carried=carried)
        state = monitor.step()
        assert state.s_p is not None, state.reason
        s_s.setdefault(carried, []).append(state.s_p.s_s)
    assert s_s[True][0] == s_s[True][1] > s_s[False][0] > 0
    v_r = state.v_r_mps
    assert s_s[True][0] == pytest.approx(heavy.stopping_distance_m(v_r))


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
    with pytest.raises(CellDescriptionError, match=r"cell.yaml: robot.payload: Value error, grasp_max_width_m "
                                                   r"0.01 m must be above grasp_min_width_m 0.02 m"):
        load_cell(write(tmp_path, {"payload": {"capsule": BAR["capsule"], "grasp_min_width_m": 0.02,
                                               "grasp_max_width_m": 0.01}}))
