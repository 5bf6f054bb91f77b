"""The composited view over real aiortc peer connections on 127.0.0.1: the worker's camera comes
back with the twin and the expert's annotation drawn where cv2.projectPoints puts them; bad
requests for it are refused with a reason; a compositor that cannot keep up skips to the newest
frame instead of queueing old ones."""

import asyncio
import fractions
import threading

import cv2
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, VideoStreamTrack
from aiortc.contrib.media import MediaRelay
from av import VideoFrame
from scipy.spatial.transform import Rotation

from tests.xr_server.live import start_live_server_with_accounts
from tests.xr_server.rtc_peers import negotiate, remote_track
from xr_server.composited_view import CompositedTrack
from xr_server.frame_stamp import read_stamp, write_stamp
from xr_server.overlay import BANNER, OverlayInputs

W, H = 640, 480
BASE = [0.5, 0.2, 0.8]  # the robot's one capsule, a sphere of 8 cm, `cell` frame
TWIN = {"v": 1, "t": 0.0, "cell": "lab", "people": [], "cameras": [],
        "robot": {"links": [{"name": "panda_link0", "a": BASE, "b": BASE, "r": 0.08}]},
        "safety": {"mode": "protective_stop", "speed_scale": 0.0}, "zones": []}
PITCH = np.radians(25.0)
FORWARD = np.array([np.cos(PITCH), 0.0, -np.sin(PITCH)])
RIGHT = np.array([0.0, -1.0, 0.0])
ROTATION = np.column_stack([RIGHT, np.cross(FORWARD, RIGHT), FORWARD])  # optical -> cell
POSITION = np.array([-2.0, 0.0, 1.5])
CAMERA = {"position_m": POSITION.tolist(), "orientation": Rotation.from_matrix(ROTATION).as_quat().tolist(),
          "hfov_deg": 70.0, "aspect": W / H}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_live_server_with_accounts(tmp_path_factory.mktemp("composited"), twin_source=lambda: TWIN)
    yield server
    server.app.xrcell_stop()


class GreyCamera(VideoStreamTrack):
    """A mid-grey 640x480 camera at 30 fps."""

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(np.full((H, W, 3), 128, np.uint8), format="bgr24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def projected(point) -> np.ndarray:
    f = W / 2 / np.tan(np.radians(35.0))
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    pixels, _ = cv2.projectPoints(np.array([point], float), cv2.Rodrigues(ROTATION.T)[0],
                                  -ROTATION.T @ POSITION, K, None)
    return pixels.reshape(2)


def centroid(mask) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    assert len(xs) > 30, "colour not found in the returned frame"
    return np.array([xs.mean(), ys.mean()])


def test_the_worker_gets_its_camera_back_with_the_twin_where_cv2_projects_it(clients, live):
    wendy, eve = clients("wendy"), clients("eve")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    assert wendy.call("hmi_camera", {"session": session, **CAMERA}) == {"session": session}
    eve.call("session_join", {"session": session, "role": "expert"})
    eve.call("annotation_create", {"session": session, "kind": "circle", "points": [[0.8, 0.7]],
                                   "radius": 0.04, "color": "#00ff00"})
    note = eve.wait_for("annotation")["annotation"]
    assert note["anchor"] is not None  # on the floor, where the ray through (0.8, 0.7) meets it

    async def scenario():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        remote = remote_track(pc, "video")
        pc.addTransceiver(GreyCamera(), direction="sendrecv")
        await negotiate(wendy, pc, session, composited=True)
        track = await asyncio.wait_for(remote, 10)
        frames = [await asyncio.wait_for(track.recv(), 10) for _ in range(20)]
        await pc.close()
        return frames[-1].to_ndarray(format="bgr24")

    image = asyncio.run(scenario())
    assert image.shape == (H, W, 3)
    b, g, r = (image[..., i].astype(int) for i in range(3))
    below_banner = np.zeros((H, W), bool)
    below_banner[int(0.08 * H) + 2:] = True
    orange = below_banner & (r > 150) & (b < 110) & (g > 70) & (g < 200)  # ROBOT_BGR (0, 140, 255)
    green = below_banner & (g > 170) & (r < 110) & (b < 110)  # the annotation, #00ff00
    assert np.abs(centroid(orange) - projected(BASE)).max() < 3.0
    assert np.abs(centroid(green) - projected(note["anchor"]["position_m"])).max() < 3.0
    assert np.abs(centroid(green) - (0.8 * W, 0.7 * H)).max() < 3.0
    banner = image[2:int(0.08 * H) - 2, :40].reshape(-1, 3).mean(axis=0)
    assert np.abs(banner - BANNER["protective_stop"][0]).max() < 40
    assert abs(image[300:400, 50:150].mean() - 128) < 8  # the camera image itself, untouched


SENDRECV_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=sendrecv\r\n"


def test_malformed_composited_requests_are_refused_with_a_reason(clients):
    wendy, eve = clients("wendy"), clients("eve")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    eve.call("session_join", {"session": session, "role": "expert"})
    offer = {"session": session, "type": "offer", "sdp": SENDRECV_SDP}
    assert wendy.call("rtc_offer", {**offer, "composited": "yes"}) == {
        "event": "rtc_offer", "error": "invalid 'rtc_offer' payload: field 'composited': Input should be a valid boolean"}
    assert wendy.call("rtc_offer", {**offer, "sdp": SENDRECV_SDP.replace("sendrecv", "sendonly"),
                                    "composited": True})["error"] == \
        "field 'composited': the offer's video does not receive the view back: make the camera's transceiver sendrecv"
    assert eve.call("rtc_offer", {**offer, "sdp": SENDRECV_SDP.replace("sendrecv", "recvonly"),
                                  "composited": True})["error"] == \
        f"field 'composited': only the worker of session {session} receives the composited view"
    assert wendy.sio.connected and eve.sio.connected
    assert wendy.call("session_leave", {"session": session}) == {"session": session}  # still served


class FedCamera(MediaStreamTrack):
    """A decoded camera track the test feeds frame by frame (the transport seam)."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue = asyncio.Queue()

    async def recv(self) -> VideoFrame:
        return await self.queue.get()

    def feed(self, counter: int) -> None:
        frame = VideoFrame.from_ndarray(write_stamp(np.full((H, W, 3), 128, np.uint8), counter), format="bgr24")
        frame.pts, frame.time_base = counter * 3000, fractions.Fraction(1, 90000)
        self.queue.put_nowait(frame)


def test_a_compositor_that_cannot_keep_up_skips_to_the_newest_frame():
    drawing = threading.Event()
    release = threading.Event()

    def slow_inputs() -> OverlayInputs:
        drawing.set()
        release.wait(10)  # the drawing of a frame blocks until the test lets it go
        return OverlayInputs(TWIN, None)

    async def scenario():
        camera = FedCamera()
        relay = MediaRelay()
        view = CompositedTrack(relay.subscribe(camera, buffered=False), slow_inputs)
        camera.feed(1)
        first = asyncio.ensure_future(view.recv())
        await asyncio.to_thread(drawing.wait, 10)  # frame 1 is being composited
        for counter in range(2, 11):  # nine more frames arrive meanwhile
            camera.feed(counter)
            await asyncio.sleep(0)
        while not camera.queue.empty():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        release.set()
        stamps = [read_stamp((await first).to_ndarray(format="bgr24"))]
        stamps.append(read_stamp((await asyncio.wait_for(view.recv(), 10)).to_ndarray(format="bgr24")))
        camera.feed(11)
        stamps.append(read_stamp((await asyncio.wait_for(view.recv(), 10)).to_ndarray(format="bgr24")))
        view.stop()
        return stamps, view.status()

    stamps, status = asyncio.run(scenario())
    assert stamps == [1, 10, 11]  # frames 2 to 9 were dropped, not queued
    assert status.frames_sent == 3
