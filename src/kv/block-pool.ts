import type { BlockHash } from "./block-hash.ts";

/** "No block" in the free queue's links. */
const NIL = -1;

/**
 * A preallocated pool of `numBlocks` KV blocks of `blockSize` token slots each: reference counts, content
 * hashes, and the free queue. Pure bookkeeping; the KV memory itself lives in the backend's KvLayers,
 * indexed by the same block ids.
 *
 * Every block id 0..numBlocks-1 is usable. Nothing is reserved as a "null block" (vLLM v1 keeps block 0
 * for padding): our step metadata marks skipped writes with slot -1 instead, so no block needs sacrificing.
 *
 * A block is in exactly one state:
 *   in use         refCount > 0 (referenced by that many block tables), not in the free queue
 *   free, cached   refCount 0, has a hash: in the free queue AND findable through `lookup` (evictable)
 *   free, uncached refCount 0, no hash, in the free queue
 *   held           refCount 0, not in the free queue: only transiently, when the owner (KvCacheManager)
 *                  delays its return (the source of a pending copy-on-write copy); the pool just sees
 *                  a zero-ref block it was not given back.
 *
 * Free queue: an intrusive doubly linked list over Int32Array prev/next (indexed by block id), in LRU
 * eviction order. Every operation is O(1):
 *
 *   head (evicted / allocated first)                           tail (most recently freed)
 *     [ 7 ] <-> [ 8 ] <-> [ 9 ] <-> [ 2 ] <-> [ 1 ] <-> [ 0 ]
 *                                     ^ a prefix-cache hit on block 2 unlinks it from the middle
 *
 * `enqueueFree` appends at the tail, `allocate` pops the head (evicting its hash if it had one), `acquire`
 * on a free block unlinks it wherever it is.
 */
export class BlockPool {
  readonly numBlocks: number;
  readonly blockSize: number;
  /** Times `allocate` reused a cached block, dropping its hash. */
  numEvictions = 0;

  private readonly refCounts: Int32Array;
  private readonly hashes: (BlockHash | null)[];
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  /** 1 while the block is linked in the free queue. */
  private readonly queued: Uint8Array;
  private head = NIL;
  private tail = NIL;
  private freeCount = 0;
  /** hash → the one block holding that content (a block has a hash iff this map points to it). */
  private readonly cache = new Map<BlockHash, number>();

  constructor(numBlocks: number, blockSize: number) {
    if (!Number.isInteger(numBlocks) || numBlocks <= 0) throw new RangeError(`numBlocks must be > 0, got ${numBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize <= 0) throw new RangeError(`blockSize must be > 0, got ${blockSize}`);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.refCounts = new Int32Array(numBlocks);
    this.hashes = new Array<BlockHash | null>(numBlocks).fill(null);
    this.prev = new Int32Array(numBlocks);
    this.next = new Int32Array(numBlocks);
    this.queued = new Uint8Array(numBlocks);
    // Initially every block is free, in id order, so the first allocations return 0, 1, 2, ...
    for (let id = 0; id < numBlocks; id++) this.enqueueFree(id);
  }

  /** Blocks in the free queue (cached or not): what `allocate` can still hand out. */
  get numFreeBlocks(): number {
    return this.freeCount;
  }

  /** Blocks currently findable by hash (in use or evictable). */
  get numCachedBlocks(): number {
    return this.cache.size;
  }

  refCount(id: number): number {
    return this.refCounts[id];
  }

  hashOf(id: number): BlockHash | null {
    return this.hashes[id];
  }

  /** True while the block sits in the free queue. */
  isFree(id: number): boolean {
    return this.queued[id] === 1;
  }

  /** The block holding `hash`, or -1. Does not touch reference counts. */
  lookup(hash: BlockHash): number {
    return this.cache.get(hash) ?? -1;
  }

  /**
   * Pops the least recently freed block, evicting its cached hash if any, and returns it with refCount 1.
   * Returns -1 (and changes nothing) when the free queue is empty; never throws for lack of space.
   */
  allocate(): number {
    const id = this.head;
    if (id === NIL) return -1;
    this.unlink(id);
    const h = this.hashes[id];
    if (h !== null) {
      this.cache.delete(h);
      this.hashes[id] = null;
      this.numEvictions++;
    }
    this.refCounts[id] = 1;
    return id;
  }

  /** Adds a reference. A free block (a prefix-cache hit on an evictable block) leaves the free queue in O(1). */
  acquire(id: number): void {
    if (this.queued[id] === 1) this.unlink(id);
    this.refCounts[id]++;
  }

  /**
   * Drops a reference and returns the new count. A block reaching 0 is NOT enqueued here: the caller
   * decides whether to `enqueueFree` it now or hold it a while.
   */
  release(id: number): number {
    const rc = --this.refCounts[id];
    if (rc < 0) throw new Error(`block ${id}: reference count below zero`);
    return rc;
  }

  /** Appends a zero-ref block at the tail of the free queue (it keeps its hash: still cached). */
  enqueueFree(id: number): void {
    if (this.refCounts[id] !== 0) throw new Error(`block ${id}: enqueueFree with refCount ${this.refCounts[id]}`);
    if (this.queued[id] === 1) throw new Error(`block ${id}: already in the free queue`);
    this.queued[id] = 1;
    this.prev[id] = this.tail;
    this.next[id] = NIL;
    if (this.tail === NIL) this.head = id;
    else this.next[this.tail] = id;
    this.tail = id;
    this.freeCount++;
  }

  /**
   * Puts a zero-ref block without a hash at the head of the free queue: it is allocated next, so blocks
   * holding nothing worth keeping (e.g. unused speculative lookahead) are reused before any cached block
   * is evicted.
   */
  enqueueFreeFront(id: number): void {
    if (this.refCounts[id] !== 0) throw new Error(`block ${id}: enqueueFreeFront with refCount ${this.refCounts[id]}`);
    if (this.queued[id] === 1) throw new Error(`block ${id}: already in the free queue`);
    if (this.hashes[id] !== null) throw new Error(`block ${id}: enqueueFreeFront of a cached block`);
    this.queued[id] = 1;
    this.prev[id] = NIL;
    this.next[id] = this.head;
    if (this.head === NIL) this.tail = id;
    else this.prev[this.head] = id;
    this.head = id;
    this.freeCount++;
  }

  /**
   * Registers `hash` as the content of block `id`. Returns false (and changes nothing) when the block
   * already has a hash or another block already holds this content (a duplicate computed independently:
   * the first one stays the canonical copy, this one stays uncached).
   */
  setHash(id: number, hash: BlockHash): boolean {
    if (this.hashes[id] !== null || this.cache.has(hash)) return false;
    this.hashes[id] = hash;
    this.cache.set(hash, id);
    return true;
  }

  /** Forgets the block's content hash (if any): it can no longer be found by `lookup`. */
  dropHash(id: number): void {
    const h = this.hashes[id];
    if (h === null) return;
    this.cache.delete(h);
    this.hashes[id] = null;
  }

  /** Block ids in the free queue, head (next to be allocated) first. O(numFree); for tests and debugging. */
  freeQueue(): number[] {
    const out: number[] = [];
    for (let id = this.head; id !== NIL; id = this.next[id]) out.push(id);
    return out;
  }

  /**
   * Checks the pool's own structure and throws on the first violation: queue links are consistent,
   * acyclic, hold each block at most once and only zero-ref blocks, and the count matches; every hash
   * map entry points to a block with that hash and every hashed block is in the map.
   */
  checkInvariants(): void {
    const seen = new Uint8Array(this.numBlocks);
    let count = 0;
    let prev = NIL;
    for (let id = this.head; id !== NIL; id = this.next[id]) {
      if (id < 0 || id >= this.numBlocks) throw new Error(`free queue: bad block id ${id}`);
      if (seen[id]) throw new Error(`free queue: block ${id} appears twice`);
      seen[id] = 1;
      if (this.prev[id] !== prev)
        throw new Error(`free queue: block ${id} has prev ${this.prev[id]}, expected ${prev}`);
      if (this.queued[id] !== 1) throw new Error(`free queue: block ${id} linked but not flagged`);
      if (this.refCounts[id] !== 0) throw new Error(`free queue: block ${id} has refCount ${this.refCounts[id]}`);
      prev = id;
      count++;
    }
    if (prev !== this.tail) throw new Error(`free queue: tail is ${this.tail}, last linked block is ${prev}`);
    if (count !== this.freeCount)
      throw new Error(`free queue: counted ${count} blocks, numFreeBlocks says ${this.freeCount}`);
    for (let id = 0; id < this.numBlocks; id++) {
      if (this.queued[id] === 1 && !seen[id]) throw new Error(`block ${id}: flagged free but not linked`);
      if (this.refCounts[id] < 0) throw new Error(`block ${id}: negative refCount`);
      const h = this.hashes[id];
      if (h !== null && this.cache.get(h) !== id) throw new Error(`block ${id}: hash ${h} not mapped to it`);
    }
    for (const [h, id] of this.cache) {
      if (this.hashes[id] !== h) throw new Error(`hash map: ${h} → block ${id}, whose hash is ${this.hashes[id]}`);
    }
  }

  private unlink(id: number): void {
    const p = this.prev[id];
    const n = this.next[id];
    if (p === NIL) this.head = n;
    else this.next[p] = n;
    if (n === NIL) this.tail = p;
    else this.prev[n] = p;
    this.prev[id] = NIL;
    this.next[id] = NIL;
    this.queued[id] = 0;
    this.freeCount--;
  }
}
