"""Pause the robot program from the dashboard in a real browser, send the robot elsewhere, resume:
real sockets, the real program runner playing the demo cell's pick-and-place on the real simulated
Panda (PyBullet, real time), every motion through the real command gate. The page shows where the
program is; a resume brings the robot back to where it paused before the next step."""

from __future__ import annotations

from pathlib import Path

import pytest

from content.cell import load_cell
from robot_bridge.sim import (
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PandaLinkKinematics,
    plan_pick_and_place,
)
from safety.decision import SafetyMode, SafetyState
from tests.e2e.harness import start_e2e_server, wait_until
from tests.e2e.test_dashboard import browser, page, sign_in  # noqa: F401 - fixtures
from tests.e2e.test_dashboard_goto import robot_at
from tests.xr_server.doubles import FakeCameraViews
from tests.xr_server.sim_panda import panda_gate, started_panda
from xr_server.program import ProgramRunner
from xr_server.robot_goto import GotoPlanner
from xr_server.twin import build_twin_state

pytestmark = pytest.mark.e2e
DEMO = load_cell(Path(__file__).resolve().parents[2] / "launch" / "cells" / "demo.yaml")
SAFE = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "e2e")


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    robot = DEMO.robot
    # the sim's own watchdog is not under test: 2 s rides out thread stalls on a loaded machine
    backend = started_panda(robot, DEMO.program, state_timeout_s=2.0)
    gate_kin, goto_kin = PandaLinkKinematics(robot), PandaLinkKinematics(robot)
    gate = panda_gate(backend, lambda: SAFE, gate_kin)
    goto = GotoPlanner(robot.named_poses, backend.joint_names, PANDA_JOINT_VELOCITY_LIMITS_RADPS,
                       PANDA_JOINT_ACCELERATION_LIMITS_RADPS2, backend.latest_state, goto_kin)
    runner = ProgramRunner(plan_pick_and_place(robot, DEMO.program), gate, backend.latest_state,
                           lambda: SAFE, return_planner=lambda goal_id, q: goto.plan(goal_id, positions=q))

    def twin():
        return build_twin_state("e2e", backend.latest_state(), SAFE, None, gate.planned_path(),
                                program=runner.status())

    server = start_e2e_server(tmp_path_factory.mktemp("db"), {"ana": ["operator"]}, password="s3cret-pw",
                              name="xr-server-e2e-program", twin_source=twin,
                              camera_views=FakeCameraViews(), cell_name="e2e", robot_commands=gate,
                              robot_goto=goto, program=runner)
    runner.start()
    yield server.base, backend, runner
    runner.stop()
    server.stop()
    backend.shutdown()
    gate_kin.close()
    goto_kin.close()


def test_pause_go_to_a_pose_and_resume_from_the_dashboard(page, cell):  # noqa: F811
    base, backend, runner = cell
    sign_in(page, base)
    wait_until(page, "!document.getElementById('program').hidden "
                     "&& document.getElementById('link-status').dataset.status === 'connected'", 10)
    assert page.inner_text("#program-state").startswith("running: step ")
    page.click("#program-pause")
    wait_until(page, "window.__xrcell.lastProgramAnswer", 10)
    assert page.inner_text("#command-answer").startswith("program pause accepted: program: pausing")
    wait_until(page, "document.getElementById('program-state').dataset.state === 'paused'", 30)
    paused = runner.status()
    assert page.evaluate("window.__xrcell.program.step") == paused.step
    assert page.inner_text("#program-state").startswith(f"paused before step {paused.step + 1} of ")
    # the HMI (from the twin) tells the worker the program is paused
    page.goto(f"{base}/hmi")
    wait_until(page, "document.getElementById('hmi-program').dataset.state === 'paused'", 10)
    assert page.inner_text("#hmi-program") == "Program paused: the robot moves only on an operator's command"
    page.goto(f"{base}/")
    wait_until(page, "!document.getElementById('program').hidden "
                     "&& document.getElementById('link-status').dataset.status === 'connected'", 10)
    # the robot is free: "go to handover" through the gate, the twin follows
    handover = DEMO.robot.named_poses["handover"]
    wait_until(page, "document.querySelector(\"#goto-poses button[data-pose='handover']\")", 10)
    page.click("#goto-poses button[data-pose='handover']")
    wait_until(page, "window.__xrcell.lastCommandAnswer?.kind === 'goto'", 10)
    assert page.evaluate("window.__xrcell.lastCommandAnswer")["verdict"] == "accepted"
    wait_until(page, robot_at(handover), 30)
    # resume: back to where it paused (the twin shows it), then the next step
    page.evaluate("window.__xrcell.lastProgramAnswer = null")
    page.click("#program-resume")
    wait_until(page, "window.__xrcell.lastProgramAnswer", 10)
    assert page.inner_text("#command-answer") == (
        "program resume accepted: program: returning to where the next step starts, then running")
    wait_until(page, robot_at(paused.resume_at), 30)
    wait_until(page, "window.__xrcell.planGoals.includes('program/return/1')", 5)
    wait_until(page, "document.getElementById('program-state').dataset.state === 'running'", 30)
    wait_until(page, f"window.__xrcell.planGoals.includes({paused.goal_id!r}) "
                     f"|| window.__xrcell.program.step !== {paused.step}", 30)
    assert runner.status().state == "running"
    assert page.problems == []
