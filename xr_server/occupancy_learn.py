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
are not in it, and are learned only from the real camera.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np
import yaml
from pydantic import ValidationError

from content.cell import CellDescription, PickAndPlace
from content.errors import CellDescriptionError
from safety.occupancy import BackgroundLearner, BackgroundModel
from safety.perception.depth import DepthCamera, points_from_depth
from safety.perception.depth_input import save_background
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
