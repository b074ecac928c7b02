"""Which layout runs a suite faster on this machine, with which numbers (a benchmark, not a test).

    python benchmarks/launchers.py [--suite suites/controlled.toml] [--only dpo,ipo] [--repeats 2]
                                   [--layouts seq1x2,local2x1] [--out benchmarks/results/launchers-dpo-ipo.json]

Each layout is one `bench run` subprocess on a fresh results folder and the same warm cache (the world and its
limits are built first, untimed, by a training-free `sft` run); layouts alternate (A B, B A, ...) so a neighbour's
load falls on both. Layouts: seqNxT = the sequential launcher with T threads per run; localNxT = N local workers
x T threads; auto = what `bench run` picks. Reported per layout: wall seconds of every repeat, the utilisation
line, and whether its summary equals the first layout's (every column but timings and memory), which holds
exactly between layouts with the same threads per run (torch's CPU reductions depend on the thread count).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_RESULTS = {"wall_s", "train_s", "eval_s", "curve_s", "peak_mem_mb"}


def layout_args(name: str) -> list[str]:
    if name == "auto":
        return ["--launcher", "auto"]
    m = re.fullmatch(r"(seq|local)(\d+)x(\d+)", name)
    if not m:
        raise SystemExit(f"--layouts: {name!r} is not auto, seqNxT or localNxT")
    kind, n, t = m.group(1), int(m.group(2)), int(m.group(3))
    args = ["--set", f"launcher.threads_per_run={t}"]
    return args + (["--launcher", "sequential"] if kind == "seq" else ["--launcher", "local", "--workers", str(n)])


def bench_run(suite: str, extra: list[str], results: Path, cache: str) -> tuple[float, str]:
    env = {**os.environ, "BENCH_QUIET": "1", "BENCH_CACHE": cache, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bench.cli", "run", suite, "--results", str(results), "--no-report",
                          *extra], env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"bench run {' '.join(extra)} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return wall, out.stdout.strip()


def time_split(results: Path) -> dict[str, dict[str, float]]:
    """Mean seconds per run by algorithm: training (with curve points), curve points, final evaluation, whole run."""
    (suite_dir,) = [p for p in results.iterdir() if p.is_dir()]
    with open(suite_dir / "summary.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out: dict[str, dict[str, float]] = {}
    for algo in sorted({r["algorithm"] for r in rows}):
        mine = [r for r in rows if r["algorithm"] == algo]
        out[algo] = {k: sum(float(r[k] or 0) for r in mine) / len(mine) for k in ("train_s", "curve_s", "eval_s",
                                                                               "wall_s")}
    return out


def summary(results: Path) -> dict[str, dict[str, str]]:
    (suite_dir,) = [p for p in results.iterdir() if p.is_dir()]
    with open(suite_dir / "summary.csv", newline="", encoding="utf-8") as f:
        return {r["run_id"]: {k: v for k, v in r.items() if k not in NOT_RESULTS} for r in csv.DictReader(f)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--suite", default="suites/controlled.toml")
    ap.add_argument("--only", default="dpo,ipo")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--layouts", default="seq1x2,local2x1")
    ap.add_argument("--cache", default=os.environ.get("BENCH_CACHE") or str(Path.home() / ".cache" / "daa-bench"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "launchers.json"))
    args = ap.parse_args()
    layouts = args.layouts.split(",")
    only = ["--only", args.only] if args.only else []
    with tempfile.TemporaryDirectory() as tmp:
        bench_run(args.suite, ["--only", "sft", "--seeds", "0", "--launcher", "sequential"], Path(tmp) / "warm",
                  args.cache)  # the world and its limits, untimed
        walls: dict[str, list[float]] = {k: [] for k in layouts}
        lines: dict[str, str] = {}
        same: dict[str, bool] = {}
        splits: dict[str, dict] = {}
        first = None
        for rep in range(args.repeats):
            order = layouts if rep % 2 == 0 else layouts[::-1]
            for name in order:
                results = Path(tmp) / f"{name}-{rep}"
                wall, stdout = bench_run(args.suite, [*only, *layout_args(name)], results, args.cache)
                walls[name].append(wall)
                lines[name] = stdout.splitlines()[-1] if stdout else ""
                rows = summary(results)
                splits.setdefault(name, time_split(results))
                first = first or rows
                same[name] = same.get(name, True) and rows == first
                print(f"{name:<10} repeat {rep}: {wall:7.1f} s  {lines[name]}", flush=True)
    record = {"suite": args.suite, "only": args.only, "repeats": args.repeats, "host": platform.node(),
              "cpus": os.cpu_count(), "load_before": os.getloadavg(), "measured_at": time.strftime("%Y-%m-%d %H:%M"),
              "walls_s": walls, "closing_lines": lines, "summary_equals_first_layout": same,
              "seconds_per_run_by_algorithm": splits,
              "ratios_to_first": {k: [w / f for w, f in zip(v, walls[layouts[0]])] for k, v in walls.items()}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: record[k] for k in ("walls_s", "ratios_to_first", "summary_equals_first_layout")}, indent=1))


if __name__ == "__main__":
    main()
