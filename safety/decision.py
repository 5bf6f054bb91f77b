"""The safety decision of one monitor cycle: watchdogs, speed and separation monitoring, hysteresis.

Pure: `decide()` takes the inputs, the parameters and the memory of the previous
cycle, and returns the new `SafetyState` and memory. The thread, the clock and
the robot connection live in `safety.monitor`.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from content.cell import SafetyParameters
from robot_bridge.types import RobotState
from safety.cross_check import compare, disagreement_bound_m, disagreement_fault, occupancy_faults
from safety import kernels
from safety.directed_speed import DIRECTION_FLOOR_M, ActivePath
from safety.distance import (ARM_CAPSULE_NAMES, ARM_KEYPOINTS, _region_spans, people_capsules,
                             stacked_capsules)
from safety.occupancy import OccupancyMeasurement
from safety.perception.types import HumanTrack, PerceptionSnapshot
from safety.zones import ZoneSet, ZoneViolation
from safety.ssm import ProtectiveSeparationDistance, StoppingModel, protective_separation_distance

#: Robot speed below which the robot counts as standing still, m/s.
STANDSTILL_MPS = 0.01
#: A stamp this far ahead of the monitor's clock is a clock fault (every part of the process
#: stamps with the same monotonic clock, so anything ahead of it was not measured by it).
FUTURE_STAMP_TOLERANCE_NS = 1_000_000
#: Keypoints of the hands and arms (`safety.distance.ARM_KEYPOINTS`), as a (33,) mask.
_ARM_MASK = np.isin(np.arange(33), sorted(ARM_KEYPOINTS))
#: The speed scale is raised only when the allowed scale exceeds it by this much.
RAISE_HYSTERESIS = 0.05
#: A robot moving more than this many times faster than its active path at scale 1 is not
#: following it (another program, a jump): the directed speed falls back to the undirected one.
MAX_PATH_SPEED_RATIO = 2.0


class SafetyMode(enum.Enum):
    """What the monitor allows the robot to do.

    FULL_SPEED: no person near; the programmed speed is allowed.
    REDUCED_SPEED: a person is near; the speed scale keeps S_p within the separation.
    PROTECTIVE_STOP: a person is too close for any useful speed; the robot holds
        (ISO 10218-1 protective stop by speed scale 0, category 2). Resumes on its own once
        the separation has been restored for `resume_delay_s`.
    FAULT_STOP: an input is missing, stale or implausible, or the monitor itself
        failed; the robot is stopped per its stop category and the fault is latched
        until an authorised reset once the cause is gone. Also the start-up state
        until every input is live (not latched then).
    """

    FULL_SPEED = "full_speed"
    REDUCED_SPEED = "reduced_speed"
    PROTECTIVE_STOP = "protective_stop"
    FAULT_STOP = "fault_stop"


@dataclass(frozen=True)
class ClosestPair:
    """The closest human body part and robot link.

    Attributes:
        person: track id.
        body_part: the body capsule ("left_elbow-left_wrist").
        link: the robot capsule name.
        separation_m: surface distance, metres.
        human_point, robot_point: (3,) metres, `cell` frame.
        v_r_mps: the robot speed v_r in this pair's S_p, m/s: the link's directed speed towards
            the person over the active path's horizon (ISO/TS 15066 clause 5.5.4.2.3) when
            `v_r_directed`, else the undirected fallback (`safety.decision._ssm`).
        v_r_directed: True when `v_r_mps` is the directed speed.
    """

    person: str
    body_part: str
    link: str
    separation_m: float
    human_point: np.ndarray
    robot_point: np.ndarray
    v_r_mps: float = 0.0
    v_r_directed: bool = False


@dataclass(frozen=True)
class SafetyState:
    """The monitor's output for one cycle.

    Attributes:
        stamp_ns: monotonic time of the cycle.
        mode: see `SafetyMode`.
        speed_scale: allowed speed scale in [0, 1] sent to the robot.
        separation_m: smallest human-robot separation, metres (None: nobody tracked).
        s_p: protective separation distance at the robot's current speed (None: nobody tracked).
        closest: the closest pair (None: nobody tracked).
        reason: the decision in words.
        faults: active fault causes (empty unless FAULT_STOP).
        v_r_mps: the robot speed v_r in `s_p`, m/s (`ClosestPair.v_r_mps`: directed towards the
            closest person where the active path is known); without people, the robot's fastest
            capsule speed.
        v_h_mps: human approach speed used, m/s.
        reaction_time_s: T_r used this cycle (configured part + age of the camera data).
        latched: True when the fault stop needs an authorised reset.
        zone_violations: people inside warning, collaborative or restricted zones, and robot
            links inside keep-out zones, this cycle.
        margin_m: the smallest separation - S_p over every person and body region (the hands
            and arms at their own approach speed), metres; None when nobody is tracked. It can
            belong to another pair than `closest`.
        channels: the distance channels in force: ("skeleton",) or ("skeleton", "occupancy")
            where the cell has depth data (`safety.cross_check`).
        occupancy_separation_m: the occupancy channel's closest distance this cycle, metres
            (None: no occupancy channel, or nothing occupied near the robot).
    """

    stamp_ns: int
    mode: SafetyMode
    speed_scale: float
    separation_m: float | None
    s_p: ProtectiveSeparationDistance | None
    closest: ClosestPair | None
    reason: str
    faults: tuple[str, ...] = ()
    v_r_mps: float = 0.0
    v_h_mps: float = 0.0
    reaction_time_s: float = 0.0
    latched: bool = False
    zone_violations: tuple[ZoneViolation, ...] = ()
    margin_m: float | None = None
    channels: tuple[str, ...] = ("skeleton",)
    occupancy_separation_m: float | None = None


@dataclass(frozen=True)
class Memory:
    """What a cycle hands to the next one.

    Attributes:
        started: every input has been live at least once.
        latched_faults: fault causes waiting for a reset.
        reset_requested: an authorised reset arrived since the last cycle.
        scale: the speed scale sent last cycle.
        ssm_stop: a speed-and-separation protective stop is active.
        clear_since_ns: when the separation was last restored during an SSM stop (0: not).
        last_lower_ns: when the scale was last lowered.
        prev_cycle_ns: the previous cycle's time (0: first cycle).
        stop_commanded_ns: when the speed scale was first commanded to 0 in the current stop (0: moving).
        disagree_since_ns: when the skeleton and occupancy channels began to disagree (0: they agree).
    """

    started: bool = False
    latched_faults: tuple[str, ...] = ()
    reset_requested: bool = False
    scale: float = 0.0
    ssm_stop: bool = False
    clear_since_ns: int = 0
    last_lower_ns: int = 0
    prev_cycle_ns: int = 0
    stop_commanded_ns: int = 0
    disagree_since_ns: int = 0


def _replace(memory: Memory, **changes) -> Memory:
    """`dataclasses.replace(memory, **changes)` without its per-call field introspection (three
    to five per cycle); Memory has no `__post_init__`, so copying its fields is all it does.

    Raises:
        TypeError: a name that is not a Memory field.
    """
    if not changes.keys() <= _MEMORY_FIELDS:
        raise TypeError(f"Memory has no field {sorted(changes.keys() - _MEMORY_FIELDS)[0]!r}")
    new = object.__new__(Memory)
    new.__dict__.update(memory.__dict__)
    new.__dict__.update(changes)
    return new


_MEMORY_FIELDS = frozenset(f.name for f in fields(Memory))


def _ms(ns: int) -> float:
    return ns / 1e6


def _merge_causes(latched: tuple[str, ...], new: list[str]) -> tuple[str, ...]:
    """Latched causes plus new ones, one per kind (the text before the first colon): the
    first occurrence of each kind is kept, so a repeating fault does not grow the list."""
    kinds = {c.split(":", 1)[0] for c in latched}
    out = list(latched)
    for cause in new:
        kind = cause.split(":", 1)[0]
        if kind not in kinds:
            kinds.add(kind)
            out.append(cause)
    return tuple(out)


def stack_tracks(tracks: Sequence[HumanTrack]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tracks' arrays stacked in track order, float64: (keypoints (P, 33, 3) metres `cell`
    frame, confidence (P, 33), velocity (P, 3) m/s). Built once per cycle for the input checks
    and the body capsules.

    Raises:
        ValueError: the tracks' arrays differ in shape (np.array of the per-track arrays is
            np.stack's result, a ragged set raising in both, without its per-array checks).
    """
    return (np.array([t.keypoints_cell for t in tracks], dtype=np.float64),
            np.array([t.confidence for t in tracks], dtype=np.float64),
            np.array([t.velocity_mps for t in tracks], dtype=np.float64))


def input_faults(now_ns: int, robot: RobotState | None, perception: PerceptionSnapshot | None,
                 params: SafetyParameters, prev_cycle_ns: int,
                 stacked: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list[str]:
    """Watchdog and plausibility checks of one cycle's inputs; returns fault causes in words.
    `stacked`: `stack_tracks(perception.tracks)` when the caller has built it."""
    faults: list[str] = []
    if prev_cycle_ns and now_ns - prev_cycle_ns > params.monitor_timeout_s * 1e9:
        faults.append(f"monitor cycle overrun: {_ms(now_ns - prev_cycle_ns):.0f} ms since the last cycle")
    if prev_cycle_ns and now_ns < prev_cycle_ns:
        faults.append(f"clock jump: the monotonic clock went back {_ms(prev_cycle_ns - now_ns):.1f} ms")
    if robot is None:
        faults.append("no robot state received")
    else:
        age = now_ns - robot.stamp_ns
        if age < -FUTURE_STAMP_TOLERANCE_NS:
            faults.append(f"clock jump: robot state stamped {_ms(-age):.1f} ms in the future")
        if age > params.robot_timeout_s * 1e9:
            faults.append(f"robot state stale: {_ms(age):.0f} ms old (limit {params.robot_timeout_s * 1e3:.0f} ms)")
        if not robot.healthy:
            faults.append("robot backend reports unhealthy")
        if not (np.isfinite(robot.link_segments).all() and np.isfinite(robot.link_speeds_mps).all()):
            faults.append("robot state has non-finite values")
    if perception is None:
        faults.append("no worker tracking output received")
    else:
        age = now_ns - perception.stamp_ns
        if age < -FUTURE_STAMP_TOLERANCE_NS or any(
                t.newest_capture_ns - now_ns > FUTURE_STAMP_TOLERANCE_NS for t in perception.tracks):
            faults.append("clock jump: worker tracking stamped in the future")
        if age > params.tracker_timeout_s * 1e9:
            faults.append(f"worker tracking stale: {_ms(age):.0f} ms old")
        for cam in perception.cameras:
            if cam.optional:        # an HMI camera: its views come and go with the worker
                continue
            if cam.last_frame_ns == 0:
                faults.append(f"camera {cam.camera_id}: no frames received")
            elif cam.last_processed_ns == 0:
                faults.append(f"camera {cam.camera_id}: no frame processed yet")
            elif now_ns - cam.last_frame_ns > params.camera_timeout_s * 1e9:
                faults.append(f"camera {cam.camera_id} stale: {_ms(now_ns - cam.last_frame_ns):.0f} ms since its last frame")
        for track_id in perception.lost_track_ids:
            faults.append(f"person {track_id} lost while inside the cell")
        if perception.tracks:
            tracks = perception.tracks
            finite = kernels.tracks_finite(*(stacked or stack_tracks(tracks)))
            for track, ok in zip(tracks, finite.tolist()):
                if not ok:
                    faults.append(f"person {track.track_id}: non-finite keypoints")
    return faults


def body_capsules(perception: PerceptionSnapshot, params: SafetyParameters,
                  stacked: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list:
    """Body capsules of every track, in track order (`safety.distance.human_capsules`: per person
    (segments (H, 2, 3) metres `cell` frame, radii (H,) metres, names)); keypoints older than the
    track's frames are grown by v_h times their extra age (the distance the person may have moved
    since; the hand/arm speed for the keypoints of the upper limbs). `stacked`:
    `stack_tracks(perception.tracks)` when the caller has built it."""
    tracks = perception.tracks
    if not tracks:
        return []
    extra = None
    if any(t.keypoint_capture_ns is not None for t in tracks):
        extra = np.zeros((len(tracks), 33))      # + 0.0 leaves a radius exactly as it is
        for row, track in zip(extra, tracks):
            if track.keypoint_capture_ns is not None:
                measured = float(np.linalg.norm(track.velocity_mps))
                v_h = np.where(_ARM_MASK, max(params.hand_arm_speed_mps, measured),
                               max(params.human_speed_mps, measured))
                row[:] = v_h * np.maximum(track.capture_ns - track.keypoint_capture_ns, 0) / 1e9
    keypoints, confidence, _ = stacked or stack_tracks(tracks)
    return people_capsules(keypoints, confidence, extra_radius_m=extra)


def person_terms(track: HumanTrack, now_ns: int, params: SafetyParameters,
                 v_h_floor_mps: float | None = None) -> tuple[float, float, float]:
    """The per-person inputs of S_p for `track` at `now_ns`: (v_h m/s, T_r s, Z_d m).

    v_h is the ISO 13855 approach speed (`v_h_floor_mps`, default the walking speed
    `params.human_speed_mps`), never below the tracked speed; T_r is the configured
    reaction time plus the age of the track's oldest camera frame plus one monitor period (the
    data may wait that long for the next cycle); Z_d is the tracker's sigma, never below the
    configured floor (ISO/TS 15066 clause 5.5.4.2.3).
    """
    floor = params.human_speed_mps if v_h_floor_mps is None else v_h_floor_mps
    measured, t_r, z_d = _track_terms(track, now_ns, params)
    return max(floor, measured), t_r, z_d


def _track_terms(track: HumanTrack, now_ns: int, params: SafetyParameters) -> tuple[float, float, float]:
    """`person_terms` before the v_h floor: (tracked speed m/s, T_r s, Z_d m)."""
    velocity = np.asarray(track.velocity_mps, dtype=np.float64)
    age_s = max(0.0, (now_ns - track.capture_ns) / 1e9) + 1.0 / params.rate_hz
    return (math.sqrt(float(velocity.dot(velocity))),     # np.linalg.norm's value
            params.reaction_time_s + age_s, max(params.human_uncertainty_m, track.sigma_m))


@functools.lru_cache(maxsize=128)
def _arm_split(names: tuple[str, ...]) -> tuple[tuple[np.ndarray, tuple[str, ...], bool], ...]:
    """A person's capsule names split into hands/arms and the rest: ((indices, names, is_arm), ...),
    the hands and arms first, a part left out when empty. Cached: the names repeat from cycle to
    cycle (they change only when a limb's tracking comes or goes)."""
    arm = np.fromiter((n in ARM_CAPSULE_NAMES for n in names), dtype=bool, count=len(names))
    out = []
    for mask, is_arm in ((arm, True), (~arm, False)):
        if mask.any():
            index = np.flatnonzero(mask)
            index.setflags(write=False)
            out.append((index, tuple(n for n, m in zip(names, mask) if m), is_arm))
    return tuple(out)


@functools.lru_cache(maxsize=128)
def _region_plan(names: tuple[tuple[str, ...], ...]
                 ) -> tuple[np.ndarray, tuple[tuple[int, int, int, tuple[str, ...], bool], ...]]:
    """For people whose capsules are named `names` (per person, in order): the row order that
    puts each person's hands/arms, then the rest, after one another (`_arm_split`'s parts, an
    index into the people's capsules stacked in order), and per part (person, first row,
    end row, names, is_arm) in that order. Cached: the names repeat from cycle to cycle."""
    index, parts, offset, row = [], [], 0, 0
    for person, person_names in enumerate(names):
        for part_index, part_names, is_arm in _arm_split(person_names):
            index.append(part_index + offset)
            parts.append((person, row, row + len(part_names), part_names, is_arm))
            row += len(part_names)
        offset += len(person_names)
    order = np.concatenate(index) if index else np.zeros(0, dtype=np.int64)
    order.setflags(write=False)
    return order, tuple(parts)


class _Regions(list):
    """`_body_regions`' list, which also holds its capsules stacked in region order: `segments`
    (H, 2, 3) and `radii` (H,), metres, each region's arrays a row span (view) of them, so `_ssm`
    hands them to its kernel without stacking them again."""

    def __init__(self, regions: list, segments: np.ndarray, radii: np.ndarray) -> None:
        super().__init__(regions)
        self.segments = segments
        self.radii = radii


def _body_regions(perception: PerceptionSnapshot, capsules: list, params: SafetyParameters) -> list:
    """Each person's capsules split into hands/arms and the rest, each with its v_h floor:
    [(track, v_h floor m/s, (segments, radii, names))] (ISO 13855 clause 6.2.3). The parts are
    cut from one reordered copy of all capsules (`_region_plan`), not indexed one by one."""
    if not capsules:
        return []
    order, parts = _region_plan(tuple(c[2] for c in capsules))
    if not parts:
        return []
    segs, radii = stacked_capsules(capsules)
    segs, radii = segs[order], radii[order]
    tracks, arm_floor, body_floor = perception.tracks, params.hand_arm_speed_mps, params.human_speed_mps
    return _Regions([(tracks[person], arm_floor if is_arm else body_floor,
                      (segs[start:end], radii[start:end], names))
                     for person, start, end, names, is_arm in parts], segs, radii)


def _occupancy_regions(occupancy: OccupancyMeasurement, params: SafetyParameters) -> list:
    """The occupancy channel's voxels as one body region (`_body_regions`' shape): a body of unknown
    identity and speed, so its v_h floor is the ISO 13855 hand/arm speed, its Z_d one voxel, and
    each voxel a sphere of the voxel's half diagonal around its centre."""
    voxels = occupancy.voxels
    if voxels.shape[0] == 0:
        return []
    track = HumanTrack("occupancy", np.full((33, 3), np.nan), np.zeros(33), np.zeros(3), occupancy.uncertainty_m,
                       occupancy.capture_ns, occupancy.capture_ns, ("depth",))
    segments = np.repeat(voxels[:, None, :], 2, axis=1)
    radii = np.full(voxels.shape[0], occupancy.voxel_size_m * math.sqrt(3.0) / 2.0)
    return [(track, params.hand_arm_speed_mps, (segments, radii, ("voxel",) * voxels.shape[0]))]


def _combine(a: tuple, b: tuple) -> tuple:
    """Two `_ssm` results as one: the closer `closest`, the smaller-margin `binding`, the smaller
    allowed scale (the stricter channel wins)."""
    closest = min((e for e in (a[0], b[0]) if e is not None), key=lambda e: e[0], default=None)
    binding = min((e for e in (a[1], b[1]) if e is not None), key=lambda e: e[0] - e[2].total_m, default=None)
    return closest, binding, min(a[2], b[2]), a[3]


def _path_window(robot: RobotState, path: ActivePath | None, horizon_s: float, command_scale: float,
                 n_links: int) -> tuple[np.ndarray, float] | None:
    """The window of the active path the robot can cover within `horizon_s`, and the factor k
    that turns the path's speeds at scale 1 into the robot's now (its measured speed over its
    path's speed at scale 1 there: below the speed scale while it accelerates, above it while it
    still slows down to a lowered scale). None when the path does not explain the robot's motion:
    no path, another goal, the robot off the path, a path of another robot model, or a robot
    moving much faster than its path (the caller then uses the undirected speed)."""
    if path is None or robot.goal_id != path.goal_id or path.link_segments.shape[1] != n_links:
        return None
    here = path.progress(robot.position)
    if here is None:
        return None
    moving = robot.max_speed_mps
    path_speed = float(path.speeds[max(here - 1, 0):here + 2].max())
    if moving > STANDSTILL_MPS and (path_speed <= 1e-6 or moving / path_speed > MAX_PATH_SPEED_RATIO):
        return None
    k = moving / path_speed if path_speed > 1e-6 else 0.0
    if not math.isfinite(k):
        return None
    # the robot covers path time at most at max(scale, k) per second: the window in path time
    return path.window(here, horizon_s * max(1.0, k, command_scale, robot.speed_scale)), k


def _ssm(now_ns: int, robot: RobotState, regions: list,
         params: SafetyParameters, stopping: StoppingModel, nominal_speed_mps: float, stop_commanded_ns: int,
         path: ActivePath | None = None, command_scale: float = 0.0):
    """Separation, S_p and the allowed scale over all body regions (`_body_regions`) and links.

    Every person counts twice: the hands and arms approach at `hand_arm_speed_mps`, the rest
    of the body at `human_speed_mps` (ISO 13855 clause 6.2.3), each never below the tracked
    speed. Every robot link counts on its own with its own v_r, the directed speed of the link
    towards the body region's closest point (ISO/TS 15066 clause 5.5.4.2.3, `safety.directed_speed`):
    over the window of the active `path` the robot can cover within T_r + T_s, at scale 1 for
    the allowed scale (v_max(d) / v_r), and times the ratio of the robot's measured speed to its
    path's speed there for S_p at its actual speed (the rule the robot must keep now). Without
    a path that explains the robot's motion, v_r is undirected: `nominal_speed_mps` for the
    allowed scale and the robot's fastest capsule speed for S_p; for a link closer than
    `DIRECTION_FLOOR_M` it is the link's fastest speed over the window (times the same ratio).

    Returns (closest, binding, allowed scale, v_r): `closest` is the entry with the smallest
    separation (what the twin and the report show), `binding` the one with the smallest
    separation - S_p (what the rule at the robot's actual speed tests); each entry is
    (separation m, ClosestPair, S_p terms, v_h m/s, T_r s), or None without people; v_r is
    the robot's fastest capsule speed (whether it moves at all). Per region, the candidates are
    the link at the smallest separation and the link at the smallest separation - S_p; among
    all candidates (regions in order, links ascending) the first smallest wins both choices.

    While a stop commanded `stop_commanded_ns` is under way, S_p (not the allowed speed)
    counts only what is left of the reaction and braking latency: the part of T_r and
    t_d that has already passed since the stop was commanded is behind the robot
    (ISO/TS 15066 clause 5.5.4.2.3: T_r and T_s run from the detection to standstill).

    Compiled over regions x links (R x K), in one call (`safety.kernels.ssm_regions`): the
    distance pass (`closest_pairs_per_link`) and the pass for the directed speeds, the limits
    and S_p (`ssm_links`), with the same operations, in the same order, as the scalar formulas
    of `safety.ssm`, so the result is the one a per-region loop gives bit for bit.
    """
    v_robot = robot.max_speed_mps
    # the regions' capsules stacked in order, each region a span of rows (a region without
    # capsules adds none)
    stacked = (regions.segments, regions.radii) if isinstance(regions, _Regions) else None
    regions = [r for r in regions if len(r[2][1])]
    n_links = robot.link_segments.shape[0]
    if not regions or n_links == 0:
        return None, None, 1.0, v_robot
    per_track: dict[int, tuple[float, float, float]] = {}      # a person's regions share these
    terms = []
    for track, floor, _ in regions:
        measured, t_r_s, z_d_m = per_track.get(id(track)) or per_track.setdefault(
            id(track), _track_terms(track, now_ns, params))
        terms.append((max(floor, measured), t_r_s, z_d_m))      # `person_terms`
    v_h, t_r, z_d = (np.array(column, dtype=np.float64) for column in zip(*terms))     # (R,) each
    s_p_stopping, s_p_t_r = stopping, t_r
    if stop_commanded_ns:
        elapsed_s = (now_ns - stop_commanded_ns) / 1e9
        remaining_s = max(0.0, params.reaction_time_s + stopping.latency_s - elapsed_s)
        s_p_stopping = StoppingModel(0.0, stopping.deceleration_mps2)
        s_p_t_r = t_r - params.reaction_time_s + remaining_s
    found = None
    if path is not None:
        horizon_s = float(t_r.max()) + stopping.stopping_time_s(max(nominal_speed_mps, v_robot))
        found = _path_window(robot, path, horizon_s, command_scale, n_links)
    # the kernel's signature is fixed (float64 scalars): an int from a caller must not reach it
    constants = tuple(float(x) for x in (
        params.separation_buffer_m, params.intrusion_distance_m, params.robot_uncertainty_m,
        stopping.deceleration_mps2, stopping.latency_s, s_p_stopping.latency_s,
        s_p_stopping.deceleration_mps2, DIRECTION_FLOOR_M, 0.0))
    if found is None:
        path_args: tuple = (False, *_NO_PATH, 0.0)
    else:
        window, k = found
        path_args = (True, *(np.ascontiguousarray(a, dtype=np.float64) for a in (
            path.points_xyz, path.velocities_xyz, path.point_speeds, path.speeds)),
            np.ascontiguousarray(window, dtype=np.int64), float(k))
    if stacked is None:
        stacked = (np.concatenate([r[2][0] for r in regions]),
                   np.concatenate([r[2][1] for r in regions]))
    starts, sizes = _region_spans(tuple(len(r[2][1]) for r in regions))
    (allowed_scale, links, v_actual, is_directed, closest_at, binding_at, valid,
     distance_m, human_index, human_point, robot_point) = kernels.ssm_regions(
        *stacked, starts, sizes, np.ascontiguousarray(robot.link_segments, dtype=np.float64),
        np.ascontiguousarray(robot.link_radii_m, dtype=np.float64), v_h, t_r, z_d, s_p_t_r, constants,
        *path_args, float(nominal_speed_mps), float(v_robot))
    c, z_r = params.intrusion_distance_m, params.robot_uncertainty_m
    if not valid:
        for r, k_link in zip(np.arange(len(regions)).repeat(2), links.ravel()):   # the first bad one raises
            protective_separation_distance(v_r_mps=float(v_actual[r, k_link]), v_h_mps=float(v_h[r]),
                                           reaction_time_s=float(s_p_t_r[r]), stopping=s_p_stopping,
                                           intrusion_distance_m=c, z_d_m=float(z_d[r]), z_r_m=z_r)

    def entry(flat: int) -> tuple:
        r, k_link = divmod(flat, 2)
        k_link = int(links[r, k_link])
        (track, _, (_, _, names)), v_r = regions[r], float(v_actual[r, k_link])
        s_p = protective_separation_distance(v_r_mps=v_r, v_h_mps=terms[r][0], reaction_time_s=float(s_p_t_r[r]),
                                             stopping=s_p_stopping, intrusion_distance_m=c, z_d_m=terms[r][2],
                                             z_r_m=z_r)
        sep = float(distance_m[r, k_link])
        pair_info = ClosestPair(track.track_id, names[int(human_index[r, k_link])], robot.link_names[k_link],
                                sep, human_point[r, k_link].copy(), robot_point[r, k_link].copy(),
                                v_r, bool(is_directed[r, k_link]))
        return sep, pair_info, s_p, terms[r][0], terms[r][1]

    closest_entry = entry(closest_at)
    binding = closest_entry if binding_at == closest_at else entry(binding_at)
    return closest_entry, binding, allowed_scale, v_robot


#: The path arguments of `kernels.ssm_links` without a path (read only by a directed call).
_NO_PATH = (np.zeros((3, 0, 0, 0)), np.zeros((3, 0, 0, 0)), np.zeros((0, 0, 0)), np.zeros((0, 0)),
            np.zeros(0, dtype=np.int64))


def decide(now_ns: int, robot: RobotState | None, perception: PerceptionSnapshot | None,
           params: SafetyParameters, stopping: StoppingModel, nominal_speed_mps: float,
           memory: Memory, zones: ZoneSet | None = None,
           extra_faults: Sequence[str] = (), occupancy_channel: bool = False,
           occupancy: OccupancyMeasurement | None = None,
           path: ActivePath | None = None) -> tuple[SafetyState, Memory]:
    """One monitor cycle.

    Args:
        now_ns: monotonic time of this cycle.
        robot: the newest robot state (None if none arrived).
        perception: the newest tracking snapshot (None if none arrived).
        params: the cell's safety parameters.
        stopping: the robot's stopping model for its protective stop category.
        nominal_speed_mps: the robot's largest programmed speed at scale 1, m/s; the
            allowed speed divided by it is the allowed scale.
        memory: from the previous cycle (`Memory()` at start).
        zones: the zones in force (None: no zones). A person in a restricted zone is a
            protective stop; a robot link in a keep-out zone is a latched fault stop.
        extra_faults: fault causes found by the caller (e.g. an unhealthy safety output).
        occupancy_channel: the cell has depth data: `occupancy` is the second, diverse channel,
            cross-checked against the skeleton channel (`safety.cross_check`); a missing or stale
            measurement is a fault.
        occupancy: the newest occupancy measurement (None if none arrived).
        path: the trajectory the gate forwarded last (`CommandGate.active_path`): where the
            robot runs it, v_r is the directed speed over it (`_ssm`); None: undirected speed.

    Returns:
        (state, memory for the next cycle). Never raises for bad inputs: they are faults.
    """
    # the tracks' arrays, stacked once for the input checks and the body capsules
    stacked = (stack_tracks(perception.tracks) if perception is not None and perception.tracks
               else None)
    faults = input_faults(now_ns, robot, perception, params, memory.prev_cycle_ns, stacked) + list(
        extra_faults)
    channels = ("skeleton", "occupancy") if occupancy_channel else ("skeleton",)
    if occupancy_channel:
        faults += occupancy_faults(now_ns, occupancy, params)
    mem = _replace(memory, prev_cycle_ns=now_ns)
    violations: tuple[ZoneViolation, ...] = ()
    capsules = body_capsules(perception, params, stacked=stacked) if not faults else []
    if zones is not None and len(zones) and not faults:
        violations = zones.people_violations(perception.tracks, capsules) + zones.robot_violations(
            robot.link_segments, robot.link_radii_m, robot.link_names)
        faults = [f"robot keep-out zone {v.zone}: {v.part} inside" for v in violations
                  if v.kind == "robot_keep_out"]
    ssm = None
    occupancy_m = None
    if not faults:
        stop_ns = mem.stop_commanded_ns if mem.scale == 0.0 else 0
        ssm = _ssm(now_ns, robot, _body_regions(perception, capsules, params), params, stopping,
                   nominal_speed_mps, stop_ns, path, mem.scale)
        if occupancy_channel:
            occ = _ssm(now_ns, robot, _occupancy_regions(occupancy, params), params, stopping, nominal_speed_mps,
                       stop_ns, path, mem.scale)
            occupancy_m = None if occ[0] is None else occ[0][0]
            skeleton_m = None if ssm[0] is None else ssm[0][0]
            z_d = max([params.human_uncertainty_m] + [t.sigma_m for t in perception.tracks])
            newest = max((t.capture_ns for t in perception.tracks), default=None)
            comparison = compare(skeleton_m, occupancy_m, disagreement_bound_m(params, z_d, occupancy, newest), params)
            fault, since = disagreement_fault(now_ns, comparison, mem.disagree_since_ns, params)
            mem = _replace(mem, disagree_since_ns=since)
            if fault:
                faults.append(fault)
            ssm = _combine(ssm, occ)
    else:
        mem = _replace(mem, disagree_since_ns=0)

    def stop(reason: str, latched: bool, found: list[str]) -> tuple[SafetyState, Memory]:
        return (SafetyState(now_ns, SafetyMode.FAULT_STOP, 0.0, None, None, None, reason, tuple(found),
                            latched=latched, zone_violations=violations, channels=channels,
                            occupancy_separation_m=occupancy_m),
                _replace(mem, scale=0.0, ssm_stop=False, clear_since_ns=0, reset_requested=False))

    if not mem.started:
        if faults:
            return stop("starting up, waiting for: " + "; ".join(faults), False, faults)
        mem = _replace(mem, started=True)
    if faults or mem.latched_faults:
        latched = _merge_causes(mem.latched_faults, faults)
        if mem.reset_requested and not faults:
            mem = _replace(mem, latched_faults=(), reset_requested=False, scale=0.0, ssm_stop=True,
                          clear_since_ns=0)
        else:
            mem = _replace(mem, latched_faults=latched)
            why = "; ".join(faults) if faults else "cause gone, reset required: " + "; ".join(latched)
            state, mem2 = stop(f"fault stop: {why}", True, list(latched))
            return state, _replace(mem2, latched_faults=latched)

    best, binding, allowed, v_r = ssm  # type: ignore[misc]
    # The rule itself (ISO/TS 15066 clause 5.5.4.2.3): a moving robot must keep S >= S_p at
    # its *actual* speed. The allowed scale keeps it there in steady state; while the robot
    # is still slowing down to a lowered scale (or a person closed in faster than expected),
    # it may not: then the robot stops, whatever the allowed scale says.
    violated = binding is not None and v_r > STANDSTILL_MPS and binding[0] < binding[2].total_m
    restricted = [v for v in violations if v.kind == "restricted"]
    if allowed < params.min_speed_scale or violated or restricted:
        target = 0.0
        if restricted:
            v = restricted[0]
            reason = f"protective stop: person {v.subject} ({v.part}) in restricted zone {v.zone}"
        elif mem.ssm_stop:
            reason = "protective stop held: person too close"
        elif violated:
            what = "occupancy channel voxel" if binding[1].person == "occupancy" else binding[1].body_part
            reason = (f"protective stop: separation {binding[0]:.3f} m ({what}) below the "
                      f"protective separation distance {binding[2].total_m:.3f} m at the robot's "
                      f"{'directed ' if binding[1].v_r_directed else ''}speed {binding[1].v_r_mps:.2f} m/s "
                      f"({binding[1].link})")
        else:
            reason = "protective stop: separation below the protective separation distance"
        mem = _replace(mem, ssm_stop=True, clear_since_ns=0, last_lower_ns=now_ns)
    elif mem.ssm_stop:
        clear_since = mem.clear_since_ns or now_ns
        if now_ns - clear_since >= params.resume_delay_s * 1e9:
            target = allowed
            mem = _replace(mem, ssm_stop=False, clear_since_ns=0)
            reason = "resuming: separation restored"
        else:
            target = 0.0
            mem = _replace(mem, clear_since_ns=clear_since)
            reason = f"protective stop: separation restored, resuming after {params.resume_delay_s:.1f} s"
    elif allowed < mem.scale:
        target = allowed
        mem = _replace(mem, last_lower_ns=now_ns)
        reason = "reduced speed: person approaching"
    elif allowed > mem.scale + RAISE_HYSTERESIS and now_ns - mem.last_lower_ns >= params.raise_dwell_s * 1e9:
        target = allowed
        reason = "speed raised: separation increased"
    else:
        target = mem.scale
        reason = "holding speed"
    if mem.ssm_stop:
        mode = SafetyMode.PROTECTIVE_STOP
    elif target >= 0.999:
        mode, target = SafetyMode.FULL_SPEED, 1.0
        if best is None:
            reason = "full speed: nobody tracked in the cell"
        elif reason == "holding speed":
            reason = "full speed: separation above the protective separation distance"
    else:
        mode = SafetyMode.REDUCED_SPEED
    stop_ns = (mem.stop_commanded_ns or now_ns) if target == 0.0 and mem.scale == 0.0 else (
        now_ns if target == 0.0 else 0)
    mem = _replace(mem, scale=target, stop_commanded_ns=stop_ns)
    if best is None:
        return SafetyState(now_ns, mode, target, None, None, None, reason, v_r_mps=v_r,
                           zone_violations=violations, channels=channels), mem
    separation, closest, s_p, v_h, t_r = best
    margin = binding[0] - binding[2].total_m  # type: ignore[index]
    return (SafetyState(now_ns, mode, target, separation, s_p, closest, reason, v_r_mps=closest.v_r_mps, v_h_mps=v_h,
                        reaction_time_s=t_r, zone_violations=violations, margin_m=margin, channels=channels,
                        occupancy_separation_m=occupancy_m), mem)
