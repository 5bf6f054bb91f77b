"""The scenario runner's parts: files, the scripted person and tracker, the judge, the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from content.errors import ContentError
from xr_server.scenario import (
    Fault,
    PersonModel,
    Reach,
    ScriptedPerson,
    ScriptedTracker,
    Tracker,
    _judge,
    load_scenario,
)

REPO = Path(__file__).resolve().parents[2]


def test_walking_person_position_velocity_and_height():
    person = PersonModel(ScriptedPerson(id="p1", waypoints=[(1.0, 0.0, 0.0), (3.0, 2.0, 0.0)], height_m=1.75))
    kp, v = person.keypoints(2.0)
    hips = kp[[23, 24]].mean(axis=0)
    assert np.allclose(hips[:2], [1.0, 0.0], atol=1e-9) and v.tolist() == [1.0, 0.0, 0.0]
    assert kp[:, 2].max() == pytest.approx(1.67) and kp[:, 2].min() == pytest.approx(0.02)
    # Facing the walking direction (+x): the nose is in front of the ears.
    assert kp[0, 0] > kp[7, 0]
    # Before the first and after the last waypoint the person stands still.
    assert person.keypoints(0.0)[1].tolist() == [0, 0, 0] and np.allclose(person.position(9.0)[0], [2.0, 0.0])


def test_a_reach_brings_the_hand_to_the_target_within_arm_length():
    target = (0.5, 0.0, 1.2)
    person = PersonModel(ScriptedPerson(id="p1", waypoints=[(0.0, 0.0, 0.0)], face=(1.0, 0.0),
                                        reaches=[Reach(start_s=1.0, duration_s=0.5, hold_s=1.0, arm="right",
                                                       target=target)]))
    rest, _ = person.keypoints(0.5)
    full, _ = person.keypoints(1.8)
    back, _ = person.keypoints(3.5)
    shoulder = full[12]
    assert np.linalg.norm(full[16] - shoulder) == pytest.approx(min(0.6, np.linalg.norm(np.subtract(target, shoulder))))
    assert np.linalg.norm(full[20] - np.array(target)) < np.linalg.norm(rest[20] - np.array(target)) - 0.3
    assert np.allclose(back, rest)


def test_tracker_latency_rate_and_faults():
    person = PersonModel(ScriptedPerson(id="p1", waypoints=[(0.0, 2.0, 0.0)]))
    spec = Tracker(rate_hz=10.0, latency_s=0.1, noise_m=0.0, cameras=["a", "b"], camera_rate_hz=20.0)
    faults = [Fault(kind="camera_freeze", at_s=1.0, camera="b"), Fault(kind="tracker_freeze", at_s=2.0, duration_s=0.5),
              Fault(kind="track_lost", at_s=3.0)]
    tracker = ScriptedTracker([person], spec, faults, seed=0)
    tracker.advance(0.05)
    assert tracker.snapshot() is None  # the first sample is published after its latency
    tracker.advance(0.1)
    snap = tracker.snapshot()
    assert snap.stamp_ns == int(0.1e9) and snap.tracks[0].capture_ns == 0
    tracker.advance(1.5)
    cams = {c.camera_id: c.last_frame_ns for c in tracker.snapshot().cameras}
    assert cams["a"] == int(1.5e9) and cams["b"] <= int(1.0e9)
    tracker.advance(2.3)
    assert tracker.snapshot().stamp_ns < int(2.0e9) + 1  # frozen: nothing published since 2.0 s
    tracker.advance(3.2)
    snap = tracker.snapshot()
    assert snap.tracks == () and snap.lost_track_ids == ("p1",)


def test_the_judge_names_every_failure():
    scenario = load_scenario(REPO / "tests" / "scenarios" / "library" / "camera-freeze-3.0s.yaml")
    report = {"contact": True, "contact_at_s": 4.2, "min_margin_m": -0.01, "stopping": {"over_bound": 2},
              "fault_stop_after_s": None, "commands_accepted": 0}
    assert _judge(scenario, report) == [
        "contact while the robot moved at t = 4.2 s",
        "min_margin_m -0.01 below 0.0",
        "2 stops took longer than T_r + T_s(v)",
        "the injected fault never led to a fault stop",
        "the program never got a command through the gate",
    ]


@pytest.mark.parametrize("text, message", [
    ("name: x\npeople: [{id: p1, waypoints: [[1, 0, 0], [0.5, 1, 1]]}]\n",
     r"bad.yaml: people.0.waypoints: Value error, waypoint times must increase, got \[1.0, 0.5\]"),
    ("name: x\nduration_s: -1\n", "bad.yaml: duration_s: Input should be greater than 0"),
    ("name: x\nfaults: [{kind: meteor, at_s: 1}]\n", "bad.yaml: faults.0.kind: Input should be"),
    ("name: [x\n", "bad.yaml: not valid YAML"),
])
def test_bad_scenario_files_are_named(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ContentError, match=message):
        load_scenario(path)


def test_cli_runs_files_and_writes_the_report(tmp_path):
    out = tmp_path / "r.json"
    path = REPO / "tests" / "scenarios" / "library" / "track-lost-2.5s.yaml"
    proc = subprocess.run([sys.executable, "-m", "xr_server.cli", "scenario", str(path), "--report", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[1/1] track-lost-2.5s:" in proc.stderr and ": ok" in proc.stderr
    report = json.loads(out.read_text())
    assert report["summary"]["scenarios"] == 1 and report["summary"]["failed"] == 0
    assert report["scenarios"][0]["fault_stop_after_s"] is not None
