"""The issue's acceptance checks on Pose2Sim Demo_SinglePerson (4 cameras, real MediaPipe).

Every second frame of the 100-frame clip (30 frame times per second) goes through the same
per-camera estimator as the live pipeline (`MultiPersonEstimator` with MediaPipe's person
detector) and the `MultiPersonTracker`; offline, so the figures do not depend on the load of
the machine. The landmark model is MediaPipe's heavy one (`model_complexity=2`, installed from
npm by the set-up): with the full model (the demo's) the std of the limb lengths over the clip
reaches 7.7 cm filtered and 3.8 cm triangulated (a forearm), with the heavy one at most 2.3 cm.

- a person in >= 95 % of the frames of every view;
- one identity for the whole clip;
- triangulated thigh, shank, upper arm and forearm within 0.2-0.6 m, std over the clip < 3 cm;
- median reprojection error after outlier rejection <= 10 px (full-resolution pixels).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from content.calibration import read_qca
from safety.perception import MultiPersonTracker, View
from tests.safety.perception.footage import estimate_clip

CLIP = Path(__file__).resolve().parents[3] / "data" / "pose2sim" / "Demo_SinglePerson"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")
RESIZE = 0.5
STRIDE = 2
MODEL = 2                         # MediaPipe heavy
LIMBS = {"thigh": (23, 25), "shank": (25, 27), "upper arm": (11, 13), "forearm": (13, 15)}


@pytest.fixture(scope="module")
def tracked():
    """Per frame time: the tracks measured in it; the per-camera person counts; the tracker."""
    if not (CLIP / "videos" / "cam01.mp4").is_file():
        pytest.fail(f"test data missing: {CLIP}; run `make test` (it fetches the Pose2Sim demo data)")
    calib = {c: cal.scaled(RESIZE) for c, cal in read_qca(CLIP / "calibration" / "Calib.qca.txt").items()}
    per_time = estimate_clip(CLIP, CAMERAS, model_complexity=MODEL, stride=STRIDE, resize=RESIZE)
    tracker = MultiPersonTracker()
    history = []
    for stamp, people in per_time:
        tracker.update([View(c, calib[c], stamp, people[c]) for c in CAMERAS], stamp)
        history.append([t for t in tracker.tracks() if t.newest_capture_ns == stamp])
    counts = {c: [len(people[c]) for _, people in per_time] for c in CAMERAS}
    return history, counts, tracker


def test_a_person_in_at_least_95_percent_of_the_frames_of_every_view(tracked):
    _, counts, _ = tracked
    for cam, n in counts.items():
        assert len(n) == 50
        assert sum(1 for x in n if x >= 1) >= 0.95 * len(n), (cam, n)
        assert max(n) == 1, (cam, n)                    # nobody else: no ghost from the detector


def test_one_identity_for_the_whole_clip(tracked):
    history, _, tracker = tracked
    assert tracker.tracks_started == 1
    assert sum(1 for h in history if h) >= 0.95 * len(history)
    assert {t.track_id for h in history for t in h} == {"p1"}


def test_limb_lengths_are_human_and_stable(tracked):
    history, _, _ = tracked
    kp = np.stack([h[0].keypoints_cell for h in history if h])
    for name, (a, b) in LIMBS.items():
        for side in (0, 1):
            length = np.linalg.norm(kp[:, a + side] - kp[:, b + side], axis=1)
            length = length[np.isfinite(length)]
            assert len(length) >= 0.9 * len(kp), (name, side, len(length))
            assert 0.2 <= np.median(length) <= 0.6, (name, side, np.median(length))
            assert np.std(length) < 0.03, (name, side, np.std(length))


def test_median_reprojection_error_is_at_most_10_px(tracked):
    _, _, tracker = tracked
    assert np.median(list(tracker.reprojection_px)) / RESIZE <= 10.0
