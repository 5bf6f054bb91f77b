// HMI for AR glasses and shop-floor screens: the safety mode, unmistakable, over the 3D twin.
// Without fresh data the badge says so (black): the HMI never shows a stale "full speed".
// "Call an expert" opens an XR session: the camera goes to the server over WebRTC, the experts'
// annotations come back over Socket.IO and are drawn over the camera view.
import { TwinView, MODE_COLORS, MODE_LABELS } from "./twin3d.js";
import { subscribeTwin, fmt, probe } from "./twin_socket.js";
import { AnnotationSet, ICE_SERVERS, audioPackets, drawAnnotations, negotiate, request, setMuted }
  from "./xr_session.js";

const $ = (id) => document.getElementById(id);
const view = new TwinView($("hmi-twin"), { background: 0x0d1117, onRender: () => { probe.rendered += 1; } });
let linkStatus = "disconnected";
let lastTwin = null;

function show() {
  const badge = $("hmi-badge");
  const s = lastTwin?.safety;
  if (linkStatus !== "connected" || !s) {
    badge.dataset.mode = "";
    badge.textContent = linkStatus === "stale" ? "NO DATA" : linkStatus === "connected" ? "NO SAFETY STATE" : "NO CONNECTION";
    return;
  }
  badge.dataset.mode = s.mode;
  badge.textContent = MODE_LABELS[s.mode] || s.mode;
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
const annotations = new AnnotationSet((set) => { probe.call.annotations = set.list().length; redraw(); });

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
  const sender = pc.addTrack(track, call.stream);
  // The microphone to the experts; their voices come back on the same audio section.
  const mic = call.stream.getAudioTracks()[0];
  if (mic) pc.addTrack(mic, call.stream);
  else pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addEventListener("track", (event) => {
    if (event.track.kind === "audio") $("talkback").srcObject = new MediaStream([event.track]);
  });
  pc.addEventListener("connectionstatechange", () => { probe.call.rtc = pc.connectionState; callStatus(); });
  await negotiate(socket, pc, call.session);
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
    call.cell ??= (await (await fetch("/api/me", { credentials: "same-origin" })).json()).cell;
    let joined = null;
    if (call.session) {  // after a reconnect: back into the same session if it is still open
      joined = await request(socket, "session_join", { session: call.session, role: "worker" }).catch(() => null);
    }
    joined ??= await request(socket, "session_create", { cell: call.cell });
    call.session = probe.call.session = joined.session;
    call.experts = probe.call.experts = joined.experts;
    showRecording(joined.recording);
    annotations.reset(joined.annotations);
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
