// HMI for AR glasses and shop-floor screens: the safety mode, unmistakable, over the 3D twin.
// Without fresh data the badge says so (black): the HMI never shows a stale "full speed".
import { TwinView, MODE_COLORS, MODE_LABELS } from "./twin3d.js";
import { subscribeTwin, fmt, probe } from "./twin_socket.js";

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

subscribeTwin((twin) => { lastTwin = twin; view.update(twin); show(); }, (status) => { linkStatus = status; show(); });
