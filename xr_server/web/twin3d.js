// three.js view of one twin_state: the robot, worker skeletons, the protective separation
// distance (robot capsules inflated by S_p) and the closest human-robot pair.
// The robot is the cell's static twin (GLB from /api/cells/<cell>/twin.glb, one node per URDF
// link) posed from twin_state.robot.q; until it loads, or if it cannot, the link capsules of
// twin_state.robot.links stand in for it.
// The cell frame is z up (REP 103); the camera's up vector is set to +z, so no axis swap here;
// the GLB is y-up and its `cell` node holds the one conversion, undone by `GLTF_TO_CELL`.
// Everything of the cell hangs under one group, `view.cell`: identity on a screen, the alignment
// (WebXR local-floor <- cell, see alignment.js) in an immersive-ar session (`startXR`).
import * as THREE from "three";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";

export const MODE_COLORS = {
  full_speed: "#1f9d55",
  reduced_speed: "#f2a900",
  protective_stop: "#d62828",
  fault_stop: "#7b2cbf",
};
export const MODE_LABELS = {
  full_speed: "FULL SPEED",
  reduced_speed: "REDUCED SPEED",
  protective_stop: "PROTECTIVE STOP",
  fault_stop: "FAULT STOP",
};

// MediaPipe Pose limbs drawn as bones (same pairs as safety/perception/types.py POSE_LIMBS).
const POSE_LIMBS = [
  [11, 12], [11, 23], [12, 24], [23, 24],
  [11, 13], [13, 15], [15, 19], [12, 14], [14, 16], [16, 20],
  [23, 25], [25, 27], [27, 31], [24, 26], [26, 28], [28, 32],
  [0, 11], [0, 12],
];
const PERSON_COLORS = [0x4cc9f0, 0xf72585, 0x90e0ef, 0xffd166];
// Zone kinds of the cell description (content/cell.py Zone).
export const ZONE_COLORS = {
  warning: 0xf2c94c,
  collaborative: 0x2f80ed,
  restricted: 0xf2994a,
  robot_keep_out: 0xeb5757,
};
const Y = new THREE.Vector3(0, 1, 0);
const UNIT_CYLINDER = new THREE.CylinderGeometry(1, 1, 1, 24, 1, true);
const UNIT_SPHERE = new THREE.SphereGeometry(1, 24, 16);
// The primitives of placed objects (shape_msgs/SolidPrimitive): closed, unit size.
const UNIT_SOLID_CYLINDER = new THREE.CylinderGeometry(1, 1, 1, 24);
const UNIT_BOX = new THREE.BoxGeometry(1, 1, 1);
// three.js cylinders lie along y; a SolidPrimitive cylinder along its local z.
const Y_TO_Z = new THREE.Quaternion().setFromAxisAngle(new THREE.Vector3(1, 0, 0), Math.PI / 2);
// glTF y-up -> cell z-up: +90 degrees about x (the inverse of the GLB's `cell` node matrix).
const GLTF_TO_CELL = new THREE.Matrix4().makeRotationX(Math.PI / 2);

/** The link nodes of a static twin GLB and how each joint moves them (node extras). */
class TwinRobot {
  constructor(gltfScene) {
    this.root = new THREE.Group();
    this.root.matrixAutoUpdate = false;
    this.root.matrix.copy(GLTF_TO_CELL);
    this.root.add(gltfScene);
    this.links = [];
    gltfScene.traverse((node) => {
      const extras = node.userData;
      if (extras && extras.zone) node.visible = false; // the zones are drawn from twin_state
      if (!extras || !extras.urdf_link) return;
      this.links.push({
        name: extras.urdf_link, node, joint: extras.joint,
        q0: node.quaternion.clone(), p0: node.position.clone(),
        axis: extras.joint && extras.joint.axis ? new THREE.Vector3(...extras.joint.axis) : null,
      });
    });
    this.turn = new THREE.Quaternion();
    this.shift = new THREE.Vector3();
  }

  /** Pose the links from joint positions (rad or m) by name; joints not given stay at 0. */
  pose(jointNames, q) {
    const value = {};
    jointNames.forEach((name, i) => { value[name] = q[i]; });
    for (const { node, joint, q0, p0, axis } of this.links) {
      if (!joint || !axis) continue;
      const m = joint.mimic;
      const x = (m ? m.multiplier * (value[m.joint] ?? 0) + m.offset : value[joint.name]) ?? 0;
      if (joint.type === "prismatic") {
        node.position.copy(p0).add(this.shift.copy(axis).multiplyScalar(x).applyQuaternion(q0));
      } else if (joint.type === "revolute" || joint.type === "continuous") {
        node.quaternion.copy(q0).multiply(this.turn.setFromAxisAngle(axis, x));
      }
    }
  }
}

/** Place a unit cylinder mesh on segment a-b with radius r; hides it for a null segment. */
function placeCylinder(mesh, a, b, r) {
  const va = new THREE.Vector3(...a);
  const dir = new THREE.Vector3(...b).sub(va);
  const length = dir.length();
  mesh.visible = length > 1e-6;
  if (!mesh.visible) return;
  mesh.position.copy(va).addScaledVector(dir, 0.5);
  mesh.quaternion.setFromUnitVectors(Y, dir.divideScalar(length));
  mesh.scale.set(r, length, r);
}

/** Place a unit box or cylinder mesh as a placed object (twin_state robot.placed_objects[i]). */
function placePrimitive(mesh, obj) {
  const [x, y, z, w] = obj.orientation;
  mesh.position.set(obj.position[0], obj.position[1], obj.position[2]);
  mesh.quaternion.set(x, y, z, w);
  if (obj.primitive === "box") {
    mesh.scale.set(obj.dimensions[0], obj.dimensions[1], obj.dimensions[2]);
  } else {
    const [height, radius] = obj.dimensions;
    mesh.quaternion.multiply(Y_TO_Z);
    mesh.scale.set(radius, height, radius);
  }
  mesh.visible = true;
}

function placeSphere(mesh, p, r) {
  mesh.position.set(p[0], p[1], p[2]);
  mesh.scale.setScalar(r);
  mesh.visible = true;
}

/** A grow-only pool of meshes sharing one geometry and material; unused ones are hidden. */
class MeshPool {
  constructor(parent, geometry, material) {
    this.parent = parent; this.geometry = geometry; this.material = material; this.meshes = []; this.used = 0;
  }
  begin() { this.used = 0; }
  next() {
    if (this.used === this.meshes.length) {
      const mesh = new THREE.Mesh(this.geometry, this.material);
      this.parent.add(mesh);
      this.meshes.push(mesh);
    }
    return this.meshes[this.used++];
  }
  end() { for (let i = this.used; i < this.meshes.length; i++) this.meshes[i].visible = false; }
}

/** A camera-facing text label (canvas texture), `height_m` tall, at `position` (cell frame). */
function textSprite(text, color, position, height_m) {
  const canvas = document.createElement("canvas");
  const ctx = canvas.getContext("2d");
  ctx.font = "bold 48px sans-serif";
  canvas.width = Math.ceil(ctx.measureText(text).width) + 24;
  canvas.height = 64;
  ctx.font = "bold 48px sans-serif";
  ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = color;
  ctx.fillText(text, 12, 48);
  const sprite = new THREE.Sprite(new THREE.SpriteMaterial({ map: new THREE.CanvasTexture(canvas), depthTest: false }));
  sprite.scale.set(height_m * canvas.width / canvas.height, height_m, 1);
  sprite.position.set(...position);
  return sprite;
}

/** The safety mode as a coloured panel in the XR scene (0.6 m x 0.12 m, 1.2 m ahead). */
class HeadBanner {
  constructor() {
    this.canvas = document.createElement("canvas");
    this.canvas.width = 1024; this.canvas.height = 204;
    this.texture = new THREE.CanvasTexture(this.canvas);
    this.mesh = new THREE.Mesh(new THREE.PlaneGeometry(0.6, 0.12),
      new THREE.MeshBasicMaterial({ map: this.texture, depthTest: false, transparent: true }));
    this.mesh.renderOrder = 100;
    this.mesh.name = "safety-banner";
  }
  draw(text, color) {
    const ctx = this.canvas.getContext("2d");
    ctx.fillStyle = color;
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.fillStyle = "#ffffff";
    ctx.font = "bold 110px sans-serif";
    ctx.textAlign = "center";
    ctx.fillText(text, this.canvas.width / 2, 145);
    this.texture.needsUpdate = true;
  }
}

export class TwinView {
  /**
   * @param {HTMLElement} container element the canvas fills.
   * @param {{background?: number, onRender?: () => void}} options
   */
  constructor(container, { background = 0x161b22, onRender = () => {} } = {}) {
    this.container = container;
    this.onRender = onRender;
    this.renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    container.appendChild(this.renderer.domElement);
    this.scene = new THREE.Scene();
    this.background = new THREE.Color(background);
    this.scene.background = this.background;
    // Everything of the cell hangs under `cell`: identity on a screen; in WebXR its matrix is
    // the alignment, local-floor <- cell (setCellPose).
    this.cell = new THREE.Group();
    this.cell.matrixAutoUpdate = false;
    this.scene.add(this.cell);

    this.camera = new THREE.PerspectiveCamera(45, 1, 0.05, 100);
    this.camera.up.set(0, 0, 1);
    this.camera.position.set(3.2, -3.2, 2.4);
    this.controls = new OrbitControls(this.camera, this.renderer.domElement);
    this.controls.target.set(0, 0, 0.6);
    this.controls.update();
    this.controls.addEventListener("change", () => { this.dirty = true; this.userMoved = true; });

    this.cell.add(new THREE.HemisphereLight(0xdde6f0, 0x303540, 1.6));
    const sun = new THREE.DirectionalLight(0xffffff, 1.8);
    sun.position.set(3, -2, 6);
    this.cell.add(sun);

    this.grid = new THREE.GridHelper(8, 16, 0x56606e, 0x2c3440);
    this.grid.rotation.x = Math.PI / 2; // GridHelper lies in x-z; the cell floor is x-y
    this.cell.add(this.grid);
    const axes = new THREE.AxesHelper(0.4); // cell frame: x red, y green, z blue
    this.cell.add(axes);

    const robotMaterial = new THREE.MeshStandardMaterial({ color: 0xe8ecf1, metalness: 0.25, roughness: 0.45 });
    const jointMaterial = new THREE.MeshStandardMaterial({ color: 0x9aa5b1, metalness: 0.3, roughness: 0.5 });
    this.robotLinks = new MeshPool(this.cell, UNIT_CYLINDER, robotMaterial);
    this.robotJoints = new MeshPool(this.cell, UNIT_SPHERE, jointMaterial);
    // The parts the robot released (robot.placed_objects), as solid primitives at their pose;
    // `placedShown` (their ids) is public for the end-to-end tests.
    const placedMaterial = new THREE.MeshStandardMaterial({ color: 0xc08a3e, roughness: 0.7 });
    this.placedCylinders = new MeshPool(this.cell, UNIT_SOLID_CYLINDER, placedMaterial);
    this.placedBoxes = new MeshPool(this.cell, UNIT_BOX, placedMaterial);
    this.placedShown = [];
    // The static twin: its state is public for the end-to-end tests (window.__xrcell.view).
    this.twinRobot = null;
    this.twinAsset = { cell: null, status: "none", links: [] }; // status: loading, loaded, failed

    // The S_p envelope is a union of capsules. Drawn naively, the overlaps stack their
    // transparency into bands; instead a depth-only pass keeps the front-most surface and a
    // second pass tints exactly that surface once (depthFunc EqualDepth).
    this.envelopeDepth = new THREE.MeshBasicMaterial({ colorWrite: false, transparent: true });
    this.envelopeMaterial = new THREE.MeshBasicMaterial({
      color: MODE_COLORS.full_speed, transparent: true, opacity: 0.16, depthWrite: false,
      depthFunc: THREE.EqualDepth,
    });
    this.envelopeGroups = [[this.envelopeDepth, 1], [this.envelopeMaterial, 2]].map(([material, order]) => {
      const group = new THREE.Group();
      group.renderOrder = order;
      this.cell.add(group);
      return { links: new MeshPool(group, UNIT_CYLINDER, material), joints: new MeshPool(group, UNIT_SPHERE, material) };
    });

    this.personMaterials = PERSON_COLORS.map((c) => new THREE.MeshStandardMaterial({ color: c, roughness: 0.6 }));
    this.personPools = this.personMaterials.map((m) => ({
      joints: new MeshPool(this.cell, UNIT_SPHERE, m), bones: new MeshPool(this.cell, UNIT_CYLINDER, m),
    }));

    // The zones: translucent prisms with outlined edges, rebuilt when the zone set changes;
    // a zone with a violation this cycle is drawn opaque.
    this.zoneGroup = new THREE.Group();
    this.cell.add(this.zoneGroup);
    this.zoneKey = "";
    this.zoneMeshes = new Map(); // zone name -> fill material

    // The ghost path: where the tool goes on the trajectory the gate forwarded (twin.plan).
    this.planLine = new THREE.Line(new THREE.BufferGeometry(),
      new THREE.LineDashedMaterial({ color: 0x7fd4ff, dashSize: 0.03, gapSize: 0.02 }));
    this.planLine.visible = false;
    this.cell.add(this.planLine);

    this.closestMaterial = new THREE.MeshBasicMaterial({ color: 0xffffff });
    this.closestLine = new THREE.Mesh(UNIT_CYLINDER, this.closestMaterial);
    this.closestEnds = [new THREE.Mesh(UNIT_SPHERE, this.closestMaterial), new THREE.Mesh(UNIT_SPHERE, this.closestMaterial)];
    this.cell.add(this.closestLine, ...this.closestEnds);
    this.closestLabel = document.createElement("div");
    this.closestLabel.className = "twin-label";
    this.closestLabel.hidden = true;
    container.appendChild(this.closestLabel);
    this.closestMid = null;

    // The expert's annotations that have a 3D anchor: a pin at the anchor, with its text.
    this.annotationGroup = new THREE.Group();
    this.cell.add(this.annotationGroup);
    this.annotationKey = "";

    // WebXR: the session in progress, and a safety banner in the scene for a session without a
    // DOM overlay (a headset): it floats in front of the viewer.
    this.xr = null;
    this.onXRFrame = () => {};
    this.paused = false;

    this.dirty = true;
    this.fitted = false;
    this.userMoved = false;
    new ResizeObserver(() => this.resize()).observe(container);
    this.resize();
    const loop = () => { this.renderIfDirty(); requestAnimationFrame(loop); };
    requestAnimationFrame(loop);
  }

  resize() {
    if (this.xr) return;  // the XR layer has its own size
    const w = Math.max(1, this.container.clientWidth);
    const h = Math.max(1, this.container.clientHeight);
    this.renderer.setSize(w, h, false);
    this.renderer.domElement.style.width = "100%";
    this.renderer.domElement.style.height = "100%";
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.dirty = true;
  }

  /** Show one twin_state (schema: xr_server/twin_schema.json). */
  update(twin) {
    const robot = twin.robot;
    const safety = twin.safety;
    const links = robot ? robot.links : [];
    if (twin.cell && twin.cell !== this.twinAsset.cell) this.loadTwinAsset(twin.cell);
    if (this.twinRobot) this.twinRobot.root.visible = Boolean(robot);
    if (this.twinRobot && robot) this.twinRobot.pose(robot.joint_names, robot.q);

    this.robotLinks.begin(); this.robotJoints.begin();
    for (const link of this.twinRobot ? [] : links) {
      placeCylinder(this.robotLinks.next(), link.a, link.b, link.r);
      placeSphere(this.robotJoints.next(), link.a, link.r);
      placeSphere(this.robotJoints.next(), link.b, link.r);
    }
    this.robotLinks.end(); this.robotJoints.end();

    const placed = robot?.placed_objects || [];
    this.placedCylinders.begin(); this.placedBoxes.begin();
    for (const obj of placed) {
      placePrimitive(obj.primitive === "box" ? this.placedBoxes.next() : this.placedCylinders.next(), obj);
    }
    this.placedCylinders.end(); this.placedBoxes.end();
    this.placedShown = placed.map((obj) => obj.id);

    const modeColor = MODE_COLORS[safety?.mode] || "#8b949e";
    this.envelopeMaterial.color.set(modeColor);
    for (const { links: cylinders, joints } of this.envelopeGroups) {
      cylinders.begin(); joints.begin();
      if (safety && safety.s_p_m !== null && safety.s_p_m !== undefined) {
        for (const link of links) {
          const r = link.r + safety.s_p_m;
          placeCylinder(cylinders.next(), link.a, link.b, r);
          placeSphere(joints.next(), link.a, r);
          placeSphere(joints.next(), link.b, r);
        }
      }
      cylinders.end(); joints.end();
    }

    this.personPools.forEach((pool) => { pool.joints.begin(); pool.bones.begin(); });
    (twin.people || []).forEach((person, i) => {
      const pool = this.personPools[i % this.personPools.length];
      const kps = person.keypoints || [];
      kps.forEach((kp, j) => { if (kp) placeSphere(pool.joints.next(), kp, j <= 10 ? 0.018 : 0.03); });
      for (const [a, b] of POSE_LIMBS) {
        if (kps[a] && kps[b]) placeCylinder(pool.bones.next(), kps[a], kps[b], 0.018);
      }
    });
    this.personPools.forEach((pool) => { pool.joints.end(); pool.bones.end(); });

    this.showZones(twin.zones || [], new Set((safety?.zone_violations || []).map((v) => v.zone)));

    const plan = twin.plan;
    this.planLine.visible = Boolean(plan && plan.points.length > 1);
    if (this.planLine.visible && plan.goal_id !== this.planGoal) {  // a new path: new geometry
      this.planLine.geometry.dispose();
      this.planLine.geometry = new THREE.BufferGeometry().setFromPoints(
        plan.points.map((p) => new THREE.Vector3(p[0], p[1], p[2])));
      this.planLine.computeLineDistances();
    }
    this.planGoal = this.planLine.visible ? plan.goal_id : null;

    const closest = safety ? safety.closest : null;
    const showClosest = Boolean(closest);
    this.closestLine.visible = showClosest;
    this.closestEnds.forEach((m) => { m.visible = showClosest; });
    this.closestLabel.hidden = !showClosest || Boolean(this.xr);  // a screen label: not in XR
    if (showClosest) {
      this.closestMaterial.color.set(modeColor);
      placeCylinder(this.closestLine, closest.human_point, closest.robot_point, 0.006);
      placeSphere(this.closestEnds[0], closest.human_point, 0.02);
      placeSphere(this.closestEnds[1], closest.robot_point, 0.02);
      this.closestMid = new THREE.Vector3(...closest.human_point).add(new THREE.Vector3(...closest.robot_point)).multiplyScalar(0.5);
      const sep = safety.separation_m;
      this.closestLabel.textContent = sep === null || sep === undefined ? "" : `${sep.toFixed(2)} m`;
      this.closestLabel.style.borderColor = modeColor;
    }

    if (!this.fitted && !this.userMoved && links.length) this.fit(twin);
    this.dirty = true;
  }

  /** Fetch the cell's static twin GLB and draw the robot with it once it has loaded. */
  loadTwinAsset(cell) {
    this.twinAsset = { cell, status: "loading", links: [] };
    new GLTFLoader().load(`/api/cells/${encodeURIComponent(cell)}/twin.glb`, (gltf) => {
      if (this.twinAsset.cell !== cell) return; // the page moved on to another cell
      const robot = new TwinRobot(gltf.scene);
      // Compile its shaders off the main thread (KHR_parallel_shader_compile where the browser
      // has it) before it is drawn: a software renderer would otherwise block the page for seconds.
      this.renderer.compileAsync(robot.root, this.camera, this.scene).catch(() => {}).then(() => {
        if (this.twinAsset.cell !== cell) return;
        if (this.twinRobot) this.cell.remove(this.twinRobot.root);
        this.twinRobot = robot;
        this.cell.add(robot.root);
        this.twinAsset = { cell, status: "loaded", links: robot.links.map((l) => l.name) };
        this.dirty = true;
      });
    }, undefined, (error) => {
      if (this.twinAsset.cell !== cell) return;
      this.twinAsset = { cell, status: "failed", links: [] }; // the capsules stay
      console.warn(`static twin of cell ${cell} not loaded: ${error.message || error}`);
    });
  }

  /** Draw `zones` (twin_state.zones); those named in `violated` stand out. */
  showZones(zones, violated) {
    const key = JSON.stringify(zones);
    if (key !== this.zoneKey) {
      this.zoneKey = key;
      for (const child of [...this.zoneGroup.children]) {
        this.zoneGroup.remove(child);
        child.geometry.dispose();
        child.material.dispose();
      }
      this.zoneMeshes.clear();
      for (const zone of zones) {
        const [bottom, top] = zone.z_range_m;
        const shape = new THREE.Shape(zone.footprint.map(([x, y]) => new THREE.Vector2(x, y)));
        const geometry = new THREE.ExtrudeGeometry(shape, { depth: top - bottom, bevelEnabled: false });
        geometry.translate(0, 0, bottom); // the shape lies in x-y and extrudes along +z: the cell frame
        const color = ZONE_COLORS[zone.kind] ?? 0x999999;
        const fill = new THREE.MeshBasicMaterial({ color, transparent: true, opacity: 0.06, depthWrite: false });
        const edges = new THREE.LineSegments(new THREE.EdgesGeometry(geometry),
          new THREE.LineBasicMaterial({ color, transparent: true, opacity: 0.7 }));
        this.zoneGroup.add(new THREE.Mesh(geometry, fill), edges);
        this.zoneMeshes.set(zone.name, fill);
      }
    }
    for (const [name, fill] of this.zoneMeshes) fill.opacity = violated.has(name) ? 0.2 : 0.06;
  }

  /** Aim the camera at the robot and the people once, from the front-right, above. */
  fit(twin) {
    const box = new THREE.Box3();
    for (const link of twin.robot.links) { box.expandByPoint(new THREE.Vector3(...link.a)); box.expandByPoint(new THREE.Vector3(...link.b)); }
    for (const person of twin.people || []) for (const kp of person.keypoints || []) if (kp) box.expandByPoint(new THREE.Vector3(kp[0], kp[1], kp[2]));
    box.expandByPoint(new THREE.Vector3(box.min.x, box.min.y, 0));
    const center = box.getCenter(new THREE.Vector3());
    const size = box.getSize(new THREE.Vector3()).length();
    const distance = Math.max(2.2, size * 1.05);
    this.controls.target.set(center.x, center.y, Math.max(0.5, center.z * 0.8));
    this.camera.position.set(center.x + distance * 0.62, center.y - distance * 0.72, center.z + distance * 0.55);
    this.controls.update();
    this.userMoved = false;
    this.fitted = true;
  }

  /**
   * Pins at the 3D anchors of `annotations` (the `annotation` event's objects; those without an
   * `anchor` are left to the 2D overlay on the camera image).
   */
  setAnnotations(annotations) {
    const anchored = annotations.filter((a) => a.anchor && a.anchor.frame === "cell");
    const key = JSON.stringify(anchored.map((a) => [a.id, a.anchor.position_m, a.color, a.text]));
    if (key === this.annotationKey) return;
    this.annotationKey = key;
    for (const child of [...this.annotationGroup.children]) {
      this.annotationGroup.remove(child);
      child.traverse((o) => { o.geometry?.dispose(); o.material?.map?.dispose(); o.material?.dispose(); });
    }
    for (const a of anchored) {
      const [x, y, z] = a.anchor.position_m;
      const pin = new THREE.Group();
      pin.name = `annotation:${a.id}`;
      pin.position.set(x, y, z);
      const material = new THREE.MeshBasicMaterial({ color: a.color || "#ffcc00", depthTest: false });
      const head = new THREE.Mesh(UNIT_SPHERE, material);
      head.scale.setScalar(0.03);
      head.position.z = 0.25;
      const stem = new THREE.Mesh(UNIT_CYLINDER, material);
      placeCylinder(stem, [0, 0, 0], [0, 0, 0.25], 0.006);
      pin.add(head, stem);
      if (a.text) pin.add(textSprite(a.text, a.color || "#ffcc00", [0, 0, 0.36], 0.08));
      pin.renderOrder = 10;
      this.annotationGroup.add(pin);
    }
    this.dirty = true;
  }

  /** Place the cell in the scene: `matrix` (16, column-major) local-floor <- cell, or null for identity. */
  setCellPose(matrix) {
    if (matrix) this.cell.matrix.fromArray(matrix);
    else this.cell.matrix.identity();
    this.cell.matrixWorldNeedsUpdate = true;
    this.dirty = true;
  }

  /**
   * Render into a WebXR session (three.js WebXRManager, `local-floor`) until it ends; the room
   * shows through (no background, no grid). `onXRFrame(time, frame, referenceSpace)` runs
   * before each XR frame is drawn. A session without a DOM overlay gets the safety banner in
   * the scene (`setBanner`).
   * @param {XRSession} session an `immersive-ar` session that has `local-floor`.
   */
  async startXR(session) {
    const xr = this.renderer.xr;
    xr.enabled = true;
    xr.setReferenceSpaceType("local-floor");
    await xr.setSession(session);
    this.xr = session;
    this.scene.background = null;
    this.grid.visible = false;
    this.closestLabel.hidden = true;
    this.headBanner = session.domOverlayState ? null : new HeadBanner();
    if (this.headBanner) this.scene.add(this.headBanner.mesh);
    this.setBanner(this.bannerState);
    const viewer = new THREE.Vector3(), viewerQ = new THREE.Quaternion(), ahead = new THREE.Vector3();
    this.renderer.setAnimationLoop((time, frame) => {
      if (!frame) return;
      this.onXRFrame(time, frame, xr.getReferenceSpace());
      if (this.headBanner) {  // 1.2 m ahead of the viewer, a little above the line of sight
        const camera = xr.getCamera();
        camera.matrixWorld.decompose(viewer, viewerQ, ahead);
        ahead.set(0, 0.25, -1.2).applyQuaternion(viewerQ).add(viewer);
        this.headBanner.mesh.position.copy(ahead);
        this.headBanner.mesh.quaternion.copy(viewerQ);
      }
      this.renderer.render(this.scene, this.camera);
      this.onRender();
    });
    session.addEventListener("end", () => {
      this.renderer.setAnimationLoop(null);
      xr.enabled = false;
      this.xr = null;
      if (this.headBanner) this.scene.remove(this.headBanner.mesh);
      this.headBanner = null;
      this.scene.background = this.background;
      this.grid.visible = true;
      this.setCellPose(null);
      this.cell.visible = true;
      this.resize();
    });
  }

  /** The safety banner drawn in the scene during a WebXR session without a DOM overlay. */
  setBanner(state) {
    this.bannerState = state;
    if (this.headBanner && state) this.headBanner.draw(state.text, state.color);
  }

  renderIfDirty() {
    if (this.xr || this.paused || !this.dirty) return;
    this.dirty = false;
    this.renderer.render(this.scene, this.camera);
    if (this.closestMid && !this.closestLabel.hidden) {
      const p = this.closestMid.clone().project(this.camera);
      const w = this.container.clientWidth, h = this.container.clientHeight;
      this.closestLabel.style.left = `${((p.x + 1) / 2) * w}px`;
      this.closestLabel.style.top = `${((1 - p.y) / 2) * h}px`;
      this.closestLabel.hidden = p.z > 1;
    }
    this.onRender();
  }
}
