"""`xrcell demo`: the whole product in one process on embedded defaults.

A PyBullet Franka Panda running pick-and-place, the real Pose2Sim footage as the
cell's cameras, MediaPipe worker tracking triangulated in the `cell` frame, the
safety monitor driving the robot through the command gate, and (unless
headless) the XR server with the dashboard and the `/hmi` page.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from content.calibration import load_calibration
from content.cell import CellDescription, load_cell
from content.errors import ContentError
from robot_bridge.backend import create_backend
from safety.gate import CommandGate, PeopleOnPath
from safety.monitor import SafetyMonitor
from safety.output import SimSafetyOutput
from safety.ssm import StoppingModel
from safety.zones import CellZones
from xr_server.program import ProgramRunner
from xr_server.twin import build_twin_state

if TYPE_CHECKING:
    from safety.audit import AuditLog

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CELL = REPO_ROOT / "launch" / "cells" / "demo.yaml"
DEMO_ROLES = ("worker", "expert", "supervisor", "operator", "admin")


@dataclass
class Cell:
    """The running parts of one cell; `stop()` leaves the robot in a protective stop."""

    description: CellDescription
    backend: object
    pipeline: object
    gate: CommandGate
    monitor: SafetyMonitor
    runner: ProgramRunner | None
    zones: CellZones | None = None

    def twin_state(self) -> dict:
        return build_twin_state(self.description.name, self.backend.latest_state(), self.monitor.latest(),
                                self.pipeline.snapshot(), self.gate.planned_path(),
                                None if self.zones is None else self.zones.current())

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop(0.3)
        self.monitor.stop(0.3)      # commands the protective stop
        self.pipeline.stop()
        self.backend.shutdown()


def build_cell(cell: CellDescription, audit: "AuditLog | None" = None) -> Cell:
    """Create (not start) the robot, worker tracking, gate, monitor and program of `cell`;
    mode changes, gate answers, resets and zone changes go to `audit`."""
    from robot_bridge.sim import (
        PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
        PANDA_JOINT_VELOCITY_LIMITS_RADPS,
        PandaLinkKinematics,
        plan_pick_and_place,
    )
    from safety.perception.process import CameraSpec, PerceptionProcess

    cams = []
    calib_cache: dict[Path, dict] = {}
    for cam in cell.cameras:
        calibs = calib_cache.setdefault(cam.calibration.file, load_calibration(cam.calibration.file, cam.calibration.format))
        if cam.calibration.camera not in calibs:
            raise ContentError(f"{cam.calibration.file}: no camera {cam.calibration.camera!r} "
                               f"(has {', '.join(sorted(calibs))}) for cameras[{cam.id}]")
        cams.append(CameraSpec(cam.id, cam.video, calibs[cam.calibration.camera].scaled(cam.resize),
                               resize=cam.resize, loop=cam.playback != "once", pingpong=cam.playback == "pingpong"))
    rate = min((c.process_rate_hz for c in cell.cameras), default=8.0)
    pipeline = PerceptionProcess(cams, process_rate_hz=rate, model_complexity=cell.perception.model_complexity)
    # The sim robot's safeguard-stop input is wired to the monitor's safety output, as a real
    # cell wires the robot's safeguard input to the safety PLC that xrcell's output drives.
    output = SimSafetyOutput(input_timeout_s=cell.safety.monitor_timeout_s)
    backend = create_backend("sim", robot=cell.robot, program=cell.program,
                             safeguard_stop=lambda: output.stop_required)
    holder: dict[str, SafetyMonitor] = {}
    zones = CellZones(cell.zones, on_change=None if audit is None else (
        lambda actor, old, new: audit.append("zone_change", actor, {
            "old": [z.model_dump(mode="json") for z in old.zones],
            "new": [z.model_dump(mode="json") for z in new.zones]}, "zones replaced", durable=True)))
    gate = CommandGate(backend, lambda: holder["m"].latest() if "m" in holder else None,
                       np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS), zones=zones,
                       kinematics=PandaLinkKinematics(cell.robot), audit=audit,
                       people=PeopleOnPath(pipeline.snapshot, cell.safety, StoppingModel.from_stop_data(cell.robot.stop),
                                           cell.robot.max_tcp_speed_mps),
                       joint_acceleration_limits_radps2=np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2))
    monitor = SafetyMonitor(backend.latest_state, pipeline.snapshot, gate.safety_channel(), cell.safety,
                            cell.robot.stop, cell.robot.max_tcp_speed_mps, zones=zones, audit=audit,
                            output=output)
    holder["m"] = monitor
    runner = None
    if cell.program is not None:
        runner = ProgramRunner(plan_pick_and_place(cell.robot, cell.program), gate,
                               backend.latest_state, monitor.latest)
    return Cell(cell, backend, pipeline, gate, monitor, runner, zones)


def start_cell(cell: Cell) -> None:
    cell.pipeline.start()       # decodes the clips first (a few seconds)
    cell.backend.start()
    cell.monitor.start()
    if cell.runner is not None:
        cell.runner.start()


def headless_report(cell: Cell, duration_s: float) -> dict:
    """The JSON report of `xrcell demo --headless` (see README, "Headless run")."""
    mon = cell.monitor.report()
    snap = cell.pipeline.snapshot()
    cameras = [] if snap is None else [
        {"id": c.camera_id, "frames": c.frames, "frames_processed": c.frames_processed,
         "frames_skipped": c.frames_skipped, "frames_with_person": c.frames_with_person}
        for c in snap.cameras]
    return {
        "duration_s": round(duration_s, 3),
        "cameras": cameras,
        "safety": {k: mon[k] for k in ("cycles", "cycle_time_ms", "time_in_mode_s", "min_separation_m",
                                       "min_margin_m", "worst_margin", "stops", "stopping")},
        "reaction_ms": mon["reaction_ms"],
        "reaction_oldest_view_ms": mon["reaction_oldest_view_ms"],
        "reaction_samples": mon["reaction_samples"],
        "perception": cell.pipeline.report(),
        "robot": {"commands_accepted": cell.gate.accepted, "commands_rejected": cell.gate.rejected,
                  "program_cycles": 0 if cell.runner is None else cell.runner.cycles_completed},
    }


class _CameraViews:
    """JPEGs of the newest processed camera frames with their 2D skeletons, for the dashboard."""

    def __init__(self, pipeline) -> None:
        self._pipeline = pipeline

    def ids(self) -> list[str]:
        return self._pipeline.camera_ids()

    def jpeg(self, camera_id: str) -> bytes | None:
        return self._pipeline.camera_jpeg(camera_id)


def demo_users(store) -> dict[str, str]:
    """(Re)create one demo user per role with a fresh random password; returns name -> password."""
    users = {}
    existing = {u.username for u in store.list()}
    for role in DEMO_ROLES:
        password = secrets.token_urlsafe(9)
        if role in existing:
            store.remove(role)
        store.add(role, password, [role])
        users[role] = password
    return users


def run_demo(*, cell_path: Path = DEFAULT_CELL, headless: bool = False, duration_s: float | None = None,
             report_path: Path | None = None, host: str = "127.0.0.1", port: int = 8080,
             db_url: str | None = None) -> int:
    """Run the demo until Ctrl-C (or `duration_s`); returns the process exit code."""
    # The robot simulation, the safety monitor and the web server share this interpreter;
    # a 1 ms switch interval (default 5 ms) keeps the 200 Hz robot state and the 100 Hz
    # monitor on time while the web server is busy.
    sys.setswitchinterval(0.001)
    stop_event = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop_event.set())
    signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    description = load_cell(cell_path)
    print(f"xrcell: cell {description.name!r} from {description.source_path}", flush=True)
    print("xrcell: decoding the camera clips ...", flush=True)
    from safety.audit import AuditLog
    audit = AuditLog(db_url or default_db_url())
    cell = build_cell(description, audit)
    t0 = time.monotonic()
    start_cell(cell)
    server = None
    try:
        if stop_event.is_set():
            print("xrcell: stop requested during start-up", flush=True)
        elif headless:
            print(f"xrcell: running headless for {duration_s if duration_s else 'ever'} s", flush=True)
            while not stop_event.wait(1.0):
                elapsed = time.monotonic() - t0
                state = cell.monitor.latest()
                if state is not None:
                    print(f"xrcell: t={elapsed:5.1f}s mode={state.mode.value:<15} scale={state.speed_scale:.2f} "
                          f"{state.reason}", flush=True)
                if duration_s is not None and elapsed >= duration_s:
                    break
        else:
            server = _serve(cell, host, port, db_url, stop_event, duration_s, audit)
    finally:
        duration = time.monotonic() - t0
        t_stop = time.monotonic()
        cell.stop()
        audit.close()
        report = headless_report(cell, duration)
        if server is not None:
            server()
        signal.signal(signal.SIGINT, previous)
        print(f"xrcell: stopped in {time.monotonic() - t_stop:.2f} s; robot left in a protective stop", flush=True)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2))
        print(f"xrcell: report written to {report_path}", flush=True)
    return 0


def default_db_url() -> str:
    """The demo's storage (users and the safety audit log): `data/xrcell.sqlite`."""
    (REPO_ROOT / "data").mkdir(exist_ok=True)
    return f"sqlite:///{REPO_ROOT / 'data' / 'xrcell.sqlite'}"


def _serve(cell: Cell, host: str, port: int, db_url: str | None, stop_event: threading.Event,
           duration_s: float | None, audit: "AuditLog"):
    """Start the XR server in a thread; block until stop; return its shutdown function."""
    from content.storage import AnnotationStore, UserStore
    from xr_server.app import create_app

    store = UserStore(db_url or default_db_url())
    annotations = AnnotationStore(db_url or default_db_url())
    cell.pipeline.enable_views(True)
    users = demo_users(store)
    app, socketio = create_app(twin_source=cell.twin_state, camera_views=_CameraViews(cell.pipeline),
                               user_store=store, secret_key=secrets.token_hex(32), cell_name=cell.description.name,
                               safety_reset=cell.monitor.reset, monitor=cell.monitor,
                               robot_source=cell.backend.latest_state, perception_source=cell.pipeline.snapshot,
                               gate=cell.gate, safety_events=audit.page, annotation_store=annotations)
    thread = threading.Thread(target=lambda: socketio.run(app, host=host, port=port, allow_unsafe_werkzeug=True,
                                                          use_reloader=False, log_output=False),
                              name="xr-server", daemon=True)
    thread.start()
    print(f"xrcell: dashboard on http://{host}:{port}/  (HMI: http://{host}:{port}/hmi, "
          f"remote expert: http://{host}:{port}/expert)", flush=True)
    print("xrcell: demo users for this run (passwords are new at every start, stored hashed):", flush=True)
    for name, password in users.items():
        print(f"          {name:<11} {password}", flush=True)
    print("xrcell: press Ctrl-C to stop", flush=True)
    t0 = time.monotonic()
    while not stop_event.wait(0.2):
        if duration_s is not None and time.monotonic() - t0 >= duration_s:
            break

    def shutdown() -> None:
        stop = getattr(app, "xrcell_stop", None)
        if callable(stop):
            stop()
    return shutdown
