/**
 * The engine thread: builds the core, then runs steps back to back while there is work, yielding to
 * the message port between steps (so adds and aborts land at the next step boundary).
 */
import { parentPort, workerData } from "node:worker_threads";
import { buildCore } from "./build-core.ts";
import type { EngineCore } from "./engine-core.ts";
import type { CoreWorkerData, FromCore, ToCore } from "./messages.ts";
import type { SeqDelta } from "./types.ts";

const port = parentPort!;
const post = (m: FromCore) => port.postMessage(m);
const { opts } = workerData as CoreWorkerData;

let core: EngineCore;
let pending = false;
let stopping = false;

function kick(): void {
  if (pending || stopping) return;
  pending = true;
  setImmediate(run);
}

function run(): void {
  pending = false;
  if (stopping || !core.hasWork()) return;
  let deltas: SeqDelta[];
  try {
    deltas = core.step();
  } catch (e) {
    // A failing forward pass must not take the server down: fail every request in flight.
    const message = `engine step failed: ${(e as Error).message}`;
    deltas = failAll(message);
  }
  post({ type: "deltas", deltas, numWaiting: core.scheduler.numWaiting });
  kick();
}

function failAll(message: string): SeqDelta[] {
  const out: SeqDelta[] = [];
  for (const id of core.requestIds()) {
    for (const d of core.abort(id)) out.push({ ...d, finishReason: "error", error: message });
  }
  return out;
}

function handle(m: ToCore): void {
  switch (m.type) {
    case "add":
      try {
        core.addRequest(m.req);
      } catch (e) {
        post({ type: "rejected", id: m.req.id, message: (e as Error).message });
        return;
      }
      kick();
      return;
    case "abort": {
      const deltas = core.abort(m.id);
      if (deltas.length) post({ type: "deltas", deltas, numWaiting: core.scheduler.numWaiting });
      return;
    }
    case "finishSeq":
      core.finishSequence(m.id, m.index, m.reason);
      return;
    case "stats":
      post({ type: "stats", ticket: m.ticket, stats: core.stats() });
      return;
    case "shutdown":
      stopping = true;
      port.close();
      return;
  }
}

try {
  const built = await buildCore(opts);
  core = built.core;
  port.on("message", handle);
  post({ type: "ready", info: built.info, warning: built.warning });
} catch (e) {
  post({ type: "initError", message: (e as Error).message });
}
