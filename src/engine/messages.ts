/** Messages between the engine client (main thread) and the engine core (its own thread). */
import type { CoreRequest } from "./engine-core.ts";
import type { EngineOptions } from "./options.ts";
import type { EngineInfo, EngineStats, FinishReason, SeqDelta } from "./types.ts";

export type ToCore =
  | { type: "add"; req: CoreRequest }
  | { type: "abort"; id: string }
  | { type: "finishSeq"; id: string; index: number; reason: FinishReason }
  | { type: "stats"; ticket: number }
  | { type: "shutdown" };

export type FromCore =
  | { type: "ready"; info: EngineInfo; warning: string | null }
  | { type: "initError"; message: string }
  | { type: "deltas"; deltas: SeqDelta[]; numWaiting: number }
  | { type: "rejected"; id: string; message: string }
  | { type: "stats"; ticket: number; stats: EngineStats };

export interface CoreWorkerData {
  opts: EngineOptions;
}
