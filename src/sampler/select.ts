/**
 * Partial selection over token ids ranked by a score array, without sorting the whole vocabulary.
 *
 * Every function here uses one total order: higher score first, lower token id on ties. Ids live in an
 * Int32Array the caller owns (no allocation); scores are looked up by id.
 */

type Scores = ArrayLike<number>;

/** True when token `a` ranks before token `b` (higher score, then lower id). */
function before(s: Scores, a: number, b: number): boolean {
  const sa = s[a];
  const sb = s[b];
  return sa > sb || (sa === sb && a < b);
}

/** Below this many elements quickselect finishes with an insertion sort. */
const SMALL = 16;

/** Sorts ids[lo, hi) by rank (insertion sort: for short ranges). */
export function sortByRank(ids: Int32Array, lo: number, hi: number, s: Scores): void {
  for (let i = lo + 1; i < hi; i++) {
    const x = ids[i];
    let j = i - 1;
    while (j >= lo && before(s, x, ids[j])) {
      ids[j + 1] = ids[j];
      j--;
    }
    ids[j + 1] = x;
  }
}

/**
 * Lomuto partition of ids[lo, hi) around a median-of-three pivot. Afterwards ids[lo, p) rank before the
 * pivot, ids[p] is the pivot and ids[p+1, hi) rank after it. Returns p.
 */
function partition(ids: Int32Array, lo: number, hi: number, s: Scores): number {
  const mid = lo + ((hi - lo) >> 1);
  const last = hi - 1;
  const ab = before(s, ids[lo], ids[mid]);
  const bc = before(s, ids[mid], ids[last]);
  const ac = before(s, ids[lo], ids[last]);
  const m = ab === bc ? mid : ab === ac ? last : lo;
  let t = ids[m];
  ids[m] = ids[last];
  ids[last] = t;
  const pivot = t;
  let store = lo;
  for (let i = lo; i < last; i++) {
    const x = ids[i];
    if (before(s, x, pivot)) {
      ids[i] = ids[store];
      ids[store++] = x;
    }
  }
  t = ids[store];
  ids[store] = ids[last];
  ids[last] = t;
  return store;
}

/** Reorders ids[0, n) so that its k best come first (in no particular order). Expected O(n). */
export function quickSelectTopK(ids: Int32Array, n: number, k: number, s: Scores): void {
  if (k <= 0 || k >= n) return;
  let lo = 0;
  let hi = n;
  while (hi - lo > SMALL) {
    const p = partition(ids, lo, hi, s);
    if (p === k || p + 1 === k) return;
    if (p > k) hi = p;
    else lo = p + 1;
  }
  sortByRank(ids, lo, hi, s);
}

/**
 * Writes the ids of the k best among tokens 0..len-1 into out[0, k) (in no particular order); returns
 * min(k, len). A bounded min-heap keeps it one pass with one comparison for most tokens; for large k a
 * quickselect over all ids is cheaper (then `out` must hold `len` ids).
 */
export function selectTopK(s: Scores, len: number, k: number, out: Int32Array): number {
  if (k >= len) {
    for (let i = 0; i < len; i++) out[i] = i;
    return len;
  }
  if (k <= 0) return 0;
  if (k * 8 > len && out.length >= len) {
    for (let i = 0; i < len; i++) out[i] = i;
    quickSelectTopK(out, len, k, s);
    return k;
  }
  return heapTopK(s, len, k, out);
}

/** Bounded heap selection; see `selectTopK`. The heap root is the worst of the kept ids. */
function heapTopK(s: Scores, len: number, k: number, heap: Int32Array): number {
  // Fill: sift each of the first k ids up.
  for (let i = 0; i < k; i++) {
    let pos = i;
    while (pos > 0) {
      const parent = (pos - 1) >> 1;
      const p = heap[parent];
      if (!before(s, p, i)) break;
      heap[pos] = p;
      pos = parent;
    }
    heap[pos] = i;
  }
  for (let i = k; i < len; i++) {
    // Ids arrive in increasing order, so a tie with the root loses: only a strictly higher score enters.
    if (!(s[i] > s[heap[0]])) continue;
    let pos = 0;
    for (;;) {
      const c1 = 2 * pos + 1;
      if (c1 >= k) break;
      const c2 = c1 + 1;
      const worse = c2 < k && before(s, heap[c1], heap[c2]) ? c2 : c1;
      const w = heap[worse];
      if (!before(s, i, w)) break; // the new id ranks after both children: it stays here
      heap[pos] = w;
      pos = worse;
    }
    heap[pos] = i;
  }
  return k;
}

/**
 * Nucleus selection: reorders ids[0, n) so that its first J ids are the smallest top-ranked set whose
 * summed weight reaches `need`, and returns J (n when the whole set falls short). Expected O(n), no sort.
 */
export function selectByMass(ids: Int32Array, n: number, w: Scores, need: number): number {
  let lo = 0;
  let hi = n;
  let acc = 0; // weight of ids[0, lo), all of which rank before ids[lo, hi)
  while (hi - lo > SMALL) {
    const p = partition(ids, lo, hi, w);
    let sum = acc;
    for (let i = lo; i < p; i++) sum += w[ids[i]];
    if (sum >= need) {
      hi = p;
    } else {
      sum += w[ids[p]];
      if (sum >= need) return p + 1;
      acc = sum;
      lo = p + 1;
    }
  }
  sortByRank(ids, lo, hi, w);
  for (let i = lo; i < hi; i++) {
    acc += w[ids[i]];
    if (acc >= need) return i + 1;
  }
  // Only reached through rounding when hi < n (the prefix up to hi was known to reach `need`).
  return hi;
}
