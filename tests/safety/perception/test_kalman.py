"""Constant-velocity keypoint filter: velocity, uncertainty, outlier gate, restart."""

from __future__ import annotations

import numpy as np

from safety.perception.kalman import KeypointKalmanFilter


def _walk(kf, v, n, dt_ns=100_000_000, noise=0.0, rng=None):
    p0 = np.array([[0.0, 0.0, 1.0], [0.5, 0.0, 1.5]])
    for k in range(n):
        z = p0 + np.asarray(v) * k * dt_ns * 1e-9
        if noise:
            z = z + rng.normal(0.0, noise, z.shape)
        kf.update(k * dt_ns, z, np.full(2, max(noise, 1e-3) ** 2))
    return p0 + np.asarray(v) * (n - 1) * dt_ns * 1e-9


def test_velocity_is_recovered_and_uncertainty_shrinks():
    kf = KeypointKalmanFilter(2)
    rng = np.random.default_rng(1)
    last = _walk(kf, [1.2, -0.4, 0.0], 30, noise=0.01, rng=rng)
    np.testing.assert_allclose(kf.state.velocity_mps, [[1.2, -0.4, 0.0]] * 2, atol=0.2)
    np.testing.assert_allclose(kf.state.position_m, last, atol=0.05)
    assert (kf.state.position_sigma_m < 0.015).all()


def test_unmeasured_keypoint_is_predicted_with_growing_uncertainty():
    kf = KeypointKalmanFilter(2)
    _walk(kf, [1.0, 0.0, 0.0], 10)
    sigma0 = kf.state.position_sigma_m[1]
    z = np.array([[0.9, 0.0, 1.0], [np.nan] * 3])
    used = kf.update(1_000_000_000, z, np.full(2, 1e-6))
    assert used.tolist() == [True, False]
    assert kf.state.position_m[1, 0] == np.float64(kf.state.position_m[1, 0])
    np.testing.assert_allclose(kf.state.position_m[1], [1.5, 0.0, 1.5], atol=0.01)   # 0.5 + 1 m/s * 1.0 s
    assert kf.state.position_sigma_m[1] > sigma0


def test_outlier_is_gated_unless_forced():
    kf = KeypointKalmanFilter(2)
    _walk(kf, [0.0, 0.0, 0.0], 10)
    z = np.array([[0.0, 0.0, 1.0], [2.5, 0.0, 1.5]])          # keypoint 1 jumps 2 m in 0.1 s
    used = kf.update(1_000_000_000, z, np.full(2, 1e-4))
    assert used.tolist() == [True, False]
    np.testing.assert_allclose(kf.state.position_m[1], [0.5, 0.0, 1.5], atol=0.01)
    used = kf.update(1_100_000_000, z, np.full(2, 1e-4), force=np.array([False, True]))
    assert used.tolist() == [True, True]
    np.testing.assert_allclose(kf.state.position_m[1], [2.5, 0.0, 1.5])
    np.testing.assert_allclose(kf.state.velocity_mps[1], 0.0)


def test_restart_puts_keypoints_at_their_measurement_with_no_velocity():
    kf = KeypointKalmanFilter(2)
    _walk(kf, [4.0, 0.0, 0.0], 3)                              # a velocity learnt from jitter
    stamp = kf.state.stamp_ns
    z = np.array([[9.0, 9.0, 9.0], [0.4, 0.1, 1.5]])
    kf.restart(np.array([False, True]), z, np.array([1e-4, 4e-4]))
    assert kf.state.stamp_ns == stamp
    np.testing.assert_allclose(kf.state.position_m[1], [0.4, 0.1, 1.5])
    np.testing.assert_allclose(kf.state.velocity_mps[1], 0.0)
    np.testing.assert_allclose(kf.state.position_sigma_m[1], 0.02)
    np.testing.assert_allclose(kf.state.velocity_mps[0], [4.0, 0.0, 0.0], atol=0.5)   # untouched
