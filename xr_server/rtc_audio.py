"""Talkback: the remote experts' voices to the worker, over the worker's own peer connection.

The worker's microphone goes to the experts through the session's `MediaRelay` (one decode, as
the video). The other way, every expert's microphone track feeds one `TalkbackMixer` per session;
the worker's connection sends a `TalkbackTrack` that reads the mix: 20 ms frames of 48 kHz mono
signed 16-bit PCM (what Opus encodes natively), the sum of the experts' samples clipped to the
16-bit range, silence while nobody speaks. Each expert's audio is resampled to that format with
PyAV's `AudioResampler` and kept in a buffer of at most `MAX_BUFFER_S`: a source that delivers
faster than the worker's track reads loses its oldest samples instead of building up delay.

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
#: Most audio kept per expert, seconds: older samples are dropped (latency bound of the talkback).
MAX_BUFFER_S = 0.2


class _Source:
    """One expert's microphone, resampled into a bounded buffer by its own reader task."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.buffer = np.zeros(0, dtype=np.int16)
        self.dropped = 0
        self._resampler = AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        self.task = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        limit = int(MAX_BUFFER_S * SAMPLE_RATE)
        try:
            while True:
                frame = await track.recv()
                for out in self._resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1).astype(np.int16, copy=False)
                    self.buffer = np.concatenate([self.buffer, samples])
                    if len(self.buffer) > limit:
                        self.dropped += len(self.buffer) - limit
                        self.buffer = self.buffer[-limit:]
        except MediaStreamError:
            pass

    def take(self, n: int) -> np.ndarray:
        """The next `n` samples (zero-padded when the buffer runs dry)."""
        out = np.zeros(n, dtype=np.int16)
        have = min(n, len(self.buffer))
        out[:have] = self.buffer[:have]
        self.buffer = self.buffer[have:]
        return out


class TalkbackMixer:
    """The expert microphones of one session, mixed (loop only)."""

    def __init__(self) -> None:
        self._sources: dict[str, _Source] = {}

    @property
    def sources(self) -> int:
        """How many experts send audio now."""
        return len(self._sources)

    def add(self, key: str, track: MediaStreamTrack) -> None:
        """Mix `track` (an expert's microphone, any sample rate and layout) in, replacing the
        one of the same `key` (the expert's connection id)."""
        self.remove(key)
        self._sources[key] = _Source(track)

    def remove(self, key: str) -> None:
        """Stop mixing the audio of `key`, if any."""
        source = self._sources.pop(key, None)
        if source is not None:
            source.task.cancel()

    def close(self) -> None:
        for key in list(self._sources):
            self.remove(key)

    def take(self, n: int = FRAME_SAMPLES) -> np.ndarray:
        """The next `n` samples of the mix: (n,) int16, the sum of every source clipped to the
        16-bit range; zeros without sources."""
        if not self._sources:
            return np.zeros(n, dtype=np.int16)
        total = np.zeros(n, dtype=np.int32)
        for source in self._sources.values():
            total += source.take(n)
        return np.clip(total, -32768, 32767).astype(np.int16)


class TalkbackTrack(MediaStreamTrack):
    """The worker's audio track from the server: the session's `TalkbackMixer`, paced in real
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
