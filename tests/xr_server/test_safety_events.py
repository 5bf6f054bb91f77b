"""``GET /api/safety/events``: the safety audit log paged over HTTP, from a real `AuditLog` on SQLite."""

import pytest

from safety.audit import AuditLog
from xr_server.app import create_app
from xr_server.auth import TokenSigner

SECRET = "test-secret-0123456789abcdef"
TWIN = {"v": 1, "t": 0.0, "cell": "lab", "robot": None, "safety": None, "people": [], "cameras": []}


class NoCameras:
    def ids(self):
        return []

    def jpeg(self, camera_id):
        return None


@pytest.fixture
def audit(tmp_path):
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.sqlite'}")
    for i in range(5):
        log.append("mode_change", "monitor", {"old": "fault_stop", "new": "full_speed", "i": i}, f"change {i}")
    log.append("gate_answer", "program", {"verdict": "accepted"}, "forwarded", durable=True)
    yield log
    log.close()


def make_client(store, events):
    app, _ = create_app(twin_source=lambda: TWIN, camera_views=NoCameras(), user_store=store,
                        secret_key=SECRET, cell_name="lab", safety_events=events)
    app.testing = True
    return app.test_client()


def get(client, query="", roles=("worker",)):
    token = TokenSigner(SECRET).issue("ana", list(roles))
    return client.get(f"/api/safety/events{query}", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def store(make_store):
    return make_store(ana=("pw-ana", ["worker"]))


def test_pages_through_the_whole_log_in_order(store, audit):
    client = make_client(store, audit.page)
    seen, after = [], 0
    while True:
        response = get(client, f"?after_seq={after}&limit=2")
        assert response.status_code == 200
        body = response.get_json()
        assert body["head_seq"] == 6
        seen += body["events"]
        if body["next_after_seq"] is None:
            break
        after = body["next_after_seq"]
    assert [e["seq"] for e in seen] == [1, 2, 3, 4, 5, 6]
    assert [e["kind"] for e in seen] == ["mode_change"] * 5 + ["gate_answer"]
    assert seen[3]["inputs"]["i"] == 3 and seen[3]["reason"] == "change 3"
    # the chain links each record to the previous one
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(seen, seen[1:]))


def test_filters_by_kind(store, audit):
    body = get(make_client(store, audit.page), "?kind=gate_answer").get_json()
    assert [(e["seq"], e["actor"], e["reason"]) for e in body["events"]] == [(6, "program", "forwarded")]
    assert body["next_after_seq"] is None


@pytest.mark.parametrize("query, message", [
    ("?limit=0", "limit must be an integer from 1 to 1000, got 0"),
    ("?limit=5000", "limit must be an integer from 1 to 1000, got 5000"),
    ("?after_seq=-3", "after_seq must be an integer >= 0, got '-3'"),
    ("?after_seq=abc", "after_seq must be an integer >= 0, got 'abc'"),
])
def test_bad_query_is_400_naming_the_parameter(store, audit, query, message):
    response = get(make_client(store, audit.page), query)
    assert response.status_code == 400
    assert response.get_json() == {"error": message}


def test_needs_a_token(store, audit):
    response = make_client(store, audit.page).get("/api/safety/events")
    assert response.status_code == 401
    assert response.get_json() == {"error": "missing token"}


def test_without_an_audit_log_is_503(store):
    response = get(make_client(store, None))
    assert response.status_code == 503
    assert response.get_json() == {"error": "no safety audit log"}
