/** Benchmark datasets: lengths, ignore_eos, shared prefixes, multi-turn shape, determinism. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildDataset, type DatasetOptions, PromptMaker, sampleLen } from "../../src/bench/datasets.ts";
import { BenchRng } from "../../src/bench/random.ts";

const maker = new PromptMaker(
  [...Array(200).keys()].map((i) => i + 10),
  1.25,
  true,
);

const base: DatasetOptions = {
  numPrompts: 50,
  inputLen: 100,
  outputLen: 20,
  rangeRatio: 0.3,
  numGroups: 3,
  groupSize: 5,
  prefixLen: 64,
  numTurns: 3,
  endpoint: "completions",
  ignoreEos: false,
};

test("PromptMaker calibrates from /tokenize output, or falls back to an assumed ratio", () => {
  const words = PromptMaker.sampleText().split(" ").length;
  const m = PromptMaker.fromTokenization(Array.from({ length: words * 2 }, (_, i) => 100 + (i % 50)));
  assert.equal(m.calibrated, true);
  assert.equal(m.tokensPerWord, 2);
  assert.equal(m.pool.length, 50);
  assert.equal(m.text(40, new BenchRng(1)).split(" ").length, 20);
  const none = PromptMaker.fromTokenization(null);
  assert.equal(none.calibrated, false);
  assert.equal(none.hasIds, false);
  assert.equal(typeof none.prompt(10, new BenchRng(1)), "string");
});

test("fixed: exact token-id prompts and outputs, always ignore_eos", () => {
  const items = buildDataset("fixed", { ...base, numPrompts: 7 }, maker, new BenchRng(1));
  assert.equal(items.length, 7);
  for (const it of items) {
    const r = it.build(0, []);
    assert.equal(it.turns, 1);
    assert.ok(Array.isArray(r.prompt));
    assert.equal((r.prompt as number[]).length, 100);
    assert.ok((r.prompt as number[]).every((id) => maker.pool.includes(id)));
    assert.equal(r.promptLen, 100);
    assert.equal(r.maxTokens, 20);
    assert.equal(r.ignoreEos, true);
  }
});

test("random: lengths uniform within len·[1−r, 1+r], reproducible from the seed", () => {
  const a = buildDataset("random", base, maker, new BenchRng(42)).map((i) => i.build(0, []));
  const b = buildDataset("random", base, maker, new BenchRng(42)).map((i) => i.build(0, []));
  assert.deepEqual(a, b);
  const ins = a.map((r) => (r.prompt as number[]).length);
  const outs = a.map((r) => r.maxTokens);
  assert.ok(ins.every((n) => n >= 70 && n <= 130));
  assert.ok(outs.every((n) => n >= 14 && n <= 26));
  assert.ok(new Set(ins).size > 10, "lengths vary");
  assert.ok(a.every((r) => r.ignoreEos === false));
  assert.equal(sampleLen(50, 0, new BenchRng(1)), 50);
  assert.equal(sampleLen(1, 0.9, new BenchRng(1)), 1);
  assert.throws(() => sampleLen(10, 1, new BenchRng(1)), RangeError);
});

test("shared-prefix: groups share a prefix of prefix-len tokens, then a suffix of their own; shuffled", () => {
  const items = buildDataset("shared-prefix", { ...base, rangeRatio: 0 }, maker, new BenchRng(3));
  assert.equal(items.length, 15);
  const byGroup = new Map<number, number[][]>();
  for (const it of items) {
    const ids = it.build(0, []).prompt as number[];
    assert.equal(ids.length, 64 + 100);
    byGroup.set(it.group!, [...(byGroup.get(it.group!) ?? []), ids]);
  }
  assert.equal(byGroup.size, 3);
  const prefixes = [...byGroup.values()].map((list) => {
    assert.equal(list.length, 5);
    const p = list[0].slice(0, 64);
    for (const ids of list) assert.deepEqual(ids.slice(0, 64), p);
    assert.notDeepEqual(list[0].slice(64), list[1].slice(64), "suffixes differ");
    return p.join(",");
  });
  assert.equal(new Set(prefixes).size, 3, "groups have different prefixes");
  const order = items.map((i) => i.group);
  assert.notDeepEqual(order, [...order].sort(), "requests are shuffled");

  const chat = buildDataset("shared-prefix", { ...base, endpoint: "chat" }, maker, new BenchRng(3));
  const systems = new Map<number, Set<string>>();
  for (const it of chat) {
    const m = it.build(0, [])!.messages!;
    assert.equal(m[0].role, "system");
    assert.equal(m[1].role, "user");
    systems.set(it.group!, (systems.get(it.group!) ?? new Set()).add(m[0].content));
  }
  for (const set of systems.values()) assert.equal(set.size, 1);
});

test("multi-turn: ⌈num-prompts / num-turns⌉ conversations, the last one cut to the total", () => {
  const conv = buildDataset("multi-turn", { ...base, numPrompts: 8, endpoint: "chat" }, maker, new BenchRng(2));
  assert.deepEqual(
    conv.map((c) => c.turns),
    [3, 3, 2],
  );
  const first = conv[0].build(0, []);
  assert.equal(first.endpoint, "chat");
  assert.equal(first.messages!.length, 1);
  const answer = {
    ok: true,
    status: 200,
    start: 0,
    chunkTimes: [1, 2],
    end: 3,
    text: "hello",
    usageCompletionTokens: 2,
  };
  const second = conv[0].build(1, [answer]);
  assert.deepEqual(
    second.messages!.map((m) => m.role),
    ["user", "assistant", "user"],
  );
  assert.equal(second.messages![0].content, first.messages![0].content);
  assert.equal(second.messages![1].content, "hello");
  assert.ok(second.promptLen > first.promptLen);
});

test("bad sizes are refused", () => {
  assert.throws(() => buildDataset("fixed", { ...base, inputLen: 0 }, maker, new BenchRng(1)), /--input-len/);
  assert.throws(() => buildDataset("shared-prefix", { ...base, numGroups: 0 }, maker, new BenchRng(1)), /--num-groups/);
  assert.throws(() => buildDataset("nope" as "fixed", base, maker, new BenchRng(1)), /unknown dataset/);
});
