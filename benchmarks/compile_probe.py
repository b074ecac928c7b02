"""Does `torch.compile` pay for itself on the controlled world's training steps? (issue 24, lever (b))

    python benchmarks/compile_probe.py [--model ~/.cache/daa-bench/worlds/controlled-<key>/base] [-o FILE]

A default DPO step is a forward and backward of the world's 2-layer, 128-wide GPT-2 over 64 right-padded
sequences of 4–36 tokens (padding trimmed to the longest, bench/padding_trim.py); 25% of its time is GELU, layer norm and attention's softmax, which Inductor could fuse. This times, each
in a fresh interpreter with one thread (a suite worker's layout), 60 training steps of that shape — the same
random batches, AdamW, a sum of log-probs as the loss — three ways:

    eager           what the runs do today
    compile-cold    torch.compile(model, dynamic=True) with an empty Inductor cache: what the first run on a
                    machine (or in CI) would pay
    compile-warm    the same with the cache the cold run left: what every later run process would pay

and writes each one's first-step seconds (compilation included), median step after the tenth and total. A run
process trains ~130 such steps, so compiling pays only if (eager − compiled median) × 130 exceeds the warm
first-step cost. Compiled and eager losses differ in their last bits (fused kernels reorder floating point), so
adopting it would also move every committed baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

STEPS = 60
CHILD = r"""
import json, os, sys, time
import torch
torch.set_num_threads(1)
from bench.modeling import load_causal_lm  # the runs' model set-up: fused tanh-GELU, sdpa attention
model = load_causal_lm(sys.argv[1]).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
g = torch.Generator().manual_seed(0)
vocab = model.config.vocab_size
batches = []
for _ in range(int(sys.argv[3])):  # 64 right-padded rows of 4-36 tokens, padded to the batch's longest (as trimmed)
    lengths = torch.randint(4, 37, (64,), generator=g)
    width = int(lengths.max())
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    batches.append((torch.randint(3, vocab, (64, width), generator=g) * mask, mask))
f = torch.compile(model, dynamic=True) if sys.argv[2] != "eager" else model
times, t0 = [], time.perf_counter()
for ids, mask in batches:
    t = time.perf_counter()
    logits = f(input_ids=ids, attention_mask=mask).logits
    logps = logits[:, :-1].log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1) * mask[:, 1:]
    loss = -logps.sum() / len(ids)
    loss.backward(); opt.step(); opt.zero_grad()
    times.append(time.perf_counter() - t)
rest = sorted(times[10:])
print(json.dumps({"first_step_s": times[0], "median_step_s": rest[len(rest) // 2], "total_s": time.perf_counter() - t0,
                  "last_loss": float(loss.detach())}))
"""


def default_model() -> Path | None:
    """The largest base policy in the world cache: the default suite's (2 layers, 128 wide), not a test's tiny one."""
    worlds = Path(os.path.expanduser("~/.cache/daa-bench/worlds"))
    bases = sorted(worlds.glob("controlled-*/base"), key=lambda p: sum(f.stat().st_size for f in p.glob("*.safetensors")))
    return bases[-1] if bases else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=default_model(),
                        help="a controlled world's base policy (default: the largest in the world cache)")
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/compile-probe.json"))
    args = parser.parse_args()
    if args.model is None or not (args.model / "config.json").is_file():
        raise SystemExit("no controlled world's base model: run `bench run suites/controlled.toml` once, or --model")
    out = {"model": str(args.model), "steps": STEPS, "threads": 1}
    import torch

    out["torch"] = torch.__version__
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache)
        for mode in ("eager", "compile-cold", "compile-warm"):
            proc = subprocess.run([sys.executable, "-c", CHILD, str(args.model), mode, str(STEPS)], env=env,
                                  capture_output=True, text=True, check=True)
            out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(mode, out[mode], flush=True)
    eager, warm = out["eager"], out["compile-warm"]
    saved_per_step = eager["median_step_s"] - warm["median_step_s"]
    out["speedup_median_step"] = eager["median_step_s"] / warm["median_step_s"]
    out["steps_to_repay_warm_compile"] = (warm["first_step_s"] - eager["first_step_s"]) / saved_per_step \
        if saved_per_step > 0 else None
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("speedup_median_step", "steps_to_repay_warm_compile")}))


if __name__ == "__main__":
    main()
