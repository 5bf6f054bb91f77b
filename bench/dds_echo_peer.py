"""A ROS 2 robot stand-in that answers every trajectory at once, for the round-trip benchmark.

Publishes `/robot_description` (the Panda URDF, transient-local) and `/joint_states` at
`--rate-hz` (so a `DdsBackend` stays healthy), and on every JointTrajectory received on
`/<controller>/joint_trajectory` publishes, from a WaitSet wake-up and without waiting for its
next period, a JointState whose positions are the trajectory's last point. The round trip of a
trajectory is then: publish -> this process -> the JointState that echoes it. Written with
cyclonedds alone (no xrcell code on the answering path besides the message classes).

Prints `{"event": "ready"}` on stdout; ends on `quit` or EOF on stdin.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cyclonedds.core import (  # noqa: E402
    InstanceState,
    Policy,
    Qos,
    ReadCondition,
    SampleState,
    ViewState,
    WaitSet,
)
from cyclonedds.domain import Domain, DomainParticipant  # noqa: E402
from cyclonedds.pub import DataWriter  # noqa: E402
from cyclonedds.sub import DataReader  # noqa: E402
from cyclonedds.topic import Topic  # noqa: E402
from cyclonedds.util import duration  # noqa: E402

from robot_bridge.dds import msgs  # noqa: E402
from robot_bridge.dds.node import LOOPBACK_CONFIG  # noqa: E402

PANDA_ARM = [f"panda_joint{i}" for i in range(1, 8)]
PANDA_HOME = [0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--domain", type=int, required=True)
    ap.add_argument("--rate-hz", type=float, default=100.0)
    ap.add_argument("--controller", default="joint_trajectory_controller")
    args = ap.parse_args()
    import pybullet_data

    urdf = (Path(pybullet_data.getDataPath()) / "franka_panda" / "panda.urdf").read_text()
    domain = Domain(args.domain, LOOPBACK_CONFIG)  # noqa: F841 - must outlive the participant
    dp = DomainParticipant(args.domain)
    reliable = Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
    xcdr1 = Policy.DataRepresentation(use_cdrv0_representation=True)
    desc_w = DataWriter(
        dp,
        Topic(dp, "rt/robot_description", msgs.String),
        qos=Qos(reliable, Policy.Durability.TransientLocal, Policy.History.KeepLast(1), xcdr1),
    )
    js_w = DataWriter(
        dp,
        Topic(dp, "rt/joint_states", msgs.JointState),
        qos=Qos(reliable, Policy.Durability.Volatile, Policy.History.KeepLast(10), xcdr1),
    )
    traj_r = DataReader(
        dp,
        Topic(dp, f"rt/{args.controller}/joint_trajectory", msgs.JointTrajectory),
        qos=Qos(reliable, Policy.Durability.Volatile, Policy.History.KeepLast(10), xcdr1),
    )
    desc_w.write(msgs.String(data=urdf))

    lock = threading.Lock()
    q = list(PANDA_HOME)
    quit_event = threading.Event()

    def publish(position: list[float]) -> None:
        stamp_ns = time.time_ns()
        header = msgs.Header(
            stamp=msgs.Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id=""
        )
        js_w.write(
            msgs.JointState(
                header=header, name=PANDA_ARM, position=position, velocity=[0.0] * 7, effort=[]
            )
        )

    def keep_alive() -> None:
        period = 1.0 / args.rate_hz
        while not quit_event.wait(period):
            with lock:
                publish(list(q))

    def stdin_watch() -> None:
        for line in sys.stdin:
            if line.strip() == "quit":
                break
        quit_event.set()

    threading.Thread(target=keep_alive, daemon=True).start()
    threading.Thread(target=stdin_watch, daemon=True).start()
    waitset = WaitSet(dp)
    waitset.attach(ReadCondition(traj_r, SampleState.Any | ViewState.Any | InstanceState.Any))
    print(json.dumps({"event": "ready"}), flush=True)
    while not quit_event.is_set():
        waitset.wait(duration(milliseconds=50))
        for sample in traj_r.take(N=16):
            if not isinstance(sample, msgs.JointTrajectory) or not sample.points:
                continue
            order = [list(sample.joint_names).index(n) for n in PANDA_ARM]
            last = list(sample.points[-1].positions)
            with lock:
                q[:] = [float(last[i]) for i in order]
                publish(list(q))


if __name__ == "__main__":
    main()
