// Hands-free controls for glasses: gaze (dwell) and voice.
//
// Gaze: many glasses move a cursor with the head (RealWear, Vuzix, HoloLens' gaze in a browser)
// and some have no practical "click". A control marked `data-dwell` is activated when the
// pointer rests on it for `dwellMs` (default 1200 ms, within the 0.5-1.5 s range gaze-typing
// studies use, long enough that a glance across it does nothing); a ring fills meanwhile (CSS
// custom property `--dwell`, 0..1), and leaving the control, pressing it, or it being disabled
// cancels. After it fires, the pointer must leave before it can fire again.
//
// Voice: every control marked `data-voice="phrase"` can be said. Glasses with their own voice
// system (RealWear's WearHF "say what you see") read the button's visible text, so the phrases
// are the labels. Where the browser has the Web Speech API (`SpeechRecognition`), `VoiceCommands`
// listens and clicks the control whose phrase the transcript ends with. Chrome's recogniser
// sends the audio to a server unless it can run on the device; without a network it reports
// "network" and the page says so: voice is a convenience, never the only way to a control.

/** The control among `commands` ([{phrase, element}]) that `transcript` asks for, or null.
 * Case, punctuation and extra leading words are ignored ("please stop robot" -> "stop robot");
 * the longest matching phrase wins ("stop recording" over "stop"). */
export function matchCommand(transcript, commands) {
  const words = normalise(transcript);
  let best = null;
  for (const command of commands) {
    const phrase = normalise(command.phrase);
    if (phrase && (words === phrase || words.endsWith(" " + phrase))
        && (!best || phrase.length > normalise(best.phrase).length)) best = command;
  }
  return best;
}

function normalise(text) {
  return String(text ?? "").toLowerCase().replace(/[^\p{L}\p{N}]+/gu, " ").trim();
}

function usable(element) {
  return element.isConnected && !element.disabled && !element.closest("[hidden]")
    && element.getClientRects().length > 0;
}

/** Dwell activation for every `[data-dwell]` control under `root`. Returns a function that
 * turns it off. `onFire(element)` is called after each dwell click (for a probe or a sound). */
export function enableDwell(root = document, { dwellMs = 1200, onFire = () => {} } = {}) {
  let target = null, started = 0, frame = 0, fired = null;

  function cancel() {
    if (target) { target.style.removeProperty("--dwell"); target.classList.remove("dwelling"); }
    target = null;
    cancelAnimationFrame(frame);
  }
  function tick(now) {
    if (!target) return;
    if (!usable(target)) { cancel(); return; }
    const progress = Math.min(1, (now - started) / dwellMs);
    target.style.setProperty("--dwell", progress.toFixed(3));
    if (progress < 1) { frame = requestAnimationFrame(tick); return; }
    const element = target;
    cancel();
    fired = element;
    element.click();
    onFire(element);
  }
  function over(event) {
    const element = event.target.closest?.("[data-dwell]");
    if (element === target) return;
    cancel();
    if (!element || element === fired || !usable(element)) return;
    target = element;
    started = performance.now();
    target.classList.add("dwelling");
    frame = requestAnimationFrame(tick);
  }
  function out(event) {
    const element = event.target.closest?.("[data-dwell]");
    if (!element || element.contains(event.relatedTarget)) return;
    if (element === target) cancel();
    if (element === fired) fired = null;
  }
  function down() { cancel(); }  // a real press: no dwell click on top of it

  root.addEventListener("pointerover", over);
  root.addEventListener("pointerout", out);
  root.addEventListener("pointerdown", down);
  return () => {
    cancel();
    root.removeEventListener("pointerover", over);
    root.removeEventListener("pointerout", out);
    root.removeEventListener("pointerdown", down);
  };
}

/** Voice commands over the `[data-voice]` controls under `root`, with the Web Speech API.
 * `onStatus(text)` reports what it is doing ("listening", "heard: …", or why it cannot). */
export class VoiceCommands {
  constructor(root = document, onStatus = () => {}) {
    this.root = root;
    this.onStatus = onStatus;
    this.recognition = null;
    this.wanted = false;
  }

  static available() {
    return Boolean(globalThis.SpeechRecognition || globalThis.webkitSpeechRecognition);
  }

  commands() {
    return [...this.root.querySelectorAll("[data-voice]")]
      .filter(usable).map((element) => ({ phrase: element.dataset.voice, element }));
  }

  /** Act on one transcript (also the seam the tests use): clicks the matching control. */
  hear(transcript) {
    const command = matchCommand(transcript, this.commands());
    this.onStatus(command ? `heard: ${command.phrase}` : `not a command: "${transcript.trim()}"`);
    command?.element.click();
    return command;
  }

  start() {
    const Recognition = globalThis.SpeechRecognition || globalThis.webkitSpeechRecognition;
    if (!Recognition) { this.onStatus("voice commands unavailable: this browser has no speech recognition"); return false; }
    this.wanted = true;
    const recognition = new Recognition();
    recognition.continuous = true;
    recognition.interimResults = false;
    recognition.lang = document.documentElement.lang || "en";
    recognition.onresult = (event) => {
      const result = event.results[event.results.length - 1];
      if (result.isFinal) this.hear(result[0].transcript);
    };
    recognition.onerror = (event) => {
      this.wanted = event.error === "no-speech" || event.error === "aborted" ? this.wanted : false;
      if (!this.wanted) this.onStatus(`voice commands unavailable: ${event.error}`);
    };
    recognition.onend = () => { if (this.wanted) recognition.start(); };  // keep listening
    recognition.start();
    this.recognition = recognition;
    this.onStatus(`listening: say ${this.commands().map((c) => `"${c.phrase}"`).join(", ")}`);
    return true;
  }

  stop() {
    this.wanted = false;
    this.recognition?.stop();
    this.recognition = null;
    this.onStatus("voice off");
  }
}
