// `loom generate` and `loom chat` through the real CLI on the bundled model.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

function loom(args: string[], input?: string) {
  return spawnSync(process.execPath, ["bin/loom.js", ...args], { encoding: "utf8", input });
}

test("loom generate --chat recites a verse", () => {
  const r = loom(["generate", "--backend", "reference", "--chat", "Recite Genesis 1:1.", "--max-tokens", "40"]);
  assert.equal(r.status, 0, r.stderr);
  // tiny-llama answers in KJV style: the line should read like scripture.
  assert.match(r.stdout, /\b(God|LORD|the|and|unto)\b/);
  assert.ok(r.stdout.trim().length > 20, r.stdout);
});

test("loom generate is deterministic when greedy", () => {
  const a = loom(["generate", "--backend", "reference", "In the beginning", "--max-tokens", "12"]);
  const b = loom(["generate", "--backend", "reference", "In the beginning", "--max-tokens", "12"]);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
});

test("loom chat keeps a multi-turn conversation on piped input", () => {
  const r = loom(
    ["chat", "--backend", "reference", "--max-tokens", "16"],
    "Recite John 3:16.\nTell me a fortune about cats.\n/exit\n",
  );
  assert.equal(r.status, 0, r.stderr);
  const replies = r.stdout.split("> ").filter((s) => s.trim() && !s.startsWith("loom chat"));
  assert.ok(replies.length >= 2, r.stdout);
});

test("bad flags are one clear line", () => {
  const r = loom(["generate", "--backend", "nope", "hi"]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr.trim(), /^loom: --backend must be one of auto, cpu, reference/);
});
