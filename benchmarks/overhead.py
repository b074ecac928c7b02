"""Harness overhead and reference-precompute memory, on the controlled world (a benchmark, not a test).

    python benchmarks/overhead.py [--steps 60] [--repeats 2]

1. Overhead, side by side in one process: bare TRL `DPOTrainer` for N steps on the world's pairs, and bench's
   `dpo` run for the same N steps (`budget.max_steps`), alternating, best of `--repeats`. Reported:
   the training loop (bench's meter hooks + callbacks vs bare TRL; bench's curve measurements are paused
   out of its clock) and the whole run (adds curves, final evaluation, files).
2. Peak memory, each variant in its own subprocess (peak RSS is per process): DPO with the reference model in
   the loop vs `precompute_ref_log_probs = true` (the chapter claims about half the memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "controlled.toml"


def bare_trl(world, steps: int, precompute: bool) -> float:
    from trl import DPOConfig, DPOTrainer

    from bench.modeling import load_causal_lm, load_tokenizer

    tok = load_tokenizer(world.tokenizer_dir)
    policy = load_causal_lm(world.base_model_dir).train()
    ref = None if precompute else load_causal_lm(world.base_model_dir)
    out = tempfile.mkdtemp()
    args = DPOConfig(output_dir=out, report_to="none", use_cpu=True, bf16=False, activation_checkpointing=False,
                     save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0, learning_rate=1e-3,
                     per_device_train_batch_size=32, max_steps=steps, beta=0.1, max_length=128,
                     lr_scheduler_type="constant_with_warmup", warmup_steps=int(0.05 * steps),
                     precompute_ref_log_probs=precompute, dataloader_num_workers=0)
    t = time.perf_counter()
    trainer = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=world.load_pairs("train"),
                         processing_class=tok)
    trainer.train()
    return time.perf_counter() - t


def bench_dpo(steps: int, precompute: bool, results: Path, cache: Path) -> dict:
    from bench.runner import run_suite
    from bench.suite import load_suite

    suite = load_suite(SUITE, [f"budget.flops=1e18", f"budget.max_steps={steps}",
                               f"algorithms.dpo.precompute_ref_log_probs={'true' if precompute else 'false'}",
                               "suite.seeds=[0]"])
    t = time.perf_counter()
    run_suite(suite, results_root=results, cache_dir=cache, only=["dpo"])
    total = time.perf_counter() - t
    run = next((results / suite.name / "runs").glob("dpo_*"))
    m = json.loads((run / "metrics.json").read_text())
    return {"total_s": total, "train_s": m["train_s"], "loop_s": m["compute"]["train_seconds"], "steps": m["steps"],
            "eval_s": m["eval_s"]}


def child(variant: str, steps: int, cache: str) -> None:
    """Subprocess entry: run one variant and print its peak RSS."""
    from bench.io import cache_root
    from bench.suite import load_suite
    from bench.worlds import WORLDS

    suite = load_suite(SUITE)
    world = WORLDS["controlled"].build(suite.world, cache_root(cache))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bare_trl(world, steps, precompute=(variant == "precompute"))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"variant": variant, "peak_rss_mb": rss / 1024, "rss_before_training_mb": rss0 / 1024}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--child", default=None)
    a = p.parse_args()
    for key, value in (("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                       ("TRANSFORMERS_VERBOSITY", "error"), ("BENCH_QUIET", "1")):
        os.environ.setdefault(key, value)
    if a.child:
        child(a.child, a.steps, a.cache_dir)
        return
    import warnings

    warnings.filterwarnings("ignore")
    from bench.io import cache_root
    from bench.suite import load_suite
    from bench.worlds import WORLDS

    suite = load_suite(SUITE)
    world = WORLDS["controlled"].build(suite.world, cache_root(a.cache_dir))
    bare, ours = [], []
    for r in range(a.repeats):
        bare.append(bare_trl(world, a.steps, precompute=False))
        with tempfile.TemporaryDirectory() as d:
            ours.append(bench_dpo(a.steps, False, Path(d), cache_root(a.cache_dir)))
    b = min(bare)
    loop = min(o["loop_s"] for o in ours)
    train = min(o["train_s"] for o in ours)
    total = min(o["total_s"] for o in ours)
    print(f"DPO, {a.steps} steps of 32 pairs, controlled world (policy {world.info['pretrain']['parameters']} params)")
    print(f"  bare TRL DPOTrainer (init + train):      {b:7.2f} s   (runs: {', '.join(f'{x:.2f}' for x in bare)})")
    print(f"  bench dpo, training loop (meter clock):  {loop:7.2f} s   ratio {loop / b:.3f}")
    print(f"  bench dpo, train incl. curves + setup:   {train:7.2f} s   ratio {train / b:.3f}")
    print(f"  bench dpo, whole run (+ final eval):     {total:7.2f} s   ratio {total / b:.3f}")
    for variant in ("reference", "precompute"):
        out = subprocess.run([sys.executable, __file__, "--child", variant, "--steps", str(a.steps)]
                             + (["--cache-dir", a.cache_dir] if a.cache_dir else []),
                             capture_output=True, text=True, check=True)
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  peak RSS, {variant:<10}: {rec['peak_rss_mb']:7.1f} MB (process before training: "
              f"{rec['rss_before_training_mb']:.1f} MB)")


if __name__ == "__main__":
    main()
