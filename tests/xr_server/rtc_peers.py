"""Real aiortc peers for the XR server's WebRTC tests (on 127.0.0.1, against
`tests.xr_server.live`): a camera that plays the real Pose2Sim clip, the offer/answer over the
peer's Socket.IO client, the remote tracks, and waiting on the asyncio loop."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

import cv2
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from av import VideoFrame

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "data" / "pose2sim" / "Demo_SinglePerson" / "videos" / "cam01.mp4"


class ClipTrack(VideoStreamTrack):
    """The first `count` frames of a real clip, resized to `size` (width, height), looped, at
    30 fps."""

    def __init__(self, path: Path = CLIP, count: int = 60,
                 size: tuple[int, int] = (320, 240)) -> None:
        super().__init__()
        if path == CLIP and not CLIP.is_file():
            pytest.fail(f"{CLIP} missing: the Pose2Sim sample data is set up by `make`")
        capture = cv2.VideoCapture(str(path))
        self.frames = []
        while len(self.frames) < count:
            ok, image = capture.read()
            if not ok:
                break
            self.frames.append(cv2.resize(image, size))
        capture.release()
        if not self.frames:
            raise RuntimeError(f"cannot read {path}")
        self.index = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = VideoFrame.from_ndarray(self.frames[self.index % len(self.frames)], format="bgr24")
        self.index += 1
        frame.pts, frame.time_base = pts, time_base
        return frame


async def until(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    """Poll `condition` every 50 ms on the running loop; `asyncio.TimeoutError` after
    `timeout_s`."""
    async def poll():
        while not condition():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout_s)


async def negotiate(client, pc: RTCPeerConnection, session: str, *, remb: bool = True,
                    **fields: object) -> dict:
    """Send `pc`'s offer as ``rtc_offer`` of `session` through `client`, with `fields` (e.g.
    ``composited``, ``max_bitrate_kbps``), and apply the answer; the answer.

    `remb=False` leaves abs-send-time out of the offer, which aiortc's receiver estimates the
    bandwidth from: no REMB comes back, so the server's encoder keeps its start target.
    """
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers every candidate here
    sdp = pc.localDescription.sdp
    if not remb:
        sdp = "".join(line for line in sdp.splitlines(keepends=True) if "abs-send-time" not in line)
    answer = await asyncio.to_thread(client.call, "rtc_offer", {
        "session": session, "type": "offer", "sdp": sdp, **fields})
    assert "error" not in answer, answer
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    return answer


def remote_track(pc: RTCPeerConnection, kind: str) -> asyncio.Future:
    """A future that is the first remote track of `kind` ("audio" or "video") `pc` receives."""
    track = asyncio.get_running_loop().create_future()
    pc.on("track", lambda t: track.set_result(t) if t.kind == kind and not track.done() else None)
    return track


async def video_track(pc: RTCPeerConnection) -> asyncio.Future:
    """Ask `pc` to receive video; the future is the remote video track once it arrives."""
    track = remote_track(pc, "video")
    pc.addTransceiver("video", direction="recvonly")
    return track


async def receive_video(client, pc: RTCPeerConnection, session: str, *,
                        max_bitrate_kbps: int | None = None, remb: bool = True):
    """Offer to receive the video of `session` on `pc` (through `client`), capped at
    `max_bitrate_kbps` when given, without REMB when not `remb` (`negotiate`); the remote video
    track."""
    track = await video_track(pc)
    await negotiate(client, pc, session, remb=remb,
                    **({} if max_bitrate_kbps is None else {"max_bitrate_kbps": max_bitrate_kbps}))
    return await asyncio.wait_for(track, 10)


async def keep_frame_sizes(remote, sizes: dict, name: str) -> None:
    """Read `remote` until cancelled, keeping the (width, height) of its newest frame in
    sizes[name]."""
    while True:
        frame = await remote.recv()
        sizes[name] = (frame.width, frame.height)


async def receive_videos(session: str, offers: list[tuple[str, object, int | None, bool]]
                         ) -> tuple[dict[str, RTCPeerConnection], dict[str, tuple[int, int]], list]:
    """For each (name, client, max_bitrate_kbps, remb) of `offers`, in turn, a peer connection
    that receives the video of `session` (`receive_video`), its frames read in the background.

    Returns:
        name -> peer connection; name -> (width, height) of its newest frame, kept up to date;
        the reader tasks (cancel them before closing the connections).
    """
    peers: dict[str, RTCPeerConnection] = {}
    sizes: dict[str, tuple[int, int]] = {}
    readers = []
    for name, client, cap, remb in offers:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        remote = await receive_video(client, pc, session, max_bitrate_kbps=cap, remb=remb)
        peers[name] = pc
        readers.append(asyncio.ensure_future(keep_frame_sizes(remote, sizes, name)))
    return peers, sizes, readers


async def bytes_received(pc: RTCPeerConnection) -> int:
    """The bytes `pc`'s transports received so far (RTP/SRTP overhead included)."""
    report = await pc.getStats()
    return sum(s.bytesReceived for s in report.values() if s.type == "transport")


async def receive_rates_kbps(peers: dict, seconds: float) -> dict:
    """name -> kbit/s each peer connection of `peers` (name -> pc) received over `seconds`."""
    start = {name: await bytes_received(pc) for name, pc in peers.items()}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    return {name: (await bytes_received(pc) - start[name]) * 8 / 1000 / (time.monotonic() - t0)
            for name, pc in peers.items()}
