"""Remote expert in a real browser over real sockets: a worker's HMI and an expert's page in one
XR session, WebRTC between Debian's Chromium and the server's aiortc, the worker's camera fed a
real Pose2Sim clip (converted to .y4m here), an annotation placed with the mouse on the expert's
page drawn on the worker's."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.e2e.harness import (chromium, require_chromium, signed_in_page, start_e2e_server,
                               wait_until)
from tests.e2e.test_dashboard import ScriptedCell
from xr_server.recording import Recordings

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO / "data" / "pose2sim" / "Demo_SinglePerson" / "videos" / "cam01.mp4"
#: Three seconds of the clip; Chromium loops the file.
CLIP_FRAMES = 90


def write_y4m(source: Path, target: Path, frames: int, width: int = 640, height: int = 480) -> Path:
    """The first `frames` frames of `source`, scaled to width x height, as YUV4MPEG2 4:2:0 at 30 fps."""
    capture = cv2.VideoCapture(str(source))
    with target.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        written = 0
        while written < frames:
            ok, image = capture.read()
            if not ok:
                break
            yuv = cv2.cvtColor(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA),
                               cv2.COLOR_BGR2YUV_I420)
            out.write(b"FRAME\n" + yuv.tobytes())
            written += 1
    capture.release()
    if written < frames:
        raise RuntimeError(f"{source} has only {written} frames, {frames} needed")
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    cell = ScriptedCell()  # the dashboard test's moving arm and walking worker
    recordings = Recordings(tmp_path_factory.mktemp("recordings"), cell.twin_state)
    accounts = {"wendy": ["worker"], "eve": ["expert"]}
    server = start_e2e_server(tmp_path_factory.mktemp("db"), accounts, name="xr-server-e2e-expert",
                              annotations=True, twin_source=cell.twin_state, camera_views=cell,
                              cell_name="e2e", recordings=recordings)
    yield server.base, server.annotations
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    require_chromium()
    if not CLIP.is_file():
        pytest.fail(f"{CLIP} missing: the Pose2Sim sample data is set up by `make`")
    clip = write_y4m(CLIP, tmp_path_factory.mktemp("camera") / "worker.y4m", CLIP_FRAMES)
    with chromium(fake_camera=clip) as b:
        yield b


def open_page(browser, base: str, user: str, path: str):
    context = browser.new_context(viewport={"width": 1200, "height": 700})  # two software-rendered twins
    return signed_in_page(context, base, path, user)


#: The expert's <video> drawn into a canvas and read back: mean brightness and a 160x120 grey copy.
READ_VIDEO = """() => {
  const video = document.getElementById('expert-video');
  const canvas = document.createElement('canvas');
  canvas.width = 160; canvas.height = 120;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(video, 0, 0, 160, 120);
  const rgba = ctx.getImageData(0, 0, 160, 120).data;
  const grey = [];
  for (let i = 0; i < rgba.length; i += 4) grey.push((rgba[i] + rgba[i + 1] + rgba[i + 2]) / 3);
  return {width: video.videoWidth, height: video.videoHeight, grey};
}"""


def test_the_expert_sees_the_workers_camera_and_the_worker_sees_the_experts_arrow(browser, server):
    base, annotations = server
    worker = open_page(browser, base, "wendy", "/hmi")
    worker.click("#call-expert")
    session = wait_until(worker, "__xrcell.call.session", 15)
    wait_until(worker, "__xrcell.call.rtc === 'connected'", 20)

    expert = open_page(browser, base, "eve", "/expert")
    try:
        expert.click(f"button[data-session='{session}']", timeout=30_000)   # a loaded page answers slowly
    except Exception as exc:
        raise AssertionError(f"{exc}; expert page: status {expert.inner_text('#expert-status')!r}; "
                             f"list {expert.inner_text('#session-list')!r}; problems {expert.problems}") from None
    wait_until(expert, "__xrcell.call.rtc === 'connected'", 20)
    # both pages now take the twin from their call's data channel, not Socket.IO
    wait_until(expert, "__xrcell.twinTransport === 'datachannel' && __xrcell.twinChannelCount > 3", 20)
    wait_until(worker, "__xrcell.twinTransport === 'datachannel' && __xrcell.twinChannelCount > 3", 20)
    # audio both ways over the same peer connections (Chromium's fake microphone plays a beep):
    # the expert receives the worker's microphone, the worker the expert's talkback
    wait_until(expert, "__xrcell.call.audio && __xrcell.call.audio.received > 50", 20)
    wait_until(worker, "__xrcell.call.audio && __xrcell.call.audio.received > 50", 20)
    assert worker.evaluate("__xrcell.call.audio.sent") > 50 and expert.evaluate("__xrcell.call.audio.sent") > 50
    # and what arrives is sound, not the silence the server's mix sends when nobody talks
    # (inbound-rtp totalAudioEnergy stays 0 for silence; the fake microphone's beep raises it)
    wait_until(expert, "__xrcell.call.audio.receivedEnergy > 0.01", 20)
    wait_until(worker, "__xrcell.call.audio.receivedEnergy > 0.01", 20)

    # frames decoded and handed to the <video> element (not only its metadata)
    wait_until(expert, "document.getElementById('expert-video').getVideoPlaybackQuality().totalVideoFrames > 10", 20)

    # Chromium may paint a decoded frame into the element a little later: read until it shows one
    # (a black or missing picture still fails below when it never comes)
    deadline = time.monotonic() + 10
    while (first := expert.evaluate(READ_VIDEO)) and np.mean(first["grey"]) <= 20 and time.monotonic() < deadline:
        expert.wait_for_timeout(100)
    expert.wait_for_timeout(700)
    second = expert.evaluate(READ_VIDEO)
    a, b = (np.array(s["grey"], np.float32) for s in (first, second))
    # measured here: 640x480, grey mean 112, std 49, mean change over 0.7 s 9.9
    assert first["width"] >= 320 and first["height"] >= 240, first
    assert a.mean() > 20 and b.mean() > 20, f"black video (means {a.mean():.1f}, {b.mean():.1f})"
    assert a.std() > 10, f"a flat image, not the clip (std {a.std():.1f})"
    assert np.abs(a - b).mean() > 1.0, f"the video did not change (mean diff {np.abs(a - b).mean():.3f})"

    # the 3D twin renders next to the live view
    wait_until(expert, "__xrcell.twinCount > 3 && __xrcell.rendered > 3", 10)
    twin = cv2.imdecode(np.frombuffer(expert.locator("#expert-twin canvas").screenshot(), np.uint8), cv2.IMREAD_COLOR)
    assert twin.std() > 8, f"the 3D view looks blank (pixel std {twin.std():.1f})"

    # the expert drags an arrow on the worker's view
    box = expert.locator("#expert-annotations").bounding_box()
    expert.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    expert.mouse.down()
    expert.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.6, steps=2)
    expert.mouse.up()
    wait_until(worker, "__xrcell.call.annotations === 1", 10)
    arrow = worker.locator("#hmi-annotations [data-kind='arrow'] line")
    assert arrow.count() == 1
    x1, y1 = float(arrow.get_attribute("x1")), float(arrow.get_attribute("y1"))
    assert x1 == pytest.approx(0.25 * 640, abs=4) and y1 == pytest.approx(0.25 * 480, abs=4)
    [stored] = annotations.list(session)
    assert (stored.kind, stored.author) == ("arrow", "eve")

    # and a text label
    expert.click("#tools [data-tool='label']")
    expert.fill("#label-text", "check this clamp")
    expert.mouse.click(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.3)
    wait_until(worker, "__xrcell.call.annotations === 2", 10)
    assert worker.locator("#hmi-annotations [data-kind='label'] text").text_content() == "check this clamp"
    assert "expert: eve" in worker.inner_text("#call-status")

    # a freehand stroke drawn on a frozen frame: the expert's picture holds still, the worker gets
    # the stroke however long the drawing takes (the freeze pins the worker's camera pose on the
    # server; anchoring: tests/xr_server/test_xr_sessions.py)
    expert.click("#freeze")
    assert expert.evaluate("document.getElementById('expert-video').paused") is True
    expert.click("#tools [data-tool='stroke']")
    cx, cy, r = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.7, box["height"] * 0.1
    expert.mouse.move(cx + r, cy)
    expert.mouse.down()
    for k in range(1, 19):      # three quarters of a ring: its ends lie apart
        expert.mouse.move(cx + r * math.cos(k * math.pi / 12), cy + r * math.sin(k * math.pi / 12), steps=2)
    expert.mouse.up()
    try:
        wait_until(worker, "__xrcell.call.annotations === 3", 10)
    except AssertionError as exc:
        state = expert.evaluate("JSON.stringify({call: __xrcell.call, error: document.getElementById('annotation-error').textContent,"
                                " hidden: document.getElementById('annotation-error').hidden})")
        top = expert.evaluate(f"document.elementFromPoint({cx + r}, {cy})?.id")
        raise AssertionError(f"{exc}; expert page: {state}; element under the pen: {top!r}") from None
    ring = worker.locator("#hmi-annotations [data-kind='stroke'] polyline")
    assert ring.count() == 1 and len(ring.get_attribute("points").split()) >= 6
    stroke = [a for a in annotations.list(session) if a.kind == "stroke"]
    assert len(stroke) == 1 and len(stroke[0].points) >= 6
    # back to live
    expert.click("#freeze")
    assert expert.evaluate("document.getElementById('expert-video').paused") is False

    # the expert records the session: the worker's page says so, and the worker stops it
    expert.click("#record")
    wait_until(worker, "__xrcell.call.recording !== null", 10)
    assert worker.locator("#recording").is_visible()
    worker.click("#stop-recording")
    wait_until(expert, "__xrcell.call.recording === null", 10)
    assert not worker.locator("#recording").is_visible()
    assert expert.locator("#record").text_content() == "Record session"

    # the expert caps the session's video: applied at once to the one video sent (the expert's
    # own relay), and every participant's session state carries the cap; then lifts it
    expert.select_option("#video-cap", "250")
    wait_until(expert, "document.getElementById('video-cap-status').textContent === 'applied to 1 video'", 10)
    wait_until(expert, "__xrcell.call.videoCap === 250", 10)
    expert.select_option("#video-cap", "")
    wait_until(expert, "__xrcell.call.videoCap === null", 10)
    assert expert.inner_text("#video-cap-status") == "applied to 1 video"
    assert not worker.problems, worker.problems
    assert not expert.problems, expert.problems
    worker.context.close()
    expert.context.close()
