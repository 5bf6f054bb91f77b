"""The WebRTC gateway: one asyncio event loop in its own thread, where every aiortc object lives.

aiortc is asyncio code: an `RTCPeerConnection`, its transports and tracks belong to the loop
that created them and must only be touched from that loop. The Flask-SocketIO server runs in
``async_mode="threading"`` (see docs/xr_server.md): each Socket.IO handler runs in an ordinary OS
thread with no event loop at all. `RtcGateway` is the one door between the two worlds: a handler
thread calls `RtcGateway.call(coroutine_function, *args, timeout_s=...)`, the coroutine runs on
the gateway's loop (`asyncio.run_coroutine_threadsafe`), and the handler gets its result or its
exception, or `GatewayTimeout` (the coroutine is then cancelled on the loop).

The gateway also owns the life of the peer connections: `create_peer_connection` (on the loop)
registers each one, `stop` closes every registered connection, then ends the loop and joins the
thread.

Threads: `call`, `submit`, `start`, `stop` and `peer_count` are thread-safe and may be called
from any thread except the gateway's own (`call` from the loop would wait on itself:
`GatewayError`). `create_peer_connection` must run on the loop (inside a coroutine passed to
`call`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from xr_server import rtc_receiver
from xr_server.errors import GatewayError, GatewayTimeout

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Default timeout of `RtcGateway.call`, seconds: an offer/answer with host candidates only
#: takes a few tens of ms; ICE gathering with STUN/TURN servers can take a few seconds.
DEFAULT_CALL_TIMEOUT_S = 10.0


class RtcGateway:
    """One asyncio loop in a daemon thread, the aiortc peer connections on it, and a blocking
    call API for the Socket.IO handler threads.

    Args:
        ice_servers: STUN/TURN servers for every peer connection. Empty by default: aiortc
            would otherwise use a public STUN server, which a plant network neither has nor
            should be asked for (give the plant's own STUN/TURN here).
        name: name of the loop's thread.

    States: created (``call`` raises `GatewayError` until `start`), running, stopped (for good;
    ``call`` raises `GatewayError`).
    """

    def __init__(self, ice_servers: Sequence[RTCIceServer] = (), *,
                 name: str = "rtc-gateway") -> None:
        rtc_receiver.install()  # video frames reach the decoder at their marker packet
        self._configuration = RTCConfiguration(iceServers=list(ice_servers))
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._peers: set[RTCPeerConnection] = set()  # touched on the loop only

    # ------------------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the loop's thread (idempotent while running).

        Raises:
            GatewayError: after `stop`.
        """
        with self._lock:
            if self._stopped:
                raise GatewayError("the WebRTC gateway is stopped")
            if self._thread is not None:
                return
            loop = asyncio.new_event_loop()
            ready = threading.Event()

            def run() -> None:
                asyncio.set_event_loop(loop)
                loop.call_soon(ready.set)
                try:
                    loop.run_forever()
                finally:
                    loop.close()

            self._loop = loop
            self._thread = threading.Thread(target=run, name=self._name, daemon=True)
            self._thread.start()
        ready.wait()

    @property
    def running(self) -> bool:
        """True between `start` and `stop`."""
        with self._lock:
            return self._thread is not None and not self._stopped

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close every peer connection, cancel what still runs on the loop, end the loop and join
        its thread (at most about `timeout_s`). Idempotent; safe before `start`."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout_s)
        except Exception:  # noqa: BLE001 - shutting down regardless
            log.exception("closing the peer connections failed")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        if thread.is_alive():
            log.error("the WebRTC gateway's thread did not end within %.1f s", timeout_s)

    async def _shutdown(self) -> None:
        peers = list(self._peers)
        await asyncio.gather(*(pc.close() for pc in peers), return_exceptions=True)
        self._peers.clear()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        log.info("WebRTC gateway stopped: %d peer connection(s) closed", len(peers))

    # ---------------------------------------------------------------------------------- calls
    def submit(self, fn: Callable[..., Awaitable[_T]], *args: Any) -> concurrent.futures.Future[_T]:
        """Schedule ``fn(*args)`` on the loop and return its future without waiting.

        Raises:
            GatewayError: not started, or stopped.
        """
        with self._lock:
            loop = self._loop
            if loop is None or self._stopped:
                raise GatewayError("the WebRTC gateway is stopped" if self._stopped
                                   else "the WebRTC gateway is not started")
            return asyncio.run_coroutine_threadsafe(_as_coroutine(fn, *args), loop)

    def call(self, fn: Callable[..., Awaitable[_T]], *args: Any,
             timeout_s: float = DEFAULT_CALL_TIMEOUT_S) -> _T:
        """Run ``fn(*args)`` on the loop and wait for it; for the Socket.IO handler threads.

        Returns:
            What the coroutine returned.

        Raises:
            GatewayTimeout: not done within `timeout_s` (the coroutine is cancelled on the loop).
            GatewayError: not started, stopped, stopped while waiting, or called from the loop's
                own thread (it would wait on itself forever).
            Exception: whatever the coroutine raised, unchanged.
        """
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if threading.current_thread() is self._thread:
            raise GatewayError("RtcGateway.call from the gateway's own loop: "
                               "await the coroutine instead")
        future = self.submit(fn, *args)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise GatewayTimeout(f"{getattr(fn, '__name__', 'coroutine')} did not finish within "
                                 f"{timeout_s:g} s") from None
        except concurrent.futures.CancelledError:
            raise GatewayError("the WebRTC gateway stopped before the call finished") from None

    # ------------------------------------------------------------------------ peer connections
    def create_peer_connection(self) -> RTCPeerConnection:
        """A new `RTCPeerConnection` with the gateway's ICE servers, closed by `stop` and
        forgotten once closed. Call on the loop only."""
        if self._stopped:
            raise GatewayError("the WebRTC gateway is stopped")
        pc = RTCPeerConnection(self._configuration)
        self._peers.add(pc)

        @pc.on("connectionstatechange")
        def _forget_closed() -> None:
            if pc.connectionState == "closed":
                self._peers.discard(pc)

        return pc

    def peer_count(self) -> int:
        """Peer connections not closed yet (a snapshot, from any thread)."""
        return len(self._peers)  # len() of a set is atomic


async def _as_coroutine(fn: Callable[..., Awaitable[_T]], *args: Any) -> _T:
    return await fn(*args)
