"""HMI cameras, the server side without a network: which worker video is which camera, the rate
cap before conversion, pose matching and the rejection counts, scaling and per-frame calibration."""

import fractions

import numpy as np
import pytest
from av import VideoFrame

from content.cell import HmiCamera
from xr_server.hmi_cameras import HmiCameras

MS = 1_000_000
#: An upright camera 1.6 m up looking along cell +x (optical z = cell x, x = -y, y = -z).
LOOK_X = [-0.5, 0.5, -0.5, 0.5]


class Clock:
    def __init__(self) -> None:
        self.now = 10**12

    def __call__(self) -> int:
        return self.now


def frame(media_ms: int, width: int = 640, height: int = 480) -> VideoFrame:
    out = VideoFrame.from_ndarray(np.zeros((height, width, 3), np.uint8), format="bgr24")
    out.pts, out.time_base = media_ms * 90, fractions.Fraction(1, 90_000)
    return out


def make(**config):
    clock, pushed = Clock(), []
    cameras = HmiCameras([HmiCamera(**{"id": "glasses", "kind": "hmi", "user": "wendy", **config})],
                         lambda *args: pushed.append(args), clock)
    return cameras, clock, pushed


def pose(cameras, session="s1", aspect=4 / 3):
    cameras.pose(session, [0.0, 0.0, 1.6], LOOK_X, 90.0, aspect)


def test_only_the_configured_workers_video_is_a_camera():
    cameras = HmiCameras([HmiCamera(id="glasses", kind="hmi", user="wendy"),
                          HmiCamera(id="helmet", kind="hmi", device="hl2-0042")], lambda *a: None)
    assert cameras.camera_for("wendy", None) == "glasses"
    assert cameras.camera_for("walt", "hl2-0042") == "helmet"
    assert cameras.camera_for("walt", None) is None
    assert cameras.video_started("s2", "walt", None) is None
    assert cameras.video_started("s1", "wendy", None) == "glasses"
    assert [s.session for s in cameras.status()] == ["s1", None]


def test_frames_are_posed_rate_capped_and_rejected_with_a_count():
    cameras, clock, pushed = make(max_pose_age_s=0.05, process_rate_hz=10.0)
    cameras.frame("s1", frame(0))                       # no camera for the session yet: ignored
    cameras.video_started("s1", "wendy", None)
    cameras.frame("s1", frame(0))                       # no pose at all
    pose(cameras)
    clock.now += 33 * MS
    cameras.frame("s1", frame(33))                      # capture now: pose 33 ms old, used
    clock.now += 33 * MS
    cameras.frame("s1", frame(66))                      # within 100 ms of the last used: skipped
    clock.now += 67 * MS
    cameras.frame("s1", frame(133))                     # pose 100 ms old: rejected
    status = cameras.status()[0]
    assert (status.frames_received, status.frames_used, status.frames_skipped,
            status.frames_rejected_no_pose, status.frames_rejected_stale_pose) == (4, 1, 1, 1, 1)
    (camera_id, image, capture_ns, calibration), = pushed
    assert camera_id == "glasses" and image.shape == (480, 640, 3) and capture_ns == 10**12 + 33 * MS
    assert calibration.K[0, 0] == pytest.approx(320.0)            # 90 degrees over 640 px
    assert calibration.center_world == pytest.approx([0.0, 0.0, 1.6])
    assert calibration.R[2] == pytest.approx([1.0, 0.0, 0.0])     # looks along cell +x


def test_capture_time_comes_from_the_media_time_not_the_arrival():
    cameras, clock, pushed = make(max_pose_age_s=0.05, process_rate_hz=100.0)
    cameras.video_started("s1", "wendy", None)
    t0 = clock.now
    pose(cameras)
    cameras.frame("s1", frame(0))                       # on time: sets the stream's offset
    clock.now += 300 * MS
    cameras.pose("s1", [1.0, 0.0, 1.6], LOOK_X, 90.0, 4 / 3)   # the glasses moved meanwhile
    cameras.frame("s1", frame(33))                      # captured at 33 ms, arriving 267 ms late
    clock.now += 20 * MS
    cameras.frame("s1", frame(320))                     # captured at 320 ms, on time
    # (the estimate may run late by the drift allowance: 100 ppm of the 320 ms, 32 us)
    assert [p[2] for p in pushed] == pytest.approx([t0, t0 + 33 * MS, t0 + 320 * MS], abs=0.05 * MS)
    centres = [p[3].center_world[0] for p in pushed]
    assert centres == pytest.approx([0.0, 0.0, 1.0])    # each with the pose of its capture time


def test_frames_are_scaled_and_a_pose_of_another_aspect_is_refused():
    cameras, clock, pushed = make(resize=0.5, max_width_px=256, process_rate_hz=100.0)
    cameras.video_started("s1", "wendy", None)
    pose(cameras)
    cameras.frame("s1", frame(0, 1280, 960))
    assert pushed[0][1].shape == (192, 256, 3) and pushed[0][3].image_size == (256, 192)
    pose(cameras, aspect=16 / 9)
    clock.now += 20 * MS
    cameras.frame("s1", frame(20, 1280, 960))
    assert cameras.status()[0].frames_rejected_bad_pose == 1 and len(pushed) == 1


def test_a_session_that_ends_stops_its_camera():
    cameras, clock, pushed = make()
    cameras.video_started("s1", "wendy", None)
    pose(cameras)
    cameras.session_ended("s1")
    cameras.frame("s1", frame(0))
    assert cameras.status()[0].session is None and cameras.status()[0].frames_received == 0
    cameras.video_started("s1", "wendy", None)          # a new session: no pose from the old one
    cameras.frame("s1", frame(0))
    assert cameras.status()[0].frames_rejected_no_pose == 1 and not pushed
