/**
 * Chained content hashes of full KV blocks, the keys of automatic prefix caching.
 *
 *   blockSize = 4
 *   tokenIds:  [ t0 t1 t2 t3 | t4 t5 t6 t7 | t8 t9 ]
 *   hashes:      h0 = H(null, t0..t3, salt)
 *                h1 = H(h0,   t4..t7, salt)
 *                (t8 t9 fill only part of block 2: a partial block never has a hash)
 *
 * Each hash folds in its parent's, so h1 names the whole prefix t0..t7: two sequences can share
 * block i only if they agree on every token up to the end of block i, and on the salt.
 *
 * The hash function: two independently seeded 32-bit lanes, each a murmur3-style multiply/rotate
 * round per input word (with different constants per lane) and its own avalanche finalizer, printed
 * as 16 hex digits. A wrong prefix-cache hit needs a lookup to collide with one of the at most numBlocks
 * hashes cached at that moment: about numBlocks / 2⁶⁴ per lookup (5·10⁻¹⁴ for a million blocks), which
 * is negligible over any server's lifetime. Everything runs on `Math.imul` and int32 arithmetic; no
 * BigInt, no allocation but the result string. It is NOT cryptographic: a client
 * that can choose prompts could forge a collision with another prompt's prefix, so tenants that must
 * not share cache entries should use distinct cache salts (the salt is hashed into every block).
 */

/** 16 lowercase hex digits: lane A then lane B. Strings make cheap, exact Map keys. */
export type BlockHash = string;

// Lane A: murmur3_32 round constants. Lane B: xxHash32 primes (unrelated to lane A's).
const A_C1 = 0xcc9e2d51;
const A_C2 = 0x1b873593;
const B_C1 = 0x85ebca77;
const B_C2 = 0x27d4eb2f;
const SEED_A = 0x2f7a3c1d;
const SEED_B = 0x6b43a9b5;

function roundA(h: number, k: number): number {
  k = Math.imul(k, A_C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, A_C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function roundB(h: number, k: number): number {
  k = Math.imul(k ^ 0x5851f42d, B_C1);
  k = (k << 13) | (k >>> 19);
  k = Math.imul(k, B_C2);
  h ^= k;
  h = (h << 17) | (h >>> 15);
  return (Math.imul(h, 9) + 0x165667b1) | 0;
}

/** murmur3 fmix32. */
function finalA(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** xxHash32 avalanche. */
function finalB(h: number): number {
  h ^= h >>> 15;
  h = Math.imul(h, 0x85ebca77);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae3d);
  h ^= h >>> 16;
  return h >>> 0;
}

function hex8(x: number): string {
  return x.toString(16).padStart(8, "0");
}

/**
 * Hash of the full block tokenIds[start, start + count) under `parent` (the previous block's hash, or
 * null for block 0) and `extraKeys` (the request's cache salt, or null). Null and "" salts differ, as do
 * a null parent and any parent. Deterministic across processes and runs.
 */
export function hashBlock(
  parent: BlockHash | null,
  tokenIds: readonly number[],
  start: number,
  count: number,
  extraKeys: string | null,
): BlockHash {
  let a = SEED_A;
  let b = SEED_B;
  // Header word: which optional parts are present, and the block length.
  const header = (parent === null ? 0 : 1) | (extraKeys === null ? 0 : 2) | (count << 2);
  a = roundA(a, header);
  b = roundB(b, header);
  if (parent !== null) {
    const pa = Number.parseInt(parent.slice(0, 8), 16) | 0;
    const pb = Number.parseInt(parent.slice(8, 16), 16) | 0;
    // Each lane takes both parent lanes, so the chain carries all 64 bits forward in each lane.
    a = roundA(roundA(a, pa), pb);
    b = roundB(roundB(b, pb), pa);
  }
  const end = start + count;
  for (let i = start; i < end; i++) {
    const t = tokenIds[i] | 0;
    a = roundA(a, t);
    b = roundB(b, t);
  }
  if (extraKeys !== null) {
    a = roundA(a, extraKeys.length);
    b = roundB(b, extraKeys.length);
    for (let i = 0; i < extraKeys.length; i++) {
      const c = extraKeys.charCodeAt(i);
      a = roundA(a, c);
      b = roundB(b, c);
    }
  }
  return hex8(finalA(a ^ count)) + hex8(finalB(b ^ Math.imul(count, 0x9e3779b1)));
}
