"""Robot commands from users over real sockets: the ``robot_command`` Socket.IO event (real
python-socketio clients on loopback against the real server in a thread) and the REST routes
``POST /api/robot/jog``, ``/gripper`` and ``/stop``, in front of the real command gate and the
real simulated Panda. Stop and reset reach the safety monitor through its two callables
(`SafetyMonitor.request_stop` / `reset`, tested on their own in tests/safety); here they are
recorded at that seam."""

from __future__ import annotations

import time

import pytest
import requests

from content.cell import Pose, Robot
from robot_bridge.sim import PandaLinkKinematics
from safety.decision import SafetyMode, SafetyState
from tests.xr_server.live import start_live_server_with_accounts
from tests.xr_server.sim_panda import panda_gate, started_panda

ROBOT = Robot(base=Pose(position=(0.0, 0.0, 0.0)))
JOG = {"kind": "jog_cartesian", "frame_id": "cell", "linear_mps": [0.05, 0.0, 0.0],
       "angular_radps": [0.0, 0.0, 0.0], "goal_id": "jog-1"}


class MonitorSeam:
    """Records stop and reset requests as `SafetyMonitor` would receive them."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def request_stop(self, actor: str, roles: frozenset[str], reason: str) -> tuple[bool, str]:
        self.calls.append(("stop", actor, reason))
        return True, "protective stop requested"

    def reset(self, actor: str, roles: frozenset[str]) -> tuple[bool, str]:
        self.calls.append(("reset", actor))
        if not roles & {"supervisor", "admin"}:
            return False, f"role: {actor!r} may not reset; a reset needs supervisor or admin"
        return True, "reset requested"


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    backend = started_panda(ROBOT)
    kin = PandaLinkKinematics(ROBOT)
    mode = {"m": SafetyMode.FULL_SPEED}
    gate = panda_gate(backend, lambda: SafetyState(0, mode["m"], 1.0, None, None, None, "test"), kin)
    seam = MonitorSeam()
    server = start_live_server_with_accounts(tmp_path_factory.mktemp("robot-events"),
                                             robot_commands=gate, safety_stop=seam.request_stop,
                                             safety_reset=seam.reset)
    yield server, backend, seam, mode
    server.app.xrcell_stop()
    backend.shutdown()
    kin.close()


@pytest.fixture
def seam(cell):
    cell[2].calls.clear()
    return cell[2]


def client(cell, user):
    return cell[0].client(user)


def test_an_operators_jog_is_answered_with_the_gates_verdict_and_moves_the_robot(cell):
    otto = client(cell, "otto")
    try:
        x0 = cell[1].latest_state().tcp_position[0]
        for i in range(6):
            ack = otto.call("robot_command", {**JOG, "goal_id": f"jog-{i}"})
            assert ack == {"kind": "jog_cartesian", "verdict": "accepted", "reason": "forwarded",
                           "goal_id": f"jog-{i}"}
            time.sleep(0.05)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and cell[1].latest_state().goal_id != "jog-5":
            time.sleep(0.01)
        assert cell[1].latest_state().goal_id == "jog-5"
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and not cell[1].latest_state().goal_done:
            time.sleep(0.01)
        assert cell[1].latest_state().tcp_position[0] - x0 > 0.005
        assert otto.received("error") == []
    finally:
        otto.close()


def test_a_joint_jog_and_a_gripper_goal_pass_the_gate(cell):
    ada = client(cell, "ada")
    try:
        ack = ada.call("robot_command", {"kind": "jog_joint", "joint_names": ["panda_joint7"],
                                         "velocities": [0.2], "goal_id": "jj"})
        assert ack["verdict"] == "accepted" and ack["goal_id"] == "jj"
        ack = ada.call("robot_command", {"kind": "gripper", "position_m": 0.06, "goal_id": "grip"})
        assert ack == {"kind": "gripper", "verdict": "accepted", "reason": "forwarded", "goal_id": "grip"}
    finally:
        ada.close()


def test_a_worker_may_not_jog_and_a_stop_mode_refuses_motion(cell):
    wendy = client(cell, "wendy")
    otto = client(cell, "otto")
    try:
        ack = wendy.call("robot_command", JOG)
        assert ack["verdict"] == "rejected"
        assert ack["reason"].startswith("role: 'wendy' has roles ['worker']; moving a robot needs operator")
        cell[3]["m"] = SafetyMode.PROTECTIVE_STOP
        ack = otto.call("robot_command", JOG)
        assert ack["verdict"] == "rejected" and ack["reason"].startswith("mode: no motion command")
    finally:
        cell[3]["m"] = SafetyMode.FULL_SPEED
        wendy.close()
        otto.close()


@pytest.mark.parametrize("payload, reason", [
    ({**JOG, "kind": "fly"}, "field 'kind' must be one of jog_joint, jog_cartesian, trajectory, gripper, "
                             "goto, stop, reset; got 'fly'"),
    ({"linear_mps": [0, 0, 0]}, "missing field 'kind'"),
    ({**JOG, "linear_mps": [0.1, 0.0]}, "field 'linear_mps': List should have at least 3 items"),
    ({**JOG, "frame_id": "world"}, "field 'frame_id': Input should be 'cell' or 'tool'"),
    ({**JOG, "speed": 1}, "unexpected field 'speed'"),
    ({"kind": "jog_joint", "joint_names": ["panda_joint1"], "velocities": [0.1, 0.2]},
     "field 'velocities': expected 1 values (one per joint name), got 2"),
    ({"kind": "jog_joint", "joint_names": ["panda_joint1"]},
     "give exactly one of fields 'velocities' or 'displacements'"),
    ({"kind": "jog_joint", "joint_names": ["panda_joint1"], "displacements": [0.1]},
     "field 'duration_s' must be > 0 with 'displacements'"),
    ({"kind": "gripper", "position_m": 0.5}, "field 'position_m': Input should be less than or equal to 0.08"),
    ({"kind": "trajectory", "joint_names": ["a"], "points": [{"positions": [0, 1], "time_from_start_s": 0}]},
     "field 'points.0.positions': expected 1 values (one per joint name), got 2"),
    ([1, 2], "must be a JSON object with field 'kind'"),
])
def test_malformed_commands_are_refused_naming_the_field_and_the_connection_stays(cell, payload, reason):
    otto = client(cell, "otto")
    try:
        ack = otto.call("robot_command", payload)
        assert ack["event"] == "robot_command"
        assert ack["error"].startswith("invalid 'robot_command' payload: ")
        assert reason in ack["error"], ack["error"]
        otto.wait_for("error", lambda e: e["event"] == "robot_command" and reason in e["error"])
        assert otto.sio.connected
        assert otto.call("robot_command", {**JOG, "linear_mps": [0, 0, 0]})["verdict"] == "accepted"
    finally:
        otto.close()


def test_stop_goes_to_the_monitor_for_anyone_and_reset_needs_a_supervisor(cell, seam):
    wendy = client(cell, "wendy")
    otto = client(cell, "otto")
    sam = client(cell, "sam")
    try:
        assert wendy.call("robot_command", {"kind": "stop", "reason": "someone in the cell"}) == {
            "kind": "stop", "verdict": "accepted", "reason": "protective stop requested", "goal_id": ""}
        ack = otto.call("robot_command", {"kind": "reset"})
        assert ack["verdict"] == "rejected" and ack["reason"].startswith("role: 'otto' may not reset")
        assert sam.call("robot_command", {"kind": "reset"})["verdict"] == "accepted"
        assert seam.calls == [("stop", "wendy", "someone in the cell"), ("reset", "otto"), ("reset", "sam")]
    finally:
        for c in (wendy, otto, sam):
            c.close()


def post(cell, user, path, body):
    token = cell[0].token(user)
    return requests.post(f"{cell[0].base}{path}", json=body, headers={"Authorization": f"Bearer {token}"},
                         timeout=10)


def test_rest_jog_gripper_and_stop(cell, seam):
    response = post(cell, "otto", "/api/robot/jog", {**JOG, "goal_id": "rest-jog"})
    assert response.status_code == 200
    assert response.json() == {"kind": "jog_cartesian", "verdict": "accepted", "reason": "forwarded",
                               "goal_id": "rest-jog"}
    response = post(cell, "wendy", "/api/robot/jog", JOG)
    assert response.status_code == 403 and response.json()["reason"].startswith("role: ")
    response = post(cell, "otto", "/api/robot/jog", {"kind": "gripper", "position_m": 0.01})
    assert response.status_code == 400
    assert response.json() == {"error": "field 'kind' must be one of jog_joint, jog_cartesian; got 'gripper'"}
    response = post(cell, "otto", "/api/robot/jog", {**JOG, "angular_radps": [0, 0, "x"]})
    assert response.status_code == 400 and "field 'angular_radps.2'" in response.json()["error"]
    response = post(cell, "otto", "/api/robot/gripper", {"kind": "gripper", "position_m": 0.08})
    assert response.status_code == 200 and response.json()["verdict"] == "accepted"
    cell[3]["m"] = SafetyMode.FAULT_STOP
    try:
        response = post(cell, "otto", "/api/robot/jog", JOG)
        assert response.status_code == 409 and response.json()["reason"].startswith("mode: ")
    finally:
        cell[3]["m"] = SafetyMode.FULL_SPEED
    response = post(cell, "wendy", "/api/robot/stop", {"kind": "stop"})
    assert response.status_code == 200 and seam.calls == [("stop", "wendy", "")]


def test_the_openapi_document_lists_the_robot_routes(cell):
    doc = requests.get(f"{cell[0].base}/api/openapi.json", timeout=10).json()
    for path in ("/api/robot/jog", "/api/robot/gripper", "/api/robot/stop"):
        assert "post" in doc["paths"][path]
    for name in ("JogJointRequest", "JogCartesianRequest", "RobotCommandAnswer", "StopCommandRequest"):
        assert name in doc["components"]["schemas"]
