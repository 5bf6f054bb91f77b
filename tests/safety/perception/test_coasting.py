"""Coasting tracks (`safety.perception.tracker`): a person every view misses for a moment keeps his
track, moved on at constant velocity, with a sigma that only grows until a view measures him
again; he is reported lost only when that sigma passes its limit.

Real calibrations (Pose2Sim Demo_SinglePerson, 4 cameras) and a synthetic body projected into
them feed `MultiPersonTracker.update` directly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from content.calibration import read_qca
from content.cell import SafetyParameters
from safety.decision import person_terms
from safety.errors import PerceptionError
from safety.perception import MultiPersonTracker, Pose2D, View, project_points
from safety.perception.tracker import coast_hold_s, coast_sigma_m

CLIP = Path(__file__).resolve().parents[3] / "data" / "pose2sim" / "Demo_SinglePerson"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")
BOUNDS = (np.array([-3.0, -3.0, -0.5]), np.array([3.0, 3.0, 3.0]))
SEC = 1_000_000_000
PERIOD_NS = 100_000_000


def body_at(x: float, y: float) -> np.ndarray:
    """(33, 3) a standing 'stick' person whose feet are at (x, y, 0), metres, cell frame."""
    body = np.column_stack([np.full(33, x), np.full(33, y), np.linspace(1.7, 0.0, 33)])
    body[[17, 19, 21]] = body[15] + [0.0, 0.0, -0.05]
    body[[18, 20, 22]] = body[16] + [0.0, 0.0, -0.05]
    return body


@pytest.fixture(scope="module")
def cals():
    if not (CLIP / "calibration" / "Calib.qca.txt").is_file():
        pytest.fail(f"test data missing: {CLIP}; run `make test` (it fetches the Pose2Sim demo data)")
    calib = read_qca(CLIP / "calibration" / "Calib.qca.txt")
    return {c: calib[c] for c in CAMERAS}


def views(cals, body: np.ndarray, stamp_ns: int) -> list[View]:
    return [View(c, cal, stamp_ns, (Pose2D(project_points(cal, body), np.ones(33)),)) for c, cal in cals.items()]


def walk(tracker: MultiPersonTracker, cals, velocity: tuple[float, float], steps: int = 8,
         start_ns: int = SEC) -> tuple[int, np.ndarray]:
    """Measure a person walking from (-1, 0) at `velocity` m/s for `steps` periods; returns the
    last stamp and body."""
    for k in range(steps):
        t = k * PERIOD_NS / 1e9
        body = body_at(-1.0 + velocity[0] * t, velocity[1] * t)
        stamp = start_ns + k * PERIOD_NS
        tracker.update(views(cals, body, stamp), stamp)
    return stamp, body


@settings(max_examples=40, deadline=None)
@given(vx=st.floats(-1.2, 1.2), vy=st.floats(-1.2, 1.2),
       gaps=st.lists(st.integers(1, 200_000_000), min_size=1, max_size=25))
def test_a_coasting_tracks_sigma_never_shrinks_without_a_measurement(cals, vx, vy, gaps):
    tracker = MultiPersonTracker(cell_bounds=BOUNDS)
    last, body = walk(tracker, cals, (vx, vy))
    (measured,) = tracker.tracks()
    params = SafetyParameters()
    sigma, z_d, now = measured.sigma_m, person_terms(measured, last, params)[2], last
    for gap in gaps:
        now += gap
        tracker.expire(now)
        tracks = tracker.tracks()
        if not tracks:                               # past the sigma limit: lost inside the cell
            assert tracker.lost_ids() == (measured.track_id,)
            assert (now - last) / 1e9 >= coast_hold_s(measured.sigma_m, float(np.linalg.norm(measured.velocity_mps)),
                                                      1.0, 2.0) - 1e-6
            break
        (track,) = tracks
        assert track.track_id == measured.track_id and track.sigma_m >= sigma
        # Z_d of the monitor's S_p: never smaller than the last measurement's, never shrinking.
        assert person_terms(track, now, params)[2] >= z_d
        sigma, z_d = track.sigma_m, person_terms(track, now, params)[2]
        assert track.sigma_m <= 1.0 and track.capture_ns == measured.capture_ns
        if track.coast_s:
            # Constant velocity: the last measured posture moved on rigidly by v * t, and that
            # offset never exceeds what the sigma grew by (|v| t is one of its terms).
            moved = (track.keypoints_cell - measured.keypoints_cell)[np.isfinite(measured.keypoints_cell).all(axis=1)]
            np.testing.assert_allclose(moved, np.broadcast_to(moved[0], moved.shape), atol=1e-9)
            assert np.linalg.norm(moved[0]) <= track.sigma_m - measured.sigma_m + 1e-9
            if track.coast_s > 0.05:
                np.testing.assert_allclose(moved[0][:2] / track.coast_s, (vx, vy), atol=0.1)


def test_a_person_every_view_misses_coasts_and_is_reassociated_with_his_id(cals):
    tracker = MultiPersonTracker(cell_bounds=BOUNDS)
    last, body = walk(tracker, cals, (0.8, 0.0))
    (measured,) = tracker.tracks()
    assert measured.coast_s == 0.0 and measured.velocity_mps[0] == pytest.approx(0.8, abs=0.15)
    # 0.6 s without a view (longer than the old fixed 0.5 s time-out): still tracked, coasting.
    tracker.update([], last + 600_000_000)
    (coasting,) = tracker.tracks()
    assert coasting.track_id == measured.track_id and coasting.coast_s == pytest.approx(0.6)
    assert coasting.sigma_m == pytest.approx(coast_sigma_m(measured.sigma_m, 0.8, 0.6, 2.0), abs=0.02)
    hip = coasting.keypoints_cell[23] - measured.keypoints_cell[23]
    np.testing.assert_allclose(hip, [0.8 * 0.6, 0.0, 0.0], atol=0.03)            # walked on at 0.8 m/s
    assert tracker.lost_ids() == () and coasting.keypoints_px == ()
    # He walked on at 0.8 m/s and a view finds him again: the same id, measured, small sigma.
    found = body_at(-1.0 + 0.8 * 1.3, 0.0)
    tracker.update(views(cals, found, last + 600_000_000), last + 600_000_000)
    (again,) = tracker.tracks()
    assert again.track_id == measured.track_id and again.coast_s == 0.0 and again.sigma_m < 0.1
    assert tracker.tracks_started == 1
    np.testing.assert_allclose(again.keypoints_cell[23], found[23], atol=0.05)


def test_the_hold_bound_follows_from_the_sigma_limit(cals):
    assert coast_hold_s(0.02, 0.0, 1.0, 2.0) == pytest.approx(0.99, abs=0.01)      # standing still
    assert coast_hold_s(0.02, 1.2, 1.0, 2.0) == pytest.approx(0.55, abs=0.01)      # walking
    assert coast_hold_s(1.2, 0.0, 1.0, 2.0) == 0.0
    for limit, standing_hold_s in ((0.5, 0.69), (2.0, 1.40)):
        tracker = MultiPersonTracker(cell_bounds=BOUNDS, coast_sigma_limit_m=limit)
        last, _ = walk(tracker, cals, (0.0, 0.0))
        tracker.expire(last + int((standing_hold_s - 0.05) * SEC))
        assert len(tracker.tracks()) == 1 and tracker.lost_ids() == ()
        tracker.expire(last + int((standing_hold_s + 0.05) * SEC))
        assert tracker.tracks() == () and len(tracker.lost_ids()) == 1


def test_a_track_coasting_out_of_the_cell_bounds_is_still_lost_where_it_was_last_seen(cals):
    tracker = MultiPersonTracker(cell_bounds=(np.array([-3.0, -3.0, -0.5]), np.array([0.0, 3.0, 3.0])))
    last, _ = walk(tracker, cals, (1.2, 0.0))              # last measured at x = -0.16, inside the box
    tracker.expire(last + 500_000_000)
    (coasting,) = tracker.tracks()
    assert coasting.keypoints_cell[23, 0] > 0.3             # predicted out of the box by now
    tracker.expire(last + 2 * SEC)
    # Predicted out of the box but measured last inside it: lost, a fault (not "left the cell").
    assert tracker.tracks() == () and len(tracker.lost_ids()) == 1


def test_without_a_sigma_limit_the_fixed_time_out_applies(cals):
    tracker = MultiPersonTracker(cell_bounds=BOUNDS, coast_sigma_limit_m=None, track_timeout_s=0.5)
    last, _ = walk(tracker, cals, (0.5, 0.0))
    tracker.expire(last + 400_000_000)
    (held,) = tracker.tracks()
    assert held.coast_s == 0.0
    tracker.expire(last + 600_000_000)
    assert tracker.tracks() == () and len(tracker.lost_ids()) == 1
    with pytest.raises(PerceptionError, match=r"coasting: coast_sigma_limit_m must be > 0"):
        MultiPersonTracker(coast_sigma_limit_m=0.0)
