"""Live cell cameras (`StreamCamera`): an HTTP MJPEG camera on loopback, real sockets and real
footage; frames are published newest-first, stamped receipt minus the declared latency, and a
camera that drops off the network publishes nothing until it is back."""

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from safety.errors import PerceptionError
from safety.perception.stream import StreamCamera
from tests.polling import wait_for as poll
from tests.safety.perception.mjpeg_server import MjpegCamera, clip_frames

CLIP = Path(__file__).resolve().parents[3] / "data" / "pose2sim" / "Demo_SinglePerson"
SIZE = (480, 272)  # a quarter of the clip's 1920x1088


@pytest.fixture(scope="module")
def frames():
    return clip_frames(CLIP / "videos" / "cam01.mp4", 20, SIZE)


@pytest.fixture
def server(frames):
    server = MjpegCamera({"cam01": frames}, fps=30.0)
    yield server
    server.close()


def wait_for(predicate, timeout_s: float = 10.0):
    return poll(predicate, "the camera", timeout_s, interval_s=0.01)


def psnr_to_nearest(image: np.ndarray, candidates: list[np.ndarray]) -> float:
    return max(cv2.PSNR(image, c) for c in candidates)


def test_frames_flow_stamped_receipt_minus_latency(server, frames):
    camera = StreamCamera(
        "cam01", server.url("cam01"), resize=0.5, capture_latency_s=0.25, expected_size=SIZE
    )
    camera.start()
    try:
        first = wait_for(camera.latest)
        image, stamp_ns, seq = first
        read_ns = time.monotonic_ns()
        # the stamp is the receipt time minus 0.25 s: never later than now - 0.25 s, and the
        # frame was received after the camera started
        assert stamp_ns <= read_ns - 250_000_000
        assert stamp_ns > read_ns - 250_000_000 - 5_000_000_000
        assert image.shape == (SIZE[1] // 2, SIZE[0] // 2, 3) and not image.flags.writeable
        # it is the footage (JPEG-compressed and halved), not some other picture
        halves = [cv2.resize(f, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA) for f in frames]
        assert psnr_to_nearest(image, halves) > 28.0
        wait_for(lambda: camera.frames_published >= 15)
        later = camera.latest()
        assert later[2] > seq and later[1] > stamp_ns
        assert camera.error is None and camera.connections == 1
    finally:
        camera.stop()
    assert not camera.running


def test_a_camera_that_drops_off_publishes_nothing_until_it_is_back(server):
    camera = StreamCamera("cam01", server.url("cam01"), resize=1.0, expected_size=SIZE)
    camera.start()
    try:
        wait_for(lambda: camera.frames_published >= 5)
        server.pause()
        wait_for(lambda: camera.error is not None)
        assert camera.error.startswith(server.url("cam01"))  # "... stopped sending frames"
        stalled = camera.frames_published
        time.sleep(1.0)  # several reopen attempts fail
        assert camera.frames_published == stalled
        assert camera.latest()[2] == stalled  # the old frame, not a new stamp
        server.resume()
        wait_for(lambda: camera.frames_published >= stalled + 5, timeout_s=15.0)
        assert camera.error is None and camera.connections >= 2
        assert camera.latest()[2] > stalled  # sequence numbers go on
    finally:
        camera.stop()


def test_frames_of_another_size_than_the_calibration_are_not_published(server):
    camera = StreamCamera("cam01", server.url("cam01"), resize=0.5, expected_size=(1920, 1088))
    camera.start()
    try:
        error = wait_for(lambda: camera.error)
        assert error == (
            "frames are 480x272 but the calibration is for 1920x1088: "
            "set the camera to 1920x1088 or calibrate it at 480x272"
        )
        time.sleep(0.3)
        assert camera.latest() is None and camera.frames_published == 0
    finally:
        camera.stop()


def test_an_unreachable_camera_says_so_and_stops_promptly(server):
    url = f"http://127.0.0.1:{server.port}/nosuch.mjpg"  # the server answers 404
    camera = StreamCamera("cam09", url, open_timeout_s=1.0, read_timeout_s=1.0)
    camera.start()
    try:
        assert wait_for(lambda: camera.error) in (f"cannot open {url}", f"no frame from {url}")
        assert camera.latest() is None and camera.connections <= 1
    finally:
        started = time.monotonic()
        camera.stop(timeout_s=3.0)
        assert time.monotonic() - started < 3.0 and not camera.running


@pytest.mark.parametrize(
    "source, kwargs, match",
    [
        (
            "videos/cam01.mp4",
            {},
            r"camera 'c': 'videos/cam01.mp4' is not a stream URL or a /dev/videoN device",
        ),
        ("ftp://10.0.0.5/cam", {}, r"camera 'c': stream scheme 'ftp' is not supported"),
        (
            "rtsp://10.0.0.5/cam",
            {"resize": 0.0},
            r"camera 'c': resize must be in \(0, 1\], got 0.0",
        ),
        (
            "/dev/video0",
            {"capture_latency_s": -0.1},
            r"camera 'c': capture_latency_s must be >= 0, got -0.1",
        ),
    ],
)
def test_bad_sources_are_refused_naming_the_camera(source, kwargs, match):
    with pytest.raises(PerceptionError, match=match):
        StreamCamera("c", source, **kwargs)


def test_a_cell_tracks_a_person_from_two_live_cameras():
    """The whole path: a cell file naming two HTTP cameras -> compose -> the tracking process's
    child reads them with `StreamCamera` -> MediaPipe -> one triangulated person."""
    from content.cell import parse_cell
    from xr_server.compose import _tracking

    streams = {cam: clip_frames(CLIP / "videos" / f"{cam}.mp4", 30) for cam in ("cam01", "cam02")}
    server = MjpegCamera(streams, fps=10.0)
    calib = str(CLIP / "calibration" / "Calib.qca.txt")
    cell = parse_cell(
        {
            "name": "lab",
            "cameras": [
                {
                    "id": cam,
                    "video": server.url(cam),
                    "frame_rate_hz": 10.0,
                    "process_rate_hz": 5.0,
                    "resize": 0.25,
                    "capture_latency_s": 0.1,
                    "calibration": {"file": calib, "camera": cam},
                }
                for cam in streams
            ],
        }
    )
    process = _tracking(cell)
    process.start(timeout_s=120)
    try:
        deadline = time.monotonic() + 60
        snap = None
        while time.monotonic() < deadline:
            time.sleep(0.2)
            snap = process.snapshot()
            if (
                snap is not None
                and snap.tracks
                and all(c.frames_with_person >= 3 for c in snap.cameras)
            ):
                break
        assert snap is not None and snap.tracks, snap
        assert {c.camera_id: c.frames_with_person >= 3 for c in snap.cameras} == {
            "cam01": True,
            "cam02": True,
        }
        # tracks are stamped with their frames' capture time: receipt minus the declared 0.1 s
        assert snap.tracks[0].newest_capture_ns <= snap.stamp_ns - 100_000_000
    finally:
        process.stop(2.0)
        server.close()


def test_codec_padding_is_the_same_picture(server):
    """A calibration of the coded size (1088 rows for a 1080-row H.264 picture, as Pose2Sim's)
    fits frames up to 15 px smaller; 16 px is another picture."""
    fits = StreamCamera(
        "cam01", server.url("cam01"), resize=1.0, expected_size=(SIZE[0] + 8, SIZE[1] + 15)
    )
    too_small = StreamCamera(
        "cam01", server.url("cam01"), resize=1.0, expected_size=(SIZE[0], SIZE[1] + 16)
    )
    for camera in (fits, too_small):
        camera.start()
    try:
        wait_for(lambda: fits.frames_published >= 3)
        assert wait_for(lambda: too_small.error).startswith(
            "frames are 480x272 but the calibration is for 480x288"
        )
        assert too_small.frames_published == 0
    finally:
        fits.stop()
        too_small.stop()


def test_check_cell_cameras_opens_every_camera_and_names_the_one_that_fails(server, tmp_path, capsys):
    """`xrcell check-cell --cameras`: a file and a stream of the calibrated size pass; a stream
    of another size and an unreachable one fail, each named with the reason; exit code 1."""
    from xr_server import cli

    calib = {"file": str(CLIP / "calibration" / "Calib.qca.txt"), "camera": "cam01"}
    full = MjpegCamera({"cam01": clip_frames(CLIP / "videos" / "cam01.mp4", 2)}, fps=10.0)
    try:
        cell = tmp_path / "cell.yaml"
        cameras = [
            {"id": "file01", "video": str(CLIP / "videos" / "cam01.mp4"), "calibration": calib},
            {"id": "ip01", "video": full.url("cam01"), "calibration": calib},
            {"id": "small", "video": server.url("cam01"), "calibration": calib},
            {"id": "gone", "video": f"http://127.0.0.1:{server.port}/gone.mjpg", "calibration": calib},
        ]
        cell.write_text(yaml.safe_dump({"name": "lab", "cameras": cameras}))
        code = cli.main(["check-cell", str(cell), "--cameras", "--timeout", "2"])
    finally:
        full.close()
    out, err = capsys.readouterr()
    assert code == 1
    assert "file01: ok: " in out and "gives 1080x1920 frames (file, capture latency 0 s)" in out
    assert f"ip01: ok: {full.url('cam01')} gives 1080x1920 frames (stream, capture latency 0.25 s)" in out
    assert "small: FAILED: frames are 480x272 but the calibration is for 1088x1920" in err
    assert f"gone: FAILED: cannot open http://127.0.0.1:{server.port}/gone.mjpg" in err
    assert cli.main(["check-cell", str(cell)]) == 0  # without --cameras nothing is opened
