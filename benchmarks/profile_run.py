"""cProfile of one run of a suite in this process, one torch thread, imports included (a benchmark, not a test).

    PYTHONPATH=. python benchmarks/profile_run.py [--suite suites/controlled.toml] [--only dpo] [--seed 0]
                                                  [--top 30] [--out benchmarks/results/profile-dpo-after.txt]

The world comes from the shared cache (built first, outside the profile, if missing); the run trains in a fresh
results folder. Printed: the top functions by cumulative and by own time, and the run's own stage timings
(metrics.json: train_s, curve_s, eval_s, wall_s)."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="suites/controlled.toml")
    ap.add_argument("--only", default="dpo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", default=None)
    ap.add_argument("--dump", default=None, help="also write the raw pstats file here (for pstats / snakeviz)")
    args = ap.parse_args()
    prof = cProfile.Profile()
    prof.enable()
    import torch  # noqa: F401  (imports are part of what a run's process pays)

    from bench.runner import run_suite
    from bench.suite import load_suite

    t_imports = time.perf_counter() - T0
    torch.set_num_threads(1)
    suite = load_suite(args.suite)
    with tempfile.TemporaryDirectory() as tmp:
        prof.disable()  # the world and its limits: cached stages, built outside the profile when missing
        run_suite(suite, results_root=Path(tmp) / "warm", only=["sft"], seeds=[args.seed])
        prof.enable()
        t = time.perf_counter()
        run_suite(suite, results_root=Path(tmp), only=[args.only], seeds=[args.seed])
        run_s = time.perf_counter() - t
        prof.disable()
        (metrics_path,) = Path(tmp, suite.name, "runs").glob("*/metrics.json")
        m = json.loads(metrics_path.read_text())
    buf = io.StringIO()
    buf.write(f"# {args.only} seed {args.seed}: imports {t_imports:.1f} s, run_suite {run_s:.1f} s; metrics.json: "
              + ", ".join(f"{k} {m.get(k, float('nan')):.1f} s" for k in ("train_s", "curve_s", "eval_s", "wall_s"))
              + f"; steps {m.get('steps')}\n")
    for key in ("cumulative", "tottime"):
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(args.top)
    if args.dump:
        prof.dump_stats(args.dump)
    text = buf.getvalue()
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    sys.exit(main())
