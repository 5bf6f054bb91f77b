// Remote expert: join a worker's XR session, watch the worker's camera (WebRTC, relayed by the
// server) next to the cell's 3D twin, place arrows, circles, labels and freehand strokes on the
// camera view, live or on a frozen frame.
// `/expert?session=<id>` joins that session.
import { TwinView } from "./twin3d.js";
import { subscribeTwin, signOut, openTwinChannel, probe } from "./twin_socket.js";
import { AnnotationSet, ICE_SERVERS, audioPackets, drawAnnotations, negotiate, request, setMuted }
  from "./xr_session.js";

const $ = (id) => document.getElementById(id);
const video = $("expert-video");
const layer = $("expert-annotations");
const state = { me: null, cell: null, session: null, pc: null, videoId: null, tool: "arrow", listed: null,
  freeze: null };
probe.call = { session: null, rtc: "new", videoId: null, annotations: 0, frozen: false };
const MAX_STROKE_POINTS = 256;  // xr_server.annotations.MAX_STROKE_POINTS

const annotations = new AnnotationSet((set) => {
  probe.call.annotations = set.list().length;
  redraw();
  listAnnotations(set.list());
});

function redraw() {
  drawAnnotations(layer, annotations.list(), video.videoWidth || 640, video.videoHeight || 480);
}
video.addEventListener("loadedmetadata", redraw);
video.addEventListener("resize", redraw);

function status(text) { $("expert-status").textContent = text; }

const twin = new TwinView($("expert-twin"), { onRender: () => { probe.rendered += 1; } });
const socket = subscribeTwin((state) => twin.update(state), (link) => {
  const el = $("link-status");
  el.dataset.status = link;
  el.textContent = link === "connected" ? "live" : link;
});

// ------------------------------------------------------------------------------------ sessions
async function refreshSessions() {
  if (!state.cell || state.session) return;
  try {
    const { sessions } = await request(socket, "session_list", { cell: state.cell });
    const key = JSON.stringify(sessions.map((s) => [s.session, s.worker, !!s.video]));
    if (key === state.listed || state.session) return;  // unchanged: keep the buttons under the pointer
    state.listed = key;
    const list = $("session-list");
    list.replaceChildren(...sessions.map((s) => {
      const item = document.createElement("li");
      const join = document.createElement("button");
      join.type = "button";
      join.textContent = `Join ${s.worker}`;
      join.dataset.session = s.session;
      join.addEventListener("click", () => joinSession(s.session));
      item.append(join, ` ${s.session}${s.video ? " · video" : ""}`);
      return item;
    }));
    if (!sessions.length) list.replaceChildren(Object.assign(document.createElement("li"), { textContent: "none" }));
  } catch (err) {
    status(`cannot list sessions: ${err.message}`);
  }
}

async function joinSession(session) {
  try {
    const joined = await request(socket, "session_join", { session, role: "expert" });
    state.session = probe.call.session = joined.session;
    $("session-list").replaceChildren(Object.assign(document.createElement("li"),
      { textContent: `in session ${joined.session} of ${joined.worker}` }));
    annotations.reset(joined.annotations);
    onSessionState(joined);
  } catch (err) {
    status(`cannot join: ${err.message}`);
  }
}

function showRecording(recording) {
  state.recording = probe.call.recording = recording ?? null;
  $("record").disabled = !state.session;
  $("record").setAttribute("aria-pressed", String(!!state.recording));
  $("record").textContent = state.recording ? "Stop recording" : "Record session";
  $("recording-status").hidden = !state.recording;
}
$("record").addEventListener("click", () => {
  if (!state.session) return;
  request(socket, "session_record", { session: state.session, record: !state.recording })
    .catch((err) => status(`recording: ${err.message}`));
});

// The session's video cap: every video the server sends in the session (to each expert, and the
// worker's composited view) at most this, at once; the cell's and each connection's caps apply too.
function showVideoCap(kbps) {
  probe.call.videoCap = kbps ?? null;
  const select = $("video-cap");
  select.disabled = !state.session;
  const value = kbps == null ? "" : String(kbps);
  if (![...select.options].some((o) => o.value === value)) select.append(new Option(`${kbps} kbit/s`, value));
  select.value = value;
}
$("video-cap").addEventListener("change", () => {
  if (!state.session) return;
  const value = $("video-cap").value;
  request(socket, "session_video_cap", { session: state.session, max_bitrate_kbps: value === "" ? null : Number(value) })
    .then((answer) => { $("video-cap-status").textContent = `applied to ${answer.videos} video${answer.videos === 1 ? "" : "s"}`; })
    .catch((err) => { $("video-cap-status").textContent = `refused: ${err.message}`; });
});

function onSessionState(s) {
  if (s.session !== state.session) return;
  showRecording(s.recording);
  showVideoCap(s.max_bitrate_kbps);
  if (!s.video) {
    status(s.worker_present ? `waiting for ${s.worker}'s camera…` : `${s.worker} is away`);
    return;
  }
  if (s.video !== state.videoId) subscribe(s.video);
}

async function subscribe(videoId) {
  state.videoId = probe.call.videoId = videoId;
  state.pc?.close();
  const pc = new RTCPeerConnection({ iceServers: ICE_SERVERS });
  state.pc = pc;
  pc.addTransceiver("video", { direction: "recvonly" });
  // Talk to the worker: the microphone if there is one, else listen only.
  state.mic ??= await navigator.mediaDevices.getUserMedia({ audio: true }).catch(() => null);
  const mic = state.mic?.getAudioTracks()[0];
  if (mic) pc.addTrack(mic, state.mic);
  else pc.addTransceiver("audio", { direction: "recvonly" });
  $("mute").hidden = !mic;
  pc.addEventListener("track", (event) => {
    if (event.track.kind === "audio") $("expert-audio").srcObject = new MediaStream([event.track]);
    else video.srcObject = event.streams[0] ?? new MediaStream([event.track]);
  });
  pc.addEventListener("connectionstatechange", () => {
    probe.call.rtc = pc.connectionState;
    status(`session ${state.session} · video ${pc.connectionState}`);
  });
  openTwinChannel(socket, pc);  // the twin over an unordered data channel while the call lasts
  try {
    await negotiate(socket, pc, state.session);
  } catch (err) {
    status(`video refused: ${err.message}`);
  }
}

socket.on("session_state", onSessionState);
socket.on("annotation", (message) => {
  if (message.annotation.session === state.session) annotations.apply(message);
});
socket.on("connect", () => {
  if (state.session) {  // a reconnect: the server dropped us from the session
    const session = state.session;
    state.session = null;
    state.videoId = null;
    joinSession(session);
  }
});

// --------------------------------------------------------------------------------- annotating
for (const button of document.querySelectorAll("#tools [data-tool]")) {
  button.addEventListener("click", () => {
    state.tool = button.dataset.tool;
    for (const b of document.querySelectorAll("#tools [data-tool]")) b.setAttribute("aria-pressed", String(b === button));
  });
}

function uv(event) {
  const r = layer.getBoundingClientRect();
  const clamp = (x) => Math.min(1, Math.max(0, x));
  return [clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)];
}

// Freeze frame: the picture holds still at once (the stream goes on underneath) and the server
// pins the worker's camera pose of that moment (`freeze_frame`); what is drawn on the frozen
// frame carries that freeze id, so it is anchored with that pose however long the drawing takes.
function showFrozen(frozen) {
  probe.call.frozen = frozen;
  $("freeze").setAttribute("aria-pressed", String(frozen));
  $("freeze").textContent = frozen ? "Back to live" : "Freeze frame";
  if (frozen) video.pause();
  else video.play().catch(() => {});
}
$("freeze").addEventListener("click", () => {
  if (probe.call.frozen) {
    state.freeze = null;
    showFrozen(false);
    return;
  }
  showFrozen(true);
  // The id arrives a round trip later; a mark finished before that waits for it.
  const pending = request(socket, "freeze_frame", { session: state.session }).then((answer) => answer.freeze);
  state.freeze = pending;
  pending.catch((err) => {
    if (state.freeze !== pending) return;
    state.freeze = null;
    showFrozen(false);
    $("annotation-error").textContent = `freeze: ${err.message}`;
    $("annotation-error").hidden = false;
  });
});

// Thin a stroke out to at most MAX_STROKE_POINTS, keeping its ends.
function thin(points) {
  if (points.length <= MAX_STROKE_POINTS) return points;
  const step = (points.length - 1) / (MAX_STROKE_POINTS - 1);
  return Array.from({ length: MAX_STROKE_POINTS }, (_, i) => points[Math.round(i * step)]);
}

let start = null;
let path = null;
layer.addEventListener("pointerdown", (event) => {
  start = uv(event);
  path = [start];
  layer.setPointerCapture?.(event.pointerId);
});
layer.addEventListener("pointermove", (event) => {
  if (!path || state.tool !== "stroke") return;
  // Every position the pointer passed, not only the last of each frame (a busy page coalesces them).
  for (const move of event.getCoalescedEvents?.() ?? [event]) {
    const p = uv(move), last = path[path.length - 1];
    if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 0.004) path.push(p);
  }
});
layer.addEventListener("pointerup", async (event) => {
  if (!start || !state.session) return;
  const end = uv(event);
  const from = start;
  const drawn = path;
  start = null;
  path = null;
  const text = $("label-text").value.trim();
  const aspect = (video.videoHeight || 480) / (video.videoWidth || 640);
  const drag = Math.hypot(end[0] - from[0], (end[1] - from[1]) * aspect);
  const payload = { session: state.session, kind: state.tool, text, color: "#ffcc00" };
  if (state.tool === "stroke") {
    if (drawn[drawn.length - 1] !== end) drawn.push(end);
    if (drawn.length < 2 || drag < 0.005 && drawn.length < 3) return;
    payload.points = thin(drawn);
  } else if (state.tool === "arrow") {
    if (drag < 0.01) return;
    payload.points = [from, end];
  } else if (state.tool === "circle") {
    if (drag < 0.005) return;
    payload.points = [from];
    payload.radius = Math.min(1, drag);
  } else {
    payload.points = [end];
    payload.text = text || "here";
  }
  try {
    if (state.freeze !== null) payload.freeze = await state.freeze;
    await request(socket, "annotation_create", payload);
    $("annotation-error").hidden = true;
  } catch (err) {
    $("annotation-error").textContent = err.message;
    $("annotation-error").hidden = false;
  }
});

function listAnnotations(list) {
  $("annotation-list").replaceChildren(...list.map((a) => {
    const item = document.createElement("li");
    item.textContent = `${a.kind}${a.text ? " “" + a.text + "”" : ""} · ${a.author}`;
    if (a.author === state.me) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Delete";
      remove.addEventListener("click", () => request(socket, "annotation_delete", { session: state.session, id: a.id })
        .catch((err) => { $("annotation-error").textContent = err.message; $("annotation-error").hidden = false; }));
      item.append(" ", remove);
    }
    return item;
  }));
}

// ------------------------------------------------------------------------------------ start
$("sign-out").addEventListener("click", signOut);
$("mute").addEventListener("click", () => {
  const muted = setMuted(state.mic, $("mute").getAttribute("aria-pressed") !== "true");
  $("mute").setAttribute("aria-pressed", String(muted));
  $("mute").textContent = muted ? "Unmute" : "Mute";
});
setInterval(async () => { probe.call.audio = await audioPackets(state.pc); }, 1000);
(async () => {
  const me = await (await fetch("/api/me", { credentials: "same-origin" })).json();
  state.me = me.username;
  state.cell = me.cell;
  $("user").textContent = `${me.username} (${me.roles.join(", ")})`;
  $("cell-name").textContent = me.cell;
  const wanted = new URLSearchParams(window.location.search).get("session");
  if (wanted) await joinSession(wanted);
  else await refreshSessions();
  setInterval(refreshSessions, 2000);
})();
