// Builds the native CPU backend (build/Release/loom_cpu.node) with node-gyp. Never fails the install:
// when the build cannot run or fails (no compiler, no headers, unsupported platform) it prints one
// warning line saying why and exits 0, and Loom falls back to the TypeScript reference backend.
//
//   node scripts/build-native.mjs            (LOOM_SKIP_NATIVE=1 skips the build)
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const warn = (why) => {
  console.warn(`loom: native CPU backend not built (${why}); the reference backend will be used`);
  process.exit(0);
};

if (process.env.LOOM_SKIP_NATIVE === "1") warn("LOOM_SKIP_NATIVE=1");

/** node-gyp: the one npm points lifecycle scripts at, a local install, or the one bundled with npm. */
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  try {
    candidates.push(createRequire(import.meta.url).resolve("node-gyp/bin/node-gyp.js"));
  } catch {}
  const prefix = dirname(dirname(process.execPath));
  candidates.push(
    join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
    join(dirname(process.execPath), "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
  );
  return candidates.find((p) => p && existsSync(p)) ?? null;
}

const gyp = findNodeGyp();
if (!gyp) warn("node-gyp not found");

const args = [gyp, "rebuild", "-j", "max"];
// Offline builds: use the headers installed next to node unless npm already says where they are.
if (!process.env.npm_config_nodedir) {
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
}

const res = spawnSync(process.execPath, args, { cwd: root, encoding: "utf8", maxBuffer: 64 << 20 });
if (res.error) warn(res.error.message);
if (res.status !== 0) {
  const lines = `${res.stdout ?? ""}\n${res.stderr ?? ""}`.split("\n").map((l) => l.trim());
  const why =
    lines.find((l) => /error:|not found|No such file|command not found/i.test(l) && !l.startsWith("gyp")) ??
    lines.find((l) => l.startsWith("make: ***")) ??
    lines.find((l) => l.startsWith("gyp ERR! stack Error")) ??
    `node-gyp exited with ${res.status}`;
  warn(why.slice(0, 300));
}
const out = join(root, "build", "Release", "loom_cpu.node");
if (!existsSync(out)) warn(`node-gyp succeeded but ${out} is missing`);
console.log(`loom: built native CPU backend (${out})`);
