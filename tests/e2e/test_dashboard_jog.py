"""The dashboard's jog buttons and STOP in a real browser, over real sockets, through the real
command gate to the real simulated Panda (PyBullet, real time): holding +Z lifts the TCP, the
robot stops by itself after the button is released, and the gate's answer shows on the page."""

from __future__ import annotations

import time

import numpy as np
import pytest

from content.cell import Pose, Robot
from robot_bridge.sim import PandaLinkKinematics
from safety.decision import SafetyMode, SafetyState
from tests.e2e.harness import start_e2e_server, wait_until
from tests.e2e.test_dashboard import browser, page, sign_in  # noqa: F401 - fixtures
from tests.xr_server.doubles import TWIN, FakeCameraViews
from tests.xr_server.sim_panda import panda_gate, started_panda

pytestmark = pytest.mark.e2e
ROBOT = Robot(base=Pose(position=(0.0, 0.0, 0.0)))


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    backend = started_panda(ROBOT)
    kin = PandaLinkKinematics(ROBOT)
    full_speed = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "e2e")
    gate = panda_gate(backend, lambda: full_speed, kin)
    stops: list[tuple[str, str]] = []

    def request_stop(actor, roles, reason):
        stops.append((actor, reason))
        return True, "protective stop requested"

    server = start_e2e_server(tmp_path_factory.mktemp("db"), {"ana": ["operator"]},
                              name="xr-server-e2e-jog", password="s3cret-pw", twin_source=lambda: {**TWIN, "cell": "e2e"},
                              camera_views=FakeCameraViews(), cell_name="e2e", robot_commands=gate,
                              safety_stop=request_stop)
    yield server.base, backend, stops
    server.stop()
    backend.shutdown()
    kin.close()


def test_holding_a_jog_button_moves_the_robot_and_releasing_it_stops_the_robot(page, cell):  # noqa: F811
    base, backend, stops = cell
    sign_in(page, base)
    wait_until(page, "!document.getElementById('jog').hidden", 10)
    z0 = float(backend.latest_state().tcp_position[2])
    page.hover("button[data-axis='2'][data-sign='1']")
    page.mouse.down()
    page.wait_for_timeout(800)
    page.mouse.up()
    released = time.monotonic()
    wait_until(page, "window.__xrcell.lastCommandAnswer?.verdict === 'accepted'", 10)
    assert page.inner_text("#command-answer") == "jog_cartesian accepted: forwarded"
    # at rest by itself after the release (the deadman), with the TCP lifted, nothing else moved
    deadline = released + 10.0
    state = backend.latest_state()
    while time.monotonic() < deadline and not (state.goal_done and np.linalg.norm(state.tcp_velocity_mps) < 0.002):
        time.sleep(0.02)
        state = backend.latest_state()
    assert state.goal_done and state.goal_id.startswith("dashboard-jog-")
    assert int(state.goal_id.rsplit("-", 1)[1]) >= 5  # a stream of jogs, not one
    assert float(state.tcp_position[2]) - z0 > 0.01
    page.click("#stop-button")
    wait_until(page, "window.__xrcell.lastCommandAnswer?.kind === 'stop'", 10)
    assert page.inner_text("#command-answer") == "stop accepted: protective stop requested"
    assert stops == [("ana", "dashboard stop button")]
    assert page.problems == []


def test_the_hmi_stops_the_robot_by_gaze_dwell_and_its_controls_answer_to_voice_phrases(page, cell):  # noqa: F811
    """On /hmi, resting the pointer (the cursor a head-tracked pair of glasses moves) on "Stop
    robot" presses it after the dwell time, once; a glance across it does nothing. The monitor's
    stop request gets the page's reason and the page shows the answer. The voice phrases (the
    button labels) press their controls through the page's own matcher; the Web Speech API
    itself is the browser's and is not driven here."""
    base, _, stops = cell
    sign_in(page, base, "/hmi")
    wait_until(page, "window.__xrcell.ready === true", 20)
    before = len(stops)
    page.hover("#stop-robot")
    page.wait_for_timeout(400)            # a glance: well under the 1.2 s dwell
    page.hover("#hmi-badge")              # no [data-dwell] here
    page.wait_for_timeout(1500)
    assert len(stops) == before and page.evaluate("window.__xrcell.handsFree.dwellClicks") == 0
    page.hover("#stop-robot")
    wait_until(page, "window.__xrcell.handsFree.robotAnswer?.verdict === 'accepted'", 10)
    assert page.inner_text("#robot-answer") == "stop accepted: protective stop requested"
    assert stops[before:] == [("ana", "HMI stop button")]
    page.wait_for_timeout(2000)           # still resting on it: no second press
    assert len(stops) == before + 1 and page.evaluate("window.__xrcell.handsFree.dwellClicks") == 1
    page.hover("#hmi-badge")
    assert page.evaluate("document.getElementById('align-panel').hidden")
    assert page.evaluate("window.__xrcell.handsFree.hear('OK, align!')") == "align"
    assert not page.evaluate("document.getElementById('align-panel').hidden")
    assert page.evaluate("window.__xrcell.handsFree.hear('open the pod bay doors')") is None
    assert page.evaluate("window.__xrcell.handsFree.voice") == 'not a command: "open the pod bay doors"'
    assert page.problems == []
