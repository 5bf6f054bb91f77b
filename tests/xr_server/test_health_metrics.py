"""/healthz and /metrics: the health rules as pure functions, and the endpoints over the real app
with a real `SafetyMonitor` driven by a simulated clock (tests/safety/fakes.py)."""

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from content.cell import SafetyParameters, StopData
from safety.decision import SafetyMode, SafetyState
from safety.gate import CommandGate
from safety.monitor import SafetyMonitor
from tests.safety.fakes import MS, FakeBackend, robot_state, snapshot, standing_person
from tests.xr_server.doubles import SECRET, TWIN, FakeCameraViews, FakeGate
from xr_server.app import create_app
from xr_server.health import health_report, monitor_health, robot_health, tracking_health
from xr_server.metrics import CYCLE_BUCKETS_S, CellCollector, make_registry

NOW = 1_000_000 * MS


def safety_state(mode=SafetyMode.FULL_SPEED, age_ns=5 * MS, reason="clear"):
    return SafetyState(NOW - age_ns, mode, 1.0, None, None, None, reason)


# ------------------------------------------------------------------------------- health rules
def test_fresh_inputs_are_ok_with_their_ages_in_ms():
    report = health_report(NOW, robot=robot_state(NOW - 4 * MS), tracking=snapshot(NOW - 30 * MS),
                           monitor=safety_state(age_ns=5 * MS))
    assert report["status"] == "ok"
    assert report["components"]["robot"] == {"status": "ok", "age_ms": 4.0, "reason": ""}
    assert report["components"]["tracking"] == {"status": "ok", "age_ms": 30.0, "reason": "",
                                                 "cameras": {"cam01": 40.0, "cam02": 40.0}}
    assert report["components"]["monitor"] == {"status": "ok", "age_ms": 5.0, "reason": "", "mode": "full_speed"}


def test_inputs_the_server_was_not_given_are_left_out():
    assert health_report(NOW) == {"status": "ok", "components": {}}
    assert set(health_report(NOW, robot=None)["components"]) == {"robot"}


@pytest.mark.parametrize(("check", "record", "reason"), [
    (robot_health, None, "no robot state yet"),
    (robot_health, robot_state(NOW - 1500 * MS), "robot state is 1500 ms old (limit 1000 ms)"),
    (robot_health, robot_state(NOW, healthy=False), "the robot backend reports itself unhealthy"),
    (tracking_health, None, "no tracking snapshot yet"),
    (tracking_health, snapshot(NOW - 2000 * MS, cameras=()), "tracking snapshot is 2000 ms old (limit 1000 ms)"),
    (tracking_health, snapshot(NOW, cameras=("cam01",), camera_age_ns=1200 * MS),
     "newest frame of camera 'cam01' is 1200 ms old (limit 1000 ms)"),
    (tracking_health, snapshot(NOW, cameras=(), lost=("p3",)), "lost track(s) inside the cell: p3"),
    (monitor_health, None, "the safety monitor has not run a cycle yet"),
    (monitor_health, safety_state(age_ns=3000 * MS), "safety state is 3000 ms old (limit 1000 ms)"),
    (monitor_health, safety_state(SafetyMode.FAULT_STOP, reason="robot state stale"), "fault stop: robot state stale"),
    (monitor_health, safety_state(SafetyMode.FAULT_STOP, reason="fault stop: camera cam01 stale"),
     "fault stop: camera cam01 stale"),
])
def test_each_degraded_reason(check, record, reason):
    component = check(record, NOW, 1.0)
    assert component["status"] == "degraded"
    assert component["reason"] == reason


def test_a_camera_without_frames_is_named():
    snap = snapshot(NOW, cameras=("cam07",))
    snap = type(snap)(snap.stamp_ns, (), (snap.cameras[0].__class__("cam07", 0, 0, 0, 0, 0, 0),))
    component = tracking_health(snap, NOW, 1.0)
    assert component["reason"] == "camera 'cam07' has sent no frame" and component["cameras"] == {"cam07": None}


def test_a_protective_stop_is_not_a_degraded_monitor():
    assert monitor_health(safety_state(SafetyMode.PROTECTIVE_STOP), NOW, 1.0)["status"] == "ok"


def test_one_degraded_component_degrades_the_whole():
    report = health_report(NOW, robot=robot_state(NOW), monitor=None)
    assert report["status"] == "degraded"
    assert report["components"]["robot"]["status"] == "ok"


# ------------------------------------------------------------------------ the real app, real monitor
class Clock:
    def __init__(self):
        self.now = 10_000 * MS

    def __call__(self):
        return self.now


@pytest.fixture
def cell():
    """A real SafetyMonitor over a fake robot, stepped by hand on a simulated clock."""
    backend = FakeBackend()
    gate = CommandGate(backend, lambda: None, np.array([1.0]))
    clock = Clock()
    feeds = {"robot": None, "snap": None}
    monitor = SafetyMonitor(lambda: feeds["robot"], lambda: feeds["snap"], gate.safety_channel(),
                            SafetyParameters(), StopData(category=1), 1.0, clock_ns=clock)

    def tick(people=()):
        clock.now += 10 * MS
        feeds["robot"] = robot_state(clock.now)
        feeds["snap"] = snapshot(clock.now, people)
        return monitor.step()
    return monitor, tick, feeds


def metrics_of(app):
    response = app.test_client().get("/metrics")  # no token
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {f.name: f for f in text_string_to_metric_families(response.data.decode())}


def sample(families, name, suffix="", **labels):
    values = [s.value for s in families[name].samples
              if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(values) == 1, (name, suffix, labels, families[name].samples)
    return values[0]


def test_metrics_read_the_monitor_tracking_and_gate(make_store, cell):
    monitor, tick, feeds = cell
    for _ in range(5):
        tick()
    state = tick(people=[standing_person(1.2)])
    assert state.separation_m is not None and state.s_p is not None
    app, socketio = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(),
                               user_store=make_store(ana=("pw", ["worker"])), secret_key=SECRET,
                               monitor=monitor, robot_source=lambda: feeds["robot"],
                               perception_source=lambda: feeds["snap"], gate=FakeGate(accepted=7, rejected=2))
    families = metrics_of(app)
    assert sample(families, "xrcell_safety_mode", mode=state.mode.value) == 1.0
    assert sum(s.value for s in families["xrcell_safety_mode"].samples) == 1.0
    assert sample(families, "xrcell_safety_speed_scale") == pytest.approx(state.speed_scale)
    assert sample(families, "xrcell_safety_separation_meters") == pytest.approx(state.separation_m)
    assert sample(families, "xrcell_safety_protective_separation_distance_meters") == pytest.approx(state.s_p.total_m)
    assert sample(families, "xrcell_safety_monitor_cycle_seconds", "_count") == 6
    assert sample(families, "xrcell_safety_monitor_cycle_seconds", "_bucket", le="+Inf") == 6
    assert sample(families, "xrcell_camera_frames_processed", "_total", camera="cam01") == 20
    assert sample(families, "xrcell_camera_frames_skipped", "_total", camera="cam02") == 80
    assert sample(families, "xrcell_gate_commands", "_total", verdict="accepted") == 7
    assert sample(families, "xrcell_gate_commands", "_total", verdict="rejected") == 2
    assert sample(families, "xrcell_twin_clients") == 0
    token = app.test_client().post("/api/login", json={"username": "ana", "password": "pw"}).get_json()["token"]
    sio = socketio.test_client(app, namespace="/xr", auth={"token": token})
    assert sample(metrics_of(app), "xrcell_twin_clients") == 1
    sio.disconnect("/xr")
    assert sample(metrics_of(app), "xrcell_twin_clients") == 0
    app.xrcell_stop()


def test_the_cycle_histogram_counts_each_cycle_once_across_scrapes(cell):
    monitor, tick, _ = cell
    registry = make_registry(CellCollector(monitor=monitor))

    def histogram():
        families = {f.name: f for f in text_string_to_metric_families(
            __import__("prometheus_client").generate_latest(registry).decode())}
        f = families["xrcell_safety_monitor_cycle_seconds"]
        return {(s.name, s.labels.get("le")): s.value for s in f.samples}

    for _ in range(3):
        tick()
    first = histogram()
    for _ in range(4):
        tick()
    second = histogram()
    assert first[("xrcell_safety_monitor_cycle_seconds_count", None)] == 3
    assert second[("xrcell_safety_monitor_cycle_seconds_count", None)] == 7
    buckets = [second[("xrcell_safety_monitor_cycle_seconds_bucket", repr(b))] for b in CYCLE_BUCKETS_S]
    assert buckets == sorted(buckets)  # cumulative
    assert second[("xrcell_safety_monitor_cycle_seconds_sum", None)] > first[("xrcell_safety_monitor_cycle_seconds_sum", None)]
    assert histogram()[("xrcell_safety_monitor_cycle_seconds_count", None)] == 7  # a scrape adds nothing


def test_input_ages_come_from_the_monotonic_clock():
    registry = make_registry(CellCollector(robot_source=lambda: robot_state(NOW - 250 * MS),
                                           perception_source=lambda: None, clock_ns=lambda: NOW))
    families = {f.name: f for f in text_string_to_metric_families(
        __import__("prometheus_client").generate_latest(registry).decode())}
    assert sample(families, "xrcell_input_age_seconds", input="robot") == pytest.approx(0.25)
    assert [s for s in families["xrcell_input_age_seconds"].samples if s.labels["input"] == "tracking"] == []


def test_each_app_has_its_own_registry(make_store):
    """Two apps in one process: no 'Duplicated timeseries' error, and each reports its own gate."""
    store = make_store()
    apps = [create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(), user_store=store,
                       secret_key=SECRET, gate=FakeGate(accepted=n))[0] for n in (1, 2)]
    assert [sample(metrics_of(a), "xrcell_gate_commands", "_total", verdict="accepted") for a in apps] == [1, 2]
    for a in apps:
        a.xrcell_stop()


def test_healthz_reports_the_inputs_of_the_app(make_store, cell):
    monitor, _, feeds = cell
    app, _ = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(), user_store=make_store(),
                        secret_key=SECRET, monitor=monitor, robot_source=lambda: feeds["robot"],
                        perception_source=lambda: feeds["snap"])
    body = app.test_client().get("/healthz").get_json()
    assert body["status"] == "degraded"
    assert body["components"]["robot"]["reason"] == "no robot state yet"
    assert body["components"]["monitor"]["reason"] == "the safety monitor has not run a cycle yet"
    app.xrcell_stop()


def test_healthz_survives_a_failing_source(make_store):
    def broken():
        raise RuntimeError("backend gone")
    app, _ = create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(), user_store=make_store(),
                        secret_key=SECRET, robot_source=broken)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["components"]["robot"]["reason"] == "no robot state yet"
    app.xrcell_stop()
