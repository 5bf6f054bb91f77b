// Dashboard: 3D twin, safety panel and camera views, live over Socket.IO.
import { TwinView, MODE_COLORS, MODE_LABELS } from "./twin3d.js";
import { subscribeTwin, signOut, fmt, probe } from "./twin_socket.js";

const $ = (id) => document.getElementById(id);
const view = new TwinView($("twin"), { onRender: () => { probe.rendered += 1; } });
probe.view = view; // for the end-to-end tests
probe.planGoals = []; // the goal ids of the gate's paths the twin showed, in order
const shownCameras = new Map(); // camera id -> caption element
let linkStatus = "disconnected";
let lastTwin = null;
const RESET_ROLES = ["supervisor", "admin"];
let mayReset = false; // from GET /api/me; the server checks the roles again
let resetPending = false;
const JOG_ROLES = ["operator", "admin"]; // the gate checks the roles again
const JOG_SPEED_MPS = 0.05;
const JOG_PERIOD_MS = 50; // well inside the gate's 0.2 s deadman timeout
let jogTimer = null;
let jogSeq = 0;

$("sign-out").addEventListener("click", signOut);
fetch("/api/me", { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).then((me) => {
  if (!me) return;
  $("user").textContent = `${me.username} (${me.roles.join(", ")})`;
  mayReset = me.roles.some((role) => RESET_ROLES.includes(role));
  $("jog").hidden = !me.roles.some((role) => JOG_ROLES.includes(role));
  showReset(lastTwin?.safety);
});

// Reset of a latched fault stop: shown while the monitor is in fault_stop.
function showReset(safety) {
  const faultStop = linkStatus === "connected" && safety?.mode === "fault_stop";
  $("fault-reset").hidden = !faultStop;
  $("reset-button").disabled = !mayReset || resetPending;
  $("reset-hint").hidden = mayReset;
}

$("reset-button").addEventListener("click", async () => {
  const button = $("reset-button");
  const reason = $("reset-reason");
  resetPending = true;
  button.disabled = true;
  try {
    const response = await fetch("/api/safety/reset", { method: "POST", credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    reason.textContent = body.reason || body.error || `reset failed (HTTP ${response.status})`;
    reason.dataset.accepted = String(body.accepted === true);
  } catch (err) {
    reason.textContent = `reset failed: ${err.message}`;
    reason.dataset.accepted = "false";
  } finally {
    reason.hidden = false;
    resetPending = false;
    button.disabled = !mayReset;
  }
});

let camerasAskedAt = -Infinity;
async function refreshCameras() {
  if (performance.now() - camerasAskedAt < 2000) return; // at most every 2 s
  camerasAskedAt = performance.now();
  const response = await fetch("/api/cameras", { credentials: "same-origin" });
  if (!response.ok) return;
  for (const id of await response.json()) {
    if (shownCameras.has(id)) continue;
    const figure = document.createElement("figure");
    figure.className = "camera";
    const img = document.createElement("img");
    img.alt = `camera ${id}`;
    img.dataset.camera = id;
    img.src = `/api/cameras/${encodeURIComponent(id)}/mjpeg`;
    const caption = document.createElement("figcaption");
    caption.textContent = id;
    figure.append(img, caption);
    $("cameras").append(figure);
    shownCameras.set(id, caption);
  }
}
refreshCameras();

function showMode(safety) {
  const badge = $("mode-badge");
  if (linkStatus !== "connected" || !safety) {
    badge.dataset.mode = "";
    badge.textContent = linkStatus === "stale" ? "NO DATA (stale)" : linkStatus === "connected" ? "NO SAFETY STATE" : "NO CONNECTION";
    return;
  }
  badge.dataset.mode = safety.mode;
  badge.textContent = MODE_LABELS[safety.mode] || safety.mode;
}

function onTwin(twin) {
  lastTwin = twin;
  view.update(twin);
  $("cell-name").textContent = `cell ${twin.cell}`;
  showProgram(twin.program);
  const s = twin.safety;
  showMode(s);
  const scale = s ? s.speed_scale : null;
  $("speed-scale").textContent = scale === null ? "–" : `${Math.round(scale * 100)} %`;
  $("speed-bar").style.width = `${Math.round((scale || 0) * 100)}%`;
  $("speed-bar").style.background = MODE_COLORS[s?.mode] || "";
  $("separation").textContent = fmt(s?.separation_m, 2, "m");
  $("s-p").textContent = fmt(s?.s_p_m, 2, "m");
  $("margin").textContent = s && s.separation_m !== null && s.s_p_m !== null ? fmt(s.separation_m - s.s_p_m, 2, "m") : "–";
  for (const term of ["s_h", "s_r", "s_s", "c", "z_d", "z_r"]) $(`term-${term}`).textContent = fmt(s?.terms?.[term], 3);
  $("reason").textContent = s ? s.reason : "–";
  const c = s?.closest;
  const vr = c && typeof c.v_r_mps === "number" ? ` · v_r ${c.v_r_mps.toFixed(2)} m/s ${c.v_r_directed ? "towards the person" : "(undirected)"}` : "";
  $("closest").textContent = c ? `${c.person} ${c.body_part} ↔ ${c.link}${vr}` : "–";
  const r = twin.robot;
  probe.robotQ = r ? r.q : null;
  if (twin.plan && probe.planGoals.at(-1) !== twin.plan.goal_id) probe.planGoals.push(twin.plan.goal_id);
  prefillGoto(r);
  $("robot-mode").textContent = r ? r.mode : "no robot state";
  $("tcp-speed").textContent = fmt(r?.tcp_speed_mps, 2, "m/s");
  $("robot-scale").textContent = r ? `${Math.round(r.speed_scale * 100)} %` : "–";
  const opening = typeof r?.gripper_opening_m === "number" ? `opening ${(r.gripper_opening_m * 1000).toFixed(0)} mm` : "opening unknown";
  $("gripper").textContent = !r || typeof r.payload_carried !== "boolean" ? "–"
    : `${r.payload_carried ? "payload carried" : "no payload carried"} · ${opening}`;
  $("people").textContent = String((twin.people || []).length);
  const ch = s?.channels || [];
  $("channels").textContent = !ch.length ? "–" : ch.length > 1 ? `${ch.join(" + ")}, cross-checked` : `${ch.join("")} only (no depth data)`;
  showPlaced(r, twin.occupancy);
  const faults = s?.faults || [];
  $("faults").hidden = faults.length === 0;
  $("faults").textContent = faults.length ? `Faults: ${faults.join("; ")}` : "";
  showReset(s);
  for (const cam of twin.cameras || []) {
    const caption = shownCameras.get(cam.id);
    if (caption) caption.textContent = `${cam.id} · ${cam.frames_with_person}/${cam.frames_processed} frames with a person`;
    else refreshCameras();
  }
}

// The parts the robot released (robot.placed_objects) and what the occupancy channel did with
// them: masked, or the list refused (a fault to look at: a released part then stops the robot).
function showPlaced(robot, occupancy) {
  const placed = robot?.placed_objects;
  const listed = Array.isArray(placed) ? `${placed.length} lying in the cell` : "unknown to the robot";
  const el = $("placed");
  const rejected = occupancy?.placed_rejected;
  el.classList.toggle("fault-text", Boolean(rejected));
  el.textContent = !robot ? "–"
    : rejected ? `${listed} · REFUSED by the occupancy channel: ${rejected}`
    : occupancy ? `${listed} · ${occupancy.placed_masked} masked by the occupancy channel`
    : listed;
}

// Robot commands: the gate's (or the monitor's) answer comes back as the event's ack.
function showAnswer(ack) {
  probe.lastCommandAnswer = ack;
  const el = $("command-answer");
  el.hidden = false;
  el.dataset.verdict = ack.verdict || "error";
  el.textContent = ack.error ? `refused: ${ack.error}` : `${ack.kind} ${ack.verdict}: ${ack.reason}`;
}

function sendJog(axis, sign) {
  const linear = [0, 0, 0];
  linear[axis] = sign * JOG_SPEED_MPS;
  jogSeq += 1;
  socket.emit("robot_command", { kind: "jog_cartesian", frame_id: $("jog-frame").value, linear_mps: linear,
    angular_radps: [0, 0, 0], goal_id: `dashboard-jog-${jogSeq}` }, showAnswer);
}

// While a button is held, a jog every JOG_PERIOD_MS; on release nothing more is sent and the robot
// stops by itself (the deadman), so a lost page or network cannot leave it moving.
function stopJog() {
  if (jogTimer !== null) clearInterval(jogTimer);
  jogTimer = null;
}

for (const button of document.querySelectorAll(".jog-buttons button")) {
  const axis = Number(button.dataset.axis);
  const sign = Number(button.dataset.sign);
  button.addEventListener("pointerdown", () => {
    stopJog();
    sendJog(axis, sign);
    jogTimer = setInterval(() => sendJog(axis, sign), JOG_PERIOD_MS);
  });
  for (const end of ["pointerup", "pointerleave", "pointercancel"]) button.addEventListener(end, stopJog);
}
window.addEventListener("blur", stopJog);

// Go to a pose: the server plans the motion and the gate answers (shown like every answer). The
// controls are offered to everyone; the gate refuses roles other than operator and admin.
let gotoSeq = 0;
function sendGoto(target) {
  stopJog();
  gotoSeq += 1;
  socket.emit("robot_command", { kind: "goto", ...target, goal_id: `dashboard-goto-${gotoSeq}` }, showAnswer);
}

function fillGoto(info) {
  if (!info || !info.joint_names.length) return; // this server plans no go-to
  probe.namedPoses = info.named_poses;
  const poses = $("goto-poses");
  poses.replaceChildren();
  for (const name of Object.keys(info.named_poses)) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.pose = name;
    button.textContent = `go to ${name}`;
    button.addEventListener("click", () => sendGoto({ named_pose: name }));
    poses.append(button);
  }
  const inputs = $("goto-joint-inputs");
  inputs.replaceChildren();
  info.joint_names.forEach((joint, i) => {
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.required = true;
    input.dataset.joint = String(i);
    input.setAttribute("aria-label", `${joint} (rad)`);
    input.title = joint;
    inputs.append(input);
  });
  $("goto-tcp").hidden = !info.tcp_targets;
  $("goto").hidden = false;
}
fetch("/api/robot/named_poses", { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).then(fillGoto);

$("goto-joints").addEventListener("submit", (event) => {
  event.preventDefault();
  const positions = [...$("goto-joint-inputs").querySelectorAll("input")].map((input) => Number(input.value));
  sendGoto({ positions });
});
$("goto-tcp").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  sendGoto({ tcp_position_m: ["x", "y", "z"].map((axis) => Number(form.elements[axis].value)) });
});

// The joint and TCP fields start at where the robot is, so a typed target is a small edit of it.
function prefillGoto(robot) {
  if (!robot) return;
  for (const input of $("goto-joint-inputs").querySelectorAll("input")) {
    if (input.value === "") input.value = robot.q[Number(input.dataset.joint)].toFixed(3);
  }
  const form = $("goto-tcp");
  if (robot.tcp && form.elements.x.value === "") {
    ["x", "y", "z"].forEach((axis, i) => { form.elements[axis].value = robot.tcp[i].toFixed(3); });
  }
}

// The robot program: its state comes with every twin_state (absent: this server runs none, the
// controls stay hidden); pause and resume are program_control events, the answer shown like a
// command's.
function describeProgram(status) {
  const step = `step ${status.step + 1} of ${status.steps} (${status.goal_id})`;
  if (status.state === "running") return `running: ${step}`;
  if (status.state === "pausing") return `pausing: finishing ${step}`;
  if (status.state === "paused") {
    return `paused before ${step}: ${status.reason || "the robot is free for a go-to or a jog"}`;
  }
  return `returning to where ${step} starts${status.reason ? ` (${status.reason})` : ""}`;
}
function showProgram(status) {
  probe.program = status || null;
  $("program").hidden = !status;
  if (!status) return;
  const el = $("program-state");
  el.dataset.state = status.state;
  el.textContent = describeProgram(status);
}
function sendProgram(action) {
  socket.emit("program_control", { action }, (ack) => {
    probe.lastProgramAnswer = ack;
    const el = $("command-answer");
    el.hidden = false;
    el.dataset.verdict = ack.accepted ? "accepted" : "rejected";
    el.textContent = ack.error ? `refused: ${ack.error}` : `program ${action} ${ack.accepted ? "accepted" : "refused"}: ${ack.reason}`;
  });
}
$("program-pause").addEventListener("click", () => sendProgram("pause"));
$("program-resume").addEventListener("click", () => sendProgram("resume"));

$("stop-button").addEventListener("click", () => {
  stopJog();
  socket.emit("robot_command", { kind: "stop", reason: "dashboard stop button" }, showAnswer);
});

const socket = subscribeTwin(onTwin, (status) => {
  linkStatus = status;
  const el = $("link-status");
  el.dataset.status = status;
  el.textContent = { connected: "live", stale: "stale", disconnected: "disconnected" }[status];
  showMode(lastTwin?.safety);
  showReset(lastTwin?.safety);
});
