"""Simulate, then apply: a commanded path played against the people's predicted positions.

Before the gate forwards a trajectory it plays the path on the robot model (link capsules at
every swept sample, at the time the robot will reach it under the speed scale in force) against
the people tracked now, moved along their measured velocity, and asks what the safety monitor
would do at that moment: a sample where the monitor's allowed speed scale would fall below
`min_speed_scale` (the monitor then holds a protective stop) is a conflict, and the gate refuses
the command instead of starting a motion that would have to be stopped half-way.

This is planning, not the safety function: the prediction (constant velocity, for at most
`path_prediction_horizon_s`) is a best estimate, and the monitor still decides every cycle from
what is measured. The threshold is the monitor's own: the allowed speed
v_max(d) (`safety.ssm.max_robot_speed_mps`) is below v_min = min_speed_scale * nominal speed
exactly when d - separation_buffer_m < S_p(v_min), each body capsule with its own approach
speed v_h (hands and arms 2.0 m/s, the rest 1.6 m/s, ISO 13855 clause 6.2.3), (ISO/TS 15066 clause 5.5.4.2.3, formula (1),
which v_max inverts); the gate keeps `path_clearance_m` more, so that the jitter of the
monitor's inputs does not stop a motion it let start.

Pure: no clock, no threads, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from content.cell import SafetyParameters
from safety.decision import body_capsules, person_terms
from safety.distance import ARM_CAPSULE_NAMES, segment_closest_points
from safety.perception.types import PerceptionSnapshot
from safety.ssm import StoppingModel, protective_separation_distance


@dataclass(frozen=True)
class PathConflict:
    """The first moment along a path at which the monitor would hold a protective stop.

    Attributes:
        sample: index of the swept sample.
        time_s: when the robot reaches the sample, seconds from now, at the speed scale in force.
        person: track id.
        body_part: the body capsule ("left_elbow-left_wrist").
        link: the robot capsule.
        separation_m: predicted surface distance between them, metres.
        required_m: the smallest separation the gate plans with: where the monitor still lets
            the robot move (S_p at the minimum useful speed plus the separation buffer), plus
            the planning clearance `path_clearance_m`, metres.
    """

    sample: int
    time_s: float
    person: str
    body_part: str
    link: str
    separation_m: float
    required_m: float

    def describe(self) -> str:
        """The conflict in words, for the gate's answer."""
        return (f"people: at t = {self.time_s:.2f} s of the path, {self.link} would be "
                f"{self.separation_m:.3f} m from person {self.person} ({self.body_part}), below the "
                f"{self.required_m:.3f} m the monitor needs to let the robot move (with the planning "
                f"clearance)")


def _required_m(track, now_ns: int, params: SafetyParameters, v_h_floor_mps: float, stopping: StoppingModel,
                v_min_mps: float) -> float:
    """The separation the gate plans with for one body region of `track`, metres."""
    v_h, t_r, z_d = person_terms(track, now_ns, params, v_h_floor_mps)
    return protective_separation_distance(
        v_h_mps=v_h, v_r_mps=v_min_mps, reaction_time_s=t_r, stopping=stopping,
        intrusion_distance_m=params.intrusion_distance_m, z_d_m=z_d,
        z_r_m=params.robot_uncertainty_m).total_m + params.separation_buffer_m + params.path_clearance_m


def first_path_conflict(
    link_segments: np.ndarray, link_radii_m: np.ndarray, link_names: tuple[str, ...],
    path_times_s: np.ndarray, perception: PerceptionSnapshot, now_ns: int,
    params: SafetyParameters, stopping: StoppingModel, nominal_speed_mps: float,
) -> PathConflict | None:
    """The first swept sample of a path at which a predicted person is too close for motion.

    Args:
        link_segments: (S, K, 2, 3) link capsule axes at each swept sample, metres, `cell` frame
            (`LinkKinematics.link_segments` of the samples of `safety.gate.sweep_samples`).
        link_radii_m: (K,) capsule radii, metres.
        link_names: (K,) capsule names.
        path_times_s: (S,) when the robot reaches each sample, seconds from now, with the speed
            scale in force already applied (commanded time / scale).
        perception: the newest tracking snapshot; its people are moved along `velocity_mps`
            (`cell` frame) from their capture time to each sample's time, for at most
            `params.path_prediction_horizon_s` past now.
        now_ns: monotonic time now (the clock of the snapshot's stamps).
        params: the cell's safety parameters (v_h, T_r, C, Z, buffer, min_speed_scale).
        stopping: the robot's stopping model.
        nominal_speed_mps: the robot's speed at scale 1, m/s.

    Returns:
        The first conflict in path order (the closest person at that sample), or None.

    Raises:
        ValueError: the shapes of the link arrays and times disagree.
    """
    segs = np.asarray(link_segments, dtype=np.float64)
    times = np.asarray(path_times_s, dtype=np.float64)
    radii = np.asarray(link_radii_m, dtype=np.float64)
    if segs.ndim != 4 or segs.shape[2:] != (2, 3) or segs.shape[0] != times.shape[0] \
            or segs.shape[1] != radii.shape[0] or len(link_names) != radii.shape[0]:
        raise ValueError(f"path shapes disagree: link_segments {segs.shape}, radii {radii.shape}, "
                         f"{len(link_names)} names, times {times.shape}")
    if not perception.tracks or segs.shape[0] == 0:
        return None
    v_min = params.min_speed_scale * nominal_speed_mps
    horizon_s = params.path_prediction_horizon_s
    best: PathConflict | None = None
    for track, (h_segs, h_radii, names) in zip(perception.tracks, body_capsules(perception, params)):
        if h_segs.shape[0] == 0:
            continue
        # each body capsule at its region's approach speed (ISO 13855: hands and arms faster)
        arm = np.fromiter((n in ARM_CAPSULE_NAMES for n in names), dtype=bool, count=len(names))
        required = np.where(arm, _required_m(track, now_ns, params, params.hand_arm_speed_mps, stopping, v_min),
                            _required_m(track, now_ns, params, params.human_speed_mps, stopping, v_min))  # (H,)
        age_s = max(0.0, (now_ns - track.capture_ns) / 1e9)
        shift_s = np.minimum(times, horizon_s) + age_s                                  # (S,)
        velocity = np.nan_to_num(np.asarray(track.velocity_mps, dtype=np.float64))
        moved = h_segs[None] + (shift_s[:, None, None, None] * velocity)                 # (S, H, 2, 3)
        # every link capsule (S, K, 1) against every body capsule (S, 1, H) at each sample
        c_robot, c_human = segment_closest_points(
            segs[:, :, None, 0], segs[:, :, None, 1], moved[:, None, :, 0], moved[:, None, :, 1])
        dist = np.linalg.norm(c_robot - c_human, axis=-1) - radii[None, :, None] - h_radii[None, None, :]
        close = (dist < required[None, None, :]).any(axis=(1, 2))
        if not close.any():
            continue
        s = int(np.argmax(close))
        if best is not None and times[s] >= best.time_s:
            continue
        k, h = np.unravel_index(int(np.argmin(dist[s] - required[None, :])), dist[s].shape)
        best = PathConflict(s, float(times[s]), track.track_id, names[h], link_names[k], float(dist[s, k, h]),
                            float(required[h]))
    return best
