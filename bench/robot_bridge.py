"""Robot bridge benchmark: `dds` backend state latency and rate over loopback DDS.

Starts the driver peer of the tests (`tests/robot_bridge/dds/peer.py`, a separate process
publishing sensor_msgs/JointState at `--rate-hz`), runs `DdsBackend` against it for
`--duration-s`, and measures, per state the backend published, the latency from the peer's
header stamp (UNIX clock, taken just before `write`) to the backend's receipt (UNIX clock, after
`take`), and the state rate. Prints one JSON object on its last line.

Usage: .venv/bin/python bench/robot_bridge.py [--duration-s 10] [--rate-hz 500]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robot_bridge.dds import LOOPBACK_CONFIG, DdsBackend  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration-s", type=float, default=10.0)
    ap.add_argument("--rate-hz", type=float, default=500.0)
    args = ap.parse_args()
    domain = os.getpid() % 233
    peer = subprocess.Popen(
        [sys.executable, str(ROOT / "tests/robot_bridge/dds/peer.py"), "--domain", str(domain),
         "--rate-hz", str(args.rate_hz)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    peer.stdout.readline()  # ready
    backend = DdsBackend(domain_id=domain, dds_config=LOOPBACK_CONFIG, state_timeout_s=0.5)
    latencies: list[int] = []
    stamps: list[int] = []
    try:
        backend.start()
        while backend.latest_state() is None:
            time.sleep(0.01)
        time.sleep(0.5)  # warm-up

        def on_state(state) -> None:  # runs on the reader thread
            x = state.extras
            if state.healthy and x.get("header_stamp_unix_ns"):
                latencies.append(x["receipt_unix_ns"] - x["header_stamp_unix_ns"])
                stamps.append(x["header_stamp_unix_ns"])

        unsubscribe = backend.subscribe(on_state)
        time.sleep(args.duration_s)
        unsubscribe()
    finally:
        backend.shutdown()
        peer.stdin.write("quit\n")
        peer.stdin.flush()
        peer.wait(timeout=5)
    lat_ms = np.array(latencies) / 1e6
    span_s = (stamps[-1] - stamps[0]) / 1e9 if len(stamps) > 1 else float("nan")
    result = {
        "dds": {
            "state_latency_ms": {"p50": float(np.percentile(lat_ms, 50)), "p99": float(np.percentile(lat_ms, 99)),
                                 "max": float(lat_ms.max())},
            "state_msgs_per_s": (len(stamps) - 1) / span_s,
            "peer_nominal_rate_hz": args.rate_hz,
            "rejected_messages": backend.rejected_messages,
        },
        "duration_s": args.duration_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
