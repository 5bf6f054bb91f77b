"""Robot bridge benchmark: command-to-motion on `sim` and `dds`, the `dds` round trip against a
bare Cyclone DDS pair, and the `dds` state latency and rate over loopback DDS.

1. `sim` command-to-motion: a real-time `PyBulletPandaBackend` behind a `CommandGate` (safety
   mode FULL_SPEED, no monitor). Each trial submits a 0.1 rad, 0.2 s joint-1 move to the gate at
   standstill; the time runs from just before `submit` (which answers ACCEPTED; its own cost is
   `gate_submit_ms`) to the state callback of the first state whose position differs from the
   position at the command by more than `MOTION_RAD` in any joint.
2. `dds` with the follower peer of the tests (`tests/robot_bridge/dds/peer.py`, a separate
   process, JointTrajectoryController-like, `/joint_states` at `--rate-hz`): the same
   command-to-motion trials, and the state latency (peer header stamp -> backend receipt, both
   UNIX clock) and rate over `--state-duration-s`.
3. Round trip with `bench/dds_echo_peer.py`, a separate process that answers every trajectory at
   once with a JointState at the trajectory's last point: `dds.round_trip_ms` runs from just
   before `DdsBackend.execute` to the backend's state callback showing the echo;
   `raw_dds_round_trip_ms` sends the same `trajectory_msgs/JointTrajectory` message with a bare
   cyclonedds DataWriter and waits on a bare DataReader (WaitSet) for the echo. The two kinds of
   trial alternate in one run against the same peer; both readers see every echo (the backend's
   reader thread competes for the GIL during raw trials too). `dds_overhead_ratio` = p50 / p50.

Prints one JSON object on its last line.

Usage: .venv/bin/python bench/dds_bridge.py [--trials 60] [--round-trips 300] [--rate-hz 500]
       [--state-duration-s 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from content.cell import Robot  # noqa: E402
from robot_bridge.types import ControllerMode, JointTrajectory, RobotState  # noqa: E402
from safety.decision import SafetyMode, SafetyState  # noqa: E402
from safety.gate import Actor, CommandGate, Verdict  # noqa: E402

MOTION_RAD = 1e-4
"""A state 'shows the motion' once a joint is this far from its position at the command, rad."""
OPERATOR = Actor("bench", frozenset({"operator"}))
DEADLINE_S = 10.0


def _pct(values_ms: list[float]) -> dict[str, float | int | None]:
    if not values_ms:
        return {"p50": None, "p99": None, "n": 0}
    arr = np.asarray(values_ms)
    return {
        "p50": round(float(np.percentile(arr, 50)), 3),
        "p99": round(float(np.percentile(arr, 99)), 3),
        "n": int(arr.size),
    }


def _until(predicate, what: str, deadline_s: float = DEADLINE_S):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise RuntimeError(f"timed out waiting for {what}")


class _Peer:
    """A peer process (`script` with `args`) that prints {"event": "ready"} first."""

    def __init__(self, script: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        line = self.proc.stdout.readline()
        if '"ready"' not in line:
            raise RuntimeError(f"{script.name} did not start: {line!r}")
        threading.Thread(
            target=lambda: [None for _ in self.proc.stdout], daemon=True
        ).start()  # drain

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def _released(backend) -> RobotState:
    backend.reset()
    return _until(
        lambda: (
            lambda s: (
                s
                if s is not None
                and s.healthy
                and s.mode is ControllerMode.IDLE
                and s.speed_scale >= 0.999
                else None
            )
        )(backend.latest_state()),
        "IDLE at full speed",
    )


def _settled(backend) -> np.ndarray:
    """The position once the robot is at rest (no joint moved by 2e-5 rad over 50 ms)."""

    def still():
        a = np.asarray(backend.latest_state().position)
        time.sleep(0.05)
        s = backend.latest_state()
        return (s.position,) if s.goal_done and np.abs(s.position - a).max() < 2e-5 else None

    return np.asarray(_until(still, "standstill")[0])


def command_to_motion(backend, trials: int, velocity_limits: np.ndarray) -> dict:
    """Gate accepted -> first state showing the motion, ms; and the gate's own answer time, ms."""
    _released(backend)
    current = SafetyState(0, SafetyMode.FULL_SPEED, 1.0, None, None, None, "bench")
    gate = CommandGate(backend, lambda: current, velocity_limits)
    watch: dict = {"q0": None, "t": None}
    seen = threading.Event()

    def on_state(state: RobotState) -> None:
        q0 = watch["q0"]
        if q0 is not None and watch["t"] is None and np.abs(state.position - q0).max() > MOTION_RAD:
            watch["t"] = time.monotonic_ns()
            seen.set()

    unsubscribe = backend.subscribe(on_state)
    c2m, submit = [], []
    try:
        for k in range(trials):
            q0 = _settled(backend)
            target = q0.copy()
            target[0] += 0.1 if k % 2 == 0 else -0.1
            traj = JointTrajectory(
                backend.joint_names,
                np.vstack([q0, target]),
                np.array([0.0, 0.2]),
                goal_id=f"c2m-{k}",
            )
            watch["t"] = None
            watch["q0"] = q0
            seen.clear()
            t0 = time.monotonic_ns()
            answer = gate.submit(traj, OPERATOR)
            t_answer = time.monotonic_ns()
            if answer.verdict is not Verdict.ACCEPTED:
                raise RuntimeError(f"gate refused trial {k}: {answer.reason}")
            if not seen.wait(2.0):
                raise RuntimeError(f"no motion within 2 s in trial {k}")
            c2m.append((watch["t"] - t0) / 1e6)
            submit.append((t_answer - t0) / 1e6)
            watch["q0"] = None
            _until(lambda: backend.latest_state().goal_done, "goal done")
    finally:
        unsubscribe()
    return {"command_to_motion_ms": _pct(c2m), "gate_submit_ms": _pct(submit)}


def bench_sim(trials: int) -> dict:
    from robot_bridge.sim import PANDA_JOINT_VELOCITY_LIMITS_RADPS, PyBulletPandaBackend

    backend = PyBulletPandaBackend(Robot(), realtime=True)
    backend.start()
    try:
        return command_to_motion(backend, trials, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS))
    finally:
        backend.shutdown()


def bench_dds_follower(domain: int, trials: int, rate_hz: float, state_duration_s: float) -> dict:
    from robot_bridge.dds import LOOPBACK_CONFIG, DdsBackend
    from robot_bridge.sim import PANDA_JOINT_VELOCITY_LIMITS_RADPS

    peer = _Peer(
        ROOT / "tests/robot_bridge/dds/peer.py", "--domain", str(domain), "--rate-hz", str(rate_hz)
    )
    backend = DdsBackend(Robot(), domain_id=domain, dds_config=LOOPBACK_CONFIG, state_timeout_s=0.5)
    latencies: list[int] = []
    stamps: list[int] = []
    try:
        backend.start()
        _until(lambda: backend.latest_state() is not None, "the first state")
        time.sleep(0.5)  # warm-up

        def on_state(state: RobotState) -> None:  # runs on the reader thread
            x = state.extras
            if state.healthy and x.get("header_stamp_unix_ns"):
                latencies.append(x["receipt_unix_ns"] - x["header_stamp_unix_ns"])
                stamps.append(x["header_stamp_unix_ns"])

        unsubscribe = backend.subscribe(on_state)
        time.sleep(state_duration_s)
        unsubscribe()
        out = command_to_motion(backend, trials, np.asarray(PANDA_JOINT_VELOCITY_LIMITS_RADPS))
    finally:
        backend.shutdown()
        peer.close()
    lat_ms = np.array(latencies) / 1e6
    span_s = (stamps[-1] - stamps[0]) / 1e9 if len(stamps) > 1 else float("nan")
    out.update(
        {
            "state_latency_ms": {**_pct(list(lat_ms)), "max": round(float(lat_ms.max()), 3)},
            "state_msgs_per_s": round((len(stamps) - 1) / span_s, 1),
            "peer_nominal_rate_hz": rate_hz,
            "rejected_messages": backend.rejected_messages,
        }
    )
    return out


def bench_round_trips(domain: int, round_trips: int) -> tuple[dict, dict]:
    """(dds round trip, raw cyclonedds round trip), ms, alternating against the echo peer."""
    from cyclonedds.core import (
        InstanceState,
        Policy,
        Qos,
        ReadCondition,
        SampleState,
        ViewState,
        WaitSet,
    )
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    from robot_bridge.dds import LOOPBACK_CONFIG, DdsBackend, msgs
    from robot_bridge.dds.trajectory import trajectory_msg

    peer = _Peer(ROOT / "bench/dds_echo_peer.py", "--domain", str(domain))
    backend = DdsBackend(Robot(), domain_id=domain, dds_config=LOOPBACK_CONFIG, state_timeout_s=0.5)
    via_backend, raw = [], []
    try:
        backend.start()
        _until(lambda: backend.latest_state() is not None, "the first state")
        home = np.asarray(_released(backend).position)
        # the bare pair: plain cyclonedds entities, QoS written out (ROS 2 default profile)
        dp = DomainParticipant(domain)
        qos = Qos(
            Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100)),
            Policy.Durability.Volatile,
            Policy.History.KeepLast(10),
            Policy.DataRepresentation(use_cdrv0_representation=True),
        )
        raw_w = DataWriter(
            dp,
            Topic(dp, "rt/joint_trajectory_controller/joint_trajectory", msgs.JointTrajectory),
            qos=qos,
        )
        raw_r = DataReader(dp, Topic(dp, "rt/joint_states", msgs.JointState), qos=qos)
        waitset = WaitSet(dp)
        waitset.attach(ReadCondition(raw_r, SampleState.Any | ViewState.Any | InstanceState.Any))
        _until(
            lambda: raw_w.get_matched_subscriptions() and raw_r.get_matched_publications(),
            "raw matching",
        )

        watch: dict = {"value": None, "t": None}
        seen = threading.Event()

        def on_state(state: RobotState) -> None:
            if (
                watch["value"] is not None
                and watch["t"] is None
                and state.position[0] == watch["value"]
            ):
                watch["t"] = time.monotonic_ns()
                seen.set()

        unsubscribe = backend.subscribe(on_state)
        names = backend.joint_names
        for k in range(2 * round_trips + 20):  # the first 20 (10 of each) warm up
            value = round(1e-4 * (k + 1), 6)
            target = home.copy()
            target[0] = value
            if k % 2 == 0:
                watch["t"] = None
                watch["value"] = value
                seen.clear()
                traj = JointTrajectory(names, target[None, :], np.array([0.5]), goal_id=f"rt-{k}")
                t0 = time.monotonic_ns()
                backend.execute(traj)
                if not seen.wait(2.0):
                    raise RuntimeError(f"no echo through the backend in trial {k}")
                if k >= 20:
                    via_backend.append((watch["t"] - t0) / 1e6)
                watch["value"] = None
            else:
                raw_r.take(N=256)  # drop what came before
                message = trajectory_msg(names, target[None, :], np.array([0.5]))
                t0 = time.monotonic_ns()
                raw_w.write(message)
                t1 = None
                deadline = time.monotonic() + 2.0
                while t1 is None and time.monotonic() < deadline:
                    waitset.wait(duration(milliseconds=100))
                    for sample in raw_r.take(N=64):
                        if (
                            isinstance(sample, msgs.JointState)
                            and sample.position
                            and sample.position[0] == value
                        ):
                            t1 = time.monotonic_ns()
                            break
                if t1 is None:
                    raise RuntimeError(f"no raw echo in trial {k}")
                if k >= 20:
                    raw.append((t1 - t0) / 1e6)
            time.sleep(0.005)
        unsubscribe()
    finally:
        backend.shutdown()
        peer.close()
    return _pct(via_backend), _pct(raw)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=60, help="command-to-motion trials per backend")
    ap.add_argument("--round-trips", type=int, default=300, help="round trips of each kind")
    ap.add_argument(
        "--rate-hz", type=float, default=500.0, help="follower peer's /joint_states rate"
    )
    ap.add_argument("--state-duration-s", type=float, default=5.0)
    args = ap.parse_args()
    base = (os.getpid() * 7) % 200
    t0 = time.monotonic()
    sim = bench_sim(args.trials)
    dds = bench_dds_follower(base, args.trials, args.rate_hz, args.state_duration_s)
    dds_rt, raw_rt = bench_round_trips(base + 1, args.round_trips)
    dds["round_trip_ms"] = dds_rt
    result = {
        "sim": sim,
        "dds": dds,
        "raw_dds_round_trip_ms": raw_rt,
        "dds_overhead_ratio": round(dds_rt["p50"] / raw_rt["p50"], 3),
        "state_msgs_per_s": dds["state_msgs_per_s"],
        "wall_s": round(time.monotonic() - t0, 1),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
