"""`serve_in_thread`: the XR server in a thread on loopback, answering once it returns."""

import socket

import pytest
import requests

from tests.xr_server.doubles import SECRET, TWIN, FakeCameraViews
from xr_server.app import create_app
from xr_server.errors import XrServerError
from xr_server.serving import serve_in_thread


def make_app(make_store):
    return create_app(twin_source=lambda: TWIN, camera_views=FakeCameraViews(), user_store=make_store(),
                      secret_key=SECRET, cell_name="lab")


def test_the_server_answers_once_serve_in_thread_returns(make_store):
    app, sio = make_app(make_store)
    base = serve_in_thread(app, sio)
    try:
        assert base.startswith("http://127.0.0.1:")
        assert requests.get(f"{base}/healthz", timeout=5).json()["status"] == "ok"
    finally:
        app.xrcell_stop()


def test_a_taken_port_is_an_error_naming_it(make_store):
    app, sio = make_app(make_store)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(XrServerError, match=rf"the XR server on 127.0.0.1:{port} did not start: "
                                                r"Werkzeug exited \(it prints why: usually the port is in use\)"):
            serve_in_thread(app, sio, port=port, ready_timeout_s=5.0)
    app.xrcell_stop()


def test_a_server_that_never_answers_is_an_error_after_the_timeout(make_store):
    class Silent:  # socketio.run that blocks without listening
        def run(self, *args, **kwargs):
            import time
            time.sleep(30)
    app, _ = make_app(make_store)
    with pytest.raises(XrServerError, match=r"the XR server on 127.0.0.1:\d+ did not answer within 1 s"):
        serve_in_thread(app, Silent(), ready_timeout_s=1.0)
    app.xrcell_stop()


def test_after_a_websocket_closes_the_server_closes_the_connection_without_an_http_answer(make_store):
    """A client that closes its Socket.IO WebSocket properly (Engine.IO close packet, then the
    WebSocket close frame) gets the server's close frame and then the end of the connection, not
    a ``400 Bad request syntax`` answer to its close frame read as the next HTTP request."""
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

    app, sio = make_app(make_store)
    base = serve_in_thread(app, sio)
    try:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            ws = WSConnection(ConnectionType.CLIENT)
            sock.sendall(ws.send(Request(host=f"{host}:{port}",
                                         target="/socket.io/?EIO=4&transport=websocket")))
            opened = False
            while not opened:
                ws.receive_data(sock.recv(1 << 16))
                opened = any(isinstance(e, TextMessage) and e.data.startswith("0") for e in ws.events())
            sock.sendall(ws.send(TextMessage("1")))  # Engine.IO close
            sock.sendall(ws.send(CloseConnection(code=1000)))
            rest = b""
            while chunk := sock.recv(1 << 16):  # until the server closes the connection
                rest += chunk
        assert b"HTTP/1.1 400" not in rest
        ws.receive_data(rest)  # all that came after our close frame: the server's close frame
        events = [e for e in ws.events() if not isinstance(e, (AcceptConnection, TextMessage))]
        assert [(type(e), e.code) for e in events] == [(CloseConnection, 1000)]
    finally:
        app.xrcell_stop()
