"""An RTSP camera on 127.0.0.1: GStreamer's gst-rtsp-server serving an H.264 stream that its
parent process encodes and writes to this process's stdin.

Run by Debian's ``/usr/bin/python3`` (PyGObject and ``gir1.2-gst-rtsp-server-1.0`` come from
Debian, not from the venv); `tests.safety.perception.rtsp_server.RtspCamera` starts it.

    /usr/bin/python3 gst_rtsp_server.py PORT MOUNT

stdin: access units of an H.264 Annex-B byte stream, each as a 4-byte big-endian length and
the bytes. The server serves them at ``rtsp://127.0.0.1:PORT/MOUNT`` to any number of clients
over RTP/UDP or RTP/TCP (interleaved), as IP cameras do; access units that arrive while no
client plays are dropped (a live camera). It prints ``ready PORT`` once it listens (PORT 0:
a free port) and exits when stdin closes.
"""

import struct
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

PIPELINE = (
    "( appsrc name=src is-live=true do-timestamp=true format=time "
    "caps=video/x-h264,stream-format=byte-stream,alignment=au "
    "! h264parse config-interval=-1 ! video/x-h264,alignment=au "
    "! rtph264pay name=pay0 pt=96 )"
)
"""h264parse puts SPS and PPS in front of every IDR picture (in band, as IP cameras do) and hands
the payloader whole access units. rtph264pay's own ``config-interval`` inserts them in front of
every IDR *slice*, and an SPS after a picture's first slice starts a new access unit (ITU-T
H.264 clause 7.4.1.2.3), so an IDR picture coded in several slices reaches FFmpeg as several
pictures (the first slice over grey, then each further slice alone), seen with x264 ``slices=4``."""


_out_lock = threading.Lock()


def say(line: str) -> None:
    """One whole line to stdout: the GLib loop and the feeding thread both report, and print()
    writes the text and its newline separately, so two threads' lines could interleave."""
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main() -> None:
    port, mount = int(sys.argv[1]), "/" + sys.argv[2].strip("/")
    Gst.init(None)
    loop = GLib.MainLoop()
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    appsrc: list = []  # the shared media's appsrc while a client plays

    def configure(_factory, media) -> None:
        appsrc[:] = [media.get_element().get_by_name_recurse_up("src")]
        media.connect("unprepared", lambda _m: appsrc.clear())

    factory.connect("media-configure", configure)

    def setup(_client, context) -> None:
        _res, transport = context.request.get_header(GstRtsp.RTSPHeaderField.TRANSPORT, 0)
        say(f"setup {transport}")

    server.connect("client-connected", lambda _s, client: client.connect("setup-request", setup))
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    say(f"ready {server.get_bound_port()}")

    def feed() -> None:
        stdin = sys.stdin.buffer
        k = -1
        while True:
            k += 1
            head = stdin.read(4)
            if len(head) < 4:
                break
            data = stdin.read(struct.unpack(">I", head)[0])
            src = appsrc[0] if appsrc else None
            if src is not None:
                buffer = Gst.Buffer.new_allocate(None, len(data), None)
                buffer.fill(0, data)  # a copy: new_wrapped() does not keep `data` alive
                src.emit("push-buffer", buffer)
                say(f"au {k} {time.monotonic_ns()}")
        GLib.idle_add(loop.quit)

    threading.Thread(target=feed, daemon=True).start()
    loop.run()


if __name__ == "__main__":
    main()
