/**
 * Rotary embedding frequencies for every rope type the llama family uses, computed as transformers'
 * `ROPE_INIT_FUNCTIONS` do (in float32, so that our angles match theirs bit for bit where possible).
 */

export interface RopeSpec {
  theta: number;
  type: "default" | "linear" | "llama3" | "dynamic" | "yarn";
  factor: number;
  /** llama3 */
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositionEmbeddings: number;
  /** yarn */
  betaFast: number;
  betaSlow: number;
  attentionFactor: number | null;
  partialRotaryFactor: number;
}

export interface RopeTable {
  invFreq: Float32Array;
  attentionFactor: number;
  rotaryDim: number;
}

const SUPPORTED = ["default", "linear", "llama3", "dynamic", "yarn"];

/** Parses an HF rope dict (`rope_parameters` or legacy `rope_scaling` merged with `rope_theta`). */
export function parseRopeSpec(raw: Record<string, unknown>, fallbackTheta: number, maxPos: number): RopeSpec {
  const type = String(raw.rope_type ?? raw.type ?? "default");
  if (!SUPPORTED.includes(type)) {
    throw new Error(`unsupported rope_type "${type}" (supported: ${SUPPORTED.join(", ")})`);
  }
  const num = (k: string, d: number) => (typeof raw[k] === "number" ? (raw[k] as number) : d);
  return {
    theta: num("rope_theta", fallbackTheta),
    type: type as RopeSpec["type"],
    factor: num("factor", 1),
    lowFreqFactor: num("low_freq_factor", 1),
    highFreqFactor: num("high_freq_factor", 4),
    originalMaxPositionEmbeddings: num("original_max_position_embeddings", maxPos),
    betaFast: num("beta_fast", 32),
    betaSlow: num("beta_slow", 1),
    attentionFactor: typeof raw.attention_factor === "number" ? raw.attention_factor : null,
    partialRotaryFactor: num("partial_rotary_factor", 1),
  };
}

/** Inverse frequencies for `headDim` (rotary part only) under `spec`. */
export function ropeTable(spec: RopeSpec, headDim: number): RopeTable {
  const rotaryDim = Math.floor(headDim * spec.partialRotaryFactor);
  const half = rotaryDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / spec.theta ** ((2 * i) / rotaryDim);
  let attentionFactor = 1;
  if (spec.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = inv[i] / spec.factor;
  } else if (spec.type === "llama3") {
    const oldCtx = spec.originalMaxPositionEmbeddings;
    const lowWavelen = oldCtx / spec.lowFreqFactor;
    const highWavelen = oldCtx / spec.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) {
        inv[i] = inv[i] / spec.factor;
      } else if (wavelen >= highWavelen) {
        const smooth = (oldCtx / wavelen - spec.lowFreqFactor) / (spec.highFreqFactor - spec.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / spec.factor) + smooth * inv[i];
      }
    }
  } else if (spec.type === "yarn") {
    attentionFactor = spec.attentionFactor ?? (spec.factor <= 1 ? 1 : 0.1 * Math.log(spec.factor) + 1);
    const oldCtx = spec.originalMaxPositionEmbeddings;
    const correctionDim = (rot: number) =>
      (rotaryDim * Math.log(oldCtx / (rot * 2 * Math.PI))) / (2 * Math.log(spec.theta));
    const low = Math.max(Math.floor(correctionDim(spec.betaFast)), 0);
    const high = Math.min(Math.ceil(correctionDim(spec.betaSlow)), rotaryDim - 1);
    for (let i = 0; i < half; i++) {
      const ramp = Math.min(1, Math.max(0, (i - low) / (high === low ? 0.001 : high - low)));
      const extrapolationFactor = 1 - ramp;
      const interp = inv[i] / spec.factor;
      inv[i] = interp * (1 - extrapolationFactor) + inv[i] * extrapolationFactor;
    }
  }
  // "dynamic" (NTK) equals default up to the original context length; longer contexts are not rescaled here.
  return { invFreq: inv, attentionFactor, rotaryDim };
}
