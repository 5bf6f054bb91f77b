"""An H.264 IP camera on loopback: real RTSP (GStreamer's gst-rtsp-server, Debian packages
``gir1.2-gst-rtsp-server-1.0`` and ``gstreamer1.0-plugins-good``, run by Debian's python3 as
a child process) serving real footage that this process encodes with x264 (PyAV, in the venv),
for the live-camera tests and ``bench/rtsp_camera.py``.

Every frame carries its number in a row of black/white blocks across its top (`FRAME_CODE_BITS`
bits, most significant first), and `RtspCamera.sent_ns(number)` tells when it went to the
encoder, so a reader can measure how old the newest frame it holds really is.
"""

from __future__ import annotations

import os
import struct
import subprocess
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SERVER = Path(__file__).with_name("gst_rtsp_server.py")
#: Debian's interpreter, which has PyGObject and GStreamer's typelibs (the venv has neither).
SYSTEM_PYTHON = "/usr/bin/python3"
#: Bits of the frame number drawn into each frame.
FRAME_CODE_BITS = 20


def draw_frame_code(frame: np.ndarray, number: int) -> np.ndarray:
    """A copy of `frame` (H, W, 3) uint8 with `number` drawn as `FRAME_CODE_BITS` blocks across
    the top (white 1, black 0), each W // FRAME_CODE_BITS pixels wide and as tall."""
    out = frame.copy()
    block = frame.shape[1] // FRAME_CODE_BITS
    for bit in range(FRAME_CODE_BITS):
        on = (number >> (FRAME_CODE_BITS - 1 - bit)) & 1
        out[:block, bit * block : (bit + 1) * block] = 255 if on else 0
    return out


def read_frame_code(image: np.ndarray) -> int:
    """The number `draw_frame_code` drew into `image`, whatever its scale since."""
    block = image.shape[1] / FRAME_CODE_BITS
    number = 0
    for bit in range(FRAME_CODE_BITS):
        x0, x1 = int((bit + 0.3) * block), int((bit + 0.7) * block)
        y0, y1 = int(0.3 * block), int(0.7 * block)
        number = (number << 1) | int(image[y0:y1, x0:x1].mean() > 127)
    return number


class RtspCamera:
    """Serves `frames` (BGR, all one size) as H.264 at ``rtsp://127.0.0.1:PORT/MOUNT``.

    `loop_frames` frames (the footage looped, each numbered with `draw_frame_code`) are encoded
    up front with x264 (ultrafast, zerolatency, `slices` slices per picture, no B-frames, an
    IDR every `keyframe_interval` frames, as IP cameras set for live view); a publisher thread writes
    them to the server at `fps`, over and over, and records when each number went out
    (`sent_ns`) and when the server pushed it into its RTP stream (`pushed_ns`), so encoding
    costs nothing while a reader is measured. `stop_server()` kills
    the server (a camera that drops off the network: sockets close, nothing answers) while the
    publisher goes on; `start_server()` starts it again on the same port.
    """

    def __init__(
        self,
        frames: list[np.ndarray],
        fps: float = 30.0,
        mount: str = "cam01",
        keyframe_interval: int = 15,
        loop_frames: int = 120,
        slices: int = 1,
    ) -> None:
        self._period_s = 1.0 / fps
        self.mount = mount
        self.port = 0
        h, w = frames[0].shape[:2]
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height = w, h
        encoder.pix_fmt = "yuv420p"
        encoder.time_base = Fraction(1, int(round(fps)))
        encoder.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": f"keyint={keyframe_interval}:min-keyint={keyframe_interval}"
            f":bframes=0:threads=1:slices={slices}",
        }
        loop_frames = -(-loop_frames // keyframe_interval) * keyframe_interval  # whole GOPs
        self._units: list[bytes] = []
        for number in range(loop_frames):
            image = draw_frame_code(frames[number % len(frames)], number)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
            frame.pts = number
            packets = encoder.encode(frame)
            self._units.append(b"".join(bytes(p) for p in packets))
        self._sent_ns: dict[int, int] = {}
        self._pushed_ns: dict[int, int] = {}
        self._written: list[int] = []  # numbers written to the current server, in order
        self._setups: list[str] = []
        self._lock = threading.Lock()
        self._server: subprocess.Popen | None = None
        self._closed = threading.Event()
        self.frames_sent = 0
        self.start_server()
        self._thread = threading.Thread(target=self._publish, name="rtsp-publisher", daemon=True)
        self._thread.start()

    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{self.mount}"

    def sent_ns(self, number: int) -> int | None:
        """When frame `number` went to the encoder, monotonic ns (None: unknown number)."""
        with self._lock:
            return self._sent_ns.get(number)

    def start_server(self) -> None:
        """Start the RTSP server (on the port of the previous one, if any) and wait until it
        listens."""
        server = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port), self.mount],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")},
        )
        assert server.stdout is not None
        line = server.stdout.readline().decode()
        if not line.startswith("ready "):
            server.kill()
            raise RuntimeError(f"gst-rtsp-server did not start: {line!r} (exit {server.wait()})")
        self.port = int(line.split()[1])
        with self._lock:
            self._server = server
            self._written = []
        threading.Thread(target=self._read_setups, args=(server,), daemon=True).start()

    def pushed_ns(self, number: int) -> int | None:
        """When the server last pushed frame `number` into its RTP stream, monotonic ns (the
        RTP timestamp's moment), or None."""
        with self._lock:
            return self._pushed_ns.get(number)

    def _read_setups(self, server: subprocess.Popen) -> None:
        assert server.stdout is not None
        for raw in server.stdout:
            line = raw.decode().strip()
            if line.startswith("setup "):
                with self._lock:
                    self._setups.append(line.removeprefix("setup "))
            elif line.startswith("au "):
                _, k, ns = line.split()
                with self._lock:
                    if self._server is server and int(k) < len(self._written):
                        self._pushed_ns[self._written[int(k)]] = int(ns)

    @property
    def setups(self) -> list[str]:
        """The ``Transport`` header of every client SETUP so far (e.g. ``RTP/AVP/TCP;unicast;
        interleaved=0-1`` or ``RTP/AVP;unicast;client_port=50000-50001``)."""
        with self._lock:
            return list(self._setups)

    def stop_server(self) -> None:
        """Kill the server (SIGKILL: no RTSP TEARDOWN, sockets just close)."""
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.kill()
            server.wait()
            for pipe in (server.stdin,):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2.0)
        self.stop_server()

    def _publish(self) -> None:
        count = 0
        next_s = time.monotonic()
        while not self._closed.is_set():
            number = count % len(self._units)
            data = self._units[number]
            with self._lock:
                server = self._server
                self._sent_ns[number] = time.monotonic_ns()
                if server is not None:
                    self._written.append(number)
            if server is not None and server.stdin is not None:
                try:
                    server.stdin.write(struct.pack(">I", len(data)) + data)
                    server.stdin.flush()
                except (BrokenPipeError, ValueError, OSError):
                    pass  # the server was killed between the lookup and the write
            count += 1
            self.frames_sent = count
            next_s = max(next_s + self._period_s, time.monotonic())  # late: skip, never burst
            self._closed.wait(max(0.0, next_s - time.monotonic()))
