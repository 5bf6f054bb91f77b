""""Go to a pose" over real sockets: ``robot_command`` kind ``goto`` (real python-socketio clients
on loopback) and ``POST /api/robot/goto`` / ``GET /api/robot/named_poses``, planned by the real
`GotoPlanner` and checked by the real command gate (roles, limits, keep-out sweep) in front of the
real simulated Panda (PyBullet, real time)."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import requests

from content.cell import Pose, Robot, Zone, ZoneBox
from robot_bridge.sim import (
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PandaLinkKinematics,
)
from robot_bridge.sim.panda import ARM_JOINT_NAMES, PANDA_HOME_POSITION
from safety.audit import AuditLog
from safety.decision import SafetyMode, SafetyState
from safety.zones import CellZones
from tests.xr_server.doubles import SECRET, TWIN, FakeCameraViews
from tests.xr_server.live import USERS, start_live_server_with_accounts
from tests.xr_server.sim_panda import panda_gate, started_panda
from xr_server.app import create_app
from xr_server.robot_goto import GotoPlanner

HANDOVER = (0.0, 0.1, 0.0, -1.3, 0.0, 1.4, 0.7854)
#: Turned round (joint 1 at 2.6 rad) towards the cabinet behind and left of the robot.
CABINET = (2.6, 0.5, 0.0, -1.2, 0.0, 1.7, 0.7854)
ROBOT = Robot(base=Pose(position=(0.0, 0.0, 0.0)),
              named_poses={"home": PANDA_HOME_POSITION, "handover": HANDOVER, "cabinet": CABINET})
ZONES = [Zone(name="cabinet", kind="robot_keep_out",
              box=ZoneBox(min=(-0.9, 0.1, 0.0), max=(-0.45, 0.6, 1.2)))]


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robot-goto")
    backend = started_panda(ROBOT)
    gate_kin, goto_kin = PandaLinkKinematics(ROBOT), PandaLinkKinematics(ROBOT)
    full_speed = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "test")
    gate = panda_gate(backend, lambda: full_speed, gate_kin, zones=CellZones(ZONES))
    goto = GotoPlanner(ROBOT.named_poses, backend.joint_names, PANDA_JOINT_VELOCITY_LIMITS_RADPS,
                       PANDA_JOINT_ACCELERATION_LIMITS_RADPS2, backend.latest_state, goto_kin)
    audit = AuditLog(f"sqlite:///{tmp / 'audit.sqlite'}")
    server = start_live_server_with_accounts(tmp, robot_commands=gate, robot_goto=goto,
                                             audit=audit.append)
    server.audit = audit
    yield server, backend, gate_kin
    server.app.xrcell_stop()
    audit.close()
    backend.shutdown()
    gate_kin.close()
    goto_kin.close()


def wait_done(backend, goal_id: str, timeout_s: float = 20.0):
    deadline = time.monotonic() + timeout_s
    state = backend.latest_state()
    while time.monotonic() < deadline and not (state.goal_id == goal_id and state.goal_done
                                               and np.abs(state.velocity).max() < 0.01):
        time.sleep(0.02)
        state = backend.latest_state()
    assert state.goal_id == goal_id and state.goal_done, (state.goal_id, state.goal_done)
    return state


def post(server, user, path, body):
    return requests.post(f"{server.base}{path}", json=body, timeout=20,
                         headers={"Authorization": f"Bearer {server.token(user)}"})


def test_the_named_poses_are_listed_to_any_signed_in_user(cell):
    server = cell[0]
    response = requests.get(f"{server.base}/api/robot/named_poses", timeout=10,
                            headers={"Authorization": f"Bearer {server.token('wendy')}"})
    assert response.status_code == 200
    body = response.json()
    assert body["joint_names"] == list(ARM_JOINT_NAMES)
    assert body["named_poses"] == {"home": list(PANDA_HOME_POSITION), "handover": list(HANDOVER),
                                   "cabinet": list(CABINET)}
    assert body["tcp_targets"] is True and body["tcp_speed_mps"] == 0.25
    assert requests.get(f"{server.base}/api/robot/named_poses", timeout=10).status_code == 401


def test_an_operator_sends_the_robot_to_a_named_pose_and_back_over_rest(cell):
    server, backend, _ = cell
    otto = server.client("otto")
    try:
        ack = otto.call("robot_command", {"kind": "goto", "named_pose": "handover", "goal_id": "to-handover"})
        assert ack == {"kind": "goto", "verdict": "accepted", "reason": "forwarded", "goal_id": "to-handover"}
    finally:
        otto.close()
    state = wait_done(backend, "to-handover")
    np.testing.assert_allclose(state.position, HANDOVER, atol=0.01)
    response = post(server, "ada", "/api/robot/goto", {"kind": "goto", "named_pose": "home", "goal_id": "back"})
    assert response.status_code == 200
    assert response.json() == {"kind": "goto", "verdict": "accepted", "reason": "forwarded", "goal_id": "back"}
    np.testing.assert_allclose(wait_done(backend, "back").position, PANDA_HOME_POSITION, atol=0.01)


@pytest.mark.parametrize("user, allowed", [("wendy", False), ("eve", False), ("sam", False),
                                           ("otto", True), ("ada", True)])
def test_only_operators_and_admins_may_send_the_robot_to_a_pose(cell, user, allowed):
    server, backend, _ = cell
    before = backend.latest_state().goal_id
    client = server.client(user)
    try:
        ack = client.call("robot_command", {"kind": "goto", "named_pose": "home", "goal_id": f"role-{user}"})
    finally:
        client.close()
    response = post(server, user, "/api/robot/goto", {"kind": "goto", "named_pose": "home"})
    if allowed:
        assert ack["verdict"] == "accepted" and response.status_code == 200
        wait_done(backend, "")
    else:
        reason = (f"role: {user!r} has roles {USERS[user]}; moving a robot needs operator or admin")
        assert ack == {"kind": "goto", "verdict": "rejected", "reason": reason, "goal_id": f"role-{user}"}
        assert response.status_code == 403 and response.json()["reason"] == reason
        assert backend.latest_state().goal_id == before


def test_an_unknown_pose_is_refused_naming_the_field_and_the_connection_stays(cell):
    server = cell[0]
    otto = server.client("otto")
    try:
        ack = otto.call("robot_command", {"kind": "goto", "named_pose": "lunch"})
        assert ack["error"] == ("invalid 'robot_command' payload: field 'named_pose': unknown pose "
                                "'lunch'; the cell's poses: cabinet, handover, home")
        assert otto.sio.connected
        ack = otto.call("robot_command", {"kind": "goto", "named_pose": "home", "positions": [0.0] * 7})
        assert ack["error"] == ("invalid 'robot_command' payload: give exactly one of fields "
                                "'named_pose', 'positions' or 'tcp_position_m'")
    finally:
        otto.close()
    response = post(server, "otto", "/api/robot/goto", {"kind": "goto", "positions": [0.0, 0.0]})
    assert response.status_code == 400
    assert response.json() == {"error": "field 'positions': expected 7 values (one per joint: "
                                        + ", ".join(ARM_JOINT_NAMES) + "), got 2"}


def test_an_unreachable_tcp_target_is_rejected_with_the_reason_and_a_reachable_one_is_reached(cell):
    server, backend, _ = cell
    response = post(server, "otto", "/api/robot/goto",
                    {"kind": "goto", "tcp_position_m": [2.0, 0.0, 0.5], "goal_id": "far"})
    assert response.status_code == 409
    body = response.json()
    assert body["verdict"] == "rejected" and body["goal_id"] == "far"
    assert body["reason"].startswith("reach: TCP target [2.0, 0.0, 0.5] m (cell frame) is out of reach "
                                     "with the TCP's orientation of now (closest ")
    deadline = time.monotonic() + 10          # the refusal is audited (the writer commits it soon)
    while not (records := server.audit.page(0, 10, "goto_refused")["events"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(r["actor"], r["reason"], r["inputs"]["tcp_position_m"], r["inputs"]["goal_id"]) for r in records] == [
        ("otto", body["reason"], [2.0, 0.0, 0.5], "far")]
    target = np.asarray(backend.latest_state().tcp_position) + [0.05, -0.1, 0.08]
    response = post(server, "otto", "/api/robot/goto",
                    {"kind": "goto", "tcp_position_m": target.tolist(), "goal_id": "near"})
    assert response.status_code == 200 and response.json()["verdict"] == "accepted"
    np.testing.assert_allclose(wait_done(backend, "near").tcp_position, target, atol=0.005)
    post(server, "otto", "/api/robot/goto", {"kind": "goto", "named_pose": "home", "goal_id": "home-again"})
    wait_done(backend, "home-again")


def test_a_pose_whose_path_enters_a_keep_out_zone_is_rejected_with_the_rule(cell):
    server, backend, _ = cell
    before = np.asarray(backend.latest_state().position)
    otto = server.client("otto")
    try:
        ack = otto.call("robot_command", {"kind": "goto", "named_pose": "cabinet", "goal_id": "cab"})
    finally:
        otto.close()
    assert ack["verdict"] == "rejected" and ack["goal_id"] == "cab"
    assert ack["reason"].startswith("keep-out: ") and "would enter keep-out zone cabinet at t = " in ack["reason"]
    time.sleep(0.3)
    np.testing.assert_allclose(backend.latest_state().position, before, atol=0.01)
    response = post(server, "otto", "/api/robot/goto", {"kind": "goto", "positions": list(CABINET)})
    assert response.status_code == 409 and response.json()["reason"] == ack["reason"]


def test_a_joint_target_outside_the_limits_is_rejected_by_the_gate(cell):
    server = cell[0]
    target = list(PANDA_HOME_POSITION)
    target[3] = 0.5
    response = post(server, "otto", "/api/robot/goto", {"kind": "goto", "positions": target})
    assert response.status_code == 409
    # the first point of the path past the limit: the line to the target leaves the joint's range
    assert re.fullmatch(r"limits: point \d+ puts panda_joint4 at 0\.0\d\d rad, outside "
                        r"\[-3\.142, 0\.000\]", response.json()["reason"]), response.json()["reason"]


def test_the_openapi_document_lists_the_goto_routes(cell):
    doc = requests.get(f"{cell[0].base}/api/openapi.json", timeout=10).json()
    assert "post" in doc["paths"]["/api/robot/goto"] and "get" in doc["paths"]["/api/robot/named_poses"]
    assert "GotoRequest" in doc["components"]["schemas"]


def test_a_server_without_a_robot_lists_no_poses_and_refuses_a_go_to(make_store):
    app, _ = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(),
                        user_store=make_store(otto=("pw", ["operator"])), secret_key=SECRET, cell_name="lab")
    try:
        client = app.test_client()
        token = client.post("/api/login", json={"username": "otto", "password": "pw"}).get_json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/robot/named_poses", headers=headers).get_json() == {
            "joint_names": [], "named_poses": {}, "tcp_targets": False, "tcp_speed_mps": 0.0}
        response = client.post("/api/robot/goto", json={"kind": "goto", "named_pose": "home"}, headers=headers)
        assert response.status_code == 503
        assert response.get_json() == {"error": "no command gate: this server drives no robot"}
    finally:
        app.xrcell_stop()
