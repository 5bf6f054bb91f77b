// XR sessions in the browser: WebRTC offer/answer over Socket.IO (/xr) and the annotation overlay.
// aiortc takes no trickled ICE candidates: every offer is sent once ICE gathering is complete.

/** ICE servers of the pages' peer connections: none (host candidates on the plant LAN). */
export const ICE_SERVERS = [];

/** Resolve once `pc` has gathered all its ICE candidates. */
export function iceGatheringComplete(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === "complete") {
        pc.removeEventListener("icegatheringstatechange", check);
        resolve();
      }
    };
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/**
 * Emit `event` with `payload` and wait for the acknowledgement; a refusal ({event, error}) throws.
 * @returns {Promise<object>}
 */
export async function request(socket, event, payload) {
  const answer = await socket.timeout(15000).emitWithAck(event, payload);
  if (answer && answer.error) throw new Error(answer.error);
  return answer;
}

/**
 * Offer `pc`'s media to the server for `session` (all candidates included), apply the answer.
 * `options`: more `rtc_offer` fields, e.g. `{composited: true}` (the worker's composited view).
 */
export async function negotiate(socket, pc, session, options = {}) {
  await pc.setLocalDescription(await pc.createOffer());
  await iceGatheringComplete(pc);
  const answer = await request(socket, "rtc_offer", { ...options, session, type: "offer", sdp: pc.localDescription.sdp });
  await pc.setRemoteDescription({ type: answer.type, sdp: answer.sdp });
}

/** The annotations of a session, by id, kept current from `session_joined` and `annotation` events. */
export class AnnotationSet {
  constructor(onChange) {
    this.byId = new Map();
    this.onChange = onChange;
  }
  reset(list) {
    this.byId = new Map(list.map((a) => [a.id, a]));
    this.onChange(this);
  }
  apply(message) {
    if (message.op === "deleted") this.byId.delete(message.annotation.id);
    else this.byId.set(message.annotation.id, message.annotation);
    this.onChange(this);
  }
  list() { return [...this.byId.values()]; }
}

function svgEl(ns, name, attributes) {
  const el = document.createElementNS(ns, name);  // the namespace of the page's own <svg>
  for (const [k, v] of Object.entries(attributes)) el.setAttribute(k, String(v));
  return el;
}

/**
 * Draw `annotations` into `svg`, whose viewBox is the video's pixel size (width x height);
 * annotation points are normalised (u right, v down, 0 to 1).
 */
export function drawAnnotations(svg, annotations, width, height) {
  const ns = svg.namespaceURI;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const stroke = Math.max(3, width / 160);
  for (const a of annotations) {
    const g = svgEl(ns, "g", { "data-annotation": a.id, "data-kind": a.kind });
    const [u0, v0] = a.points[0];
    const x0 = u0 * width, y0 = v0 * height;
    if (a.kind === "arrow") {
      const x1 = a.points[1][0] * width, y1 = a.points[1][1] * height;
      const angle = Math.atan2(y1 - y0, x1 - x0), head = stroke * 5;
      g.append(svgEl(ns, "line", { x1: x0, y1: y0, x2: x1, y2: y1, stroke: a.color, "stroke-width": stroke,
        "stroke-linecap": "round" }));
      const p = (da) => `${x1 - head * Math.cos(angle + da)},${y1 - head * Math.sin(angle + da)}`;
      g.append(svgEl(ns, "polygon", { points: `${x1},${y1} ${p(0.45)} ${p(-0.45)}`, fill: a.color }));
    } else if (a.kind === "stroke") {
      g.append(svgEl(ns, "polyline", { points: a.points.map(([u, v]) => `${u * width},${v * height}`).join(" "),
        fill: "none", stroke: a.color, "stroke-width": stroke, "stroke-linecap": "round", "stroke-linejoin": "round" }));
    } else if (a.kind === "circle") {
      g.append(svgEl(ns, "circle", { cx: x0, cy: y0, r: a.radius * width, fill: "none", stroke: a.color,
        "stroke-width": stroke }));
    } else {
      g.append(svgEl(ns, "circle", { cx: x0, cy: y0, r: stroke * 1.5, fill: a.color }));
    }
    if (a.text) {
      const label = svgEl(ns, "text", { x: x0 + stroke * 3, y: y0 - stroke * 2, fill: a.color,
        "font-size": Math.max(18, width / 28), "font-weight": "bold", stroke: "#000",
        "stroke-width": Math.max(1, width / 640), "paint-order": "stroke" });
      label.textContent = a.text;
      g.append(label);
    }
    svg.append(g);
  }
}

// Audio packets sent and received on a peer connection so far (W3C webrtc-stats outbound-rtp /
// inbound-rtp of kind audio), and the energy of what was received (inbound-rtp totalAudioEnergy,
// the sum of squared levels in [0, 1] times each sample's duration in s: 0 for silence): what
// the pages show as "talking"/"hearing" and the tests read.
export async function audioPackets(pc) {
  const out = { sent: 0, received: 0, receivedEnergy: 0 };
  if (!pc) return out;
  (await pc.getStats()).forEach((report) => {
    if (report.kind !== "audio") return;
    if (report.type === "outbound-rtp") out.sent += report.packetsSent ?? 0;
    if (report.type !== "inbound-rtp") return;
    out.received += report.packetsReceived ?? 0;
    out.receivedEnergy += report.totalAudioEnergy ?? 0;
  });
  return out;
}

// Mute or unmute the microphone tracks of `stream`; returns the new muted state.
export function setMuted(stream, muted) {
  for (const track of stream?.getAudioTracks() ?? []) track.enabled = !muted;
  return muted;
}
