import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../../src/sampler/rng.ts";
import { StopStringMatcher } from "../../src/sampler/stop-strings.ts";

/** Feeds chunks; returns everything emitted (plus flush when no stop) and the stop hit. */
function run(stops: string[], chunks: string[], include = false): { text: string; stop?: string; emitted: string[] } {
  const m = new StopStringMatcher(stops, include);
  const emitted: string[] = [];
  for (const chunk of chunks) {
    const r = m.push(chunk);
    emitted.push(r.text);
    if (r.stopped) return { text: emitted.join(""), stop: r.stop, emitted };
  }
  emitted.push(m.flush());
  return { text: emitted.join(""), emitted };
}

test("a stop string split across many pushes is caught and never streamed", () => {
  const r = run(["\n\nHuman:"], ["Hello", "\n", "\nHu", "man:", " more"]);
  assert.equal(r.text, "Hello");
  assert.equal(r.stop, "\n\nHuman:");
  assert.deepEqual(r.emitted, ["Hello", "", "", ""]);
});

test("held-back text is released once it can no longer start a stop string", () => {
  const m = new StopStringMatcher(["\n\nHuman:"]);
  assert.deepEqual(m.push("a\n"), { text: "a", stopped: false });
  assert.deepEqual(m.push("\nH"), { text: "", stopped: false });
  assert.deepEqual(m.push("ello"), { text: "\n\nHello", stopped: false });
  assert.deepEqual(m.push("\n"), { text: "", stopped: false });
  assert.equal(m.flush(), "\n");
  assert.equal(m.stopped, false);
});

test("stop inside a single push with text before and after", () => {
  assert.deepEqual(new StopStringMatcher(["STOP"]).push("abcSTOPdef"), { text: "abc", stopped: true, stop: "STOP" });
  assert.deepEqual(new StopStringMatcher(["STOP"], true).push("abcSTOPdef"), {
    text: "abcSTOP",
    stopped: true,
    stop: "STOP",
  });
  assert.equal(run(["STOP"], ["ab", "cST", "OPdef"], true).text, "abcSTOP");
});

test("earliest match among several stops", () => {
  assert.deepEqual(run(["world", "lo"], ["hello world"]), { text: "hel", stop: "lo", emitted: ["hel"] });
  assert.equal(run(["world", "lo"], ["hel", "l", "o world"]).text, "hel");
  // A stop nested in a longer one completes first, whatever the chunking.
  assert.equal(run(["xyz", "y"], ["axyz"]).text, "ax");
  assert.equal(run(["xyz", "y"], ["a", "x", "y", "z"]).text, "ax");
  // Same end: the longer (earlier-starting) one wins.
  assert.deepEqual(run(["bc", "abc"], ["zabc"]).stop, "abc");
  assert.equal(run(["bc", "abc"], ["za", "bc"]).text, "z");
});

test("overlapping prefixes: failed partial matches still find the real one", () => {
  assert.equal(run(["abcabd"], ["abcab", "cabd!"]).text, "abc");
  assert.equal(run(["aab"], ["a", "a", "a", "a", "b"]).text, "aa");
  assert.equal(run(["ab", "bc"], ["a", "b"]).text, "");
  assert.equal(run(["<|im_end|>"], ["<", "<|im", "_end", "|>"]).text, "<");
});

test("no stops, empty pushes, push after a stop, surrogate pairs", () => {
  assert.deepEqual(new StopStringMatcher([]).push("anything"), { text: "anything", stopped: false });
  const m = new StopStringMatcher(["😀!"]);
  assert.deepEqual(m.push(""), { text: "", stopped: false });
  assert.deepEqual(m.push("a😀"), { text: "a", stopped: false });
  assert.deepEqual(m.push("!b"), { text: "", stopped: true, stop: "😀!" });
  assert.deepEqual(m.push("more"), { text: "", stopped: true, stop: "😀!" });
  assert.equal(m.flush(), "");
  assert.equal(m.stopped, true);
});

/** Reference: the first end position where some stop completes; at equal ends, the longest stop. */
function reference(text: string, stops: string[]): { cut: number; end: number; stop: string } | null {
  const byLength = [...stops].sort((a, b) => b.length - a.length);
  for (let end = 1; end <= text.length; end++) {
    const prefix = text.slice(0, end);
    for (const s of byLength) if (prefix.endsWith(s)) return { cut: end - s.length, end, stop: s };
  }
  return null;
}

test("property: any chunking emits the text up to the first stop (or all of it)", () => {
  const rng = new Rng(2024);
  const pick = (n: number) => Math.floor(rng.next() * n);
  const alphabet = "ab\nH:";
  const word = (len: number) => Array.from({ length: len }, () => alphabet[pick(alphabet.length)]).join("");
  let hits = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const stops = Array.from({ length: 1 + pick(3) }, () => word(1 + pick(5)));
    let text = word(pick(30));
    if (rng.next() < 0.5) text = text.slice(0, pick(text.length + 1)) + stops[pick(stops.length)] + word(pick(10));
    const chunks: string[] = [];
    for (let i = 0; i < text.length; ) {
      const len = pick(6); // empty chunks included
      chunks.push(text.slice(i, i + len));
      i += len;
    }
    const include = rng.next() < 0.3;
    const want = reference(text, stops);
    const got = run(stops, chunks, include);
    if (want) {
      hits++;
      assert.equal(got.text, text.slice(0, include ? want.end : want.cut), JSON.stringify({ stops, chunks }));
      assert.equal(got.stop, want.stop);
    } else {
      assert.equal(got.text, text, JSON.stringify({ stops, chunks }));
      assert.equal(got.stop, undefined);
    }
  }
  assert.ok(hits > 1000, `enough trials hit a stop (${hits})`);
});
