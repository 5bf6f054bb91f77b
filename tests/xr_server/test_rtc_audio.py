"""Audio both ways over real aiortc peers on 127.0.0.1: the worker's microphone reaches the
expert, the expert's voice reaches the worker through the talkback mix; the mixer itself."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time

import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from av import AudioFrame

from tests.xr_server.live import start_live_server_with_accounts
from tests.xr_server.test_rtc_relay import CLIP, ClipTrack, negotiate, until
from xr_server.rtc_audio import FRAME_SAMPLES, MAX_BUFFER_S, SAMPLE_RATE, TalkbackMixer


class ToneTrack(MediaStreamTrack):
    """A microphone playing a pure tone: 20 ms frames at `rate` Hz, paced in real time."""

    kind = "audio"

    def __init__(self, hz: float, rate: int = 48_000, amplitude: int = 8000) -> None:
        super().__init__()
        self.hz, self.rate, self.amplitude = hz, rate, amplitude
        self.samples = 0
        self.start: float | None = None

    async def recv(self) -> AudioFrame:
        n = self.rate // 50
        if self.start is None:
            self.start = time.monotonic()
        else:
            await asyncio.sleep(max(0.0, self.start + self.samples / self.rate - time.monotonic()))
        t = (self.samples + np.arange(n)) / self.rate
        pcm = (self.amplitude * np.sin(2 * np.pi * self.hz * t)).astype(np.int16).reshape(1, -1)
        frame = AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = self.rate, self.samples, fractions.Fraction(1, self.rate)
        self.samples += n
        return frame


def dominant_hz(frames) -> tuple[float, float]:
    """(the strongest frequency, the RMS) of received audio frames, mixed down to mono."""
    def mono(f):
        samples = f.to_ndarray()
        if f.format.is_planar:                       # (channels, samples)
            return samples.mean(axis=0)
        return samples.reshape(-1, len(f.layout.channels)).mean(axis=1)   # interleaved

    pcm = np.concatenate([mono(f) for f in frames]).astype(np.float64)
    rate = frames[0].sample_rate
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return float(np.fft.rfftfreq(len(pcm), 1 / rate)[spectrum.argmax()]), float(np.sqrt((pcm ** 2).mean()))


def test_the_mixer_sums_sources_and_bounds_their_delay():
    async def scenario():
        mixer = TalkbackMixer()
        assert not mixer.take().any()                      # nobody speaks: silence
        low, high = ToneTrack(440, rate=16_000), ToneTrack(880, rate=44_100)
        mixer.add("a", low)
        mixer.add("b", high)
        await asyncio.sleep(0.5)
        assert mixer.sources == 2
        # Never read: each buffer holds at most MAX_BUFFER_S, the oldest samples dropped.
        mixed = mixer.take(int(MAX_BUFFER_S * SAMPLE_RATE) + FRAME_SAMPLES)
        tail = mixed[-FRAME_SAMPLES:]
        assert not tail.any()                              # nothing older than the bound was kept
        spectrum = np.abs(np.fft.rfft(mixed[:4800] * np.hanning(4800)))
        peaks = sorted(np.fft.rfftfreq(4800, 1 / SAMPLE_RATE)[np.argsort(spectrum)[-2:]])
        assert peaks == pytest.approx([440, 880], abs=15)  # both voices, resampled to 48 kHz
        mixer.remove("a")
        mixer.close()
        assert mixer.sources == 0
    asyncio.run(scenario())


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_live_server_with_accounts(tmp_path_factory.mktemp("audio"))
    yield server
    server.app.xrcell_stop()


def test_worker_and_expert_hear_each_other(live):
    wendy, eve = live.client("wendy"), live.client("eve")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    eve.call("session_join", {"session": session, "role": "expert"})
    media = live.app.extensions["xrcell_sessions"].media
    rtc = RTCConfiguration(iceServers=[])

    async def collect(track, seconds: float):
        frames, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            frames.append(await asyncio.wait_for(track.recv(), 10))
        return frames

    async def scenario():
        worker = RTCPeerConnection(rtc)
        talkback = asyncio.get_running_loop().create_future()
        worker.on("track", lambda t: talkback.set_result(t) if t.kind == "audio" else None)
        worker.addTrack(ClipTrack(CLIP))
        worker.addTrack(ToneTrack(440))                      # the worker's microphone
        await negotiate(wendy, worker, session)
        await until(lambda: media.video(session).frames_received >= 5)
        expert = RTCPeerConnection(rtc)
        heard = asyncio.get_running_loop().create_future()
        expert.on("track", lambda t: heard.set_result(t) if t.kind == "audio" else None)
        expert.addTransceiver("video", direction="recvonly")
        expert.addTrack(ToneTrack(880))                      # the expert's microphone
        await negotiate(eve, expert, session)
        worker_voice = await collect(await asyncio.wait_for(heard, 10), 1.5)
        expert_voice = await collect(await asyncio.wait_for(talkback, 10), 1.5)
        await expert.close()
        await worker.close()
        return worker_voice, expert_voice

    worker_voice, expert_voice = asyncio.run(scenario())
    hz, rms = dominant_hz(worker_voice[-25:])
    assert hz == pytest.approx(440, abs=10) and rms > 1000, (hz, rms)   # the expert hears the worker
    hz, rms = dominant_hz(expert_voice[-25:])
    assert hz == pytest.approx(880, abs=10) and rms > 1000, (hz, rms)   # the worker hears the expert
    for client in (wendy, eve):
        threading.Thread(target=client.close, daemon=True).start()
