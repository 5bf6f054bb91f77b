// HMI for AR glasses and shop-floor screens: the safety mode, unmistakable, over the 3D twin.
// Without fresh data the badge says so (black): the HMI never shows a stale "full speed".
// "Call an expert" opens an XR session: the camera goes to the server over WebRTC, the experts'
// annotations come back over Socket.IO and are drawn over the camera view (and, when the server
// anchored them in 3D, as pins in the twin).
// "Enter AR" (when the browser offers WebXR immersive-ar) shows the twin in the room, registered
// by the alignment step; the HMI then reports its camera pose (`hmi_camera`, 10 Hz) while in a
// session. "Glasses view" (or /hmi?view=composited) is for monocular glasses: the server draws
// the twin into the camera image and sends it back (`rtc_offer` with `composited: true`); the
// page shows that video instead of rendering 3D.
import { TwinView, MODE_COLORS, MODE_LABELS } from "./twin3d.js";
import { subscribeTwin, fmt, openTwinChannel, probe } from "./twin_socket.js";
import { AnnotationSet, ICE_SERVERS, audioPackets, drawAnnotations, negotiate, request, setMuted }
  from "./xr_session.js";
import { ArMode, CameraReporter, StoredAlignment, arSupported, manualCamera } from "./hmi_xr.js";
import { VoiceCommands, enableDwell } from "./hands_free.js";

const $ = (id) => document.getElementById(id);
const view = new TwinView($("hmi-twin"), { background: 0x0d1117, onRender: () => { probe.rendered += 1; } });
probe.view = view; // for the end-to-end tests
let linkStatus = "disconnected";
let lastTwin = null;

// The robot program's state from the twin, so a worker knows when the program is paused and the
// robot moves only on a person's command (absent: the server runs no program).
const PROGRAM_LABELS = {
  running: "Program running",
  pausing: "Program pausing at the end of this step",
  paused: "Program paused: the robot moves only on an operator's command",
  returning: "Program resuming: the robot returns to where the next step starts",
};

function showProgram(program) {
  const el = $("hmi-program");
  el.hidden = !program;
  if (!program) return;
  el.dataset.state = program.state;
  el.textContent = PROGRAM_LABELS[program.state] || program.state;
}

function show() {
  showProgram(linkStatus === "connected" ? lastTwin?.program : null);
  const badge = $("hmi-badge");
  const s = lastTwin?.safety;
  if (linkStatus !== "connected" || !s) {
    badge.dataset.mode = "";
    badge.textContent = linkStatus === "stale" ? "NO DATA" : linkStatus === "connected" ? "NO SAFETY STATE" : "NO CONNECTION";
    view.setBanner({ text: badge.textContent, color: "#000000" });
    return;
  }
  badge.dataset.mode = s.mode;
  badge.textContent = MODE_LABELS[s.mode] || s.mode;
  view.setBanner({ text: badge.textContent, color: MODE_COLORS[s.mode] || "#000000" });
  $("hmi-speed").textContent = `${Math.round(s.speed_scale * 100)} %`;
  $("hmi-distance").textContent = fmt(s.separation_m, 2, "m");
  $("hmi-sp").textContent = fmt(s.s_p_m, 2, "m");
  $("hmi-reason").textContent = s.reason;
}

const socket = subscribeTwin((twin) => { lastTwin = twin; view.update(twin); show(); },
  (status) => { linkStatus = status; show(); });

// ------------------------------------------------------------------------------ expert session
const call = { session: null, pc: null, stream: null, experts: [], cell: null };
probe.call = { session: null, rtc: "new", annotations: 0, experts: [] };
const camera = $("hmi-camera");
const annotations = new AnnotationSet((set) => {
  probe.call.annotations = set.list().length;
  redraw();
  view.setAnnotations(set.list());
});

function redraw() {
  drawAnnotations($("hmi-annotations"), annotations.list(), camera.videoWidth || 640, camera.videoHeight || 480);
}
camera.addEventListener("loadedmetadata", redraw);

function callStatus(text) {
  $("call-status").textContent = text ?? (call.session
    ? `session ${call.session} · video ${probe.call.rtc} · ${call.experts.length ? "expert: " + call.experts.join(", ") : "waiting for an expert"}`
    : "no expert session");
}

async function publish() {
  call.pc?.close();
  const pc = new RTCPeerConnection({ iceServers: ICE_SERVERS });
  call.pc = pc;
  const track = call.stream.getVideoTracks()[0];
  track.contentHint = "detail";  // keep the resolution, let the frame rate give way
  // The composited view comes back on the camera's own transceiver: it must be sendrecv.
  const composited = glasses.on;
  const sender = composited
    ? pc.addTransceiver(track, { direction: "sendrecv", streams: [call.stream] }).sender
    : pc.addTrack(track, call.stream);
  // The microphone to the experts; their voices come back on the same audio section.
  const mic = call.stream.getAudioTracks()[0];
  if (mic) pc.addTrack(mic, call.stream);
  else pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addEventListener("track", (event) => {
    if (event.track.kind === "audio") $("talkback").srcObject = new MediaStream([event.track]);
    if (event.track.kind === "video" && composited) $("hmi-composited").srcObject = new MediaStream([event.track]);
  });
  pc.addEventListener("connectionstatechange", () => { probe.call.rtc = pc.connectionState; callStatus(); });
  openTwinChannel(socket, pc);  // the twin over an unordered data channel while the call lasts
  await negotiate(socket, pc, call.session, composited ? { composited: true } : {});
  probe.call.composited = composited;
  const parameters = sender.getParameters();
  parameters.degradationPreference = "maintain-resolution";
  if (parameters.encodings?.[0]) parameters.encodings[0].maxBitrate = 2_000_000;
  await sender.setParameters(parameters).catch(() => {});
}

async function startCall() {
  $("call-expert").disabled = true;
  callStatus("starting the camera…");
  try {
    call.stream ??= await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: true })
      .catch(() => navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false }));
    $("mute").hidden = !call.stream.getAudioTracks().length;
    camera.srcObject = call.stream;
    $("hmi-view").hidden = false;
    call.cell ??= await cellName;
    let joined = null;
    if (call.session) {  // after a reconnect: back into the same session if it is still open
      joined = await request(socket, "session_join", { session: call.session, role: "worker" }).catch(() => null);
    }
    joined ??= await request(socket, "session_create", { cell: call.cell });
    call.session = probe.call.session = joined.session;
    call.experts = probe.call.experts = joined.experts;
    showRecording(joined.recording);
    annotations.reset(joined.annotations);
    reportManualCamera(true);
    await publish();
    callStatus();
  } catch (err) {
    callStatus(`call failed: ${err.message}`);
    $("call-expert").disabled = false;
  }
}

$("call-expert").addEventListener("click", startCall);
$("mute").addEventListener("click", () => {
  const muted = setMuted(call.stream, $("mute").getAttribute("aria-pressed") !== "true");
  $("mute").setAttribute("aria-pressed", String(muted));
  $("mute").textContent = muted ? "Unmute" : "Mute";
});
setInterval(async () => { probe.call.audio = await audioPackets(call.pc); }, 1000);
socket.on("connect", () => { if (call.session) startCall(); });
socket.on("session_state", (state) => {
  if (state.session !== call.session) return;
  call.experts = probe.call.experts = state.experts;
  showRecording(state.recording);
  callStatus();
});

// The worker is always told when the session is recorded, and may stop it.
function showRecording(recording) {
  call.recording = probe.call.recording = recording ?? null;
  $("recording").hidden = !call.recording;
}
$("stop-recording").addEventListener("click", () => {
  if (call.session && call.recording) {
    request(socket, "session_record", { session: call.session, record: false })
      .catch((err) => callStatus(`cannot stop the recording: ${err.message}`));
  }
});
socket.on("annotation", (message) => {
  if (message.annotation.session === call.session) annotations.apply(message);
});

// ------------------------------------------------------------------- alignment, AR, camera pose
const cellName = fetch("/api/me", { credentials: "same-origin" }).then((r) => r.json()).then((me) => me.cell);
probe.camera = {};
const reporter = new CameraReporter(socket, () => call.session, probe.camera);
let alignment = null;  // StoredAlignment of the cell, once its name is known
let ar = null;         // ArMode while the page may enter AR
probe.xr = { supported: false, presenting: false, step: "none", alignment: null };

/** Outside AR: the camera pose the worker set by hand, if any (force: send now, unthrottled). */
function reportManualCamera(force = false) {
  if (ar?.session || !alignment) return;
  const manual = manualCamera(alignment.look, (camera.videoWidth / camera.videoHeight) || 4 / 3);
  if (manual) reporter.report(manual.pose, manual.fov, "manual", force);
}

const STEP_TEXT = {
  none: "Not aligned: the twin is hidden in AR until you align it.",
  origin: "Step 1 of 2: aim at the floor where the cell origin is, then tap (or “Mark this point”); "
    + "or look at the cell's marker and press “Align with marker”.",
  axis: "Step 2 of 2: aim at a point on the floor along the cell's x axis (at least 10 cm away), then tap.",
  placed: "Aligned. Nudge the twin until it sits on the real cell, or redo the alignment.",
};

function showAlignment() {
  if (!alignment) return;
  const record = alignment.record;
  const saved = record.saved_at ? new Date(record.saved_at * 1000).toLocaleString() : "";
  const parts = [];
  parts.push(alignment.placed ? `cell '${alignment.cell}' is aligned in this room (saved ${saved})`
    : `cell '${alignment.cell}' is not aligned in this room yet`);
  if (alignment.look) parts.push("camera pose set by hand");
  $("align-status").textContent = parts.join(" · ");
  const inAr = Boolean(ar?.session);
  $("align-ar").hidden = !inAr;
  $("align-look").hidden = inAr;
  if (ar) {
    $("align-step").textContent = ar.error || STEP_TEXT[ar.step];
    $("align-mark").hidden = !(ar.step === "origin" || ar.step === "axis");
    const marking = ar.step === "origin" || ar.step === "axis";
    $("align-redo").textContent = marking ? "Start again" : alignment.placed ? "Redo alignment" : "Align now";
    document.querySelector(".align-nudges").hidden = !alignment.placed || marking;
  }
  const look = alignment.look;
  if (look) {
    const form = $("align-look");
    [form.x.value, form.y.value, form.z.value] = look.position_m;
    form.yaw_deg.value = look.yaw_deg; form.pitch_deg.value = look.pitch_deg; form.hfov_deg.value = look.hfov_deg;
  }
  const marker = ar?.marker;
  $("align-marker").disabled = Boolean(marker?.running);
  $("align-marker-status").textContent = !marker ? ""
    : marker.running ? "Measuring the marker: look at it and hold still…"
      : marker.error ? `Not aligned with the marker: ${marker.error}`
        : marker.answer ? markerResidual(marker.answer) : "";
  Object.assign(probe.xr, { presenting: inAr, step: ar ? ar.step : "none",
    alignment: alignment.record, error: ar?.error || "", marker: marker ?? null,
    viewerPosesSent: ar?.viewerPosesSent ?? 0 });
}

/** The residual of a marker registration, in words. */
function markerResidual(a) {
  return `Aligned with marker ${a.marker}: spread ${a.spread_mm.toFixed(1)} mm, ${a.spread_deg.toFixed(2)}° `
    + `over ${a.frames_used} frames, reprojection ${a.reprojection_px.toFixed(2)} px, tilt ${a.tilt_deg.toFixed(1)}°`;
}

cellName.then(async (cell) => {
  alignment = new StoredAlignment(cell);
  probe.xr.supported = await arSupported();
  if (probe.xr.supported) {
    ar = new ArMode({ view, alignment, overlayRoot: document.body,
      onCamera: (pose, fov) => reporter.report(pose, fov, "xr"),
      onChange: () => {
        document.body.classList.toggle("in-ar", Boolean(ar.session));
        $("enter-ar").textContent = ar.session ? "Exit AR" : "Enter AR";
        if (ar.session && ar.step !== "placed") $("align-panel").hidden = false;
        showAlignment();
      } });
    $("enter-ar").hidden = false;
  }
  showAlignment();
  probe.ready = true;
});

// A tap on the page's controls in the DOM overlay is not also an XR `select` (a floor mark).
document.addEventListener("beforexrselect", (event) => {
  if (event.target.closest?.("button, input, label, form, .align-panel, .hmi-call")) event.preventDefault();
});
$("enter-ar").addEventListener("click", async () => {
  if (ar.session) { ar.end(); return; }
  if (glasses.on) setGlasses(false);
  try {
    await ar.start();
  } catch (err) {
    $("align-status").textContent = `cannot enter AR: ${err.message}`;
    $("align-panel").hidden = false;
  }
});
$("align").addEventListener("click", () => { $("align-panel").hidden = !$("align-panel").hidden; showAlignment(); });
$("align-close").addEventListener("click", () => { $("align-panel").hidden = true; });
$("align-mark").addEventListener("click", () => ar?.mark());
$("align-redo").addEventListener("click", () => ar?.redo());
// The server measures the marker in the call's video: start the call first if need be.
$("align-marker").addEventListener("click", () => {
  if (!ar?.session) return;
  ar.registerWithMarker(
    (pose) => { if (call.session && socket.connected) socket.emit("xr_viewer_pose", { session: call.session, ...pose }); },
    async () => {
      if (!call.session || !call.pc) await startCall();
      if (!call.session) throw new Error(`the call did not start (${$("call-status").textContent})`);
      // the server measures frames that arrive from now on: wait (up to 10 s) for the video to flow
      for (let i = 0; i < 100 && probe.call.rtc !== "connected"; i += 1) await new Promise((r) => setTimeout(r, 100));
      if (probe.call.rtc !== "connected") throw new Error(`the video did not connect (${probe.call.rtc})`);
      return request(socket, "marker_align", { session: call.session });
    });
});
for (const button of document.querySelectorAll("[data-nudge]")) {
  button.addEventListener("click", () => ar?.nudge(button.dataset.nudge));
}
$("align-look").addEventListener("submit", (event) => {
  event.preventDefault();
  const f = event.target;
  const n = (name) => Number(f[name].value);
  const look = { position_m: [n("x"), n("y"), n("z")], yaw_deg: n("yaw_deg"), pitch_deg: n("pitch_deg"),
    hfov_deg: n("hfov_deg") };
  if (![...look.position_m, look.yaw_deg, look.pitch_deg, look.hfov_deg].every(Number.isFinite)
      || look.hfov_deg < 1 || look.hfov_deg > 179) {
    $("align-status").textContent = "camera pose not saved: every field needs a number, the field of view 1 to 179°";
    return;
  }
  alignment.update({ look });
  showAlignment();
  reportManualCamera(true);
});
$("align-look-clear").addEventListener("click", () => { alignment.update({ look: null }); showAlignment(); });

// ---------------------------------------------------------------- glasses view (composited)
const glasses = { on: false };
probe.call.composited = false;

/** Switch the composited view on or off; it needs the call (camera and session), so it starts it. */
async function setGlasses(on) {
  glasses.on = on;
  document.body.classList.toggle("composited", on);
  $("glasses-view").setAttribute("aria-pressed", String(on));
  $("hmi-composited-view").hidden = !on;
  $("hmi-annotations").hidden = on;  // the server draws them into the composited picture
  view.paused = on;                  // no 3D rendering on the glasses: the server composites
  if (!on) $("hmi-composited").srcObject = null;
  if (call.session && call.stream) {
    try { await publish(); } catch (err) { callStatus(`video failed: ${err.message}`); }
  } else if (on) {
    await startCall();
  }
}
$("glasses-view").addEventListener("click", () => setGlasses(!glasses.on));
if (new URLSearchParams(window.location.search).get("view") === "composited") setGlasses(true);

// ------------------------------------------------------------------- stop, gaze and voice
// "Stop robot" asks the safety monitor for a latched protective stop (any signed-in user may; a
// supervisor resets it). The page shows the answer; the badge shows the stop when it happens.
probe.handsFree = { dwellClicks: 0, voice: "off", robotAnswer: null };
$("stop-robot").addEventListener("click", () => {
  $("robot-answer").textContent = "stop requested…";
  socket.emit("robot_command", { kind: "stop", reason: "HMI stop button" }, (ack) => showRobotAnswer("stop", ack));
});

// "Go to <pose>": one big control per named pose of the cell, pressed by gaze or by saying its
// label. The server plans the motion, the command gate answers (only operators and admins may
// move the robot: a worker sees the refusal).
function showRobotAnswer(what, ack) {
  probe.handsFree.robotAnswer = ack;
  $("robot-answer").dataset.verdict = ack?.verdict || "error";
  $("robot-answer").textContent = !ack ? "no answer from the server"
    : ack.error ? `${what} refused: ${ack.error}` : `${what} ${ack.verdict}: ${ack.reason}`;
}
fetch("/api/robot/named_poses", { credentials: "same-origin" }).then((r) => (r.ok ? r.json() : null)).then((info) => {
  for (const name of Object.keys(info?.named_poses || {})) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "hmi-call-button";
    button.dataset.pose = name;
    button.dataset.dwell = "";
    button.dataset.voice = `go to ${name}`;
    button.textContent = `Go to ${name}`;
    button.addEventListener("click", () => {
      $("robot-answer").textContent = `go to ${name} requested…`;
      socket.emit("robot_command", { kind: "goto", named_pose: name, goal_id: `hmi-goto-${name}` },
        (ack) => showRobotAnswer(`go to ${name}`, ack));
    });
    $("goto-poses").append(button);
  }
});

// Gaze: resting the pointer (a head-moved cursor) on a [data-dwell] control for 1.2 s presses it.
enableDwell(document, { onFire: () => { probe.handsFree.dwellClicks += 1; } });

// Voice: the [data-voice] phrases, where the browser has speech recognition; glasses with their
// own voice system say the buttons' labels, which are the same words.
const voice = new VoiceCommands(document, (text) => { probe.handsFree.voice = text; $("voice-status").textContent = text; });
probe.handsFree.hear = (transcript) => voice.hear(transcript)?.phrase ?? null;  // the tests' seam
$("voice").hidden = !VoiceCommands.available();
$("voice").addEventListener("click", () => {
  const on = $("voice").getAttribute("aria-pressed") !== "true";
  if (on && !voice.start()) return;
  if (!on) voice.stop();
  $("voice").setAttribute("aria-pressed", String(on));
});
