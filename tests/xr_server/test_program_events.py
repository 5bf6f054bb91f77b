"""Pause and resume the robot program from a page, over real sockets: the ``program_control`` event
(real python-socketio clients on loopback) and ``/api/program``, in front of the real program
runner playing the demo cell's pick-and-place on the real simulated Panda (PyBullet, real time),
every motion through the real command gate, the go-to while paused planned by the real planner."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import requests

from content.cell import load_cell
from robot_bridge.sim import (
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PandaLinkKinematics,
    plan_pick_and_place,
)
from safety.audit import AuditLog
from safety.decision import SafetyMode, SafetyState
from tests.xr_server.live import start_live_server_with_accounts
from tests.xr_server.sim_panda import panda_gate, started_panda
from xr_server.errors import XrServerError
from xr_server.program import ProgramRunner
from xr_server.program_events import ProgramControl
from xr_server.robot_goto import GotoPlanner

DEMO = load_cell(Path(__file__).resolve().parents[2] / "launch" / "cells" / "demo.yaml")
FULL_SPEED = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("program-events")
    robot = DEMO.robot
    backend = started_panda(robot, DEMO.program)
    gate_kin, goto_kin = PandaLinkKinematics(robot), PandaLinkKinematics(robot)
    gate = panda_gate(backend, lambda: FULL_SPEED, gate_kin)
    goto = GotoPlanner(robot.named_poses, backend.joint_names, PANDA_JOINT_VELOCITY_LIMITS_RADPS,
                       PANDA_JOINT_ACCELERATION_LIMITS_RADPS2, backend.latest_state, goto_kin)
    runner = ProgramRunner(plan_pick_and_place(robot, DEMO.program), gate, backend.latest_state,
                           lambda: FULL_SPEED,
                           return_planner=lambda goal_id, q: goto.plan(goal_id, positions=q))
    audit = AuditLog(f"sqlite:///{tmp / 'audit.sqlite'}")
    server = start_live_server_with_accounts(tmp, robot_commands=gate, robot_goto=goto,
                                             audit=audit.append, program=runner)
    server.audit = audit
    runner.start()
    yield server, backend, runner
    runner.stop()
    server.app.xrcell_stop()
    audit.close()
    backend.shutdown()
    gate_kin.close()
    goto_kin.close()


def rest(server, user, method, path):
    return requests.request(method, f"{server.base}{path}", timeout=20,
                            headers={"Authorization": f"Bearer {server.token(user)}"})


def wait_state(server, wanted, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        status = rest(server, "wendy", "GET", "/api/program").json()["status"]
        if status["state"] == wanted:
            return status
        time.sleep(0.1)
    raise AssertionError(f"program not {wanted} within {timeout_s} s: {status}")


def test_pause_go_elsewhere_and_resume_back_where_it_paused(cell):
    server, backend, runner = cell
    wendy, sam, otto = server.client("wendy"), server.client("sam"), server.client("otto")
    try:
        # while the program runs, the robot is the program's: an operator's go-to is refused, and
        # a command with one of the program's goal ids too
        ack = otto.call("robot_command", {"kind": "goto", "named_pose": "handover", "goal_id": "early"})
        assert ack["verdict"] == "rejected" and ack["reason"].startswith(
            "program: the robot program is running; pause it first"), ack
        # a worker may neither pause nor resume; the program keeps running
        ack = wendy.call("program_control", {"action": "pause"})
        assert ack["accepted"] is False and ack["reason"].startswith("role: 'wendy'")
        assert ack["status"]["state"] == "running"
        assert rest(server, "wendy", "POST", "/api/program/pause").status_code == 403
        # a supervisor pauses; the step in flight ends first
        response = rest(server, "sam", "POST", "/api/program/pause")
        assert response.status_code == 200 and response.json()["accepted"] is True
        paused = wait_state(server, "paused")
        next_goal = paused["goal_id"]
        time.sleep(0.5)
        state = backend.latest_state()
        assert state.goal_done and np.abs(state.velocity).max() < 0.05      # resting
        np.testing.assert_allclose(state.position, paused["resume_at"], atol=0.01)
        # while the program ran, a go-to was refused for the program; now the robot is free
        # while paused, an operator sends the robot elsewhere through the gate
        ack = otto.call("robot_command", {"kind": "goto", "named_pose": "handover", "goal_id": "aside"})
        assert ack["verdict"] == "accepted", ack
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (backend.latest_state().goal_id == "aside"
                                                   and backend.latest_state().goal_done):
            time.sleep(0.05)
        assert backend.latest_state().goal_id == "aside" and backend.latest_state().goal_done
        assert wait_state(server, "paused")["goal_id"] == next_goal       # the program waited
        # a supervisor may pause but not resume (the robot would move)
        ack = sam.call("program_control", {"action": "resume"})
        assert ack["accepted"] is False and "needs admin or operator" in ack["reason"]
        # the operator resumes: back to where it paused first, then the next step
        ack = otto.call("program_control", {"action": "resume"})
        assert ack["accepted"] is True and ack["status"]["state"] == "returning", ack
        deadline = time.monotonic() + 30
        seen = []                       # (goal id, position) when each goal first shows
        while time.monotonic() < deadline and next_goal not in [g for g, _ in seen]:
            state = backend.latest_state()
            if not seen or seen[-1][0] != state.goal_id:
                seen.append((state.goal_id, np.array(state.position)))
            time.sleep(0.005)
        goals = [g for g, _ in seen]
        assert "program/return/1" in goals and next_goal in goals, goals
        assert goals.index("program/return/1") < goals.index(next_goal)
        # the next step began where it was planned to start, not where the go-to left the robot
        np.testing.assert_allclose(seen[goals.index(next_goal)][1], paused["resume_at"], atol=0.02)
        assert runner.status().state == "running"
    finally:
        for client in (wendy, sam, otto):
            client.close()
    kinds = [(r["kind"], r["actor"]) for r in server.audit.page(limit=1000)["events"]
             if r["kind"].startswith("program_")]
    assert ("program_pause", "wendy") in kinds and ("program_pause", "sam") in kinds
    assert ("program_resume", "sam") in kinds and ("program_resume", "otto") in kinds
    assert ("program_refused", "otto") in kinds


def test_a_users_command_may_not_use_the_programs_goal_ids(cell):
    server, backend, runner = cell
    goal = runner.status().goal_id
    response = requests.post(f"{server.base}/api/robot/trajectory", timeout=20,
                             headers={"Authorization": f"Bearer {server.token('otto')}"},
                             json={"joint_names": list(backend.joint_names), "goal_id": goal,
                                   "points": [{"positions": list(backend.latest_state().position),
                                               "time_from_start_s": 1.0}]})
    assert response.status_code == 409
    assert response.json()["reason"] == (f"program: goal id {goal!r} is reserved for the robot program; "
                                         "use another")


def test_a_malformed_request_is_refused_with_the_field(cell):
    server = cell[0]
    client = server.client("otto")
    try:
        ack = client.call("program_control", {"action": "jump"})
        assert "invalid 'program_control' payload" in ack["error"] and "action" in ack["error"]
        ack = client.call("program_control", {"action": "pause", "extra": 1})
        assert "extra" in ack["error"]
    finally:
        client.close()
    assert rest(server, "otto", "GET", "/api/program").status_code == 200
    assert requests.get(f"{server.base}/api/program", timeout=10).status_code == 401


def test_a_server_without_a_program_says_so():
    with pytest.raises(XrServerError, match="no program: this server runs no robot program"):
        ProgramControl(None).handle("otto", frozenset({"operator"}), "pause")
    answer = ProgramControl(None).handle("wendy", frozenset({"worker"}), "status")
    assert answer.status is None and answer.reason == "no program: this server runs no robot program"
