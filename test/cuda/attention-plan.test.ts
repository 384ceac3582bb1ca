/** The split-K decode work plan (src/backends/cuda/attention-plan.ts). */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DECODE_HEADS_PER_BLOCK, maxPartition, planDecode } from "../../src/backends/cuda/attention-plan.ts";

/** Shared memory the decode kernel asks for (native/cuda/attention_decode.cu launch_decode_t). */
function smemBytes(heads: number, kvHeads: number, hd: number, part: number): number {
  const gb = Math.min(heads / kvHeads, DECODE_HEADS_PER_BLOCK);
  return 4 * (gb * hd + gb * part + 2 * gb + 4 * gb * hd);
}

const SHAPES: [number, number, number][] = [
  [32, 8, 64], // Llama 3.2 1B
  [32, 8, 128], // Llama 3 8B
  [8, 1, 256], // Gemma MQA, large heads
  [32, 1, 128], // MQA, group 32 (4 head chunks)
  [4, 4, 24],
  [40, 8, 128],
];

describe("cuda decode attention plan", () => {
  test("partitions always fit in 48 KiB of shared memory", () => {
    for (const [h, kv, hd] of SHAPES) {
      const p = maxPartition(h, kv, hd);
      assert.ok(p >= 32 && p % 32 === 0, `${h}/${kv}/${hd}: ${p}`);
      assert.ok(smemBytes(h, kv, hd, p) <= 48 * 1024, `${h}/${kv}/${hd}: ${smemBytes(h, kv, hd, p)} bytes`);
      for (const len of [1, 17, 600, 5000, 131072]) {
        for (const n of [1, 8, 256]) {
          const plan = planDecode({
            numDecode: n,
            numHeads: h,
            numKvHeads: kv,
            headDim: hd,
            maxSeqLen: len,
            smCount: 132,
          });
          assert.ok(smemBytes(h, kv, hd, plan.partition) <= 48 * 1024);
          assert.ok(plan.splits * plan.partition >= len, `covers ${len}: ${JSON.stringify(plan)}`);
          assert.ok(
            (plan.splits - 1) * plan.partition < Math.max(len, 1),
            `no empty trailing split: ${JSON.stringify(plan)}`,
          );
        }
      }
    }
  });

  test("a big batch of short contexts uses one split (nothing to merge)", () => {
    const plan = planDecode({ numDecode: 256, numHeads: 32, numKvHeads: 8, headDim: 64, maxSeqLen: 256, smCount: 132 });
    assert.deepEqual(plan, { splits: 1, partition: 256 });
  });

  test("batch 1 with a long context is split to fill the GPU", () => {
    const plan = planDecode({ numDecode: 1, numHeads: 32, numKvHeads: 8, headDim: 64, maxSeqLen: 8192, smCount: 132 });
    // 8 KV heads × 1 sequence = 8 blocks per split; about 2 blocks per SM wants ~33 splits
    assert.ok(plan.splits * 8 >= 2 * 132 * 0.9, JSON.stringify(plan));
    assert.ok(plan.partition >= 128);
  });

  test("batch 1 with a short context: 32-token partitions, one block per partition and KV head", () => {
    const plan = planDecode({ numDecode: 1, numHeads: 32, numKvHeads: 8, headDim: 64, maxSeqLen: 256, smCount: 132 });
    assert.deepEqual(plan, { splits: 8, partition: 32 });
  });

  test("graph mode: one plan for the longest context covers every shorter step", () => {
    const plan = planDecode({
      numDecode: 4,
      numHeads: 32,
      numKvHeads: 8,
      headDim: 64,
      maxSeqLen: 131072,
      smCount: 132,
    });
    assert.ok(plan.splits * plan.partition >= 131072);
    assert.ok(plan.partition <= maxPartition(32, 8, 64));
  });
});
