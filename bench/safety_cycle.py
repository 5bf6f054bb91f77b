"""Safety monitor decision time per cycle for 1, 3 and 6 tracked people against the Panda,
and a brute-force reference on the same inputs.

    .venv/bin/python bench/safety_cycle.py [--cycles 2000]

Inputs: the Panda of `tests/scenarios/cell.yaml` in 40 joint configurations along its
pick-and-place program (link capsules from `PandaLinkKinematics`), and 1/3/6 people (the
scenario runner's 33-keypoint skeleton) at random positions 0.3-2.5 m from the robot, with
random reaches. Our time: one `safety.decision.decide()` call (watchdogs, capsule distances
for every person and link, the directed speed v_r over the active path's horizon, S_p, speed
law, zones), the robot running the program's longest move (`no_path_*`: the same cycle without
a known path, v_r undirected), timed as `safety.monitor.SafetyMonitor` runs it: the start-up heap
frozen (`gc.freeze()`, as `SafetyMonitor.start`) and the cyclic garbage collector paused during the
call (`COLLECTION_PAUSE`, as `SafetyMonitor.step`), so a collection runs between cycles, not inside
one (`--collector-on`: decide() alone with the collector running, as this bench timed it until
2026-11-30; the figures of the README before that date are that).

Where the wall time goes, per size: `cpu_p50_ms` / `cpu_p99_ms` the timed calls' own CPU time
(the thread's CPU clock, `time.thread_time`), `preempted` how many timed calls the kernel
switched away from involuntarily (another process took the core: `ru_nivcsw` of
`getrusage(RUSAGE_THREAD)`), `unpreempted_p99_ms` the p99 of the other calls (the cycle's own
tail), `collections_in_cycles` how many garbage collections ran inside a timed call
(`gc.callbacks`). Reference: Open3D `RaycastingScene` unsigned
distance queries from points along every body capsule axis (1 cm spacing) to the Panda's
collision meshes (`pybullet_data/franka_panda/meshes/collision/*.obj`) posed at the same joint
positions, scene rebuilt per cycle (the robot moves every cycle). `reference_ratio` =
reference p50 / ours p50. `conservative` checks that our capsule distance never exceeds the
mesh distance (capsules enclose the meshes).

`--before`: also time, on the same inputs and interleaved with ours (so both see the same
machine load), the per-region loop the cycle had before it was vectorised
(`tests/safety/reference_ssm.py`, patched into `decide()` as `test_decision_equivalence` does):
`before_p50_ms`, `before_p99_ms` per size. `load_average` is `os.getloadavg()` at the start and
the end of the run (other processes on the machine move p99 more than anything here).

`--realtime-priority P`: the timing thread runs under `SCHED_FIFO` at priority P, as the monitor
thread does with the cell's `safety.realtime_priority` (`safety.monitor.set_realtime_priority`);
`scheduling` in the output says what the kernel granted (or why it refused: without
CAP_SYS_NICE or an `rtprio` limit the run is timed with normal scheduling).

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from content.cell import load_cell  # noqa: E402
from robot_bridge.types import ControllerMode, RobotState  # noqa: E402
from safety.decision import Memory, decide  # noqa: E402
from safety.monitor import COLLECTION_PAUSE, set_realtime_priority  # noqa: E402
from safety.directed_speed import ActivePath  # noqa: E402
from safety.gate import sweep_samples  # noqa: E402
from safety.distance import human_capsules  # noqa: E402
from safety.perception.types import CameraStatus, HumanTrack, PerceptionSnapshot  # noqa: E402
from safety.ssm import StoppingModel  # noqa: E402
from safety.zones import ZoneSet  # noqa: E402
from xr_server.scenario import DEFAULT_CELL, PersonModel, Reach, ScriptedPerson  # noqa: E402


def robot_configurations(cell, n: int):
    import pybullet

    from robot_bridge.sim import PandaLinkKinematics, plan_pick_and_place
    from robot_bridge.types import JointTrajectory

    moves = [c for c in plan_pick_and_place(cell.robot, cell.program) if isinstance(c, JointTrajectory)]
    q = np.vstack([m.positions for m in moves])
    q = q[np.linspace(0, len(q) - 1, n).astype(int)]
    kin = PandaLinkKinematics(cell.robot)
    segs = kin.link_segments(q)
    # link frames for the mesh reference
    cid, body = kin._cid, kin._body
    frames = []
    for row in q:
        for j, v in zip(kin._arm, row):
            pybullet.resetJointState(body, j, float(v), physicsClientId=cid)
        fr = {}
        for name, idx in (("link0", -1),) + tuple((f"link{i}", kin._arm[i - 1]) for i in range(1, 8)) + (("hand", None),):
            if idx == -1:
                pos, orn = pybullet.getBasePositionAndOrientation(body, physicsClientId=cid)
            else:
                if idx is None:
                    idx = [i for i in range(pybullet.getNumJoints(body, physicsClientId=cid))
                           if pybullet.getJointInfo(body, i, physicsClientId=cid)[12] == b"panda_hand"][0]
                ls = pybullet.getLinkState(body, idx, computeForwardKinematics=1, physicsClientId=cid)
                pos, orn = ls[4], ls[5]
            fr[name] = (np.array(pos), np.array(orn))
        frames.append(fr)
    return q, segs, kin, frames


def active_path(cell, kin) -> ActivePath:
    """The program's longest move as the gate sweeps it (`safety.gate.sweep_samples`)."""
    from robot_bridge.sim import plan_pick_and_place
    from robot_bridge.types import JointTrajectory

    moves = [c for c in plan_pick_and_place(cell.robot, cell.program) if isinstance(c, JointTrajectory)]
    move = max(moves, key=lambda m: float(np.abs(np.diff(m.positions, axis=0)).sum()))
    q, t = sweep_samples(move.positions[0], move.positions[1:], move.time_from_start_s[1:])
    return ActivePath.from_sweep("bench", q, t, kin.link_segments(q))


def people_snapshots(n_people: int, cycles: int, now_ns: int, rng) -> list[PerceptionSnapshot]:
    out = []
    for _ in range(cycles):
        tracks = []
        for k in range(n_people):
            ang, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 2.5)
            x, y = 0.4 + dist * np.cos(ang), -0.7 + dist * np.sin(ang)
            reach = [Reach(start_s=0.0, duration_s=0.1, hold_s=10.0, target=(0.4, -0.6, 0.4))] if rng.random() < 0.5 else []
            person = PersonModel(ScriptedPerson(id=f"p{k + 1}", waypoints=[(0.0, x, y)], face=(0.4, -0.7), reaches=reach))
            kp, v = person.keypoints(1.0)
            tracks.append(HumanTrack(f"p{k + 1}", kp + rng.normal(0, 0.01, kp.shape), np.ones(33),
                                     rng.normal(0, 0.5, 3), 0.03, now_ns - 80_000_000, now_ns - 60_000_000, ("c1", "c2")))
        cams = (CameraStatus("c1", now_ns - 5_000_000, now_ns - 5_000_000, 1, 1, 0, 1),
                CameraStatus("c2", now_ns - 5_000_000, now_ns - 5_000_000, 1, 1, 0, 1))
        out.append(PerceptionSnapshot(now_ns - 1_000_000, tuple(tracks), cams))
    return out


def mesh_reference(frames, meshes_dir: Path):
    import open3d as o3d

    files = {"link0": "link0.obj", **{f"link{i}": f"link{i}.obj" for i in range(1, 8)}, "hand": "hand.obj"}
    base = {k: o3d.io.read_triangle_mesh(str(meshes_dir / f)) for k, f in files.items()}

    def quat_matrix(q):
        x, y, z, w = q
        return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])

    def distance(frame, segments, radii):
        scene = o3d.t.geometry.RaycastingScene()
        for name, mesh in base.items():
            pos, orn = frame[name]
            t = np.eye(4)
            t[:3, :3], t[:3, 3] = quat_matrix(orn), pos
            m = o3d.t.geometry.TriangleMesh.from_legacy(mesh)
            m.transform(t)
            scene.add_triangles(m)
        pts, rs = [], []
        for (a, b), r in zip(segments, radii):
            k = max(2, int(np.linalg.norm(b - a) / 0.01) + 1)
            pts.append(a + (b - a) * np.linspace(0, 1, k)[:, None])
            rs.append(np.full(k, r))
        pts = np.vstack(pts).astype(np.float32)
        d = scene.compute_distance(o3d.core.Tensor(pts)).numpy()
        return float((d - np.concatenate(rs)).min())

    return distance


@contextlib.contextmanager
def before_vectorisation():
    """`decide()` with the frozen per-region loop of `tests/safety/reference_ssm.py` patched in."""
    from safety import decision
    from tests.safety import reference_ssm

    saved = (decision.body_capsules, decision._body_regions, decision._ssm, ZoneSet.capsules_inside)
    decision.body_capsules = (lambda perception, params, stacked=None:
                              reference_ssm.body_capsules(perception, params))
    decision._body_regions = reference_ssm._body_regions
    decision._ssm, ZoneSet.capsules_inside = reference_ssm._ssm, reference_ssm.capsules_inside
    try:
        yield
    finally:
        decision.body_capsules, decision._body_regions, decision._ssm, ZoneSet.capsules_inside = saved


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=2000)
    ap.add_argument("--before", action="store_true",
                    help="also time the cycle as it was before vectorisation, interleaved with ours")
    ap.add_argument("--collector-on", action="store_true",
                    help="time decide() with the garbage collector running and the heap not frozen")
    ap.add_argument("--realtime-priority", type=int, default=None, metavar="P",
                    help="time decide() under SCHED_FIFO at priority P (1-98), as the monitor runs "
                         "with the cell's safety.realtime_priority")
    args = ap.parse_args()
    load_start = os.getloadavg()
    # Before anything is timed: the thread that times decide() is scheduled as the monitor's.
    scheduling = set_realtime_priority(args.realtime_priority)
    import pybullet_data

    cell = load_cell(DEFAULT_CELL)
    params = cell.safety
    stopping = StoppingModel.from_stop_data(cell.robot.stop)
    zones = ZoneSet(cell.zones)
    q, segs, kin, frames = robot_configurations(cell, 40)
    rng = np.random.default_rng(7)
    now = 10_000_000_000
    reference = mesh_reference(frames, Path(pybullet_data.getDataPath()) / "franka_panda" / "meshes" / "collision")
    result = {"people": {}, "cycles": args.cycles}
    ratios, worst_excess = [], -np.inf
    path = active_path(cell, kin)
    path_rows = np.linspace(0, len(path.times_s) - 2, 40).astype(int)
    pause = contextlib.nullcontext() if args.collector_on else COLLECTION_PAUSE
    if not args.collector_on:
        gc.freeze()                                   # as `SafetyMonitor.start`
    in_cycle, collections = [False], [0]

    def count_collection(phase: str, info: dict) -> None:
        if phase == "start" and in_cycle[0]:
            collections[0] += 1
    gc.callbacks.append(count_collection)
    for n in (1, 3, 6):
        snaps = people_snapshots(n, 200, now, rng)
        times, before_times, cpu_times, preempted = [], [], [], []
        collections[0] = 0
        mem = Memory(started=True, scale=1.0, prev_cycle_ns=now - 10_000_000)
        for i in range(args.cycles):
            r = path_rows[i % len(path_rows)]
            robot = RobotState(now - 2_000_000, kin.joint_names, path.positions[r], np.zeros(7),
                               path.link_segments[r, -1, 1], np.zeros(3), kin.link_names, path.link_segments[r],
                               kin.link_radii_m, path.speeds[r], 1.0, ControllerMode.EXECUTING, goal_id="bench",
                               goal_done=False)
            snap = snaps[i % len(snaps)]
            switches = resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw
            with pause:                 # timed inside it, as `SafetyMonitor._step` times its cycles
                in_cycle[0] = True
                c0 = time.thread_time()
                t0 = time.perf_counter()
                decide(now, robot, snap, params, stopping, cell.robot.max_tcp_speed_mps, mem, zones, path=path)
                times.append(time.perf_counter() - t0)
                cpu_times.append(time.thread_time() - c0)
                in_cycle[0] = False
            preempted.append(resource.getrusage(resource.RUSAGE_THREAD).ru_nivcsw > switches)
            if args.before:
                with before_vectorisation():
                    t0 = time.perf_counter()
                    decide(now, robot, snap, params, stopping, cell.robot.max_tcp_speed_mps, mem, zones, path=path)
                    before_times.append(time.perf_counter() - t0)
        no_path_times = []
        for i in range(args.cycles):
            c = i % len(segs)
            robot = RobotState(now - 2_000_000, kin.joint_names, q[c], np.zeros(7), segs[c, -1, 1], np.zeros(3),
                               kin.link_names, segs[c], kin.link_radii_m, np.full(len(kin.link_names), 0.5), 1.0,
                               ControllerMode.EXECUTING)
            snap = snaps[i % len(snaps)]
            with pause:
                t0 = time.perf_counter()
                state, _ = decide(now, robot, snap, params, stopping, cell.robot.max_tcp_speed_mps, mem, zones)
                no_path_times.append(time.perf_counter() - t0)
        ref_times = []
        for i in range(60):
            c = i % len(segs)
            snap = snaps[i % len(snaps)]
            t0 = time.perf_counter()
            best = np.inf
            for track in snap.tracks:
                hs, hr, _ = human_capsules(track.keypoints_cell, track.confidence)
                best = min(best, reference(frames[c], hs, hr))
            ref_times.append(time.perf_counter() - t0)
            robot = RobotState(now - 2_000_000, kin.joint_names, q[c], np.zeros(7), segs[c, -1, 1], np.zeros(3),
                               kin.link_names, segs[c], kin.link_radii_m, np.full(len(kin.link_names), 0.5), 1.0,
                               ControllerMode.EXECUTING)
            state, _ = decide(now, robot, snap, params, stopping, cell.robot.max_tcp_speed_mps, mem, zones)
            if state.closest is not None:
                worst_excess = max(worst_excess, state.closest.separation_m - best)
        ours = np.array(times) * 1e3
        no_path = np.array(no_path_times) * 1e3
        ref = np.array(ref_times) * 1e3
        cpu = np.array(cpu_times) * 1e3
        result["people"][str(n)] = {"p50_ms": round(float(np.percentile(ours, 50)), 4),
                                    "p99_ms": round(float(np.percentile(ours, 99)), 4),
                                    "no_path_p50_ms": round(float(np.percentile(no_path, 50)), 4),
                                    "no_path_p99_ms": round(float(np.percentile(no_path, 99)), 4),
                                    "reference_p50_ms": round(float(np.percentile(ref, 50)), 3),
                                    "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 4),
                                    "cpu_p99_ms": round(float(np.percentile(cpu, 99)), 4),
                                    "preempted": int(np.sum(preempted)),
                                    "unpreempted_p99_ms": round(float(np.percentile(
                                        ours[~np.array(preempted)], 99)), 4) if not all(preempted) else None,
                                    "collections_in_cycles": collections[0]}
        if before_times:
            before = np.array(before_times) * 1e3
            result["people"][str(n)]["before_p50_ms"] = round(float(np.percentile(before, 50)), 4)
            result["people"][str(n)]["before_p99_ms"] = round(float(np.percentile(before, 99)), 4)
        ratios.append(float(np.percentile(ref, 50) / np.percentile(ours, 50)))
    result["reference_ratio"] = round(min(ratios), 2)
    result["conservative"] = bool(worst_excess <= 1e-6)
    result["collector"] = "on" if args.collector_on else "paused in cycles, start-up heap frozen"
    result["capsule_minus_mesh_distance_max_m"] = round(float(worst_excess), 4)
    result["load_average"] = {"start": [round(x, 2) for x in load_start],
                              "end": [round(x, 2) for x in os.getloadavg()]}
    result["scheduling"] = scheduling
    print(json.dumps(result))


if __name__ == "__main__":
    main()
