"""Runs per minute of the default suite: this working tree against a git revision, side by side (a benchmark,
not a test).

    PYTHONPATH=. python benchmarks/speed.py [--rev 1521b1f] [--suite suites/controlled.toml] [--seeds 0]
                                            [--subset sft,finish_clause,dpo,simpo,online_dpo,ppo] [--repeats 1]
                                            [--full] [--work COMMIT] [--no-warm] [--keep DIR] [--rev-python PY]
                                            [--out benchmarks/results/speed.json]

The revision is checked out with `git worktree add --detach` into a temporary folder and removed at the end; each
tree runs ITS OWN suite file (the default suite as it was at that revision; labels it lacks are skipped) with
`bench run --launcher sequential` on a fresh results folder and one shared stage cache (worlds are built once,
untimed, by a training-free warm-up run). Trees alternate (A B, B A, ...) so a neighbour's load falls on both.

Per run, from the run folders themselves (so that an old revision needs no instrumentation):
    wall   = mtime(metrics.json) − mtime of the previous run's metrics.json (the first run: − suite.json, which
             `bench run` writes just before the launcher starts): what the run costs inside a suite, process start,
             imports, stage loading and summary writing included
    train  = train_s − curve_s (metrics.json: optimiser steps and the trainer's own overhead)
    curves = curve_s (curve points during training)
    final  = eval_s (final evaluation)
    start  = wall − wall_s (everything outside execute_run's timer: process start, imports, stages, config, summary)
Families: sft / best_of_n / scripted (training-free rows), dpo_family (dpo, ipo, cdpo), simpo_orpo, online_dpo,
ppo. The ratio per family and stage is working tree ÷ revision, over means of the repeats. --full also times the
whole default suite (`bench run`'s own launcher choice) per tree and keeps its utilisation line. Non-timing
summary columns are compared run by run between the trees where both ran the same label and seed."""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SUBSET = "sft,finish_clause,dpo,simpo,online_dpo,ppo"  # one label per family
FAMILY = {"dpo": "dpo_family", "ipo": "dpo_family", "cdpo": "dpo_family", "simpo": "simpo_orpo",
          "orpo": "simpo_orpo", "finish_clause": "scripted", "one_positive": "scripted", "scripted": "scripted"}
TIMING = {"wall_s", "train_s", "eval_s", "curve_s", "peak_mem_mb", "start_s"}
STAGES = ("wall", "start", "train", "curves", "final")


def labels_in(suite_file: Path) -> list[str]:
    import tomllib

    return list(tomllib.loads(suite_file.read_text(encoding="utf-8")).get("algorithms", {}))


def bench_run(tree: Path, suite: str, extra: list[str], results: Path, cache: str,
              python: str = sys.executable) -> tuple[float, str]:
    env = {**os.environ, "BENCH_QUIET": "1", "BENCH_CACHE": cache, "PYTHONPATH": str(tree)}
    t = time.perf_counter()
    out = subprocess.run([python, "-m", "bench.cli", "run", suite, "--results", str(results), "--no-report",
                          *extra], env=env, capture_output=True, text=True, cwd=tree)
    wall = time.perf_counter() - t
    if out.returncode != 0:
        raise SystemExit(f"bench run in {tree} {' '.join(extra)} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return wall, out.stdout.strip()


def per_run(results: Path) -> list[dict]:
    """Each run's stages in seconds, in the order the runs finished (sequential launcher)."""
    (suite_dir,) = [p for p in results.iterdir() if p.is_dir()]
    prev = (suite_dir / "suite.json").stat().st_mtime
    rows = []
    finished = sorted((p.stat().st_mtime, p) for p in suite_dir.glob("runs/*/metrics.json"))
    for mtime, path in finished:
        m = json.loads(path.read_text(encoding="utf-8"))
        cfg = json.loads((path.parent / "config.json").read_text(encoding="utf-8"))
        label = cfg.get("label") or cfg.get("algorithm")
        wall = mtime - prev
        prev = mtime
        curve = float(m.get("curve_s") or 0.0)
        rows.append({"run_id": path.parent.name, "label": label, "algorithm": m.get("algorithm", cfg.get("algorithm")),
                     "seed": cfg.get("seed"), "wall": wall, "start": wall - float(m.get("wall_s") or 0.0),
                     "train": float(m.get("train_s") or 0.0) - curve, "curves": curve,
                     "final": float(m.get("eval_s") or 0.0), "status": m.get("status"),
                     "child_start_s": m.get("start_s")})
    return rows


def read_utilisation(results: Path) -> float | None:
    """The utilisation `bench run` printed (results/<suite>/utilisation.json); None where it wrote none."""
    try:
        (suite_dir,) = [p for p in results.iterdir() if p.is_dir()]
        return json.loads((suite_dir / "utilisation.json").read_text(encoding="utf-8")).get("utilisation")
    except (OSError, ValueError):
        return None


def readings(results: Path) -> dict[tuple, dict[str, str]]:
    (suite_dir,) = [p for p in results.iterdir() if p.is_dir()]
    with open(suite_dir / "summary.csv", newline="", encoding="utf-8") as f:
        return {(r.get("label") or r["algorithm"], r.get("seed")): {k: v for k, v in r.items() if k not in TIMING}
                for r in csv.DictReader(f)}


def _versions(python: str) -> dict[str, str]:
    """The interpreter and the torch / transformers / trl versions each side ran with."""
    code = ("import importlib.metadata as m, sys; print(sys.executable); "
            "[print(p, m.version(p)) for p in ('torch', 'transformers', 'trl')]")
    lines = subprocess.run([python, "-c", code], capture_output=True, text=True).stdout.split("\n")
    return {"python": lines[0], **dict(line.split(" ", 1) for line in lines[1:] if " " in line)}


def family(label: str) -> str:
    return FAMILY.get(label, label)


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rev", default="1521b1f")
    ap.add_argument("--work", default=None, help="a commit to time as the working side (default: this working tree, "
                                                 "as it is; a commit is checked out like --rev, so edits made "
                                                 "meanwhile do not leak into the measurement)")
    ap.add_argument("--keep", default=None, help="copy every timed results folder here (to compare readings)")
    ap.add_argument("--no-warm", action="store_true", help="skip the untimed warm-up runs (worlds already cached)")
    ap.add_argument("--suite", default="suites/controlled.toml")
    ap.add_argument("--subset", default=DEFAULT_SUBSET)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--full", action="store_true", help="also time the whole default suite per tree")
    ap.add_argument("--rev-python", default=sys.executable,
                    help="the interpreter of an environment that can run --rev (1521b1f's PPO needs trl<1.13, "
                         "deleted from the current release: a venv with that revision's own pins)")
    ap.add_argument("--cache", default=os.environ.get("BENCH_CACHE") or str(Path.home() / ".cache" / "daa-bench"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "speed.json"))
    args = ap.parse_args()
    wanted = args.subset.split(",")
    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.rev], capture_output=True, text=True,
                         check=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.strip())
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "tree-rev"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), rev], check=True,
                       capture_output=True)
        work = ROOT
        if args.work:
            work = Path(tmp) / "tree-work"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(work), args.work], check=True,
                           capture_output=True)
            head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.work], capture_output=True,
                                  text=True, check=True).stdout.strip()
            dirty = False
        try:
            trees = {"work": work, "rev": base}
            python = {"work": sys.executable, "rev": args.rev_python}
            only = {k: [x for x in wanted if x in labels_in(t / args.suite)] for k, t in trees.items()}
            for k, t in ([] if args.no_warm else trees.items()):  # the worlds and their limits, untimed
                bench_run(t, args.suite, ["--only", "sft", "--seeds", args.seeds.split(",")[0], "--launcher",
                                          "sequential"], Path(tmp) / f"warm-{k}", args.cache, python[k])
            runs: dict[str, list[dict]] = {k: [] for k in trees}
            walls: dict[str, list[float]] = {k: [] for k in trees}
            utilisation: dict[str, list] = {k: [] for k in trees}
            same: dict[str, bool] = {}
            seen: dict[str, dict] = {}
            for rep in range(args.repeats):
                for k in (["rev", "work"] if rep % 2 == 0 else ["work", "rev"]):
                    results = Path(tmp) / f"{k}-{rep}"
                    wall, _ = bench_run(trees[k], args.suite, ["--only", ",".join(only[k]), "--seeds", args.seeds,
                                                               "--launcher", "sequential"], results, args.cache,
                                        python[k])
                    walls[k].append(wall)
                    utilisation[k].append(read_utilisation(results))
                    got = per_run(results)
                    for r in got:
                        r["repeat"] = rep
                    runs[k] += got
                    seen[k] = readings(results)
                    print(f"{k:<4} repeat {rep}: {wall:7.1f} s  " + ", ".join(
                        f"{r['label']} {r['wall']:.1f}" for r in got), flush=True)
            common = sorted(set(seen["work"]) & set(seen["rev"]))
            same = {f"{lab}/{seed}": seen["work"][(lab, seed)] == seen["rev"][(lab, seed)] for lab, seed in common}
            full = {}
            if args.full:
                for k in ["rev", "work"]:
                    wall, out = bench_run(trees[k], args.suite, [], Path(tmp) / f"full-{k}", args.cache, python[k])
                    full[k] = {"wall_s": wall, "closing_lines": out.splitlines()[-3:],
                               "utilisation": read_utilisation(Path(tmp) / f"full-{k}")}
                    print(f"full {k}: {wall:.1f} s  {out.splitlines()[-1] if out else ''}", flush=True)
        finally:
            if args.keep:
                import shutil

                for d in Path(tmp).iterdir():
                    if d.name.startswith(("work-", "rev-", "full-")):  # results folders (trees are tree-*)
                        shutil.copytree(d, Path(args.keep) / d.name, dirs_exist_ok=True)
            for tree in {base, work} - {ROOT}:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
    by_family = {}
    for fam in dict.fromkeys(family(r["label"]) for k in runs for r in runs[k]):
        entry = {}
        for k in trees:
            mine = [r for r in runs[k] if family(r["label"]) == fam]
            entry[k] = {s: mean([r[s] for r in mine]) for s in STAGES} | {"runs": len(mine)}
        if entry["work"]["runs"] and entry["rev"]["runs"]:
            entry["ratio"] = {s: entry["work"][s] / entry["rev"][s] if entry["rev"][s] > 0 else None
                              for s in STAGES}
        by_family[fam] = entry
    total = {k: sum(r["wall"] for r in runs[k] if r["label"] in only["rev"] and r["label"] in only["work"])
             for k in trees}
    record = {"rev": rev, "work_head": head + ("+dirty" if dirty else ""), "suite": args.suite, "seeds": args.seeds,
              "repeats": args.repeats, "host": platform.node(), "cpus": os.cpu_count(),
              "python": {k: _versions(v) for k, v in python.items()},
              "load_before": os.getloadavg(), "measured_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "subset": {"work": only["work"], "rev": only["rev"]}, "invocation_walls_s": walls,
              "invocation_utilisation": utilisation,
              "common_runs_wall_s": total, "common_runs_ratio": total["work"] / total["rev"] if total["rev"] else None,
              "by_family": by_family, "readings_equal_to_rev": same, "full_suite": full, "runs": runs}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({f: e.get("ratio") for f, e in by_family.items()}, indent=1))
    print(f"common runs: work {total['work']:.1f} s, rev {total['rev']:.1f} s, ratio {record['common_runs_ratio']}")


if __name__ == "__main__":
    main()
