"""Composition of one running cell: robot backend, worker tracking, gate, monitor, safety output,
program runner and the XR server around them. `xrcell demo` and `xrcell serve` both build here.

The robot backend is chosen by name (`sim`, `dds`, `ros2`; see `robot_bridge.backend`). Worker
tracking runs from the cell's cameras; a cell without cameras gets `NoWorkerTracking` (the
monitor then sees nobody: people must be kept out by the cell's own guards). Every robot command
goes through the one `CommandGate`; the monitor holds the gate's `SafetyChannel`.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from content.calibration import load_calibration
from content.cell import CellDescription, PlacedObjectMaskSettings
from content.errors import ContentError
from content.twin_asset import TwinAsset, TwinAssetCache
from robot_bridge.backend import create_backend
from robot_bridge.errors import BridgeError
from robot_bridge.sim.panda import panda_urdf_path
from safety.blas import single_threaded_blas
from safety.gate import CommandGate, PeopleOnPath
from safety.monitor import SafetyMonitor
from safety.output import SimSafetyOutput
from safety.perception.types import PerceptionSnapshot
from safety.ssm import StoppingModel
from safety.zones import CellZones
from xr_server.program import ProgramRunner
from xr_server.twin import build_twin_state

if TYPE_CHECKING:
    from safety.audit import AuditLog

log = logging.getLogger(__name__)

#: Robot backends `xrcell serve --robot` offers.
ROBOT_CHOICES = ("sim", "dds", "ros2")
#: TCP link of each robot model in its URDF (the `dds` backend reads the URDF from the robot).
TCP_LINKS = {"franka_panda": "panda_grasptarget"}


class NoWorkerTracking:
    """The worker tracking of a cell without cameras: a fresh snapshot with nobody in it.

    The monitor then runs its watchdogs on the robot alone and never slows for a person: such a
    cell must keep people out with its own guards (fences, light curtains, scanners wired to the
    safety PLC). `xrcell serve` says so at start-up.

    Thread safety: every method may be called from any thread.
    """

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""

    def snapshot(self) -> PerceptionSnapshot:
        """A snapshot stamped now (monotonic ns) with no tracks and no cameras."""
        return PerceptionSnapshot(stamp_ns=time.monotonic_ns(), tracks=(), cameras=())

    def report(self) -> dict:
        return {}

    def camera_ids(self) -> list[str]:
        return []

    def camera_jpeg(self, camera_id: str) -> bytes | None:
        return None

    def enable_views(self, enabled: bool = True) -> None:
        """No views to send."""


@dataclass
class Cell:
    """The running parts of one cell; `stop()` leaves the robot in a protective stop."""

    description: CellDescription
    robot: str
    backend: Any
    pipeline: Any
    gate: CommandGate
    monitor: SafetyMonitor
    runner: ProgramRunner | None
    zones: CellZones
    audit: "AuditLog | None" = None
    occupancy: Any = None

    @property
    def channels(self) -> tuple[str, ...]:
        """The distance channels the monitor runs: ("skeleton",) or ("skeleton", "occupancy")."""
        return ("skeleton",) if self.occupancy is None else ("skeleton", "occupancy")

    def twin_state(self) -> dict:
        return build_twin_state(
            self.description.name,
            self.backend.latest_state(),
            self.monitor.latest(),
            self.pipeline.snapshot(),
            self.gate.planned_path(),
            self.zones.current(),
            None if self.runner is None else self.runner.status(),
            None if self.occupancy is None else self.occupancy.latest(),
        )

    def stop(self) -> None:
        if self.runner is not None:
            self.runner.stop(0.3)
        self.monitor.stop(0.3)  # commands the protective stop
        if self.occupancy is not None:
            self.occupancy.stop()
        self.pipeline.stop()
        self.backend.shutdown()


def _dds_options(cell: CellDescription, environ: dict[str, str]) -> dict[str, object]:
    """`DdsBackend` options of `cell`: the ROS 2 domain from ROS_DOMAIN_ID (default 0), the DDS
    configuration from CYCLONEDDS_URI (Cyclone DDS reads it itself), the TCP link of the model."""
    raw = environ.get("ROS_DOMAIN_ID", "0").strip() or "0"
    try:
        domain_id = int(raw)
    except ValueError:
        raise BridgeError(f"ROS_DOMAIN_ID must be an integer in 0..232, got {raw!r}") from None
    return {
        "domain_id": domain_id,
        "tcp_link": TCP_LINKS.get(cell.robot.model),
        "state_timeout_s": cell.safety.robot_timeout_s,
    }


def create_robot(
    cell: CellDescription,
    robot: str,
    safeguard_stop: Callable[[], bool],
    environ: dict[str, str] | None = None,
) -> Any:
    """The robot backend `robot` for `cell` (created, not started).

    `sim` reads `safeguard_stop` as its safeguard-stop input (the wired input of a real
    controller); `dds` joins the ROS 2 domain of ROS_DOMAIN_ID and drives the robot's
    JointTrajectoryController; `ros2` needs rclpy.

    Raises:
        BackendUnavailableError: the backend's library is missing (`ros2` without rclpy).
        BridgeError: bad backend options (e.g. ROS_DOMAIN_ID).
    """
    if robot == "sim":
        return create_backend(
            "sim", robot=cell.robot, program=cell.program, safeguard_stop=safeguard_stop
        )
    if robot == "dds":
        return create_backend(
            "dds",
            robot=cell.robot,
            **_dds_options(cell, dict(os.environ if environ is None else environ)),
        )
    return create_backend(robot, robot=cell.robot)


def _safety_output(cell: CellDescription) -> Any:
    """The cell's `safety_output` (`content.cell.SafetyOutputConfig`), created, not started.

    Raises:
        SafetyOutputError: a field the output refuses; the message names it.
    """
    config = cell.safety_output
    input_timeout_s = config.input_timeout_s or cell.safety.monitor_timeout_s
    if config.kind == "sim":
        return SimSafetyOutput(input_timeout_s=input_timeout_s)
    from safety.output import create_safety_output

    return create_safety_output(
        "modbus",
        host=config.host,
        port=config.port,
        device_id=config.device_id,
        run_permitted_coil=config.run_permitted_coil,
        heartbeat_register=config.heartbeat_register,
        period_s=config.period_s,
        input_timeout_s=input_timeout_s,
        health_timeout_s=config.health_timeout_s,
    )


def cell_from_camera(pose: Any) -> np.ndarray:
    """(4, 4) pose of a camera's optical frame in `cell` from a `content.cell.CameraPose`."""
    from content.calibration import extrinsics_from_pose

    rot, t = extrinsics_from_pose(pose.position, quaternion_xyzw=pose.quaternion, rpy=pose.rpy)
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rot.T, -rot.T @ t
    return out


def depth_source(config: Any) -> Any:
    """The `safety.perception.depth_input.DepthSource` of a cell's `perception.depth`
    (`content.cell.DepthInput`), not opened."""
    from safety.perception.depth import DepthCamera
    from safety.perception.depth_input import DepthImageSequence, PointCloudSequence, RealSenseDepth

    pose = None if config.pose is None else cell_from_camera(config.pose)
    if config.source == "ply_sequence":
        return PointCloudSequence(config.path, pose, loop=config.loop)
    if config.source == "depth_images":
        k = config.intrinsics
        camera = DepthCamera(k.width_px, k.height_px,
                             np.array([[k.fx, 0.0, k.cx], [0.0, k.fy, k.cy], [0.0, 0.0, 1.0]]), pose,
                             config.max_depth_m)
        return DepthImageSequence(config.path, camera, config.depth_scale, loop=config.loop)
    return RealSenseDepth(pose, fps=max(1, round(config.fps)), serial=config.serial,
                          max_depth_m=config.max_depth_m)


def placed_object_mask(settings: PlacedObjectMaskSettings) -> Any:
    """The `safety.placed_mask.PlacedObjectMask` of a cell's `perception.depth.placed_mask`."""
    from safety.placed_mask import PlacedObjectMask

    return PlacedObjectMask(margin_m=settings.margin_m, max_age_s=settings.max_age_s)


def occupancy_channel(config: Any) -> Any:
    """The `safety.occupancy.OccupancyChannel` of a cell's `perception.depth`, with its background
    and its placed-object mask.

    Raises:
        OccupancyError: the background file is missing, unreadable or of another voxel size.
    """
    from safety.occupancy import OccupancyChannel
    from safety.perception.depth_input import load_background

    background = None if config.background is None else load_background(config.background, config.voxel_size_m)
    return OccupancyChannel(voxel_size_m=config.voxel_size_m, self_margin_m=config.self_margin_m,
                            range_m=config.range_m, min_points_per_voxel=config.min_points_per_voxel,
                            background=background, placed_mask=placed_object_mask(config.placed_mask))


def _occupancy(cell: CellDescription, backend: Any, audit: "AuditLog | None" = None) -> Any:
    """The cell's live depth input (`OccupancyInput`), or None without `perception.depth`; it
    audits every change of the cause for which the robot's placed-objects list is refused."""
    config = cell.perception.depth
    if config is None:
        return None
    from safety.perception.depth_input import OccupancyInput

    return OccupancyInput(depth_source(config), occupancy_channel(config), backend.latest_state, config.fps,
                          audit=None if audit is None else audit.append)


def _tracking(cell: CellDescription) -> Any:
    if not cell.cameras:
        return NoWorkerTracking()
    from safety.perception.process import CameraSpec, PerceptionProcess

    cams = []
    calib_cache: dict[Path, dict] = {}
    for cam in cell.fixed_cameras():
        calibs = calib_cache.setdefault(
            cam.calibration.file, load_calibration(cam.calibration.file, cam.calibration.format)
        )
        if cam.calibration.camera not in calibs:
            raise ContentError(
                f"{cam.calibration.file}: no camera {cam.calibration.camera!r} "
                f"(has {', '.join(sorted(calibs))}) for cameras[{cam.id}]"
            )
        cams.append(
            CameraSpec(
                cam.id,
                cam.video,
                calibs[cam.calibration.camera].scaled(cam.resize),
                resize=cam.resize,
                loop=cam.playback != "once",
                pingpong=cam.playback == "pingpong",
                capture_latency_s=cam.latency_s,
            )
        )
    import numpy

    rate = min(c.process_rate_hz for c in cell.cameras)
    bounds = cell.lost_track_bounds()
    return PerceptionProcess(
        cams,
        process_rate_hz=rate,
        model_complexity=cell.perception.model_complexity,
        cell_bounds=None if bounds is None else (numpy.array(bounds.min), numpy.array(bounds.max)),
        hmi_cameras=[c.id for c in cell.hmi_cameras()],
        floor_z_m=cell.perception.floor_z_m,
    )


def build_cell(
    cell: CellDescription, audit: "AuditLog | None" = None, *, robot: str | None = None
) -> Cell:
    """Create (not start) the robot, worker tracking, gate, monitor and program of `cell`.

    Args:
        cell: the cell description.
        audit: where mode changes, gate answers, resets, zone changes and the occupancy
            channel's refusals of the placed-objects list go.
        robot: the robot backend (`ROBOT_CHOICES`); None: the cell's `robot.backend`. The cell's
            program runs only on `sim` (a ROS 2 cell runs its own program).

    Raises:
        BackendUnavailableError, BridgeError: the robot backend cannot be created.
        ContentError: a camera's calibration does not name it.
        OccupancyError: the depth input's background file is refused.
    """
    from robot_bridge.sim import (
        PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
        PANDA_JOINT_VELOCITY_LIMITS_RADPS,
        PandaLinkKinematics,
        plan_pick_and_place,
    )

    robot = robot or cell.robot.backend
    output = _safety_output(cell)
    if isinstance(output, SimSafetyOutput):
        # The sim robot's safeguard-stop input is wired to the monitor's safety output, as a
        # real cell wires the robot's safeguard input to the safety PLC that xrcell's output drives.
        backend = create_robot(cell, robot, lambda: output.stop_required)
    else:
        # The output drives a real PLC; a sim robot beside it follows the newest verdict.
        backend = create_robot(cell, robot, lambda: output.status().stop_required)
    pipeline = _tracking(cell)
    occupancy = _occupancy(cell, backend, audit)
    holder: dict[str, SafetyMonitor] = {}
    zones = CellZones(
        cell.zones,
        on_change=None
        if audit is None
        else (
            lambda actor, old, new: audit.append(
                "zone_change",
                actor,
                {
                    "old": [z.model_dump(mode="json") for z in old.zones],
                    "new": [z.model_dump(mode="json") for z in new.zones],
                },
                "zones replaced",
                durable=True,
            )
        ),
    )
    # the stop data while the gripper is empty (where the cell has a payload to carry)
    empty_kg = None if cell.robot.payload is None else cell.robot.stop_payload_kg(False)
    gate = CommandGate(
        backend,
        lambda: holder["m"].latest() if "m" in holder else None,
        np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS),
        zones=zones,
        kinematics=PandaLinkKinematics(cell.robot),
        audit=audit,
        people=PeopleOnPath(
            pipeline.snapshot,
            cell.safety,
            StoppingModel.from_stop_data(cell.robot.stop),
            cell.robot.max_tcp_speed_mps,
            stopping_empty=None if empty_kg is None
            else StoppingModel.from_stop_data(cell.robot.stop, empty_kg),
        ),
        joint_acceleration_limits_radps2=np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2),
    )
    monitor = SafetyMonitor(
        backend.latest_state,
        pipeline.snapshot,
        gate.safety_channel(),
        cell.safety,
        cell.robot.stop,
        cell.robot.max_tcp_speed_mps,
        zones=zones,
        audit=audit,
        output=output,
        occupancy_source=None if occupancy is None else occupancy.latest,
        path_source=gate.active_path,
        empty_payload_kg=empty_kg,
    )
    holder["m"] = monitor
    runner = None
    if cell.program is not None and robot == "sim":
        runner = ProgramRunner(
            plan_pick_and_place(cell.robot, cell.program),
            gate,
            backend.latest_state,
            monitor.latest,
        )
    return Cell(cell, robot, backend, pipeline, gate, monitor, runner, zones, audit, occupancy)


def start_cell(cell: Cell) -> None:
    """Start tracking (decodes the clips first, a few seconds), the robot, the monitor, the program.

    If a later part fails to start, the parts already started are stopped again. BLAS is limited
    to one thread in this process first (`safety.blas`: its idle workers spin a core away from the
    monitor).
    """
    single_threaded_blas()
    cell.pipeline.start()
    try:
        cell.backend.start()
        if cell.occupancy is not None:
            cell.occupancy.start()
    except BaseException:
        cell.pipeline.stop()
        cell.backend.shutdown()
        raise
    cell.monitor.start()
    if cell.runner is not None:
        cell.runner.start()


class _CameraViews:
    """JPEGs of the newest processed camera frames with their 2D skeletons, for the dashboard."""

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline

    def ids(self) -> list[str]:
        return self._pipeline.camera_ids()

    def jpeg(self, camera_id: str) -> bytes | None:
        return self._pipeline.camera_jpeg(camera_id)


def start_server(cell: Cell, host: str, port: int, store: Any, annotations: Any = None,
                 recordings_dir: Path | None = None, ssl_context: Any = None) -> Callable[[], None]:
    """Start the XR server (dashboard, HMI, expert page, REST, Socket.IO) of `cell` in a thread.

    Robot commands from users reach the robot only through `cell.gate`; fault-stop resets go to
    `cell.monitor.reset`; `GET /api/safety/events` pages through `cell.audit`; the annotations
    of XR sessions are stored in `annotations` (`content.storage.AnnotationStore`; None refuses
    them); XR sessions are recorded under `recordings_dir` (None refuses recording). With
    `ssl_context` (`ssl.SSLContext`) it serves HTTPS and WSS only.

    Returns:
        A function that stops the server's background work (the server thread is a daemon).
    """
    from xr_server.app import create_app
    from xr_server.hmi_cameras import HmiCameras
    from xr_server.recording import Recordings
    from xr_server.serving import serve_in_thread

    cell.pipeline.enable_views(True)
    twin_asset = _twin_asset(cell.description)
    goto = _goto_planner(cell)
    if cell.runner is not None:     # a resume goes back to where the program paused by a go-to
        cell.runner.return_planner = lambda goal_id, q: goto.plan(goal_id, positions=q)
    app, socketio = create_app(
        twin_source=cell.twin_state,
        camera_views=_CameraViews(cell.pipeline),
        user_store=store,
        secret_key=secrets.token_hex(32),
        cell_name=cell.description.name,
        safety_reset=cell.monitor.reset,
        safety_stop=cell.monitor.request_stop,
        monitor=cell.monitor,
        robot_source=cell.backend.latest_state,
        perception_source=cell.pipeline.snapshot,
        gate=cell.gate,
        robot_commands=cell.gate,
        safety_events=None if cell.audit is None else cell.audit.page,
        annotation_store=annotations,
        recordings=None if recordings_dir is None else _recordings(cell, recordings_dir),
        twin_asset=twin_asset,
        hmi_cameras=(HmiCameras(cell.description.hmi_cameras(), cell.pipeline.push_frame)
                     if cell.description.hmi_cameras() else None),
        max_bitrate_kbps=cell.description.video.max_bitrate_kbps,
        robot_goto=goto,
        markers=cell.description.markers,
        audit=None if cell.audit is None else cell.audit.append,
        program=cell.runner,
    )
    serve_in_thread(app, socketio, host, port, ssl_context=ssl_context)

    def shutdown() -> None:
        stop = getattr(app, "xrcell_stop", None)
        if callable(stop):
            stop()

    return shutdown


def _goto_planner(cell: Cell) -> Any:
    """The go-to planner of `cell`'s robot (`xr_server.robot_goto.GotoPlanner`): its named poses,
    the Panda's joint limits and a robot model of its own for TCP speeds and TCP targets."""
    from robot_bridge.sim import (
        PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
        PANDA_JOINT_VELOCITY_LIMITS_RADPS,
        PandaLinkKinematics,
    )
    from xr_server.robot_goto import GotoPlanner

    robot = cell.description.robot
    return GotoPlanner(robot.named_poses, cell.backend.joint_names,
                       PANDA_JOINT_VELOCITY_LIMITS_RADPS, PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
                       cell.backend.latest_state, PandaLinkKinematics(robot))


def _recordings(cell: Cell, root: Path) -> Any:
    """The cell's `xr_server.recording.Recordings` under `root`, pruned now and periodically as
    the cell file's ``recordings:`` says; each deletion goes to the audit log."""
    from xr_server.recording import DeletedRecording, Recordings, RetentionPolicy

    config = cell.description.recordings
    audit = cell.audit

    def audit_deletion(gone: DeletedRecording) -> None:
        if audit is not None:
            audit.append("recording_deleted", "retention",
                         {"recording": gone.recording, "session": gone.session,
                          "size_mb": gone.size_mb, "ended_at": gone.ended_at,
                          "rule": gone.reason},
                         f"recording {gone.recording} deleted by the retention rule {gone.reason}")

    recordings = Recordings(root, cell.twin_state,
                            retention=RetentionPolicy(config.retention_days, config.max_total_mb,
                                                      config.prune_period_s),
                            on_delete=audit_deletion)
    recordings.start_pruning()
    return recordings


def _twin_asset(description: CellDescription) -> Callable[[], TwinAsset]:
    """The cell's static twin GLB, generated once per content (cached in `data/twin_cache`), in a
    child process so the build does not hold the GIL the safety loop needs, and started in the
    background so the first page load does not wait for it."""
    cache = TwinAssetCache(REPO_ROOT / "data" / "twin_cache", isolate=True)
    urdf = panda_urdf_path()  # the one robot model a cell has (`content.cell.Robot.model`)

    def get() -> TwinAsset:
        return cache.get(urdf, description.robot.base, description.zones)

    def warm() -> None:
        try:
            get()
        except ContentError as exc:
            log.error("static twin of cell %r: %s", description.name, exc)

    threading.Thread(target=warm, name="twin-asset", daemon=True).start()
    return get


def wait(stop_event: threading.Event, duration_s: float | None, period_s: float = 0.2) -> None:
    """Block until `stop_event` is set or `duration_s` (None: forever) has passed."""
    deadline = math.inf if duration_s is None else time.monotonic() + duration_s
    while not stop_event.wait(period_s):
        if time.monotonic() >= deadline:
            return


REPO_ROOT = Path(__file__).resolve().parents[1]


def default_db_url() -> str:
    """The default storage (users and the safety audit log): `data/xrcell.sqlite`."""
    (REPO_ROOT / "data").mkdir(exist_ok=True)
    return f"sqlite:///{REPO_ROOT / 'data' / 'xrcell.sqlite'}"


def _load_avg_1m() -> float | None:
    """The machine's 1-minute load average (runnable and running tasks), None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def headless_report(cell: Cell, duration_s: float, load_avg_start: float | None = None) -> dict:
    """The JSON report of a run (see README, "Headless run").

    `load_avg_start`: the machine's 1-minute load average when the cell started (with the one
    at the end in `host`: a watchdog that trips on a loaded machine shows against it)."""
    mon = cell.monitor.report()
    snap = cell.pipeline.snapshot()
    cameras = (
        []
        if snap is None
        else [
            {
                "id": c.camera_id,
                "frames": c.frames,
                "frames_processed": c.frames_processed,
                "frames_skipped": c.frames_skipped,
                "frames_with_person": c.frames_with_person,
            }
            for c in snap.cameras
        ]
    )
    return {
        "duration_s": round(duration_s, 3),
        "cameras": cameras,
        "safety": {
            k: mon[k]
            for k in (
                "cycles",
                "missed_periods",
                "cycle_time_ms",
                "time_in_mode_s",
                "startup_s",
                "fault_stop_after_startup_s",
                "fault_stops_after_startup",
                "min_separation_m",
                "min_margin_m",
                "worst_margin",
                "stops",
                "stopping",
            )
        },
        "reaction_ms": mon["reaction_ms"],
        "reaction_oldest_view_ms": mon["reaction_oldest_view_ms"],
        "reaction_samples": mon["reaction_samples"],
        "perception": cell.pipeline.report(),
        "channels": list(cell.channels),
        "depth": None if cell.occupancy is None else cell.occupancy.report(),
        "host": {
            "cpus": os.cpu_count(),
            "load_avg_1m_start": None if load_avg_start is None else round(load_avg_start, 2),
            "load_avg_1m_end": _load_avg_1m(),
        },
        "robot": {
            "backend": cell.robot,
            "commands_accepted": cell.gate.accepted,
            "commands_rejected": cell.gate.rejected,
            "program_cycles": 0 if cell.runner is None else cell.runner.cycles_completed,
        },
    }


def run_cell(
    description: CellDescription,
    *,
    robot: str | None = None,
    headless: bool = False,
    duration_s: float | None = None,
    report_path: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    db_url: str | None = None,
    on_serving: Callable[[Any], None] | None = None,
    tls: Any = None,
) -> int:
    """Run `description` until SIGINT/SIGTERM (or `duration_s`); returns the process exit code.

    Args:
        description: the cell.
        robot: the robot backend (`ROBOT_CHOICES`); None: the cell's `robot.backend`.
        headless: no web server; print the safety mode every second.
        duration_s: stop after this long; None: run until a signal.
        report_path: write `headless_report` here at the end.
        host, port: where the XR server listens (not headless).
        db_url: storage of users and the audit log; None: `default_db_url()`.
        on_serving: called with the user store once the server listens (the demo makes its
            accounts there).
        tls: `xr_server.tls.ServerTls`: serve HTTPS and WSS only; None: plain HTTP.

    Raises:
        BackendUnavailableError, BridgeError: the robot cannot be created or reached.
        ContentError, SafetyError: the cell's configuration is refused.
    """
    import json
    import signal
    import sys

    from safety.audit import AuditLog

    # The robot, the safety monitor and the web server share this interpreter; a 1 ms switch
    # interval (default 5 ms) keeps the 200 Hz robot state and the 100 Hz monitor on time while
    # the web server is busy.
    sys.setswitchinterval(0.001)
    stop_event = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop_event.set())
    previous_term = signal.signal(signal.SIGTERM, lambda *_: stop_event.set())
    db_url = db_url or default_db_url()
    audit = AuditLog(db_url)
    try:
        cell = build_cell(description, audit, robot=robot)
        print(f"xrcell: robot backend {cell.robot!r}", flush=True)
        if cell.robot != "sim" and description.safety_output.kind == "sim":
            print(
                "xrcell: warning: safety_output is 'sim': no certified safety chain receives "
                "xrcell's stop for this robot; configure safety_output (kind modbus) in the cell",
                flush=True,
            )
        if not description.cameras:
            print(
                "xrcell: warning: the cell has no cameras: no worker tracking, the monitor "
                "sees nobody; keep people out with the cell's own guards",
                flush=True,
            )
        else:
            if description.lost_track_bounds() is None:
                print(
                    "xrcell: warning: the cell has no collaborative zone and no "
                    "perception.cell_bounds: a person every camera loses is not reported lost",
                    flush=True,
                )
            print("xrcell: decoding the camera clips ...", flush=True)
        if description.perception.depth is None:
            print("xrcell: distance channels: skeleton only (no depth camera in the cell)", flush=True)
        else:
            depth = description.perception.depth
            print(f"xrcell: distance channels: skeleton and occupancy (depth {depth.source} at "
                  f"{depth.fps:g} fps{'' if depth.background else ', no background file'})", flush=True)
        load_avg_start = _load_avg_1m()
        start_cell(cell)
    except BaseException:
        audit.close()
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        raise
    t0 = time.monotonic()
    server = None
    try:
        if stop_event.is_set():
            print("xrcell: stop requested during start-up", flush=True)
        elif headless:
            print(
                f"xrcell: running headless for {duration_s if duration_s else 'ever'} s", flush=True
            )
            while not stop_event.wait(1.0):
                elapsed = time.monotonic() - t0
                state = cell.monitor.latest()
                if state is not None:
                    print(
                        f"xrcell: t={elapsed:5.1f}s mode={state.mode.value:<15} "
                        f"scale={state.speed_scale:.2f} {state.reason}",
                        flush=True,
                    )
                if duration_s is not None and elapsed >= duration_s:
                    break
        else:
            from content.storage import AnnotationStore, UserStore

            store = UserStore(db_url)
            server = start_server(cell, host, port, store, AnnotationStore(db_url),
                                  REPO_ROOT / "data" / "recordings",
                                  ssl_context=None if tls is None else tls.context)
            web = f"{'http' if tls is None else 'https'}://{host}:{port}"
            print(
                f"xrcell: dashboard on {web}/  (HMI: {web}/hmi, remote expert: {web}/expert)",
                flush=True,
            )
            if on_serving is not None:
                on_serving(store)
            print(
                "xrcell: the robot starts in a fault stop: a supervisor resets it (dashboard or "
                "POST /api/safety/reset); press Ctrl-C to stop",
                flush=True,
            )
            wait(stop_event, duration_s)
    finally:
        duration = time.monotonic() - t0
        t_stop = time.monotonic()
        cell.stop()
        audit.close()
        report = headless_report(cell, duration, load_avg_start)
        if server is not None:
            server()
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        print(
            f"xrcell: stopped in {time.monotonic() - t_stop:.2f} s; "
            "robot left in a protective stop",
            flush=True,
        )
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2))
        print(f"xrcell: report written to {report_path}", flush=True)
    return 0
