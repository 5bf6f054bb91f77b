"""Per-client send queues that keep only the newest ``twin_state``: a slow client drops stale
twin states instead of falling behind, and slows neither the other clients nor the broadcast.

Why here, and how. In `async_mode="threading"` every Engine.IO connection has one unbounded
`queue.Queue`: an emit (to a client or a room) only puts the encoded packet on the queue of each
recipient, and one writer thread per connection takes packets off it and writes them to the
WebSocket. A client that reads slower than 30 Hz (bad Wi-Fi, a busy browser tab) blocks its
writer in the socket write while its queue grows without bound, so its twin is seconds behind
and the server's memory grows (python-engineio offers no bound: python-engineio issue #133).
`TwinSendQueues.install` makes the Engine.IO server create `LatestTwinQueue`s instead: a queue
that holds at most one ``twin_state`` of the namespace. Putting a newer one removes the one still
waiting (a drop, counted per connection and in total) and appends the new one at the end, so it
still follows every event emitted before it. Every other packet (annotations, session and safety
events, acknowledgements, pings) is kept and sent in order: only superseded twin states are
dropped.

The kernel's send buffer is the other place a backlog hides: Linux grows it up to 4 MiB
(``net.ipv4.tcp_wmem``), which at 30 Hz holds seconds of stale twin states for a client that
reads slowly, before the writer ever blocks and the queue above sees anything. So `install` also
sets ``TCP_NOTSENT_LOWAT`` (`UNSENT_LIMIT_BYTES`) on every WebSocket connection: the kernel keeps
at most that many bytes not yet sent, and the writer waits instead, without limiting how much is
in flight (the link's throughput). A connection's backlog on the server is thus at most one twin
state in the queue, the batch its writer is writing and `UNSENT_LIMIT_BYTES`, whatever the
client's speed.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from typing import Any

from engineio import packet as eio_packet
from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

__all__ = ["UNSENT_LIMIT_BYTES", "LatestTwinQueue", "TwinSendQueues", "limit_unsent"]

log = logging.getLogger(__name__)

#: Unsent bytes the kernel may hold for one WebSocket connection (``TCP_NOTSENT_LOWAT``): a few
#: twin states (each under 16 KiB); more waits in `LatestTwinQueue`, where stale ones are dropped.
UNSENT_LIMIT_BYTES = 16384


def limit_unsent(sock: Any) -> None:
    """Set ``TCP_NOTSENT_LOWAT`` to `UNSENT_LIMIT_BYTES` on a connected TCP socket (Linux, macOS).

    Where the option is missing (another platform, a socket that refuses it) the kernel's default
    stays and a debug line says so: the twin queue still bounds what waits in the server."""
    option = getattr(socket, "TCP_NOTSENT_LOWAT", None)
    try:
        if option is None:
            raise OSError("TCP_NOTSENT_LOWAT is not available on this platform")
        sock.setsockopt(socket.IPPROTO_TCP, option, UNSENT_LIMIT_BYTES)
    except OSError as exc:
        log.debug("cannot limit the unsent bytes of a WebSocket: %s", exc)


class _LimitedWebSocket(SimpleWebSocketWSGI):
    """engine.io's WebSocket of the threading mode on a socket with `limit_unsent`."""

    def __call__(self, environ: dict, start_response: Any) -> Any:
        sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
        if sock is not None:
            limit_unsent(sock)
        return super().__call__(environ, start_response)


class LatestTwinQueue(queue.Queue):
    """An Engine.IO send queue keeping at most one twin state packet (the newest).

    Thread safety: as `queue.Queue`; producers are any emitting thread, the consumer is the
    connection's writer thread. `dropped` is written under the queue's lock and read without it.

    Args:
        prefix: the start of the data of a twin packet, e.g. ``2/xr,["twin_state",``.
        counter: the shared total (`TwinSendQueues`), incremented for every drop.
    """

    def __init__(self, prefix: str, counter: TwinSendQueues, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self._prefix = prefix
        self._counter = counter
        #: Twin states of this connection dropped because a newer one superseded them.
        self.dropped = 0

    def _is_twin(self, item: Any) -> bool:
        return (isinstance(item, eio_packet.Packet) and item.packet_type == eio_packet.MESSAGE
                and isinstance(item.data, str) and item.data.startswith(self._prefix))

    def _put(self, item: Any) -> None:  # called by put() with the queue's mutex held
        if self._is_twin(item):
            for i, waiting in enumerate(self.queue):
                if self._is_twin(waiting):
                    del self.queue[i]
                    # put() adds one unfinished task for `item`: the dropped packet will never
                    # be task_done(), so take its count back (join() on close must not hang).
                    self.unfinished_tasks -= 1
                    self.dropped += 1
                    self._counter.count_drop()
                    break
        self.queue.append(item)


class TwinSendQueues:
    """Makes an Engine.IO server queue each connection's ``twin_state`` as `LatestTwinQueue`
    and counts the dropped twin states.

    Thread safety: every method may be called from any thread.

    Args:
        namespace: the Socket.IO namespace of the twin stream, e.g. ``/xr``.
        event: the event name, ``twin_state``.
    """

    def __init__(self, namespace: str, event: str = "twin_state") -> None:
        # The data of the Engine.IO MESSAGE packet: the Socket.IO v5 EVENT packet as
        # python-socketio encodes it, type 2, the namespace and a comma, then the JSON array
        # [event, data] (no ack id: server emits take no callback). On the wire: 4 + this.
        ns = "" if namespace == "/" else f"{namespace},"
        self.prefix = f'2{ns}["{event}",'
        self._namespace = namespace
        self._lock = threading.Lock()
        self._total = 0
        self._server: Any = None

    def install(self, server: Any) -> None:
        """Make `server` (a `socketio.Server`, ``flask_socketio.SocketIO.server``, threading
        mode) create `LatestTwinQueue`s for its connections and limit the unsent bytes of their
        WebSockets (`limit_unsent`); call before any client connects.

        Raises:
            ValueError: the server's async mode is not ``threading`` (its queues are others).
        """
        eio = server.eio
        if eio.async_mode != "threading":
            raise ValueError(f"twin send queues need async_mode 'threading', got {eio.async_mode!r}")

        def create_queue(*args: Any, **kwargs: Any) -> LatestTwinQueue:
            return LatestTwinQueue(self.prefix, self, *args, **kwargs)

        eio.create_queue = create_queue
        # This server's own copy of the async mode's table (the module's dict is shared).
        eio._async = {**eio._async, "websocket": _LimitedWebSocket}
        self._server = server

    def count_drop(self) -> None:
        """Count one dropped twin state in the total (called by the queues)."""
        with self._lock:
            self._total += 1

    def dropped_total(self) -> int:
        """Twin states dropped for all connections since the server started (closed ones too)."""
        with self._lock:
            return self._total

    def dropped(self, sid: str) -> int | None:
        """Twin states dropped for the Socket.IO connection `sid` on the namespace; None when it
        is not connected (or `install` was not called)."""
        if self._server is None:
            return None
        try:
            eio_sid = self._server.manager.eio_sid_from_sid(sid, self._namespace)
            socket = self._server.eio.sockets.get(eio_sid) if eio_sid is not None else None
        except Exception:  # noqa: BLE001 - a connection closing under us
            return None
        found = getattr(socket, "queue", None)
        return found.dropped if isinstance(found, LatestTwinQueue) else None
