/** How a native backend lays out a weight it is given: a matrix [rows, cols] in the requested storage, or a vector kept as f32. */
import type { HostTensor, StorageDType } from "./backend.ts";

export interface WeightLayout {
  rows: number;
  /** 0 for a vector. */
  cols: number;
  storage: StorageDType;
}

export function weightLayout(t: HostTensor, storage: StorageDType): WeightLayout {
  const isMatrix = t.shape.length > 1;
  return {
    rows: t.shape[0],
    cols: isMatrix ? t.shape.slice(1).reduce((a, b) => a * b, 1) : 0,
    storage: isMatrix ? storage : "f32",
  };
}
