"""The safety monitor: a fixed-rate thread that runs `safety.decision.decide` and drives the robot.

It reads the newest robot state and the newest tracking snapshot (never
waiting on them), decides, and sends speed scale and stops through the gate's
`SafetyChannel`. It keeps the figures a safety engineer asks for: cycle times,
time in each mode, the smallest separation and margin, the stops, and the
reaction time from the camera frame to the robot applying the slower speed.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable

import numpy as np

from content.cell import SafetyParameters, StopData
from robot_bridge.types import RobotState, StopCategory
from safety.decision import STANDSTILL_MPS, Memory, SafetyMode, SafetyState, decide
from safety.gate import SafetyChannel
from safety.perception.types import PerceptionSnapshot
from safety.ssm import StoppingModel
from safety.zones import CellZones

if TYPE_CHECKING:
    from safety.audit import AuditLog
    from safety.directed_speed import ActivePath
    from safety.occupancy import OccupancyMeasurement
    from safety.output import SafetyOutput

log = logging.getLogger(__name__)

#: Roles that may reset a latched fault stop (DESIGN.md, "Roles").
RESET_ROLES = frozenset({"supervisor", "admin"})
#: Samples kept for percentiles (about 30 min of cycles at 100 Hz).
SAMPLE_WINDOW = 200_000
#: Fault stops after start-up whose causes the report keeps (the first ones: a latched fault
#: stop holds until a reset, so the first cause is the one a plant engineer looks for).
FAULT_STOPS_KEPT = 20


class _CollectionPause:
    """Python's cyclic garbage collector paused while any monitor cycle runs.

    A collection stops every thread of the process while it walks the tracked objects; one
    that falls inside a cycle adds its whole length to the cycle (a full collection of a
    server process takes milliseconds). The pause is process-wide and counted, so that several
    monitors (one per cell) overlap safely: the collector is disabled when the first cycle
    begins and enabled again when the last one ends, and then collects as soon as an
    allocation crosses its threshold, in the monitor's idle time or on another thread. It is
    never enabled here if something else had disabled it. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._paused = False

    def __enter__(self) -> None:
        with self._lock:
            if self._running == 0:
                self._paused = gc.isenabled()
                if self._paused:
                    gc.disable()
            self._running += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0 and self._paused:
                self._paused = False
                gc.enable()


#: The one pause shared by every monitor of the process.
COLLECTION_PAUSE = _CollectionPause()


def set_realtime_priority(priority: int | None) -> dict:
    """Put the calling thread under `SCHED_FIFO` at `priority` (POSIX sched(7); on Linux the
    policy is per thread). A real-time thread runs as soon as it wakes and is not preempted by
    the machine's normal processes (only by higher real-time priorities and the kernel), so the
    cycle time no longer depends on what else the machine runs. Linux keeps 5 % of each second
    for normal processes (`/proc/sys/kernel/sched_rt_runtime_us`), so a runaway real-time loop
    cannot freeze the machine; the monitor sleeps between cycles anyway. Threads and processes
    started from the thread afterwards do not inherit the policy (`SCHED_RESET_ON_FORK`).

    Args:
        priority: 1-98 (`SafetyParameters.realtime_priority`), or None for normal scheduling.

    Returns:
        The thread's scheduling as a JSON-ready dict: `{"policy": "SCHED_FIFO", "priority": p}`
        once granted; `{"policy": "SCHED_OTHER"}` when none was asked; with `"refused"` (the
        kernel's reason) when asked and refused (no CAP_SYS_NICE and no `rtprio` limit, or not
        Linux), which is also logged as an error. Never raises: the monitor runs either way.
    """
    if priority is None:
        return {"policy": "SCHED_OTHER"}
    try:
        # SCHED_RESET_ON_FORK: a thread or process started from this thread (a listener's, a
        # library's worker pool) gets normal scheduling, never the monitor's real-time class.
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
    except (OSError, AttributeError) as exc:  # AttributeError: no sched_setscheduler (not Linux)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        log.error("safety monitor: SCHED_FIFO priority %d refused (%s); the monitor runs with normal "
                  "scheduling, so other processes can preempt its cycles (grant CAP_SYS_NICE or "
                  "an rtprio limit to xrcell's user)", priority, reason)
        return {"policy": "SCHED_OTHER", "requested_priority": priority, "refused": reason}
    log.info("safety monitor: SCHED_FIFO priority %d", priority)
    return {"policy": "SCHED_FIFO", "priority": priority}


def _percentiles(values) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None}
    arr = np.asarray(values)
    return {"p50": round(float(np.percentile(arr, 50)), 3), "p99": round(float(np.percentile(arr, 99)), 3)}


@dataclass
class MonitorStats:
    """Running figures of the monitor; owned by the monitor thread, read via `report()`.

    Percentiles cover the newest `SAMPLE_WINDOW` samples; counts and extremes cover the whole run.
    """

    cycles: int = 0
    late_ns: int = 0  # schedule time lost to overruns (the loop skips it, never bursts)
    cycle_ms: deque = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    time_in_mode_s: dict[str, float] = field(default_factory=lambda: {m.value: 0.0 for m in SafetyMode})
    first_cycle_ns: int | None = None
    #: Seconds from the first cycle to the first with every input live (start-up's fault stop).
    startup_s: float | None = None
    #: Seconds in fault stop after start-up (a watchdog, a fault, a latch awaiting reset).
    fault_stop_after_startup_s: float = 0.0
    #: Entries into fault stop after start-up: {"at_s": seconds after the first cycle,
    #: "causes": the fault causes in words}, the first `FAULT_STOPS_KEPT` of them.
    fault_stops: list = field(default_factory=list)
    min_separation_m: float | None = None
    min_margin_m: float | None = None
    worst_margin: dict | None = None
    stops: int = 0
    reaction_ms: deque = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    reaction_oldest_view_ms: deque = field(default_factory=lambda: deque(maxlen=SAMPLE_WINDOW))
    #: Measured stopping times (stop command to standstill), s, and their bounds from the stop data.
    stopping_time_s: list = field(default_factory=list)
    stopping_bound_s: list = field(default_factory=list)
    #: (command stamp ns, robot speed at the command m/s) of the stop under way, None if none.
    stop_under_way: tuple[int, float] | None = None
    #: How the monitor thread is scheduled (`set_realtime_priority`); empty before it starts.
    scheduling: dict = field(default_factory=dict)


class SafetyMonitor:
    """Runs the safety decision at `params.rate_hz` in its own thread.

    Thread safety: `latest()`, `report()`, `reset()` and `add_listener()` may be
    called from any thread. Listeners run on the monitor thread and must return
    at once (hand work to a queue); a listener that raises is logged and ignored.

    Args:
        robot_source: returns the newest `RobotState` or None; must not block.
        perception_source: returns the newest `PerceptionSnapshot` or None; must not block.
        channel: the gate's safety channel to the robot.
        params: safety parameters of the cell.
        stop: the robot's stop data (category, latency, deceleration).
        nominal_speed_mps: the robot's largest programmed speed at scale 1, m/s.
        clock_ns: monotonic clock (tests and the scenario runner pass a simulated one to `step()`).
        zones: the cell's zones (read once per cycle; replaced atomically by `CellZones.replace`).
        audit: the safety audit log: every mode change is appended (never blocking the cycle),
            every reset request durably before it is answered.
        output: the line to the cell's certified safety chain (`safety.output`): every cycle
            it gets the verdict (stop required in a protective or fault stop) as its
            heartbeat; an unhealthy output is a fault stop.
        occupancy_source: where the cell has depth data, returns the newest
            `safety.occupancy.OccupancyMeasurement` or None; must not block. Given, the monitor
            runs two channels and cross-checks them (`safety.cross_check`); None: the skeleton
            channel alone, and every `SafetyState` says so (`channels == ("skeleton",)`).
        path_source: returns the trajectory the gate forwarded last (`CommandGate.active_path`)
            or None; must not block. Where the robot runs it, v_r is its directed speed towards
            each person (`safety.directed_speed`); None: the undirected speed throughout.
        empty_payload_kg: where the cell has a payload, the stop data's payload while the
            gripper is empty (`Robot.stop_payload_kg(False)`): T_s and S_s come from its rows in
            the cycles whose robot state says the part is not carried
            (`RobotState.payload_carried` False); None: `stop.payload_kg` always.
    """

    def __init__(self, robot_source: Callable[[], RobotState | None],
                 perception_source: Callable[[], PerceptionSnapshot | None],
                 channel: SafetyChannel, params: SafetyParameters, stop: StopData,
                 nominal_speed_mps: float, clock_ns: Callable[[], int] = time.monotonic_ns,
                 zones: CellZones | None = None, audit: "AuditLog | None" = None,
                 output: "SafetyOutput | None" = None,
                 occupancy_source: "Callable[[], OccupancyMeasurement | None] | None" = None,
                 path_source: "Callable[[], ActivePath | None] | None" = None,
                 empty_payload_kg: float | None = None) -> None:
        self._robot_source = robot_source
        self._perception_source = perception_source
        self._channel = channel
        self._params = params
        self._stop_category = StopCategory(stop.category)
        self._stopping = StoppingModel.from_stop_data(stop)
        self._stopping_carried = self._stopping
        self._stopping_empty = None if empty_payload_kg is None else \
            StoppingModel.from_stop_data(stop, empty_payload_kg)
        self._nominal = nominal_speed_mps
        self._clock = clock_ns
        self._zones = zones
        self._audit = audit
        self._output = output
        self._occupancy_source = occupancy_source
        self._path_source = path_source
        self._memory = Memory()
        self._state: SafetyState | None = None
        self._seq = 0
        self._sent_scale: float | None = None
        self._released = False
        self._pending: list[tuple[int, int, int]] = []  # (seq, newest_capture_ns, oldest_capture_ns)
        self._reacted_capture_ns: dict[str, int] = {}  # track id -> newest capture already measured
        self._reset_flag = threading.Event()
        self._stop_requests: list[str] = []  # causes from request_stop(), taken by the next cycle
        self._listeners: list[Callable[[SafetyState], None]] = []
        self._lock = threading.Lock()
        self._stats = MonitorStats()
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_robot: RobotState | None = None

    # -- public API -------------------------------------------------------------------------
    def latest(self) -> SafetyState | None:
        """The newest safety state (None before the first cycle)."""
        return self._state

    def add_listener(self, listener: Callable[[SafetyState], None]) -> None:
        """Call `listener(state)` on every mode change (on the monitor thread)."""
        with self._lock:
            self._listeners.append(listener)

    def reset(self, actor_name: str, roles: frozenset[str]) -> tuple[bool, str]:
        """Ask to clear a latched fault stop.

        Returns:
            (accepted, reason). The reset takes effect on the next cycle if the fault's
            cause is gone; otherwise the fault stays latched and the reason says why.
        """
        accepted, reason = self._check_reset(actor_name, roles)
        if self._audit is not None:
            from safety.audit import AuditError
            state = self._state
            try:
                self._audit.append("reset", actor_name, {"roles": sorted(roles), "accepted": accepted,
                                                         "faults": list(state.faults) if state else []},
                                   reason, durable=True)
            except AuditError as exc:
                # A reset that cannot be recorded is not given (fail-safe: the robot stays stopped).
                return False, f"audit: the reset could not be recorded ({exc}); the fault stop holds"
        if accepted:
            self._reset_flag.set()
        return accepted, reason

    def request_stop(self, actor_name: str, roles: frozenset[str],
                     reason: str = "") -> tuple[bool, str]:
        """Ask for a protective stop from a user (an HMI's stop button, `robot_command` `stop`).

        Anyone signed in may stop the robot (`roles` is recorded, not checked). The stop is a
        latched fault stop with the cause ``stop requested by <actor>: <reason>``: the next
        cycle stops the robot per the cell's stop category, and it holds until a `supervisor`
        or `admin` resets it (`reset`). The request is appended to the audit log durably first;
        if that fails the stop is still applied (fail-safe), and the answer says so.

        Returns:
            (accepted, reason): always accepted; the reason says when it takes effect.
        """
        cause = f"stop requested by {actor_name or '?'}" + (f": {reason}" if reason else "")
        with self._lock:
            self._stop_requests.append(cause)
        answer = ("protective stop requested; it takes effect on the next monitor cycle and "
                  "needs a reset")
        if self._audit is not None:
            from safety.audit import AuditError, AuditKind
            try:
                self._audit.append(AuditKind.STOP_REQUEST, actor_name or "?",
                                   {"roles": sorted(roles)}, cause, durable=True)
            except AuditError as exc:
                return True, f"{answer} (the audit log could not record it: {exc})"
        return True, answer

    def _check_reset(self, actor_name: str, roles: frozenset[str]) -> tuple[bool, str]:
        if not roles & RESET_ROLES:
            return False, f"role: {actor_name!r} may not reset; a reset needs supervisor or admin"
        state = self._state
        if state is None or state.mode is not SafetyMode.FAULT_STOP or not state.latched:
            return False, "nothing to reset: no latched fault stop"
        return True, "reset requested"

    def start(self) -> None:
        """Start the safety output (if any) and the monitor thread.

        Everything allocated until now (modules, the cell, the models: the long-lived part of
        the process) is moved out of the garbage collector's generations (`gc.freeze`), so that
        a full collection, which stops every thread, no longer walks it; cycles pause the
        collector while they run (`COLLECTION_PAUSE`).
        """
        gc.freeze()
        if self._output is not None:
            self._output.start()
        self._thread = threading.Thread(target=self._run, name="safety-monitor", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop the thread and leave the robot in a protective stop."""
        self._stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._seq += 1
        try:
            self._channel.protective_stop(self._stop_category, self._seq)
        except Exception:  # noqa: BLE001 - shutting down; the backend logs its own failure
            log.exception("protective stop at shutdown failed")
        if self._output is not None:
            self._output.stop()  # the certified side sees stop required from now on

    # -- the cycle --------------------------------------------------------------------------
    def _run(self) -> None:
        self._stats.scheduling = set_realtime_priority(self._params.realtime_priority)
        period_ns = int(1e9 / self._params.rate_hz)
        next_ns = self._clock()
        while not self._stop_event.is_set():
            self.step()
            next_ns += period_ns
            delay = next_ns - self._clock()
            if delay > 0:
                time.sleep(delay / 1e9)
            else:  # overran: skip the missed periods rather than catch up with a burst
                self._stats.late_ns += -delay
                next_ns = self._clock()

    def step(self) -> SafetyState:
        """Run one cycle now: decide, drive the robot, update the figures. Never raises."""
        with COLLECTION_PAUSE:
            return self._step()

    def _step(self) -> SafetyState:
        t0 = time.perf_counter()
        now = self._clock()  # (the cycle's time if an input raises)
        try:
            robot = self._robot_source()
            perception = self._perception_source()
            occupancy = None if self._occupancy_source is None else self._occupancy_source()
            # The clock after the inputs: a record published between the two reads would
            # otherwise be stamped "in the future" (a clock-jump fault) by a scheduling race.
            now = self._clock()
            if self._reset_flag.is_set():
                self._reset_flag.clear()
                self._memory = replace(self._memory, reset_requested=True)
            with self._lock:
                output_faults, self._stop_requests = self._stop_requests, []
            if self._output is not None and not self._output.healthy():
                output_faults.append(f"safety output {self._output.name}: {self._output.status().reason}")
            # the stop data of the payload the robot has now (fail-safe: carried unless it says not)
            empty = (self._stopping_empty is not None and robot is not None
                     and not robot.payload_carried)
            self._stopping = (self._stopping_empty if empty  # type: ignore[assignment]
                              else self._stopping_carried)
            state, self._memory = decide(now, robot, perception, self._params, self._stopping,
                                         self._nominal, self._memory,
                                         None if self._zones is None else self._zones.current(),
                                         extra_faults=output_faults,
                                         occupancy_channel=self._occupancy_source is not None,
                                         occupancy=occupancy,
                                         path=None if self._path_source is None else self._path_source())
            self._apply(state, robot, perception)
        except Exception as exc:  # noqa: BLE001 - an exception in the loop is a fault stop
            log.exception("safety cycle failed")
            cause = f"safety monitor error: {type(exc).__name__}: {exc}"
            self._memory = replace(self._memory, latched_faults=self._memory.latched_faults + (cause,),
                                   started=True, scale=0.0)
            state = SafetyState(now, SafetyMode.FAULT_STOP, 0.0, None, None, None, f"fault stop: {cause}",
                                (cause,), latched=True)
            robot = None
            self._apply_fault()
        if self._output is not None:
            try:  # the verdict is the heartbeat; stores only, never waits (SafetyOutput contract)
                self._output.set_safe(state.mode in (SafetyMode.PROTECTIVE_STOP, SafetyMode.FAULT_STOP), self._seq)
            except Exception:  # noqa: BLE001 - a broken output shows as unhealthy next cycle
                log.exception("safety output set_safe failed")
        self._record(state, robot, (time.perf_counter() - t0) * 1e3)
        return state

    def _apply_fault(self) -> None:
        if self._released:
            self._seq += 1
            self._channel.protective_stop(self._stop_category, self._seq)
            self._released = False
            self._sent_scale = 0.0

    def _apply(self, state: SafetyState, robot: RobotState | None,
               perception: PerceptionSnapshot | None) -> None:
        if state.mode is SafetyMode.FAULT_STOP:
            self._apply_fault()
            return
        if not self._released:
            # Start-up or an authorised reset: scale first, then release the backend's stop.
            self._seq += 1
            self._channel.set_speed_scale(state.speed_scale, self._seq)
            self._sent_scale = state.speed_scale
            self._channel.release()
            self._released = True
        elif state.speed_scale != self._sent_scale:
            self._seq += 1
            self._channel.set_speed_scale(state.speed_scale, self._seq)
            lowered = self._sent_scale is not None and state.speed_scale < self._sent_scale
            self._sent_scale = state.speed_scale
            if lowered and state.closest is not None:
                # The snapshot this cycle decided on (a second read could be newer).
                track = next((t for t in (perception.tracks if perception is not None else ())
                              if t.track_id == state.closest.person), None)
                # Reaction time counts lowerings caused by new camera data (a new track sample),
                # not those caused by the robot's own motion towards an unchanged track.
                if track is not None and track.newest_capture_ns != self._reacted_capture_ns.get(track.track_id):
                    self._reacted_capture_ns[track.track_id] = track.newest_capture_ns
                    self._pending.append((self._seq, track.newest_capture_ns, track.capture_ns))
        if robot is not None and self._pending:
            done = [p for p in self._pending if robot.safety_seq >= p[0]]
            for seq, newest, oldest in done:
                self._stats.reaction_ms.append((robot.safety_applied_ns - newest) / 1e6)
                self._stats.reaction_oldest_view_ms.append((robot.safety_applied_ns - oldest) / 1e6)
            self._pending = [p for p in self._pending if robot.safety_seq < p[0]][-100:]

    def _record(self, state: SafetyState, robot: RobotState | None, cycle_ms: float) -> None:
        prev = self._state
        st = self._stats
        st.cycles += 1
        st.cycle_ms.append(cycle_ms)
        if st.first_cycle_ns is None:
            st.first_cycle_ns = state.stamp_ns
        if prev is not None:
            st.time_in_mode_s[prev.mode.value] += (state.stamp_ns - prev.stamp_ns) / 1e9
            if prev.mode is SafetyMode.FAULT_STOP and st.startup_s is not None:
                st.fault_stop_after_startup_s += (state.stamp_ns - prev.stamp_ns) / 1e9
            if state.mode is not prev.mode:
                log.info("safety mode %s -> %s: %s", prev.mode.value, state.mode.value, state.reason)
                self._audit_mode_change(prev, state)
                if state.mode in (SafetyMode.PROTECTIVE_STOP, SafetyMode.FAULT_STOP) and self._memory.started \
                        and not (prev.mode is SafetyMode.FAULT_STOP and not prev.latched):
                    st.stops += 1
                if state.mode is SafetyMode.FAULT_STOP and st.startup_s is not None \
                        and len(st.fault_stops) < FAULT_STOPS_KEPT:
                    at_s = (state.stamp_ns - st.first_cycle_ns) / 1e9
                    st.fault_stops.append({"at_s": round(at_s, 3), "causes": list(state.faults)})
        if st.startup_s is None and self._memory.started:
            st.startup_s = (state.stamp_ns - st.first_cycle_ns) / 1e9
        moving = robot is not None and robot.max_speed_mps > STANDSTILL_MPS
        self._record_stopping(state, prev, robot, moving)
        if state.separation_m is not None:
            st.min_separation_m = state.separation_m if st.min_separation_m is None else min(st.min_separation_m, state.separation_m)
            # The invariant: the robot is let move only while S >= S_p at its actual speed.
            if moving and state.speed_scale > 0.0 and state.margin_m is not None:
                if st.min_margin_m is None or state.margin_m < st.min_margin_m:
                    st.min_margin_m = state.margin_m
                    st.worst_margin = _explain(state, robot)
        self._state = state
        if prev is None or state.mode is not prev.mode:
            with self._lock:
                listeners = list(self._listeners)
            for listener in listeners:
                try:
                    listener(state)
                except Exception:  # noqa: BLE001
                    log.exception("safety listener failed")

    def _audit_mode_change(self, prev: SafetyState, state: SafetyState) -> None:
        if self._audit is None:
            return
        try:
            self._audit.append("mode_change", "monitor", {
                "from": prev.mode.value, "to": state.mode.value, "speed_scale": state.speed_scale,
                "separation_m": state.separation_m, "s_p_m": None if state.s_p is None else state.s_p.total_m,
                "closest": None if state.closest is None else f"{state.closest.person}/{state.closest.body_part}"
                                                               f"-{state.closest.link}",
                "faults": list(state.faults), "zones": [f"{v.zone}:{v.subject}" for v in state.zone_violations],
            }, state.reason, stamp_ns=state.stamp_ns)
        except Exception:  # noqa: BLE001 - the audit never stops the cycle; it counts its own losses
            log.exception("audit append failed")

    def _record_stopping(self, state: SafetyState, prev: SafetyState | None, robot: RobotState | None,
                         moving: bool) -> None:
        """Time every stop from the cycle that commanded it to the robot's standstill, and its
        bound from the stop data: T_r + t_d + v/a (ISO/TS 15066 clause 5.5.4.2.3, T_r + T_s)."""
        st = self._stats
        if state.speed_scale > 0.0:
            st.stop_under_way = None
            return
        if st.stop_under_way is None:
            if moving and (prev is None or prev.speed_scale > 0.0):
                st.stop_under_way = (state.stamp_ns, robot.max_speed_mps)
            return
        if robot is not None and not moving and robot.stamp_ns >= st.stop_under_way[0]:
            t_cmd, v = st.stop_under_way
            st.stopping_time_s.append((robot.stamp_ns - t_cmd) / 1e9)
            st.stopping_bound_s.append(self._params.reaction_time_s + self._stopping.stopping_time_s(v))
            st.stop_under_way = None

    def cycle_times_ms(self, since_cycle: int = 0) -> tuple[int, list[float]]:
        """Cycle times for a metrics exporter (`xr_server.metrics`).

        Returns:
            ``(cycles, times_ms)``: the number of cycles run so far, and the times (ms, oldest
            first) of the cycles after `since_cycle` that are still among the newest
            `SAMPLE_WINDOW`. Any thread: the copy is taken without a lock while the monitor thread
            appends, so at the edge of a copy a time may belong to the neighbouring cycle; the
            count matches `cycles`.
        """
        st = self._stats
        cycles = st.cycles
        wanted = max(0, min(cycles - since_cycle, SAMPLE_WINDOW))
        for _ in range(5):
            try:
                window = list(st.cycle_ms)
                break
            except RuntimeError:  # the monitor thread appended during the copy: copy again
                continue
        else:
            window = []
        return cycles, window[-wanted:] if wanted else []

    def report(self) -> dict:
        """The monitor's figures as a JSON-ready dict (see `xrcell demo --report`)."""
        st = self._stats
        return {
            "channels": ["skeleton", "occupancy"] if self._occupancy_source is not None else ["skeleton"],
            "scheduling": dict(st.scheduling),
            "cycles": st.cycles,
            "missed_periods": round(st.late_ns * self._params.rate_hz / 1e9),
            "cycle_time_ms": _percentiles(st.cycle_ms),
            "time_in_mode_s": {k: round(v, 3) for k, v in st.time_in_mode_s.items()},
            "startup_s": None if st.startup_s is None else round(st.startup_s, 3),
            "fault_stop_after_startup_s": round(st.fault_stop_after_startup_s, 3),
            "fault_stops_after_startup": [dict(f, causes=list(f["causes"]))
                                          for f in st.fault_stops],
            "min_separation_m": None if st.min_separation_m is None else round(st.min_separation_m, 4),
            "min_margin_m": None if st.min_margin_m is None else round(st.min_margin_m, 4),
            "worst_margin": st.worst_margin,
            "stops": st.stops,
            "stopping": _stopping_report(st.stopping_time_s, st.stopping_bound_s),
            "reaction_ms": _percentiles(st.reaction_ms),
            "reaction_oldest_view_ms": _percentiles(st.reaction_oldest_view_ms),
            "reaction_samples": len(st.reaction_ms),
        }


def _stopping_report(times_s: list[float], bounds_s: list[float]) -> dict:
    """Measured stops against the stop data: how many, the longest, and how many took longer
    than their bound T_r + T_s(v)."""
    if not times_s:
        return {"count": 0, "max_s": None, "max_fraction_of_bound": None, "over_bound": 0}
    fractions = [t / b for t, b in zip(times_s, bounds_s)]
    return {"count": len(times_s), "max_s": round(max(times_s), 4),
            "max_fraction_of_bound": round(max(fractions), 3),
            "over_bound": sum(1 for f in fractions if f > 1.0)}


def _explain(state: SafetyState, robot: RobotState) -> dict:
    """The cycle with the smallest margin, in the terms a safety engineer checks."""
    return {
        "mode": state.mode.value, "speed_scale": round(state.speed_scale, 3),
        "separation_m": round(state.separation_m, 4), "s_p_m": round(state.s_p.total_m, 4),
        "terms": {k: round(v, 4) for k, v in state.s_p.as_dict().items()},
        "v_r_mps": round(state.v_r_mps, 3), "v_h_mps": round(state.v_h_mps, 3),
        "reaction_time_s": round(state.reaction_time_s, 4), "robot_applied_scale": round(robot.speed_scale, 3),
        "v_r_directed": state.closest.v_r_directed if state.closest else False,
        "body_part": state.closest.body_part if state.closest else None,
        "link": state.closest.link if state.closest else None,
    }


