// Unit tests of the HMI's voice command matching (xr_server/web/hands_free.js), node's runner:
//   node --test tests/js/      (also run from pytest by tests/xr_server/test_web_js.py)
import { test } from "node:test";
import assert from "node:assert/strict";
import { matchCommand } from "../../xr_server/web/hands_free.js";

const commands = ["stop robot", "call an expert", "mute", "stop recording", "stop"]
  .map((phrase) => ({ phrase, element: phrase }));
const heard = (text) => matchCommand(text, commands)?.phrase ?? null;

test("a transcript names the control whose phrase it ends with", () => {
  assert.equal(heard("Stop robot"), "stop robot");
  assert.equal(heard("please, call an expert!"), "call an expert");
  assert.equal(heard("  MUTE "), "mute");
});

test("the longest matching phrase wins", () => {
  assert.equal(heard("stop recording"), "stop recording");
  assert.equal(heard("stop"), "stop");
  assert.equal(heard("ok stop robot"), "stop robot");
});

test("anything else is no command", () => {
  assert.equal(heard("robot stop now"), null);
  assert.equal(heard("unmute"), null);      // a word that ends with a phrase is not that phrase
  assert.equal(heard(""), null);
  assert.equal(heard("call an"), null);
  assert.equal(matchCommand("stop", []), null);
});
