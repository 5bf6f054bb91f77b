"""What a cell camera's ``video`` names: a recorded file, a network stream or a video device."""

from __future__ import annotations

import re

#: URL schemes read through OpenCV's FFmpeg back-end (RTSP, RFC 7826; HTTP streams such as
#: MJPEG ``multipart/x-mixed-replace`` or MPEG-TS).
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")
#: A local video device (V4L2 on Linux).
DEVICE_PATTERN = re.compile(r"^/dev/video\d+$")
#: The default `capture_latency_s` per source kind, seconds: time from exposure to the frame
#: reaching xrcell. Chosen, not measured: recorded files are stamped when they are published
#: (0); H.264 IP cameras typically deliver in 100-250 ms, USB (UVC) cameras within 2-3 frame
#: periods at 30 fps. The larger end is taken because a latency declared too small shrinks S_p.
DEFAULT_CAPTURE_LATENCY_S = {"file": 0.0, "stream": 0.25, "device": 0.1}


def video_source_kind(video: str) -> str:
    """``"stream"`` (an RTSP/HTTP URL), ``"device"`` (``/dev/videoN``) or ``"file"`` (anything
    else: a path, relative to the cell file).

    Raises:
        ValueError: a URL whose scheme xrcell does not read (e.g. ``ftp://``), naming it.
    """
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", video)
    if match:
        scheme = match.group(1).lower()
        if scheme not in STREAM_SCHEMES:
            raise ValueError(
                f"stream scheme {scheme!r} is not supported (use one of "
                f"{', '.join(STREAM_SCHEMES)}, a /dev/videoN device or a file)"
            )
        return "stream"
    return "device" if DEVICE_PATTERN.match(video) else "file"
