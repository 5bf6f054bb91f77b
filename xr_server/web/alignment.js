// Registration of the `cell` frame in the room, and the HMI camera's pose in it. Pure functions,
// no DOM and no three.js, so node's test runner checks them (tests/js/alignment.test.mjs).
//
// Frames:
// - WebXR `local-floor` reference space: y up, x right and -z forward of where the session
//   started, origin on the floor (W3C WebXR Device API). Views look along their -z, y up.
// - `cell`: REP 103, x forward, y left, z up; the floor is z = 0.
// - Camera optical frame (the `hmi_camera` orientation): x right, y down, z forward
//   (ROS `*_optical_frame`), i.e. a WebXR view turned by 180 degrees about its x axis.
// Quaternions are (x, y, z, w); matrices are row-major 3x3 arrays unless said otherwise.
//
// An alignment places the cell in local-floor: `origin` is the cell origin in local-floor
// (metres) and `yaw_rad` the turn about local-floor +y that takes local-floor +x onto the cell's
// +x axis. With yaw 0: cell x = XR +x, cell y = XR -z, cell z = XR +y, that is
// xr_from_cell = T(origin) * Ry(yaw) * Rx(-pi/2).

/** Smallest distance between the two marked points of the manual alignment, metres. */
export const MIN_AXIS_POINT_DISTANCE_M = 0.1;

/** The localStorage key of a cell's alignment. */
export function alignmentKey(cell) {
  return `xrcell.alignment.${cell}`;
}

const transpose = (m) => [0, 1, 2].map((i) => [0, 1, 2].map((j) => m[j][i]));
const mul = (a, b) => [0, 1, 2].map((i) => [0, 1, 2].map((j) => a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j]));
const apply = (m, v) => [0, 1, 2].map((i) => m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2]);

/** Rotation matrix of a unit quaternion (x, y, z, w). */
export function quatToMatrix([x, y, z, w]) {
  return [
    [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
  ];
}

/** Unit quaternion (x, y, z, w), w >= 0, of a rotation matrix. */
export function matrixToQuat(m) {
  const trace = m[0][0] + m[1][1] + m[2][2];
  let q;
  if (trace > 0) {
    const s = 2 * Math.sqrt(trace + 1);
    q = [(m[2][1] - m[1][2]) / s, (m[0][2] - m[2][0]) / s, (m[1][0] - m[0][1]) / s, s / 4];
  } else if (m[0][0] > m[1][1] && m[0][0] > m[2][2]) {
    const s = 2 * Math.sqrt(1 + m[0][0] - m[1][1] - m[2][2]);
    q = [s / 4, (m[0][1] + m[1][0]) / s, (m[0][2] + m[2][0]) / s, (m[2][1] - m[1][2]) / s];
  } else if (m[1][1] > m[2][2]) {
    const s = 2 * Math.sqrt(1 + m[1][1] - m[0][0] - m[2][2]);
    q = [(m[0][1] + m[1][0]) / s, s / 4, (m[1][2] + m[2][1]) / s, (m[0][2] - m[2][0]) / s];
  } else {
    const s = 2 * Math.sqrt(1 + m[2][2] - m[0][0] - m[1][1]);
    q = [(m[0][2] + m[2][0]) / s, (m[1][2] + m[2][1]) / s, s / 4, (m[1][0] - m[0][1]) / s];
  }
  const norm = Math.hypot(...q) * (q[3] < 0 ? -1 : 1);
  return q.map((c) => c / norm);
}

/** Rotation (3x3) of the cell axes in local-floor: the columns are cell x, y, z in local-floor. */
export function xrFromCellRotation(alignment) {
  const c = Math.cos(alignment.yaw_rad), s = Math.sin(alignment.yaw_rad);
  // Ry(yaw) * Rx(-pi/2): cell x -> (c, 0, -s), cell y -> (-s, 0, -c), cell z -> (0, 1, 0)
  return [[c, -s, 0], [0, 0, 1], [-s, -c, 0]];
}

/**
 * The alignment from two floor points marked in local-floor (metres): `origin` where the cell
 * origin is, `xPoint` anywhere along the cell's +x axis. Heights are ignored for the axis (the
 * cell's z is local-floor's up); the origin keeps its height (the floor the hit test found).
 * @throws {Error} the points are less than MIN_AXIS_POINT_DISTANCE_M apart on the floor.
 */
export function alignmentFromPoints(origin, xPoint) {
  const dx = xPoint[0] - origin[0], dz = xPoint[2] - origin[2];
  const distance = Math.hypot(dx, dz);
  if (!(distance >= MIN_AXIS_POINT_DISTANCE_M)) {
    throw new Error(`the x-axis point is ${distance.toFixed(3)} m from the origin on the floor: `
      + `mark it at least ${MIN_AXIS_POINT_DISTANCE_M} m away along the cell's x axis`);
  }
  return { origin: [...origin], yaw_rad: Math.atan2(-dz, dx) };
}

/**
 * Move an alignment by a nudge given in the cell frame: `dx_m`, `dy_m` shift the cell origin
 * along the cell's own x and y axes, `dz_m` up, `dyaw_rad` turns the cell about its z axis
 * (counter-clockwise seen from above). Returns a new alignment.
 */
export function nudge(alignment, { dx_m = 0, dy_m = 0, dz_m = 0, dyaw_rad = 0 } = {}) {
  const shift = apply(xrFromCellRotation(alignment), [dx_m, dy_m, dz_m]);
  return {
    ...alignment,
    origin: alignment.origin.map((o, i) => o + shift[i]),
    yaw_rad: Math.atan2(Math.sin(alignment.yaw_rad + dyaw_rad), Math.cos(alignment.yaw_rad + dyaw_rad)),
  };
}

/** The 4x4 transform local-floor <- cell, column-major (three.js Matrix4.fromArray, WebXR). */
export function xrFromCellMatrix(alignment) {
  const r = xrFromCellRotation(alignment), o = alignment.origin;
  return [r[0][0], r[1][0], r[2][0], 0, r[0][1], r[1][1], r[2][1], 0,
    r[0][2], r[1][2], r[2][2], 0, o[0], o[1], o[2], 1];
}

/** A point of local-floor (metres) in the cell frame. */
export function cellFromXrPoint(alignment, p) {
  return apply(transpose(xrFromCellRotation(alignment)), p.map((v, i) => v - alignment.origin[i]));
}

/** A point of the cell frame (metres) in local-floor. */
export function xrFromCellPoint(alignment, p) {
  return apply(xrFromCellRotation(alignment), p).map((v, i) => v + alignment.origin[i]);
}

// A WebXR view (x right, y up, looking along -z) to the optical frame (x right, y down, z forward).
const VIEW_FROM_OPTICAL = [[1, 0, 0], [0, -1, 0], [0, 0, -1]];

/**
 * The pose of a WebXR view in the cell frame, as `hmi_camera` wants it.
 * @param alignment the cell in local-floor.
 * @param position (3) the view's position in local-floor, metres (XRRigidTransform.position).
 * @param orientation (4) its quaternion (x, y, z, w) in local-floor (XRRigidTransform.orientation).
 * @returns {{position_m: number[], orientation: number[]}} optical centre (m) and optical-frame
 *   quaternion (x, y, z, w), `cell` frame.
 */
export function cameraPoseInCell(alignment, position, orientation) {
  const cellFromXr = transpose(xrFromCellRotation(alignment));
  const rotation = mul(mul(cellFromXr, quatToMatrix(orientation)), VIEW_FROM_OPTICAL);
  return { position_m: cellFromXrPoint(alignment, position), orientation: matrixToQuat(rotation) };
}

/**
 * Field of view of a WebXR view from its projection matrix (column-major, XRView.projectionMatrix).
 * An off-centre frustum's horizontal extent is kept; the server assumes a centred principal point.
 * @returns {{hfov_deg: number, aspect: number}} aspect = width / height.
 */
export function fovFromProjection(m) {
  const right = (1 + m[8]) / m[0], left = (1 - m[8]) / m[0];
  const up = (1 + m[9]) / m[5], down = (1 - m[9]) / m[5];
  return { hfov_deg: (Math.atan(right) + Math.atan(left)) * 180 / Math.PI, aspect: (right + left) / (up + down) };
}

/**
 * A camera pose set by hand (outside XR): the camera at `position_m` (cell frame, metres),
 * heading `yaw_deg` (counter-clockwise from the cell's +x about +z) and tilted down by `pitch_deg`.
 * @returns {{position_m: number[], orientation: number[]}} as `cameraPoseInCell`.
 */
export function cameraPoseFromLook({ position_m, yaw_deg, pitch_deg }) {
  const yaw = yaw_deg * Math.PI / 180, pitch = pitch_deg * Math.PI / 180;
  const forward = [Math.cos(pitch) * Math.cos(yaw), Math.cos(pitch) * Math.sin(yaw), -Math.sin(pitch)];
  const right = [Math.sin(yaw), -Math.cos(yaw), 0];
  const down = [  // forward x right
    forward[1] * right[2] - forward[2] * right[1],
    forward[2] * right[0] - forward[0] * right[2],
    forward[0] * right[1] - forward[1] * right[0],
  ];
  const rotation = [0, 1, 2].map((i) => [right[i], down[i], forward[i]]);
  return { position_m: [...position_m], orientation: matrixToQuat(rotation) };
}

const finite = (v, n) => Array.isArray(v) && v.length === n && v.every(Number.isFinite);

/**
 * A stored alignment record (JSON text from localStorage) or null when absent or malformed.
 * Record: {cell, origin: [x, y, z] local-floor m, yaw_rad, look?: {position_m, yaw_deg,
 * pitch_deg, hfov_deg} (the hand-set camera pose outside XR), saved_at: UNIX s}.
 */
export function parseAlignment(text, cell) {
  let record;
  try { record = JSON.parse(text); } catch { return null; }
  if (!record || typeof record !== "object" || record.cell !== cell) return null;
  const out = { cell, saved_at: Number(record.saved_at) || 0, origin: null, yaw_rad: null, look: null };
  if (finite(record.origin, 3) && Number.isFinite(record.yaw_rad)) {
    out.origin = record.origin;
    out.yaw_rad = record.yaw_rad;
  }
  const look = record.look;
  if (look && finite(look.position_m, 3) && [look.yaw_deg, look.pitch_deg, look.hfov_deg].every(Number.isFinite)
      && look.hfov_deg >= 1 && look.hfov_deg <= 179) {
    out.look = look;
  }
  return out.origin || out.look ? out : null;
}
