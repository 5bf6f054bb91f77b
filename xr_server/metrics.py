"""``GET /metrics``: the cell's figures in the Prometheus text format (`prometheus_client`).

Every app gets its own `prometheus_client.CollectorRegistry` (never the process-global one), so
tests and a process serving several cells can build several apps. The figures are read at scrape
time from the objects the server already holds (the monitor, the tracking snapshot, the gate, the
Socket.IO sessions): nothing is added to the safety loop or the camera path.

Metrics (units in the names, Prometheus conventions: seconds, metres, ``_total`` for counters):

    xrcell_safety_mode{mode}                                 1 for the current mode, 0 for the others
    xrcell_safety_speed_scale                                speed scale sent to the robot, [0, 1]
    xrcell_safety_separation_meters                          smallest human-robot separation (absent: nobody tracked)
    xrcell_safety_protective_separation_distance_meters      S_p at the robot's speed (absent: nobody tracked)
    xrcell_safety_monitor_cycle_seconds                      histogram of the monitor's cycle times
    xrcell_input_age_seconds{input}                          age of the newest robot / tracking / safety record
    xrcell_camera_frames_processed_total{camera}             frames run through pose estimation
    xrcell_camera_frames_skipped_total{camera}               frames dropped by design (newest frame wins)
    xrcell_twin_clients                                      Socket.IO clients receiving the twin
    xrcell_twin_states_dropped_total                         twin states a newer one superseded in a
                                                             slow client's send queue (all clients)
    xrcell_xr_sessions                                       open XR sessions (worker + remote experts)
    xrcell_webrtc_peer_connections                           WebRTC peer connections not closed yet
    xrcell_video_frames_dropped_total                        encoded video frames dropped because the
                                                             server's decoder was behind (rtc_receiver)
    xrcell_gate_commands_total{verdict}                      robot commands the gate accepted / rejected
    xrcell_hmi_camera_frames_total{camera, outcome}          frames of each HMI camera: used, skipped (rate
                                                             cap), rejected_no_pose, rejected_stale_pose,
                                                             rejected_bad_pose (`xr_server.hmi_cameras`)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from robot_bridge.types import RobotState
from safety.decision import SafetyMode, SafetyState
from safety.perception.types import PerceptionSnapshot

#: Upper bounds of the cycle time histogram, seconds (the monitor's period is 10 ms at 100 Hz).
CYCLE_BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25)


class MonitorFigures(Protocol):
    """What the exporter reads from the safety monitor (`safety.monitor.SafetyMonitor` has it).
    Both methods are called from request threads: thread-safe and non-blocking."""

    def latest(self) -> SafetyState | None: ...

    def cycle_times_ms(self, since_cycle: int = 0) -> tuple[int, Sequence[float]]: ...


class GateCounts(Protocol):
    """Counters of the command gate (`safety.gate.CommandGate` has them)."""

    accepted: int
    rejected: int


class CellCollector:
    """A `prometheus_client` custom collector over one cell's objects.

    Thread safety: `collect` may run in several request threads at once; the histogram's running
    counts are updated under a lock. The sources are only read.

    Args:
        monitor: `MonitorFigures` or None.
        robot_source: returns the newest `RobotState` or None; or None (no robot input).
        perception_source: returns the newest `PerceptionSnapshot` or None; or None.
        gate: `GateCounts` or None.
        twin_clients: returns the number of Socket.IO clients receiving the twin.
        xr_sessions: returns the number of open XR sessions.
        peer_connections: returns the number of open WebRTC peer connections.
        twin_states_dropped: returns the number of twin states dropped for slow clients, all
            clients since the start (`xr_server.twin_queue.TwinSendQueues.dropped_total`).
        video_frames_dropped: returns the number of encoded video frames dropped because a
            decoder was behind (`xr_server.rtc_receiver.dropped_frames_total`).
        hmi_cameras: returns the `xr_server.hmi_cameras.HmiCameraStatus` of every HMI camera;
            None: the cell has none.
        clock_ns: monotonic clock for the input ages.
    """

    def __init__(self, *, monitor: MonitorFigures | None = None,
                 robot_source: Callable[[], RobotState | None] | None = None,
                 perception_source: Callable[[], PerceptionSnapshot | None] | None = None,
                 gate: GateCounts | None = None, twin_clients: Callable[[], int] = lambda: 0,
                 xr_sessions: Callable[[], int] = lambda: 0, peer_connections: Callable[[], int] = lambda: 0,
                 twin_states_dropped: Callable[[], int] = lambda: 0,
                 video_frames_dropped: Callable[[], int] = lambda: 0,
                 hmi_cameras: Callable[[], Sequence[object]] | None = None,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._hmi_cameras = hmi_cameras
        self._monitor = monitor
        self._robot_source = robot_source
        self._perception_source = perception_source
        self._gate = gate
        self._twin_clients = twin_clients
        self._xr_sessions = xr_sessions
        self._peer_connections = peer_connections
        self._twin_states_dropped = twin_states_dropped
        self._video_frames_dropped = video_frames_dropped
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._cycles_seen = 0
        self._bucket_counts = np.zeros(len(CYCLE_BUCKETS_S) + 1, dtype=np.int64)  # last: above every bound
        self._cycle_sum_s = 0.0

    def describe(self) -> list[Metric]:
        """Nothing to describe ahead of a scrape (keeps `register` from calling `collect`)."""
        return []

    def _cycle_histogram(self) -> HistogramMetricFamily | None:
        """Fold the cycle times since the previous scrape into the running counts.

        The histogram counts every cycle whose time the monitor still held at the scrape; with
        scrapes less than `safety.monitor.SAMPLE_WINDOW` cycles apart (33 min at 100 Hz) that is
        every cycle.
        """
        if self._monitor is None:
            return None
        with self._lock:
            cycles, times_ms = self._monitor.cycle_times_ms(self._cycles_seen)
            new = cycles - self._cycles_seen
            if new > 0:
                times_s = np.asarray(times_ms[-new:], dtype=np.float64) / 1e3
                idx = np.searchsorted(np.asarray(CYCLE_BUCKETS_S), times_s, side="left")
                self._bucket_counts += np.bincount(idx, minlength=len(self._bucket_counts))
                self._cycle_sum_s += float(times_s.sum())
                self._cycles_seen = cycles
            cumulative = np.cumsum(self._bucket_counts)
            buckets = [(repr(b), int(c)) for b, c in zip(CYCLE_BUCKETS_S, cumulative[:-1])]
            buckets.append(("+Inf", int(cumulative[-1])))
            total_s = self._cycle_sum_s
        return HistogramMetricFamily("xrcell_safety_monitor_cycle_seconds",
                                     "Time one safety monitor cycle takes (decide and drive the robot).",
                                     buckets=buckets, sum_value=total_s)

    def collect(self) -> Iterator[Metric]:
        """The metrics listed in the module docstring, read now."""
        now_ns = self._clock_ns()
        ages = GaugeMetricFamily("xrcell_input_age_seconds", "Age of the newest record of each input.",
                                 labels=["input"])
        if self._monitor is not None:
            state = self._monitor.latest()
            mode = GaugeMetricFamily("xrcell_safety_mode", "Current safety mode (1) among all modes.",
                                     labels=["mode"])
            for m in SafetyMode:
                mode.add_metric([m.value], 1.0 if state is not None and state.mode is m else 0.0)
            yield mode
            if state is not None:
                yield GaugeMetricFamily("xrcell_safety_speed_scale", "Speed scale sent to the robot, 0 to 1.",
                                        value=state.speed_scale)
                if state.separation_m is not None:
                    yield GaugeMetricFamily("xrcell_safety_separation_meters",
                                            "Smallest human-robot separation.", value=state.separation_m)
                if state.s_p is not None:
                    yield GaugeMetricFamily("xrcell_safety_protective_separation_distance_meters",
                                            "Protective separation distance S_p (ISO/TS 15066) at the robot's speed.",
                                            value=state.s_p.total_m)
                ages.add_metric(["monitor"], (now_ns - state.stamp_ns) / 1e9)
            histogram = self._cycle_histogram()
            if histogram is not None:
                yield histogram
        if self._robot_source is not None:
            robot = self._robot_source()
            if robot is not None:
                ages.add_metric(["robot"], (now_ns - robot.stamp_ns) / 1e9)
        if self._perception_source is not None:
            snapshot = self._perception_source()
            processed = CounterMetricFamily("xrcell_camera_frames_processed",
                                            "Camera frames run through pose estimation.", labels=["camera"])
            skipped = CounterMetricFamily("xrcell_camera_frames_skipped",
                                          "Camera frames dropped by design (the newest frame wins).",
                                          labels=["camera"])
            if snapshot is not None:
                for cam in snapshot.cameras:
                    processed.add_metric([cam.camera_id], cam.frames_processed)
                    skipped.add_metric([cam.camera_id], cam.frames_skipped)
                ages.add_metric(["tracking"], (now_ns - snapshot.stamp_ns) / 1e9)
            yield processed
            yield skipped
        yield ages
        yield GaugeMetricFamily("xrcell_twin_clients", "Socket.IO clients receiving the twin.",
                                value=self._twin_clients())
        yield CounterMetricFamily("xrcell_twin_states_dropped",
                                  "Twin states dropped from slow clients' send queues because a newer "
                                  "one superseded them.", value=self._twin_states_dropped())
        yield GaugeMetricFamily("xrcell_xr_sessions", "Open XR sessions.", value=self._xr_sessions())
        yield GaugeMetricFamily("xrcell_webrtc_peer_connections", "WebRTC peer connections not closed yet.",
                                value=self._peer_connections())
        yield CounterMetricFamily("xrcell_video_frames_dropped",
                                  "Encoded video frames dropped because the server's decoder was behind "
                                  "(it resumes at a keyframe).", value=self._video_frames_dropped())
        if self._gate is not None:
            commands = CounterMetricFamily("xrcell_gate_commands", "Robot commands answered by the safety gate.",
                                           labels=["verdict"])
            commands.add_metric(["accepted"], self._gate.accepted)
            commands.add_metric(["rejected"], self._gate.rejected)
            yield commands
        if self._hmi_cameras is not None:
            frames = CounterMetricFamily("xrcell_hmi_camera_frames",
                                         "Frames of each HMI camera by what became of them.",
                                         labels=["camera", "outcome"])
            for status in self._hmi_cameras():
                for outcome in ("used", "skipped", "rejected_no_pose", "rejected_stale_pose",
                                "rejected_bad_pose"):
                    frames.add_metric([getattr(status, "camera_id"), outcome],
                                      getattr(status, f"frames_{outcome}"))
            yield frames


def make_registry(collector: CellCollector) -> CollectorRegistry:
    """A new registry (not the process-global one) holding `collector` only."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
