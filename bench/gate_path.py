"""The command gate's simulate-then-apply check: time per trajectory against 0, 1, 3 and 6 people.

    .venv/bin/python bench/gate_path.py [--repeats 20]

Inputs: the 7 trajectories of the Panda's pick-and-place program of `tests/scenarios/cell.yaml`
(PyBullet Panda in DIRECT mode, `PandaLinkKinematics`), each checked from its start pose, and
0/1/3/6 people (the scenario runner's 33-keypoint skeleton; each standing, or walking at 1.2 m/s
towards the robot, at even odds) at random positions 0.8-2.5 m from the robot base. Timed: one `CommandGate.submit()`
call to a robot backend stub that accepts everything (schema, role, mode, limits, path sweep,
keep-out zones, the path against the predicted people, and the shortening when it applies).
The gate runs off the monitor's real-time loop, on the sender's thread; these figures bound
how long a sender waits for an answer.

Prints one JSON object on its last line: per people count, p50/p99 ms of a check and the
share of the answers that were accepted, modified (shortened) and rejected.
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
from robot_bridge.types import ControllerMode, JointTrajectory, RobotState  # noqa: E402
from safety.decision import SafetyMode, SafetyState  # noqa: E402
from safety.gate import Actor, CommandGate, PeopleOnPath  # noqa: E402
from safety.perception.types import CameraStatus, HumanTrack, PerceptionSnapshot  # noqa: E402
from safety.ssm import StoppingModel  # noqa: E402
from xr_server.scenario import DEFAULT_CELL, PersonModel, ScriptedPerson  # noqa: E402

NOW_NS = 10**12


class _Backend:
    """Accepts every command; reports the start pose of the trajectory being checked."""

    def __init__(self, names, lower, upper, kin) -> None:
        self.joint_names, self.joint_lower_limits, self.joint_upper_limits = names, lower, upper
        self._kin = kin
        self.state: RobotState | None = None

    def at(self, q: np.ndarray) -> None:
        segs = self._kin.link_segments(q[None, :])[0]
        n = len(self._kin.link_names)
        self.state = RobotState(NOW_NS, self.joint_names, q, np.zeros_like(q), segs[-1, 1], np.zeros(3),
                                self._kin.link_names, segs, self._kin.link_radii_m, np.zeros(n), 1.0,
                                ControllerMode.IDLE)

    def latest_state(self) -> RobotState | None:
        return self.state

    def execute(self, command) -> None:
        pass


def people(rng: np.random.Generator, count: int, base: np.ndarray) -> PerceptionSnapshot:
    tracks = []
    for i in range(count):
        angle = rng.uniform(0, 2 * np.pi)
        r = rng.uniform(0.8, 2.5)
        at = base[:2] + r * np.array([np.cos(angle), np.sin(angle)])
        model = PersonModel(ScriptedPerson(id=f"p{i + 1}", waypoints=[(0.0, float(at[0]), float(at[1]))],
                                           face=(float(base[0]), float(base[1]))))
        kp, _ = model.keypoints(0.0)
        walking = rng.random() < 0.5  # half stand, half walk towards the robot
        velocity = np.append(-(at - base[:2]) / r * 1.2 * walking, 0.0)
        tracks.append(HumanTrack(f"p{i + 1}", kp, np.ones(33), velocity, 0.03, NOW_NS - 60_000_000,
                                 NOW_NS - 40_000_000, ("cam1", "cam2")))
    cams = tuple(CameraStatus(c, NOW_NS, NOW_NS, 1, 1, 0, 1) for c in ("cam1", "cam2"))
    return PerceptionSnapshot(NOW_NS, tuple(tracks), cams)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=20, help="random people placements per count")
    args = ap.parse_args()

    from robot_bridge.sim import (PANDA_HOME_POSITION, PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
                                  PANDA_JOINT_VELOCITY_LIMITS_RADPS, PandaLinkKinematics, PyBulletPandaBackend,
                                  plan_pick_and_place)

    cell = load_cell(DEFAULT_CELL)
    robot = PyBulletPandaBackend(cell.robot, None, realtime=False)   # for its joint names and limits
    names, lower, upper = robot.joint_names, robot.joint_lower_limits, robot.joint_upper_limits
    robot.shutdown()
    kin = PandaLinkKinematics(cell.robot)
    moves = [c for c in plan_pick_and_place(cell.robot, cell.program) if isinstance(c, JointTrajectory)]
    starts = [np.asarray(PANDA_HOME_POSITION)] + [m.positions[-1] for m in moves[:-1]]
    backend = _Backend(names, lower, upper, kin)
    running = SafetyState(NOW_NS, SafetyMode.FULL_SPEED, 1.0, None, None, None, "bench")
    snapshot: dict[str, PerceptionSnapshot | None] = {"now": None}
    gate = CommandGate(backend, lambda: running, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS), kinematics=kin,
                       people=PeopleOnPath(lambda: snapshot["now"], cell.safety,
                                           StoppingModel.from_stop_data(cell.robot.stop),
                                           cell.robot.max_tcp_speed_mps, clock_ns=lambda: NOW_NS),
                       joint_acceleration_limits_radps2=np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2))
    actor = Actor("bench", frozenset({"operator"}))
    rng = np.random.default_rng(7)
    base = np.asarray(cell.robot.base.position)
    out: dict[str, dict] = {}
    for count in (0, 1, 3, 6):
        times, verdicts = [], {"accepted": 0, "modified": 0, "rejected": 0}
        for _ in range(args.repeats if count else 2):
            snapshot["now"] = people(rng, count, base)
            for start, move in zip(starts, moves):
                backend.at(start)
                t0 = time.perf_counter()
                answer = gate.submit(move, actor)
                times.append((time.perf_counter() - t0) * 1e3)
                verdicts[answer.verdict.value] += 1
        total = sum(verdicts.values())
        out[str(count)] = {"p50_ms": round(float(np.percentile(times, 50)), 2),
                           "p99_ms": round(float(np.percentile(times, 99)), 2),
                           "checks": total, **{k: round(v / total, 3) for k, v in verdicts.items()}}
        print(f"{count} people: {out[str(count)]}", file=sys.stderr, flush=True)
    kin.close()
    print(json.dumps({"people": out, "trajectories": len(moves),
                      "samples_per_trajectory": "sweep at 0.01 rad joint steps"}))


if __name__ == "__main__":
    main()
