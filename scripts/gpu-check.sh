#!/usr/bin/env bash
# The GPU check of the CUDA backend: one script, about three minutes on one H200 (seen 138-148 s; 169-179 s
# with a packed baseline).
#
#   On a dev machine (needs node + node_modules; once per change):
#     bash scripts/gpu-check.sh pack
#     LOOM_GPU_BASELINE=<git rev> bash scripts/gpu-check.sh pack   (also packs that revision's addon, built
#         here for sm_90, and benchmark bundle: the check then times it in alternation with the current code
#         at batch 1, 8 and 128, the baseline of a change measured in the same run on the same card)
#   builds .device/ (git-ignored): node.xz (this node, stripped, xz), bundle.tar.xz (js/: esbuild bundles
#   of the CLI, the CUDA tests, the benchmark and a direct validator — the GPU machine has no node_modules
#   — and node-api/: Node-API + node-addon-api headers for nvcc). The refs and their models travel in the
#   working tree (test/fixtures, models/).
#
#   On the GPU machine (CUDA 13 toolkit with cuBLAS, nvcc, Python with torch + transformers, no Node):
#     bash scripts/gpu-check.sh            (carry .device; results also go to $OUT when set)
#
# $OUT receives gpu-check.log, tests.log, validate.log, generate.log, transformers.json, bench.json, bench.txt
# and sanitizer.log (8 files: what a device call brings back).
# Dry run without a GPU: LOOM_GPU_CHECK_EMULATE=1 builds the CPU emulation of the kernels instead of the sm_90
# addon and runs everything against it (the benchmark as --smoke); LOOM_GPU_CHECK_REFS=a,b limits the refs.
# Steps: unpack node → build the addon for sm_90 (LOOM_CUDA_ARCHS overrides) → CUDA tests (conformance
# exact + tensor cores, device features) → validate every ref with --backend cuda --dtype bf16 (tensor
# cores, bf16 tolerance; and the exact f32 path, tolerance 1e-3) → one generation through the engine →
# transformers baseline (+ the card's copy bandwidth) → benchmark → each GEMV alone, batch 1 without graphs →
# compute-sanitizer memcheck of the conformance suite → a short table. Each step has a timeout; a failing
# step is reported and the next one still runs.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEV=$ROOT/.device
# bf16 activations on tensor cores move logits by up to ~0.1 on the wide-logit arch-* fixtures (seen on the
# CPU emulation); the f32-matmul run keeps the refs' own 1e-3.
TOL_TC=${LOOM_BF16_TOLERANCE:-0.25}
TOL_EXACT=1e-3
# Validation stops starting new refs this many seconds after the check began (the benchmark comes after it);
# each validation run gets VALIDATE_TIMEOUT seconds. Emulated runs are ~50x slower.
VALIDATE_DEADLINE=${LOOM_GPU_CHECK_VALIDATE_DEADLINE:-240}
VALIDATE_TIMEOUT=${LOOM_GPU_CHECK_VALIDATE_TIMEOUT:-60}
if [ "${LOOM_GPU_CHECK_EMULATE:-0}" = 1 ]; then
  VALIDATE_DEADLINE=${LOOM_GPU_CHECK_VALIDATE_DEADLINE:-3600}
  VALIDATE_TIMEOUT=${LOOM_GPU_CHECK_VALIDATE_TIMEOUT:-300}
fi

# ------------------------------------------------------------------------------------------------------
# pack (dev machine)
# ------------------------------------------------------------------------------------------------------
pack() {
  set -e
  local esbuild=$ROOT/node_modules/.bin/esbuild
  [ -x "$esbuild" ] || { echo "pack: $esbuild missing (npm install first)"; exit 1; }
  mkdir -p "$DEV"
  rm -rf "$DEV/js" "$DEV/node-api" "$DEV/out"  # what a check unpacked or wrote here before
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/js" "$stage/node-api"

  # 1. node, stripped and xz-compressed (x86 BCJ filter): ~21 MiB for node 20
  local nodebin
  nodebin=$(readlink -f "$(command -v node)")
  if [ "${LOOM_PACK_SKIP_NODE:-0}" != 1 ] && { [ ! -f "$DEV/node.xz" ] || [ "$nodebin" -nt "$DEV/node.xz" ]; }; then
    echo "pack: compressing $nodebin (a few minutes)"
    cp "$nodebin" "$stage/node"
    command -v strip >/dev/null && strip "$stage/node" || true
    xz -T0 --x86 --lzma2=preset=9e -c "$stage/node" >"$DEV/node.xz.part" && mv "$DEV/node.xz.part" "$DEV/node.xz"
    rm -f "$stage/node"
  fi

  # 2. headers for nvcc: Node-API (from this node's include dir) and node-addon-api
  local hdr=""
  for d in "$(dirname "$(dirname "$nodebin")")/include/node" /usr/include/node /usr/local/include/node; do
    [ -f "$d/node_api.h" ] && { hdr=$d; break; }
  done
  [ -n "$hdr" ] || { echo "pack: node_api.h not found"; exit 1; }
  cp "$hdr"/{node_api.h,node_api_types.h,js_native_api.h,js_native_api_types.h} "$stage/node-api/"
  local napi
  napi=$(node -p "require('node-addon-api').include_dir")
  cp "$napi"/{napi.h,napi-inl.h,napi-inl.deprecated.h} "$stage/node-api/"

  # 3. bundles (ESM, everything inlined). They run from .device/js, two levels below the repo, so that
  #    the sources' new URL("../../models/…", import.meta.url) still points into the repo.
  local banner='import { createRequire as __loomCr } from "node:module"; import { fileURLToPath as __loomFu } from "node:url"; import { dirname as __loomDn } from "node:path"; const require = __loomCr(import.meta.url); const __filename = __loomFu(import.meta.url); const __dirname = __loomDn(__filename);'
  local opts=(--bundle --platform=node --format=esm --target=node20 --log-level=warning "--banner:js=$banner")
  echo 'import { main } from "./src/cli/main.ts"; await main(process.argv);' |
    "$esbuild" "${opts[@]}" --sourcefile=loom-entry.ts --loader=ts --outfile="$stage/js/loom.mjs"
  "$esbuild" "${opts[@]}" scripts/bench-gpu.ts --outfile="$stage/js/bench-gpu.mjs"
  # the engine thread: EngineClient starts new URL("./core-worker.mjs", import.meta.url), beside loom.mjs
  "$esbuild" "${opts[@]}" src/engine/core-worker.ts --outfile="$stage/js/core-worker.mjs"
  for t in load conformance conformance-tc device; do
    "$esbuild" "${opts[@]}" "test/cuda/$t.test.ts" --outfile="$stage/js/$t.test.mjs"
  done
  # The direct validator: `loom validate` on CudaBackend without the CLI's backend selection.
  cat <<'TS' | "$esbuild" "${opts[@]}" --sourcefile=validate-cuda.ts --loader=ts --outfile="$stage/js/validate-cuda.mjs"
import type { StorageDType } from "./src/backends/backend.ts";
import { CudaBackend } from "./src/backends/cuda/cuda-backend.ts";
import { loadModel } from "./src/models/model.ts";
import { readRefFile, validateAll } from "./src/models/validate.ts";
const [refsPath, modelDir, dtype, tolText] = process.argv.slice(2);
const tolerance = Number(tolText);
const refs = readRefFile(refsPath);
const loaded = CudaBackend.tryLoad();
if ("error" in loaded) {
  console.log(`CUDA backend unavailable: ${loaded.error}`);
  process.exit(1);
}
const be = loaded.backend;
const longest = Math.max(...refs.cases.map((c) => c.prompt_ids.length + c.greedy_ids.length));
const model = loadModel(modelDir, be, {
  maxTokens: Math.max(...refs.cases.map((c) => c.prompt_ids.length)),
  numBlocks: Math.ceil(longest / 16) + 1,
  blockSize: 16,
  storage: dtype as StorageDType,
});
console.log(`model ${model.dir} on ${be.describe()}, weights ${dtype}, tolerance ${tolerance}`);
const results = validateAll(model.graph, refs, tolerance);
for (const r of results) {
  console.log(
    `${r.name}  ${r.promptTokens}  max|Δ|top32 ${r.maxAbsDiffTop.toExponential(2)}  |Δ|lse ${r.lseAbsDiff.toExponential(2)}  ` +
      `${r.greedyMatched}/${r.greedyTotal} ${r.greedy}  ${r.pass ? "ok" : "FAIL"}`,
  );
}
const failed = results.filter((r) => !r.pass).length;
console.log(failed ? `${failed} of ${results.length} cases FAILED` : `all ${results.length} cases passed`);
be.dispose();
process.exitCode = failed ? 1 : 0;
TS
  # 4. optional baseline: another revision's addon (sm_90) and benchmark bundle, in js/base
  if [ -n "${LOOM_GPU_BASELINE:-}" ]; then
    local base rev
    rev=$(git rev-parse --short "$LOOM_GPU_BASELINE")
    base=$(mktemp -d)
    git archive "$rev" | tar -C "$base" -x
    ln -s "$ROOT/node_modules" "$base/node_modules"
    echo "pack: building the baseline $rev for sm_90"
    (cd "$base" && LOOM_CUDA_ARCHS=90 node scripts/build-cuda.mjs --strict >/dev/null)
    mkdir -p "$stage/js/base"
    cp "$base/build/cuda/loom_cuda.node" "$stage/js/base/"
    "$esbuild" "${opts[@]}" "$base/scripts/bench-gpu.ts" --outfile="$stage/js/base/bench-gpu.mjs"
    echo "$rev" >"$stage/js/base/REV"
    rm -rf "$base"
  fi
  tar -C "$stage" -cf - js node-api | xz -T0 -9 >"$DEV/bundle.tar.xz"

  # The refs and their models travel in the working tree (test/fixtures, models/).
  local tree
  tree=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  rm -f "$DEV/shared.tar.xz"  # what an older pack carried them in
  rm -rf "$stage"

  local dev
  dev=$(du -sb "$DEV" | cut -f1)
  echo "pack: .device is $((dev / 1048576)) MiB; working tree $((tree / 1048576)) MiB; together $(((dev + tree) / 1048576)) MiB (limit 64)"
  du -sh "$DEV"/* | sed 's/^/pack:   /'
}

if [ "${1:-}" = pack ]; then
  pack
  exit 0
fi

# ------------------------------------------------------------------------------------------------------
# the check (GPU machine)
# ------------------------------------------------------------------------------------------------------
OUTDIR=${OUT:-$DEV/out}
mkdir -p "$OUTDIR"
LOG=$OUTDIR/gpu-check.log
: >"$LOG"
exec > >(tee -a "$LOG") 2>&1
T0=$(date +%s)
SUMMARY=()
note() { SUMMARY+=("$(printf '%-34s %s' "$1" "$2")"); echo "== $1: $2"; }
elapsed() { echo "$(($(date +%s) - $1))s"; }

echo "== gpu-check $(date -u +%FT%TZ) in $ROOT"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

# node
if ! command -v node >/dev/null; then
  if [ -f "$DEV/node.xz" ]; then
    mkdir -p /tmp/loom-node/bin
    xz -dc "$DEV/node.xz" >/tmp/loom-node/bin/node && chmod +x /tmp/loom-node/bin/node
    export PATH=/tmp/loom-node/bin:$PATH
  fi
fi
if ! command -v node >/dev/null; then
  note "node" "MISSING (no node on PATH and no .device/node.xz)"
  printf '%s\n' "${SUMMARY[@]}"
  exit 1
fi
note "node" "$(node --version)"

# CUDA toolchain and cuBLAS
for d in "${CUDA_HOME:-}" /usr/local/cuda /usr/local/cuda-13.0 /usr/local/cuda-13; do
  [ -n "$d" ] && [ -x "$d/bin/nvcc" ] && { export CUDA_HOME=$d; export PATH=$PATH:$d/bin; break; }
done
command -v nvcc >/dev/null && note "nvcc" "$(nvcc --version | tail -1)" || note "nvcc" "MISSING"
if [ -z "${LOOM_CUBLAS_PATH:-}" ]; then
  roots=("${CUDA_HOME:-/usr/local/cuda}" /usr/local /usr/lib/x86_64-linux-gnu /opt)
  pysite=$(python3 -c 'import site; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)
  for r in "${roots[@]}" $pysite; do
    [ -d "$r" ] || continue
    f=$(find "$r" -maxdepth 6 -name 'libcublas.so.13*' -print -quit 2>/dev/null)
    [ -z "$f" ] && f=$(find "$r" -maxdepth 6 -name 'libcublas.so.12*' -print -quit 2>/dev/null)
    [ -n "$f" ] && { export LOOM_CUBLAS_PATH=$(dirname "$f"); break; }
  done
fi
note "cuBLAS" "${LOOM_CUBLAS_PATH:-not found (tests will say so)}"

# bundles and headers (the GPU machine has no node_modules or Node headers)
[ -f "$DEV/bundle.tar.xz" ] && tar -C "$DEV" -xJf "$DEV/bundle.tar.xz"
[ -f "$DEV/node-api/node_api.h" ] && export LOOM_NODE_HEADERS=$DEV/node-api LOOM_NODE_ADDON_API=$DEV/node-api

# 1. build
EMULATE=${LOOM_GPU_CHECK_EMULATE:-0}
t=$(date +%s)
if [ "$EMULATE" = 1 ]; then
  LOOM_CUDA_BUILD_DIR=$ROOT/build/cuda-emu timeout 420 node scripts/build-cuda.mjs --emulate &&
    note "build (CPU emulation, dry run)" "ok in $(elapsed "$t")" || note "build (CPU emulation)" "FAILED"
  export LOOM_CUDA_ADDON=$ROOT/build/cuda-emu/loom_cuda.node
else
  if LOOM_CUDA_ARCHS=${LOOM_CUDA_ARCHS:-90} timeout 420 node scripts/build-cuda.mjs --strict; then
    note "build (nvcc)" "ok in $(elapsed "$t")"
  else
    note "build (nvcc)" "FAILED after $(elapsed "$t")"
  fi
  export LOOM_CUDA_ADDON=$ROOT/build/cuda/loom_cuda.node
fi

# bundles, or the sources through tsx when node_modules is here
JS=$DEV/js
# js <bundle> <source>: sets JSCMD to run the bundle, or the TypeScript source through tsx
js() {
  if [ -f "$JS/$1" ]; then
    JSCMD=(node "$JS/$1")
  elif [ "$2" = bin/loom.js ]; then
    JSCMD=(node bin/loom.js)
  else
    JSCMD=(node --import tsx "$2")
  fi
}

# ------------------------------------------------------------------------------------------------------
# profile mode (bash scripts/gpu-check.sh profile): where a decode step's time goes, instead of the check
# ------------------------------------------------------------------------------------------------------
if [ "${1:-}" = profile ]; then
  js bench-gpu.mjs scripts/bench-gpu.ts
  [ "$EMULATE" = 1 ] && JSCMD+=(--smoke)
  t=$(date +%s)
  timeout 150 "${JSCMD[@]}" --gemv --rows 1,2,3,4,8,16,32 >"$OUTDIR/gemv.txt" 2>&1
  note "matmul alone by rows" "rc $? ($(elapsed "$t"))"
  t=$(date +%s)
  for tc in inf 2; do
    echo "---- LOOM_CUDA_TC_MIN_ROWS=$tc" >>"$OUTDIR/steps.txt"
    LOOM_CUDA_TC_MIN_ROWS=$tc timeout 120 "${JSCMD[@]}" --batches 1,2,4,8 --gen 64 >>"$OUTDIR/steps.txt" 2>&1
  done
  note "decode steps, cuBLAS never / from 2 rows" "($(elapsed "$t"))"
  ncu=$(command -v ncu || ls "${CUDA_HOME:-/usr/local/cuda}"/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  if [ -n "$ncu" ]; then
    for b in 1 8; do
      t=$(date +%s)
      timeout 150 "$ncu" --clock-control none --metrics gpu__time_duration.sum --csv --page raw --print-units base \
        "${JSCMD[@]}" --batches $b --gen 4 --no-graphs >"$OUTDIR/ncu-b$b.csv" 2>"$OUTDIR/ncu-b$b.err"
      note "ncu batch $b" "rc $? ($(elapsed "$t"))"
    done
  else
    note "ncu" "not found"
  fi
  echo
  echo "================================ gpu-check profile ($(elapsed "$T0")) ================================"
  printf '%s\n' "${SUMMARY[@]}"
  for b in 1 8; do
    [ -s "$OUTDIR/ncu-b$b.csv" ] || continue
    echo
    echo "ncu, batch $b, eager: GPU time per kernel per decode step"
    python3 - "$OUTDIR/ncu-b$b.csv" <<'PY'
import csv, sys, collections
rows = list(csv.reader(l for l in open(sys.argv[1]) if l.startswith('"')))
head = rows[0]
ki, ti = head.index("Kernel Name"), head.index("gpu__time_duration.sum")
gi = head.index("Grid Size")
steps = []  # a step starts at its embedding kernel
for r in rows[1:]:
    try:
        ns = float(r[ti].replace(",", ""))
    except ValueError:
        continue  # the units row
    if r[ki].startswith("loom_cuda::embed_kernel") or not steps:
        steps.append([])
    steps[-1].append((r[ki].split("(")[0].replace("loom_cuda::", "").replace("<unnamed>::", "")[:48], r[gi], ns))
decode = [s for i, s in enumerate(steps) if i % 4]  # 2 runs x (prefill + 3 decode steps)
tot, cnt = collections.Counter(), collections.Counter()
for s in decode:
    for name, grid, ns in s:
        tot[(name, grid)] += ns
        cnt[(name, grid)] += 1
n = max(1, len(decode))
all_ns = sum(tot.values())
print(f"{'kernel':48} {'grid':>12} {'calls/step':>10} {'us/step':>8} {'avg us':>7} {'share':>6}")
for (name, grid), ns in tot.most_common(16):
    print(f"{name:48} {grid:>12} {cnt[(name, grid)] / n:10.0f} {ns / n / 1e3:8.1f} {ns / cnt[(name, grid)] / 1e3:7.2f} {100 * ns / all_ns:5.1f}%")
print(f"decode step: {sum(cnt.values()) / n:.0f} kernels, {all_ns / n / 1e3:.1f} us of kernel time (ncu: serialized, caches flushed)")
PY
  done
  echo
  cat "$OUTDIR/gemv.txt"
  echo
  grep -E '^----|^ +[0-9]+ ' "$OUTDIR/steps.txt"
  exit 0
fi

# 2. tests (LOOM_CUDA_SYNC=1: each op is waited for, so an execution error names its op)
t=$(date +%s)
if [ -f "$JS/device.test.mjs" ]; then
  tests=("$JS"/load.test.mjs "$JS"/conformance.test.mjs "$JS"/conformance-tc.test.mjs "$JS"/device.test.mjs)
  LOOM_CUDA_SYNC=1 timeout 200 node --test --test-concurrency=1 "${tests[@]}" >"$OUTDIR/tests.log" 2>&1
else
  LOOM_CUDA_SYNC=1 timeout 200 node --import tsx --test --test-concurrency=1 test/cuda/*.test.ts >"$OUTDIR/tests.log" 2>&1
fi
rc=$?
pass=$(grep -E '^# pass' "$OUTDIR/tests.log" | awk '{print $3}')
fail=$(grep -E '^# fail' "$OUTDIR/tests.log" | awk '{print $3}')
skipped=$(grep -E '^# skipped' "$OUTDIR/tests.log" | awk '{print $3}')
note "CUDA tests" "pass ${pass:-?}, fail ${fail:-?}, skipped ${skipped:-?} (rc $rc, $(elapsed "$t"))"
grep -E 'not ok|SKIP' "$OUTDIR/tests.log" | head -20

# 3. validate every ref
REFS=""
for d in "${LOOM_REFS:-}" "$ROOT/test/fixtures/refs"; do
  [ -n "$d" ] && [ -d "$d" ] && { REFS=$d; break; }
done
t=$(date +%s)
if [ -z "$REFS" ]; then
  note "validate" "SKIPPED (no refs: test/fixtures/refs missing; set LOOM_REFS)"
else
  REF_MODELS=$(dirname "$REFS")/models
  wired=""
  VLOG=$OUTDIR/validate.log
  : >"$VLOG"
  for refs in "$REFS"/*.json; do
    [ -f "${refs%.json}.logits.safetensors" ] || continue
    name=$(basename "$refs" .json)
    if [ -n "${LOOM_GPU_CHECK_REFS:-}" ] && [[ ",$LOOM_GPU_CHECK_REFS," != *",$name,"* ]]; then continue; fi
    if [ $(($(date +%s) - T0)) -gt "$VALIDATE_DEADLINE" ]; then
      note "validate $name" "SKIPPED (past the validation deadline, ${VALIDATE_DEADLINE}s after the start)"
      continue
    fi
    mdir=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("model_dir",""))' "$refs" 2>/dev/null)
    model=""
    for m in "$ROOT/models/$mdir" "$REF_MODELS/$mdir"; do [ -f "$m/config.json" ] && { model=$m; break; }; done
    if [ -z "$model" ]; then
      note "validate $name" "SKIPPED (model $mdir not carried)"
      continue
    fi
    line=""
    for mode in tc exact; do
      if [ $mode = tc ]; then tol=$TOL_TC; tcenv=2; else tol=$TOL_EXACT; tcenv=inf; fi
      log=$(mktemp)
      # `loom validate --backend cuda` when the CLI knows the backend; else the direct validator
      if [ "$wired" != no ]; then
        js loom.mjs bin/loom.js
        LOOM_CUDA_TC_MIN_ROWS=$tcenv timeout "$VALIDATE_TIMEOUT" "${JSCMD[@]}" validate --refs "$refs" --model "$model" \
          --backend cuda --dtype bf16 --tolerance "$tol" >"$log" 2>&1
        rc=$?
        if ! grep -q ' on cuda: ' "$log"; then
          wired=no
          echo "validate: the CLI did not run on the CUDA backend (--backend cuda not wired yet); using the direct validator"
        fi
      fi
      if [ "$wired" = no ]; then
        js validate-cuda.mjs "$JS/validate-cuda.mjs"
        LOOM_CUDA_TC_MIN_ROWS=$tcenv timeout "$VALIDATE_TIMEOUT" "${JSCMD[@]}" "$refs" "$model" bf16 "$tol" >"$log" 2>&1
        rc=$?
      fi
      { echo "---- $name, $mode (tolerance $tol, rc $rc)"; cat "$log"; } >>"$VLOG"
      verdict=$(tail -1 "$log" | cut -c1-60)
      label="tensor cores ≤$tol"
      [ $mode = exact ] && label="f32 ≤$tol"
      line+="$label: $([ $rc = 0 ] && echo ok || echo FAIL) ($verdict)   "
      rm -f "$log"
    done
    note "validate $name" "$line"
  done
  [ "$wired" = no ] && note "validate via" "direct validator (loom validate --backend cuda is not wired)"
  note "validate time" "$(elapsed "$t")"
fi

# 3b. the engine on cuda: one greedy generation through the scheduler, the KV plan from device memory and
#     the CUDA-graph decode path, next to the same generation on the CPU reference
t=$(date +%s)
js loom.mjs bin/loom.js
GEN=(generate --max-tokens 48 --temperature 0 "In the beginning God created")
GEN_CUDA=$(mktemp) GEN_REF=$(mktemp)
timeout 120 "${JSCMD[@]}" "${GEN[@]}" --backend cuda >"$GEN_CUDA" 2>&1
grc=$?
timeout 120 "${JSCMD[@]}" "${GEN[@]}" --backend reference >"$GEN_REF" 2>&1
if [ $grc != 0 ]; then
  same="FAILED (see generate.log)"
elif cmp -s <(tail -1 "$GEN_CUDA") <(tail -1 "$GEN_REF"); then
  same="same text as the reference backend"
else
  same="text DIFFERS from the reference backend (bf16 vs f32 weights can part at a near-tie)"
fi
{ echo "---- --backend cuda (rc $grc)"; cat "$GEN_CUDA"; echo "---- --backend reference"; cat "$GEN_REF"; } >"$OUTDIR/generate.log"
note "generate --backend cuda" "rc $grc, $same ($(elapsed "$t")): $(tail -1 "$GEN_CUDA" | cut -c1-60)"
rm -f "$GEN_CUDA" "$GEN_REF"

# 4. benchmark: transformers baseline first (its own process), then Loom
t=$(date +%s)
js bench-gpu.mjs scripts/bench-gpu.ts
CFG=$(mktemp --suffix=.json)
"${JSCMD[@]}" --write-config "$CFG"
SMOKE=()
[ "$EMULATE" = 1 ] && SMOKE=(--smoke)
if [ "$EMULATE" != 1 ] && command -v python3 >/dev/null; then
  PYTHONUNBUFFERED=1 timeout 150 python3 scripts/bench-transformers.py --config "$CFG" \
    --batches 1,128 --json "$OUTDIR/transformers.json" >/dev/null
  note "transformers baseline" "rc $? ($(elapsed "$t"))"
fi
t=$(date +%s)
timeout 200 "${JSCMD[@]}" "${SMOKE[@]}" --transformers "$OUTDIR/transformers.json" \
  --json "$OUTDIR/bench.json" >"$OUTDIR/bench.txt"
note "benchmark" "rc $? ($(elapsed "$t"))"

# 4a. the packed baseline revision against the current code, alternating, batch 1, 8 and 128 (same card, same run)
if [ -f "$JS/base/bench-gpu.mjs" ] && [ "$EMULATE" != 1 ]; then
  t=$(date +%s)
  rev=$(cat "$JS/base/REV")
  {
    echo
    echo "baseline $rev against the current code (alternating runs; output tok/s at batch 1, 8 and 128):"
    for round in 1 2; do
      for side in baseline current; do
        if [ $side = baseline ]; then
          cmd=(env LOOM_CUDA_ADDON="$JS/base/loom_cuda.node" node "$JS/base/bench-gpu.mjs")
        else
          cmd=("${JSCMD[@]}")
        fi
        timeout 90 "${cmd[@]}" --batches 1,8,128 2>/dev/null | grep -E "^ +(1|8|128) " | sed "s/^/  $side $round: /"
      done
    done
  } >>"$OUTDIR/bench.txt" 2>&1
  note "baseline $rev vs current" "($(elapsed "$t"))"
fi

# 4b. each matmul shape's batch-1 GEMV alone, and batch 1 without CUDA graphs (what the graphs gain)
t=$(date +%s)
{
  echo
  timeout 120 "${JSCMD[@]}" "${SMOKE[@]}" --gemv
  echo
  echo "without CUDA graphs:"
  timeout 120 "${JSCMD[@]}" "${SMOKE[@]}" --batches 1 --no-graphs | grep -E '^batch-1|^ +1 '
} >>"$OUTDIR/bench.txt" 2>&1
note "GEMV alone + eager batch 1" "rc $? ($(elapsed "$t"))"

# 5. compute-sanitizer memcheck over the op conformance suite (bad accesses the results would not show)
if [ "$EMULATE" != 1 ] && [ "${LOOM_GPU_CHECK_SANITIZE:-1}" = 1 ] && [ -f "$JS/conformance.test.mjs" ]; then
  san=$(command -v compute-sanitizer || ls "${CUDA_HOME:-/usr/local/cuda}"/bin/compute-sanitizer 2>/dev/null)
  if [ -n "$san" ]; then
    t=$(date +%s)
    timeout "${LOOM_GPU_CHECK_SANITIZE_TIMEOUT:-150}" "$san" --tool memcheck --error-exitcode 3 \
      node --test --test-concurrency=1 "$JS/conformance.test.mjs" >"$OUTDIR/sanitizer.log" 2>&1
    rc=$?
    note "compute-sanitizer memcheck" "rc $rc, $(grep -E 'ERROR SUMMARY' "$OUTDIR/sanitizer.log" | tail -1) ($(elapsed "$t"))"
  else
    note "compute-sanitizer memcheck" "not found"
  fi
fi

echo
echo "================================ gpu-check summary ($(elapsed "$T0")) ================================"
printf '%s\n' "${SUMMARY[@]}"
echo
cat "$OUTDIR/bench.txt" 2>/dev/null
