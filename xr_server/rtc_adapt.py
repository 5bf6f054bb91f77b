"""Bitrate and resolution of the video the server sends (to experts, and the composited view back
to a worker's glasses), adapted to the link.

Congestion feedback: aiortc has no `RTCRtpSender.setParameters`; what it does is take the
receiver's REMB (RTCP receiver estimated maximum bitrate, draft-alvestrand-rmcat-remb; Chromium
and aiortc send it) and write it into its video encoder's ``target_bitrate`` (clamped to the
codec's range: VP8 250 to 1500 kbit/s, H.264 500 to 3000 kbit/s). `SenderAdaptation` puts a small
proxy in front of that encoder (`EncoderProxy`, the one place that touches aiortc's private
attributes: see `_encoder_of`/`_set_encoder`), so each REMB is seen as the link's estimate and the
encoder gets ``min(estimate, max_bitrate_kbps)``: the manual cap (W3C
`RTCRtpEncodingParameters.maxBitrate`, in kbit/s here) wins over the estimate. The cap of a
sender is the lowest of the cell's (``video.max_bitrate_kbps``), its connection's
(``rtc_offer.max_bitrate_kbps``) and its session's (``session_video_cap``, set at run time by an
expert of the session): `SenderAdaptation.set_max_bitrate` changes it at once, encoder included.

Resolution: each outgoing track is a `ScaledTrack` that resizes frames by its ``scale`` (1.0,
0.75, 0.5 of the source; W3C ``scaleResolutionDownBy`` 1, 1.33, 2). A `ResolutionLadder` (pure)
steps down when the budget (`link_budget_kbps`) stays below the current step's threshold for
``hold_down_s`` and up when it stays above the next step's (higher) threshold for ``hold_up_s``.
Thresholds are for a 640x480 source and scale with the source's pixel count. The estimate counts
as a budget only while it is below what the sender actually sends (the receiver reports
congestion): a REMB estimator (aiortc's, Chromium's) never reports much more than 1.5 times the
incoming rate, so an encoder that undershoots its target on easy content would otherwise walk
the ladder down on a good link.

Latency: a `ScaledTrack` reads an unbuffered `MediaRelay` proxy (or the composited view, itself
reading one): an encoder or link that cannot keep up gets the newest frame, never a queue.

Threads: everything runs on the `RtcGateway` loop except `SenderAdaptation.status`, which any
thread may call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiortc import MediaStreamTrack, RTCRtpSender
from aiortc.mediastreams import MediaStreamError
from av import VideoFrame

log = logging.getLogger(__name__)

#: The source size the ladder's thresholds are given for, pixels.
REFERENCE_PIXELS = 640 * 480
#: Lowest and highest manual cap accepted, kbit/s (aiortc's VP8 encoder goes no lower than 250).
MIN_MAX_BITRATE_KBPS = 250
MAX_MAX_BITRATE_KBPS = 20_000
#: How often a sender's estimate is read and its ladder updated, seconds.
ADAPT_PERIOD_S = 0.25
#: The window over which a sender's send rate is measured, seconds.
SEND_RATE_WINDOW_S = 2.0


@dataclass(frozen=True)
class LadderPolicy:
    """The resolution steps and when to take them.

    Attributes:
        scales: the steps, largest first, each a fraction of the source's width and height.
        down_kbps: ``down_kbps[i]``: below this budget at step i, go to step i + 1 (one per step
            but the last), kbit/s for a 640x480 source.
        up_kbps: ``up_kbps[i]``: above this budget at step i + 1, go back to step i; each above
            its ``down_kbps[i]`` (the hysteresis), kbit/s for a 640x480 source.
        hold_down_s: how long the budget must stay low before a step down, seconds.
        hold_up_s: how long it must stay high before a step up, seconds.

    Raises:
        ValueError: the lists do not fit together, naming the field.
    """

    scales: tuple[float, ...] = (1.0, 0.75, 0.5)
    down_kbps: tuple[float, ...] = (600.0, 350.0)
    up_kbps: tuple[float, ...] = (800.0, 450.0)
    hold_down_s: float = 2.0
    hold_up_s: float = 5.0

    def __post_init__(self) -> None:
        if not self.scales or any(not 0 < s <= 1 for s in self.scales) \
                or list(self.scales) != sorted(self.scales, reverse=True):
            raise ValueError(f"scales must descend within (0, 1], got {self.scales}")
        steps = len(self.scales) - 1
        if len(self.down_kbps) != steps or len(self.up_kbps) != steps:
            raise ValueError(f"down_kbps and up_kbps need {steps} values each (one per step down)")
        if any(up <= down for up, down in zip(self.up_kbps, self.down_kbps)):
            raise ValueError("up_kbps must each exceed down_kbps (hysteresis), got "
                             f"{self.up_kbps} and {self.down_kbps}")


class ResolutionLadder:
    """Which scale to send at, from the bitrate budget over time (pure: the caller gives the clock).

    Args:
        policy: the steps and thresholds.
        source_pixels: the source's width x height (thresholds scale with it).
    """

    def __init__(self, policy: LadderPolicy = LadderPolicy(),
                 source_pixels: int = REFERENCE_PIXELS) -> None:
        self.policy = policy
        self.step = 0
        self._factor = source_pixels / REFERENCE_PIXELS
        self._low_since: float | None = None
        self._high_since: float | None = None

    @property
    def scale(self) -> float:
        return self.policy.scales[self.step]

    def set_source_pixels(self, pixels: int) -> None:
        self._factor = pixels / REFERENCE_PIXELS

    def update(self, budget_kbps: float, now_s: float) -> float:
        """Feed the budget (kbit/s) at `now_s` (any monotonic seconds); returns the scale."""
        p = self.policy
        low = self.step < len(p.scales) - 1 and budget_kbps < p.down_kbps[self.step] * self._factor
        high = self.step > 0 and budget_kbps > p.up_kbps[self.step - 1] * self._factor
        # when the budget went (and stayed) low or high; None while it is not
        self._low_since = None if not low else now_s if self._low_since is None else self._low_since
        self._high_since = (None if not high
                            else now_s if self._high_since is None else self._high_since)
        if self._low_since is not None and now_s - self._low_since >= p.hold_down_s:
            self.step += 1
            self._low_since = None
        elif self._high_since is not None and now_s - self._high_since >= p.hold_up_s:
            self.step -= 1
            self._high_since = None
        return self.scale


class ScaledTrack(MediaStreamTrack):
    """A video track that sends `source`'s frames resized by ``scale`` (even sizes, pts kept).

    It reads `source` only when its own consumer (the encoder) asks, so with an unbuffered relay
    proxy as the source, a slow encoder skips frames instead of queuing them.
    """

    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self.source = source
        self.scale = 1.0
        self.width = 0          # of the newest frame sent, pixels
        self.height = 0
        self.source_width = 0   # of the newest source frame, pixels
        self.source_height = 0
        self.frames = 0

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        frame = await self.source.recv()
        self.source_width, self.source_height = frame.width, frame.height
        if self.scale < 1.0:
            width = max(2, int(frame.width * self.scale) // 2 * 2)
            height = max(2, int(frame.height * self.scale) // 2 * 2)
            scaled = frame.reformat(width=width, height=height)
            scaled.pts = frame.pts
            if frame.time_base is not None:
                scaled.time_base = frame.time_base
            frame = scaled
        self.width, self.height = frame.width, frame.height
        self.frames += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self.source.stop()


# ------------------------------------------------------------- the aiortc private-attribute seam
def _encoder_of(sender: RTCRtpSender) -> Any:
    """aiortc's video encoder of `sender` (None before its first frame)."""
    return sender._RTCRtpSender__encoder  # type: ignore[attr-defined]


def _set_encoder(sender: RTCRtpSender, encoder: Any) -> None:
    sender._RTCRtpSender__encoder = encoder  # type: ignore[attr-defined]


class EncoderProxy:
    """Stands in front of aiortc's encoder: records each ``target_bitrate`` aiortc writes (the
    REMB estimate, bit/s) and passes on ``min(estimate, cap)``; everything else goes through."""

    def __init__(self, encoder: Any, cap_bps: int | None) -> None:
        object.__setattr__(self, "_encoder", encoder)
        object.__setattr__(self, "cap_bps", cap_bps)
        object.__setattr__(self, "estimate_bps", None)
        object.__setattr__(self, "remb_count", 0)
        object.__setattr__(self, "initial_bps", int(encoder.target_bitrate))
        if cap_bps is not None and encoder.target_bitrate > cap_bps:
            encoder.target_bitrate = cap_bps

    def set_cap(self, cap_bps: int | None) -> None:
        """Change the cap (bit/s; None: none) and apply it now: the encoder aims at the newest
        estimate (before the first, the encoder's own starting target) within the new cap."""
        object.__setattr__(self, "cap_bps", cap_bps)
        base = self.estimate_bps if self.estimate_bps is not None else self.initial_bps
        self._encoder.target_bitrate = base if cap_bps is None else min(base, cap_bps)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    @property
    def target_bitrate(self) -> int:
        return self._encoder.target_bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        object.__setattr__(self, "estimate_bps", int(bitrate))
        object.__setattr__(self, "remb_count", self.remb_count + 1)
        cap = self.cap_bps
        self._encoder.target_bitrate = bitrate if cap is None else min(bitrate, cap)


def link_budget_kbps(estimate_kbps: float | None, sent_kbps: float | None,
                     cap_kbps: float | None) -> float | None:
    """The bitrate budget of a sender, kbit/s: the manual cap, and the receiver's estimate when
    it is below the measured send rate (congestion); None when neither applies."""
    budgets = [] if cap_kbps is None else [cap_kbps]
    if estimate_kbps is not None and sent_kbps is not None and estimate_kbps < sent_kbps:
        budgets.append(estimate_kbps)
    return min(budgets) if budgets else None


@dataclass(frozen=True)
class VideoOut:
    """The video a peer connection sends, a snapshot (see `SenderAdaptation.status`).

    Attributes:
        estimate_kbps: the receiver's newest REMB estimate, kbit/s (None before the first).
        sent_kbps: what the sender sent over the last seconds, kbit/s (None before it measured).
        max_bitrate_kbps: the manual cap, kbit/s (None: none).
        target_bitrate_kbps: what the encoder aims at now, kbit/s (None before the first frame).
        scale: the resolution step, a fraction of the source's width and height.
        width, height: of the newest frame sent, pixels (0 before the first).
    """

    estimate_kbps: float | None
    sent_kbps: float | None
    max_bitrate_kbps: int | None
    target_bitrate_kbps: float | None
    scale: float
    width: int
    height: int

    def as_dict(self) -> dict:
        return {"estimate_kbps": self.estimate_kbps, "sent_kbps": self.sent_kbps,
                "max_bitrate_kbps": self.max_bitrate_kbps,
                "target_bitrate_kbps": self.target_bitrate_kbps, "scale": self.scale,
                "width": self.width, "height": self.height}


class SenderAdaptation:
    """Adapts one video sender (its `ScaledTrack`) to its link; `start` runs it on the loop.

    Args:
        sender: the aiortc sender of `track`.
        track: what it sends.
        max_bitrate_kbps: the manual cap (None: the estimate alone).
        policy: the resolution ladder's policy.
    """

    def __init__(self, sender: RTCRtpSender, track: ScaledTrack,
                 max_bitrate_kbps: int | None = None,
                 policy: LadderPolicy = LadderPolicy()) -> None:
        self.sender = sender
        self.track = track
        self.max_bitrate_kbps = max_bitrate_kbps
        self._ladder = ResolutionLadder(policy)
        self._task: asyncio.Task | None = None
        self._status: VideoOut | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def set_max_bitrate(self, max_bitrate_kbps: int | None) -> None:
        """Change the manual cap (kbit/s; None: none) now: the encoder's target, the ladder's
        budget from the next step on, and the snapshot. On the loop only."""
        self.max_bitrate_kbps = max_bitrate_kbps
        encoder = _encoder_of(self.sender)
        if isinstance(encoder, EncoderProxy):
            encoder.set_cap(None if max_bitrate_kbps is None else max_bitrate_kbps * 1000)
        status = self._status
        if status is not None:
            target = None if not isinstance(encoder, EncoderProxy) else encoder.target_bitrate
            self._status = replace(status, max_bitrate_kbps=max_bitrate_kbps,
                                   target_bitrate_kbps=None if target is None
                                   else round(target / 1000, 1))

    def status(self) -> VideoOut:
        """The newest snapshot; thread-safe (an attribute read)."""
        status = self._status
        if status is None:
            return VideoOut(None, None, self.max_bitrate_kbps, None, 1.0, 0, 0)
        return status

    def step(self, now_s: float, sent_kbps: float | None = None) -> None:
        """One adaptation step at `now_s` (monotonic s) with the measured send rate (kbit/s): wrap
        the encoder once it exists, feed the ladder, publish the snapshot."""
        encoder = _encoder_of(self.sender)
        cap_bps = None if self.max_bitrate_kbps is None else self.max_bitrate_kbps * 1000
        if encoder is not None and not isinstance(encoder, EncoderProxy) \
                and hasattr(encoder, "target_bitrate"):
            encoder = EncoderProxy(encoder, cap_bps)
            _set_encoder(self.sender, encoder)
        proxy = encoder if isinstance(encoder, EncoderProxy) else None
        target = None if proxy is None else proxy.target_bitrate
        estimate = None if proxy is None else proxy.estimate_bps
        if self.track.source_width:
            self._ladder.set_source_pixels(self.track.source_width * self.track.source_height)
        budget = link_budget_kbps(None if estimate is None else estimate / 1000, sent_kbps,
                                  self.max_bitrate_kbps)
        # no budget: the link takes what is sent, feed the ladder an unbounded one
        scale = self._ladder.update(math.inf if budget is None else budget, now_s)
        if scale != self.track.scale:
            log.info("video sent on track %s: scale %.2f -> %.2f (budget %s kbit/s, sent %s)",
                     self.track.id, self.track.scale, scale,
                     "none" if budget is None else round(budget),
                     "?" if sent_kbps is None else round(sent_kbps))
            self.track.scale = scale
        self._status = VideoOut(None if estimate is None else round(estimate / 1000, 1),
                                None if sent_kbps is None else round(sent_kbps, 1),
                                self.max_bitrate_kbps,
                                None if target is None else round(target / 1000, 1),
                                self.track.scale, self.track.width, self.track.height)

    async def _run(self) -> None:
        samples: deque[tuple[float, int]] = deque()      # (monotonic s, bytes sent)
        try:
            while True:
                now = time.monotonic()
                report = await self.sender.getStats()
                sent = sum(s.bytesSent for s in report.values() if s.type == "outbound-rtp")
                samples.append((now, sent))
                while now - samples[0][0] > SEND_RATE_WINDOW_S:
                    samples.popleft()
                rate = None
                if now - samples[0][0] >= SEND_RATE_WINDOW_S / 2:
                    rate = (sent - samples[0][1]) * 8 / 1000 / (now - samples[0][0])
                self.step(now, rate)
                await asyncio.sleep(ADAPT_PERIOD_S)
        except Exception:  # noqa: BLE001 - adaptation must never end the video
            log.exception("video adaptation stopped")


def effective_cap(caps: Sequence[int | None]) -> int | None:
    """The lowest of the caps that are set (kbit/s), None when none is."""
    given = [c for c in caps if c is not None]
    return min(given) if given else None
