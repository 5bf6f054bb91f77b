"""An HTTP MJPEG camera on loopback (``multipart/x-mixed-replace``, what many IP cameras serve):
real sockets, real JPEG frames from the Pose2Sim footage, for the live-camera tests."""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from pathlib import Path

import cv2
import numpy as np


def clip_frames(video: Path, count: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """The first `count` frames of `video` (BGR), resized to `size` (width, height) if given."""
    capture = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(
            frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        )
    capture.release()
    assert frames, f"no frame decoded from {video}"
    return frames


class MjpegCamera:
    """Serves ``/<name>.mjpg`` streams of looping JPEG frames at `fps` on 127.0.0.1.

    `pause()` closes every open stream and refuses new ones until `resume()` (a camera that
    drops off the network and comes back on the same address).
    """

    def __init__(
        self, streams: dict[str, list[np.ndarray]], fps: float = 30.0, port: int = 0
    ) -> None:
        self._jpegs = {
            name: [
                cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for f in frames
            ]
            for name, frames in streams.items()
        }
        self._period_s = 1.0 / fps
        self._up = threading.Event()
        self._up.set()
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                name = self.path.strip("/").removesuffix(".mjpg")
                if name not in owner._jpegs or not owner._up.is_set():
                    self.send_error(404 if name not in owner._jpegs else 503)
                    return
                owner.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                k = 0
                try:
                    while owner._up.is_set():
                        jpeg = owner._jpegs[name][k % len(owner._jpegs[name])]
                        k += 1
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                            % len(jpeg)
                            + jpeg
                            + b"\r\n"
                        )
                        time.sleep(owner._period_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.mjpg"

    def pause(self) -> None:
        self._up.clear()

    def resume(self) -> None:
        self._up.set()

    def close(self) -> None:
        self._up.clear()
        self._server.shutdown()
        self._server.server_close()
