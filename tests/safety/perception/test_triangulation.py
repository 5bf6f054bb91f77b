"""Weighted multi-view DLT: accuracy, confidence, rejection of a disagreeing view, errors."""

from __future__ import annotations

import numpy as np
import pytest

from content.calibration import CameraCalibration
from safety.errors import PerceptionError
from safety.perception.triangulation import project_points, reprojection_error, triangulate, undistort_points


def _look_at(name: str, centre: tuple[float, float, float], target=(0.0, 0.0, 1.0)) -> CameraCalibration:
    c = np.asarray(centre, dtype=np.float64)
    z = np.asarray(target) - c
    z /= np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    R = np.stack([x, y, z])
    K = np.array([[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]])
    return CameraCalibration(name, (640, 480), K, np.array([-0.05, 0.02, 0.001, 0.0, 0.0]), R, -R @ c)


CAMS = [_look_at(f"c{i}", (4 * np.cos(a), 4 * np.sin(a), 2.0)) for i, a in enumerate(np.linspace(0, 2 * np.pi, 4, endpoint=False))]
POINTS = np.column_stack([np.linspace(-0.3, 0.3, 33), np.linspace(0.2, -0.2, 33), np.linspace(0.0, 1.8, 33)])


def _observe() -> np.ndarray:
    return np.stack([project_points(c, POINTS) for c in CAMS])


def test_exact_observations_give_exact_points():
    tri = triangulate(CAMS, _observe(), np.ones((4, 33)))
    np.testing.assert_allclose(tri.points, POINTS, atol=1e-6)
    assert (tri.num_views == 4).all()
    assert np.nanmax(tri.reprojection_error_px) < 1e-3
    np.testing.assert_allclose(reprojection_error(CAMS, tri.points, _observe()), 0.0, atol=1e-3)


def test_outlier_view_is_rejected():
    obs = _observe()
    obs[2] += np.array([40.0, -25.0])          # camera c2 disagrees (e.g. a wrong person or a bad frame)
    tri = triangulate(CAMS, obs, np.ones((4, 33)), max_reprojection_error_px=5.0)
    assert not tri.views_used[:, 2].any()
    assert tri.views_used[:, [0, 1, 3]].all()
    assert np.linalg.norm(tri.points - POINTS, axis=1).max() < 1e-3
    naive = triangulate(CAMS, obs, np.ones((4, 33)), max_reprojection_error_px=1e9)
    assert np.linalg.norm(naive.points - POINTS, axis=1).max() > 0.02


def test_low_confidence_and_missing_observations_are_ignored():
    obs = _observe()
    conf = np.ones((4, 33))
    conf[1:, 0] = 0.1          # point 0: one confident view only -> not triangulated
    obs[0, 1] = np.nan         # point 1: three views left
    obs[3, 2] += 500.0
    conf[3, 2] = 0.0           # point 2: the bad observation carries no weight
    tri = triangulate(CAMS, obs, conf)
    assert np.isnan(tri.points[0]).all() and not tri.views_used[0].any() and np.isnan(tri.reprojection_error_px[0])
    assert tri.num_views[1] == 3 and tri.num_views[2] == 3
    np.testing.assert_allclose(tri.points[1:], POINTS[1:], atol=1e-6)


def test_shape_errors_are_domain_errors():
    with pytest.raises(PerceptionError, match=r"expected keypoints \(V=4, N, 2\) and confidence \(V, N\), got \(3, 33, 2\)"):
        triangulate(CAMS, _observe()[:3], np.ones((3, 33)))
    with pytest.raises(PerceptionError, match="needs at least 2 cameras"):
        triangulate(CAMS[:1], _observe()[:1], np.ones((1, 33)))
    with pytest.raises(PerceptionError, match=r"reprojection_error: expected points \(N, 3\)"):
        reprojection_error(CAMS, POINTS[:5], _observe())


def test_undistorted_input_and_a_first_pass_give_the_same_triangulation():
    rng = np.random.default_rng(3)
    obs = _observe() + rng.normal(0.0, 0.3, (4, 33, 2))
    obs[2, :10] += np.array([40.0, -25.0])     # a disagreeing view for a third of the points
    conf = rng.uniform(0.6, 1.0, (4, 33))
    ref = triangulate(CAMS, obs, conf, max_reprojection_error_px=5.0)
    und = np.stack([undistort_points(c, obs[v]) for v, c in enumerate(CAMS)])
    first = triangulate(CAMS, und, conf, undistorted=True, max_reprojection_error_px=np.inf)
    assert first.views_used[:10, 2].all()                # no view rejected in the first pass
    for tri in (triangulate(CAMS, und, conf, undistorted=True, max_reprojection_error_px=5.0),
                triangulate(CAMS, und, conf, undistorted=True, max_reprojection_error_px=5.0, first_pass=first)):
        assert not tri.views_used[:10, 2].any()
        np.testing.assert_array_equal(tri.views_used, ref.views_used)
        np.testing.assert_allclose(tri.points, ref.points, rtol=0, atol=1e-9)
        np.testing.assert_allclose(tri.reprojection_error_px, ref.reprojection_error_px, rtol=0, atol=1e-6)
    with pytest.raises(PerceptionError, match=r"first_pass is of \(4, 5\) \(views, points\), expected \(4, 33\)"):
        triangulate(CAMS, obs, conf, first_pass=first.take(0, 5))
