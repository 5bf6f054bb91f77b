"""Test doubles at the transport seam: robot states and tracking snapshots built by hand."""

from __future__ import annotations

import numpy as np

from robot_bridge.types import ControllerMode, RobotState, StopCategory
from safety.perception.types import CameraStatus, HumanTrack, PerceptionSnapshot

MS = 1_000_000


def robot_state(now_ns: int, *, speed_mps: float = 1.0, segments=None, radii=None,
                healthy: bool = True, safety_seq: int = 0, applied_ns: int = 0) -> RobotState:
    """A one-capsule robot: a vertical column at the origin, 1 m tall, radius 0.1 m."""
    segs = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]) if segments is None else np.asarray(segments, float)
    rad = np.full(len(segs), 0.1) if radii is None else np.asarray(radii, float)
    return RobotState(
        stamp_ns=now_ns, joint_names=("j1",), position=np.zeros(1), velocity=np.zeros(1),
        tcp_position=segs[-1, 1], tcp_velocity_mps=np.array([speed_mps, 0, 0]),
        link_names=tuple(f"link{i}" for i in range(len(segs))), link_segments=segs, link_radii_m=rad,
        link_speeds_mps=np.full(len(segs), speed_mps), speed_scale=1.0, mode=ControllerMode.EXECUTING,
        healthy=healthy, safety_seq=safety_seq, safety_applied_ns=applied_ns)


def standing_person(x_m: float, y_m: float = 0.0) -> np.ndarray:
    """(33, 3) keypoints of an upright person 1.7 m tall, all at distance x from the z axis."""
    kp = np.zeros((33, 3))
    kp[:, 0] = x_m
    kp[:, 1] = y_m
    kp[:, 2] = np.linspace(1.7, 0.0, 33)
    return kp


def snapshot(now_ns: int, people=(), *, camera_age_ns: int = 10 * MS, capture_age_ns: int = 50 * MS,
             velocity=(0.0, 0.0, 0.0), sigma_m: float = 0.02, lost=(), cameras=("cam01", "cam02")
             ) -> PerceptionSnapshot:
    """A snapshot with `people` given as (33, 3) keypoint arrays."""
    tracks = tuple(
        HumanTrack(f"p{i + 1}", np.asarray(kp, float), np.ones(33), np.asarray(velocity, float), sigma_m,
                   now_ns - capture_age_ns, now_ns - capture_age_ns // 2, cameras)
        for i, kp in enumerate(people))
    cams = tuple(CameraStatus(c, now_ns - camera_age_ns, now_ns - camera_age_ns, 100, 20, 80, 20) for c in cameras)
    return PerceptionSnapshot(now_ns, tracks, cams, tuple(lost))


class FakeBackend:
    """A RobotBackend that records what it was told; state is set by the test."""

    joint_names = ("j1",)
    joint_lower_limits = (-1.0,)
    joint_upper_limits = (1.0,)

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.state: RobotState | None = None

    def start(self) -> None: ...
    def shutdown(self) -> None: ...

    def latest_state(self) -> RobotState | None:
        return self.state

    def execute(self, command) -> None:
        self.calls.append(("execute", command))

    def set_speed_scale(self, scale: float, seq: int) -> None:
        self.calls.append(("scale", scale, seq))

    def protective_stop(self, category: StopCategory, seq: int) -> None:
        self.calls.append(("stop", category, seq))

    def reset(self) -> None:
        self.calls.append(("reset",))
