"""Jog benchmark: the gate's cost per jog, and the deadman stop on the simulated Panda.

1. `gate_submit_ms`: `CommandGate.submit` of a Cartesian jog (plan with the TCP Jacobian, limits,
   sweep of the jog's horizon against one keep-out zone that is not touched) on a
   `PyBulletPandaBackend` stepped in simulated time (`realtime=False`), one jog every 50 ms of
   simulated time as an HMI streams them; wall time of `submit` alone.
2. `deadman_stop_s`: after a stream of 0.2 m/s jogs stops, the simulated time from the last jog
   to the first state at which the TCP moves slower than 2 mm/s and stays so; `bound_s` is the
   deadman timeout plus the jog's own ramp to rest (the trajectory's end), which the controller
   reaches after its settling lag.

Prints one JSON object on its last line.

Usage: .venv/bin/python bench/jog.py [--jogs 400] [--stops 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the packages first

from content.cell import Pose, Robot, Zone  # noqa: E402
from robot_bridge.jog import JOG_DEADMAN_S  # noqa: E402
from robot_bridge.sim import (  # noqa: E402
    PANDA_JOINT_ACCELERATION_LIMITS_RADPS2,
    PANDA_JOINT_VELOCITY_LIMITS_RADPS,
    PHYSICS_RATE_HZ,
    PandaLinkKinematics,
    PyBulletPandaBackend,
)
from robot_bridge.types import CartesianJog  # noqa: E402
from safety.decision import SafetyMode, SafetyState  # noqa: E402
from safety.gate import Actor, CommandGate  # noqa: E402
from safety.zones import CellZones  # noqa: E402

ROBOT = Robot(base=Pose(position=(0.0, 0.0, 0.0)))
OPERATOR = Actor("bench", frozenset({"operator"}))
STEPS_PER_JOG = 12  # 50 ms at 240 Hz


def percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p99": round(float(np.percentile(arr, 99)), 3),
            "max": round(float(arr.max()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jogs", type=int, default=400)
    parser.add_argument("--stops", type=int, default=20)
    args = parser.parse_args()
    t0 = time.monotonic()
    backend = PyBulletPandaBackend(ROBOT, None, realtime=False)
    backend.start()
    backend.set_speed_scale(1.0, 1)
    backend.reset()
    backend.step(int(PHYSICS_RATE_HZ))
    kin = PandaLinkKinematics(ROBOT)
    wall = Zone(name="wall", kind="robot_keep_out", box={"min": (-1.5, -1.0, 0.0), "max": (-1.2, 1.0, 2.0)})
    gate = CommandGate(backend, lambda: SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "bench"),
                       np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS), zones=CellZones([wall]), kinematics=kin,
                       joint_acceleration_limits_radps2=np.asarray(PANDA_JOINT_ACCELERATION_LIMITS_RADPS2))
    submit_ms: list[float] = []
    directions = [np.array(d, float) for d in ((1, 0, 0), (0, 1, 0), (-1, 0, 0), (0, -1, 0))]
    for i in range(args.jogs):
        jog = CartesianJog("cell", 0.05 * directions[(i // 20) % 4], np.zeros(3), goal_id=f"b{i}")
        c0 = time.perf_counter()
        answer = gate.submit(jog, OPERATOR)
        submit_ms.append((time.perf_counter() - c0) * 1e3)
        if not answer.forwarded:
            raise SystemExit(f"jog refused: {answer.reason}")
        backend.step(STEPS_PER_JOG)
    stop_s, bound_s = [], []
    for k in range(args.stops):
        sign = 1.0 if k % 2 == 0 else -1.0
        last = None
        for i in range(6):
            last = gate.submit(CartesianJog("cell", np.array([0.0, 0.2 * sign, 0.0]), np.zeros(3)), OPERATOR)
            backend.step(STEPS_PER_JOG if i < 5 else 0)
        t_last = backend.latest_state().extras["sim_time_s"]
        bound_s.append(float(last.command.time_from_start_s[-1]))
        moving_until = t_last
        for _ in range(int(1.0 * PHYSICS_RATE_HZ)):
            state = backend.step(1)
            if np.linalg.norm(state.tcp_velocity_mps) >= 0.002:
                moving_until = state.extras["sim_time_s"]
        stop_s.append(moving_until - t_last)
    kin.close()
    backend.shutdown()
    print(json.dumps({
        "gate_submit_ms": percentiles(submit_ms),
        "deadman_timeout_s": JOG_DEADMAN_S,
        "deadman_stop_s": percentiles(stop_s),
        "deadman_bound_s": percentiles(bound_s),
        "jogs": args.jogs, "stops": args.stops,
        "wall_s": round(time.monotonic() - t0, 1), "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
