"""The /hmi page in the room, in a real browser over real sockets: the camera pose it reports
(`hmi_camera`) from a hand-set pose outside AR and from WebXR viewer poses composed with the
alignment step, checked against the server's 3D anchors; and the glasses view, where the server
sends the camera back with the twin drawn in (the Pose2Sim clip as the camera).

Headless Chromium has no AR device, so the WebXR test injects a minimal fake `navigator.xr`
(`FAKE_XR`, an init script): an `immersive-ar` session whose viewer pose and floor hit the test
sets. It is a fake at the browser-API seam only: three.js's WebXRManager, the page, the socket and
the server are the real ones."""

from __future__ import annotations

import json
import math
import threading

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from tests.e2e.harness import PASSWORD, signed_in_page, start_e2e_server, wait_until
from tests.e2e.test_remote_expert import browser, open_page  # noqa: F401 - fixture
from tests.xr_server.doubles import FakeCameraViews
from tests.xr_server.live import XrClient
from xr_server.overlay import BANNER

pytestmark = pytest.mark.e2e

W, H = 640, 480
BASE = [0.5, 0.2, 0.8]  # the robot's one capsule, a sphere of 8 cm, `cell` frame
TWIN = {"v": 1, "t": 0.0, "cell": "lab", "people": [], "cameras": [],
        "robot": {"joint_names": [f"panda_joint{i}" for i in range(1, 8)], "q": [0.0] * 7,
                  "links": [{"name": "panda_link0", "a": BASE, "b": BASE, "r": 0.08}]},
        "safety": {"mode": "protective_stop", "speed_scale": 0.0, "reason": "e2e"}, "zones": []}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    accounts = {"wendy": ["worker"], "eve": ["expert"]}
    server = start_e2e_server(tmp_path_factory.mktemp("db"), accounts, name="xr-server-e2e-hmi", annotations=True, twin_source=lambda: TWIN,
                              camera_views=FakeCameraViews(), cell_name="lab")
    yield server.base
    server.stop()


@pytest.fixture
def expert(server):
    import requests

    token = requests.post(f"{server}/api/login", json={"username": "eve", "password": PASSWORD},
                          timeout=10).json()["token"]
    client = XrClient.connect(server, token)
    yield client
    threading.Thread(target=client.close, daemon=True).start()  # Werkzeug sends no close frame


def optical_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Optical frame (x right, y down, z forward) -> cell, for a camera heading `yaw_deg` from the
    cell's +x and tilted down by `pitch_deg`."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    forward = np.array([math.cos(pitch) * math.cos(yaw), math.cos(pitch) * math.sin(yaw), -math.sin(pitch)])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    return np.column_stack([right, np.cross(forward, right), forward])


def floor_point(position, rotation: np.ndarray, hfov_deg: float, aspect: float, u: float, v: float):
    """Where the ray through image point (u, v) of the camera meets the floor z = 0."""
    fx = 0.5 / math.tan(math.radians(hfov_deg) / 2)   # in image widths
    ray = rotation @ np.array([(u - 0.5) / fx, (v - 0.5) / (fx * aspect), 1.0])
    t = -position[2] / ray[2]
    return np.asarray(position) + t * ray


def same_rotation(q, r) -> bool:
    return abs(abs(float(np.dot(q, r))) - 1.0) < 1e-6


def anchored_label(expert: XrClient, session: str, text: str, u: float = 0.5, v: float = 0.5) -> dict:
    expert.call("annotation_create", {"session": session, "kind": "label", "points": [[u, v]], "text": text})
    return expert.wait_for("annotation", lambda m: m["annotation"]["text"] == text)["annotation"]


def start_call(page) -> str:
    page.click("#call-expert")
    return wait_until(page, "__xrcell.call.session", 15)


def test_outside_ar_the_hand_set_camera_pose_anchors_the_experts_marks(browser, server, expert):
    page = open_page(browser, server, "wendy", "/hmi")
    wait_until(page, "__xrcell.ready", 10)
    assert page.evaluate("__xrcell.xr.supported") is False  # Chromium headless offers no AR
    assert not page.locator("#enter-ar").is_visible()

    page.click("#align")
    form = page.locator("#align-look")
    for name, value in {"x": "-2", "y": "0.5", "z": "1.5", "yaw_deg": "-10", "pitch_deg": "30",
                        "hfov_deg": "70"}.items():
        form.locator(f"input[name='{name}']").fill(value)
    page.click("#align-look-save")
    stored = json.loads(page.evaluate("localStorage.getItem('xrcell.alignment.lab')"))
    assert stored["look"] == {"position_m": [-2, 0.5, 1.5], "yaw_deg": -10, "pitch_deg": 30, "hfov_deg": 70}
    assert "camera pose set by hand" in page.inner_text("#align-status")

    session = start_call(page)
    wait_until(page, "__xrcell.camera.acknowledged >= 1", 10)
    sent = page.evaluate("__xrcell.camera.last")
    rotation = optical_rotation(-10, 30)
    assert sent["session"] == session and sent["position_m"] == [-2, 0.5, 1.5]
    assert same_rotation(sent["orientation"], Rotation.from_matrix(rotation).as_quat())
    assert sent["hfov_deg"] == 70 and sent["aspect"] == pytest.approx(4 / 3)
    assert page.evaluate("__xrcell.camera.error") is None

    # the server anchors an expert's mark with that pose: the image centre lands on the floor
    # where the camera's optical axis meets it
    expert.call("session_join", {"session": session, "role": "expert"})
    note = anchored_label(expert, session, "here", 0.5, 0.5)
    assert note["anchor"]["on"] == "floor"
    expected = floor_point([-2, 0.5, 1.5], rotation, 70, 4 / 3, 0.5, 0.5)
    assert np.allclose(note["anchor"]["position_m"], expected, atol=2e-3), (note["anchor"], expected)
    # and the worker's twin shows a pin there
    wait_until(page, "__xrcell.view.annotationGroup.children.length === 1", 10)
    pin = page.evaluate("__xrcell.view.annotationGroup.children[0].position.toArray()")
    assert np.allclose(pin, expected, atol=2e-3)
    assert not page.problems, page.problems
    page.context.close()


#: A minimal WebXR Device API for the page (the browser-API seam): `navigator.xr` offers
#: immersive-ar; the session's frames come from requestAnimationFrame, with one view whose pose is
#: `__fakeXR.viewer` (local-floor) and a 70 degree, 4:3 projection; hit-test results are
#: `__fakeXR.hit`; `__fakeXR.select()` is a screen tap. `DOM_OVERLAY` says whether the session
#: grants a DOM overlay.
FAKE_XR = """(() => {
  const state = window.__fakeXR = { viewer: { position: [0, 1.6, 0], orientation: [0, 0, 0, 1] }, hit: null,
    session: null, requested: null, frames: 0 };
  const f = 1 / Math.tan(35 * Math.PI / 180), aspect = 4 / 3, near = 0.05, far = 100;
  const projection = new Float32Array([f, 0, 0, 0, 0, f * aspect, 0, 0, 0, 0, (far + near) / (near - far), -1,
    0, 0, 2 * far * near / (near - far), 0]);
  function rigid(p, q) {
    const [x, y, z, w] = q;
    const m = new Float32Array([
      1 - 2 * (y * y + z * z), 2 * (x * y + z * w), 2 * (x * z - y * w), 0,
      2 * (x * y - z * w), 1 - 2 * (x * x + z * z), 2 * (y * z + x * w), 0,
      2 * (x * z + y * w), 2 * (y * z - x * w), 1 - 2 * (x * x + y * y), 0,
      p[0], p[1], p[2], 1]);
    return { position: { x: p[0], y: p[1], z: p[2], w: 1 }, orientation: { x, y, z, w }, matrix: m };
  }
  class FakeLayer {
    constructor(session, gl) {
      this.framebuffer = null; this.framebufferWidth = gl.drawingBufferWidth;
      this.framebufferHeight = gl.drawingBufferHeight; this.antialias = false; this.ignoreDepthValues = true;
    }
    getViewport() { return { x: 0, y: 0, width: this.framebufferWidth, height: this.framebufferHeight }; }
  }
  window.XRWebGLLayer = FakeLayer;
  delete window.XRWebGLBinding;  // three.js would take the WebXR Layers path
  for (const C of [WebGLRenderingContext, WebGL2RenderingContext]) C.prototype.makeXRCompatible = () => Promise.resolve();
  class FakeFrame {
    constructor(session) { this.session = session; }
    getViewerPose() {
      const t = rigid(state.viewer.position, state.viewer.orientation);
      return { transform: t, emulatedPosition: false, views: [{ eye: "none", projectionMatrix: projection, transform: t }] };
    }
    getHitTestResults() { return state.hit ? [{ getPose: () => ({ transform: rigid(state.hit, [0, 0, 0, 1]) }) }] : []; }
    getPose() { return null; }
  }
  class FakeSession extends EventTarget {
    constructor(init) {
      super();
      this.enabledFeatures = ["local-floor", "hit-test"].concat(DOM_OVERLAY ? ["dom-overlay"] : []);
      if (DOM_OVERLAY) this.domOverlayState = { type: "screen" };
      this.environmentBlendMode = "alpha-blend";
      this.renderState = { baseLayer: null, depthNear: 0.1, depthFar: 1000, inlineVerticalFieldOfView: null };
      this.inputSources = []; this.ended = false;
    }
    updateRenderState(s) { this.renderState = { ...this.renderState, ...s }; }
    async requestReferenceSpace(type) { return { type, getOffsetReferenceSpace() { return this; } }; }
    async requestHitTestSource() { return { cancel() {} }; }
    requestAnimationFrame(cb) {
      return window.requestAnimationFrame((t) => { if (!this.ended) { state.frames += 1; cb(t, new FakeFrame(this)); } });
    }
    cancelAnimationFrame(h) { window.cancelAnimationFrame(h); }
    async end() { this.ended = true; this.dispatchEvent(new Event("end")); }
  }
  const xr = {
    isSessionSupported: async (mode) => mode === "immersive-ar",
    requestSession: async (mode, init) => {
      state.requested = { mode, requiredFeatures: init.requiredFeatures, optionalFeatures: init.optionalFeatures,
        domOverlay: Boolean(init.domOverlay && init.domOverlay.root) };
      return (state.session = new FakeSession(init));
    },
    addEventListener() {}, removeEventListener() {},
  };
  Object.defineProperty(Navigator.prototype, "xr", { get: () => xr, configurable: true });
  state.select = () => state.session.dispatchEvent(Object.assign(new Event("select"), { inputSource: {}, frame: null }));
})();"""

#: The alignment the test marks: cell origin at (1, 0, -2) of local-floor, cell +x along
#: local-floor -z (the x-axis point at (1, 0, -4)).
ORIGIN_XR = np.array([1.0, 0.0, -2.0])
XR_FROM_CELL = Rotation.from_euler("y", 90, degrees=True).as_matrix() @ Rotation.from_euler(
    "x", -90, degrees=True).as_matrix()
VIEW_FROM_OPTICAL = np.diag([1.0, -1.0, -1.0])  # a WebXR view looks along its -z, y up


def viewer_in_xr(position_cell, rotation_cell: np.ndarray, origin_xr=ORIGIN_XR) -> dict:
    """The WebXR view pose (local-floor) of a camera at `position_cell` with optical rotation
    `rotation_cell` (optical -> cell)."""
    position = XR_FROM_CELL @ np.asarray(position_cell) + origin_xr
    orientation = Rotation.from_matrix(XR_FROM_CELL @ rotation_cell @ VIEW_FROM_OPTICAL).as_quat()
    return {"position": position.tolist(), "orientation": orientation.tolist()}


def enter_ar(page, dom_overlay: bool = True):
    page.click("#enter-ar")
    wait_until(page, "__xrcell.xr.presenting && __fakeXR.frames > 3", 10)
    assert page.evaluate("__fakeXR.requested") == {
        "mode": "immersive-ar", "requiredFeatures": ["local-floor"], "optionalFeatures": ["hit-test", "dom-overlay"],
        "domOverlay": True}


def test_in_ar_the_alignment_step_registers_the_cell_and_the_page_reports_its_camera(browser, server, expert):
    context = browser.new_context(viewport={"width": 900, "height": 700})
    context.add_init_script(FAKE_XR.replace("DOM_OVERLAY", "true"))
    page = open_page_in(context, server, "/hmi")
    wait_until(page, "__xrcell.ready", 10)
    assert page.evaluate("__xrcell.xr.supported") is True and page.locator("#enter-ar").is_visible()
    session = start_call(page)
    enter_ar(page)
    assert page.evaluate("__xrcell.xr.step") == "origin"        # no alignment stored for 'lab' yet
    assert page.evaluate("__xrcell.view.cell.visible") is False  # the twin waits for the alignment
    assert page.locator("#align-panel").is_visible() and "Step 1 of 2" in page.inner_text("#align-step")
    # the safety state stays unmistakable: the page is the DOM overlay, its banner on top
    assert page.evaluate("document.body.classList.contains('in-ar')")
    assert page.locator("#hmi-badge").is_visible() and page.inner_text("#hmi-badge") == "PROTECTIVE STOP"
    assert not page.locator("#hmi-twin").is_visible()

    # tap the floor at the cell origin, then a point along the cell's x axis (the button)
    page.evaluate("__fakeXR.hit = [1, 0.0, -2]; undefined")
    wait_until(page, "__xrcell.view.scene.getObjectByName('alignment-reticle').visible", 5)
    page.evaluate("__fakeXR.select()")
    assert page.evaluate("__xrcell.xr.step") == "axis"
    page.evaluate("__fakeXR.hit = [1.05, 0.0, -2]; undefined")   # 5 cm: too close, refused
    wait_until(page, "__xrcell.view.scene.getObjectByName('alignment-reticle').position.x > 1.04", 5)
    page.click("#align-mark")
    assert "mark it at least 0.1 m away" in page.inner_text("#align-step")
    page.evaluate("__fakeXR.hit = [1, 0.0, -4]; undefined")
    wait_until(page, "__xrcell.view.scene.getObjectByName('alignment-reticle').position.z < -3.9", 5)
    page.click("#align-mark")
    assert page.evaluate("__xrcell.xr.step") == "placed"
    # a tap on the overlay's buttons is not also an XR select (it would mark a second point)
    assert page.evaluate("""(() => { const e = new Event('beforexrselect', {bubbles: true, cancelable: true});
        document.getElementById('align-mark').dispatchEvent(e); return e.defaultPrevented; })()""")
    stored = json.loads(page.evaluate("localStorage.getItem('xrcell.alignment.lab')"))
    assert np.allclose(stored["origin"], ORIGIN_XR) and stored["yaw_rad"] == pytest.approx(math.pi / 2)
    assert page.evaluate("__xrcell.view.cell.visible") is True
    cell_matrix = np.array(page.evaluate("__xrcell.view.cell.matrix.elements")).reshape(4, 4).T
    assert np.allclose(cell_matrix[:3, :3], XR_FROM_CELL, atol=1e-6) and np.allclose(cell_matrix[:3, 3], ORIGIN_XR)

    # the viewer walks to a known pose: the page reports it in the cell frame
    position, rotation = [-1.5, 0.8, 1.4], optical_rotation(30, 35)
    page.evaluate(f"__fakeXR.viewer = {json.dumps(viewer_in_xr(position, rotation))}; undefined")
    sent = wait_until(page, f"""(() => {{ const c = __xrcell.camera;
        return c.source === 'xr' && c.acknowledged > 0 && Math.abs(c.last.position_m[0] - ({position[0]})) < 1e-6
          && c.last; }})()""", 10)
    assert sent["session"] == session
    assert np.allclose(sent["position_m"], position, atol=1e-6)
    assert same_rotation(sent["orientation"], Rotation.from_matrix(rotation).as_quat())
    assert sent["hfov_deg"] == pytest.approx(70, abs=1e-4) and sent["aspect"] == pytest.approx(4 / 3, abs=1e-6)
    assert page.evaluate("__xrcell.camera.error") is None

    # the real server anchors the expert's mark with that pose, and the AR scene shows a pin there
    expert.call("session_join", {"session": session, "role": "expert"})
    wait_until(page, f"__xrcell.camera.acknowledged > {page.evaluate('__xrcell.camera.acknowledged')}", 5)
    note = anchored_label(expert, session, "this clamp", 0.6, 0.55)
    expected = floor_point(position, rotation, 70, 4 / 3, 0.6, 0.55)
    assert note["anchor"]["on"] == "floor"
    assert np.allclose(note["anchor"]["position_m"], expected, atol=2e-3), (note["anchor"], expected)
    wait_until(page, "__xrcell.view.annotationGroup.children.length === 1", 10)

    # a nudge moves the cell 2 cm along its x: the same viewer is then 2 cm further back in it
    page.click("[data-nudge='x+']")
    stored = json.loads(page.evaluate("localStorage.getItem('xrcell.alignment.lab')"))
    assert np.allclose(stored["origin"], [1.0, 0.0, -2.02])
    sent = wait_until(page, f"""(() => {{ const c = __xrcell.camera;
        return Math.abs(c.last.position_m[0] - ({position[0] - 0.02})) < 1e-6 && c.last; }})()""", 10)
    assert np.allclose(sent["position_m"], [position[0] - 0.02, position[1], position[2]], atol=1e-6)

    # leave AR; the alignment is kept for the cell, and can be redone
    page.click("#enter-ar")
    wait_until(page, "!__xrcell.xr.presenting", 5)
    assert not page.evaluate("document.body.classList.contains('in-ar')")
    page.reload()
    wait_until(page, "__xrcell.ready", 10)
    page.click("#enter-ar")
    wait_until(page, "__xrcell.xr.presenting", 10)
    assert page.evaluate("__xrcell.xr.step") == "placed" and page.evaluate("__xrcell.view.cell.visible")
    page.click("#align")
    page.click("#align-redo")
    assert page.evaluate("__xrcell.xr.step") == "origin"
    assert not page.problems, page.problems
    context.close()


def test_in_ar_without_a_dom_overlay_the_safety_banner_is_in_the_scene(browser, server):
    context = browser.new_context(viewport={"width": 900, "height": 700})
    context.add_init_script(FAKE_XR.replace("DOM_OVERLAY", "false"))
    page = open_page_in(context, server, "/hmi")
    wait_until(page, "__xrcell.ready", 10)
    page.click("#enter-ar")
    wait_until(page, "__xrcell.xr.presenting && __fakeXR.frames > 3", 10)
    # MODE_COLORS.protective_stop, #d62828, once the first twin_state has come (black before it)
    wait_until(page, """(() => { const b = __xrcell.view.scene.getObjectByName('safety-banner');
        return b && b.visible && b.parent === __xrcell.view.scene
          && b.material.map.image.getContext('2d').getImageData(4, 4, 1, 1).data.join(',') === '214,40,40,255'; })()""", 10)
    assert page.inner_text("#hmi-badge") == "PROTECTIVE STOP"
    assert not page.problems, page.problems
    context.close()


def open_page_in(context, base: str, path: str):
    """`open_page` of test_remote_expert in a given context (with its init scripts), as wendy."""
    return signed_in_page(context, base, path, "wendy")


#: The <video> of the composited view, read back at its size (BGR rows).
READ_COMPOSITED = """() => {
  const video = document.getElementById('hmi-composited');
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const ctx = canvas.getContext('2d');
  ctx.drawImage(video, 0, 0);
  const rgba = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const bgr = [];
  for (let i = 0; i < rgba.length; i += 4) bgr.push(rgba[i + 2], rgba[i + 1], rgba[i]);
  return {width: canvas.width, height: canvas.height, bgr};
}"""


def test_the_glasses_view_shows_the_camera_composited_by_the_server_instead_of_3d(browser, server):
    page = open_page(browser, server, "wendy", "/hmi")
    wait_until(page, "__xrcell.ready", 10)
    page.click("#align")
    # the composited-view test's camera: 2 m behind the cell origin, 1.5 m up, 25 degrees down
    for name, value in {"x": "-2", "y": "0", "z": "1.5", "yaw_deg": "0", "pitch_deg": "25", "hfov_deg": "70"}.items():
        page.locator(f"#align-look input[name='{name}']").fill(value)
    page.click("#align-look-save")
    page.goto(f"{server}/hmi?view=composited")
    wait_until(page, "__xrcell.call.composited === true && __xrcell.call.rtc === 'connected'", 30)
    # the twin now comes over the call's unordered data channel, not Socket.IO
    wait_until(page, "__xrcell.twinTransport === 'datachannel' && __xrcell.twinChannelCount > 5", 20)
    assert page.locator("#glasses-view").get_attribute("aria-pressed") == "true"
    assert not page.locator("#hmi-twin").is_visible() and page.locator("#hmi-composited").is_visible()
    wait_until(page, "document.getElementById('hmi-composited').getVideoPlaybackQuality().totalVideoFrames > 10", 20)
    rendered = page.evaluate("__xrcell.rendered")

    # the picture is the camera's with the server's overlay: the protective stop banner across the
    # top, the robot's capsule (orange) where cv2 projects it from the hand-set pose
    frame = page.evaluate(READ_COMPOSITED)
    image = np.array(frame["bgr"], np.uint8).reshape(frame["height"], frame["width"], 3)
    image = cv2.resize(image, (W, H))
    banner = image[4:int(0.08 * H) - 4, :40].reshape(-1, 3).mean(axis=0)
    assert np.abs(banner - BANNER["protective_stop"][0]).max() < 40, banner
    rotation = optical_rotation(0, 25)
    f = W / 2 / math.tan(math.radians(35))
    pixel, _ = cv2.projectPoints(np.array([BASE], float), cv2.Rodrigues(rotation.T)[0],
                                 -rotation.T @ np.array([-2.0, 0.0, 1.5]), np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]), None)
    x, y = pixel.reshape(2).round().astype(int)
    b, g, r = (image[..., i].astype(int) for i in range(3))
    orange = (r > 200) & (b < 70) & (g > 90) & (g < 180)  # ROBOT_BGR (0, 140, 255), after the codec
    near = np.zeros_like(orange)
    near[y - 30:y + 31, x - 30:x + 31] = True
    # measured here: 341 such pixels around the projection, centred within 0.2 px; none elsewhere
    assert (orange & near).sum() > 100, f"no robot capsule drawn around ({x}, {y})"
    assert (orange & ~near).sum() < 30, "orange drawn away from the robot"
    ys, xs = np.nonzero(orange & near)
    assert abs(xs.mean() - x) < 3 and abs(ys.mean() - y) < 3, (xs.mean(), ys.mean(), x, y)
    assert image[int(0.1 * H):].std() > 10, "a flat picture, not the camera's footage"
    # and the page did not render the 3D twin meanwhile
    page.wait_for_timeout(500)
    assert page.evaluate("__xrcell.rendered") == rendered

    # switching back renders the twin again over a plain camera call
    page.click("#glasses-view")
    wait_until(page, "__xrcell.call.composited === false && __xrcell.call.rtc === 'connected'", 30)
    wait_until(page, f"__xrcell.rendered > {rendered}", 10)
    assert page.locator("#hmi-twin").is_visible() and not page.locator("#hmi-composited").is_visible()
    assert not page.problems, page.problems
    page.context.close()
