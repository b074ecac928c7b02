"""What a suite's wins are made of, from its results folder (no training): per setting the raw, length-controlled,
grammar and sentiment readings with their intervals, corr(length, gold) among well-formed samples, a few samples,
and the suite's top gold samples.

    python benchmarks/gold_readings.py results/controlled [--samples 3] [--top 5]

corr(length, gold): Pearson correlation of sample length and gold reward among a run's well-formed samples
(per_prompt.csv, all test prompts), the mean over the setting's seeds; `pooled` also pools its seeds. A trained
policy whose correlation exceeds sft's is paid for writing longer (issue 22's done-when compares the two).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.columns import setting_groups

READINGS = ("win_rate", "win_rate_lc", "win_rate_grammar", "win_rate_sentiment", "gold_reward", "length",
            "grammatical_fraction")


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path)
    ap.add_argument("--samples", type=int, default=3, help="samples shown per setting (seed 0, first prompts)")
    ap.add_argument("--top", type=int, default=5, help="the suite's highest-gold samples shown")
    args = ap.parse_args(argv)
    summary = args.results / "summary.csv"
    if not summary.is_file():
        print(f"{summary}: missing; run `bench run` on the suite first", file=sys.stderr)
        return 2
    frame = pd.read_csv(summary)
    frame = frame[frame["status"] == "finished"]
    rows, shown, pool = [], [], []
    # one row per setting (label + swept values and axes such as budget_view), named as the report names it: a label
    # that runs under two budget views is two settings, each with its own interval
    for label, run_ids in setting_groups(frame).items():
        group = frame[frame["run_id"].isin(run_ids)]
        corrs, lens, golds = [], [], []
        for run_id in group["run_id"]:
            d = args.results / "runs" / run_id
            table = pd.read_csv(d / "per_prompt.csv")
            if "well_formed" in table.columns:
                table = table[table["well_formed"] > 0]
            corrs.append(_corr(table["length"].to_numpy(float), table["gold_reward"].to_numpy(float)))
            lens.append(table["length"].to_numpy(float))
            golds.append(table["gold_reward"].to_numpy(float))
            for line in (d / "samples.jsonl").read_text().splitlines():
                s = json.loads(line)
                pool.append((s["score"], label, s["prompt"], s["completion"]))
        row = {"label": label, "seeds": len(group)}
        for m in READINGS:
            if m in group.columns:
                row[m] = group[m].mean()
                if f"{m}_lo" in group.columns and group[f"{m}_lo"].notna().any():
                    row[m] = f"{group[m].mean():.3f} [{group[f'{m}_lo'].iloc[0]:.3f}, {group[f'{m}_hi'].iloc[0]:.3f}]"
        row["corr_len_gold"] = np.nanmean(corrs) if np.isfinite(corrs).any() else np.nan
        row["corr_len_gold_seeds"] = " ".join(f"{c:+.2f}" for c in corrs)
        row["corr_pooled"] = _corr(np.concatenate(lens), np.concatenate(golds))
        rows.append(row)
        first = args.results / "runs" / group.sort_values("seed")["run_id"].iloc[0] / "samples.jsonl"
        for line in first.read_text().splitlines()[:args.samples]:
            s = json.loads(line)
            shown.append(f"{label:>14}  {s['score']:+6.2f}  {s['prompt']} | {s['completion']}")
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.3f}".format):
        print(pd.DataFrame(rows).to_string(index=False))
    print("\nsamples (seed 0, first test prompts):")
    print("\n".join(shown))
    print(f"\ntop {args.top} gold samples of the suite (kept samples):")
    seen, top = set(), []
    for score, label, prompt, completion in sorted(pool, key=lambda t: -t[0]):
        if (prompt, completion) not in seen and len(top) < args.top:
            seen.add((prompt, completion))
            top.append((score, label, prompt, completion))
    for score, label, prompt, completion in top:
        print(f"{label:>14}  {score:+6.2f}  {prompt} | {completion}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
