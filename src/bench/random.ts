/**
 * Seeded randomness for the benchmark: a small PRNG (mulberry32 over a splitmix-expanded seed) plus the
 * distributions the datasets and the arrival process need (uniform integers, exponential, gamma).
 * Same seed ⇒ same datasets and the same arrival schedule on every run.
 */

export class BenchRng {
  #state: number;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    // Fold both 32-bit halves of the seed in, then scramble once so nearby seeds diverge at once.
    let z = (seed >>> 0) ^ Math.imul(Math.floor(seed / 4294967296) >>> 0, 0x9e3779b9);
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    this.#state = (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    if (hi < lo) throw new RangeError(`empty range [${lo}, ${hi}]`);
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[Math.floor(this.next() * items.length)];
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Exponential with the given rate (mean 1 / rate). */
  exponential(rate: number): number {
    return -Math.log(1 - this.next()) / rate;
  }

  /** Gamma(shape, scale), mean shape × scale (Marsaglia–Tsang; shape < 1 by the boost u^(1/shape)). */
  gamma(shape: number, scale: number): number {
    if (!(shape > 0) || !(scale > 0)) throw new RangeError(`gamma needs shape, scale > 0 (got ${shape}, ${scale})`);
    if (shape < 1) {
      let u = 0;
      while (u === 0) u = this.next();
      return this.gamma(shape + 1, scale) * u ** (1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    // Acceptance is > 95% per try; the bound only guards against a broken generator.
    for (let tries = 0; tries < 1000; tries++) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.next();
      if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v * scale;
    }
    return shape * scale;
  }

  /** Fisher–Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j], items[i]];
    }
    return items;
  }
}

/**
 * Inter-arrival gaps (seconds) for `count` requests at `rate` requests/s, as vLLM's benchmark_serving draws
 * them: gamma with shape = burstiness and scale = 1 / (rate × burstiness), so the mean rate is `rate` for
 * any burstiness; burstiness 1 is a Poisson process, < 1 burstier, > 1 more regular. The first request
 * goes at t = 0; an infinite rate sends everything at once.
 */
export function arrivalTimes(count: number, rate: number, burstiness: number, rng: BenchRng): number[] {
  const out = new Array<number>(count).fill(0);
  if (!Number.isFinite(rate)) return out;
  if (!(rate > 0)) throw new RangeError(`request rate must be > 0, got ${rate}`);
  if (!(burstiness > 0)) throw new RangeError(`burstiness must be > 0, got ${burstiness}`);
  const scale = 1 / (rate * burstiness);
  for (let i = 1; i < count; i++) out[i] = out[i - 1] + rng.gamma(burstiness, scale);
  return out;
}
