"""``GET /healthz``: the state of the cell's inputs as the server sees them, from records only.

A pure function of the newest robot state, tracking snapshot and safety state and the monotonic
time now, so tests call it directly. Every stamp is `time.monotonic_ns()` (system-wide on Linux,
so the tracking child's stamps compare with this process's clock).

The HTTP status is 200 for ``ok`` and ``degraded`` alike: the server is up and serving, and a
dashboard is most needed when the robot is in a fault stop, so a load balancer must keep routing
to it. Alert on the JSON ``status`` (or on `/metrics`), not on the status code.
"""

from __future__ import annotations

from robot_bridge.types import RobotState
from safety.decision import SafetyMode, SafetyState
from safety.perception.types import PerceptionSnapshot

#: Default age, seconds, beyond which a record counts as stale (the demo's watchdogs are 0.1-0.2 s;
#: the health check reports, it does not stop anything, so it is more lenient).
DEFAULT_STALE_AFTER_S = 1.0

_UNSET = object()


def _age_ms(now_ns: int, stamp_ns: int) -> float:
    return round((now_ns - stamp_ns) / 1e6, 1)


def _component(age_ms: float | None, problems: list[str], **extra) -> dict:
    return {"status": "degraded" if problems else "ok", "age_ms": age_ms, "reason": "; ".join(problems), **extra}


def _stale(age_ms: float, stale_after_s: float, what: str) -> list[str]:
    limit_ms = stale_after_s * 1e3
    return [f"{what} is {age_ms:.0f} ms old (limit {limit_ms:.0f} ms)"] if age_ms > limit_ms else []


def robot_health(robot: RobotState | None, now_ns: int, stale_after_s: float) -> dict:
    """``ok`` when there is a fresh, healthy robot state."""
    if robot is None:
        return _component(None, ["no robot state yet"])
    age = _age_ms(now_ns, robot.stamp_ns)
    problems = _stale(age, stale_after_s, "robot state")
    if not robot.healthy:
        problems.append("the robot backend reports itself unhealthy")
    return _component(age, problems)


def tracking_health(snapshot: PerceptionSnapshot | None, now_ns: int, stale_after_s: float) -> dict:
    """``ok`` when the tracking snapshot and every camera's newest frame are fresh and no track
    was lost inside the cell."""
    if snapshot is None:
        return _component(None, ["no tracking snapshot yet"], cameras={})
    age = _age_ms(now_ns, snapshot.stamp_ns)
    problems = _stale(age, stale_after_s, "tracking snapshot")
    cameras: dict[str, float | None] = {}
    for cam in snapshot.cameras:
        if cam.last_frame_ns == 0:
            cameras[cam.camera_id] = None
            problems.append(f"camera {cam.camera_id!r} has sent no frame")
            continue
        cameras[cam.camera_id] = cam_age = _age_ms(now_ns, cam.last_frame_ns)
        problems += _stale(cam_age, stale_after_s, f"newest frame of camera {cam.camera_id!r}")
    if snapshot.lost_track_ids:
        problems.append(f"lost track(s) inside the cell: {', '.join(snapshot.lost_track_ids)}")
    return _component(age, problems, cameras=cameras)


def monitor_health(state: SafetyState | None, now_ns: int, stale_after_s: float) -> dict:
    """``ok`` when the monitor's newest cycle is fresh and it is not in a fault stop (a protective
    stop is the monitor doing its job, not a fault)."""
    if state is None:
        return _component(None, ["the safety monitor has not run a cycle yet"], mode=None)
    age = _age_ms(now_ns, state.stamp_ns)
    problems = _stale(age, stale_after_s, "safety state")
    if state.mode is SafetyMode.FAULT_STOP:
        problems.append(state.reason if state.reason.startswith("fault stop") else f"fault stop: {state.reason}")
    return _component(age, problems, mode=state.mode.value)


def health_report(now_ns: int, *, robot: RobotState | None | object = _UNSET,
                  tracking: PerceptionSnapshot | None | object = _UNSET,
                  monitor: SafetyState | None | object = _UNSET,
                  stale_after_s: float = DEFAULT_STALE_AFTER_S) -> dict:
    """The ``/healthz`` body (schema `xr_server.api_models.Health`).

    Args:
        now_ns: `time.monotonic_ns()` now.
        robot, tracking, monitor: the newest record of each input (None: none yet); leave an
            input out when the server has no source for it, and it is not reported.
        stale_after_s: age beyond which a record is stale.
    """
    components = {}
    if robot is not _UNSET:
        components["robot"] = robot_health(robot, now_ns, stale_after_s)  # type: ignore[arg-type]
    if tracking is not _UNSET:
        components["tracking"] = tracking_health(tracking, now_ns, stale_after_s)  # type: ignore[arg-type]
    if monitor is not _UNSET:
        components["monitor"] = monitor_health(monitor, now_ns, stale_after_s)  # type: ignore[arg-type]
    status = "degraded" if any(c["status"] == "degraded" for c in components.values()) else "ok"
    return {"status": status, "components": components}
