"""HMI cameras, the pure core: pose -> per-frame calibration, pose at a capture time, capture
times from media times, the frame source; and the monitor's watchdog skipping an HMI camera."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from content.calibration import read_qca
from content.calibration.model import pose_from_extrinsics
from content.cell import SafetyParameters
from safety.decision import input_faults
from safety.errors import PerceptionError
from safety.perception.hmi import (
    CaptureClock,
    HmiFrameSource,
    HmiPose,
    PoseHistory,
    calibration_from_pose,
)
from safety.perception.triangulation import project_points
from safety.perception.types import CameraStatus, PerceptionSnapshot

CALIB = (Path(__file__).resolve().parents[3] / "data" / "pose2sim" / "Demo_SinglePerson" / "calibration"
         / "Calib.qca.txt")
MS = 1_000_000


def pose_of(calibration, stamp_ns: int = 0) -> HmiPose:
    """The `hmi_camera` pose an HMI at `calibration` would report (pinhole part only)."""
    position, quaternion = pose_from_extrinsics(calibration.R, calibration.t)
    w, h = calibration.image_size
    K = calibration.K
    hfov = float(np.degrees(2 * np.arctan(w / (2 * K[0, 0]))))
    return HmiPose(stamp_ns, tuple(position), tuple(quaternion), hfov, w / h, (K[0, 2] / w, K[1, 2] / h))


def test_a_pose_gives_the_calibration_of_the_frame():
    cam = read_qca(CALIB)["cam01"].scaled(0.25)
    w, h = cam.image_size
    calibration = calibration_from_pose("glasses", pose_of(cam), w, h)
    points = np.array([[0.0, 0.0, 1.0], [0.5, -0.3, 0.2], [-0.4, 0.6, 1.6]])
    # same camera but for its lens distortion, which an HMI (WebXR: pinhole) does not report
    pinhole = replace(cam, dist=np.zeros(5))
    assert np.abs(project_points(calibration, points) - project_points(pinhole, points)).max() < 0.5
    assert np.allclose(calibration.center_world, cam.center_world)
    # a frame at twice the size: the same camera, intrinsics scaled
    double = calibration_from_pose("glasses", pose_of(cam), 2 * w, 2 * h)
    assert np.allclose(double.K[:2], 2 * calibration.K[:2])


def test_a_frame_whose_aspect_is_not_the_poses_is_refused():
    cam = read_qca(CALIB)["cam01"].scaled(0.25)
    with pytest.raises(PerceptionError, match=r"HMI camera 'glasses': frame 480x272 has aspect 1.765, "
                                              r"its pose says 0.567"):
        calibration_from_pose("glasses", pose_of(cam), 480, 272)


def _pose(stamp_ms: int, x: float, yaw_deg: float = 0.0) -> HmiPose:
    half = np.radians(yaw_deg) / 2
    return HmiPose(stamp_ms * MS, (x, 0.0, 1.6), (0.0, 0.0, float(np.sin(half)), float(np.cos(half))), 70.0, 4 / 3)


def test_the_pose_at_a_capture_time_is_interpolated_or_the_nearest_within_the_bound():
    history = PoseHistory()
    assert history.at(100 * MS, 50 * MS) is None                     # no pose at all
    history.add(_pose(100, 0.0, 0.0))
    history.add(_pose(140, 0.4, 40.0))
    mid = history.at(120 * MS, 50 * MS)
    assert mid is not None and mid.position_m == pytest.approx((0.2, 0.0, 1.6))
    assert mid.orientation == pytest.approx((0.0, 0.0, np.sin(np.radians(10)), np.cos(np.radians(10))))
    assert history.at(170 * MS, 50 * MS) == _pose(140, 0.4, 40.0)   # after the newest: the newest
    assert history.at(80 * MS, 50 * MS) == _pose(100, 0.0, 0.0)     # before the oldest: the oldest
    assert history.at(200 * MS, 50 * MS) is None                     # too old a pose for the frame
    # a gap wider than the bound between the two poses: the nearer one within the bound
    history.add(_pose(300, 1.0))
    assert history.at(160 * MS, 50 * MS) == _pose(140, 0.4, 40.0)
    assert history.at(220 * MS, 50 * MS) is None
    history.add(_pose(250, 5.0))                                     # out of order: ignored
    assert history.at(260 * MS, 50 * MS) == _pose(300, 1.0)


def test_pose_history_keeps_two_seconds():
    history = PoseHistory(history_s=2.0)
    for k in range(100):
        history.add(_pose(100 * k, 0.0))
    assert 20 <= len(history) <= 22
    assert history.at(1000 * MS, 50 * MS) is None


def test_capture_times_are_media_times_plus_the_smallest_delay_and_never_early():
    rng = np.random.default_rng(3)
    clock = CaptureClock(drift_per_s=1e-4)
    base_ns = 5_000_000_000
    errors = []
    for k in range(300):
        media_s = k / 30
        true_capture = base_ns + int(media_s * 1e9)
        delay = int((20 + rng.exponential(15)) * MS)            # at least 20 ms, jitter on top
        estimate = clock.capture_ns(media_s, true_capture + delay)
        errors.append(estimate - true_capture)
    errors = np.array(errors[30:])
    assert errors.min() >= 0                                      # never earlier than the capture
    assert errors.max() < 25 * MS                                 # the smallest delay, plus the drift allowance
    clock.reset()                                                 # a new stream: a new time base
    assert clock.capture_ns(0.0, 9 * 10**9) == 9 * 10**9


def test_capture_clock_follows_a_drifting_sender_within_its_allowance():
    clock = CaptureClock(drift_per_s=1e-4)
    base_ns = 10**9
    for k in range(3000):                                         # 100 s at 30 fps, sender 50 ppm slow
        media_s = k / 30
        true_capture = base_ns + int(media_s * (1 + 50e-6) * 1e9)
        estimate = clock.capture_ns(media_s, true_capture + 10 * MS)
    assert 0 <= estimate - true_capture < 11 * MS


def test_hmi_frame_source_publishes_the_newest_posed_frame():
    cam = read_qca(CALIB)["cam01"].scaled(0.125)
    w, h = cam.image_size
    source = HmiFrameSource("glasses")
    assert source.optional and source.latest() is None
    first, second = np.zeros((h, w, 3), np.uint8), np.full((h, w, 3), 7, np.uint8)
    source.push(first, 10, cam)
    source.push(second, 20, cam)
    image, capture_ns, seq, calibration = source.latest()
    assert image is second and capture_ns == 20 and seq == 2 and calibration is cam
    with pytest.raises(ValueError):
        image[0, 0, 0] = 1                                        # read-only once published
    with pytest.raises(PerceptionError, match=rf"HMI camera 'glasses': frame must be \({h}, {w}, 3\) uint8 "
                                              r"as its calibration, got \(4, 4, 3\) uint8"):
        source.push(np.zeros((4, 4, 3), np.uint8), 30, cam)


def test_the_watchdog_skips_an_hmi_camera_but_not_a_fixed_one():
    now = 10**10
    params = SafetyParameters()
    fixed = CameraStatus("cam02", now - 10 * MS, now - 10 * MS, 100, 20, 80, 20)
    glasses_off = CameraStatus("glasses", 0, 0, 0, 0, 0, 0, optional=True)
    glasses_stale = CameraStatus("glasses", now - 5000 * MS, now - 5000 * MS, 9, 3, 6, 3, optional=True)
    for glasses in (glasses_off, glasses_stale):
        assert input_faults(now, None, PerceptionSnapshot(now, (), (fixed, glasses)), params, None)[1:] == []
    stale_fixed = replace(fixed, last_frame_ns=now - 900 * MS)
    faults = input_faults(now, None, PerceptionSnapshot(now, (), (stale_fixed, glasses_off)), params, None)
    assert faults[1:] == ["camera cam02 stale: 900 ms since its last frame"]
    no_frames = CameraStatus("cam02", 0, 0, 0, 0, 0, 0)
    faults = input_faults(now, None, PerceptionSnapshot(now, (), (no_frames,)), params, None)
    assert faults[1:] == ["camera cam02: no frames received"]
