// Unit tests of the HMI's alignment math (xr_server/web/alignment.js), node's built-in runner:
//   node --test tests/js/      (also run from pytest by tests/xr_server/test_web_js.py)
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  alignmentFromPoints, alignmentKey, cameraPoseFromLook, cameraPoseInCell, cellFromXrPoint, fovFromProjection,
  matrixToQuat, nudge, parseAlignment, quatToMatrix, xrFromCellMatrix, xrFromCellPoint,
} from "../../xr_server/web/alignment.js";

const close = (actual, expected, tol = 1e-9) => {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= tol, `[${i}] ${a} != ${expected[i]} (${actual} vs ${expected})`));
};
// Same rotation: q and -q are equal.
const sameRotation = (q, r, tol = 1e-9) => {
  const dot = q.reduce((s, v, i) => s + v * r[i], 0);
  assert.ok(Math.abs(Math.abs(dot) - 1) <= tol, `${q} is not the rotation ${r}`);
};
const quatAbout = (axis, angle) => [...axis.map((a) => a * Math.sin(angle / 2)), Math.cos(angle / 2)];

test("with yaw 0 the cell's x, y, z are local-floor's +x, -z, +y", () => {
  const a = { origin: [0, 0, 0], yaw_rad: 0 };
  close(xrFromCellPoint(a, [1, 0, 0]), [1, 0, 0]);
  close(xrFromCellPoint(a, [0, 1, 0]), [0, 0, -1]);
  close(xrFromCellPoint(a, [0, 0, 1]), [0, 1, 0]);
});

test("two floor points give the origin and the x axis", () => {
  // origin at (1, 0, -2) in local-floor; the x-axis point 2 m along local-floor -z (its forward)
  const a = alignmentFromPoints([1, 0.01, -2], [1, 0.03, -4]);
  close(a.origin, [1, 0.01, -2]);
  assert.ok(Math.abs(a.yaw_rad - Math.PI / 2) < 1e-12);
  close(cellFromXrPoint(a, [1, 0.01, -3]), [1, 0, 0]);          // 1 m along the marked axis
  close(cellFromXrPoint(a, [0, 0.01, -2]), [0, 1, 0]);          // local-floor -x is the cell's left
  close(cellFromXrPoint(a, [1, 1.01, -2]), [0, 0, 1]);
  for (const p of [[0.3, -1.2, 2.5], [-4, 0, 1]]) close(cellFromXrPoint(a, xrFromCellPoint(a, p)), p, 1e-12);
});

test("points too close together are refused with the distance", () => {
  assert.throws(() => alignmentFromPoints([0, 0, 0], [0.05, 0.5, 0]),
    { message: "the x-axis point is 0.050 m from the origin on the floor: mark it at least 0.1 m away along the cell's x axis" });
});

test("the column-major matrix maps cell points like xrFromCellPoint", () => {
  const a = { origin: [0.4, 0.0, -1.5], yaw_rad: 0.7 };
  const m = xrFromCellMatrix(a);
  const p = [0.3, -0.2, 1.1];
  const q = [0, 1, 2].map((i) => m[i] * p[0] + m[4 + i] * p[1] + m[8 + i] * p[2] + m[12 + i]);
  close(q, xrFromCellPoint(a, p), 1e-12);
  close([m[3], m[7], m[11], m[15]], [0, 0, 0, 1]);
});

test("a nudge moves the origin along the cell's axes and turns about its z", () => {
  const a = { origin: [1, 0, -2], yaw_rad: Math.PI / 2 };
  const moved = nudge(a, { dx_m: 0.05 });
  close(cellFromXrPoint(a, moved.origin), [0.05, 0, 0], 1e-12);
  const turned = nudge(a, { dyaw_rad: Math.PI });
  assert.ok(Math.abs(Math.abs(turned.yaw_rad) - Math.PI / 2) < 1e-12);
  close(xrFromCellPoint(turned, [1, 0, 0]), [1, 0, -1], 1e-12);  // cell +x now points along local-floor +z
  assert.deepEqual(a, { origin: [1, 0, -2], yaw_rad: Math.PI / 2 }, "the input is not changed");
});

test("quaternion <-> matrix round trips, all branches", () => {
  for (const q of [quatAbout([1, 0, 0], 3.1), quatAbout([0, 1, 0], 3.0), quatAbout([0, 0, 1], 2.9),
    quatAbout([0.48, 0.6, 0.64], 0.8), [0, 0, 0, 1]]) {
    sameRotation(matrixToQuat(quatToMatrix(q)), q, 1e-12);
  }
});

test("a view at the cell origin looking along the cell's +x: optical z is cell +x, optical y is cell -z", () => {
  const a = alignmentFromPoints([2, 0, 1], [2, 0, -1]);  // cell x = local-floor -z
  // a WebXR view 1.6 m above the origin, looking along local-floor -z (identity orientation)
  const pose = cameraPoseInCell(a, [2, 1.6, 1], [0, 0, 0, 1]);
  close(pose.position_m, [0, 0, 1.6], 1e-12);
  const r = quatToMatrix(pose.orientation);
  close([r[0][2], r[1][2], r[2][2]], [1, 0, 0], 1e-12);   // forward
  close([r[0][1], r[1][1], r[2][1]], [0, 0, -1], 1e-12);  // down
  close([r[0][0], r[1][0], r[2][0]], [0, -1, 0], 1e-12);  // right is the cell's -y
});

test("a turned and tilted view gives the same pose as the hand-set look", () => {
  const a = { origin: [0.5, 0, -0.5], yaw_rad: -0.3 };
  // (a view looks along its -z: turned -90 degrees about up, it looks along +x)
  // a view turned 40 degrees left of the cell x axis and tilted 25 degrees down, at cell (-1, 0.5, 1.4)
  const turn = quatToMatrix(quatAbout([0, 1, 0], -0.3 - Math.PI / 2 + 40 * Math.PI / 180));
  const tilt = quatToMatrix(quatAbout([1, 0, 0], -25 * Math.PI / 180));
  const rot = [0, 1, 2].map((i) => [0, 1, 2].map((j) => turn[i][0] * tilt[0][j] + turn[i][1] * tilt[1][j] + turn[i][2] * tilt[2][j]));
  const pose = cameraPoseInCell(a, xrFromCellPoint(a, [-1, 0.5, 1.4]), matrixToQuat(rot));
  const look = cameraPoseFromLook({ position_m: [-1, 0.5, 1.4], yaw_deg: 40, pitch_deg: 25 });
  close(pose.position_m, [-1, 0.5, 1.4], 1e-12);
  sameRotation(pose.orientation, look.orientation, 1e-12);
});

test("the hand-set look matches the composited-view test's camera (pitch 25 deg, facing +x)", () => {
  const { orientation } = cameraPoseFromLook({ position_m: [-2, 0, 1.5], yaw_deg: 0, pitch_deg: 25 });
  const r = quatToMatrix(orientation);
  const p = 25 * Math.PI / 180;
  close([r[0][2], r[1][2], r[2][2]], [Math.cos(p), 0, -Math.sin(p)], 1e-12);
  close([r[0][0], r[1][0], r[2][0]], [0, -1, 0], 1e-12);
});

test("field of view from a WebXR projection matrix", () => {
  const f = 1 / Math.tan(35 * Math.PI / 180), aspect = 4 / 3;  // hfov 70 deg, 640x480
  const m = [f, 0, 0, 0, 0, f * aspect, 0, 0, 0, 0, -1.0002, -1, 0, 0, -0.020002, 0];
  const fov = fovFromProjection(m);
  assert.ok(Math.abs(fov.hfov_deg - 70) < 1e-9, fov.hfov_deg);
  assert.ok(Math.abs(fov.aspect - aspect) < 1e-12, fov.aspect);
});

test("stored alignments: per cell, malformed ones are ignored", () => {
  assert.equal(alignmentKey("lab"), "xrcell.alignment.lab");
  const record = { cell: "lab", origin: [1, 0, 2], yaw_rad: 0.5, saved_at: 17 };
  assert.deepEqual(parseAlignment(JSON.stringify(record), "lab"), { ...record, look: null });
  assert.equal(parseAlignment(JSON.stringify(record), "other"), null);
  assert.equal(parseAlignment("{not json", "lab"), null);
  assert.equal(parseAlignment(JSON.stringify({ cell: "lab", origin: [1, 0], yaw_rad: 0 }), "lab"), null);
  const look = { position_m: [0, 0, 1.5], yaw_deg: 0, pitch_deg: 20, hfov_deg: 65 };
  assert.deepEqual(parseAlignment(JSON.stringify({ cell: "lab", look }), "lab").look, look);
  assert.equal(parseAlignment(JSON.stringify({ cell: "lab", look: { ...look, hfov_deg: 200 } }), "lab"), null);
});
