"""Re-score a controlled suite's kept samples with the current gold reward, without re-running anything.

    python benchmarks/rescore_samples.py results/controlled [--top 5] [--per-algorithm 3]

When the gold changes (a new WORLD_FORMAT), the regenerated suite will train on a new world and read other numbers;
this shows in advance what the new gold says about the samples the old suite kept: how many scores move, the top
samples of the whole suite and of each algorithm under the new gold (with their old score), and the samples the
new gold reads as ill-formed that the old one did not. Each run folder's `samples.jsonl` holds the policy's
(prompt, completion, score) and π_ref's reference draw; `config.json` gives the algorithm and the sampler's cap.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def rescore(results: Path) -> list[dict]:
    """One row per kept policy sample: run, algorithm, seed, prompt, completion, old score, new score."""
    from bench.worlds.controlled.language import SAMPLER_CAP, gold_reward, is_well_formed

    rows = []
    for run in sorted((results / "runs").iterdir()):
        samples, config = run / "samples.jsonl", run / "config.json"
        if not samples.is_file() or not config.is_file():
            continue
        cfg = json.loads(config.read_text())
        algorithm = cfg.get("algorithm") or run.name.rsplit("_s", 1)[0]
        cap = (cfg.get("eval") or {}).get("max_new_tokens", SAMPLER_CAP)
        for line in samples.read_text().splitlines():
            if not line.strip():
                continue
            s = json.loads(line)
            rows.append({"run": run.name, "algorithm": algorithm, "prompt": s["prompt"], "completion": s["completion"],
                         "old": s["score"], "new": gold_reward(s["completion"], s["prompt"], cap),
                         "well_formed": is_well_formed(s["prompt"], s["completion"], cap)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="a controlled suite's results folder (holds runs/)")
    ap.add_argument("--top", type=int, default=5, help="top samples of the whole suite")
    ap.add_argument("--per-algorithm", type=int, default=3, help="top samples per algorithm")
    args = ap.parse_args(argv)
    results = Path(args.results)
    if not (results / "runs").is_dir():
        print(f"{results}: no runs/ folder; give a suite's results folder (e.g. results/controlled)", file=sys.stderr)
        return 2
    rows = rescore(results)
    moved = [r for r in rows if abs(r["new"] - r["old"]) > 1e-9]
    print(f"{len(rows)} samples in {len({r['run'] for r in rows})} runs; {len(moved)} change score")
    for r in sorted(moved, key=lambda r: r["new"] - r["old"])[:20]:
        print(f"  {r['old']:6.2f} -> {r['new']:6.2f}  {r['algorithm']:<12} {r['prompt']} | {r['completion']}")
    line = "  {new:6.2f} (was {old:5.2f})  {algorithm:<12} {run:<26} {prompt} | {completion}"
    print(f"\ntop {args.top} of the suite under the current gold:")
    for r in sorted(rows, key=lambda r: -r["new"])[:args.top]:
        print(line.format(**r))
    print(f"\ntop {args.per_algorithm} per algorithm:")
    for algorithm in sorted({r["algorithm"] for r in rows}):
        own = [r for r in rows if r["algorithm"] == algorithm]
        mean_old = sum(r["old"] for r in own) / len(own)
        mean_new = sum(r["new"] for r in own) / len(own)
        share = sum(r["well_formed"] for r in own) / len(own)
        print(f" {algorithm}: mean {mean_old:.3f} -> {mean_new:.3f}, well-formed {share:.1%} (n={len(own)})")
        for r in sorted(own, key=lambda r: -r["new"])[:args.per_algorithm]:
            print(line.format(**r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
