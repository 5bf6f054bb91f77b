// Live twin_state over Socket.IO (namespace /xr). The HttpOnly session cookie authenticates the
// connection; a refused connection (no or expired token) goes back to the sign-in page.
import { io } from "socket.io-client";

/** Test and debugging hook: counts of received messages and rendered frames. */
export const probe = (window.__xrcell = { twinCount: 0, lastTwin: null, rendered: 0,
  twinTransport: "socketio", twinChannelCount: 0 });

/** Seconds without a twin_state after which the view says the data is stale. */
export const STALE_AFTER_S = 1.0;

/**
 * Subscribe to twin_state.
 * @param {(twin: object) => void} onTwin called for every message.
 * @param {(status: "connected"|"disconnected"|"stale") => void} onStatus link status changes.
 */
export function subscribeTwin(onTwin, onStatus) {
  const socket = io("/xr", { withCredentials: true });
  let lastAt = 0;
  let status = "disconnected";
  const setStatus = (next) => {
    if (next !== status) { status = next; onStatus(next); }
  };
  socket.on("connect", () => setStatus("connected"));
  socket.on("disconnect", () => setStatus("disconnected"));
  socket.on("connect_error", (err) => {
    setStatus("disconnected");
    if (/token/.test(err.message)) {
      const next = window.location.pathname + window.location.search;
      window.location.assign(`/login?next=${encodeURIComponent(next)}`);
    }
  });
  let lastT = -Infinity;
  const receive = (twin, unordered = false) => {
    if (unordered && !(twin.t >= lastT)) return;  // an older state overtaken on the data channel
    lastT = twin.t;
    lastAt = performance.now();
    probe.twinCount += 1;
    probe.lastTwin = twin;
    if (socket.connected) setStatus("connected");
    onTwin(twin);
  };
  socket.on("twin_state", (twin) => receive(twin));
  socket.xrcellTwin = receive;  // for openTwinChannel
  setInterval(() => {
    if (status === "connected" && performance.now() - lastAt > STALE_AFTER_S * 1000) setStatus("stale");
  }, 250);
  onStatus(status);
  return socket;
}

/**
 * Take the twin stream off TCP for the life of a session peer connection: create, before the
 * offer, the data channel "twin" (unordered, no retransmits) on `pc`; while it is open the server
 * sends every twin_state there instead of on `socket` (docs/xr_server.md, "The twin over a WebRTC
 * data channel"). A state overtaken by a newer one on the way is dropped.
 */
export function openTwinChannel(socket, pc) {
  const channel = pc.createDataChannel("twin", { ordered: false, maxRetransmits: 0 });
  channel.addEventListener("open", () => { probe.twinTransport = "datachannel"; });
  channel.addEventListener("close", () => { probe.twinTransport = "socketio"; });
  channel.addEventListener("message", (event) => {
    let twin;
    try { twin = JSON.parse(event.data); } catch { return; }
    probe.twinChannelCount += 1;
    socket.xrcellTwin?.(twin, true);
  });
  return channel;
}

/** POST /api/logout, then the sign-in page. */
export async function signOut() {
  await fetch("/api/logout", { method: "POST", credentials: "same-origin" }).catch(() => {});
  window.location.assign("/login");
}

/** "1.23 m" style formatting; "–" for null/undefined. */
export function fmt(value, digits = 2, unit = "") {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  return `${Number(value).toFixed(digits)}${unit ? " " + unit : ""}`;
}
