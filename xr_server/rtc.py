"""The media of XR sessions: the worker's camera and microphone in over WebRTC, relayed to the
session's experts; the experts' voices back to the worker (`xr_server.rtc_audio`).

Per session, the worker's connection *publishes* (its offer sends video) and each expert's
connection *subscribes* (its offer receives video). The worker's decoded track goes through one
`aiortc.contrib.media.MediaRelay`: every subscriber gets a proxy of the same decoded frames (one
decode, whatever the number of experts), each proxy unbuffered, so a subscriber that cannot keep up
gets the newest frame and never a queue of old ones. The relay also feeds the session's own
reader, which is always draining the worker's track: aiortc queues decoded frames without bound
until someone reads them, so without it an unwatched camera would pile up frames (memory, then
seconds of latency for the first expert to join).

Audio is optional on every side and goes through the session's `AudioConference`
(`xr_server.rtc_audio`): a participant (worker or expert) whose offer's audio section sends has its
microphone mixed for every other participant; one whose audio section receives gets a
`TalkbackTrack` in the answer carrying the mix of everyone else (never its own voice), so the
worker hears the experts and the experts hear the worker and each other. The worker's microphone
reaches the conference (and a recording) through the relay; the conference always reads it.

A worker whose offer asks for it (``composited``) also gets its camera back on the same video
transceiver (sendrecv) as a `xr_server.composited_view.CompositedTrack`: another unbuffered proxy
of the same decoded track, with the twin drawn in from the HMI's pose (`OverlaySource`).

Every video the server sends (the relay to an expert, the composited view) goes through a
`xr_server.rtc_adapt.ScaledTrack` and a `SenderAdaptation`: the receiver's REMB estimate, capped
by ``max_bitrate_kbps`` (the server's and the offer's), sets the encoder's target bitrate, and the
resolution steps down (1.0, 0.75, 0.5) while that budget stays low; `video_out` reports it.

Signalling is offer/answer without trickle ICE: the browser sends its offer once ICE gathering is
complete, the answer carries all of the server's candidates (aiortc gathers them in
``setLocalDescription``).

The session's reader also hands every decoded frame to `on_frame` (worker tracking, when the cell
uses that HMI as a camera: `xr_server.hmi_cameras`), so tracking costs no second decode.

Threads: every coroutine here runs on the `RtcGateway` loop (`RtcGateway.call`); `video` is
readable from any thread; `on_video` and `on_frame` are called on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiortc import MediaStreamTrack, RTCDataChannel, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.contrib.media import MediaRecorder, MediaRelay
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

from xr_server.composited_view import CompositedTrack, CompositeStatus
from xr_server.errors import SignallingError
from xr_server.overlay import OverlayInputs
from xr_server.rtc_adapt import (LadderPolicy, ScaledTrack, SenderAdaptation, VideoOut,
                                  effective_cap)
from xr_server.rtc_audio import AudioConference, TalkbackTrack
from xr_server.rtc_gateway import RtcGateway

log = logging.getLogger(__name__)

#: Largest SDP accepted from a client, characters (a browser's offer with one video and one audio
#: section and all its candidates is 4 to 8 KiB).
MAX_SDP_CHARS = 64 * 1024

#: ``on_video(session_id, track_id)``: the session's worker video started (its track id) or
#: ended (None).
VideoListener = Callable[[str, "str | None"], None]
#: ``on_frame(session_id, frame)``: a decoded `av.VideoFrame` of the session's worker video; called
#: on the loop for every frame, so it must return in a few milliseconds.
FrameListener = Callable[[str, "VideoFrame"], None]
#: ``overlay(session_id)``: what the composited view of a session shows now; called from an
#: executor thread for every composited frame.
OverlaySource = Callable[[str], OverlayInputs]


@dataclass(frozen=True)
class VideoStatus:
    """The worker video of a session, a snapshot.

    Attributes:
        track_id: the id of the worker's current video track (W3C `MediaStreamTrack.id`), None
            when there is none; a new id means a new stream that subscribers must negotiate again.
        frames_received: frames decoded from the worker since that track started.
        width, height: size of the newest frame, pixels (0 before the first).
    """

    track_id: str | None
    frames_received: int
    width: int
    height: int


@dataclass
class _Publication:
    track: MediaStreamTrack
    frames: int = 0
    width: int = 0
    height: int = 0
    reader: asyncio.Task | None = None


@dataclass
class _SessionVideo:
    publisher_sid: str | None = None
    publication: _Publication | None = None
    subscribers: set[str] = field(default_factory=set)
    audio: MediaStreamTrack | None = None           # the worker's microphone
    conference: AudioConference = field(default_factory=AudioConference)


def check_sdp(sdp: str) -> None:
    """Raise `SignallingError` unless `sdp` looks like an SDP session description (RFC 8866)."""
    if len(sdp) > MAX_SDP_CHARS:
        raise SignallingError(f"field 'sdp' is {len(sdp)} characters, "
                              f"at most {MAX_SDP_CHARS} allowed")
    if not sdp.startswith("v=0"):
        raise SignallingError("field 'sdp' is not a session description: it must start with 'v=0'")
    if "\nm=" not in sdp:
        raise SignallingError("field 'sdp' has no media section ('m=' line)")


def _media_directions(sdp: str, kind: str = "video") -> list[str]:
    """The direction attribute of each media section of `kind` (video, audio) of `sdp`, in order."""
    directions = []
    for section in sdp.split("\nm=")[1:]:
        if not section.startswith(kind):
            continue
        direction = "sendrecv"
        for line in section.splitlines():
            value = line.strip()[2:]
            if value in ("sendrecv", "sendonly", "recvonly", "inactive"):
                direction = value
        directions.append(direction)
    return directions


class SessionMedia:
    """The peer connections of the XR sessions, one per Socket.IO connection, on the gateway's loop.

    Args:
        gateway: creates (and on stop closes) the peer connections.
        on_video: `VideoListener`, called on the loop when a session's worker video starts or ends.
        overlay: `OverlaySource` of the composited views; None refuses them.
        on_frame: `FrameListener`, every decoded frame of every worker video; None: nobody.
        on_data_channel: ``(sid, channel)``, called on the loop for every data channel a peer
            opens (the twin stream, `xr_server.twin_channel`).
        max_bitrate_kbps: the cap of every video this server sends, kbit/s (None: the link's
            estimate alone); an offer may ask for a lower one.
        ladder: the resolution steps of the videos sent (`xr_server.rtc_adapt.LadderPolicy`).
    """

    def __init__(self, gateway: RtcGateway, on_video: VideoListener,
                 overlay: OverlaySource | None = None, on_frame: FrameListener | None = None,
                 on_data_channel: Callable[[str, RTCDataChannel], None] | None = None,
                 max_bitrate_kbps: int | None = None, ladder: LadderPolicy = LadderPolicy()) -> None:
        self._gateway = gateway
        self._max_bitrate_kbps = max_bitrate_kbps
        self._ladder = ladder
        self._adaptations: dict[str, SenderAdaptation] = {}  # sid -> its video out; loop only
        self._connection_caps: dict[str, int | None] = {}  # sid -> its offer's cap; loop only
        self._session_caps: dict[str, int] = {}  # session id -> its cap, kbit/s; _status_lock
        self._on_video = on_video
        self._on_frame = on_frame
        self._overlay = overlay
        self._on_data_channel = on_data_channel
        self._views: dict[str, CompositedTrack] = {}  # sid -> its composited view; loop only
        self._relay = MediaRelay()
        # sid -> (session id, its peer connection); loop only
        self._peers: dict[str, tuple[str, RTCPeerConnection]] = {}
        self._videos: dict[str, _SessionVideo] = {}  # session id -> video; loop only
        self._status_lock = threading.Lock()
        self._status: dict[str, VideoStatus] = {}  # session id -> snapshot, for any thread
        # session id -> [the next segment's file, its recorder while a worker video runs]; loop only
        self._recorders: dict[str, list] = {}

    # ------------------------------------------------------------------------------ any thread
    def video(self, session_id: str) -> VideoStatus:
        """The worker video of `session_id` now (no video: ``track_id`` None). Thread-safe."""
        with self._status_lock:
            return self._status.get(session_id, VideoStatus(None, 0, 0, 0))

    def video_out(self, sid: str) -> VideoOut | None:
        """The bitrate and resolution of the video sent to connection `sid`, None when it is sent
        none. Thread-safe."""
        adaptation = self._adaptations.get(sid)  # dict.get is atomic
        return None if adaptation is None else adaptation.status()

    def session_cap(self, session_id: str) -> int | None:
        """The video cap of session `session_id`, kbit/s (None: none). Thread-safe."""
        with self._status_lock:
            return self._session_caps.get(session_id)

    def set_session_cap(self, session_id: str, max_bitrate_kbps: int | None) -> int | None:
        """Set (None: lift) the video cap of session `session_id`, kbit/s, for every video sent
        in it from now on; returns the previous cap. Thread-safe; the videos already being sent
        follow once `apply_session_cap` ran on the loop."""
        with self._status_lock:
            previous = self._session_caps.pop(session_id, None)
            if max_bitrate_kbps is not None:
                self._session_caps[session_id] = max_bitrate_kbps
        return previous

    async def apply_session_cap(self, session_id: str) -> int:
        """Apply the session's cap to every video sent in it now (the lowest of the server's, the
        connection's and the session's caps); returns how many videos that is."""
        cap = self.session_cap(session_id)
        applied = 0
        for sid, (session, _) in list(self._peers.items()):
            adaptation = self._adaptations.get(sid)
            if session != session_id or adaptation is None:
                continue
            adaptation.set_max_bitrate(effective_cap(
                [self._max_bitrate_kbps, self._connection_caps.get(sid), cap]))
            applied += 1
        return applied

    def composited(self, sid: str) -> CompositeStatus | None:
        """The composited view sent to connection `sid`, None when it has none. Thread-safe."""
        view = self._views.get(sid)  # dict.get is atomic
        return None if view is None else view.status()

    # ------------------------------------------------------------------------------- the loop
    async def publish(self, session_id: str, sid: str, offer: RTCSessionDescription,
                      composited: bool = False,
                      max_bitrate_kbps: int | None = None) -> RTCSessionDescription:
        """Answer the worker's offer: its video becomes the session's video (replacing the
        connection's previous one, if any); with `composited`, the answer also sends the
        composited view back on the camera's transceiver, at most `max_bitrate_kbps` (and the
        server's cap).

        Raises:
            SignallingError: the offer sends no video; `composited` but the offer's video does
                not also receive (sendrecv), or this server has no overlay source; aiortc cannot
                use the offer.
        """
        directions = _media_directions(offer.sdp)
        if not any(d in ("sendonly", "sendrecv") for d in directions):
            raise SignallingError("the worker's offer sends no video: "
                                  "add the camera track before the offer")
        overlay = self._overlay
        if composited and overlay is None:
            raise SignallingError("field 'composited': this server has no twin to composite")
        if composited and "sendrecv" not in directions:
            raise SignallingError("field 'composited': the offer's video does not receive the "
                                  "view back: make the camera's transceiver sendrecv")
        await self.close(sid)
        pc = self._gateway.create_peer_connection()
        self._peers[sid] = (session_id, pc)
        self._watch_data_channels(sid, pc)
        video = self._videos.setdefault(session_id, _SessionVideo())
        video.publisher_sid = sid

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if video.publisher_sid != sid:
                return
            if track.kind == "audio":
                self._start_audio(video, sid, track)
            else:
                self._start_publication(session_id, video, track)

        def add_talkback() -> None:
            if any(d in ("recvonly", "sendrecv") for d in _media_directions(offer.sdp, "audio")):
                pc.addTrack(TalkbackTrack(video.conference.listen(sid)))  # the offer's audio

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("worker peer connection of session %s: %s", session_id, pc.connectionState)
            if pc.connectionState == "failed":
                await self.close(sid)

        if not composited or overlay is None:
            return await self._answer(pc, sid, offer, add_talkback)
        try:
            await pc.setRemoteDescription(offer)
            add_talkback()
            camera = next(t.receiver.track for t in pc.getTransceivers() if t.kind == "video")
            view = CompositedTrack(self._relay.subscribe(camera, buffered=False),
                                   lambda: overlay(session_id))
            self._views[sid] = view
            scaled = ScaledTrack(view)
            self._adapt(sid, pc.addTrack(scaled), scaled, max_bitrate_kbps)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.close(sid)
            raise SignallingError(f"cannot answer the offer: {exc}") from exc
        log.info("session %s: composited view to the worker", session_id)
        return pc.localDescription

    async def subscribe(self, session_id: str, sid: str, offer: RTCSessionDescription,
                        max_bitrate_kbps: int | None = None) -> RTCSessionDescription:
        """Answer an expert's offer: the session's current worker video is sent to it, at most
        `max_bitrate_kbps` (and the server's cap).

        Raises:
            SignallingError: the offer receives no video, or the session has no worker video yet.
        """
        if not any(d in ("recvonly", "sendrecv") for d in _media_directions(offer.sdp)):
            raise SignallingError("the expert's offer receives no video: "
                                  "add a recvonly video transceiver")
        video = self._videos.get(session_id)
        if video is None or video.publication is None:
            raise SignallingError(f"session {session_id} has no video from its worker yet")
        await self.close(sid)
        pc = self._gateway.create_peer_connection()
        self._peers[sid] = (session_id, pc)
        self._watch_data_channels(sid, pc)
        video.subscribers.add(sid)

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            log.info("expert peer connection of session %s: %s", session_id, pc.connectionState)
            if pc.connectionState == "failed":
                await self.close(sid)

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and sid in video.subscribers:
                video.conference.add_voice(sid, track)     # the expert's voice, to the others

        await pc.setRemoteDescription(offer)
        relayed = ScaledTrack(self._relay.subscribe(video.publication.track, buffered=False))
        self._adapt(sid, pc.addTrack(relayed), relayed, max_bitrate_kbps)
        if any(d in ("recvonly", "sendrecv") for d in _media_directions(offer.sdp, "audio")):
            pc.addTrack(TalkbackTrack(video.conference.listen(sid)))  # the worker, other experts
        try:
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.close(sid)
            raise SignallingError(f"cannot answer the offer: {exc}") from exc
        return pc.localDescription

    async def record(self, session_id: str, next_path: Callable[[], Path]) -> None:
        """Record the session's worker video from now on: each worker video stream (now, and
        after every reconnect) goes to a new file `next_path()` (H.264 MP4 with the worker's
        microphone as AAC when it sends one; aiortc's `MediaRecorder` on unbuffered relay
        proxies: one decode, no queue). The encoding runs on this loop."""
        await self.stop_recording(session_id)
        self._recorders[session_id] = [next_path, None]
        video = self._videos.get(session_id)
        if video is not None and video.publication is not None:
            await self._start_segment(session_id, video.publication.track)

    async def stop_recording(self, session_id: str) -> None:
        """Stop recording the session's video (finishes the file); nothing if not recording."""
        entry = self._recorders.pop(session_id, None)
        if entry is not None and entry[1] is not None:
            await self._finish(entry[1])

    async def _start_segment(self, session_id: str, track: MediaStreamTrack) -> None:
        entry = self._recorders.get(session_id)
        if entry is None:
            return
        if entry[1] is not None:
            await self._finish(entry[1])
            entry[1] = None
        recorder = MediaRecorder(str(entry[0]()))
        recorder.addTrack(self._relay.subscribe(track, buffered=False))
        video = self._videos.get(session_id)
        if video is not None and video.audio is not None:     # the worker's microphone, AAC
            recorder.addTrack(self._relay.subscribe(video.audio, buffered=False))
        await recorder.start()
        entry[1] = recorder

    async def _end_segment(self, session_id: str) -> None:
        entry = self._recorders.get(session_id)
        if entry is not None and entry[1] is not None:
            recorder, entry[1] = entry[1], None
            await self._finish(recorder)

    @staticmethod
    async def _finish(recorder: MediaRecorder) -> None:
        try:
            await recorder.stop()
        except Exception:  # noqa: BLE001 - a broken file must not break the media loop
            log.exception("finishing a video recording failed")

    async def close(self, sid: str) -> None:
        """Close the connection's peer connection, if any; a worker's ends the session's video."""
        entry = self._peers.pop(sid, None)
        if entry is None:
            return
        session_id, pc = entry
        adaptation = self._adaptations.pop(sid, None)
        self._connection_caps.pop(sid, None)
        if adaptation is not None:
            adaptation.stop()
        view = self._views.pop(sid, None)
        if view is not None:
            view.stop()
        video = self._videos.get(session_id)
        if video is not None:
            video.subscribers.discard(sid)
            video.conference.leave(sid)
            if video.publisher_sid == sid:
                video.publisher_sid = None
                self._end_publication(session_id, video)
                self._end_audio(video)
            if video.publisher_sid is None and not video.subscribers:
                video.conference.close()
                del self._videos[session_id]
        await pc.close()

    def _watch_data_channels(self, sid: str, pc: RTCPeerConnection) -> None:
        if self._on_data_channel is not None:
            callback = self._on_data_channel
            pc.on("datachannel", lambda channel: callback(sid, channel))

    def _adapt(self, sid: str, sender: RTCRtpSender, track: ScaledTrack,
               max_bitrate_kbps: int | None) -> None:
        session_id = self._peers[sid][0]
        self._connection_caps[sid] = max_bitrate_kbps
        adaptation = SenderAdaptation(sender, track, effective_cap(
            [self._max_bitrate_kbps, max_bitrate_kbps, self.session_cap(session_id)]), self._ladder)
        self._adaptations[sid] = adaptation
        adaptation.start()

    async def _answer(self, pc: RTCPeerConnection, sid: str, offer: RTCSessionDescription,
                      add_tracks: Callable[[], None] | None = None) -> RTCSessionDescription:
        try:
            await pc.setRemoteDescription(offer)
            if add_tracks is not None:
                add_tracks()
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:
            await self.close(sid)
            raise SignallingError(f"cannot answer the offer: {exc}") from exc
        return pc.localDescription

    # ------------------------------------------------------------------------------- audio
    def _start_audio(self, video: _SessionVideo, sid: str, track: MediaStreamTrack) -> None:
        """The worker's microphone: into the conference through a buffered relay proxy, which
        the conference always reads (aiortc queues undrained decoded frames without bound)."""
        self._end_audio(video)
        video.audio = track
        video.conference.add_voice(sid, self._relay.subscribe(track, buffered=True))

    @staticmethod
    def _end_audio(video: _SessionVideo) -> None:
        if video.audio is not None:
            video.audio.stop()
            video.audio = None

    # ------------------------------------------------------------------------- publications
    def _start_publication(self, session_id: str, video: _SessionVideo,
                           track: MediaStreamTrack) -> None:
        self._end_publication(session_id, video)
        publication = _Publication(track)
        video.publication = publication
        publication.reader = asyncio.ensure_future(
            self._read(session_id, publication, self._relay.subscribe(track, buffered=False)))
        self._set_status(session_id, VideoStatus(track.id, 0, 0, 0))
        if session_id in self._recorders:
            asyncio.ensure_future(self._start_segment(session_id, track))
        log.info("session %s: worker video %s started", session_id, track.id)
        self._notify(session_id, track.id)

    def _end_publication(self, session_id: str, video: _SessionVideo) -> None:
        publication, video.publication = video.publication, None
        if publication is None:
            return
        if publication.reader is not None:
            publication.reader.cancel()
        if session_id in self._recorders:
            asyncio.ensure_future(self._end_segment(session_id))
        publication.track.stop()
        self._set_status(session_id, None)
        log.info("session %s: worker video %s ended", session_id, publication.track.id)
        self._notify(session_id, None)

    async def _read(self, session_id: str, publication: _Publication,
                    proxy: MediaStreamTrack) -> None:
        """Drain the worker's track (through the relay) and keep its figures."""
        try:
            while True:
                frame = await proxy.recv()
                publication.frames += 1
                publication.width, publication.height = frame.width, frame.height
                self._set_status(session_id, VideoStatus(publication.track.id, publication.frames,
                                                         frame.width, frame.height))
                if self._on_frame is not None:
                    try:
                        self._on_frame(session_id, frame)
                    except Exception:  # noqa: BLE001 - a listener bug must not end the video
                        log.exception("frame listener failed for session %s", session_id)
        except MediaStreamError:
            video = self._videos.get(session_id)
            if video is not None and video.publication is publication:
                video.publication = None
                self._set_status(session_id, None)
                self._notify(session_id, None)
        finally:
            proxy.stop()

    def _set_status(self, session_id: str, status: VideoStatus | None) -> None:
        with self._status_lock:
            if status is None:
                self._status.pop(session_id, None)
            else:
                self._status[session_id] = status

    def _notify(self, session_id: str, track_id: str | None) -> None:
        try:
            self._on_video(session_id, track_id)
        except Exception:  # noqa: BLE001 - a listener bug must not break the media loop
            log.exception("video listener failed for session %s", session_id)
