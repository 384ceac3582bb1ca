// Closing an engine while its thread is inside a decode step must not abort the process. It did: close()
// terminated the engine thread at once, and a native call returning into the dying thread made
// node-addon-api rethrow its own error as a C++ exception (std::terminate). Now close() lets the thread
// finish its step and exit, and the addon swallows errors that can no longer be thrown into JS.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CpuBackend } from "../../src/backends/cpu/cpu-backend.ts";

const probe = CpuBackend.tryLoad({ threads: 1 });
const skip = "error" in probe ? `native CPU backend unavailable: ${probe.error}` : false;
if ("backend" in probe) probe.backend.dispose();

const CHILD = fileURLToPath(new URL("./close-busy-child.ts", import.meta.url));

test("close() of a busy engine on the cpu backend, then exit: no abort", { skip }, () => {
  // The close lands at a different point of the step loop in each run (the old code aborted in 3–7 of 8).
  for (let run = 0; run < 4; run++) {
    const r = spawnSync(process.execPath, ["--import", "tsx", CHILD], { encoding: "utf8" });
    assert.doesNotMatch(r.stderr, /terminate called/, `run ${run}: ${r.stderr}`);
    assert.equal(r.signal, null, `run ${run} ended by ${r.signal}: ${r.stderr}`);
    assert.equal(r.status, 0, `run ${run}: ${r.stderr}`);
    assert.match(r.stdout, /^ok$/m);
  }
});
