"""`xrcell demo --headless`: the whole product on the real footage, as a user runs it.

One 20 s run (the issue's acceptance run); the assertions are behaviour, not timing:
every camera sees the person, the person's real approach slows or stops the robot,
and the robot never moved while a person was inside the protective separation distance.
Timing figures (reaction time, cycle time) are printed and go to the closing note / bench.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    if not (REPO / "data" / "pose2sim" / ".complete").is_file():
        pytest.fail("sample footage missing: run `make test` (it fetches data/pose2sim)")
    out = tmp_path_factory.mktemp("demo") / "report.json"
    proc = subprocess.run([sys.executable, "-m", "xr_server.cli", "demo", "--headless", "--duration", "20",
                           "--report", str(out)], cwd=REPO, capture_output=True, text=True, timeout=240)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    print(json.dumps(data, indent=1))
    return data


def test_report_has_the_documented_fields(report):
    assert set(report) >= {"duration_s", "cameras", "safety", "reaction_ms", "robot", "host"}
    assert set(report["safety"]) >= {"cycles", "cycle_time_ms", "time_in_mode_s", "startup_s",
                                     "fault_stop_after_startup_s", "fault_stops_after_startup",
                                     "min_separation_m",
                                     "min_margin_m", "stops", "stopping"}
    assert report["duration_s"] >= 20


def test_every_camera_sees_the_person(report):
    assert len(report["cameras"]) == 4
    for cam in report["cameras"]:
        assert cam["frames_processed"] > 0
        assert cam["frames_with_person"] >= 0.95 * cam["frames_processed"], cam
        # Frames are never queued: most are skipped by design, none is counted twice.
        assert cam["frames_processed"] + cam["frames_skipped"] <= cam["frames"]
        assert cam["frames_skipped"] > cam["frames_processed"]


def test_the_person_slows_the_robot_and_the_margin_holds(report):
    safety = report["safety"]
    # A watchdog that trips is a latched fault stop for the rest of the run (no reset here), and
    # on a machine whose cores are all busy the tracking process can be starved past its watchdog
    # (README, "Worker tracking runs in its own process"). The test keeps asking for a run
    # without one; when it fails, the message says which watchdog tripped, when, and the load.
    why = (f"fault stops after start-up: {safety['fault_stops_after_startup']}; "
           f"host {report['host']}; tracking steps {report['perception'].get('step_ms')}; "
           f"time in mode {safety['time_in_mode_s']}")
    modes = safety["time_in_mode_s"]
    assert modes["reduced_speed"] + modes["protective_stop"] > 0.5, why
    # The robot worked (moved at a reduced speed) between the stops.
    assert safety["time_in_mode_s"]["reduced_speed"] > 0.5, why
    # Fault stop at start-up (until every input is live) and when the clips end (the cameras go
    # stale); a watchdog tripping in between (a starved tracker on a loaded machine) is counted
    # after start-up. Together they are the run's fault-stop time, and it stays short.
    assert safety["startup_s"] is not None
    assert safety["startup_s"] + safety["fault_stop_after_startup_s"] == pytest.approx(
        safety["time_in_mode_s"]["fault_stop"], abs=0.05)
    assert safety["time_in_mode_s"]["fault_stop"] < 6.0, why
    for entry in safety["fault_stops_after_startup"]:
        assert entry["at_s"] >= safety["startup_s"] and entry["causes"], entry
    assert safety["min_margin_m"] is not None and safety["min_margin_m"] >= 0.0
    # Every stop reached standstill within T_r + T_s(v) of the cell's stop data (the physics
    # of the simulated robot against the figures the monitor relies on).
    assert safety["stopping"]["count"] >= 1 and safety["stopping"]["over_bound"] == 0, safety["stopping"]
    # 50 Hz for 20 s: every period is a cycle or counted missed (an overrun skips, never bursts).
    assert safety["cycles"] >= 100
    assert safety["cycles"] + safety["missed_periods"] >= 50 * 20 * 0.9
    assert safety["cycle_time_ms"]["p50"] < 10.0  # half the 20 ms period: the cycle itself is cheap
    assert report["reaction_samples"] > 0


def test_the_program_ran_through_the_gate(report):
    # The pick-and-place program moved the robot through the gate (slowly: the person is near).
    assert report["robot"]["commands_accepted"] >= 1
