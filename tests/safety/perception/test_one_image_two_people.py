"""Two people in one camera's image are two people, however near (`MultiPersonTracker`).

The rules that keep one person to one id under load (a one-view floor placement next to a track
triangulated lately, or next to what a confirmed track just took, is that track's person, not a
new one) must not swallow a second person whom only one camera sees: a detection of the same
image as the one a track took is another person. Real calibrations (Pose2Sim Demo_SinglePerson),
synthetic bodies projected into them, `MultiPersonTracker.update` driven directly.
"""

from __future__ import annotations

import numpy as np
import pytest

from safety.perception import MultiPersonTracker, Pose2D, View, project_points
from tests.safety.perception.test_coasting import BOUNDS, PERIOD_NS, SEC, body_at, cals  # noqa: F401


def _hip_centre(keypoints: np.ndarray) -> np.ndarray:
    return 0.5 * (keypoints[23, :2] + keypoints[24, :2])


@pytest.mark.parametrize("apart_m", [0.5, 1.0, 1.6])
def test_a_second_person_only_one_camera_sees_gets_a_track_next_to_a_triangulated_one(cals, apart_m):
    tracker = MultiPersonTracker(cell_bounds=BOUNDS, floor_z_m=0.0)
    a, b = body_at(-1.0, 0.0), body_at(-1.0, apart_m)
    for k in range(12):
        stamp = SEC + k * PERIOD_NS
        both = tuple(Pose2D(project_points(cals["cam01"], body), np.ones(33)) for body in (a, b))
        only_a = (Pose2D(project_points(cals["cam02"], a), np.ones(33)),)
        tracker.update([View("cam01", cals["cam01"], stamp, both),
                        View("cam02", cals["cam02"], stamp, only_a)], stamp)
    tracks = tracker.tracks()
    assert len(tracks) == 2, [(t.track_id, t.placement) for t in tracks]
    first, second = tracks
    assert first.placement == "triangulated" and second.placement == "floor"
    np.testing.assert_allclose(_hip_centre(first.keypoints_cell), _hip_centre(a), atol=0.02)
    # The stick body's one-view placement is biased (no real proportions), but it is not `a`.
    assert np.linalg.norm(_hip_centre(second.keypoints_cell) - _hip_centre(a)) > 0.3
