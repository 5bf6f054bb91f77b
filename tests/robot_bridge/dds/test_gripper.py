"""Gripper commands of the `dds` backend over topics (`robot.dds.gripper_controller`).

The ramp and the end-of-goal judge are tested as pure functions; the backend against the peer
process (`peer.py`), which plays the Franka Hand's finger joints in `/joint_states` and the
gripper's ros2_control controller (forward_command_controller or JointTrajectoryController) on
loopback Cyclone DDS, moving the fingers at 0.05 m/s per finger and stopping them on a part.
Waits poll with a generous deadline; nothing asserts how fast anything came.
"""

import math

import numpy as np
import pytest

from content.cell import Robot, parse_cell
from content.errors import CellDescriptionError
from robot_bridge.dds.gripper import (
    GRIPPER_SETTLE_TIMEOUT_S,
    GRIPPER_STALL_S,
    GripperMotion,
    GripperOutcome,
    finger_trajectory_msg,
    forward_command_msg,
    grip_evidence,
)
from robot_bridge.errors import BridgeError, CommandError
from robot_bridge.payload import PAYLOAD_LINK
from robot_bridge.sim import PANDA_JOINT_VELOCITY_LIMITS_RADPS
from robot_bridge.types import ControllerMode, GripperCommand, StopCategory
from safety.decision import SafetyMode, SafetyState
from safety.gate import Actor, CommandGate, Verdict
from tests.robot_bridge.dds.peer_client import drain, fingers_settled, state_where, wait_for

KINDS = ("forward_position", "joint_trajectory")
TOPICS = {"forward_position": "/gripper_controller/commands",
          "joint_trajectory": "/gripper_controller/joint_trajectory"}
#: A bar held sideways, 0.35 m long (as in test_backend's payload test).
BAR = {"mass_kg": 0.5, "capsule": {"p0": (0.0, 0.0, 0.0), "p1": (0.35, 0.0, 0.0), "radius_m": 0.04}}
S = 1_000_000_000  # ns per second


# ------------------------------------------------------------------ the ramp and its judge

def test_the_ramp_moves_at_the_finger_speed_times_the_scale_and_can_pause():
    g = GripperMotion("g", 0.08, 0.0, 0, 1.0)
    assert g.setpoint_m(0) == 0.08
    assert g.setpoint_m(S // 4) == pytest.approx(0.055)      # 0.1 m/s: both fingers at 0.05 m/s
    assert g.remaining_s(S // 4) == pytest.approx(0.55)
    g.rescale(S // 4, 0.5)
    assert g.setpoint_m(S // 4 + S // 2) == pytest.approx(0.03)
    g.rescale(3 * S // 4, 0.0)                                 # paused: the set-point stays
    assert g.setpoint_m(5 * S) == pytest.approx(0.03) and math.isinf(g.remaining_s(5 * S))
    g.rescale(5 * S, 1.0)
    assert g.setpoint_m(6 * S) == 0.0 and g.remaining_s(6 * S) == 0.0


def test_a_goal_is_reached_at_the_target_once_the_ramp_got_there():
    g = GripperMotion("g", 0.08, 0.02, 0, 1.0)
    assert g.judge(S // 2, 0.0205, moving=True) is None        # the ramp is not there yet
    assert g.judge(S, 0.0205, moving=False) is GripperOutcome.REACHED


def test_fingers_stopped_on_a_part_stall_the_goal_only_after_they_moved():
    g = GripperMotion("g", 0.08, 0.0, 0, 1.0)
    t = 0
    while t < S // 5:                      # not started yet (the controller lags): not blocked
        assert g.judge(t, 0.08, moving=False) is None
        t += S // 100
    assert g.judge(t, 0.07, moving=True) is None
    t0 = S // 2                                                # the set-point is at 0.03 m by now
    assert g.judge(t0, 0.05, moving=False) is None             # on the part, set-point further in
    assert g.judge(t0 + int(GRIPPER_STALL_S * S) - 1, 0.05, moving=False) is None
    assert g.judge(t0 + int(GRIPPER_STALL_S * S), 0.05, moving=False) is GripperOutcome.STALLED


def test_without_feedback_a_goal_ends_by_timeout_after_its_ramp():
    g = GripperMotion("g", 0.08, 0.0, 0, 1.0)
    assert g.judge(S, None, moving=False) is None              # the ramp ended at 0.8 s
    late = S + int(GRIPPER_SETTLE_TIMEOUT_S * S)
    assert g.judge(late, None, moving=False) is GripperOutcome.TIMEOUT


@pytest.mark.parametrize("outcome, start, target, opening, evidence", [
    (GripperOutcome.STALLED, 0.08, 0.0, 0.05, True),     # closing, stopped on a 5 cm part
    (GripperOutcome.REACHED, 0.08, 0.04, 0.04, False),   # closing to 4 cm, nothing in the way
    (GripperOutcome.STALLED, 0.08, 0.04, 0.0415, None),  # settled just off the target
    (GripperOutcome.STALLED, 0.0, 0.08, 0.05, None),     # an opening goal stopped: no grasp
    (GripperOutcome.STALLED, 0.02, 0.04, 0.07, None),    # an opening goal ended pushed wider
    (GripperOutcome.TIMEOUT, 0.08, 0.0, 0.05, None),     # no end: unknown
    (GripperOutcome.STALLED, 0.08, 0.0, None, None),     # the opening unknown
])
def test_only_a_closing_goal_stopped_short_is_evidence_of_an_object(outcome, start, target, opening, evidence):
    assert grip_evidence(outcome, start, target, opening) is evidence


def test_the_messages_carry_half_the_opening_per_finger_joint():
    assert forward_command_msg(0.05, 2).data == [0.025, 0.025]
    assert forward_command_msg(0.05, 1).data == [0.025]       # the mimic finger follows
    msg = finger_trajectory_msg(("panda_finger_joint1", "panda_finger_joint2"), 0.04, 0.01)
    (point,) = msg.points
    assert point.positions == [0.02, 0.02] and point.velocities == [0.0, 0.0]
    # due at 0.05 s at the earliest
    assert (point.time_from_start.sec, point.time_from_start.nanosec) == (0, 50_000_000)


# ------------------------------------------------------------------ the cell file

@pytest.mark.parametrize("gripper, match", [
    ({"kind": "gripper_action", "topic": "/g/commands"},
     r"c.yaml: robot.dds.gripper_controller.kind: Input should be 'forward_position' or 'joint_trajectory'"),
    ({"kind": "forward_position", "topic": "gripper/commands"},
     r"c.yaml: robot.dds.gripper_controller.topic: String should match pattern"),
    ({"kind": "forward_position", "topic": "/gripper_controller/joint_trajectory"},
     r"c.yaml: robot.dds.gripper_controller: Value error, topic '/gripper_controller/joint_trajectory': "
     r"a forward_position controller subscribes /<controller>/commands"),
    ({"kind": "joint_trajectory", "topic": "/joint_trajectory"},
     r"a joint_trajectory controller subscribes /<controller>/joint_trajectory"),
    ({"kind": "joint_trajectory", "topic": "/g/joint_trajectory", "joints": []},
     r"c.yaml: robot.dds.gripper_controller.joints: Tuple should have at least 1 item"),
    ({"kind": "joint_trajectory", "topic": "/g/joint_trajectory",
      "joints": ["panda_finger_joint1", "panda_finger_joint1"]},
     r"c.yaml: robot.dds.gripper_controller: Value error, joints: repeated joint"),
    ({"kind": "joint_trajectory", "topic": "/g/joint_trajectory", "joints": ["panda_joint7"]},
     r"c.yaml: robot: Value error, robot.dds.gripper_controller.joints: \['panda_joint7'\] are not all "
     r"finger joints of franka_panda \(panda_finger_joint1, panda_finger_joint2\)"),
    ({"topic": "/g/commands"}, r"c.yaml: robot.dds.gripper_controller.kind: Field required"),
    ({"kind": "forward_position", "topic": "/g/commands", "rate_hz": 50},
     r"c.yaml: robot.dds.gripper_controller.rate_hz: Extra inputs are not permitted"),
])
def test_a_bad_gripper_controller_is_named(gripper, match):
    with pytest.raises(CellDescriptionError, match=match):
        parse_cell({"name": "x", "robot": {"backend": "dds", "dds": {"gripper_controller": gripper}}},
                   source="c.yaml")


def test_the_gripper_topic_may_not_be_the_arms():
    from robot_bridge.dds import DdsBackend

    robot = Robot.model_validate({"dds": {"gripper_controller": {
        "kind": "joint_trajectory", "topic": "/joint_trajectory_controller/joint_trajectory"}}})
    with pytest.raises(BridgeError, match=r"robot.dds.gripper_controller.topic "
                                          r"'/joint_trajectory_controller/joint_trajectory' is the arm's"):
        DdsBackend(robot)
    with pytest.raises(BridgeError, match=r"gripper_controller needs the finger joints in /joint_states"):
        DdsBackend(gripper_robot("forward_position"), gripper_joint_names=())


# ------------------------------------------------------------------ over DDS, with the peer

def gripper_robot(kind: str, payload: dict | None = None, joints: list[str] | None = None) -> Robot:
    data: dict = {"dds": {"gripper_controller": {"kind": kind, "topic": TOPICS[kind],
                                                 **({"joints": joints} if joints else {})}}}
    if payload is not None:
        data.update(payload=payload, stop={"payload_kg": payload["mass_kg"]})
    return Robot.model_validate(data)


def gripper_cell(cell, kind: str, *peer_args: str, fingers: bool = True, **robot_args):
    """(peer, backend) with a gripper controller of `kind`, fingers open, stop released."""
    args = ("--fingers", "0.08") if fingers else ()
    peer, backend = cell(*args, "--gripper-kind", kind, "--gripper-topic", TOPICS[kind], *peer_args,
                         robot=gripper_robot(kind, **robot_args))
    if fingers:
        state_where(backend, lambda s: s.gripper_opening_m is not None, "the finger joints")
    backend.reset()
    wait_for(lambda: backend.latest_state().mode is ControllerMode.IDLE, "IDLE")
    return peer, backend


def commands_until(peer, predicate, what: str) -> list[dict]:
    """The gripper commands the peer reports, up to the first one that satisfies `predicate`."""
    got: list[dict] = []

    def more():
        got.extend(drain(peer, "gripper"))
        return next((i for i, e in enumerate(got) if predicate(e)), None) is not None

    wait_for(more, what)
    return got[:next(i for i, e in enumerate(got) if predicate(e)) + 1]


def ended(backend, goal_id: str):
    return state_where(backend, lambda s: s.goal_id == goal_id and s.goal_done,
                       f"goal {goal_id!r} to end")


@pytest.mark.parametrize("kind", KINDS)
def test_close_and_open_through_the_gripper_controller(cell, kind):
    peer, backend = gripper_cell(cell, kind)
    before = backend.latest_state()
    assert before.gripper_seq == 0 and before.gripper_opening_m == pytest.approx(0.08)
    backend.execute(GripperCommand(0.0, goal_id="close"))
    flight = state_where(backend, lambda s: s.gripper_seq == 1 and 0.01 < s.gripper_opening_m < 0.07,
                         "the fingers closing")
    assert flight.goal_id == "close" and not flight.goal_done and flight.mode is ControllerMode.EXECUTING
    closed = ended(backend, "close")
    assert closed.gripper_opening_m == pytest.approx(0.0, abs=1e-3) and closed.mode is ControllerMode.IDLE
    got = commands_until(peer, lambda e: e["opening"] == 0.0, "the target at the controller")
    if kind == "joint_trajectory":
        # one point at rest, half the opening per finger joint, due when 0.1 m/s closes 0.08 m
        assert got[0]["values"] == [0.0, 0.0] and got[0]["time_from_start"] == pytest.approx(0.8, abs=1e-6)
    else:
        # a stream of set-points from the open fingers down to the target, never jumping ahead
        openings = [e["opening"] for e in got]
        assert len(openings) >= 5 and openings[-1] == 0.0 and all(e["time_from_start"] is None for e in got)
        assert all(b < a for a, b in zip(openings, openings[1:])) and openings[0] > 0.07
        assert all(e["values"] == [e["opening"] / 2] * 2 for e in got)
    backend.execute(GripperCommand(0.08, goal_id="open"))
    opened = ended(backend, "open")
    assert opened.gripper_opening_m == pytest.approx(0.08, abs=1e-3) and opened.gripper_seq == 2


def test_a_mimicked_finger_gets_one_value(cell):
    peer, backend = gripper_cell(cell, "forward_position", "--gripper-joints", "panda_finger_joint1",
                                 joints=["panda_finger_joint1"])
    backend.execute(GripperCommand(0.04, goal_id="half"))
    half = ended(backend, "half")
    assert half.gripper_opening_m == pytest.approx(0.04, abs=1e-3)
    assert commands_until(peer, lambda e: e["opening"] == 0.04, "the target")[-1]["values"] == [0.02]


@pytest.mark.parametrize("kind", KINDS)
def test_a_close_on_a_part_attaches_the_payload_and_a_release_drops_it(cell, kind):
    peer, backend = gripper_cell(cell, kind, "--part-width", "0.05", payload=BAR)
    assert not backend.latest_state().payload_carried and backend.latest_state().placed_objects == ()
    backend.execute(GripperCommand(0.0, goal_id="grasp"))
    flight = state_where(backend, lambda s: s.gripper_seq == 1 and not s.goal_done, "the grasp in flight")
    assert flight.payload_carried and flight.link_names[-1] == PAYLOAD_LINK   # in flight: carried
    held = ended(backend, "grasp")                             # the fingers stalled on the part
    assert held.gripper_opening_m == pytest.approx(0.05, abs=1e-3)
    assert held.payload_carried and held.link_names[-1] == PAYLOAD_LINK and held.link_segments.shape == (10, 2, 3)
    # the controller's last command is the commanded opening: the grip keeps pressing
    commands_until(peer, lambda e: e["opening"] == 0.0, "the commanded opening at the controller")
    assert drain(peer, "gripper") == []
    backend.execute(GripperCommand(0.08, goal_id="release"))
    assert ended(backend, "release").gripper_opening_m == pytest.approx(0.08, abs=1e-3)
    released = state_where(backend, lambda s: not s.payload_carried, "the fingers to stop: empty")
    assert released.gripper_opening_m == pytest.approx(0.08, abs=1e-3) and PAYLOAD_LINK not in released.link_names
    # where it let go of the part is reported for the occupancy channel's mask (robot_bridge.placed)
    (placed,) = released.placed_objects
    assert placed.id == "payload/1" and placed.primitive == "cylinder" and placed.frame_id == "cell"
    assert np.allclose(placed.position, held.link_segments[-1].mean(axis=0), atol=0.005)


def test_an_empty_gripper_told_to_stop_within_the_grasp_widths_places_nothing(cell):
    """Closed to 0.04 m with nothing between the fingers (within the bar's grasp widths): the
    attach rule counts the payload as carried, but the goal reached its target unobstructed (no
    evidence of an object), so the release places no cylinder where nothing lies."""
    peer, backend = gripper_cell(cell, "forward_position", payload=BAR)
    backend.execute(GripperCommand(0.04, goal_id="stop-inside"))
    ended(backend, "stop-inside")
    rest = fingers_settled(backend, "the fingers at rest")   # at rest: a hold, with evidence
    assert rest.gripper_opening_m == pytest.approx(0.04, abs=1e-3) and rest.payload_carried
    backend.execute(GripperCommand(0.08, goal_id="open"))
    ended(backend, "open")
    released = state_where(backend, lambda s: not s.payload_carried, "the fingers to stop: empty")
    assert released.placed_objects == ()


@pytest.mark.parametrize("kind", KINDS)
def test_a_protective_stop_holds_a_closing_gripper_and_reset_does_not_resume_it(cell, kind):
    peer, backend = gripper_cell(cell, kind)
    backend.execute(GripperCommand(0.0, goal_id="close"))
    before = state_where(backend, lambda s: 0.03 < s.gripper_opening_m < 0.06, "the fingers half closed")
    backend.protective_stop(StopCategory.STOP_1, seq=4)
    stopped = ended(backend, "close")                          # the goal ended with the stop
    assert stopped.safety_seq == 4
    rest = fingers_settled(backend, "the fingers to stand still")
    hold = drain(peer, "gripper")[-1]                          # the last command: the hold
    assert hold["values"] == [hold["opening"] / 2] * 2
    if kind == "joint_trajectory":
        assert hold["time_from_start"] == pytest.approx(0.05)
    # held where they were measured when the stop came, far from closed
    assert before.gripper_opening_m - 0.02 < hold["opening"] <= before.gripper_opening_m + 1e-9
    assert rest.gripper_opening_m == pytest.approx(hold["opening"], abs=1e-3)
    with pytest.raises(CommandError, match=r"refused, a protective stop is held \(goal 'again'\)"):
        backend.execute(GripperCommand(0.0, goal_id="again"))
    backend.reset()
    after = state_where(backend, lambda s: s.stamp_ns > rest.stamp_ns + 0.3e9, "0.3 s of states after the reset")
    assert after.gripper_opening_m == pytest.approx(rest.gripper_opening_m, abs=1e-4)   # not resumed
    assert after.mode is ControllerMode.IDLE and after.goal_done and after.gripper_seq == 1
    assert drain(peer, "gripper") == []


@pytest.mark.parametrize("kind", KINDS)
def test_speed_scale_zero_pauses_a_gripper_goal_and_one_resumes_it(cell, kind):
    peer, backend = gripper_cell(cell, kind)
    backend.execute(GripperCommand(0.0, goal_id="close"))
    state_where(backend, lambda s: s.gripper_opening_m < 0.06, "the fingers closing")
    backend.set_speed_scale(0.0, seq=2)
    paused = fingers_settled(backend, "the paused fingers to stand still")
    assert 0.005 < paused.gripper_opening_m < 0.06
    assert not paused.goal_done and paused.mode is ControllerMode.EXECUTING   # still in flight
    backend.set_speed_scale(1.0, seq=3)
    done = ended(backend, "close")
    assert done.gripper_opening_m == pytest.approx(0.0, abs=1e-3)


def test_bad_gripper_commands_are_refused_and_never_reach_the_controller(cell):
    peer, backend = gripper_cell(cell, "joint_trajectory")
    for command, match in [
        (GripperCommand(-0.001, goal_id="a"), r"GripperCommand 'a': position_m must be in \[0, 0.08\] m, got -0.001"),
        (GripperCommand(0.09, goal_id="b"), r"GripperCommand 'b': position_m must be in \[0, 0.08\] m, got 0.09"),
        (GripperCommand(math.nan, goal_id="c"), r"GripperCommand 'c': position_m must be in \[0, 0.08\] m, got nan"),
        (GripperCommand(0.02, 0.0, goal_id="d"), r"GripperCommand 'd': max_effort_n must be in \(0, 140\] N, got 0.0"),
        (GripperCommand(0.02, 200.0, goal_id="e"), r"GripperCommand 'e': max_effort_n must be in \(0, 140\] N"),
    ]:
        with pytest.raises(CommandError, match=match):
            backend.execute(command)
    assert backend.latest_state().gripper_seq == 0
    backend.execute(GripperCommand(0.04, goal_id="ok"))
    assert peer.expect("gripper")["values"] == [0.02, 0.02]    # the first command it got: the good one


def test_a_gripper_command_needs_the_finger_opening(cell):
    peer, backend = gripper_cell(cell, "forward_position", fingers=False)
    with pytest.raises(CommandError, match=r"refused, the finger opening is unknown \(no fresh "
                                           r"panda_finger_joint1, panda_finger_joint2 in /joint_states\)"):
        backend.execute(GripperCommand(0.0, goal_id="blind"))


RUNNING = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")
STOPPED = SafetyState(0, SafetyMode.PROTECTIVE_STOP, 0.0, None, None, None, "a person in the cell")
OPERATOR = Actor("op", frozenset({"operator"}))


def test_gripper_commands_pass_the_gate_like_every_command(cell):
    peer, backend = gripper_cell(cell, "forward_position", payload=BAR)
    mode = [RUNNING]
    gate = CommandGate(backend, lambda: mode[0], np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS))
    wide = gate.submit(GripperCommand(0.1, goal_id="wide"), OPERATOR)
    assert wide.verdict is Verdict.REJECTED and wide.reason == "limits: gripper position_m must be in [0, 0.08] m, got 0.1"
    viewer = gate.submit(GripperCommand(0.0), Actor("w", frozenset({"worker"})))
    assert viewer.verdict is Verdict.REJECTED and viewer.reason.startswith("role:")
    mode[0] = STOPPED
    held = gate.submit(GripperCommand(0.0), OPERATOR)
    assert held.verdict is Verdict.REJECTED and held.reason.startswith("mode: no motion command is accepted")
    mode[0] = RUNNING
    answer = gate.submit(GripperCommand(0.0, goal_id="close"), OPERATOR)
    assert answer.verdict is Verdict.ACCEPTED
    assert backend.latest_state().gripper_seq <= 1
    assert state_where(backend, lambda s: s.gripper_seq == 1, "the command taken up").payload_carried
    assert ended(backend, "close").gripper_opening_m == pytest.approx(0.0, abs=1e-3)
    empty = state_where(backend, lambda s: not s.payload_carried, "closed on nothing: empty")
    assert empty.gripper_opening_m == pytest.approx(0.0, abs=1e-3) and PAYLOAD_LINK not in empty.link_names


def test_without_a_gripper_controller_the_gate_answers_with_the_backends_refusal(cell):
    peer, backend = cell("--fingers", "0.08")
    backend.reset()
    gate = CommandGate(backend, lambda: RUNNING, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS))
    answer = gate.submit(GripperCommand(0.0), OPERATOR)
    assert answer.verdict is Verdict.REJECTED
    assert answer.reason.startswith("robot: DdsBackend.execute: gripper commands need robot.dds.gripper_controller")


def test_the_evidence_of_a_grasp_ends_with_it(cell):
    """A closing goal stalled on a part is evidence for that grasp only: after the fingers are
    opened and closed again by someone else (a ROS 2 program of the cell's own, not a goal of
    this backend), that second grasp has no evidence, so its release places nothing (the pick
    took the first part off the list: it is payload again)."""
    peer, backend = gripper_cell(cell, "forward_position", "--part-width", "0.05", payload=BAR)
    backend.execute(GripperCommand(0.0, goal_id="grasp"))
    assert ended(backend, "grasp").gripper_opening_m == pytest.approx(0.05, abs=1e-3)
    fingers_settled(backend, "the fingers at rest on the part")
    peer.send("fingers:0.08")                       # opened by someone else: released, placed
    released = state_where(backend, lambda s: not s.payload_carried, "the release")
    assert [o.id for o in released.placed_objects] == ["payload/1"]
    peer.send("fingers:0.0")                        # closed again by someone else, on a part
    state_where(backend, lambda s: s.payload_carried, "the second grasp")
    fingers_settled(backend, "the fingers at rest again")
    peer.send("fingers:0.08")
    again = state_where(backend, lambda s: not s.payload_carried and s.gripper_opening_m > 0.07,
                        "the second release")
    assert again.placed_objects == ()
