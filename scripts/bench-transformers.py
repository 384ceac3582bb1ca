"""Naive baseline for scripts/bench-gpu.ts: transformers' generate on the same random Llama-3.2-1B-shape
model (bf16, same card, same run), greedy, prompts of 128 random ids, exactly 128 new tokens.

    python3 scripts/bench-transformers.py --config llama-1b.json [--batches 1,128] [--prompt 128] [--gen 128]
                                          [--json out.json]

Output throughput = batch * gen / wall time of generate (prefill included). Also measures the card's
device-to-device copy bandwidth (the memory ceiling bench-gpu.ts compares batch 1 with). Writes
{"copy_bytes_per_s": ..., "results": {"1": {"tokens_per_s": ...}, ...}} so bench-gpu.ts can print the ratio; on any failure it writes the error
there and exits 0 (the benchmark table still prints).
"""
import argparse
import json
import sys
import time


def copy_bandwidth(torch) -> float:
    """Device-to-device copy of 1 GiB, bytes read + written per second: the measured memory ceiling."""
    n = 1 << 29  # bf16 elements: 1 GiB
    src = torch.randn(n, device="cuda", dtype=torch.float32).to(torch.bfloat16)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(10):
        start.record()
        dst.copy_(src)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    times.sort()
    del src, dst
    torch.cuda.empty_cache()
    return 2 * 2 * n / times[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batches", default="1,128")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    out = {"results": {}}
    try:
        import torch
        import transformers
        from transformers import LlamaConfig, LlamaForCausalLM

        out["copy_bytes_per_s"] = copy_bandwidth(torch)
        print(f"device-to-device copy: {out['copy_bytes_per_s'] / 1e12:.2f} TB/s (read + write)", file=sys.stderr)
        cfg_dict = json.load(open(a.config))
        cfg_dict = {k: v for k, v in cfg_dict.items() if k not in ("architectures", "dtype")}
        cfg = LlamaConfig(**cfg_dict)
        cfg.eos_token_id = None
        cfg.pad_token_id = 0
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = LlamaForCausalLM(cfg)
        model = model.to(dtype=torch.bfloat16).eval()
        out["device"] = torch.cuda.get_device_name(0)
        out["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
        out["attn_implementation"] = getattr(model.config, "_attn_implementation", None)
        for bs in [int(b) for b in a.batches.split(",")]:
            try:
                ids = torch.randint(0, cfg.vocab_size, (bs, a.prompt), device="cuda")
                mask = torch.ones_like(ids)
                kw = dict(attention_mask=mask, do_sample=False, pad_token_id=0, eos_token_id=None)
                with torch.inference_mode():
                    model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)  # warm-up
                    torch.cuda.synchronize()
                    t = time.perf_counter()
                    res = model.generate(ids, max_new_tokens=a.gen, min_new_tokens=a.gen, **kw)
                    torch.cuda.synchronize()
                    dt = time.perf_counter() - t
                new = res.shape[1] - a.prompt
                out["results"][str(bs)] = {"seconds": dt, "new_tokens": new, "tokens_per_s": bs * new / dt}
                print(f"transformers: batch {bs}: {bs * new / dt:.0f} output tok/s ({dt:.2f} s)", file=sys.stderr)
            except Exception as e:  # noqa: BLE001 - report and go on
                out["results"][str(bs)] = {"error": f"{type(e).__name__}: {e}"}
                print(f"transformers: batch {bs} failed: {e}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001
        out["error"] = f"{type(e).__name__}: {e}"
        print(f"transformers baseline failed: {out['error']}", file=sys.stderr)
    text = json.dumps(out, indent=2)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
