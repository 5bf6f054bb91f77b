"""Left/right swaps of the 2D detector: a mirrored view is found and undone, and the batched
search decides exactly as one triangulation per hypothesis would."""

from __future__ import annotations

import numpy as np
import pytest

from safety.perception.plausibility import MIRROR, implausible_keypoints, resolve_left_right_swaps
from safety.perception.triangulation import project_points, triangulate
from tests.safety.perception.test_triangulation import CAMS

# A standing body: each left landmark 0.15 m to the +y side of its right mirror, heights 0..1.8 m.
_SIDE = np.sign(np.arange(33) - MIRROR)            # +1 left, -1 right, 0 nose
BODY = np.column_stack([np.zeros(33), 0.15 * _SIDE, np.linspace(1.8, 0.0, 33)])


def _views(rng: np.random.Generator, noise_px: float) -> np.ndarray:
    obs = np.stack([project_points(c, BODY) for c in CAMS])
    return obs + rng.normal(0.0, noise_px, obs.shape)


def _sequential(calibrations, keypoints_px, visibility, triangulate_fn):
    """The search one triangulation per hypothesis, as it was written first."""
    kp, vis = np.array(keypoints_px, copy=True), np.array(visibility, copy=True)

    def score(k, v) -> float:
        err = triangulate_fn(calibrations, k, v, max_reprojection_error_px=np.inf).reprojection_error_px
        return float(np.nanmedian(err)) if np.isfinite(err).any() else np.inf

    best, mirrored = score(kp, vis), []
    for view in range(1, kp.shape[0]):
        k2, v2 = kp.copy(), vis.copy()
        k2[view], v2[view] = kp[view][MIRROR], vis[view][MIRROR]
        s = score(k2, v2)
        if s < 0.7 * best:
            kp, vis, best = k2, v2, s
            mirrored.append(view)
    return kp, vis, tuple(mirrored)


@pytest.mark.parametrize("swapped", [(), (2,), (1, 3)])     # view 0 is the reference
def test_mirrored_views_are_found_and_undone(swapped):
    rng = np.random.default_rng(7)
    obs = _views(rng, 0.5)
    vis = np.ones((4, 33))
    seen = obs.copy()
    for view in swapped:
        seen[view] = obs[view][MIRROR]
    kp, _, mirrored, _ = resolve_left_right_swaps(CAMS, seen, vis, triangulate)
    assert mirrored == swapped
    np.testing.assert_allclose(kp, obs)


def test_the_batched_search_decides_as_one_triangulation_per_hypothesis():
    rng = np.random.default_rng(11)
    decided = []
    for trial in range(60):
        obs = _views(rng, rng.uniform(0.2, 30.0))
        vis = rng.uniform(0.0, 1.0, (4, 33))
        obs[rng.uniform(size=obs.shape[:2]) < 0.1] = np.nan
        for view in np.flatnonzero(rng.uniform(size=4) < 0.4):
            obs[view] = obs[view][MIRROR]
        batched = resolve_left_right_swaps(CAMS, obs, vis, triangulate)
        reference = _sequential(CAMS, obs, vis, triangulate)
        assert batched[2] == reference[2], trial
        np.testing.assert_array_equal(batched[0], reference[0])
        np.testing.assert_array_equal(batched[1], reference[1])
        # the search's triangulation without view rejection is that of the keypoints it returns
        alone = triangulate(CAMS, reference[0], reference[1], max_reprojection_error_px=np.inf)
        np.testing.assert_array_equal(batched.unrejected.points, alone.points)
        np.testing.assert_array_equal(batched.unrejected.views_used, alone.views_used)
        decided.append(len(reference[2]))
    assert decided.count(0) >= 5 and decided.count(1) >= 5 and max(decided) >= 2     # every path taken


def test_a_keypoint_too_far_from_its_parent_is_implausible_and_its_child_is_judged_by_reach_only():
    body = np.tile([0.0, 0.0, 1.0], (33, 1))  # every keypoint at the hip centre: all plausible
    assert not implausible_keypoints(body).any()
    body[25] += [0.0, 0.0, -0.7]             # left knee 0.7 m below the hip: thigh too long
    body[[27, 29, 31]] = body[25] + [0.0, 0.0, -0.45]    # left foot a plausible shank below that knee
    assert np.flatnonzero(implausible_keypoints(body)).tolist() == [25]
    body[15] += [2.0, 0.0, 0.0]              # left wrist 2 m out: beyond any reach; its hand is not judged by it
    assert np.flatnonzero(implausible_keypoints(body)).tolist() == [15, 25]
    body[[27, 29, 31]] += [0.0, 0.0, -0.3]   # the foot 1.45 m from the hips: beyond reach
    assert np.flatnonzero(implausible_keypoints(body)).tolist() == [15, 25, 27, 29, 31]
