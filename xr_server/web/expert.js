// Remote expert: join a worker's XR session, watch the worker's camera (WebRTC, relayed by the
// server) next to the cell's 3D twin, place arrows, circles and labels on the camera view.
// `/expert?session=<id>` joins that session.
import { TwinView } from "./twin3d.js";
import { subscribeTwin, signOut, probe } from "./twin_socket.js";
import { AnnotationSet, ICE_SERVERS, drawAnnotations, negotiate, request } from "./xr_session.js";

const $ = (id) => document.getElementById(id);
const video = $("expert-video");
const layer = $("expert-annotations");
const state = { me: null, cell: null, session: null, pc: null, videoId: null, tool: "arrow", listed: null };
probe.call = { session: null, rtc: "new", videoId: null, annotations: 0 };

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

function onSessionState(s) {
  if (s.session !== state.session) return;
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
  pc.addEventListener("track", (event) => {
    video.srcObject = event.streams[0] ?? new MediaStream([event.track]);
  });
  pc.addEventListener("connectionstatechange", () => {
    probe.call.rtc = pc.connectionState;
    status(`session ${state.session} · video ${pc.connectionState}`);
  });
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

let start = null;
layer.addEventListener("pointerdown", (event) => { start = uv(event); });
layer.addEventListener("pointerup", async (event) => {
  if (!start || !state.session) return;
  const end = uv(event);
  const from = start;
  start = null;
  const text = $("label-text").value.trim();
  const aspect = (video.videoHeight || 480) / (video.videoWidth || 640);
  const drag = Math.hypot(end[0] - from[0], (end[1] - from[1]) * aspect);
  const payload = { session: state.session, kind: state.tool, text, color: "#ffcc00" };
  if (state.tool === "arrow") {
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
