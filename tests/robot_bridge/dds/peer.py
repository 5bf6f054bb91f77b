"""A ROS 2 robot driver played with Cyclone DDS directly, for the `dds` backend tests and bench.

Acts like a ros2_control bring-up: publishes `/robot_description` (transient-local) once and
`/joint_states` at `--rate-hz`, stamped with the UNIX clock, and follows trajectories received
on `/<controller>/joint_trajectory` by linear interpolation (JointTrajectoryController-like:
header.stamp 0 means "start now"; from the current position to the first point, then point to
point; a trajectory without points holds the current position).

Reports on stdout, one JSON object per line: `{"event": "ready"}`, `{"event": "matched",
"user_data": ...}` (the USER_DATA the trajectory publisher announces), `{"event":
"trajectory", ...}` (every trajectory received, field by field), `{"event": "speed_scaling",
"data": f}`. Reads commands on stdin, one per line: `bad_lengths`, `nan`, `missing_joint`,
`pause`, `resume`, `quit`; with `--fingers OPENING` it also publishes the Franka Hand's finger
joints (`panda_finger_joint1/2`, each half the opening) and takes `fingers:W` (move to opening
W metres at 0.05 m/s per finger, like the Franka Hand; it stops early at `--part-width` when
closing on a part that wide, 0: no part) and `no_fingers` (stop publishing the finger joints).
With `--gripper-kind forward_position|joint_trajectory --gripper-topic TOPIC` it also plays the
gripper's ros2_control controller: a forward_command_controller taking std_msgs/Float64MultiArray
(one position per finger joint: `--gripper-joints`, default both) or a JointTrajectoryController
on the finger joints; each command moves the fingers towards its opening (the sum of the finger
positions; twice the one position of a mimicked joint) at 0.05 m/s per finger at most (a
trajectory's last point no faster than its time_from_start asks), stopping on the part as above;
every command is reported as `{"event": "gripper", "opening": W, "values": [...],
"time_from_start": s or null}`.

QoS is written out here with cyclonedds' own policies (not the backend's helper), so the test
checks compatibility with an independent choice: joint states RELIABLE/VOLATILE/KEEP_LAST 10
(ROS default), robot description RELIABLE/TRANSIENT_LOCAL/KEEP_LAST 1, trajectory subscription
RELIABLE/KEEP_LAST 10.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
import time
from pathlib import Path

import numpy as np
from cyclonedds.core import Policy, Qos
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from robot_bridge.dds import msgs
from robot_bridge.dds.node import LOOPBACK_CONFIG

PANDA_ARM = tuple(f"panda_joint{i}" for i in range(1, 8))
PANDA_HOME = (0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4)


def say(**event: object) -> None:
    print(json.dumps(event), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--domain", type=int, required=True)
    ap.add_argument("--rate-hz", type=float, default=200.0)
    ap.add_argument("--controller", default="joint_trajectory_controller")
    ap.add_argument("--scaling-topic", default="")
    ap.add_argument("--no-velocity", action="store_true")
    ap.add_argument("--urdf", default="")
    ap.add_argument("--fingers", type=float, default=-1.0)
    ap.add_argument("--part-width", type=float, default=0.0)
    ap.add_argument("--gripper-kind", choices=["forward_position", "joint_trajectory"])
    ap.add_argument("--gripper-topic", default="")
    ap.add_argument("--gripper-joints", default="panda_finger_joint1,panda_finger_joint2")
    args = ap.parse_args()

    if args.urdf:
        urdf = Path(args.urdf).read_text()
    else:
        import pybullet_data

        urdf = (Path(pybullet_data.getDataPath()) / "franka_panda" / "panda.urdf").read_text()

    domain = Domain(args.domain, LOOPBACK_CONFIG)  # noqa: F841 - must outlive the participant
    dp = DomainParticipant(args.domain)
    reliable = Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
    xcdr1 = Policy.DataRepresentation(use_cdrv0_representation=True)
    desc_w = DataWriter(
        dp, Topic(dp, "rt/robot_description", msgs.String),
        qos=Qos(reliable, Policy.Durability.TransientLocal, Policy.History.KeepLast(1), xcdr1),
    )
    js_w = DataWriter(
        dp, Topic(dp, "rt/joint_states", msgs.JointState),
        qos=Qos(reliable, Policy.Durability.Volatile, Policy.History.KeepLast(10), xcdr1),
    )
    traj_r = DataReader(
        dp, Topic(dp, f"rt/{args.controller}/joint_trajectory", msgs.JointTrajectory),
        qos=Qos(reliable, Policy.Durability.Volatile, Policy.History.KeepLast(10), xcdr1),
    )
    scale_r = None
    if args.scaling_topic:
        scale_r = DataReader(
            dp, Topic(dp, "rt" + args.scaling_topic, msgs.Float64),
            qos=Qos(reliable, Policy.Durability.Volatile, Policy.History.KeepLast(10), xcdr1),
        )
    grip_r = None
    if args.gripper_kind is not None:
        grip_r = DataReader(
            dp, Topic(dp, "rt" + args.gripper_topic,
                      msgs.Float64MultiArray if args.gripper_kind == "forward_position"
                      else msgs.JointTrajectory),
            qos=Qos(reliable, Policy.Durability.Volatile, Policy.History.KeepLast(10), xcdr1),
        )
    grip_joints = args.gripper_joints.split(",")
    desc_w.write(msgs.String(data=urdf))

    commands: list[str] = []
    lock = threading.Lock()

    def read_stdin() -> None:
        for line in sys.stdin:
            with lock:
                commands.append(line.strip())
        with lock:
            commands.append("quit")

    threading.Thread(target=read_stdin, daemon=True).start()

    names = list(PANDA_ARM)
    fingers = args.fingers >= 0.0
    opening = opening_target = max(args.fingers, 0.0)
    finger_speed = 0.05  # m/s per finger: the Franka Hand's
    q = np.array(PANDA_HOME)
    qd = np.zeros(len(names))
    plan: list[tuple[float, np.ndarray]] = []  # (monotonic time, positions) knots, first = start
    period = 1.0 / args.rate_hz
    next_t = time.monotonic()
    publishing = True
    matched = False
    say(event="ready")
    while True:
        with lock:
            todo, commands[:] = list(commands), []
        one_shot = None
        for cmd in todo:
            if cmd == "quit":
                return
            if cmd == "pause":
                publishing = False
            elif cmd == "resume":
                publishing = True
            elif cmd.startswith("fingers:"):
                opening_target = float(cmd.split(":", 1)[1])
                finger_speed = 0.05
                if args.part_width > 0 and opening >= args.part_width > opening_target:
                    opening_target = args.part_width  # the fingers stop on the part
                say(event="fingers", target=opening_target)
            elif cmd == "no_fingers":
                fingers = False
            elif cmd:
                one_shot = cmd
        if not matched and traj_r.get_matched_publications():
            handle = traj_r.get_matched_publications()[0]
            data = traj_r.get_matched_publication_data(handle)
            ud = data.qos[Policy.Userdata] if data is not None and Policy.Userdata in data.qos else None
            say(event="matched", user_data=ud.data.decode() if ud is not None else "")
            matched = True
        now = time.monotonic()
        for sample in traj_r.take(N=16):
            if not isinstance(sample, msgs.JointTrajectory):
                continue
            say(event="trajectory", joint_names=list(sample.joint_names),
                points=[{"positions": list(p.positions), "velocities": list(p.velocities),
                         "time_from_start": [p.time_from_start.sec, p.time_from_start.nanosec]}
                        for p in sample.points],
                stamp=[sample.header.stamp.sec, sample.header.stamp.nanosec])
            order = [list(sample.joint_names).index(n) for n in names] if sample.points else []
            plan = [(now, q.copy())]
            for p in sample.points:
                t = now + p.time_from_start.sec + p.time_from_start.nanosec / 1e9
                if t <= plan[-1][0]:
                    t = plan[-1][0] + 1e-6
                plan.append((t, np.array(p.positions)[order]))
        for sample in grip_r.take(N=16) if grip_r is not None else []:
            due = None
            if isinstance(sample, msgs.Float64MultiArray):
                values = list(sample.data)
            elif isinstance(sample, msgs.JointTrajectory) and sample.points:
                last = sample.points[-1]
                values = [last.positions[list(sample.joint_names).index(j)] for j in grip_joints]
                due = last.time_from_start.sec + last.time_from_start.nanosec / 1e9
            else:
                continue
            if len(values) != len(grip_joints):
                say(event="gripper_rejected", values=values)
                continue
            wanted = sum(values) if len(values) == 2 else 2 * values[0]
            say(event="gripper", opening=wanted, values=values, time_from_start=due)
            opening_target = wanted
            finger_speed = 0.05 if not due else min(0.05, abs(wanted - opening) / 2 / due)
            if args.part_width > 0 and opening >= args.part_width > opening_target:
                opening_target = args.part_width  # the fingers stop on the part
        if scale_r is not None:
            for sample in scale_r.take(N=16):
                if isinstance(sample, msgs.Float64):
                    say(event="speed_scaling", data=sample.data)
        # follow the plan
        q_prev = q.copy()
        if len(plan) >= 2:
            if now >= plan[-1][0]:
                q = plan[-1][1].copy()
                plan = []
            else:
                i = max(k for k in range(len(plan)) if plan[k][0] <= now)
                (t0, a), (t1, b) = plan[i], plan[i + 1]
                q = a + (b - a) * (now - t0) / (t1 - t0)
        qd = (q - q_prev) / period
        step = 2 * finger_speed * period
        opening_prev = opening
        opening += max(-step, min(step, opening_target - opening))
        finger_v = (opening - opening_prev) / 2 / period
        if publishing:
            stamp_ns = time.time_ns()
            header = msgs.Header(stamp=msgs.Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9), frame_id="")
            msg = msgs.JointState(header=header, name=list(names), position=[float(x) for x in q],
                                  velocity=[] if args.no_velocity else [float(x) for x in qd], effort=[])
            if fingers:
                msg.name = [*msg.name, "panda_finger_joint1", "panda_finger_joint2"]
                msg.position = [*msg.position, opening / 2, opening / 2]
                if msg.velocity:
                    msg.velocity = [*msg.velocity, finger_v, finger_v]
            if one_shot == "bad_lengths":
                msg.position = msg.position[:-1]
            elif one_shot == "nan":
                msg.position = [math.nan, *msg.position[1:]]
            elif one_shot == "missing_joint":
                msg.name, msg.position = msg.name[:-1], msg.position[:-1]
                msg.velocity = msg.velocity[:-1] if msg.velocity else []
            js_w.write(msg)
            if one_shot:
                say(event="sent", kind=one_shot)
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_t = time.monotonic()


if __name__ == "__main__":
    main()
