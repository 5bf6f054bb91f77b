"""The occupancy channel's time per depth frame, at the scenario runner's simulated camera resolution.

    .venv/bin/python bench/occupancy.py [--frames 300] [--people 2]

Inputs: the overhead depth camera of the scenario runner's `depth_camera` defaults (160x120,
90 deg, 5 mm noise) renders the Panda of `tests/scenarios/cell.yaml` in 40 joint configurations
along its pick-and-place program plus `--people` scripted people at random positions 0.5-2.0 m
from the working area (rendering is not timed). Timed per frame:
- `frame_ms`: the whole channel: depth image -> points (`points_from_depth`, Open3D) ->
  `OccupancyChannel.measure` (background removal, self-filter, voxels, distance);
- `frame_with_16_placed_objects_ms`: the same with a placed-objects list of 16 parts (the
  list's bound) lying along the pick-and-place line: validation and mask (`safety.placed_mask`);
- `voxelise_numpy_ms` / `voxelise_open3d_ms`: the voxelisation step alone on the same points,
  as the channel does it (numpy voxel hash: floor, pack, `np.unique` with counts) and with Open3D
  (`VoxelGrid.create_from_point_cloud_within_bounds` on the same grid, and reading the voxels'
  grid indices back); `voxel_count_max_difference_numpy_open3d` checks they found the same voxels;
- `decide_added_ms`: what the occupancy channel adds to one `safety.decision.decide()` call
  (with the measurement, minus without it), the monitor's side of the cross-check.

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from content.cell import load_cell  # noqa: E402
from robot_bridge.placed import PlacedObject  # noqa: E402
from robot_bridge.types import ControllerMode, RobotState  # noqa: E402
from safety.decision import Memory, decide  # noqa: E402
from safety.distance import human_capsules  # noqa: E402
from safety.occupancy import OccupancyChannel, voxel_indices, voxel_keys  # noqa: E402
from safety.perception.depth import DepthCamera, points_from_depth  # noqa: E402
from safety.perception.types import CameraStatus, HumanTrack, PerceptionSnapshot  # noqa: E402
from safety.ssm import StoppingModel  # noqa: E402
from xr_server.scenario import DEFAULT_CELL, DepthCameraSpec, PersonModel, ScriptedPerson  # noqa: E402
from xr_server.scenario_depth import SimulatedDepthCamera  # noqa: E402


def _pct(values_s: list[float]) -> dict[str, float]:
    ms = np.asarray(values_s) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p99": round(float(np.percentile(ms, 99)), 3)}


def robot_configurations(cell, n: int):
    from robot_bridge.sim import PandaLinkKinematics, plan_pick_and_place
    from robot_bridge.types import JointTrajectory

    moves = [c for c in plan_pick_and_place(cell.robot, cell.program) if isinstance(c, JointTrajectory)]
    q = np.vstack([m.positions for m in moves])
    q = q[np.linspace(0, len(q) - 1, n).astype(int)]
    kin = PandaLinkKinematics(cell.robot)
    try:
        return q, kin.link_segments(q), kin.link_names, kin.link_radii_m, kin.joint_names
    finally:
        kin.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--people", type=int, default=2)
    args = ap.parse_args()
    import open3d as o3d

    cell = load_cell(DEFAULT_CELL)
    spec = DepthCameraSpec()
    camera = DepthCamera.look_at(spec.position, spec.target, spec.fov_deg, spec.width_px, spec.height_px)
    rng = np.random.default_rng(3)
    sim = SimulatedDepthCamera(camera, spec.noise_m, rng)
    q, segs, names, radii, joint_names = robot_configurations(cell, 40)
    channel = OccupancyChannel(spec.voxel_size_m, spec.self_margin_m, spec.range_m, spec.min_points_per_voxel)
    channel.learn_background(points_from_depth(sim.render([]), camera), segs[0], radii)

    depths, robots, people = [], [], []
    for i in range(args.frames):
        bodies = []
        for k in range(args.people):
            ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 2.0)
            xy = (0.4 + dist * np.cos(ang), -0.7 + dist * np.sin(ang))
            kp, _ = PersonModel(ScriptedPerson(id=f"p{k}", waypoints=[(0.0, *xy)], face=(0.4, -0.7))).keypoints(0.0)
            bodies.append(kp)
        c = i % len(segs)
        depths.append(sim.render([human_capsules(kp, np.ones(33))[:2] for kp in bodies] + [(segs[c], radii)]))
        robots.append(c)
        people.append(bodies)

    # 16 parts (0.1 m boxes, the list's bound) lying along the pick-and-place line: the cost of
    # validating the robot's placed-objects list and masking them (`safety.placed_mask`).
    placed = tuple(PlacedObject(f"payload/{k}", "box", (0.1, 0.1, 0.1),
                                (0.1 + 0.04 * k, -0.5, 0.05),
                                (0.0, 0.0, 0.0, 1.0), 0) for k in range(16))
    frame, voxel_np, voxel_o3d, added, frame_placed = [], [], [], [], []
    voxels, point_counts = [], []
    count_diff = 0
    params, stopping = cell.safety, StoppingModel.from_stop_data(cell.robot.stop)
    now = 10_000_000_000
    mem = Memory(started=True, scale=1.0, prev_cycle_ns=now - 10_000_000)
    for depth, c, bodies in zip(depths, robots, people):
        t0 = time.perf_counter()
        pts = points_from_depth(depth, camera)
        m = channel.measure(pts, segs[c], radii, names, now - 40_000_000, now - 5_000_000)
        frame.append(time.perf_counter() - t0)
        voxels.append(m.voxel_count)
        t0 = time.perf_counter()
        channel.measure(points_from_depth(depth, camera), segs[c], radii, names, now - 40_000_000,
                        now - 5_000_000, placed, now - 40_000_000)
        frame_placed.append(time.perf_counter() - t0)
        point_counts.append(pts.shape[0])

        t0 = time.perf_counter()
        keys, counts = np.unique(voxel_keys(voxel_indices(pts, spec.voxel_size_m)), return_counts=True)
        voxel_np.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
        lo = np.floor(pts.min(axis=0) / spec.voxel_size_m) * spec.voxel_size_m  # the numpy hash's grid
        hi = np.ceil(pts.max(axis=0) / spec.voxel_size_m + 1) * spec.voxel_size_m
        grid = o3d.geometry.VoxelGrid.create_from_point_cloud_within_bounds(cloud, spec.voxel_size_m, lo, hi)
        o3d_idx = np.array([v.grid_index for v in grid.get_voxels()])
        voxel_o3d.append(time.perf_counter() - t0)
        count_diff = max(count_diff, abs(len(o3d_idx) - len(keys)))

        robot = RobotState(now - 2_000_000, joint_names, q[c], np.zeros(7), segs[c, -1, 1], np.zeros(3), names,
                           segs[c], radii, np.full(len(names), 0.5), 1.0, ControllerMode.EXECUTING)
        tracks = tuple(HumanTrack(f"p{k}", kp, np.ones(33), np.zeros(3), 0.03, now - 80_000_000, now - 60_000_000,
                                  ("c1",)) for k, kp in enumerate(bodies))
        snap = PerceptionSnapshot(now - 1_000_000, tracks, (CameraStatus("c1", now - 5_000_000, now - 5_000_000,
                                                                         1, 1, 1, 1),))
        t0 = time.perf_counter()
        decide(now, robot, snap, params, stopping, cell.robot.max_tcp_speed_mps, mem)
        t1 = time.perf_counter()
        decide(now, robot, snap, params, stopping, cell.robot.max_tcp_speed_mps, mem, occupancy_channel=True,
               occupancy=m)
        added.append((time.perf_counter() - t1) - (t1 - t0))

    print(json.dumps({
        "resolution_px": [spec.width_px, spec.height_px], "people": args.people, "frames": args.frames,
        "voxel_size_m": spec.voxel_size_m, "points_p50": int(np.median(point_counts)),
        "voxels_p50": int(np.median(voxels)),
        "frame_ms": _pct(frame), "frame_with_16_placed_objects_ms": _pct(frame_placed),
        "voxelise_numpy_ms": _pct(voxel_np), "voxelise_open3d_ms": _pct(voxel_o3d),
        "decide_added_ms": _pct(added), "voxel_count_max_difference_numpy_open3d": count_diff,
    }))


if __name__ == "__main__":
    main()
