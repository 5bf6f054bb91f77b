""""Go to a pose" from the dashboard in a real browser, over real sockets, through the real
go-to planner and command gate to the real simulated Panda (PyBullet, real time): "go to <pose>"
moves the twin's joints (the real robot's state) to the pose with the gate's path shown, the
gate's answer shows on the page, and a worker sees the gate's refusal."""

from __future__ import annotations

import numpy as np
import pytest

from content.cell import Pose, Robot
from robot_bridge.sim import (
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PandaLinkKinematics,
)
from robot_bridge.sim.panda import PANDA_HOME_POSITION
from safety.decision import SafetyMode, SafetyState
from tests.e2e.harness import start_e2e_server, wait_until
from tests.e2e.test_dashboard import browser, page, sign_in  # noqa: F401 - fixtures
from tests.xr_server.doubles import FakeCameraViews
from tests.xr_server.sim_panda import panda_gate, started_panda
from xr_server.robot_goto import GotoPlanner
from xr_server.twin import build_twin_state

pytestmark = pytest.mark.e2e
HANDOVER = (0.0, 0.1, 0.0, -1.3, 0.0, 1.4, 0.7854)
ROBOT = Robot(base=Pose(position=(0.0, 0.0, 0.0)),
              named_poses={"home": PANDA_HOME_POSITION, "handover": HANDOVER})
SAFE = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "e2e")


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    # the sim's own watchdog is not under test here: 2 s instead of 0.5 s rides out the stalls of
    # its thread on a loaded 2-core machine (a stall latches a FAULT that refuses every goal)
    backend = started_panda(ROBOT, state_timeout_s=2.0)
    kin = PandaLinkKinematics(ROBOT)
    gate = panda_gate(backend, lambda: SAFE, kin)
    goto = GotoPlanner(ROBOT.named_poses, backend.joint_names, PANDA_JOINT_VELOCITY_LIMITS_RADPS,
                       PANDA_JOINT_ACCELERATION_LIMITS_RADPS2, backend.latest_state, kin)

    def twin():  # the twin of the real robot, with the gate's path while it is executed
        return build_twin_state("e2e", backend.latest_state(), SAFE, None, gate.planned_path())

    accounts = {"ana": ["operator"], "wim": ["worker"]}
    server = start_e2e_server(tmp_path_factory.mktemp("db"), accounts, name="xr-server-e2e-goto", password="s3cret-pw", twin_source=twin,
                              camera_views=FakeCameraViews(), cell_name="e2e", robot_commands=gate,
                              robot_goto=goto)
    yield server.base, backend
    server.stop()
    backend.shutdown()
    kin.close()


def robot_at(q, atol=0.01) -> str:
    return (f"(window.__xrcell.robotQ || []).length === {len(q)} && "
            f"window.__xrcell.robotQ.every((v, i) => Math.abs(v - {list(q)}[i]) < {atol})")


def test_the_operator_sends_the_robot_to_a_named_pose_and_the_twin_follows(page, cell):  # noqa: F811
    """"go to handover", then "go to home": each answered by the gate on the page, the twin's
    joints (from the real robot's state) arrive at the pose, and the gate's path shows in the twin
    while the robot follows it."""
    base, backend = cell
    sign_in(page, base)
    wait_until(page, "!document.getElementById('goto').hidden && window.__xrcell.robotQ !== undefined "
                     "&& document.getElementById('link-status').dataset.status === 'connected'", 10)
    assert page.inner_text("#goto-poses").split("\n") == ["go to handover", "go to home"]
    for name, q in (("handover", HANDOVER), ("home", PANDA_HOME_POSITION)):
        page.click(f"#goto-poses button[data-pose='{name}']")
        wait_until(page, "window.__xrcell.lastCommandAnswer?.kind === 'goto'", 10)
        answer = page.evaluate("window.__xrcell.lastCommandAnswer")
        assert answer["verdict"] == "accepted", answer
        assert page.inner_text("#command-answer") == "goto accepted: forwarded"
        try:
            wait_until(page, robot_at(q) + " && document.getElementById('robot-mode').textContent === 'idle'",
                       20)
        except AssertionError:
            state = backend.latest_state()
            raise AssertionError(f"robot {state.mode}, goal {state.goal_id!r} done {state.goal_done}, "
                                 f"q {np.round(state.position, 3).tolist()}, twin "
                                 f"{page.evaluate('window.__xrcell.robotQ')}") from None
        assert page.evaluate("window.__xrcell.planGoals").count(answer["goal_id"]) == 1
        page.evaluate("window.__xrcell.lastCommandAnswer = null")
    np.testing.assert_allclose(backend.latest_state().position, PANDA_HOME_POSITION, atol=0.01)
    # a typed TCP target out of reach: refused with the reason, nothing moves
    page.fill("#goto-tcp input[name='x']", "3")
    page.click("#goto-tcp button[type='submit']")
    wait_until(page, "window.__xrcell.lastCommandAnswer", 10)
    assert page.inner_text("#command-answer").startswith("goto rejected: reach: TCP target [3.0, ")
    assert page.problems == []


def test_a_worker_sees_the_gates_refusal_of_a_go_to(page, cell):  # noqa: F811
    base, backend = cell
    before = backend.latest_state().goal_id
    page.goto(f"{base}/")
    page.fill("#username", "wim")
    page.fill("#password", "s3cret-pw")
    page.click("#login-button")
    page.wait_for_url(f"{base}/")
    wait_until(page, "!document.getElementById('goto').hidden "
                     "&& document.getElementById('link-status').dataset.status === 'connected'", 10)
    assert page.evaluate("document.getElementById('jog').hidden")
    page.click("#goto-poses button[data-pose='handover']")
    wait_until(page, "window.__xrcell.lastCommandAnswer", 10)
    assert page.inner_text("#command-answer") == (
        "goto rejected: role: 'wim' has roles ['worker']; moving a robot needs operator or admin")
    assert backend.latest_state().goal_id == before
    assert page.problems == []


def test_the_hmi_goes_to_a_pose_by_voice_phrase_and_by_gaze_dwell(page, cell):  # noqa: F811
    """On /hmi the named poses are big hands-free controls: saying "go to handover" (through the
    page's own phrase matcher) and resting the pointer on "Go to home" each send the robot there
    through the gate, and the page shows the answer."""
    base, backend = cell
    sign_in(page, base, "/hmi")
    wait_until(page, "window.__xrcell.ready === true && "
                     "document.querySelectorAll('#goto-poses button[data-dwell]').length === 2", 20)
    assert page.evaluate("window.__xrcell.handsFree.hear('please go to handover')") == "go to handover"
    wait_until(page, "window.__xrcell.handsFree.robotAnswer?.verdict === 'accepted'", 10)
    assert page.inner_text("#robot-answer") == "go to handover accepted: forwarded"

    def arrived(goal_id: str, q) -> bool:
        state = backend.latest_state()
        return (state.goal_id == goal_id and state.goal_done and np.abs(state.velocity).max() < 0.05
                and np.abs(state.position - np.asarray(q)).max() < 0.01)

    for _ in range(200):
        if arrived("hmi-goto-handover", HANDOVER):
            break
        page.wait_for_timeout(100)
    assert arrived("hmi-goto-handover", HANDOVER), backend.latest_state()
    page.evaluate("window.__xrcell.handsFree.robotAnswer = null")
    page.hover("#goto-poses button[data-pose='home']")
    wait_until(page, "window.__xrcell.handsFree.robotAnswer?.verdict === 'accepted'", 10)
    assert page.inner_text("#robot-answer") == "go to home accepted: forwarded"
    for _ in range(200):
        if arrived("hmi-goto-home", PANDA_HOME_POSITION):
            break
        page.wait_for_timeout(100)
    assert arrived("hmi-goto-home", PANDA_HOME_POSITION), backend.latest_state()
    assert page.problems == []
