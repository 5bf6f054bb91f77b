"""The twin stream over a WebRTC data channel, for clients that have a peer connection.

Issue 6: "the same stream over a WebRTC data channel (unordered, no retransmits) when a client
has a peer connection". A participant that opens a data channel labelled ``twin`` on its session
peer connection (the worker's `rtc_offer` or an expert's `rtc_subscribe` offer), created as
``createDataChannel("twin", {ordered: false, maxRetransmits: 0})`` (W3C WebRTC, RTCDataChannelInit;
SCTP partial reliability, RFC 8831 section 6.1), receives every ``twin_state`` of its cell on it
as one JSON text message (the schema of `xr_server/twin_schema.json`, the same dict Socket.IO
sends), and no longer over Socket.IO while the channel is open. A lost or late state is never
resent: the next one replaces it, which is what a state stream wants and TCP cannot do. Events
(annotations, session state, safety events, errors) stay on the Socket.IO connection, which is
reliable and ordered.

A channel opened with other reliability settings is closed at once and the participant keeps
the Socket.IO stream; its connection is told why in an ``error`` event (`on_refused`). A channel
whose SCTP send buffer still holds more than `MAX_BUFFERED_BYTES` (a slow or congested link)
skips states until it drains; the skipped ones are counted per connection, like the Socket.IO
queue's drops (`xr_server.twin_queue`).

Threads: `attach` and the sends run on the WebRTC gateway's loop; `send`, `sids` and `dropped`
are called from any thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from aiortc import RTCDataChannel

from xr_server.rtc_gateway import RtcGateway

log = logging.getLogger(__name__)

TWIN_LABEL = "twin"
#: Skip a state while the channel's send buffer holds more than this: one twin_state is at most
#: 16 KiB (issue 6), so at most one stale state waits per client.
MAX_BUFFERED_BYTES = 16 * 1024


class TwinChannels:
    """The open ``twin`` data channels, by Socket.IO connection id (sid).

    Args:
        gateway: the loop the channels live on.
        on_refused: ``(sid, reason)``, called on the loop when a ``twin`` channel is refused.
    """

    def __init__(self, gateway: RtcGateway,
                 on_refused: Callable[[str, str], None] = lambda sid, reason: None) -> None:
        self._gateway = gateway
        self._on_refused = on_refused
        self._lock = threading.Lock()
        self._channels: dict[str, RTCDataChannel] = {}
        self._dropped: dict[str, int] = {}
        self._newest: str | None = None  # the payload the next flush sends (older ones replaced)
        self._flush_pending = False
        self.sent = 0

    # ------------------------------------------------------------------------------- the loop
    def attach(self, sid: str, channel: RTCDataChannel) -> None:
        """Take a data channel the peer of `sid` opened (aiortc's ``datachannel`` event).
        Channels with another label are not the twin's and are left alone."""
        if channel.label != TWIN_LABEL:
            return
        if channel.ordered or channel.maxRetransmits != 0:
            reason = (f"data channel 'twin': must be unordered with maxRetransmits 0 (got ordered="
                      f"{str(channel.ordered).lower()}, maxRetransmits={channel.maxRetransmits}); "
                      "the twin stays on Socket.IO")
            log.info("connection %s: %s", sid, reason)
            channel.close()
            self._on_refused(sid, reason)
            return
        with self._lock:
            old = self._channels.get(sid)
            self._channels[sid] = channel
            self._dropped.setdefault(sid, 0)
        if old is not None and old is not channel:
            old.close()

        @channel.on("close")
        def _closed() -> None:
            self.detach(sid, channel)

        log.info("connection %s: twin_state over the data channel", sid)

    def detach(self, sid: str, channel: RTCDataChannel | None = None) -> None:
        """Forget the channel of `sid` (only `channel`, when given). Any thread."""
        with self._lock:
            if channel is None or self._channels.get(sid) is channel:
                self._channels.pop(sid, None)
                self._dropped.pop(sid, None)

    async def _flush(self) -> None:
        with self._lock:
            payload, self._newest, self._flush_pending = self._newest, None, False
            channels = list(self._channels.items())
        if payload is None:
            return
        for sid, channel in channels:
            if channel.readyState != "open":
                continue
            if channel.bufferedAmount > MAX_BUFFERED_BYTES:
                with self._lock:
                    self._dropped[sid] = self._dropped.get(sid, 0) + 1
                continue
            try:
                channel.send(payload)
                self.sent += 1
            except Exception:  # noqa: BLE001 - a channel closing under us must not stop the others
                log.exception("connection %s: twin_state on the data channel failed", sid)

    # ------------------------------------------------------------------------------ any thread
    def sids(self) -> list[str]:
        """The connections that get the twin over an open data channel (skip them on Socket.IO).
        A congested channel (send buffer over `MAX_BUFFERED_BYTES`: aiortc's SCTP retries with
        a backoff of up to a minute and never gives up) is not listed: its connection gets the
        Socket.IO stream until the channel drains."""
        with self._lock:
            return [sid for sid, ch in self._channels.items()
                    if ch.readyState == "open" and ch.bufferedAmount <= MAX_BUFFERED_BYTES]

    def dropped(self, sid: str) -> int | None:
        """States skipped for `sid`'s channel because its send buffer was full; None: no channel."""
        with self._lock:
            return self._dropped.get(sid) if sid in self._channels else None

    def send(self, state: dict) -> None:
        """Hand `state` (one ``twin_state``) to every open channel; returns at once. Only the
        newest state waits for the gateway's loop (a busy loop never builds a backlog of old
        states). Never raises: a state that cannot be encoded, or a stopped gateway, is logged."""
        with self._lock:
            if not self._channels:
                return
        try:
            payload = json.dumps(state, separators=(",", ":"))
            with self._lock:
                self._newest = payload
                schedule, self._flush_pending = not self._flush_pending, True
            if schedule:
                self._gateway.submit(self._flush)
        except Exception:  # noqa: BLE001 - GatewayError while stopping, or an unencodable state
            with self._lock:
                self._flush_pending = False
            log.warning("twin_state not sent on the data channels", exc_info=True)
