"""`xrcell serve --robot dds` drives a ROS 2 robot end to end through the command gate.

Three real processes on loopback: the robot driver (`tests/robot_bridge/dds/peer.py`, a
JointTrajectoryController-like follower over Cyclone DDS), `xrcell serve` (the CLI, as a user
starts it) and this test, which logs in over HTTP like a user and watches the robot's own
`/joint_states` with a DDS reader of its own. The monitor releases its start-up stop by itself
once every input is live unless a fault latched meanwhile; so that the test does not depend on
that, it makes the robot go silent, the fault stop latches, and only after a supervisor's reset
does an operator's trajectory pass the gate and move the robot.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from robot_bridge.dds import LOOPBACK_CONFIG, QOS_PROFILE_SENSOR_DATA, RosDdsNode, msgs
from tests import polling
from tests.robot_bridge.dds.peer_client import Peer, next_domain
from xr_server.serving import free_port

REPO = Path(__file__).resolve().parents[2]
CELL = REPO / "launch" / "cells" / "panda_dds.yaml"
GRIPPER = "{kind: forward_position, topic: /gripper_controller/commands}"


def _cell(tmp_path: Path) -> Path:
    """`panda_dds.yaml` with the robot and monitor watchdogs at 0.3 s and 0.5 s: on a loaded 2-core
    machine three Python processes (peer, server, test) miss 100 ms now and then, and each miss
    is a (correct) fault stop; the test is about the path through the gate, not those bounds.
    Its commented gripper controller is switched on (the peer plays it)."""
    text = CELL.read_text()
    for old, new in (
        ("robot_timeout_s: 0.1", "robot_timeout_s: 0.3"),
        ("monitor_timeout_s: 0.2", "monitor_timeout_s: 0.5"),
        (f"  # dds:\n  #   gripper_controller: {GRIPPER}",
         f"  dds:\n    gripper_controller: {GRIPPER}"),
    ):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "panda_dds.yaml"
    path.write_text(text)
    return path


def wait_for(predicate, what: str):
    return polling.wait_for(predicate, what, timeout_s=30.0, interval_s=0.1)


def _cli(
    *args: str, stdin: str = "", env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "xr_server.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def served(tmp_path):
    """(peer, base URL, domain, db URL): the peer robot and `xrcell serve --robot dds` on it."""
    domain = next_domain()
    db = f"sqlite:///{tmp_path / 'serve.sqlite'}"
    for name, role in (("sam", "supervisor"), ("olga", "operator")):
        done = _cli(
            "users",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--db",
            db,
            stdin=f"pw-{name}-1234\n",
        )
        assert done.returncode == 0, done.stderr
    peer = Peer(domain, "--fingers", "0.08", "--gripper-kind", "forward_position",
                "--gripper-topic", "/gripper_controller/commands")
    port = free_port()
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "CYCLONEDDS_URI": LOOPBACK_CONFIG}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xr_server.cli",
            "serve",
            "--cell",
            str(_cell(tmp_path)),
            "--robot",
            "dds",
            "--port",
            str(port),
            "--db",
            db,
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if server.poll() is not None:
            raise AssertionError(
                f"xrcell serve ended: {(tmp_path / 'serve.log').read_text()[-3000:]}"
            )
        try:
            return requests.get(f"{base}/healthz", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for(up, "xrcell serve to answer /healthz")
        yield peer, base, domain
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        print((tmp_path / "serve.log").read_text()[-3000:])
        peer.close()


def _login(base: str, name: str) -> dict:
    answer = requests.post(
        f"{base}/api/login", json={"username": name, "password": f"pw-{name}-1234"}, timeout=5
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _twin(base: str, headers: dict) -> dict:
    return requests.get(f"{base}/api/twin", headers=headers, timeout=5).json()


def test_serve_dds_moves_the_peer_through_the_gate_after_a_supervisor_reset(served):
    peer, base, domain = served
    operator, supervisor = _login(base, "olga"), _login(base, "sam")
    twin = _twin(base, operator)
    assert twin["cell"] == "panda-dds" and twin["cameras"] == [] and twin["people"] == []
    # start-up settles: the monitor releases its start-up stop by itself once every input is live,
    # unless a fault happened meanwhile (a start-up hiccup latches one like any other fault)
    wait_for(
        lambda: (
            lambda safety: safety["mode"] == "full_speed" or "reset required" in safety["reason"]
        )(_twin(base, operator)["safety"]),
        "the start-up to settle",
    )

    # the robot goes silent: a fault stop, latched after the robot comes back
    peer.send("pause")
    wait_for(lambda: _twin(base, operator)["safety"]["mode"] == "fault_stop", "the fault stop")
    peer.send("resume")
    wait_for(
        lambda: "reset required" in _twin(base, operator)["safety"]["reason"],
        "the cause to be gone",
    )
    twin = _twin(base, operator)
    q0 = np.array(twin["robot"]["q"])
    goal = q0 + np.array([0.3, 0.0, 0.0, 0.2, 0.0, 0.0, 0.0])
    body = {
        "joint_names": twin["robot"]["joint_names"],
        "goal_id": "e2e",
        "points": [
            {"positions": q0.tolist(), "time_from_start_s": 0.0},
            {"positions": goal.tolist(), "time_from_start_s": 2.0},
        ],
    }

    # the latched fault stop holds every motion command at the gate
    refused = requests.post(f"{base}/api/robot/trajectory", json=body, headers=operator, timeout=5)
    assert refused.status_code == 409
    assert refused.json()["verdict"] == "rejected"
    assert refused.json()["reason"].startswith("mode: no motion command is accepted in fault_stop")
    # an operator may not reset; a supervisor may not move the robot; a malformed body never
    # reaches the gate
    assert requests.post(f"{base}/api/safety/reset", headers=operator, timeout=5).status_code == 403
    wrong_role = requests.post(
        f"{base}/api/robot/trajectory", json=body, headers=supervisor, timeout=5
    )
    assert wrong_role.status_code == 403 and wrong_role.json()["reason"].startswith("role:")
    bad = requests.post(
        f"{base}/api/robot/trajectory",
        json={**body, "points": [{"positions": [0.0]}]},
        headers=operator,
        timeout=5,
    )
    assert bad.status_code == 400
    assert bad.json()["error"] == "missing field 'points.0.time_from_start_s'"
    short = requests.post(
        f"{base}/api/robot/trajectory",
        headers=operator,
        timeout=5,
        json={**body, "points": [{"positions": [0.0], "time_from_start_s": 1.0}]},
    )
    assert short.status_code == 400
    assert (
        short.json()["error"]
        == "field 'points.0.positions': expected 7 values (one per joint name), got 1"
    )

    def reset_until_running() -> bool:
        # what a supervisor does: reset, and reset again if another fault latched meanwhile
        safety = _twin(base, operator)["safety"]
        if safety["mode"] == "full_speed":
            return True
        if "reset required" in safety["reason"]:
            reset = requests.post(f"{base}/api/safety/reset", headers=supervisor, timeout=5)
            assert reset.status_code == 200 and reset.json()["accepted"], reset.text
            time.sleep(0.5)
        return False

    wait_for(reset_until_running, "the monitor to leave the fault stop after a supervisor's reset")
    wait_for(
        lambda: _twin(base, operator)["robot"]["mode"] == "idle", "the robot's stop to be released"
    )

    node = RosDdsNode(domain, LOOPBACK_CONFIG)
    try:
        reader = node.reader("/joint_states", msgs.JointState, QOS_PROFILE_SENSOR_DATA)
        accepted = requests.post(
            f"{base}/api/robot/trajectory", json=body, headers=operator, timeout=5
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"verdict": "accepted", "reason": "forwarded"}
        # the peer got the goal (after the hold trajectories of the stops before it)
        wait_for(
            lambda: np.allclose(
                peer.expect("trajectory")["points"][-1]["positions"], goal, atol=1e-9
            ),
            "the goal at the peer",
        )

        seen: list[np.ndarray] = []

        def at_goal() -> bool:
            for sample in reader.take(N=64):
                if isinstance(sample, msgs.JointState):
                    seen.append(np.array(sample.position)[:7])  # the arm (the fingers follow)
            return bool(seen) and float(np.abs(seen[-1] - goal).max()) < 1e-3

        wait_for(at_goal, "the peer's /joint_states to reach the goal")
        # the robot went there along the path, not in one jump
        between = [q for q in seen if 0.05 < q[0] - q0[0] < 0.25]
        assert between, "intermediate joint states on the way to the goal"

        # the gripper closes through the gate on the cell's forward_position controller
        grip = requests.post(
            f"{base}/api/robot/gripper",
            json={"kind": "gripper", "position_m": 0.02, "goal_id": "grip"},
            headers=operator,
            timeout=5,
        )
        assert grip.status_code == 200, grip.text
        assert grip.json()["verdict"] == "accepted"
        fingers: list[float] = []

        def closed() -> bool:
            for sample in reader.take(N=64):
                if isinstance(sample, msgs.JointState) and "panda_finger_joint1" in sample.name:
                    i = list(sample.name).index("panda_finger_joint1")
                    fingers.append(sample.position[i] + sample.position[i + 1])
            return bool(fingers) and abs(fingers[-1] - 0.02) < 1e-3

        wait_for(closed, "the peer's fingers to close to 0.02 m")
        assert any(0.03 < w < 0.07 for w in fingers), "finger openings on the way"
    finally:
        node.close()
    np.testing.assert_allclose(_twin(base, operator)["robot"]["q"], goal, atol=2e-3)
