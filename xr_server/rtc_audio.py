"""Talkback: every participant of a session hears every other one, over their own peer connection.

The voices of a session (the worker's microphone and each expert's) feed one `AudioConference`.
Each voice is read by one task, resampled once with PyAV's `AudioResampler` to 48 kHz mono signed
16-bit PCM (what Opus encodes natively), and its samples are appended to the `TalkbackMixer` of
every *other* listener. Each listener's connection sends a `TalkbackTrack` that reads its mix:
20 ms frames, the sum of the other participants' samples clipped to the 16-bit range, silence
while nobody else speaks; a participant never hears itself. A listener's buffer per voice holds at
most `MAX_BUFFER_S`: a voice that delivers faster than the listener's track reads loses its
oldest samples instead of building up delay.

Threads: everything here runs on the `RtcGateway` loop.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import time

import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError
from av import AudioFrame, AudioResampler

log = logging.getLogger(__name__)

#: The talkback format: 48 kHz mono, 20 ms frames (Opus's native rate and a WebRTC ptime).
SAMPLE_RATE = 48_000
FRAME_SAMPLES = SAMPLE_RATE // 50
#: Most audio kept per voice and listener, seconds: older samples are dropped (latency bound).
MAX_BUFFER_S = 0.2

class TalkbackMixer:
    """What one listener hears: a bounded buffer per other participant's voice, mixed (loop
    only)."""

    def __init__(self) -> None:
        self._buffers: dict[str, np.ndarray] = {}
        self.dropped = 0        # samples dropped by the MAX_BUFFER_S bound, all voices

    @property
    def sources(self) -> int:
        """How many voices this listener hears now."""
        return len(self._buffers)

    def attach(self, key: str) -> None:
        """Start hearing voice `key` (silent until samples arrive)."""
        self._buffers.setdefault(key, np.zeros(0, dtype=np.int16))

    def detach(self, key: str) -> None:
        """Stop hearing voice `key`, if heard."""
        self._buffers.pop(key, None)

    def feed(self, key: str, samples: np.ndarray) -> None:
        """Append `samples` ((n,) int16, 48 kHz mono) of voice `key`, if attached, keeping at
        most `MAX_BUFFER_S` of it."""
        buffer = self._buffers.get(key)
        if buffer is None:
            return
        buffer = np.concatenate([buffer, samples])
        limit = int(MAX_BUFFER_S * SAMPLE_RATE)
        if len(buffer) > limit:
            self.dropped += len(buffer) - limit
            buffer = buffer[-limit:]
        self._buffers[key] = buffer

    def take(self, n: int = FRAME_SAMPLES) -> np.ndarray:
        """The next `n` samples of the mix: (n,) int16, the sum of every voice heard (each
        zero-padded when its buffer runs dry) clipped to the 16-bit range; zeros without voices."""
        total = np.zeros(n, dtype=np.int32)
        for key, buffer in self._buffers.items():
            have = min(n, len(buffer))
            total[:have] += buffer[:have]
            self._buffers[key] = buffer[have:]
        return np.clip(total, -32768, 32767).astype(np.int16)


class _Voice:
    """One participant's microphone, read and resampled by its own task into the listeners'
    mixers."""

    def __init__(self, key: str, track: MediaStreamTrack, conference: "AudioConference") -> None:
        self.track = track
        self._key = key
        self._conference = conference
        self._resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            while True:
                frame = await self.track.recv()
                for out in self._resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                    self._conference._deliver(self._key, samples)
        except MediaStreamError:
            pass


class AudioConference:
    """The voices and listeners of one session (loop only). Keys are the participants'
    connection ids: a listener never hears the voice of its own key."""

    def __init__(self) -> None:
        self._voices: dict[str, _Voice] = {}
        self._mixes: dict[str, TalkbackMixer] = {}

    @property
    def voices(self) -> int:
        """How many participants send audio now."""
        return len(self._voices)

    def add_voice(self, key: str, track: MediaStreamTrack) -> None:
        """Mix `track` (a participant's microphone, any sample rate and layout; read to its end
        by this conference) into every other listener's mix, replacing the voice of `key`."""
        self.remove_voice(key)
        self._voices[key] = _Voice(key, track, self)
        for listener, mix in self._mixes.items():
            if listener != key:
                mix.attach(key)

    def remove_voice(self, key: str) -> None:
        """Stop mixing the voice of `key` (its track is stopped), if any."""
        voice = self._voices.pop(key, None)
        if voice is None:
            return
        voice.task.cancel()
        voice.track.stop()
        for mix in self._mixes.values():
            mix.detach(key)

    def listen(self, key: str) -> TalkbackMixer:
        """The mix that listener `key` hears: every voice but its own (created on first call)."""
        mix = self._mixes.get(key)
        if mix is None:
            mix = self._mixes[key] = TalkbackMixer()
            for voice in self._voices:
                if voice != key:
                    mix.attach(voice)
        return mix

    def leave(self, key: str) -> None:
        """Remove participant `key`: its voice and its mix."""
        self.remove_voice(key)
        self._mixes.pop(key, None)

    def close(self) -> None:
        for key in list(self._voices):
            self.remove_voice(key)
        self._mixes.clear()

    def _deliver(self, key: str, samples: np.ndarray) -> None:
        for listener, mix in self._mixes.items():
            if listener != key:
                mix.feed(key, samples)


class TalkbackTrack(MediaStreamTrack):
    """A participant's audio track from the server: its `TalkbackMixer`, paced in real
    time (one 20 ms frame per 20 ms of the monotonic clock, as aiortc's `AudioStreamTrack`)."""

    kind = "audio"

    def __init__(self, mixer: TalkbackMixer) -> None:
        super().__init__()
        self._mixer = mixer
        self._start: float | None = None
        self._samples = 0

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._samples += FRAME_SAMPLES
            wait = self._start + self._samples / SAMPLE_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        frame = AudioFrame.from_ndarray(self._mixer.take(FRAME_SAMPLES).reshape(1, -1), format="s16",
                                        layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._samples
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        return frame
