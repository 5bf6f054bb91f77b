"""``POST /api/robot/trajectory`` over Flask's test client: body validation, then the real
command gate (roles, safety mode, limits) in front of a recording robot backend."""

import argon2
import numpy as np
import pytest

from content.storage import UserStore
from robot_bridge.types import JointTrajectory
from safety.decision import SafetyMode, SafetyState
from safety.gate import CommandGate
from tests.safety.fakes import FakeBackend
from xr_server.app import create_app
from xr_server.auth import TokenSigner

SECRET = "test-secret-0123456789abcdef"
TWIN = {"v": 1, "t": 0.0, "cell": "lab", "robot": None, "safety": None, "people": [], "cameras": []}
BODY = {
    "joint_names": ["j1"],
    "goal_id": "g7",
    "points": [
        {"positions": [0.0], "time_from_start_s": 0.0},
        {"positions": [0.5], "time_from_start_s": 1.0},
    ],
}


class NoCameras:
    def ids(self):
        return []

    def jpeg(self, camera_id):
        return None


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    users = UserStore(
        f"sqlite:///{tmp_path_factory.mktemp('db') / 'users.sqlite'}",
        hasher=argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
    )
    users.add("olga", "pw-olga", ["operator"])
    users.add("sam", "pw-sam", ["supervisor"])
    return users


@pytest.fixture
def robot(store):
    """(post(user, roles, body), backend, mode): the app, a real gate, a recording backend."""
    backend = FakeBackend()
    mode = {"m": SafetyMode.FULL_SPEED}
    gate = CommandGate(
        backend, lambda: SafetyState(0, mode["m"], 1.0, None, None, None, "test"), np.array([1.0])
    )
    app, _ = create_app(
        twin_source=lambda: TWIN,
        camera_views=NoCameras(),
        user_store=store,
        secret_key=SECRET,
        cell_name="lab",
        robot_commands=gate,
        gate=gate,
    )
    app.testing = True

    def post(user, roles, body):
        token = TokenSigner(SECRET).issue(user, roles)
        return app.test_client().post(
            "/api/robot/trajectory", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    return post, backend, mode


def test_an_operators_trajectory_passes_the_gate_to_the_robot(robot):
    post, backend, _ = robot
    response = post("olga", ["operator"], BODY)
    assert response.status_code == 200
    assert response.get_json() == {"verdict": "accepted", "reason": "forwarded"}
    ((kind, command),) = backend.calls
    assert kind == "execute" and isinstance(command, JointTrajectory)
    assert command.joint_names == ("j1",) and command.goal_id == "g7"
    np.testing.assert_array_equal(command.positions, [[0.0], [0.5]])
    np.testing.assert_array_equal(command.time_from_start_s, [0.0, 1.0])


def test_a_supervisor_may_not_move_the_robot(robot):
    post, backend, _ = robot
    response = post("sam", ["supervisor"], BODY)
    assert response.status_code == 403
    assert response.get_json() == {
        "verdict": "rejected",
        "reason": "role: 'sam' has roles ['supervisor']; moving a robot needs operator or admin",
    }
    assert backend.calls == []


def test_a_fault_stop_refuses_with_409(robot):
    post, backend, mode = robot
    mode["m"] = SafetyMode.FAULT_STOP
    response = post("olga", ["operator"], BODY)
    assert response.status_code == 409
    assert response.get_json() == {
        "verdict": "rejected",
        "reason": "mode: no motion command is accepted in fault_stop (test)",
    }
    assert backend.calls == []


@pytest.mark.parametrize(
    "body, error",
    [
        (None, "body must be a JSON object with fields 'joint_names', 'points' and 'goal_id'"),
        ({**BODY, "speed": 2}, "unexpected field 'speed'"),
        (
            {**BODY, "points": []},
            "field 'points': List should have at least 1 item after validation, not 0",
        ),
        (
            {**BODY, "points": [{"positions": ["0.1"], "time_from_start_s": 1.0}]},
            "field 'points.0.positions.0': Input should be a valid number",
        ),
        (
            {**BODY, "points": [{"positions": [0.1, 0.2], "time_from_start_s": 1.0}]},
            "field 'points.0.positions': expected 1 values (one per joint name), got 2",
        ),
        (
            {
                **BODY,
                "points": [
                    {"positions": [0.1], "time_from_start_s": 1.0},
                    {"positions": [0.2], "time_from_start_s": 1.0},
                ],
            },
            "body: JointTrajectory.time_from_start_s: must start >= 0 and strictly increase",
        ),
    ],
)
def test_a_malformed_body_is_400_naming_the_field_and_never_reaches_the_gate(robot, body, error):
    post, backend, _ = robot
    response = post("olga", ["operator"], body)
    assert response.status_code == 400
    assert response.get_json() == {"error": error}
    assert backend.calls == []


def test_without_a_gate_the_route_is_503(store):
    app, _ = create_app(
        twin_source=lambda: TWIN, camera_views=NoCameras(), user_store=store, secret_key=SECRET
    )
    token = TokenSigner(SECRET).issue("olga", ["operator"])
    response = app.test_client().post(
        "/api/robot/trajectory", json=BODY, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 503 and response.get_json() == {"error": "no command gate"}


class ShorteningGate:
    """The gate's seam: answers `modified` like `CommandGate` does when a person is on the path
    (the real shortening is tested in tests/safety/test_path_check.py)."""

    def submit(self, command, actor):
        from safety.gate import GateAnswer, Verdict

        head = JointTrajectory(command.joint_names, command.positions[:1], command.time_from_start_s[:1],
                               goal_id=command.goal_id)
        rest = JointTrajectory(command.joint_names, np.array([[0.25], [0.5]]), np.array([0.0, 0.75]),
                               goal_id=command.goal_id)
        return GateAnswer(Verdict.MODIFIED, "shortened: stops at 0.40 s, person p1 on the path", head, rest)


def test_a_modified_answer_returns_the_rest_to_submit_later(store):
    app, _ = create_app(twin_source=lambda: TWIN, camera_views=NoCameras(), user_store=store,
                        secret_key=SECRET, robot_commands=ShorteningGate())
    token = TokenSigner(SECRET).issue("olga", ["operator"])
    response = app.test_client().post("/api/robot/trajectory", json=BODY,
                                      headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    reply = response.get_json()
    assert reply["verdict"] == "modified" and reply["reason"].startswith("shortened:")
    assert reply["rest"] == {"joint_names": ["j1"], "goal_id": "g7",
                             "points": [{"positions": [0.25], "time_from_start_s": 0.0},
                                        {"positions": [0.5], "time_from_start_s": 0.75}]}
    # The rest is a valid request body as it stands.
    again = app.test_client().post("/api/robot/trajectory", json=reply["rest"],
                                   headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 200
