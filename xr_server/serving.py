"""Run the XR server (`xr_server.app.create_app`) in a daemon thread and wait until it answers.

Werkzeug with simple-websocket, `async_mode="threading"`, as `xrcell demo` and `xrcell serve`
run it; the tests and benchmarks start their live servers the same way.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.request
from typing import Any

from werkzeug.serving import WSGIRequestHandler

from xr_server.errors import XrServerError


class _RequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler, closing the connection once a WebSocket on it has ended.

    engine.io's WebSocket (simple-websocket) takes the connection over from Werkzeug and, when
    the WebSocket ends, raises `ConnectionError` to tell Werkzeug so (`connection_dropped`).
    Werkzeug would then keep the HTTP/1.1 connection open and read what the client still sends
    (its WebSocket close frame) as the next request: a ``Bad request syntax`` error in the log,
    and a 400 response written into the closed WebSocket, which keeps python-socketio's client
    waiting 3 s for the close to complete. Nothing after a WebSocket is HTTP: close instead.
    """

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        self.close_connection = True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_in_thread(app: Any, socketio: Any, host: str = "127.0.0.1", port: int = 0, *,
                    name: str = "xr-server", ready_timeout_s: float = 10.0,
                    ssl_context: ssl.SSLContext | None = None) -> str:
    """Serve `app` with `socketio.run` in a daemon thread; return once ``GET /healthz`` answers.

    Args:
        app, socketio: the pair `create_app` returns.
        host: the address to listen on (``0.0.0.0`` for every interface).
        port: the TCP port; 0 picks a free one.
        name: the thread's name.
        ready_timeout_s: how long to wait for the first answer, seconds.
        ssl_context: serve HTTPS (and WSS) with this context (`xr_server.tls.ServerTls`);
            None serves plain HTTP.

    Returns:
        The server's base URL as seen from this machine, e.g. ``http://127.0.0.1:8080``
        (``https://`` with `ssl_context`).

    Raises:
        XrServerError: the server could not listen (the port is taken, the address does not
            exist on this machine: the message gives the cause) or did not answer within
            `ready_timeout_s`; the message names host and port.
    """
    port = port or free_port(host)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            socketio.run(app, host=host, port=port, use_reloader=False, log_output=False,
                         allow_unsafe_werkzeug=True, ssl_context=ssl_context,
                         request_handler=_RequestHandler)
        except BaseException as exc:  # noqa: BLE001 - reported by the waiting caller
            failed.append(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    local = "127.0.0.1" if host in ("0.0.0.0", "") else host
    base = f"{'https' if ssl_context is not None else 'http'}://{local}:{port}"
    # The readiness probe only asks whether something answers on the port: no certificate check
    # (a self-signed certificate names the devices' address, not necessarily 127.0.0.1).
    probe = None
    if ssl_context is not None:
        probe = ssl.create_default_context()
        probe.check_hostname = False
        probe.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + ready_timeout_s
    while True:
        if failed:
            cause = ("Werkzeug exited (it prints why: usually the port is in use)"
                     if isinstance(failed[0], SystemExit) else str(failed[0]))
            raise XrServerError(f"the XR server on {host}:{port} did not start: {cause}")
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1, context=probe):
                return base
        except OSError:
            if time.monotonic() > deadline:
                raise XrServerError(f"the XR server on {host}:{port} did not answer within "
                                    f"{ready_timeout_s:.0f} s") from None
            time.sleep(0.05)
