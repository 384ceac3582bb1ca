/**
 * Maps an HF checkpoint's tensor names onto the graph's weights. q/k/v and gate/up are fused into one
 * matrix each at load (one matmul instead of three), whatever form the checkpoint stores.
 *
 * Weights come from a `TensorSource`: a safetensors checkpoint, or a GGUF file seen through HF names
 * (src/formats/gguf/model-source.ts), which may also hand over Q8_0/Q4_0 matrices as int8/int4
 * `QuantizedMatrix`es for a backend that can take them without a float round trip (`QuantizedWeightSink`).
 */
import type { Backend, HostTensor, StorageDType, Weight } from "../backends/backend.ts";
import { hostF32, toFloat32 } from "../formats/dtype.ts";
import { ModelFileError } from "../formats/model-file-error.ts";
import type { QuantizedMatrix } from "../formats/quant.ts";
import type { RawTensor } from "../formats/safetensors.ts";
import type { ModelConfig } from "./config.ts";

/**
 * Where the weights come from, addressed by Hugging Face tensor names and HF shapes ([out, in] for a
 * matrix). `SafetensorsModel` is one; the GGUF loader provides another.
 */
export interface TensorSource {
  has(name: string): boolean;
  /** Throws ModelFileError when `name` is absent. `file` names the checkpoint in messages. */
  info(name: string): { readonly shape: readonly number[]; readonly dtype: string; readonly file: string };
  /** The tensor as f32/f16/bf16 bytes (an "i32" tensor is refused by the loader). */
  read(name: string): RawTensor | HostTensor;
  /**
   * Optional: the matrix as an int8/int4 QuantizedMatrix (src/formats/quant.ts) when the file stores it in
   * a format that maps onto one exactly (GGUF Q8_0 → int8, Q4_0 → int4); null for any other tensor.
   */
  readQuantized?(name: string): QuantizedMatrix | null;
  /** Optional: the storage to give this matrix when the caller did not choose one (a GGUF's own format). */
  preferredStorage?(name: string): StorageDType;
}

/**
 * An optional backend capability: take an int8/int4 matrix as it is, without dequantizing and
 * re-quantizing (same layout and arithmetic as src/formats/quant.ts; matrices with cols % 32 == 0).
 */
export interface QuantizedWeightSink {
  weightQuantized(m: QuantizedMatrix): Weight;
}

export function acceptsQuantized(b: Backend): b is Backend & QuantizedWeightSink {
  return typeof (b as Partial<QuantizedWeightSink>).weightQuantized === "function";
}

/** Concatenates quantized matrices of one kind and width along rows (the quantized twin of concatRows). */
export function concatQuantized(parts: QuantizedMatrix[]): QuantizedMatrix {
  const { kind, cols } = parts[0];
  for (const p of parts) {
    if (p.kind !== kind || p.cols !== cols) throw new Error(`cannot fuse ${kind}[${cols}] with ${p.kind}[${p.cols}]`);
  }
  if (parts.length === 1) return parts[0];
  const rows = parts.reduce((a, p) => a + p.rows, 0);
  const q = kind === "int8" ? new Int8Array(rows * cols) : new Uint8Array(rows * cols);
  const scales = new Float32Array(parts.reduce((a, p) => a + p.scales.length, 0));
  let qo = 0;
  let so = 0;
  for (const p of parts) {
    q.set(p.q as never, qo);
    scales.set(p.scales, so);
    qo += p.q.length;
    so += p.scales.length;
  }
  return { kind, rows, cols, q, scales };
}

export interface LayerWeights {
  inputNorm: Weight;
  /** [(H + 2·KV)·headDim, hidden] */
  qkv: Weight;
  qkvBias: Weight | null;
  qNorm: Weight | null;
  kNorm: Weight | null;
  o: Weight;
  /** Gemma 3: norm of the attention output before the residual add. */
  postAttnNorm: Weight | null;
  /** The norm in front of the MLP (Llama's post_attention_layernorm, Gemma 3's pre_feedforward_layernorm). */
  preFfnNorm: Weight;
  /** Gemma 3: norm of the MLP output before the residual add. */
  postFfnNorm: Weight | null;
  /** [2·intermediate, hidden]: gate rows then up rows. */
  gateUp: Weight;
  down: Weight;
}

export interface ModelWeights {
  embed: Weight;
  layers: LayerWeights[];
  finalNorm: Weight;
  lmHead: Weight;
}

/** Concatenates tensors along dim 0 (all of one dtype and one row width). */
export function concatRows(parts: HostTensor[]): HostTensor {
  const dtype = parts[0].dtype;
  const cols = parts[0].shape.slice(1);
  for (const p of parts) {
    if (p.dtype !== dtype) throw new Error(`cannot fuse tensors of dtypes ${dtype} and ${p.dtype}`);
  }
  const total = parts.reduce((a, p) => a + p.data.byteLength, 0);
  const data = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    data.set(p.data, off);
    off += p.data.byteLength;
  }
  return { dtype, shape: [parts.reduce((a, p) => a + p.shape[0], 0), ...cols], data };
}

/**
 * Loads every weight of `cfg` from `st` into `backend`; matrices stored as `storage`, or, when it is
 * undefined, as the source prefers (f32 for safetensors). `log` receives one-line notes (default: stderr).
 */
export function loadWeights(
  cfg: ModelConfig,
  st: TensorSource,
  backend: Backend,
  storage?: StorageDType,
  log: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): ModelWeights {
  const t = cfg.traits;
  const checkShape = (name: string, shape?: number[]) => {
    const info = st.info(name);
    if (shape && (info.shape.length !== shape.length || info.shape.some((v, i) => v !== shape[i]))) {
      throw new ModelFileError(
        `${info.file}: tensor ${name} has shape [${info.shape}], expected [${shape}] from the model config`,
        info.file,
        name,
      );
    }
    return info;
  };
  const read = (name: string, shape?: number[]): HostTensor => {
    const info = checkShape(name, shape);
    if (info.dtype === "i32") {
      throw new ModelFileError(
        `${info.file}: tensor ${name} is int32; weights must be F32, F16 or BF16`,
        info.file,
        name,
      );
    }
    return st.read(name) as HostTensor;
  };
  let noted = false;
  /** The matrix made of `names` stacked along rows (q/k/v and gate/up fusion), stored as requested. */
  const matrix = (names: string[], shapes: number[][]): Weight => {
    const want = storage ?? st.preferredStorage?.(names[0]) ?? "f32";
    if ((want === "int8" || want === "int4") && st.readQuantized) {
      if (acceptsQuantized(backend)) {
        for (let i = 0; i < names.length; i++) checkShape(names[i], shapes[i]);
        const parts = names.map((n) => st.readQuantized?.(n) ?? null);
        if (parts.every((p): p is QuantizedMatrix => p !== null && p.kind === want)) {
          return backend.weightQuantized(concatQuantized(parts));
        }
      } else if (!noted && st.preferredStorage?.(names[0]) === want) {
        noted = true;
        log(
          `loom: backend "${backend.name}" takes no pre-quantized weights; ${want} matrices are decoded to float ` +
            "and re-quantized by the backend (exact for llama.cpp-made Q8_0 blocks, approximate for Q4_0)",
        );
      }
    }
    const parts = names.map((n, i) => read(n, shapes[i]));
    // Parts of one fused matrix may come in different dtypes (a GGUF may store q and v differently).
    const same = parts.every((p) => p.dtype === parts[0].dtype);
    const host =
      parts.length === 1 ? parts[0] : concatRows(same ? parts : parts.map((p) => hostF32(toFloat32(p), p.shape)));
    return backend.weight(host, want);
  };
  const vec = (name: string, n: number) => backend.weight(read(name, [n]));
  const optVec = (name: string, n: number) => (st.has(name) ? vec(name, n) : null);
  const { hiddenSize: hid, headDim, numHeads, numKvHeads, intermediateSize: inter } = cfg;
  const qkvRows = (numHeads + 2 * numKvHeads) * headDim;

  const layers: LayerWeights[] = [];
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;
    const a = `${p}self_attn.`;
    const qkv = t.fusedCheckpoint
      ? matrix([`${a}qkv_proj.weight`], [[qkvRows, hid]])
      : matrix(
          [`${a}q_proj.weight`, `${a}k_proj.weight`, `${a}v_proj.weight`],
          [
            [numHeads * headDim, hid],
            [numKvHeads * headDim, hid],
            [numKvHeads * headDim, hid],
          ],
        );
    let qkvBias: Weight | null = null;
    if (st.has(`${a}q_proj.bias`)) {
      qkvBias = backend.weight(
        concatRows(
          [
            read(`${a}q_proj.bias`, [numHeads * headDim]),
            read(`${a}k_proj.bias`, [numKvHeads * headDim]),
            read(`${a}v_proj.bias`, [numKvHeads * headDim]),
          ].map((b) => hostF32(toFloat32(b), b.shape)),
        ),
      );
    } else if (st.has(`${a}qkv_proj.bias`)) {
      qkvBias = vec(`${a}qkv_proj.bias`, qkvRows);
    }
    const gateUp = t.fusedCheckpoint
      ? matrix([`${p}mlp.gate_up_proj.weight`], [[2 * inter, hid]])
      : matrix(
          [`${p}mlp.gate_proj.weight`, `${p}mlp.up_proj.weight`],
          [
            [inter, hid],
            [inter, hid],
          ],
        );
    layers.push({
      inputNorm: vec(`${p}input_layernorm.weight`, hid),
      qkv,
      qkvBias,
      qNorm: t.qkNorm ? vec(`${a}q_norm.weight`, headDim) : null,
      kNorm: t.qkNorm ? vec(`${a}k_norm.weight`, headDim) : null,
      o: matrix([`${a}o_proj.weight`], [[hid, numHeads * headDim]]),
      postAttnNorm: t.sandwichNorms ? vec(`${p}post_attention_layernorm.weight`, hid) : null,
      preFfnNorm: t.sandwichNorms
        ? vec(`${p}pre_feedforward_layernorm.weight`, hid)
        : vec(`${p}post_attention_layernorm.weight`, hid),
      postFfnNorm: t.sandwichNorms ? optVec(`${p}post_feedforward_layernorm.weight`, hid) : null,
      gateUp,
      down: matrix([`${p}mlp.down_proj.weight`], [[hid, inter]]),
    });
  }
  const embed = matrix(["model.embed_tokens.weight"], [[cfg.vocabSize, hid]]);
  const lmHead = cfg.tieWordEmbeddings ? embed : matrix(["lm_head.weight"], [[cfg.vocabSize, hid]]);
  return { embed, layers, finalNorm: vec("model.norm.weight", hid), lmHead };
}
