/**
 * A small, fast, seedable PRNG: xoshiro128** (Blackman & Vigna) with its 128-bit state expanded from the
 * seed by splitmix32. All arithmetic is 32-bit integer math (`Math.imul`, `>>>`), so a stream is identical
 * on every platform and Node version.
 */
import { getRandomValues } from "node:crypto";

const TWO_POW_32 = 4294967296;
const TWO_POW_26 = 67108864;
const TWO_POW_53 = 9007199254740992;

/** splitmix32 finalizer: a bijection on 32-bit words with good avalanche. */
function mix32(z: number): number {
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

const GOLDEN = 0x9e3779b9;

/** A seedable pseudo-random number generator. Same seed ⇒ same stream. Not cryptographically secure. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * @param seed any safe integer (negative allowed). Its low and high 32-bit words seed separate halves
   *   of the state, so distinct safe integers give distinct streams.
   */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`Rng seed must be a safe integer, got ${seed}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_POW_32) >>> 0;
    // splitmix32: state advances by the golden ratio, each output is the mixed state.
    this.s0 = mix32((lo + GOLDEN) | 0);
    this.s1 = mix32((lo + 2 * GOLDEN) | 0);
    this.s2 = mix32(((hi ^ 0x5bd1e995) + GOLDEN) | 0);
    this.s3 = mix32(((hi ^ 0x5bd1e995) + 2 * GOLDEN) | 0);
    // xoshiro must not start from the all-zero state (it would stay there).
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
    // The first outputs depend on s1 alone (so on the low word only): let the halves mix first.
    for (let i = 0; i < 8; i++) this.nextUint32();
  }

  /** A generator seeded from the OS entropy source (for requests without a seed). */
  static random(): Rng {
    const words = getRandomValues(new Uint32Array(2));
    // 53 random bits as a safe integer.
    return new Rng((words[0] & 0x1fffff) * TWO_POW_32 + words[1]);
  }

  /** Next raw 32-bit output (unsigned). */
  nextUint32(): number {
    const s0 = this.s0;
    const s1 = this.s1;
    const s2 = this.s2;
    const s3 = this.s3;
    const x = Math.imul(s1, 5);
    const result = Math.imul((x << 7) | (x >>> 25), 9);
    const t = s1 << 9;
    const n2 = s2 ^ s0;
    const n3 = s3 ^ s1;
    this.s1 = s1 ^ n2;
    this.s0 = s0 ^ n3;
    this.s2 = n2 ^ t;
    this.s3 = (n3 << 11) | (n3 >>> 21);
    return result >>> 0;
  }

  /** Next double uniformly distributed in [0, 1), with 53 random bits. */
  next(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * TWO_POW_26 + b) / TWO_POW_53;
  }
}
