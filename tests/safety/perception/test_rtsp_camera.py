"""RTSP cell cameras (`StreamCamera`) against a real RTSP server on loopback: GStreamer's
gst-rtsp-server serving the Pose2Sim footage as x264 H.264, each frame numbered in its picture
so a test knows when it was sent. Frames flow over RTP/UDP and RTP/TCP, their stamps never claim a
frame is newer than it is (FFmpeg's backlog from the open is dropped), pictures coded in several
slices arrive whole, a camera that drops off reconnects, and `xrcell check-cell --cameras` opens RTSP cameras."""

import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from safety.perception.stream import CLOCK_DRIFT_ALLOWANCE, StreamCamera, StreamTimeline
from tests.polling import wait_for as poll
from tests.safety.perception.mjpeg_server import clip_frames
from tests.safety.perception.rtsp_server import RtspCamera, draw_frame_code, read_frame_code

CLIP = Path(__file__).resolve().parents[3] / "data" / "pose2sim" / "Demo_SinglePerson"
SIZE = (480, 272)  # a quarter of the clip's 1920x1088
MS = 1_000_000


@pytest.fixture(scope="module")
def frames():
    return clip_frames(CLIP / "videos" / "cam01.mp4", 30, SIZE)


@pytest.fixture
def server(frames):
    server = RtspCamera(frames, fps=30.0)
    yield server
    server.close()


def wait_for(predicate, timeout_s: float = 15.0):
    return poll(predicate, "the camera", timeout_s, interval_s=0.01)


def sample(camera: StreamCamera, count: int) -> list[tuple]:
    """`count` distinct published frames (as the consumer sees them: newest only)."""
    seen: dict[int, tuple] = {}

    def enough() -> bool:
        frame = camera.latest()
        if frame is not None:
            seen[frame[2]] = frame
        return len(seen) >= count

    wait_for(enough)
    return [seen[k] for k in sorted(seen)]


def assert_honest(server: RtspCamera, frames: list[tuple]) -> None:
    """Every frame is a numbered frame the server sent, stamped no later than the server pushed
    it into its RTP stream (its capture; capture_latency_s 0.25 covers the unqueued path from
    there), in sending order."""
    numbers = []
    for image, stamp_ns, _seq in frames:
        number = read_frame_code(image)
        sent_ns = server.sent_ns(number)
        assert sent_ns is not None, f"frame number {number} was never sent"
        # the server's report of this push (not of the loop's previous one) may trail the frame
        pushed_ns = wait_for(lambda: (p := server.pushed_ns(number)) is not None and p >= sent_ns and p)
        assert stamp_ns <= pushed_ns, (
            f"frame {number} stamped {(stamp_ns - pushed_ns) / MS:.0f} ms after it was captured"
        )
        numbers.append(number)
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    stamps = [f[1] for f in frames]
    assert stamps == sorted(stamps)


@pytest.mark.parametrize(
    "options, transport",
    [(None, "RTP/AVP/UDP;unicast;client_port="), ("rtsp_transport;tcp", "RTP/AVP/TCP;unicast;interleaved=0-1")],
)
def test_frames_flow_over_rtsp_with_honest_stamps(server, monkeypatch, options, transport):
    """OpenCV reads RTP over UDP by default and over TCP when OPENCV_FFMPEG_CAPTURE_OPTIONS is
    set (stream.open_capture)."""
    if options is None:
        monkeypatch.delenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", raising=False)
    else:
        monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", options)
    camera = StreamCamera(
        "cam01", server.url(), resize=0.5, capture_latency_s=0.25, expected_size=SIZE
    )
    camera.start()
    try:
        frames = sample(camera, 20)
        assert all(f[0].shape == (SIZE[1] // 2, SIZE[0] // 2, 3) for f in frames)
        assert_honest(server, frames)
        # what FFmpeg queued while it opened the stream was dropped, not published
        assert camera.frames_dropped >= 1 and camera.error is None and camera.connections == 1
        assert len(server.setups) == 1 and server.setups[0].startswith(transport), server.setups
    finally:
        camera.stop()


def test_pictures_coded_in_several_slices_arrive_whole(frames):
    """Many IP cameras code each picture in several slices (one per encoder thread): every
    published picture is the whole picture that was sent, not a slice of it over the rest of
    an older one."""
    server = RtspCamera(frames, fps=30.0, slices=4)
    camera = StreamCamera("cam01", server.url(), resize=0.5, capture_latency_s=0.25, expected_size=SIZE)
    camera.start()
    try:
        received = sample(camera, 20)
        for image, _stamp, _seq in received:
            number = read_frame_code(image)
            sent = cv2.resize(draw_frame_code(frames[number % len(frames)], number), (SIZE[0] // 2, SIZE[1] // 2),
                              interpolation=cv2.INTER_AREA)
            # each quarter of the picture (one slice each) as sent, up to coding loss
            for band in np.array_split(np.arange(image.shape[0]), 4):
                error = np.abs(image[band].astype(np.int16) - sent[band]).mean()
                assert error < 12, f"frame {number}: rows {band[0]}-{band[-1]} differ by {error:.1f} grey levels"
        assert_honest(server, received)
    finally:
        camera.stop()
        server.close()


def test_any_ffmpeg_options_make_opencv_read_rtsp_over_tcp(server, monkeypatch):
    """OpenCV 4.11 (the pinned wheel) does not apply the options' content: asked for UDP it
    sets up RTP over TCP. If an upgrade changes this, revisit stream.open_capture's docstring
    and the README."""
    monkeypatch.setenv("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;udp")
    camera = StreamCamera("cam01", server.url(), resize=0.5, expected_size=SIZE)
    camera.start()
    try:
        wait_for(lambda: camera.frames_published >= 3)
        assert server.setups == ["RTP/AVP/TCP;unicast;interleaved=0-1"]
    finally:
        camera.stop()


def test_an_rtsp_camera_that_drops_off_reconnects_and_the_sequence_goes_on(server):
    camera = StreamCamera("cam01", server.url(), resize=1.0, capture_latency_s=0.25,
                          expected_size=SIZE, read_timeout_s=1.0)
    camera.start()
    try:
        wait_for(lambda: camera.frames_published >= 5)
        server.stop_server()
        assert wait_for(lambda: camera.error) in (
            f"{server.url()} stopped sending frames", f"cannot open {server.url()}"
        )
        stalled = camera.frames_published
        time.sleep(1.0)  # reopen attempts fail: nothing is published, the watchdog would trip
        assert camera.frames_published == stalled and camera.latest()[2] == stalled
        server.start_server()  # same port
        wait_for(lambda: camera.frames_published >= stalled + 10)
        assert camera.error is None and camera.connections >= 2
        after = sample(camera, 5)
        assert after[0][2] > stalled  # sequence numbers go on
        assert_honest(server, after)
    finally:
        camera.stop()


def test_stream_timeline_drops_the_backlog_and_keeps_queued_frames_old():
    timeline = StreamTimeline()
    # a backlog: frames 33 ms apart in the stream arrive 1 ms apart -> dropped; one frame paced
    # by chance (a 20 ms gap) does not end it
    receipts = [1000, 1001, 1002, 1022, 1023]
    assert [timeline.arrival_ns(k * 33 * MS, r * MS) for k, r in enumerate(receipts)] == [None] * 5
    # three frames in a row at the stream's pace: live; offset = smallest receipt - pts so far
    # (1110 - 231 = 879 ms)
    assert timeline.arrival_ns(165 * MS, 1050 * MS) is None
    assert timeline.arrival_ns(198 * MS, 1080 * MS) is None
    assert timeline.arrival_ns(231 * MS, 1110 * MS) == 231 * MS + 879 * MS and timeline.live
    # a frame that waited 200 ms in a queue keeps its unqueued time, not its receipt (plus the
    # clock drift allowed over the 233 ms since the last frame: 47 us)
    drift_ns = int(233 * MS * CLOCK_DRIFT_ALLOWANCE)
    assert timeline.arrival_ns(264 * MS, 1343 * MS) == 264 * MS + 879 * MS + drift_ns
    # presentation time going back (the camera restarted its clock): a backlog again
    assert timeline.arrival_ns(0, 1360 * MS) is None and not timeline.live
    assert [timeline.arrival_ns(k * 33 * MS, (1360 + 33 * k) * MS) for k in (1, 2, 3)] == [
        None, None, 99 * MS + 1360 * MS
    ]


def test_stream_timeline_follows_a_camera_clock_that_runs_slow():
    """A camera clock 100 ppm slow for an hour (one frame a second here): frames stay stamped
    at their receipt instead of 0.36 s older; a frame queued 200 ms still keeps its older
    time, less the drift allowance of one frame interval."""
    timeline = StreamTimeline()
    for k in range(3601):
        received_ns = 5_000 * MS + k * 1_000 * MS
        arrival_ns = timeline.arrival_ns(int(k * 1_000 * MS * (1 - 1e-4)), received_ns)
    assert arrival_ns is not None and received_ns - arrival_ns < 1 * MS
    pts_ns, received_ns = int(3601 * 1_000 * MS * (1 - 1e-4)), 5_000 * MS + 3601 * 1_000 * MS
    arrival_ns = timeline.arrival_ns(pts_ns, received_ns + 200 * MS)
    assert received_ns + 200 * MS - arrival_ns >= 200 * MS - CLOCK_DRIFT_ALLOWANCE * 1_200 * MS


class ScriptedCapture:
    """A `cv2.VideoCapture` seam: `count` frames whose presentation times advance 33 ms each,
    read every `read_ms` of the fake clock (faster than 33 ms: a backlog that keeps draining);
    `stop` is set with the last one."""

    def __init__(self, clock: list[int], read_ms: int, count: int, stop) -> None:
        self.clock, self.read_ms, self.left, self.pts_ms = clock, read_ms, count, -33.0
        self.stop = stop

    def read(self):
        self.left -= 1
        if self.left == 0:
            self.stop.set()
        self.clock[0] += self.read_ms * MS
        self.pts_ms += 33.0
        return True, np.zeros((4, 4, 3), np.uint8)

    def get(self, prop: int) -> float:
        assert prop == cv2.CAP_PROP_POS_MSEC
        return self.pts_ms


def test_a_reader_that_never_catches_up_publishes_nothing_and_says_why():
    clock = [0]
    url = "rtsp://127.0.0.1:1/cam01"
    camera = StreamCamera("cam01", url, resize=1.0, clock=lambda: clock[0])
    assert camera._read(ScriptedCapture(clock, 5, 1000, camera._stop)) is False  # 5 s
    assert camera.frames_published == 0 and camera.frames_dropped == 1000
    assert camera.error == (
        f"{url}: frames queue for more than 3 s (the reader does not keep up with the stream); "
        "dropped, not published"
    )
    # at the stream's pace (a new connection), frames flow after three paced reads
    camera._stop.clear()
    assert camera._read(ScriptedCapture(clock, 33, 10, camera._stop)) is True
    assert camera.frames_published == 10 - 3 and camera.error is None


def test_check_cell_cameras_opens_rtsp_cameras(tmp_path, capsys):
    """An RTSP camera of the calibrated size passes; one whose server is gone fails, named."""
    from xr_server import cli

    calib = {"file": str(CLIP / "calibration" / "Calib.qca.txt"), "camera": "cam01"}
    full = RtspCamera(
        clip_frames(CLIP / "videos" / "cam01.mp4", 2), fps=5.0, keyframe_interval=2, loop_frames=10
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]  # nothing listens there once the socket is closed
    gone = f"rtsp://127.0.0.1:{closed_port}/cam01"
    try:
        cell = tmp_path / "cell.yaml"
        cameras = [
            {"id": "ip01", "video": full.url(), "calibration": calib},
            {"id": "gone", "video": gone, "calibration": calib},
        ]
        cell.write_text(yaml.safe_dump({"name": "lab", "cameras": cameras}))
        code = cli.main(["check-cell", str(cell), "--cameras", "--timeout", "3"])
    finally:
        full.close()
    out, err = capsys.readouterr()
    assert code == 1
    assert f"ip01: ok: {full.url()} gives 1080x1920 frames (stream, capture latency 0.25 s)" in out
    assert f"gone: FAILED: cannot open {gone}" in err
