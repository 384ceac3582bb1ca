/**
 * Maps an HF checkpoint's tensor names onto the graph's weights. q/k/v and gate/up are fused into one
 * matrix each at load (one matmul instead of three), whatever form the checkpoint stores.
 */
import type { Backend, HostTensor, StorageDType, Weight } from "../backends/backend.ts";
import { ModelFileError } from "../formats/model-file-error.ts";
import type { SafetensorsModel } from "../formats/safetensors.ts";
import type { ModelConfig } from "./config.ts";

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

/** Loads every weight of `cfg` from `st` into `backend`; matrices stored as `storage`. */
export function loadWeights(
  cfg: ModelConfig,
  st: SafetensorsModel,
  backend: Backend,
  storage: StorageDType = "f32",
): ModelWeights {
  const t = cfg.traits;
  const read = (name: string, shape?: number[]): HostTensor => {
    const info = st.info(name);
    if (shape && (info.shape.length !== shape.length || info.shape.some((v, i) => v !== shape[i]))) {
      throw new ModelFileError(
        `${info.file}: tensor ${name} has shape [${info.shape}], expected [${shape}] from config.json`,
        info.file,
        name,
      );
    }
    if (info.dtype === "i32") {
      throw new ModelFileError(
        `${info.file}: tensor ${name} is int32; weights must be F32, F16 or BF16`,
        info.file,
        name,
      );
    }
    return st.read(name) as HostTensor;
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
      ? read(`${a}qkv_proj.weight`, [qkvRows, hid])
      : concatRows([
          read(`${a}q_proj.weight`, [numHeads * headDim, hid]),
          read(`${a}k_proj.weight`, [numKvHeads * headDim, hid]),
          read(`${a}v_proj.weight`, [numKvHeads * headDim, hid]),
        ]);
    let qkvBias: Weight | null = null;
    if (st.has(`${a}q_proj.bias`)) {
      qkvBias = backend.weight(
        concatRows([
          read(`${a}q_proj.bias`, [numHeads * headDim]),
          read(`${a}k_proj.bias`, [numKvHeads * headDim]),
          read(`${a}v_proj.bias`, [numKvHeads * headDim]),
        ]),
      );
    } else if (st.has(`${a}qkv_proj.bias`)) {
      qkvBias = vec(`${a}qkv_proj.bias`, qkvRows);
    }
    const gateUp = t.fusedCheckpoint
      ? read(`${p}mlp.gate_up_proj.weight`, [2 * inter, hid])
      : concatRows([read(`${p}mlp.gate_proj.weight`, [inter, hid]), read(`${p}mlp.up_proj.weight`, [inter, hid])]);
    layers.push({
      inputNorm: vec(`${p}input_layernorm.weight`, hid),
      qkv: backend.weight(qkv, storage),
      qkvBias,
      qNorm: t.qkNorm ? vec(`${a}q_norm.weight`, headDim) : null,
      kNorm: t.qkNorm ? vec(`${a}k_norm.weight`, headDim) : null,
      o: backend.weight(read(`${a}o_proj.weight`, [hid, numHeads * headDim]), storage),
      postAttnNorm: t.sandwichNorms ? vec(`${p}post_attention_layernorm.weight`, hid) : null,
      preFfnNorm: t.sandwichNorms
        ? vec(`${p}pre_feedforward_layernorm.weight`, hid)
        : vec(`${p}post_attention_layernorm.weight`, hid),
      postFfnNorm: t.sandwichNorms ? optVec(`${p}post_feedforward_layernorm.weight`, hid) : null,
      gateUp: backend.weight(gateUp, storage),
      down: backend.weight(read(`${p}mlp.down_proj.weight`, [hid, inter]), storage),
    });
  }
  const embedHost = read("model.embed_tokens.weight", [cfg.vocabSize, hid]);
  const embed = backend.weight(embedHost, storage);
  const lmHead = cfg.tieWordEmbeddings ? embed : backend.weight(read("lm_head.weight", [cfg.vocabSize, hid]), storage);
  return { embed, layers, finalNorm: vec("model.norm.weight", hid), lmHead };
}
