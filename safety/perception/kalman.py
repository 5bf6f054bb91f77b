"""Constant-velocity Kalman filter for the 3D keypoints of one person (pure numpy).

Each keypoint and axis is an independent constant-velocity model with white-noise
acceleration (Bar-Shalom, Li, Kirubarajan, *Estimation with Applications to Tracking and
Navigation*, 2001, section 6.3.2, "discrete white noise acceleration model"):

    state s = [p, v],  F(dt) = [[1, dt], [0, 1]],  Q(dt) = sigma_a^2 [[dt^4/4, dt^3/2], [dt^3/2, dt^2]]
    measurement z = p + w,  w ~ N(0, r)

The three axes of a keypoint share their covariance (the measurement noise of a
triangulated point is modelled as isotropic), so the state is (N, 3) positions and
velocities and an (N, 2, 2) covariance: all N keypoints are filtered in a few vectorised
numpy operations. A measurement whose normalised innovation squared exceeds `gate_chi2`
(chi-square with 3 degrees of freedom) is rejected as an outlier (section 5.4.2).

Written here rather than taken from a library: `filterpy` (the usual choice) filters one
state vector per object in Python loops and pulls in matplotlib; 33 keypoints per person
at 30+ updates per second want the vectorised form, which is short.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: 99.9 % quantile of the chi-square distribution with 3 degrees of freedom.
CHI2_3DOF_999 = 16.266


@dataclass
class KeypointFilterState:
    """State of the filter; copied (not shared) when a filter is rolled back.

    Attributes:
        position_m: (N, 3) float64, metres; NaN where never measured.
        velocity_mps: (N, 3) float64, m/s.
        covariance: (N, 2, 2) float64: [[var p, cov pv], [cov pv, var v]] per keypoint and axis
            (m^2, m^2/s, m^2/s^2).
        stamp_ns: time the state refers to, ns.
    """

    position_m: np.ndarray
    velocity_mps: np.ndarray
    covariance: np.ndarray
    stamp_ns: int

    def copy(self) -> KeypointFilterState:
        return KeypointFilterState(self.position_m.copy(), self.velocity_mps.copy(), self.covariance.copy(),
                                   self.stamp_ns)

    @property
    def position_sigma_m(self) -> np.ndarray:
        """(N,) float64, metres: 1-sigma position uncertainty per keypoint and axis."""
        return np.sqrt(np.maximum(self.covariance[:, 0, 0], 0.0))


class KeypointKalmanFilter:
    """Constant-velocity Kalman filter of N 3D keypoints. Not thread-safe (one owner).

    Args:
        num_points: N.
        accel_sigma_mps2: sigma_a, the white-noise acceleration, m/s^2.
        initial_velocity_sigma_mps: velocity uncertainty of a newly measured keypoint, m/s.
        gate_chi2: outlier gate on the normalised innovation squared (3 dof).
    """

    def __init__(self, num_points: int, *, accel_sigma_mps2: float = 6.0, initial_velocity_sigma_mps: float = 1.6,
                 gate_chi2: float = CHI2_3DOF_999) -> None:
        self.accel_var = accel_sigma_mps2 ** 2
        self.v0_var = initial_velocity_sigma_mps ** 2
        self.gate_chi2 = gate_chi2
        self.state = KeypointFilterState(np.full((num_points, 3), np.nan), np.zeros((num_points, 3)),
                                         np.zeros((num_points, 2, 2)), 0)

    def predicted(self, stamp_ns: int) -> KeypointFilterState:
        """The state predicted to `stamp_ns` (the filter is not changed).

        Backwards prediction (a stamp older than the state) extrapolates back without
        shrinking the covariance.
        """
        s = self.state
        dt = (stamp_ns - s.stamp_ns) * 1e-9
        adt = abs(dt)
        a, b, c = s.covariance[:, 0, 0], s.covariance[:, 0, 1], s.covariance[:, 1, 1]
        # F P F^T + Q written out for 2 x 2 (numpy's stacked matmul calls BLAS, whose
        # threads spin for longer than these tiny products take).
        P = np.empty_like(s.covariance)
        P[:, 0, 0] = a + 2 * dt * b + dt * dt * c + self.accel_var * adt ** 4 / 4
        P[:, 0, 1] = P[:, 1, 0] = b + dt * c + self.accel_var * adt ** 3 / 2
        P[:, 1, 1] = c + self.accel_var * adt ** 2
        return KeypointFilterState(s.position_m + s.velocity_mps * dt, s.velocity_mps.copy(), P, stamp_ns)

    def update(self, stamp_ns: int, measured_m: np.ndarray, variance_m2: np.ndarray, *,
               force: np.ndarray | None = None) -> np.ndarray:
        """Predict to `stamp_ns`, then correct with the measured keypoints.

        Args:
            stamp_ns: time of the measurement, ns.
            measured_m: (N, 3) float64, metres; NaN rows are not measured (prediction only).
            variance_m2: (N,) float64, measurement variance per axis, m^2.
            force: (N,) bool: keypoints (re)started at their measurement (no gate), e.g. a
                keypoint not measured for a long time. Keypoints never measured always start.

        Returns:
            (N,) bool: keypoints whose measurement was used (started or passed the gate).
        """
        pred = self.predicted(stamp_ns)
        z = np.asarray(measured_m, dtype=np.float64)
        r = np.asarray(variance_m2, dtype=np.float64)
        has = np.isfinite(z).all(axis=1)
        start = has & ~np.isfinite(pred.position_m).all(axis=1)
        if force is not None:
            start |= has & force
        P = pred.covariance
        S = P[:, 0, 0] + r                                               # (N,)
        y = z - pred.position_m                                          # (N, 3)
        # Every row computed, the unused ones discarded by np.where: fewer numpy calls than
        # indexing the used rows (the arithmetic of a used row is the same).
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            nis = (y ** 2).sum(axis=1) / S
            use = has & ~start & (nis <= self.gate_chi2)
            K = P[:, :, 0] / S[:, None]                                  # (N, 2): gains for p and v
            u = use[:, None]
            pos = np.where(u, pred.position_m + K[:, 0:1] * y, pred.position_m)
            vel = np.where(u, pred.velocity_mps + K[:, 1:2] * y, pred.velocity_mps)
            # (I - K H) P with H = [1, 0], written out for 2 x 2.
            P_new = np.empty_like(P)
            a, b, c = P[:, 0, 0], P[:, 0, 1], P[:, 1, 1]
            k0 = 1 - K[:, 0]
            P_new[:, 0, 0] = np.where(use, k0 * a, a)
            P_new[:, 0, 1] = np.where(use, k0 * b, b)
            P_new[:, 1, 0] = np.where(use, k0 * b, P[:, 1, 0])
            P_new[:, 1, 1] = np.where(use, c - K[:, 1] * b, c)
        if start.any():
            pos[start], vel[start] = z[start], 0.0
            P_new[start] = 0.0
            P_new[start, 0, 0], P_new[start, 1, 1] = r[start], self.v0_var
        self.state = KeypointFilterState(pos, vel, P_new, stamp_ns)
        return use | start

    def restart(self, points: np.ndarray, measured_m: np.ndarray, variance_m2: np.ndarray) -> None:
        """Start keypoints again at their measurement, at the state's stamp (velocity 0).

        Args:
            points: (N,) bool, the keypoints to restart; each must have a finite measurement.
            measured_m: (N, 3) float64, metres.
            variance_m2: (N,) float64, measurement variance per axis, m^2.
        """
        s = self.state
        s.position_m[points] = measured_m[points]
        s.velocity_mps[points] = 0.0
        s.covariance[points] = 0.0
        s.covariance[points, 0, 0] = variance_m2[points]
        s.covariance[points, 1, 1] = self.v0_var
