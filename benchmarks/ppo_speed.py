"""Our PPO (`ppo`) against TRL 1.12's (`ppo_trl`) per update, on the default suite's world and PPO settings, in one
process (a benchmark, not a test).

    OMP_NUM_THREADS=1 python benchmarks/ppo_speed.py [--updates 8] [--repeats 2] [--out benchmarks/results/ppo_speed.json]

Each repeat runs both algorithms, alternating (ppo_trl, ppo, ppo_trl, ppo, ...), for `--updates` PPO updates
(`budget.max_steps`; the FLOP budget is set out of reach) through the harness, so both pay the same callbacks and
meter hooks. Per update: the meter's training clock (curve measurements are paused out of it) over the updates,
best of the repeats, and the metered FLOPs by component. The ratio ours / TRL's comes from one run of this script;
the machine's load average is recorded beside it: on a shared machine absolute seconds mean little, the ratio of
interleaved runs a little more.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SUITE = """\
[suite]
name = "ppo-speed-{repeat}"
seeds = [0]

[world]
kind = "controlled"
seed = 0
pairs = 4000

[budget]
flops = 1e18
max_steps = {updates}

[eval]
prompts = 32
validation_prompts = 0
curve_every = 1.0
curve_generation_every = 1.0
curve_generation_prompts = 16

[train]
per_device_train_batch_size = 32

[algorithms.ppo_trl]
learning_rate = 2e-4
kl_coef = 0.5

[algorithms.ppo]
learning_rate = 2e-4
kl_coef = 0.5
"""


def one(algorithm: str, repeat: int, updates: int, cache: Path, out: Path) -> dict:
    from bench.runner import run_suite
    from bench.suite import load_suite

    path = out / f"speed-{repeat}.toml"
    path.write_text(SUITE.format(repeat=repeat, updates=updates), encoding="utf-8")
    outcome = run_suite(load_suite(path), results_root=out / "results", cache_dir=cache, only=[algorithm],
                        device="cpu")
    run = outcome.results_dir / "runs" / outcome.finished[0]
    m = json.loads((run / "metrics.json").read_text())
    steps = max(m["steps"], 1)
    by = m["compute"]["flops_by_component"]
    return {"steps": m["steps"], "seconds_per_update": m["compute"]["train_seconds"] / steps,
            "flops_per_update": sum(v for k, v in by.items() if k != "reward_model_training") / steps,
            "flops_per_update_by_component": {k: v / steps for k, v in by.items() if k != "reward_model_training"},
            "response_length": m["length"]}


def main() -> None:
    from bench.algorithms.registry import all_algorithms

    if "ppo_trl" not in all_algorithms():
        raise SystemExit("benchmarks/ppo_speed.py times our ppo against TRL 1.12's PPO (`ppo_trl`), which trl 1.13 "
                         "removed; its last measurement (trl 1.12) is benchmarks/results/ppo_speed.json")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cache-dir", default=os.environ.get("BENCH_CACHE", str(Path.home() / ".cache" / "daa-bench")))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ppo_speed.json"))
    args = ap.parse_args()
    import torch

    from bench.provenance import package_versions

    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {"ppo_trl": [], "ppo": []}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for algorithm in ("ppo_trl", "ppo"):
                runs[algorithm].append(one(algorithm, repeat, args.updates, Path(args.cache_dir), Path(tmp)))
    best = {a: min(r["seconds_per_update"] for r in rs) for a, rs in runs.items()}
    result = {
        "ratio_ours_over_trl_seconds_per_update": best["ppo"] / best["ppo_trl"],
        "best_seconds_per_update": best, "runs": runs, "updates": args.updates, "repeats": args.repeats,
        "flops_ratio_ours_over_trl": runs["ppo"][0]["flops_per_update"] / runs["ppo_trl"][0]["flops_per_update"],
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "load_average_before": load_before, "load_average_after": os.getloadavg(),
                    "note": "measured on a shared, loaded 2-core CPU machine: the ratio of interleaved runs, "
                            "not the absolute seconds, is the result"},
        "packages": package_versions(), "wall_s": time.perf_counter() - t0,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"seconds per update: ours {best['ppo']:.3f}, TRL {best['ppo_trl']:.3f}, "
          f"ratio {result['ratio_ours_over_trl_seconds_per_update']:.2f}; "
          f"FLOPs per update ratio {result['flops_ratio_ours_over_trl']:.2f}")


if __name__ == "__main__":
    main()
