"""The /hmi marker registration in a real browser over real sockets: Chromium's fake camera plays
a .y4m of marker 7 rendered from a known camera pose (tests/xr_server/marker_rig.py), the fake
`navigator.xr` of test_hmi_xr reports that camera's WebXR view pose; "Align with marker" starts
the call, the real server measures the marker in the WebRTC video and answers; the page applies
the alignment as a manual one and shows its residual; the change is audited. The control is
pressed by voice (the page's `hear` seam), as the worker would with hands busy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.e2e.harness import chromium, require_chromium, start_e2e_server, wait_until
from tests.e2e.test_hmi_xr import FAKE_XR, TWIN, open_page_in
from tests.xr_server.doubles import FakeCameraViews
from tests.xr_server.marker_rig import CAMERA_POSITION, CAMERA_ROTATION, MARKER, ORIGIN_XR, YAW_RAD, render, view_pose_xr

pytestmark = pytest.mark.e2e

W, H = 640, 480
#: Bounds of the alignment the page stores: the browser's VP8 at a bitrate it chooses, so a
#: little looser than over aiortc (tests/xr_server/test_marker_alignment.py: 1 cm, 0.5 degrees).
MAX_ORIGIN_ERROR_M = 0.02
MAX_YAW_ERROR_DEG = 1.0


def write_marker_y4m(target: Path, frames: int = 30) -> Path:
    """The marker seen from `CAMERA_POSITION` (70 degrees across, 640x480, fresh noise per frame)
    as YUV4MPEG2 4:2:0 at 30 fps."""
    with target.open("wb") as out:
        out.write(f"YUV4MPEG2 W{W} H{H} F30:1 Ip A1:1 C420jpeg\n".encode())
        for k in range(frames):
            image = render(CAMERA_POSITION, CAMERA_ROTATION, W, H, 70.0, seed=k)
            out.write(b"FRAME\n" + cv2.cvtColor(image, cv2.COLOR_BGR2YUV_I420).tobytes())
    return target


@pytest.fixture(scope="module")
def marker_browser(tmp_path_factory):
    require_chromium()
    clip = write_marker_y4m(tmp_path_factory.mktemp("camera") / "marker.y4m")
    with chromium(fake_camera=clip) as b:
        yield b


@pytest.fixture(scope="module")
def marker_server(tmp_path_factory):
    audited: list[tuple] = []
    server = start_e2e_server(tmp_path_factory.mktemp("db"), {"wendy": ["worker"]},
                              name="xr-server-e2e-marker", annotations=True, twin_source=lambda: TWIN,
                              camera_views=FakeCameraViews(), cell_name="lab", markers=[MARKER],
                              audit=lambda *record: audited.append(record))
    yield server.base, audited
    server.stop()


def test_align_with_marker_applies_the_servers_alignment_and_shows_its_residual(marker_browser, marker_server):
    base, audited = marker_server
    context = marker_browser.new_context(viewport={"width": 900, "height": 700})
    context.add_init_script(FAKE_XR.replace("DOM_OVERLAY", "true"))
    page = open_page_in(context, base, "/hmi")
    wait_until(page, "__xrcell.ready", 10)
    position, orientation = view_pose_xr(CAMERA_POSITION, CAMERA_ROTATION)
    page.evaluate(f"__fakeXR.viewer = {json.dumps({'position': position, 'orientation': orientation})}; undefined")
    # a DOM click, not the mouse: a pointer left resting on "Exit AR" would press it by gaze dwell
    page.evaluate("document.getElementById('enter-ar').click()")
    wait_until(page, "__xrcell.xr.presenting && __fakeXR.frames > 3", 10)
    assert page.evaluate("__xrcell.xr.step") == "origin"        # not aligned yet
    assert page.locator("#align-marker").is_visible()
    assert page.locator("#align-marker").get_attribute("data-voice") == "align with marker"

    # said hands-free (the recogniser's seam): starts the call, then asks the server to measure
    assert page.evaluate("__xrcell.handsFree.hear('please align with marker')") == "align with marker"
    done = ("__xrcell.xr.marker && !__xrcell.xr.marker.running && "
            "(__xrcell.xr.marker.answer || __xrcell.xr.marker.error) && __xrcell.xr.marker")
    marker = wait_until(page, done, 60)
    if marker["error"].startswith("the marker was measured in "):
        # too few frames decoded within the 2 s window: a machine loaded by other test runs
        # (load 10 and more) slows Chromium's encoder and the server's decoder; the worker asks
        # again, as the page lets them
        print(f"first registration refused under load: {marker['error']}")
        page.evaluate("document.getElementById('align-marker').click()")
        wait_until(page, "__xrcell.xr.marker.running", 10)
        marker = wait_until(page, done, 60)
    assert marker["error"] == "", marker
    answer = marker["answer"]
    print(f"marker registration from Chromium: {answer}")
    stored = json.loads(page.evaluate("localStorage.getItem('xrcell.alignment.lab')"))
    assert np.linalg.norm(np.array(stored["origin"]) - ORIGIN_XR) <= MAX_ORIGIN_ERROR_M, stored
    yaw_error = math.degrees(math.atan2(math.sin(stored["yaw_rad"] - YAW_RAD), math.cos(stored["yaw_rad"] - YAW_RAD)))
    assert abs(yaw_error) <= MAX_YAW_ERROR_DEG, stored
    assert stored["origin"] == answer["origin"] and stored["yaw_rad"] == answer["yaw_rad"]
    # applied as a manual alignment: placed, the twin shown at the answer's pose
    assert page.evaluate("__xrcell.xr.step") == "placed" and page.evaluate("__xrcell.view.cell.visible")
    assert page.evaluate("__xrcell.xr.presenting") and page.evaluate("__xrcell.xr.viewerPosesSent") > 0
    cell_matrix = np.array(page.evaluate("__xrcell.view.cell.matrix.elements")).reshape(4, 4).T
    assert np.allclose(cell_matrix[:3, 3], answer["origin"], atol=1e-6)
    status = page.inner_text("#align-marker-status")
    assert status.startswith(f"Aligned with marker 7: spread {answer['spread_mm']:.1f} mm"), status
    assert f"over {answer['frames_used']} frames, reprojection {answer['reprojection_px']:.2f} px" in status
    kind, actor, inputs, _ = audited[-1]
    assert (kind, actor, inputs["origin"]) == ("alignment_change", "wendy", answer["origin"])
    assert not page.problems, page.problems
    context.close()
