"""The driver process of `peer.py` seen from a test or a benchmark: its JSON events, its stdin.

Each user gets its own DDS domain (from the pid and a counter) so parallel runs do not
cross-talk; every domain is confined to 127.0.0.1 by `LOOPBACK_CONFIG`.
"""

import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

PEER = Path(__file__).with_name("peer.py")
_domains = itertools.count()
DEADLINE_S = 10.0


def next_domain() -> int:
    return (os.getpid() * 11 + next(_domains)) % 233


class Peer:
    """The driver process, its events (JSON lines) and its command input."""

    def __init__(self, domain: int, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PEER), "--domain", str(domain), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.expect("ready")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.put(json.loads(line))

    def expect(self, kind: str) -> dict:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event["event"] == kind:
                return event

    def send(self, command: str) -> None:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send("quit")
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_for(predicate, what: str):
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def state_where(backend, predicate, what: str):
    """The first state of `backend` that satisfies `predicate`."""
    return wait_for(lambda: (lambda s: s if predicate(s) else None)(backend.latest_state()), what)


def fingers_settled(backend, what: str, tolerance_m: float = 1e-5):
    """A state of `backend` whose finger opening has not changed by more than `tolerance_m` over
    0.2 s of states (the fingers stand still)."""
    first = [backend.latest_state()]

    def still():
        s = backend.latest_state()
        if abs(s.gripper_opening_m - first[0].gripper_opening_m) > tolerance_m:
            first[0] = s
            return None
        return s if s.stamp_ns - first[0].stamp_ns >= 0.2e9 else None

    return wait_for(still, what)


def drain(peer: Peer, kind: str) -> list[dict]:
    """The events of `kind` the peer has reported so far and nobody has taken yet."""
    out = []
    while True:
        try:
            event = peer.events.get_nowait()
        except queue.Empty:
            return out
        if event["event"] == kind:
            out.append(event)
