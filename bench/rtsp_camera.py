"""RTSP camera figures on loopback: how old the newest frame really is when a consumer sees it,
how the stamps compare with the truth, the reader thread's CPU per frame, and reconnect time.

A real RTSP server (gst-rtsp-server, tests/safety/perception/rtsp_server.py) serves the Pose2Sim
footage as x264 H.264 (encoded before the run) with each frame's number drawn into it; a `StreamCamera` (declared
capture latency 0, so its stamp is its own estimate of the send time) reads it, over RTP/UDP
(OpenCV's default) and then over RTP/TCP (OPENCV_FFMPEG_CAPTURE_OPTIONS set). Per transport:

- ``age_ms``: now minus the moment the server pushed the newest published frame into its RTP
  stream (the camera's capture), taken when a consumer polling every 5 ms first sees it (what
  the tracker gets); ``age_from_publisher_ms`` the same from the publisher's write to the
  server (adds the hand-over between two processes of this loaded machine);
- ``stamp_minus_pushed_ms``: the published stamp minus that capture moment (the unqueued path
  the declared ``capture_latency_s`` must cover; positive = stamp later than the truth);
- ``reader_cpu_ms_per_frame``: CPU of the camera's reader thread (receive, decode, convert);
- ``dropped_at_open``: frames FFmpeg had queued while opening, dropped rather than published;
- ``reconnect_s``: from the server listening again to the first new frame published.

    PYTHONPATH=$PWD .venv/bin/python bench/rtsp_camera.py [--seconds 15] [--width 1080]

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safety.perception.stream import StreamCamera  # noqa: E402
from tests.safety.perception.mjpeg_server import clip_frames  # noqa: E402
from tests.safety.perception.rtsp_server import RtspCamera, read_frame_code  # noqa: E402

CLIP = ROOT / "data" / "pose2sim" / "Demo_SinglePerson" / "videos" / "cam01.mp4"
ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"


def thread_cpu_s(native_id: int) -> float:
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p99": round(float(np.percentile(a, 99)), 1),
            "max": round(float(a.max()), 1)}


def run(server: RtspCamera, seconds: float, options: str | None) -> dict:
    if options is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = options
    camera = StreamCamera("cam01", server.url(), resize=1.0, capture_latency_s=0.0,
                          read_timeout_s=1.0)
    opened = time.monotonic()
    camera.start()
    ages, ages_pub, stamp_err, seen = [], [], [], 0
    first_s = None
    try:
        while camera.latest() is None:
            time.sleep(0.005)
        first_s = time.monotonic() - opened
        tid = camera._thread.native_id  # type: ignore[union-attr]
        cpu0, frames0 = thread_cpu_s(tid), camera.frames_published
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            image, stamp_ns, seq = camera.latest()
            if seq != seen:
                now = time.monotonic_ns()
                seen = seq
                number = read_frame_code(image)
                sent, pushed = server.sent_ns(number), server.pushed_ns(number)
                if sent is not None and pushed is not None and pushed >= sent:
                    ages.append((now - pushed) / 1e6)
                    ages_pub.append((now - sent) / 1e6)
                    stamp_err.append((stamp_ns - pushed) / 1e6)
            time.sleep(0.005)
        cpu_ms = 1000 * (thread_cpu_s(tid) - cpu0) / max(1, camera.frames_published - frames0)
        dropped = camera.frames_dropped
        # reconnect: kill the server, let the camera notice, start it again
        server.stop_server()
        while camera.error is None:
            time.sleep(0.01)
        time.sleep(1.0)
        before = camera.frames_published
        server.start_server()
        restarted = time.monotonic()
        while camera.frames_published <= before:
            time.sleep(0.005)
        reconnect_s = time.monotonic() - restarted
    finally:
        camera.stop()
    return {"transport": server.setups[-1].split(";")[0], "open_to_first_frame_s": round(first_s, 2),
            "dropped_at_open": dropped, "frames": len(ages), "age_ms": pct(ages),
            "age_from_publisher_ms": pct(ages_pub), "stamp_minus_pushed_ms": pct(stamp_err), "reader_cpu_ms_per_frame": round(cpu_ms, 2),
            "reconnect_s": round(reconnect_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--width", type=int, default=1080,
                        help="frame width (height follows; the clip is 1080x1920)")
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    probe = clip_frames(CLIP, 1)[0]
    h = int(round(probe.shape[0] * args.width / probe.shape[1] / 16)) * 16
    frames = clip_frames(CLIP, 60, (args.width, h))
    server = RtspCamera(frames, fps=args.fps, loop_frames=int(10 * args.fps))
    try:
        results = {"udp": run(server, args.seconds, None),
                   "tcp": run(server, args.seconds, "rtsp_transport;tcp")}
    finally:
        server.close()
    print(json.dumps({"size": [args.width, h], "fps": args.fps, "load_1min": os.getloadavg()[0],
                      **results}))


if __name__ == "__main__":
    main()
