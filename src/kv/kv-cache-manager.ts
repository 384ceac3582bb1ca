import { type BlockHash, hashBlock } from "./block-hash.ts";
import { BlockPool } from "./block-pool.ts";

/**
 * What the KV cache manager needs of a sequence (the scheduler's Sequence satisfies it). The block table
 * and the block-hash list live on the sequence; the manager owns their contents.
 *
 *   blockSize = 4, tokenIds.length = 10, numComputedTokens = 9
 *   tokenIds:  [ 0  1  2  3 | 4  5  6  7 | 8  9 .. .. ]
 *   blockIds:  [ b0         | b1         | b2          ]   token j lives in blockIds[j / 4], slot j % 4
 *   computed:    ✓  ✓  ✓  ✓   ✓  ✓  ✓  ✓   ✓  ✗            (KV of token 9 not written yet)
 *   blockHashes: [ h0, h1 ]  hashes of the full blocks, filled lazily, valid as long as tokens only grow
 */
export interface KvSequence {
  readonly tokenIds: readonly number[];
  /** Folded into every block hash: requests with different salts never share cached blocks. */
  readonly cacheSalt: string | null;
  /** Tokens whose KV is in the cache (or will be once the in-flight step runs). */
  numComputedTokens: number;
  blockIds: number[];
  blockHashes: BlockHash[];
}

export interface KvCacheConfig {
  numBlocks: number;
  blockSize: number;
  enablePrefixCaching: boolean;
}

/** A run of cached full blocks that a fresh sequence can adopt instead of computing them. */
export interface CachedPrefix {
  blocks: number[];
  /** blocks.length * blockSize. */
  numTokens: number;
}

/** Block copies to execute, in every layer, before the next forward pass writes any KV. */
export interface BlockCopies {
  src: number[];
  dst: number[];
}

/** vLLM semantics, in tokens: queries += tokens of each admitted sequence looked up, hits += tokens found. */
export interface PrefixCacheStats {
  queries: number;
  hits: number;
}

const NO_PREFIX: CachedPrefix = Object.freeze({ blocks: Object.freeze([]) as unknown as number[], numTokens: 0 });

/**
 * Paged KV cache bookkeeping with automatic prefix caching and copy-on-write, nano-vllm style: block
 * tables on the sequences, reference-counted blocks, chained content hashes of full blocks.
 *
 * Lifecycle of a sequence:
 *   first schedule:  p = findCachedPrefix(seq); allocateSlots(seq, n, p)   (adopts p, then n new tokens)
 *   every step:      allocateSlots(seq, n)                                  (covers numComputed + n tokens)
 *   n > 1:           fork(parent, child, numTokens)                         (shares blocks, refCount++)
 *   speculation:     allocateSlots(seq, 1, null, k) … commitSpeculative(seq, registeredTokens) after
 *                    the accepted draft tokens were appended (hashes them, returns unused lookahead)
 *   end / preempt:   free(seq)
 * and once per step the engine drains takePendingCopies() and runs them before its forward pass.
 *
 * Allocation never throws for lack of space: it returns false and changes nothing. Programming errors
 * (bad arguments, broken preconditions) do throw.
 *
 * Copy-on-write deferral: when a sequence copies its shared last block src → dst, src's refCount drops
 * right away (so the last sharer writes in place), but if src then reaches refCount 0 before the copies
 * are drained (its last holder preempted in the same step), it is held out of the free queue until
 * `takePendingCopies()`. Otherwise src could be handed out again as the dst of another copy in the same
 * batch, and a backend running the copies in parallel would race. A pending copy whose dst is freed in
 * the same step (its owner preempted) is dropped, so no block is ever the dst of two pending copies.
 */
export class KvCacheManager {
  readonly pool: BlockPool;
  readonly blockSize: number;
  readonly numBlocks: number;
  readonly enablePrefixCaching: boolean;
  readonly stats: PrefixCacheStats = { queries: 0, hits: 0 };

  private pendingSrc: number[] = [];
  private pendingDst: number[] = [];
  /** Zero-ref blocks held out of the free queue until the copies reading them are drained. */
  private held: number[] = [];
  /** Sequences holding blocks (for the refCount cross-check). */
  private readonly live = new Set<KvSequence>();

  constructor(config: KvCacheConfig) {
    this.pool = new BlockPool(config.numBlocks, config.blockSize);
    this.blockSize = config.blockSize;
    this.numBlocks = config.numBlocks;
    this.enablePrefixCaching = config.enablePrefixCaching;
  }

  /** Blocks available to allocation (uncached free + evictable cached). */
  get numFreeBlocks(): number {
    return this.pool.numFreeBlocks;
  }

  /** Fraction of blocks in use, 0..1 (evictable cached blocks count as free). */
  get usage(): number {
    return (this.numBlocks - this.pool.numFreeBlocks) / this.numBlocks;
  }

  /** Sequences currently holding at least one block. */
  get numLiveSequences(): number {
    return this.live.size;
  }

  isLive(seq: KvSequence): boolean {
    return this.live.has(seq);
  }

  /** Blocks needed to hold `numTokens` tokens. */
  blocksFor(numTokens: number): number {
    return Math.ceil(numTokens / this.blockSize);
  }

  /**
   * Longest run of cached full blocks matching the start of seq.tokenIds. Never covers the whole
   * sequence: the last token must be computed to get logits, so at most floor((len - 1) / blockSize)
   * blocks are looked up (a prompt of exactly 2 full blocks can reuse only the first).
   *
   *   len = 8, blockSize = 4:   [ t0..t3 | t4..t7 ]   floor(7 / 4) = 1 block may come from the cache
   *   len = 9:                  [ t0..t3 | t4..t7 | t8 ]   floor(8 / 4) = 2 blocks
   *
   * Pure lookup: no reference counts change and no stats are counted until the prefix is adopted by
   * `allocateSlots` (so a sequence that waits for blocks and is looked up again is counted once).
   * Returns an empty prefix when prefix caching is off.
   */
  findCachedPrefix(seq: KvSequence): CachedPrefix {
    if (!this.enablePrefixCaching) return NO_PREFIX;
    const maxBlocks = Math.floor((seq.tokenIds.length - 1) / this.blockSize);
    if (maxBlocks <= 0) return NO_PREFIX;
    this.ensureHashes(seq, maxBlocks);
    const blocks: number[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const id = this.pool.lookup(seq.blockHashes[i]);
      if (id < 0) break;
      blocks.push(id);
    }
    return { blocks, numTokens: blocks.length * this.blockSize };
  }

  /**
   * Makes seq.blockIds cover its first numComputedTokens + numNewTokens tokens (plus numLookaheadTokens
   * more, reserved but not yet meaningful), so the step can write the KV of tokens
   * [numComputedTokens, numComputedTokens + numNewTokens). A speculative step also writes the KV of its
   * draft tokens into the lookahead slots; those slots never get hashed here (the draft tokens are not
   * final: see `commitSpeculative`).
   *
   * With `cached` (only for a sequence holding no blocks, numComputedTokens 0; pass the result of
   * `findCachedPrefix`, possibly empty): first adopts the cached blocks and sets
   * seq.numComputedTokens = cached.numTokens, then covers numNewTokens more; counts prefix-cache stats.
   *
   * Copy-on-write: an existing block that this step writes into but that other tables share gets
   * replaced by a fresh block; the copy src → dst is queued for `takePendingCopies`.
   *
   * With prefix caching, every block that becomes full of tokens computed this step is registered under
   * its chained hash (so a sequence scheduled later in the same step can already share it: the forward
   * pass writes all KV of a step before any attention reads it).
   *
   * Returns false, changing nothing, when the free queue cannot supply every block needed (new blocks,
   * copy-on-write copies, and evictable cached blocks being adopted). Never throws for lack of space.
   */
  allocateSlots(
    seq: KvSequence,
    numNewTokens: number,
    cached: CachedPrefix | null = null,
    numLookaheadTokens = 0,
  ): boolean {
    if (!Number.isInteger(numNewTokens) || numNewTokens < 0) throw new RangeError(`numNewTokens ${numNewTokens}`);
    if (!Number.isInteger(numLookaheadTokens) || numLookaheadTokens < 0) {
      throw new RangeError(`numLookaheadTokens ${numLookaheadTokens}`);
    }
    const bs = this.blockSize;
    const pool = this.pool;
    let needFree = 0;
    let base: number;
    let held: number;
    if (cached !== null) {
      if (seq.blockIds.length !== 0 || seq.numComputedTokens !== 0) {
        throw new Error("allocateSlots: a cached prefix can only be adopted by a sequence holding no blocks");
      }
      base = cached.numTokens;
      held = cached.blocks.length;
      if (base !== held * bs) throw new Error("allocateSlots: cached.numTokens must be blocks.length * blockSize");
      // An evictable block leaves the free queue when adopted: it costs a free block like a new one.
      for (const id of cached.blocks) if (pool.refCount(id) === 0) needFree++;
    } else {
      base = seq.numComputedTokens;
      held = seq.blockIds.length;
    }
    const end = base + numNewTokens;
    if (end > seq.tokenIds.length) {
      throw new RangeError(`allocateSlots: ${end} tokens requested, the sequence has ${seq.tokenIds.length}`);
    }
    const numNewBlocks = Math.max(0, Math.ceil((end + numLookaheadTokens) / bs) - held);

    // Blocks that receive writes: those overlapping [base, end + lookahead) (speculative draft tokens are
    // written into the lookahead). Only already-held ones can be shared.
    //   base = 6, end = 9, bs = 4:   [ 0 1 2 3 | 4 5 6 7 | 8 . . . ]
    //                                             ^w w    ^w         → blocks 1 .. 2 (cowFrom = 1, cowTo = 3)
    const cowFrom = Math.floor(base / bs);
    const cowTo =
      cached === null && numNewTokens > 0 ? Math.min(held, Math.ceil((end + numLookaheadTokens) / bs)) : cowFrom;
    for (let i = cowFrom; i < cowTo; i++) if (pool.refCount(seq.blockIds[i]) > 1) needFree++;
    needFree += numNewBlocks;
    if (needFree > pool.numFreeBlocks) return false;

    // Commit: nothing below can fail.
    if (cached !== null) {
      for (const id of cached.blocks) {
        pool.acquire(id);
        seq.blockIds.push(id);
      }
      seq.numComputedTokens = base;
      if (this.enablePrefixCaching) {
        this.stats.queries += seq.tokenIds.length;
        this.stats.hits += cached.numTokens;
      }
    }
    for (let i = cowFrom; i < cowTo; i++) {
      const src = seq.blockIds[i];
      if (pool.refCount(src) <= 1) continue;
      const dst = pool.allocate();
      this.pendingSrc.push(src);
      this.pendingDst.push(dst);
      pool.release(src); // stays >= 1: another table still holds it
      seq.blockIds[i] = dst;
    }
    for (let i = 0; i < numNewBlocks; i++) seq.blockIds.push(pool.allocate());
    if (seq.blockIds.length > 0) this.live.add(seq);

    if (this.enablePrefixCaching) {
      // Blocks [base/bs, end/bs) become full this step; earlier ones were full already.
      const firstFull = Math.floor(base / bs);
      const endFull = Math.floor(end / bs);
      if (endFull > firstFull) {
        this.ensureHashes(seq, endFull);
        for (let i = firstFull; i < endFull; i++) {
          const id = seq.blockIds[i];
          if (pool.hashOf(id) === null) pool.setHash(id, seq.blockHashes[i]);
        }
      }
    }
    return true;
  }

  /**
   * Settles a speculative step. The caller has appended the accepted draft tokens (and the token sampled
   * after them) to seq.tokenIds and advanced seq.numComputedTokens over the accepted ones, whose KV the
   * step wrote; `allocateSlots` had registered hashes only up to `registeredTokens` (the step's scheduled
   * tokens: numComputedTokens before the step + numNewTokens).
   *
   *   bs = 4, registeredTokens = 6, 3 of 4 draft tokens accepted → numComputedTokens = 9
   *   tokens:  [ 0 1 2 3 | 4 5 d d | d x . . ]      d = accepted draft token, x = the token sampled after
   *   blocks:  [ b0      | b1      | b2      | b3 ]  b3 held only rejected lookahead
   *            b1 is now full of final tokens: hashed; b3 goes back to the free queue.
   *
   * With prefix caching, hashes every block that is now full of computed tokens (only accepted tokens are
   * final: nothing speculative is ever hashed). With `releaseLookahead`, returns the blocks past
   * blocksFor(numComputedTokens) (lookahead of rejected or never-proposed draft tokens) to the head of the
   * free queue, so the table again covers exactly the computed tokens. Never fails.
   */
  commitSpeculative(seq: KvSequence, registeredTokens: number, releaseLookahead = true): void {
    const bs = this.blockSize;
    const pool = this.pool;
    if (seq.numComputedTokens > seq.tokenIds.length) {
      throw new RangeError("commitSpeculative: more computed tokens than the sequence holds");
    }
    if (this.enablePrefixCaching) {
      const firstFull = Math.floor(registeredTokens / bs);
      const endFull = Math.min(Math.floor(seq.numComputedTokens / bs), seq.blockIds.length);
      if (endFull > firstFull) {
        this.ensureHashes(seq, endFull);
        for (let i = firstFull; i < endFull; i++) {
          const id = seq.blockIds[i];
          if (pool.hashOf(id) === null) pool.setHash(id, seq.blockHashes[i]);
        }
      }
    }
    if (!releaseLookahead) return;
    const keep = this.blocksFor(seq.numComputedTokens);
    const blocks = seq.blockIds;
    while (blocks.length > keep) {
      const id = blocks.pop()!;
      if (pool.release(id) !== 0) continue; // shared (not a fresh lookahead block): the sharer keeps it
      if (pool.hashOf(id) !== null || this.pendingSrc.includes(id) || this.pendingDst.includes(id)) {
        this.returnBlock(id);
      } else {
        pool.enqueueFreeFront(id);
      }
    }
    if (blocks.length === 0) this.live.delete(seq);
  }

  /**
   * Shares the parent's blocks covering its first `numTokens` tokens (default: all its blocks) with
   * `child`, which must hold none and whose tokenIds must start with the parent's first numTokens
   * tokens (the parent's block hashes are copied too). Reference counts go up; whichever of them first
   * writes into a shared partial block gets a private copy in `allocateSlots` (copy-on-write).
   */
  fork(parent: KvSequence, child: KvSequence, numTokens?: number): void {
    if (child.blockIds.length !== 0) throw new Error("fork: the child already holds blocks");
    const n =
      numTokens === undefined ? parent.blockIds.length : Math.min(parent.blockIds.length, this.blocksFor(numTokens));
    for (let i = 0; i < n; i++) {
      const id = parent.blockIds[i];
      this.pool.acquire(id);
      child.blockIds.push(id);
    }
    const fullBlocks = numTokens === undefined ? parent.blockHashes.length : Math.floor(numTokens / this.blockSize);
    child.blockHashes = parent.blockHashes.slice(0, fullBlocks);
    if (n > 0) this.live.add(child);
  }

  /**
   * Releases every block of the sequence, last block first, so that a sequence's tail is evicted before
   * its head (the head is the part other prompts are likely to share). Blocks reaching refCount 0 go to
   * the free queue's tail keeping their hash (still cached), except blocks not fully covered by
   * seq.numComputedTokens: those were registered for a step that did not run for this sequence (it was
   * preempted before its forward pass) and must not be found by later lookups, so their hash is dropped.
   * Leaves seq.blockIds empty; the caller resets numComputedTokens if it means to recompute.
   */
  free(seq: KvSequence): void {
    const bs = this.blockSize;
    const blocks = seq.blockIds;
    for (let i = blocks.length - 1; i >= 0; i--) {
      const id = blocks[i];
      if (this.pool.release(id) !== 0) continue;
      if ((i + 1) * bs > seq.numComputedTokens) this.pool.dropHash(id);
      this.returnBlock(id);
    }
    blocks.length = 0;
    this.live.delete(seq);
  }

  /**
   * Drains the copy-on-write copies queued since the last call (execute them, in every layer, before the
   * forward pass writes KV) and returns held copy sources to the free queue.
   */
  takePendingCopies(): BlockCopies {
    const copies: BlockCopies = { src: this.pendingSrc, dst: this.pendingDst };
    this.pendingSrc = [];
    this.pendingDst = [];
    if (this.held.length > 0) {
      for (const id of this.held) this.pool.enqueueFree(id);
      this.held = [];
    }
    return copies;
  }

  /**
   * Forgets the hash of every free cached block (e.g. after a failed forward pass may have left
   * registered blocks unwritten). Blocks in use keep theirs. Returns how many hashes were dropped.
   */
  resetPrefixCache(): number {
    let n = 0;
    for (const id of this.pool.freeQueue()) {
      if (this.pool.hashOf(id) !== null) {
        this.pool.dropHash(id);
        n++;
      }
    }
    return n;
  }

  /**
   * Throws on the first violated invariant: the pool's structure; every block is exactly one of
   * free-uncached, free-cached, in use, or held (a zero-ref pending copy source); free + in use + held =
   * numBlocks; each refCount equals the number of block-table references among live sequences; no table
   * lists a block twice; no hashes when prefix caching is off; pending copies are well-formed.
   */
  checkInvariants(): void {
    const pool = this.pool;
    pool.checkInvariants();
    const refs = new Int32Array(this.numBlocks);
    for (const seq of this.live) {
      if (seq.blockIds.length === 0) throw new Error("a live sequence holds no blocks");
      const mine = new Set<number>();
      for (const id of seq.blockIds) {
        if (!Number.isInteger(id) || id < 0 || id >= this.numBlocks) throw new Error(`block table holds bad id ${id}`);
        if (mine.has(id)) throw new Error(`block ${id} appears twice in one block table`);
        mine.add(id);
        refs[id]++;
      }
    }
    const heldSet = new Set(this.held);
    if (heldSet.size !== this.held.length) throw new Error("a block is held twice");
    let inUse = 0;
    for (let id = 0; id < this.numBlocks; id++) {
      const rc = pool.refCount(id);
      if (rc !== refs[id]) throw new Error(`block ${id}: refCount ${rc} but ${refs[id]} block-table references`);
      if (rc > 0) {
        if (pool.isFree(id)) throw new Error(`block ${id}: in use and in the free queue`);
        inUse++;
      } else if (!pool.isFree(id) && !heldSet.has(id)) {
        throw new Error(`block ${id}: refCount 0 but neither free nor held (leaked)`);
      }
      if (!this.enablePrefixCaching && pool.hashOf(id) !== null) throw new Error(`block ${id}: hash with caching off`);
    }
    for (const id of this.held) {
      if (pool.refCount(id) !== 0 || pool.isFree(id)) throw new Error(`held block ${id} is in use or free`);
      if (!this.pendingSrc.includes(id)) throw new Error(`held block ${id} is no pending copy's source`);
    }
    if (pool.numFreeBlocks + inUse + this.held.length !== this.numBlocks) {
      throw new Error(`free ${pool.numFreeBlocks} + in use ${inUse} + held ${this.held.length} != ${this.numBlocks}`);
    }
    const dsts = new Set(this.pendingDst);
    if (dsts.size !== this.pendingDst.length) throw new Error("a block is the destination of two pending copies");
    for (let k = 0; k < this.pendingDst.length; k++) {
      if (pool.refCount(this.pendingDst[k]) === 0)
        throw new Error(`pending copy into unowned block ${this.pendingDst[k]}`);
      if (dsts.has(this.pendingSrc[k]))
        throw new Error(`block ${this.pendingSrc[k]} is both a copy source and destination`);
    }
  }

  /** Fills seq.blockHashes up to `numBlocks` full blocks (they never change: tokens are only appended). */
  private ensureHashes(seq: KvSequence, numBlocks: number): void {
    const bs = this.blockSize;
    const hashes = seq.blockHashes;
    for (let i = hashes.length; i < numBlocks; i++) {
      hashes.push(hashBlock(i === 0 ? null : hashes[i - 1], seq.tokenIds, i * bs, bs, seq.cacheSalt));
    }
  }

  /** A block just reached refCount 0: settle pending copies involving it, then free or hold it. */
  private returnBlock(id: number): void {
    if (this.pendingDst.length > 0) {
      const k = this.pendingDst.indexOf(id);
      if (k >= 0) {
        // Its owner left before the copy ran: the copy is moot. Its source may now be releasable.
        const src = this.pendingSrc[k];
        this.pendingSrc.splice(k, 1);
        this.pendingDst.splice(k, 1);
        const h = this.held.indexOf(src);
        if (h >= 0 && !this.pendingSrc.includes(src)) {
          this.held.splice(h, 1);
          this.pool.enqueueFree(src);
        }
      }
      if (this.pendingSrc.includes(id)) {
        this.held.push(id);
        return;
      }
    }
    this.pool.enqueueFree(id);
  }
}
