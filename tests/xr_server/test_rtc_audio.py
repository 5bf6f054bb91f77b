"""Audio among all participants over real aiortc peers on 127.0.0.1: the worker and two experts
each hear the other two and never themselves (tones at distinct frequencies, read back by FFT);
the conference's mixing itself."""

from __future__ import annotations

import asyncio
import fractions
import threading
import time

import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection
from av import AudioFrame

from tests.xr_server.rtc_peers import ClipTrack, negotiate, remote_track, until
from xr_server.rtc_audio import FRAME_SAMPLES, MAX_BUFFER_S, SAMPLE_RATE, AudioConference


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


def tone_levels(pcm: np.ndarray, rate: int, tones: list[float]) -> list[float]:
    """The spectral magnitude of `pcm` at each of `tones`, Hz, relative to the strongest."""
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    freqs = np.fft.rfftfreq(len(pcm), 1 / rate)
    peak = spectrum.max() or 1.0
    return [float(spectrum[np.abs(freqs - hz) < 15].max() / peak) for hz in tones]


def test_each_listener_hears_every_voice_but_its_own_and_delay_is_bounded():
    async def scenario():
        conference = AudioConference()
        bystander = conference.listen("x")
        assert not bystander.take().any()                   # nobody speaks: silence
        conference.add_voice("a", ToneTrack(440, rate=16_000))
        conference.add_voice("b", ToneTrack(880, rate=44_100))
        a_hears = conference.listen("a")                    # joins after the voices: hears b
        await asyncio.sleep(0.5)
        assert conference.voices == 2 and bystander.sources == 2 and a_hears.sources == 1
        # Never read: each buffer holds at most MAX_BUFFER_S, the oldest samples dropped.
        mixed = bystander.take(int(MAX_BUFFER_S * SAMPLE_RATE) + FRAME_SAMPLES)
        assert not mixed[-FRAME_SAMPLES:].any()             # nothing older than the bound was kept
        assert bystander.dropped > 0
        assert min(tone_levels(mixed[:4800].astype(float), SAMPLE_RATE, [440, 880])) > 0.5  # both
        heard = a_hears.take(4800).astype(float)
        assert tone_levels(heard, SAMPLE_RATE, [440, 880]) == [pytest.approx(0, abs=0.05), 1.0]
        conference.leave("b")                               # b's voice leaves every mix
        assert a_hears.sources == 0 and bystander.sources == 1
        conference.close()
        assert conference.voices == 0
    asyncio.run(scenario())


def test_the_worker_and_two_experts_each_hear_the_other_two_never_themselves(live):
    wendy, eve, emil = live.client("wendy"), live.client("eve"), live.client("emil")
    session = wendy.call("session_create", {"cell": "lab"})["session"]
    for expert in (eve, emil):
        expert.call("session_join", {"session": session, "role": "expert"})
    media = live.app.extensions["xrcell_sessions"].media
    rtc = RTCConfiguration(iceServers=[])
    tones = {"wendy": 440.0, "eve": 880.0, "emil": 1320.0}

    async def collect(track, seconds: float):
        frames, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            frames.append(await asyncio.wait_for(track.recv(), 10))
        return frames

    async def scenario():
        worker = RTCPeerConnection(rtc)
        worker_hears = remote_track(worker, "audio")
        worker.addTrack(ClipTrack())
        worker.addTrack(ToneTrack(tones["wendy"]))           # the worker's microphone
        await negotiate(wendy, worker, session)
        await until(lambda: media.video(session).frames_received >= 5)
        experts, hears = [], {"wendy": worker_hears}
        for name, client in (("eve", eve), ("emil", emil)):
            pc = RTCPeerConnection(rtc)
            hears[name] = remote_track(pc, "audio")
            pc.addTransceiver("video", direction="recvonly")
            pc.addTrack(ToneTrack(tones[name]))               # the expert's microphone
            await negotiate(client, pc, session)
            experts.append(pc)
        tracks = {name: await asyncio.wait_for(future, 10) for name, future in hears.items()}
        await asyncio.sleep(1.0)                              # every voice in every mix
        heard = dict(zip(tracks, await asyncio.gather(*(collect(t, 1.5) for t in tracks.values()))))
        for pc in (*experts, worker):
            await pc.close()
        return heard

    heard = asyncio.run(scenario())
    order = list(tones.values())
    for listener, frames in heard.items():
        _, rms = dominant_hz(frames[-25:])
        assert rms > 1000, (listener, rms)
        pcm = np.concatenate([f.to_ndarray().reshape(-1, len(f.layout.channels)).mean(axis=1)
                              for f in frames[-25:]])
        levels = dict(zip(tones, tone_levels(pcm, frames[0].sample_rate, order)))
        own = levels.pop(listener)
        assert own < 0.05, (listener, own, levels)           # never its own voice
        assert min(levels.values()) > 0.3, (listener, levels)  # both others, at comparable level
    for client in (wendy, eve, emil):
        threading.Thread(target=client.close, daemon=True).start()
