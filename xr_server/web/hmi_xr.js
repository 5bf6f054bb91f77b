// The HMI in the room: WebXR immersive-ar, the alignment step that registers the `cell` frame in
// it, and the `hmi_camera` reports that give the server the HMI camera's pose (for the experts'
// 3D anchors and the composited view). The math is in alignment.js (frames documented there).
import * as THREE from "three";
import {
  alignmentFromPoints, alignmentKey, cameraPoseFromLook, cameraPoseInCell, fovFromProjection, nudge,
  parseAlignment, xrFromCellMatrix,
} from "./alignment.js";

/** Smallest interval between two `hmi_camera` reports, ms (10 Hz). */
export const CAMERA_REPORT_INTERVAL_MS = 100;
/** Smallest interval between two `xr_viewer_pose` reports during a marker registration, ms. */
export const VIEWER_POSE_INTERVAL_MS = 25;
/** One nudge of the alignment: metres along a cell axis, or degrees about the cell's z. */
export const NUDGE_M = 0.02;
export const NUDGE_DEG = 1.0;

/** Whether this browser offers WebXR immersive-ar (false where it cannot say). */
export async function arSupported() {
  try {
    return Boolean(navigator.xr) && await navigator.xr.isSessionSupported("immersive-ar");
  } catch {
    return false;
  }
}

/**
 * The cell's alignment in this browser (localStorage `xrcell.alignment.<cell>`): `origin` and
 * `yaw_rad` (the cell in WebXR local-floor, from the AR step) and `look` (the camera pose set by
 * hand for the camera view outside AR), each null until set.
 */
export class StoredAlignment {
  constructor(cell) {
    this.cell = cell;
    this.record = parseAlignment(localStorage.getItem(alignmentKey(cell)), cell)
      ?? { cell, origin: null, yaw_rad: null, look: null, saved_at: 0 };
  }
  get placed() { return this.record.origin !== null; }
  /** The AR alignment ({origin, yaw_rad}) or null. */
  get xr() { return this.placed ? { origin: this.record.origin, yaw_rad: this.record.yaw_rad } : null; }
  get look() { return this.record.look; }
  update(fields) {
    this.record = { ...this.record, ...fields, cell: this.cell, saved_at: Date.now() / 1000 };
    if (this.record.origin === null && this.record.look === null) localStorage.removeItem(alignmentKey(this.cell));
    else localStorage.setItem(alignmentKey(this.cell), JSON.stringify(this.record));
  }
}

/**
 * Sends `hmi_camera` for the current session at most every CAMERA_REPORT_INTERVAL_MS.
 * `probe` (window.__xrcell.camera) counts what was sent and acknowledged, and keeps the last
 * refusal.
 */
export class CameraReporter {
  constructor(socket, session, probe) {
    this.socket = socket;
    this.session = session;  // () => the session id, or null
    this.probe = Object.assign(probe, { sent: 0, acknowledged: 0, last: null, error: null, source: null });
    this.lastAt = -Infinity;
  }

  /**
   * @param {{position_m: number[], orientation: number[]}} pose optical frame, `cell` frame.
   * @param {{hfov_deg: number, aspect: number}} fov
   * @param {string} source "xr" or "manual", for the probe.
   * @param {boolean} force send even within the interval (a new hand-set pose).
   */
  report(pose, fov, source, force = false) {
    const session = this.session();
    const now = performance.now();
    if (!session || !this.socket.connected || (!force && now - this.lastAt < CAMERA_REPORT_INTERVAL_MS)) return;
    this.lastAt = now;
    const payload = { session, position_m: pose.position_m, orientation: pose.orientation,
      hfov_deg: fov.hfov_deg, aspect: fov.aspect };
    this.probe.sent += 1;
    this.probe.last = payload;
    this.probe.source = source;
    this.socket.emit("hmi_camera", payload, (answer) => {
      if (answer && answer.error) this.probe.error = answer.error;
      else this.probe.acknowledged += 1;
    });
  }
}

/** The camera pose set by hand (outside AR) as `report` wants it, or null. */
export function manualCamera(look, aspect) {
  if (!look) return null;
  return { pose: cameraPoseFromLook(look), fov: { hfov_deg: look.hfov_deg, aspect } };
}

/**
 * An immersive-ar session on the HMI: renders `view` (TwinView) in the room with the stored
 * alignment, runs the two-point alignment step (hit-test on the floor; without hit-test, the
 * point under the viewer) and reports the viewer's camera pose through `onCamera`.
 *
 * Steps (`step`): "origin" (mark the cell origin on the floor), "axis" (mark a point along the
 * cell's +x), "placed" (aligned; nudges allowed), "none" (no alignment yet, step not started).
 */
export class ArMode {
  constructor({ view, alignment, overlayRoot, onCamera, onChange }) {
    this.view = view;
    this.alignment = alignment;
    this.overlayRoot = overlayRoot;
    this.onCamera = onCamera;
    this.onChange = onChange;
    this.session = null;
    this.step = alignment.placed ? "placed" : "none";
    this.points = [];
    this.hit = null;      // the floor point under the reticle, local-floor, or null
    this.viewer = null;   // the viewer's position, local-floor
    this.error = "";
    // The marker registration (`registerWithMarker`): running, its answer (with the residuals),
    // or why it was refused.
    this.marker = { running: false, answer: null, error: "" };
    this.sendViewerPose = null;  // while a registration runs: sends `xr_viewer_pose`
    this.viewerPoseAt = -Infinity;
    this.viewerPosesSent = 0;  // for the tests' probe
    this.reticle = new THREE.Mesh(new THREE.RingGeometry(0.05, 0.07, 32).rotateX(-Math.PI / 2),
      new THREE.MeshBasicMaterial({ color: 0xffffff }));
    this.reticle.visible = false;
    this.reticle.name = "alignment-reticle";
  }

  async start() {
    const session = await navigator.xr.requestSession("immersive-ar", {
      requiredFeatures: ["local-floor"], optionalFeatures: ["hit-test", "dom-overlay"],
      domOverlay: { root: this.overlayRoot },
    });
    this.session = session;
    await this.view.startXR(session);
    this.view.scene.add(this.reticle);
    this.hitSource = null;
    if (session.requestHitTestSource) {
      const viewerSpace = await session.requestReferenceSpace("viewer");
      this.hitSource = await session.requestHitTestSource({ space: viewerSpace }).catch(() => null);
    }
    this.view.onXRFrame = (time, frame, space) => this.frame(frame, space);
    session.addEventListener("select", () => { if (this.step === "origin" || this.step === "axis") this.mark(); });
    session.addEventListener("end", () => {
      this.session = null;
      this.hitSource = null;
      this.view.scene.remove(this.reticle);
      this.view.onXRFrame = () => {};
      this.onChange(this);
    });
    this.placeCell();
    if (!this.alignment.placed) this.redo();
    this.onChange(this);
  }

  end() { this.session?.end(); }

  frame(frame, space) {
    const pose = frame.getViewerPose(space);
    if (!pose) return;
    const p = pose.transform.position;
    this.viewer = [p.x, p.y, p.z];
    const [hit] = this.hitSource ? frame.getHitTestResults(this.hitSource) : [];
    const at = hit?.getPose(space)?.transform.position;
    this.hit = at ? [at.x, at.y, at.z] : null;
    this.reticle.visible = Boolean(this.hit) && (this.step === "origin" || this.step === "axis");
    if (this.hit) this.reticle.position.set(...this.hit);
    const now = performance.now();
    if (this.sendViewerPose && now - this.viewerPoseAt >= VIEWER_POSE_INTERVAL_MS) {
      this.viewerPoseAt = now;
      this.viewerPosesSent += 1;
      const view = pose.views[0];  // the camera the HMI films with, as for `hmi_camera`
      const t = view.transform;
      this.sendViewerPose({ position: [t.position.x, t.position.y, t.position.z],
        orientation: [t.orientation.x, t.orientation.y, t.orientation.z, t.orientation.w],
        ...fovFromProjection(view.projectionMatrix) });
    }
    const alignment = this.alignment.xr;
    if (alignment && this.step === "placed") {
      const view = pose.views[0];  // the camera the HMI films with: its first (or only) view
      const t = view.transform;
      this.onCamera(cameraPoseInCell(alignment, [t.position.x, t.position.y, t.position.z],
        [t.orientation.x, t.orientation.y, t.orientation.z, t.orientation.w]),
      fovFromProjection(view.projectionMatrix));
    }
  }

  /** The floor point to mark now: the hit-test's, else the floor under the viewer. */
  target() {
    if (this.hit) return this.hit;
    return this.viewer ? [this.viewer[0], 0, this.viewer[2]] : null;
  }

  /** Mark the point of the current step. */
  mark() {
    const point = this.target();
    if (!point) return;
    this.error = "";
    if (this.step === "origin") {
      this.points = [point];
      this.step = "axis";
    } else if (this.step === "axis") {
      try {
        const { origin, yaw_rad } = alignmentFromPoints(this.points[0], point);
        this.alignment.update({ origin, yaw_rad });
        this.step = "placed";
        this.placeCell();
      } catch (err) {
        this.error = err.message;
      }
    }
    this.onChange(this);
  }

  /**
   * Register the cell from a marker of the cell file that the camera sees: the server detects it
   * in the call's video and answers the alignment (xr_server/marker_alignment.py). While
   * `request()` (the `marker_align` call, resolving to its answer or throwing the refusal) runs,
   * the viewer pose goes to `sendViewerPose({position, orientation, hfov_deg, aspect})` each frame;
   * the answer is stored and applied as a manual alignment is.
   */
  async registerWithMarker(sendViewerPose, request) {
    if (this.marker.running) return;
    this.marker = { running: true, answer: null, error: "" };
    this.sendViewerPose = sendViewerPose;
    this.onChange(this);
    try {
      const answer = await request();
      this.alignment.update({ origin: answer.origin, yaw_rad: answer.yaw_rad });
      this.step = "placed";
      this.points = [];
      this.error = "";
      this.placeCell();
      this.marker = { running: false, answer, error: "" };
    } catch (err) {
      this.marker = { running: false, answer: null, error: err.message };
    } finally {
      this.sendViewerPose = null;
      this.onChange(this);
    }
  }

  /** Start the alignment again (the stored one stays in force until a new one is marked). */
  redo() {
    this.step = "origin";
    this.points = [];
    this.error = "";
    this.onChange(this);
  }

  /** Move the placed cell by one nudge: "x+", "x-", "y+", "y-", "yaw+", "yaw-". */
  nudge(which) {
    const alignment = this.alignment.xr;
    if (!alignment) return;
    const sign = which.endsWith("-") ? -1 : 1;
    const delta = which.startsWith("yaw") ? { dyaw_rad: sign * NUDGE_DEG * Math.PI / 180 }
      : { [which[0] === "x" ? "dx_m" : "dy_m"]: sign * NUDGE_M };
    const moved = nudge(alignment, delta);
    this.alignment.update({ origin: moved.origin, yaw_rad: moved.yaw_rad });
    this.placeCell();
    this.onChange(this);
  }

  placeCell() {
    const alignment = this.alignment.xr;
    this.view.setCellPose(alignment ? xrFromCellMatrix(alignment) : null);
    this.view.cell.visible = Boolean(alignment);  // no twin floating at a guessed place
  }
}
