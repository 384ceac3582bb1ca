/**
 * Incremental stop-string matching over streamed text, with an Aho–Corasick automaton over the stop
 * strings (UTF-16 code units). The automaton state is the longest suffix of the text so far that is a prefix
 * of some stop string, which is exactly the text that must be held back; a stop fires on the first code
 * unit that completes any stop string. So the outcome never depends on how the text was split into pushes,
 * and each code unit costs amortized O(1) whatever the number and length of the stops.
 *
 * Several stops: the one that completes first wins (earliest end); among stops ending at the same place the
 * longest (so the earliest start). For non-overlapping occurrences that is simply the first in the text.
 */

/** Result of `StopStringMatcher.push`. */
export interface StopPushResult {
  /** Text safe to emit now. */
  text: string;
  /** True once a stop string has been hit (the text after it is dropped). */
  stopped: boolean;
  /** The stop string that was hit. */
  stop?: string;
}

export class StopStringMatcher {
  private readonly stops: readonly string[];
  /** Trie edges per state: code unit → state. State 0 is the root (empty string). */
  private readonly edges: Map<number, number>[] = [new Map()];
  /** Failure link: the state of the longest proper suffix that is also a trie node. */
  private readonly fail: number[] = [0];
  /** Length of the string a state stands for. */
  private readonly depth: number[] = [0];
  /** Index into `stops` of the longest stop ending at this state (itself or via failure links), or -1. */
  private readonly match: number[] = [-1];

  private state = 0;
  /** Not yet emitted text: the last depth[state] code units of the stream. */
  private held = "";
  private hit: string | null = null;

  /**
   * @param stops stop strings; empty ones are ignored.
   * @param includeStopStr emit the stop string itself before stopping (default false).
   */
  constructor(
    stops: readonly string[],
    private readonly includeStopStr = false,
  ) {
    this.stops = stops.slice();
    this.stops.forEach((stop, index) => {
      if (stop.length > 0) this.insert(stop, index);
    });
    this.link();
  }

  /** True once a stop string has been hit. */
  get stopped(): boolean {
    return this.hit !== null;
  }

  /**
   * Appends newly decoded text. Returns the text that is safe to emit now: anything that could still be
   * the start of a stop string is held back. On a hit, `text` ends right before the stop string (right
   * after it with includeStopStr) and everything after it, in this push and later ones, is dropped.
   */
  push(newText: string): StopPushResult {
    if (this.hit !== null) return { text: "", stopped: true, stop: this.hit };
    let s = this.state;
    for (let i = 0; i < newText.length; i++) {
      s = this.step(s, newText.charCodeAt(i));
      const m = this.match[s];
      if (m >= 0) {
        const stop = this.stops[m];
        const upToStop = this.held + newText.slice(0, i + 1);
        this.hit = stop;
        this.held = "";
        this.state = 0;
        const text = this.includeStopStr ? upToStop : upToStop.slice(0, upToStop.length - stop.length);
        return { text, stopped: true, stop };
      }
    }
    this.state = s;
    const all = this.held + newText;
    const cut = all.length - this.depth[s];
    this.held = all.slice(cut);
    return { text: all.slice(0, cut), stopped: false };
  }

  /** End of generation without a hit: returns the held-back text (and empties it). */
  flush(): string {
    const rest = this.held;
    this.held = "";
    this.state = 0;
    return rest;
  }

  private insert(stop: string, index: number): void {
    let s = 0;
    for (let i = 0; i < stop.length; i++) {
      const c = stop.charCodeAt(i);
      let t = this.edges[s].get(c);
      if (t === undefined) {
        t = this.edges.length;
        this.edges.push(new Map());
        this.fail.push(0);
        this.depth.push(this.depth[s] + 1);
        this.match.push(-1);
        this.edges[s].set(c, t);
      }
      s = t;
    }
    if (this.match[s] < 0) this.match[s] = index; // duplicates: the first one names the hit
  }

  /** Breadth-first: failure links, and `match` inherited along them (a node's own stop is the longest). */
  private link(): void {
    const queue: number[] = [];
    for (const t of this.edges[0].values()) queue.push(t);
    for (let head = 0; head < queue.length; head++) {
      const u = queue[head];
      if (this.match[u] < 0) this.match[u] = this.match[this.fail[u]];
      for (const [c, v] of this.edges[u]) {
        let f = this.fail[u];
        while (f !== 0 && !this.edges[f].has(c)) f = this.fail[f];
        this.fail[v] = this.edges[f].get(c) ?? 0;
        queue.push(v);
      }
    }
  }

  private step(s: number, c: number): number {
    while (s !== 0 && !this.edges[s].has(c)) s = this.fail[s];
    return this.edges[s].get(c) ?? 0;
  }
}
