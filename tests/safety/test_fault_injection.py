"""Fault injection: every watchdog trips within its bound, in every one of 240 randomised trials.

The whole monitor (`SafetyMonitor.step` on a simulated monotonic clock) reads a robot stream
(200 Hz), a tracker stream (15 Hz, 80 ms latency) and camera frames (30 Hz). One fault is
injected per trial at a random time, with random jitter on every stream:

- dropout: the robot state stops arriving;
- frozen: the tracker keeps republishing its last snapshot (its stamp stops advancing);
- camera: one camera's frames stop;
- latency: tracker updates arrive later than the tracker timeout;
- burst: tracker updates arrive in bursts separated by a gap longer than the timeout;
- overrun: the monitor's own cycle is starved (CPU saturation) longer than its watchdog;
- clock: the robot's stamps jump ahead of the monitor's clock;
- reorder / duplicate / jitter: out-of-order, repeated and jittered samples that stay within
  every bound: these must NOT trip (no false fault stop).

Bound for a stale stream: its last good sample before the trip + timeout + one monitor period
(+ 1 ms rounding); for a frozen camera the fault time + timeout; for the monitor's own
watchdog the end of the starvation; for a clock jump the next robot sample.
"""

import numpy as np
import pytest

from content.cell import SafetyParameters, StopData
from safety.decision import SafetyMode
from safety.gate import CommandGate
from safety.monitor import SafetyMonitor
from tests.safety.fakes import MS, FakeBackend, robot_state, snapshot, standing_person

PARAMS = SafetyParameters(robot_timeout_s=0.05, tracker_timeout_s=0.3, camera_timeout_s=0.3, monitor_timeout_s=0.2)
PERIOD_NS = int(1e9 / PARAMS.rate_hz)
TRIPPING = ["dropout", "frozen", "camera", "latency", "burst", "overrun", "clock"]
BENIGN = ["reorder", "duplicate", "jitter"]
TRIALS = [(kind, seed) for seed in range(24) for kind in TRIPPING + BENIGN]  # 240 trials


def run_trial(kind: str, seed: int):
    rng = np.random.default_rng(seed * 101 + hash(kind) % 1000)
    t0 = 10_000 * MS
    fault_at = t0 + int(rng.uniform(0.5, 1.0) * 1e9)
    end = fault_at + int(0.6e9)
    now = [t0]
    robot_stamp = [t0]
    tracker = {"snap": None, "pending": []}
    last_good = {"robot": t0, "tracker": t0, "camera": t0}
    camera_last = {"cam01": t0, "cam02": t0}

    def robot_source():
        return robot_state(robot_stamp[0], speed_mps=0.0)

    def tracker_source():
        return tracker["snap"]

    backend = FakeBackend()
    holder = {}
    gate = CommandGate(backend, lambda: holder["m"].latest(), np.array([1.0]))
    monitor = SafetyMonitor(robot_source, tracker_source, gate.safety_channel(), PARAMS, StopData(), 1.0,
                            clock_ns=lambda: now[0])
    holder["m"] = monitor
    next_robot, next_sample, next_frame = t0, t0, t0
    tripped_at = None
    good_at_trip = dict(last_good)
    faulted = False
    while now[0] < end:
        t = now[0]
        after = t >= fault_at
        # robot stream, 200 Hz with jitter
        while next_robot <= t:
            if not (kind == "dropout" and after):
                robot_stamp[0] = next_robot + (int(0.3e9) if kind == "clock" and after else 0)
                last_good["robot"] = next_robot
            next_robot += 5 * MS + int(rng.uniform(-1, 1) * MS)
        # camera frames, 30 Hz
        while next_frame <= t:
            for cam in camera_last:
                if not (kind == "camera" and after and cam == "cam02"):
                    camera_last[cam] = next_frame
            next_frame += 33 * MS
        # tracker: sample at 15 Hz, published after 80 ms (+ jitter / faults)
        while next_sample <= t:
            latency = 80 * MS + (int(rng.uniform(0, 60) * MS) if kind == "jitter" else 0)
            if kind == "latency" and next_sample >= fault_at:
                latency = int(0.45e9)
            if kind == "burst" and fault_at <= next_sample < fault_at + int(0.4e9):
                latency = fault_at + int(0.4e9) - next_sample + 80 * MS  # held back, then all at once
            tracker["pending"].append((next_sample + latency, next_sample))
            if kind == "duplicate":
                tracker["pending"].append((next_sample + latency + 2 * MS, next_sample))
            next_sample += 67 * MS
        tracker["pending"].sort()
        if kind == "reorder" and len(tracker["pending"]) >= 2 and rng.random() < 0.2:
            a, b = tracker["pending"][0], tracker["pending"][1]
            if b[0] - a[0] < 30 * MS:  # swap two near deliveries: the older sample lands last
                tracker["pending"][0], tracker["pending"][1] = (a[0], b[1]), (b[0], a[1])
        while tracker["pending"] and tracker["pending"][0][0] <= t:
            publish, capture = tracker["pending"].pop(0)
            if kind == "frozen" and after and tracker["snap"] is not None:
                continue  # republishes the old snapshot: nothing new
            cams = dict(camera_last)
            snap = snapshot(publish, [standing_person(3.0)], capture_age_ns=publish - capture, camera_age_ns=0)
            snap = type(snap)(publish, snap.tracks, tuple(
                type(c)(c.camera_id, cams.get(c.camera_id, publish), cams.get(c.camera_id, publish), 1, 1, 0, 1)
                for c in snap.cameras), ())
            if tracker["snap"] is None or kind != "reorder" or snap.stamp_ns >= tracker["snap"].stamp_ns - 30 * MS:
                tracker["snap"] = snap
                last_good["tracker"] = publish
        state = monitor.step()
        if after and state.mode is SafetyMode.FAULT_STOP and tripped_at is None:
            tripped_at = t
            good_at_trip = dict(last_good)
        if after and state.mode is SafetyMode.FAULT_STOP:
            faulted = True
        step = PERIOD_NS + int(rng.uniform(-0.5, 0.5) * MS)
        if kind == "overrun" and after and not faulted and t - fault_at < 50 * MS:
            step = int(0.25e9)  # the cycle thread is starved for 250 ms
        now[0] = t + step
    return tripped_at, fault_at, good_at_trip


@pytest.mark.parametrize("kind,seed", TRIALS, ids=[f"{k}-{s}" for k, s in TRIALS])
def test_watchdogs_trip_within_their_bounds(kind, seed):
    tripped_at, fault_at, last_good = run_trial(kind, seed)
    slack = PERIOD_NS + MS
    if kind in BENIGN:
        assert tripped_at is None, f"false fault stop at {(tripped_at - fault_at) / 1e6:.0f} ms"
        return
    assert tripped_at is not None, "the fault was never detected"
    bound = {
        "dropout": last_good["robot"] + int(PARAMS.robot_timeout_s * 1e9),
        "frozen": last_good["tracker"] + int(PARAMS.tracker_timeout_s * 1e9),
        "camera": fault_at + int(PARAMS.camera_timeout_s * 1e9),
        "latency": last_good["tracker"] + int(PARAMS.tracker_timeout_s * 1e9),
        "burst": last_good["tracker"] + int(PARAMS.tracker_timeout_s * 1e9),
        "overrun": fault_at + int(0.25e9),
        "clock": fault_at + 5 * MS,
    }[kind] + slack
    assert tripped_at <= bound, f"tripped {(tripped_at - bound) / 1e6:.1f} ms after its bound"
