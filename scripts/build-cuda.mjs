// Builds the CUDA backend (build/cuda/loom_cuda.node) with nvcc when nvcc is found. Never fails the
// install: when nvcc, the Node headers or node-addon-api are missing, or compilation fails, it prints one
// warning line saying why and exits 0 (Loom then runs on the CPU backends). `--strict` exits 1 instead.
//
//   node scripts/build-cuda.mjs [--strict] [--clean]
//   node scripts/build-cuda.mjs --emulate [--asan]    (no GPU, no nvcc: see below)
//
// --emulate builds the same kernel source with the host C++ compiler against native/cuda/emu, a CPU
// emulation of the CUDA runtime (threads as fibers, warp shuffles and barriers as switch points, a CPU
// cuBLAS), into build/cuda-emu/loom_cuda.node. Tests point LOOM_CUDA_ADDON at it to run the conformance
// suite on machines without a GPU; --asan adds AddressSanitizer (run node with LD_PRELOAD=libasan.so).
//
// Environment:
//   LOOM_SKIP_CUDA=1        skip the build
//   LOOM_CUDA_ARCHS=80,90   compute capabilities to build machine code for (default: 80,90)
//   NVCC=/path/to/nvcc      the compiler (default: nvcc on PATH, then $CUDA_HOME/bin, /usr/local/cuda/bin)
//   LOOM_NODE_HEADERS=dir   a folder holding node_api.h (default: $npm_config_nodedir/include/node, the
//                           include/node beside this node binary, /usr/include/node)
//   LOOM_NODE_ADDON_API=dir a folder holding napi.h (default: node-addon-api's include_dir)
//   LOOM_CUDA_JOBS=n        parallel compiler processes (default: available cores)
//   LOOM_CUDA_BUILD_DIR=dir output folder (default: build/cuda; the backend then needs LOOM_CUDA_ADDON)
//
// Run it after scripts/build-native.mjs: `node-gyp rebuild` deletes the whole build/ folder.
//
// No cuBLAS at link time: the addon dlopen()s libcublas.so.13 (or .12) when it starts (cublas_loader.cc).
// Objects are rebuilt only when a source or a header under native/cuda (or native/common) is newer than they are.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const emulate = process.argv.includes("--emulate");
const asan = emulate && process.argv.includes("--asan");
const strict = process.argv.includes("--strict") || emulate;
const srcDir = join(root, "native", "cuda");
const outDir = resolve(
  root,
  process.env.LOOM_CUDA_BUILD_DIR || join("build", emulate ? (asan ? "cuda-emu-asan" : "cuda-emu") : "cuda"),
);
const objDir = join(outDir, "obj");
const out = join(outDir, "loom_cuda.node");

function warn(why) {
  console.warn(`loom: CUDA backend not built (${why}); the CPU backends will be used`);
  process.exit(strict ? 1 : 0);
}

if (process.env.LOOM_SKIP_CUDA === "1") warn("LOOM_SKIP_CUDA=1");
if (process.argv.includes("--clean")) rmSync(outDir, { recursive: true, force: true });

function findNvcc() {
  const candidates = [process.env.NVCC];
  const which = spawnSync("sh", ["-c", "command -v nvcc"], { encoding: "utf8" });
  if (which.status === 0) candidates.push(which.stdout.trim());
  for (const v of ["CUDA_HOME", "CUDA_PATH"]) if (process.env[v]) candidates.push(join(process.env[v], "bin", "nvcc"));
  candidates.push("/usr/local/cuda/bin/nvcc");
  return candidates.find((p) => p && existsSync(p)) ?? null;
}

function findNodeHeaders() {
  const prefix = dirname(dirname(process.execPath));
  const candidates = [
    process.env.LOOM_NODE_HEADERS,
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, "include", "node"),
    join(prefix, "include", "node"),
    "/usr/include/node",
    "/usr/local/include/node",
  ];
  return candidates.find((d) => d && existsSync(join(d, "node_api.h"))) ?? null;
}

function findAddonApi() {
  const env = process.env.LOOM_NODE_ADDON_API;
  if (env && existsSync(join(env, "napi.h"))) return resolve(env);
  try {
    const dir = createRequire(import.meta.url)("node-addon-api").include_dir;
    const abs = resolve(root, dir);
    return existsSync(join(abs, "napi.h")) ? abs : null;
  } catch {
    return null;
  }
}

const nvcc = emulate ? process.env.CXX || "g++" : findNvcc();
if (!nvcc) warn("nvcc not found");
const nodeHeaders = findNodeHeaders();
if (!nodeHeaders) warn("Node headers (node_api.h) not found; set LOOM_NODE_HEADERS");
const addonApi = findAddonApi();
if (!addonApi) warn("node-addon-api not installed");

const archs = (emulate ? "emu" : (process.env.LOOM_CUDA_ARCHS ?? "80,90"))
  .split(",")
  .map((a) => a.trim().replace(/^sm_/, ""))
  .filter(Boolean);
if (!emulate && (!archs.length || archs.some((a) => !/^\d+a?$/.test(a))))
  warn(`bad LOOM_CUDA_ARCHS "${process.env.LOOM_CUDA_ARCHS}"`);

const defines = [
  "-DNAPI_VERSION=8",
  "-DNAPI_CPP_EXCEPTIONS",
  "-DNODE_ADDON_API_DISABLE_DEPRECATED",
  "-DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
  `-DLOOM_CUDA_ARCHS="${emulate ? "emulated" : archs.map((a) => `sm_${a}`).join(",")}"`,
  `-I${nodeHeaders}`,
  `-I${addonApi}`,
];
const common = emulate
  ? [
      "-std=c++17",
      asan ? "-O1" : "-O2",
      "-fPIC",
      "-fvisibility=hidden",
      "-ffp-contract=off",
      "-Wno-unknown-pragmas",
      ...(asan ? ["-fsanitize=address", "-fno-omit-frame-pointer"] : []),
      "-DLOOM_CUDA_EMULATION",
      `-I${join(srcDir, "emu")}`,
      ...defines,
    ]
  : ["-std=c++17", "-O3", "-Xcompiler", "-fPIC", "-Xcompiler", "-fvisibility=hidden", ...defines];
const gencode = emulate ? [] : archs.flatMap((a) => ["-gencode", `arch=compute_${a},code=sm_${a}`]);

const sources = [
  ...readdirSync(srcDir).filter((f) => f.endsWith(".cu") || f.endsWith(".cc")),
  ...(emulate ? ["emu/emu.cc"] : []),
];
const headers = [
  ...readdirSync(srcDir).filter((f) => /\.(h|cuh)$/.test(f)),
  ...(emulate
    ? readdirSync(join(srcDir, "emu"))
        .filter((f) => f.endsWith(".h"))
        .map((f) => `emu/${f}`)
    : []),
  // the numeric spec shared with the CPU addon
  ...readdirSync(join(srcDir, "..", "common"))
    .filter((f) => f.endsWith(".h"))
    .map((f) => `../common/${f}`),
];
const newestHeader = Math.max(0, ...headers.map((h) => statSync(join(srcDir, h)).mtimeMs));
const buildScript = statSync(fileURLToPath(import.meta.url)).mtimeMs;
mkdirSync(objDir, { recursive: true });

/** An object is stale when its source, a header, this script or the arch list changed since it was built. */
const archStamp = join(objDir, `archs-${archs.join("_")}`);
const archsChanged = !existsSync(archStamp);
if (archsChanged) {
  for (const f of readdirSync(objDir)) rmSync(join(objDir, f), { force: true });
  mkdirSync(objDir, { recursive: true });
  spawnSync("touch", [archStamp]);
}

const jobs = sources.map((f) => {
  const src = join(srcDir, f);
  const obj = join(objDir, `${f.replace("/", "_")}.o`);
  const stale = !existsSync(obj) || Math.max(statSync(src).mtimeMs, newestHeader, buildScript) > statSync(obj).mtimeMs;
  const lang = emulate && f.endsWith(".cu") ? ["-x", "c++"] : [];
  const args = [...common, ...(f.endsWith(".cu") ? gencode : []), ...lang, "-c", src, "-o", obj];
  return { f, obj, stale, args };
});

function run(args) {
  return new Promise((res) => {
    const p = spawn(nvcc, args, { cwd: root });
    let log = "";
    p.stdout.on("data", (d) => (log += d));
    p.stderr.on("data", (d) => (log += d));
    p.on("error", (e) => res({ code: -1, log: e.message }));
    p.on("close", (code) => res({ code, log }));
  });
}

function firstError(log) {
  const lines = log.split("\n").map((l) => l.trim());
  return lines.find((l) => /error/i.test(l)) ?? lines.find(Boolean) ?? "no output";
}

const parallel = Math.max(1, Number(process.env.LOOM_CUDA_JOBS) || availableParallelism());
const todo = jobs.filter((j) => j.stale);
const started = Date.now();
let failed = null;
async function worker() {
  while (todo.length && !failed) {
    const j = todo.shift();
    mkdirSync(objDir, { recursive: true });
    const r = await run(j.args);
    if (r.code !== 0) {
      rmSync(j.obj, { force: true });
      failed = `${j.f}: ${firstError(r.log)}`;
      if (process.env.LOOM_CUDA_VERBOSE === "1" || strict) process.stderr.write(r.log);
    }
  }
}
await Promise.all(Array.from({ length: Math.min(parallel, todo.length || 1) }, worker));
if (failed) warn(failed.slice(0, 400));

mkdirSync(outDir, { recursive: true });
const linkArgs = emulate
  ? ["-shared", ...(asan ? ["-fsanitize=address"] : []), "-o", out, ...jobs.map((j) => j.obj), "-ldl", "-lpthread"]
  : ["-shared", "-cudart", "static", "-o", out, ...jobs.map((j) => j.obj), "-ldl", "-lpthread"];
const link = await run(linkArgs);
if (link.code !== 0) {
  if (strict) process.stderr.write(link.log);
  warn(`link: ${firstError(link.log).slice(0, 300)}`);
}
const secs = ((Date.now() - started) / 1000).toFixed(0);
const what = emulate ? `CPU emulation${asan ? " with AddressSanitizer" : ""}` : archs.map((a) => `sm_${a}`).join(", ");
console.log(`loom: built CUDA backend for ${what} (${out}, ${secs} s)`);
