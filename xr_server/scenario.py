"""Scenario runner: scripted people against the simulated robot, through the real monitor and gate.

`xrcell scenario FILE.yaml... --report OUT.json` plays each scenario on a simulated monotonic
clock, faster than real time and deterministically: the PyBullet Panda (`realtime=False`)
runs its pick-and-place program through the `CommandGate`, the `SafetyMonitor` steps at its
rate, and a scripted tracker publishes the people's keypoints at its rate with its latency,
noise and faults (frozen camera, frozen tracker, lost track). Nothing is stubbed between the
tracker's output and the robot's joints.

Every scenario is judged on:
- `contact`: a human capsule (ground truth, not the tracker's view) touched a robot capsule
  while the robot moved (fastest capsule point above `STANDSTILL_MPS`). A person walking into
  a robot that stands still is reported as `touch_at_standstill_s`, not as contact.
- `min_margin_m`: separation − S_p over the monitor cycles that let the robot move, S_p at the
  robot's actual speed (ISO/TS 15066 clause 5.5.4.2.3); must be ≥ 0.
- `fault_stop_after_s`: for scenarios with an injected fault, the time from the fault to the
  monitor's fault stop; must be within `expect.fault_stop_within_s`.
It also reports `false_stop_s`: time in a protective stop while the separation exceeded S_p
(stops that the resume delay or conservative terms kept longer than the rule needed), and, for
a cell with a `robot.payload`, `payload`: how long the part was carried (its capsule among the
robot's, so in the contact check) and how often the gripper picked and placed it
(`expect.payload_placed` requires one of each).

A scenario with a `depth_camera:` block also runs the second, diverse channel: a simulated depth
camera (`xr_server.scenario_depth`) renders the people's ground-truth capsules, the robot and the
floor into depth images that the occupancy channel (`safety.occupancy`) turns into voxels, and the
monitor cross-checks the two channels. A person with `visible_to_pose: false` is in the depth
images but never in the tracker's output.

Scenario files are YAML (model `Scenario` below); positions are metres in the `cell` frame,
times seconds from the start of the run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from content.cell import CellDescription, PlacedObjectMaskSettings, load_cell
from content.errors import ContentError
from robot_bridge.payload import PAYLOAD_LINK
from robot_bridge.types import RobotState
from safety.decision import STANDSTILL_MPS, SafetyMode, SafetyState
from safety.distance import closest_capsule_pair, human_capsules
from safety.output import SimSafetyOutput
from safety.perception.types import CameraStatus, HumanTrack, PerceptionSnapshot
from safety.ssm import StoppingModel
from safety.zones import CellZones

#: The cell a scenario runs in unless it names one.
DEFAULT_CELL = Path(__file__).resolve().parents[1] / "tests" / "scenarios" / "cell.yaml"
_SEC = 1_000_000_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reach(_Model):
    """An arm reaching towards a point: extends over `duration_s`, holds, retracts over `duration_s`."""

    start_s: float = Field(..., ge=0.0)
    duration_s: float = Field(0.4, gt=0.0)
    hold_s: float = Field(1.0, ge=0.0)
    arm: Literal["left", "right"] = "right"
    target: tuple[float, float, float]


class ScriptedPerson(_Model):
    """A person moving along waypoints (hip centre on the floor), linearly between them.

    Attributes:
        id: track id.
        waypoints: (t_s, x, y) rows, times increasing; before the first and after the last
            the person stands at the first and the last point.
        height_m: body height; the skeleton is scaled from a 1.75 m person.
        face: (x, y) point the person faces; None: the walking direction (or the last one).
        reaches: arm reaches.
        visible_to_pose: False: the skeleton tracker never reports this person (a person the
            pose estimator misses); only a depth camera sees them.
    """

    id: str = Field("p1", min_length=1)
    waypoints: list[tuple[float, float, float]] = Field(..., min_length=1)
    height_m: float = Field(1.75, gt=1.0, lt=2.2)
    face: tuple[float, float] | None = None
    reaches: list[Reach] = Field(default_factory=list)
    visible_to_pose: bool = True

    @field_validator("waypoints")
    @classmethod
    def _times_increase(cls, waypoints: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
        times = [w[0] for w in waypoints]
        if any(b <= a for a, b in zip(times, times[1:])):
            raise ValueError(f"waypoint times must increase, got {times}")
        return waypoints


class Tracker(_Model):
    """The scripted tracker: what the perception pipeline would publish.

    Attributes:
        rate_hz: track updates per second.
        latency_s: capture to publication of an update.
        noise_m: standard deviation of Gaussian noise added to each keypoint coordinate.
        sigma_m: the position uncertainty the tracker reports (feeds Z_d).
        cameras: camera ids whose health the tracker reports.
        camera_rate_hz: frame rate of those cameras.
    """

    rate_hz: float = Field(15.0, gt=0.0, le=120.0)
    latency_s: float = Field(0.08, ge=0.0, le=1.0)
    noise_m: float = Field(0.01, ge=0.0, le=0.2)
    sigma_m: float = Field(0.03, ge=0.0, le=1.0)
    cameras: list[str] = Field(default_factory=lambda: ["cam1", "cam2", "cam3"])
    camera_rate_hz: float = Field(30.0, gt=0.0, le=240.0)


class Fault(_Model):
    """An injected fault.

    Kinds:
        camera_freeze: `camera` delivers no frames from `at_s` (for `duration_s`, or for good).
        tracker_freeze: the tracker publishes nothing from `at_s` for `duration_s` (or for good).
        track_lost: from `at_s` the tracker reports every person lost inside the cell.
        depth_freeze: the depth camera delivers no frames from `at_s` (for `duration_s`, or for good).
    """

    kind: Literal["camera_freeze", "tracker_freeze", "track_lost", "depth_freeze"]
    at_s: float = Field(..., ge=0.0)
    duration_s: float | None = Field(None, gt=0.0)
    camera: str | None = None


class DepthCameraSpec(_Model):
    """A simulated depth camera (the occupancy channel's input).

    Attributes:
        position: camera centre, metres, `cell` frame.
        target: the point it looks at, metres, `cell` frame.
        width_px, height_px: resolution.
        fov_deg: horizontal field of view.
        rate_hz: frames per second.
        latency_s: capture to a published occupancy measurement.
        noise_m: standard deviation of Gaussian depth noise per pixel.
        voxel_size_m, self_margin_m, range_m, min_points_per_voxel: the occupancy channel's
            settings (`safety.occupancy.OccupancyChannel`).
        mask_placed_objects: the channel masks the parts the robot released
            (`safety.placed_mask`); false shows what a released part does without the mask.
    """

    position: tuple[float, float, float] = (0.4, -0.7, 3.2)
    target: tuple[float, float, float] = (0.4, -0.7, 0.0)
    width_px: int = Field(160, ge=16, le=1280)
    height_px: int = Field(120, ge=16, le=960)
    fov_deg: float = Field(90.0, gt=10.0, lt=170.0)
    rate_hz: float = Field(30.0, gt=0.0, le=120.0)
    latency_s: float = Field(0.05, ge=0.0, le=1.0)
    noise_m: float = Field(0.005, ge=0.0, le=0.1)
    voxel_size_m: float = Field(0.05, gt=0.005, le=0.5)
    self_margin_m: float = Field(0.05, ge=0.0, le=0.5)
    range_m: float = Field(2.5, gt=0.0, le=10.0)
    min_points_per_voxel: int = Field(2, ge=1, le=100)
    mask_placed_objects: bool = True


class Expect(_Model):
    """What must hold at the end of the run."""

    no_contact: bool = True
    min_margin_m: float = 0.0
    fault_stop_within_s: float | None = Field(None, gt=0.0)
    robot_moved: bool = Field(True, description="the program made progress (a command was forwarded)")
    payload_placed: bool = Field(False, description="the gripper picked the cell's payload (it "
                                                    "was carried) and placed it (released it) at "
                                                    "least once")
    max_stops: int | None = Field(None, ge=0, description="at most this many stops (protective or "
                                                          "fault); 0 for a run nobody intrudes in")


class Scenario(_Model):
    """One scenario file."""

    name: str = Field(..., min_length=1)
    description: str = ""
    cell: Path | None = None
    duration_s: float = Field(10.0, gt=0.0, le=600.0)
    robot_speed_mps: float | None = Field(None, gt=0.0, le=3.0, description="overrides robot.max_tcp_speed_mps")
    seed: int = 0
    people: list[ScriptedPerson] = Field(default_factory=list)
    tracker: Tracker = Tracker()
    faults: list[Fault] = Field(default_factory=list)
    depth_camera: DepthCameraSpec | None = None
    expect: Expect = Expect()


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        ContentError: unreadable file, invalid YAML or an invalid field (named with the file).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ContentError(f"{path}: cannot read scenario: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ContentError(f"{path}: not valid YAML: {exc}") from None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ContentError(f"{path.name}: {where}: {err['msg']}") from None
    if scenario.cell is not None and not scenario.cell.is_absolute():
        scenario = scenario.model_copy(update={"cell": (path.parent / scenario.cell).resolve()})
    return scenario


# --------------------------------------------------------------------------- people

#: Landmarks of a 1.75 m person standing upright in the body frame (x forward, y left, z up,
#: origin on the floor between the feet), MediaPipe Pose order; metres. Proportions after
#: DIN 33402-2 (50th percentile), rounded to the centimetre.
_BODY_175 = np.array([
    (0.08, 0.0, 1.63),                                                       # nose
    (0.07, 0.015, 1.67), (0.07, 0.03, 1.67), (0.06, 0.045, 1.67),            # left eye inner/eye/outer
    (0.07, -0.015, 1.67), (0.07, -0.03, 1.67), (0.06, -0.045, 1.67),         # right eye
    (0.0, 0.075, 1.64), (0.0, -0.075, 1.64),                                 # ears
    (0.07, 0.025, 1.58), (0.07, -0.025, 1.58),                               # mouth
    (0.0, 0.19, 1.43), (0.0, -0.19, 1.43),                                   # shoulders
    (0.0, 0.22, 1.14), (0.0, -0.22, 1.14),                                   # elbows
    (0.03, 0.22, 0.87), (0.03, -0.22, 0.87),                                 # wrists
    (0.05, 0.22, 0.79), (0.05, -0.22, 0.79),                                 # pinkies
    (0.06, 0.21, 0.78), (0.06, -0.21, 0.78),                                 # index fingers
    (0.06, 0.19, 0.82), (0.06, -0.19, 0.82),                                 # thumbs
    (0.0, 0.10, 0.93), (0.0, -0.10, 0.93),                                   # hips
    (0.02, 0.10, 0.50), (0.02, -0.10, 0.50),                                 # knees
    (0.0, 0.10, 0.08), (0.0, -0.10, 0.08),                                   # ankles
    (-0.05, 0.10, 0.03), (-0.05, -0.10, 0.03),                               # heels
    (0.15, 0.10, 0.02), (0.15, -0.10, 0.02),                                 # foot index
])
_ARM = {"left": (11, 13, 15, (17, 19, 21)), "right": (12, 14, 16, (18, 20, 22))}
_ARM_LENGTH_175 = 0.60  # shoulder to wrist, extended


class PersonModel:
    """Ground-truth keypoints of a scripted person at any time."""

    def __init__(self, spec: ScriptedPerson) -> None:
        self.spec = spec
        self._w = np.asarray(spec.waypoints, dtype=np.float64)
        self._scale = spec.height_m / 1.75

    def position(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(hip centre (x, y) on the floor, velocity (vx, vy)) at time t."""
        w = self._w
        if t <= w[0, 0] or len(w) == 1:
            return w[0, 1:].copy(), np.zeros(2)
        if t >= w[-1, 0]:
            return w[-1, 1:].copy(), np.zeros(2)
        i = int(np.searchsorted(w[:, 0], t)) - 1
        f = (t - w[i, 0]) / (w[i + 1, 0] - w[i, 0])
        v = (w[i + 1, 1:] - w[i, 1:]) / (w[i + 1, 0] - w[i, 0])
        return w[i, 1:] + f * (w[i + 1, 1:] - w[i, 1:]), v

    def _heading(self, t: float, xy: np.ndarray) -> float:
        if self.spec.face is not None:
            d = np.asarray(self.spec.face) - xy
            return math.atan2(d[1], d[0])
        w = self._w
        for i in range(len(w) - 1, 0, -1):  # the direction of the segment in progress or last walked
            if w[i - 1, 0] <= t or i == 1:
                d = w[i, 1:] - w[i - 1, 1:]
                if np.linalg.norm(d) > 1e-9:
                    return math.atan2(d[1], d[0])
        return 0.0

    def keypoints(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """((33, 3) keypoints, metres, `cell` frame; (3,) velocity m/s) at time t."""
        xy, v = self.position(t)
        yaw = self._heading(t, xy)
        c, s = math.cos(yaw), math.sin(yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        kp = (_BODY_175 * self._scale) @ rot.T + np.array([xy[0], xy[1], 0.0])
        for reach in self.spec.reaches:
            f = _reach_fraction(reach, t)
            if f <= 0.0:
                continue
            shoulder, elbow, wrist, hand = _ARM[reach.arm]
            target = np.asarray(reach.target, dtype=np.float64)
            d = target - kp[shoulder]
            dist = float(np.linalg.norm(d))
            if dist < 1e-9:
                continue
            u = d / dist
            length = min(dist, _ARM_LENGTH_175 * self._scale)
            ext = {elbow: kp[shoulder] + u * length / 2, wrist: kp[shoulder] + u * length}
            for h in hand:
                ext[h] = kp[shoulder] + u * (length + 0.08 * self._scale)
            for k, p in ext.items():
                kp[k] = kp[k] + f * (p - kp[k])
        return kp, np.array([v[0], v[1], 0.0])


def _reach_fraction(reach: Reach, t: float) -> float:
    a = t - reach.start_s
    if a <= 0.0:
        return 0.0
    if a < reach.duration_s:
        return a / reach.duration_s
    a -= reach.duration_s
    if a < reach.hold_s:
        return 1.0
    a -= reach.hold_s
    return max(0.0, 1.0 - a / reach.duration_s)


class ScriptedTracker:
    """Publishes `PerceptionSnapshot`s of the scripted people on the simulated clock.

    Thread: single-threaded; the scenario loop calls `advance(t)` before the monitor's cycle.
    """

    def __init__(self, people: list[PersonModel], spec: Tracker, faults: list[Fault], seed: int,
                 offset_ns: int = 0) -> None:
        self._offset_ns = offset_ns
        self._people = people
        self._spec = spec
        self._faults = faults
        self._rng = np.random.default_rng(seed)
        self._pending: list[tuple[float, PerceptionSnapshot | None, float]] = []
        self._next_sample = 0.0
        self._camera_last: dict[str, float] = {c: -1.0 for c in spec.cameras}
        self._frames = 0
        self._snapshot: PerceptionSnapshot | None = None

    def snapshot(self) -> PerceptionSnapshot | None:
        """The newest published snapshot (the monitor's perception source)."""
        return self._snapshot

    def _active(self, kind: str, t: float, camera: str | None = None) -> bool:
        for f in self._faults:
            if f.kind == kind and (camera is None or f.camera == camera) and t >= f.at_s and (
                    f.duration_s is None or t < f.at_s + f.duration_s):
                return True
        return False

    def advance(self, t: float) -> None:
        """Capture samples up to time t and publish those whose latency has passed."""
        spec = self._spec
        frame_period = 1.0 / spec.camera_rate_hz
        for cam in spec.cameras:
            if not self._active("camera_freeze", t, cam):
                last = self._camera_last[cam]
                self._camera_last[cam] = math.floor(t / frame_period) * frame_period if last < t else last
        while self._next_sample <= t:
            ts = self._next_sample
            self._next_sample += 1.0 / spec.rate_hz
            self._pending.append((ts + spec.latency_s, None, ts))
        while self._pending and self._pending[0][0] <= t:
            publish_t, _, ts = self._pending.pop(0)
            if self._active("tracker_freeze", publish_t):
                continue
            self._snapshot = self._build(publish_t, ts)

    def _build(self, publish_t: float, ts: float) -> PerceptionSnapshot:
        spec = self._spec
        capture_ns = int(ts * _SEC) + self._offset_ns
        lost = self._active("track_lost", ts)
        tracks = []
        if not lost:
            for person in self._people:
                if not person.spec.visible_to_pose:
                    continue
                kp, v = person.keypoints(ts)
                if spec.noise_m > 0:
                    kp = kp + self._rng.normal(0.0, spec.noise_m, kp.shape)
                tracks.append(HumanTrack(person.spec.id, kp, np.ones(33), v, spec.sigma_m, capture_ns, capture_ns,
                                         tuple(spec.cameras)))
        self._frames += 1
        last = {c: 0 if t < 0 else int(t * _SEC) + self._offset_ns for c, t in self._camera_last.items()}
        cams = tuple(CameraStatus(c, last[c], last[c], self._frames, self._frames, 0, self._frames)
                     for c in spec.cameras)
        return PerceptionSnapshot(int(publish_t * _SEC) + self._offset_ns, tuple(tracks), cams,
                                  tuple(p.spec.id for p in self._people) if lost else ())


# --------------------------------------------------------------------------- the run

class _Clock:
    """The simulated monotonic clock shared by every part of the run (starts at 1 s)."""

    def __init__(self) -> None:
        self.t = 0.0

    def now_ns(self) -> int:
        return int((self.t + 1.0) * _SEC)

    def now_s(self) -> float:
        return self.t + 1.0


def run_scenario(scenario: Scenario) -> dict:
    """Play one scenario; returns its report (see the module docstring and `xrcell scenario --help`).

    Raises:
        ContentError: the scenario's cell file is invalid or has no robot program.
    """
    from robot_bridge.sim import (
        PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
        PANDA_JOINT_VELOCITY_LIMITS_RADPS,
        PandaLinkKinematics,
        PyBulletPandaBackend,
        plan_pick_and_place,
    )
    from robot_bridge.sim.backend import PHYSICS_RATE_HZ
    from safety.gate import CommandGate, PeopleOnPath
    from safety.monitor import SafetyMonitor
    from xr_server.program import ProgramRunner

    cell: CellDescription = load_cell(scenario.cell or DEFAULT_CELL)
    if cell.program is None:
        raise ContentError(f"{cell.source_path}: a scenario cell needs a program")
    robot = cell.robot
    if scenario.robot_speed_mps is not None:
        robot = robot.model_copy(update={"max_tcp_speed_mps": scenario.robot_speed_mps})
    clock = _Clock()
    people = [PersonModel(p) for p in scenario.people]
    # Sample times are run times; stamps are on the shared monotonic clock (run time + 1 s).
    tracker = ScriptedTracker(people, scenario.tracker, scenario.faults, scenario.seed, offset_ns=clock.now_ns())
    output = SimSafetyOutput(input_timeout_s=cell.safety.monitor_timeout_s, clock_ns=clock.now_ns)
    backend = PyBulletPandaBackend(robot, cell.program, realtime=False, clock_ns=clock.now_ns,
                                   safeguard_stop=lambda: output.stop_required)
    kinematics = PandaLinkKinematics(robot)
    try:
        zones = CellZones(cell.zones)
        holder: dict[str, SafetyMonitor] = {}
        empty_kg = None if robot.payload is None else robot.stop_payload_kg(False)
        empty = None if empty_kg is None else StoppingModel.from_stop_data(robot.stop, empty_kg)
        gate = CommandGate(backend, lambda: holder["m"].latest() if "m" in holder else None,
                           np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS), zones=zones, kinematics=kinematics,
                           people=PeopleOnPath(tracker.snapshot, cell.safety, StoppingModel.from_stop_data(robot.stop),
                                               robot.max_tcp_speed_mps, clock_ns=clock.now_ns,
                                               stopping_empty=empty),
                           joint_acceleration_limits_radps2=np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2))
        depth = None if scenario.depth_camera is None else _scripted_depth(scenario.depth_camera, scenario, people,
                                                                           clock, cell)
        monitor = SafetyMonitor(backend.latest_state, tracker.snapshot, gate.safety_channel(),
                                cell.safety, robot.stop, robot.max_tcp_speed_mps, clock_ns=clock.now_ns, zones=zones,
                                output=output, occupancy_source=None if depth is None else depth.latest,
                                path_source=gate.active_path, empty_payload_kg=empty_kg)
        holder["m"] = monitor
        runner = ProgramRunner(plan_pick_and_place(robot, cell.program), gate, backend.latest_state,
                               monitor.latest, clock_s=clock.now_s)
        backend.start()
        output.start()
        if depth is not None:
            backend.step(1)
            depth.learn_background(backend.latest_state())
        return _play(scenario, clock, tracker, backend, monitor, gate, runner, people, PHYSICS_RATE_HZ,
                     cell.safety.rate_hz, robot.state_rate_hz, depth)
    finally:
        kinematics.close()
        backend.shutdown()


def _scripted_depth(spec: DepthCameraSpec, scenario: Scenario, people: list[PersonModel], clock: _Clock,
                    cell: CellDescription):
    """The scenario's depth camera and occupancy channel (`xr_server.scenario_depth.ScriptedDepth`);
    the placed-object mask follows the cell's `perception.depth.placed_mask` (defaults without
    a depth block)."""
    from safety.occupancy import OccupancyChannel
    from safety.perception.depth import DepthCamera
    from xr_server.scenario_depth import ScriptedDepth, SimulatedDepthCamera

    camera = DepthCamera.look_at(spec.position, spec.target, spec.fov_deg, spec.width_px, spec.height_px)
    sim = SimulatedDepthCamera(camera, spec.noise_m, np.random.default_rng(scenario.seed + 1))
    from xr_server.compose import placed_object_mask

    depth = cell.perception.depth
    settings = PlacedObjectMaskSettings() if depth is None else depth.placed_mask
    mask = placed_object_mask(settings) if spec.mask_placed_objects else None
    channel = OccupancyChannel(spec.voxel_size_m, spec.self_margin_m, spec.range_m,
                               spec.min_points_per_voxel, placed_mask=mask)
    freezes = [f for f in scenario.faults if f.kind == "depth_freeze"]

    def capsules(t: float) -> list[tuple[np.ndarray, np.ndarray]]:
        return [human_capsules(p.keypoints(t)[0], np.ones(33))[:2] for p in people]

    def frozen(t: float) -> bool:
        return any(t >= f.at_s and (f.duration_s is None or t < f.at_s + f.duration_s) for f in freezes)

    return ScriptedDepth(sim, channel, spec.rate_hz, spec.latency_s, capsules, frozen, clock.now_ns())


def _play(scenario: Scenario, clock: _Clock, tracker: ScriptedTracker, backend, monitor, gate, runner,
          people: list[PersonModel], physics_rate_hz: float, monitor_rate_hz: float, state_rate_hz: float,
          depth=None) -> dict:
    dt = 1.0 / physics_rate_hz
    period = 1.0 / monitor_rate_hz
    steps = int(round(scenario.duration_s / dt))
    next_cycle = 0.0
    contact = False
    contact_at: float | None = None
    touch_standstill_s = 0.0
    min_true_m = math.inf
    false_stop_s = 0.0
    full_speed_s = 0.0
    first_fault = min((f.at_s for f in scenario.faults), default=None)
    fault_stop_at: float | None = None
    last_state: SafetyState | None = None
    last_checked: RobotState | None = None
    last_robot: RobotState | None = None
    carried_s = 0.0
    picks = places = 0
    for _ in range(steps):
        tracker.advance(clock.t)
        if depth is not None:
            depth.advance(clock.t, backend.latest_state())
        if clock.t + 1e-9 >= next_cycle:
            next_cycle += period
            state = monitor.step()
            runner.poll()
            if state.mode is SafetyMode.PROTECTIVE_STOP and state.margin_m is not None and state.margin_m > 0:
                false_stop_s += period
            if state.mode is SafetyMode.FULL_SPEED:
                full_speed_s += period
            if (first_fault is not None and fault_stop_at is None and clock.t >= first_fault
                    and state.mode is SafetyMode.FAULT_STOP):
                fault_stop_at = clock.t
            last_state = state
        backend.step(1)
        clock.t += dt
        robot = backend.latest_state()
        if robot is not None and robot is not last_robot:
            if last_robot is not None and robot.payload_carried != last_robot.payload_carried:
                if robot.payload_carried:
                    picks += 1
                else:
                    places += 1
            if robot.payload_carried and PAYLOAD_LINK in robot.link_names:
                carried_s += 1.0 / state_rate_hz
            last_robot = robot
        if robot is not None and robot is not last_checked and people:
            last_checked = robot
            moving = robot.max_speed_mps > STANDSTILL_MPS
            for person in people:
                kp, _ = person.keypoints(clock.t)
                segs, radii, _names = human_capsules(kp, np.ones(33))
                pair = closest_capsule_pair(segs, radii, robot.link_segments, robot.link_radii_m)
                if pair is None:
                    continue
                min_true_m = min(min_true_m, pair.distance_m)
                if pair.distance_m <= 0.0:
                    if moving:
                        if not contact:
                            contact, contact_at = True, clock.t
                    else:
                        touch_standstill_s += 1.0 / state_rate_hz
    report = monitor.report()
    out = {
        "name": scenario.name,
        "duration_s": scenario.duration_s,
        "channels": report["channels"],
        "depth_frames": None if depth is None else depth.frames,
        "depth_released_parts": None if depth is None else depth.released_parts,
        "min_separation_m": report["min_separation_m"],
        "min_margin_m": report["min_margin_m"],
        "worst_margin": report["worst_margin"],
        "contact": contact,
        "contact_at_s": None if contact_at is None else round(contact_at, 3),
        "touch_at_standstill_s": round(touch_standstill_s, 3),
        "min_true_distance_m": None if math.isinf(min_true_m) else round(min_true_m, 4),
        "stops": report["stops"],
        "stopping": report["stopping"],
        "time_in_mode_s": report["time_in_mode_s"],
        "time_full_speed_s": round(full_speed_s, 3),
        "false_stop_s": round(false_stop_s, 3),
        "fault_stop_after_s": None if fault_stop_at is None or first_fault is None else round(fault_stop_at - first_fault, 3),
        "commands_accepted": gate.accepted,
        "commands_rejected": gate.rejected,
        "program_cycles": runner.cycles_completed,
        "payload": {"carried_s": round(carried_s, 3), "picks": picks, "places": places},
        "final_mode": None if last_state is None else last_state.mode.value,
    }
    out["failures"] = _judge(scenario, out)
    out["passed"] = not out["failures"]
    return out


def _judge(scenario: Scenario, r: dict) -> list[str]:
    e = scenario.expect
    failures = []
    if e.no_contact and r["contact"]:
        failures.append(f"contact while the robot moved at t = {r['contact_at_s']} s")
    if r["min_margin_m"] is not None and r["min_margin_m"] < e.min_margin_m:
        failures.append(f"min_margin_m {r['min_margin_m']} below {e.min_margin_m}")
    if r["stopping"]["over_bound"]:
        failures.append(f"{r['stopping']['over_bound']} stops took longer than T_r + T_s(v)")
    if e.fault_stop_within_s is not None:
        if r["fault_stop_after_s"] is None:
            failures.append("the injected fault never led to a fault stop")
        elif r["fault_stop_after_s"] > e.fault_stop_within_s:
            failures.append(f"fault stop {r['fault_stop_after_s']} s after the fault, bound {e.fault_stop_within_s} s")
    if e.robot_moved and r["commands_accepted"] == 0:
        failures.append("the program never got a command through the gate")
    if e.max_stops is not None and r["stops"] > e.max_stops:
        failures.append(f"{r['stops']} stops, at most {e.max_stops} expected "
                        f"(final mode {r['final_mode']})")
    if e.payload_placed and not (r["payload"]["picks"] and r["payload"]["places"]):
        failures.append(f"the payload was not picked and placed (picks {r['payload']['picks']}, "
                        f"places {r['payload']['places']})")
    return failures


def run_files(paths: list[Path], report_path: Path | None, out=sys.stderr) -> int:
    """`xrcell scenario`: run every file, print one line each, write the report; exit code 0/1."""
    results = []
    t0 = time.perf_counter()
    for i, path in enumerate(paths, 1):
        scenario = load_scenario(path)
        start = time.perf_counter()
        result = run_scenario(scenario)
        result["file"] = str(path)
        result["wall_s"] = round(time.perf_counter() - start, 2)
        results.append(result)
        status = "ok" if result["passed"] else "FAILED: " + "; ".join(result["failures"])
        print(f"[{i}/{len(paths)}] {scenario.name}: min_margin {result['min_margin_m']} m, "
              f"min_sep {result['min_separation_m']} m, stops {result['stops']}, "
              f"{result['wall_s']} s wall: {status}", file=out, flush=True)
    summary = summarize(results)
    summary["wall_s"] = round(time.perf_counter() - t0, 2)
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps({"summary": summary, "scenarios": results}, indent=1))
    print(json.dumps(summary), flush=True)
    return 0 if summary["failed"] == 0 else 1


def summarize(results: list[dict]) -> dict:
    """Library figures: passed/failed, the worst margin, contacts, false stops."""
    margins = [r["min_margin_m"] for r in results if r["min_margin_m"] is not None]
    return {
        "scenarios": len(results),
        "passed": sum(r["passed"] for r in results),
        "failed": sum(not r["passed"] for r in results),
        "contacts": sum(r["contact"] for r in results),
        "stops": sum(r["stops"] for r in results),
        "worst_min_margin_m": min(margins) if margins else None,
        "false_stop_s": round(sum(r["false_stop_s"] for r in results), 3),
        "simulated_s": round(sum(r["duration_s"] for r in results), 1),
    }
