"""`xrcell occupancy learn`: the occupancy channel's static background, learned over a run of the
robot's program in simulation.

The cell's program (or `--program FILE`, a `PickAndPlace` mapping) is planned for the cell's
robot exactly as `xrcell serve` plans it; its joint trajectories are sampled at the depth
camera's rate; every sample places the robot's link capsules (`PandaLinkKinematics`) and the
simulated depth camera of `xr_server.scenario_depth` renders the floor and the robot from the
cell's depth camera pose and intrinsics; `safety.occupancy.BackgroundLearner` self-filters each
frame and accumulates the background voxels. The result is the `.npz` the cell's
`perception.depth.background` names.

What the simulation knows of the cell is its floor and its robot: fixtures (tables, fences)
are not in it. `xrcell occupancy learn CELL --from-depth [--duration-s 60]` learns them from the
cell's real depth input (`perception.depth`: ply_sequence, depth_images or realsense) while the
robot runs (`learn_from_depth`): the cell is composed as `xrcell serve` composes it (robot,
worker tracking, gate, monitor, program), every depth frame is self-filtered with the robot's
link capsules in the robot state nearest to the frame's capture (as the monitor's occupancy
channel self-filters), and learning is refused as soon as the skeleton channel sees a person (a person
must not become background) or the robot state is stale (the self-filter would miss the robot).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import yaml
from pydantic import ValidationError

from content.cell import CellDescription, PickAndPlace
from content.errors import CellDescriptionError
from robot_bridge.types import RobotState
from safety.occupancy import BackgroundLearner, BackgroundModel
from safety.perception.depth import DepthCamera, points_from_depth
from safety.perception.depth_input import DepthSource, save_background
from safety.perception.types import PerceptionSnapshot
from safety.placed_mask import PlacedObjectMask
from xr_server.errors import XrServerError


def load_program(path: Path) -> PickAndPlace:
    """Read a program file: a `PickAndPlace` mapping (`pick`, `place`, `approach_height_m`,
    `box_size_m`), or a cell file whose `program` block is used.

    Raises:
        CellDescriptionError: missing file, not YAML, or a bad field (named).
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CellDescriptionError(f"{path}: cannot read program: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CellDescriptionError(f"{path}: not valid YAML: {exc}") from None
    if isinstance(data, dict) and "program" in data:
        data = data["program"]
    try:
        return PickAndPlace.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "program"
        raise CellDescriptionError(f"{path.name}: {where}: {err['msg']}") from None


def depth_camera_of(cell: CellDescription) -> DepthCamera:
    """The cell's depth camera as the simulation renders it.

    Raises:
        XrServerError: the cell has no `perception.depth`, or one without intrinsics and pose
            (only `depth_images` gives both in the cell file).
    """
    from xr_server.compose import cell_from_camera

    depth = cell.perception.depth
    if depth is None:
        raise XrServerError(f"cell {cell.name!r}: no perception.depth block: nothing to learn a background for")
    if depth.intrinsics is None or depth.pose is None:
        raise XrServerError(f"cell {cell.name!r}: perception.depth: learning in simulation renders the depth "
                            f"camera from its intrinsics and pose; source {depth.source} gives "
                            f"{'no intrinsics' if depth.intrinsics is None else 'no pose'}")
    k = depth.intrinsics
    intrinsic = np.array([[k.fx, 0.0, k.cx], [0.0, k.fy, k.cy], [0.0, 0.0, 1.0]])
    return DepthCamera(k.width_px, k.height_px, intrinsic, cell_from_camera(depth.pose), depth.max_depth_m)


def program_samples(cell: CellDescription, program: PickAndPlace, rate_hz: float) -> np.ndarray:
    """Joint positions of one run of `program`, sampled every 1/`rate_hz` s: (M, 7) radians.

    Raises:
        CommandError: the program is out of the robot's reach.
    """
    from robot_bridge.sim import plan_pick_and_place
    from robot_bridge.types import JointTrajectory

    times, rows, t0 = [], [], 0.0
    for command in plan_pick_and_place(cell.robot, program):
        if isinstance(command, JointTrajectory):
            times.append(t0 + np.asarray(command.time_from_start_s))
            rows.append(np.asarray(command.positions))
            t0 = float(times[-1][-1])
    t = np.concatenate(times)
    q = np.concatenate(rows)
    t, first = np.unique(t, return_index=True)
    q = q[first]
    grid = np.arange(0.0, t[-1] + 1e-9, 1.0 / rate_hz)
    return np.stack([np.interp(grid, t, q[:, j]) for j in range(q.shape[1])], axis=1)


def learn_in_simulation(cell: CellDescription, program: PickAndPlace, *, rate_hz: float = 10.0,
                        min_frames: int = 2, noise_m: float = 0.002, seed: int = 0,
                        progress: Callable[[int, int], None] | None = None) -> tuple[BackgroundModel, dict]:
    """Learn the background of `cell` over one run of `program` in simulation.

    Args:
        cell: the cell (its robot and `perception.depth`: camera, voxel size, self margin).
        program: the program the robot runs.
        rate_hz: depth frames per second of program time.
        min_frames: see `BackgroundLearner`.
        noise_m: depth noise of the simulated camera (1 sigma), metres.
        seed: the noise's random seed.
        progress: called with (frames done, frames in all) after every frame.

    Returns:
        (the background model, figures: frames, program_s, voxels).

    Raises:
        XrServerError: the cell's depth camera cannot be rendered.
        CommandError: the program is out of reach.
    """
    from robot_bridge.sim import PandaLinkKinematics
    from xr_server.scenario_depth import SimulatedDepthCamera

    camera = depth_camera_of(cell)
    voxel_size_m, self_margin_m = 0.05, 0.05
    if cell.perception.depth is not None:           # always, depth_camera_of refuses a cell without
        voxel_size_m, self_margin_m = cell.perception.depth.voxel_size_m, cell.perception.depth.self_margin_m
    samples = program_samples(cell, program, rate_hz)
    sim = SimulatedDepthCamera(camera, noise_m, np.random.default_rng(seed))
    learner = BackgroundLearner(voxel_size_m, self_margin_m, min_frames=min_frames)
    kin = PandaLinkKinematics(cell.robot)
    try:
        segments = kin.link_segments(samples)
        radii = kin.link_radii_m
    finally:
        kin.close()
    for i, seg in enumerate(segments):
        learner.add(points_from_depth(sim.render([(seg, radii)]), camera), seg, radii)
        if progress is not None:
            progress(i + 1, len(segments))
    model = learner.model()
    return model, {"frames": learner.frames, "program_s": round((len(samples) - 1) / rate_hz, 2),
                   "voxels": len(model)}


def run_learn(cell_path: Path, out: Path, program_path: Path | None = None, rate_hz: float = 10.0,
              min_frames: int = 2, stream: TextIO | None = None) -> int:
    """The `xrcell occupancy learn` command: learn, write `out`, print progress to `stream`.

    Raises:
        CellDescriptionError, XrServerError, CommandError: see `learn_in_simulation`; also a
            cell without a program when no `--program` is given.
    """
    from content.cell import load_cell

    stream = sys.stderr if stream is None else stream
    cell = load_cell(cell_path)
    program = load_program(program_path) if program_path is not None else cell.program
    if program is None:
        raise XrServerError(f"cell {cell.name!r} has no program: give one with --program FILE")
    last = [-1]

    def progress(done: int, total: int) -> None:
        pct = 100 * done // total
        if pct // 10 != last[0] // 10 or done == total:
            last[0] = pct
            print(f"xrcell: learning the background: frame {done}/{total} ({pct} %)", file=stream, flush=True)

    model, figures = learn_in_simulation(cell, program, rate_hz=rate_hz, min_frames=min_frames,
                                         progress=progress)
    save_background(model, out)
    print(f"xrcell: background of {figures['voxels']} voxels from {figures['frames']} frames over "
          f"{figures['program_s']} s of the program written to {out}", file=stream, flush=True)
    return 0


def learn_from_depth(source: DepthSource, robot_source: Callable[[], RobotState | None],
                     people_source: Callable[[], PerceptionSnapshot | None], *, duration_s: float,
                     fps: float, robot_timeout_s: float, tracker_timeout_s: float,
                     voxel_size_m: float = 0.05, self_margin_m: float = 0.05, min_frames: int = 2,
                     placed_mask: Any = PlacedObjectMask(),
                     clock: Callable[[], int] = time.monotonic_ns,
                     sleep: Callable[[float], None] = time.sleep,
                     progress: Callable[[float, int], None] | None = None
                     ) -> tuple[BackgroundModel, dict]:
    """Learn the background from a live depth source while the robot runs.

    Every 1/`fps` s a frame is read (its capture time: the read), the robot state nearest to the
    capture (the newest before it, or the first after it, `_state_at`) self-filters it, and it
    is added to a `BackgroundLearner`; before each frame
    the skeleton channel's newest snapshot must show nobody. Runs `duration_s` of the clock, or
    until a file sequence without loop ends.

    Args:
        source: the depth frames (opened and closed here).
        robot_source: the robot's newest state; must not block.
        people_source: the skeleton channel's newest snapshot; must not block.
        duration_s: how long to learn, seconds (> 0).
        fps: frames per second (> 0).
        robot_timeout_s: no robot state within this of a frame's capture (or an unhealthy one,
            or none at all) refuses the learning, seconds.
        tracker_timeout_s: a snapshot older than this (or none) refuses the learning: nobody can
            say the cell is empty, seconds.
        voxel_size_m, self_margin_m, min_frames, placed_mask: see `BackgroundLearner` (the
            cell's `perception.depth`).
        clock: monotonic clock, ns. sleep: waits, seconds (tests pass a simulated pair).
        progress: called with (seconds learned, frames) after every frame.

    Returns:
        (the background model, figures: frames, duration_s, voxels, robot_travel_m (how far the
        TCP moved over the frames: 0 means the robot did not run)).

    Raises:
        XrServerError: a person was seen, the robot state or the snapshot is stale, or no frame
            was read; the message says which and when.
        PerceptionError: the source cannot be opened or a frame cannot be read.
    """
    if not (duration_s > 0 and fps > 0):
        raise XrServerError(f"learning from depth: duration_s and fps must be > 0, "
                            f"got {duration_s}, {fps}")
    learner = BackgroundLearner(voxel_size_m, self_margin_m, min_frames=min_frames,
                                placed_mask=placed_mask)
    period_ns, duration_ns = int(1e9 / fps), int(duration_s * 1e9)
    robot_timeout_ns, tracker_timeout_ns = int(robot_timeout_s * 1e9), int(tracker_timeout_s * 1e9)
    travel, last_tcp = 0.0, None
    source.open()
    try:
        start = clock()
        next_ns = start
        while clock() - start < duration_ns:
            at = f"after {(clock() - start) / 1e9:.1f} s and {learner.frames} frames"
            snapshot = people_source()
            now = clock()
            if snapshot is None or now - snapshot.stamp_ns > tracker_timeout_ns:
                raise XrServerError(f"learning refused {at}: the skeleton channel is stale (no "
                                    f"tracking snapshot within {tracker_timeout_s:g} s), so nobody "
                                    f"can tell the cell is empty")
            seen = [t.track_id for t in snapshot.tracks] + list(snapshot.lost_track_ids)
            if seen:
                raise XrServerError(f"learning refused {at}: the skeleton channel sees a person "
                                    f"({', '.join(seen)}) in the cell; a person must not become "
                                    f"background: clear the cell and learn again")
            before = robot_source()
            capture_ns = clock()
            points = source.read()
            if points is None:  # a file sequence without loop ended
                break
            robot = _state_at(capture_ns, before, robot_source, robot_timeout_ns, clock, sleep)
            if robot is None or not robot.healthy \
                    or abs(robot.stamp_ns - capture_ns) > robot_timeout_ns:
                if robot is None:
                    why = "no robot state"
                elif not robot.healthy:
                    why = "an unhealthy robot state"
                else:
                    why = (f"the nearest robot state {abs(robot.stamp_ns - capture_ns) / 1e6:.0f} "
                           f"ms away")
                raise XrServerError(f"learning refused {at}: {why} at the frame's capture (bound "
                                    f"{robot_timeout_s:g} s): the robot could not be filtered out")
            learner.add(points, robot.link_segments, robot.link_radii_m, robot.placed_objects,
                        robot.stamp_ns)
            tcp = robot.tcp_position
            if last_tcp is not None:
                travel += float(((tcp - last_tcp) ** 2).sum() ** 0.5)
            last_tcp = tcp
            if progress is not None:
                progress((clock() - start) / 1e9, learner.frames)
            next_ns += period_ns
            delay = next_ns - clock()
            if delay > 0:
                sleep(delay / 1e9)
            else:
                next_ns = clock()
    finally:
        source.close()
    if learner.frames == 0:
        raise XrServerError("learning from depth: no depth frame was read")
    model = learner.model()
    return model, {"frames": learner.frames, "duration_s": round((clock() - start) / 1e9, 2),
                   "voxels": len(model), "robot_travel_m": round(travel, 3)}


def _state_at(capture_ns: int, before: RobotState | None,
              robot_source: Callable[[], RobotState | None], timeout_ns: int,
              clock: Callable[[], int], sleep: Callable[[float], None]) -> RobotState | None:
    """The robot state nearest to a frame's capture: `before` (the newest at the capture) or the
    first one stamped at or after it, waited for up to `timeout_ns` past the capture (a robot
    thread that publishes late under load); None without any state."""
    after = robot_source()
    while (after is None or after.stamp_ns < capture_ns) and clock() - capture_ns < timeout_ns:
        sleep(0.002)
        after = robot_source()
    found = [s for s in (before, after) if s is not None]
    return min(found, key=lambda s: abs(s.stamp_ns - capture_ns)) if found else None


#: How long `run_learn_from_depth` waits for the cell's first robot state and tracking snapshot, s.
STARTUP_TIMEOUT_S = 60.0


def run_learn_from_depth(cell_path: Path, out: Path, *, duration_s: float = 60.0,
                         robot: str | None = None, min_frames: int = 2,
                         stream: TextIO | None = None) -> int:
    """`xrcell occupancy learn CELL --from-depth`: run the cell (robot and program, worker tracking,
    gate and monitor with the skeleton channel alone), learn from its depth input, write `out`.

    Raises:
        XrServerError: no `perception.depth`, a refusal of `learn_from_depth`, or the cell did not
            deliver a robot state and a tracking snapshot within `STARTUP_TIMEOUT_S`.
        CellDescriptionError, BridgeError, PerceptionError: the cell cannot be built or started.
    """
    from content.cell import load_cell
    from xr_server.compose import build_cell, depth_source, placed_object_mask, start_cell

    stream = sys.stderr if stream is None else stream
    cell = load_cell(cell_path)
    depth = cell.perception.depth
    if depth is None:
        raise XrServerError(f"cell {cell.name!r}: no perception.depth block: nothing to learn a "
                            f"background for")
    # The monitor runs the skeleton channel alone: an occupancy channel without this background
    # would see the fixtures, disagree with the skeletons and stop the robot.
    skeleton_only = cell.perception.model_copy(update={"depth": None})
    running = build_cell(cell.model_copy(update={"perception": skeleton_only}), robot=robot)
    if not cell.cameras:
        print("xrcell: warning: the cell has no cameras, so no person check: keep everyone out of "
              "the cell", file=stream, flush=True)
    last = [-1]

    def progress(done_s: float, frames: int) -> None:
        pct = min(100, int(100 * done_s / duration_s))
        if pct // 10 != last[0] // 10:
            last[0] = pct
            print(f"xrcell: learning the background from depth: {done_s:.1f}/{duration_s:g} s, "
                  f"{frames} frames ({pct} %)", file=stream, flush=True)

    start_cell(running)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while running.backend.latest_state() is None or running.pipeline.snapshot() is None:
            if time.monotonic() > deadline:
                raise XrServerError(f"cell {cell.name!r}: no robot state and tracking snapshot "
                                    f"within {STARTUP_TIMEOUT_S:g} s of the start")
            time.sleep(0.05)
        model, figures = learn_from_depth(
            depth_source(depth), running.backend.latest_state, running.pipeline.snapshot,
            duration_s=duration_s, fps=depth.fps, robot_timeout_s=cell.safety.robot_timeout_s,
            tracker_timeout_s=cell.safety.tracker_timeout_s, voxel_size_m=depth.voxel_size_m,
            self_margin_m=depth.self_margin_m, min_frames=min_frames,
            placed_mask=placed_object_mask(depth.placed_mask), progress=progress)
    finally:
        running.stop()
    save_background(model, out)
    print(f"xrcell: background of {figures['voxels']} voxels from {figures['frames']} depth "
          f"frames over {figures['duration_s']} s (the TCP travelled "
          f"{figures['robot_travel_m']} m) written to {out}", file=stream, flush=True)
    return 0
