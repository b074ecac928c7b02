"""Print the tuning sweep behind the default suite's per-algorithm settings as a Markdown table.

    python benchmarks/tune_table.py results/controlled-tune [more result dirs ...] > results/baselines/controlled-tune.md

One row per setting: validation win rate (the selection metric; test prompts are never used to select), the
share of grammatical samples, length, KL, the held-out NLL delta and steps. A setting is *eligible* when at
least 80% of its samples are well-formed reviews and its length is at least `LENGTH_FLOOR` (0.3) x the base
policy's (a policy that wins by leaving the language, or by collapsing to a word or two, is not a setting anyone
would ship); `chosen` marks each algorithm's eligible setting with the highest validation win rate.

Why 0.3x and not the 0.7x of gold v3: v3 paid almost linearly for clauses, so a short policy had given up reward
and a length floor near the base policy's only excluded collapse. Gold v4 (WORLD_FORMAT 4) charges every clause
after the first and every incoherent join, so its best reviews are 6-12 words against the base policy's ~12 and
the trained policies write 4.5-10.5 tokens: a 0.7x floor excluded most of them for being better reviews. 0.3x
(about 3.6 tokens here, the length of "finish the prompt's clause and stop") still excludes a collapse to a word.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

COLUMNS = ["val_win_rate", "grammatical_fraction", "length", "kl", "heldout_nll_delta", "steps"]
HYPER = ["learning_rate", "beta", "label_smoothing", "simpo_gamma", "kl_coef", "rpo_alpha", "ref_model_mixup_alpha",
         "odpo_alpha", "alpha", "eta"]


LENGTH_FLOOR = 0.3  # x the base policy's mean length; see the module docstring for why not 0.7 on gold v4
EXTRA: dict[str, None] = {}  # swept hyper-parameters outside HYPER (a plug-in's knobs), in order of appearance


def _with_params(path: str) -> pd.DataFrame:
    """summary.csv with every run's resolved hyper-parameters (a value not swept in its suite is not a column)."""
    frame = pd.read_csv(f"{path}/summary.csv")
    for i, run_id in frame["run_id"].items():
        config = json.loads((Path(path) / "runs" / run_id / "config.json").read_text())
        params = config["params"]
        for h in [*HYPER, *(k for k in config.get("swept", []) if k not in HYPER)]:  # a plug-in's own knobs too
            if h in params:
                frame.loc[i, h] = params[h]
                if h not in HYPER:
                    EXTRA.setdefault(h, None)
    return frame


def main(paths: list[str]) -> None:
    frame = pd.concat([_with_params(p) for p in paths], ignore_index=True)
    frame = frame[frame["status"] == "finished"]
    if not (frame["algorithm"] == "sft").any():
        sys.exit(f"tune_table: no finished sft run in {' '.join(paths)}: the length rule needs the base policy's "
                 "length; add [algorithms.sft] to the tuning suite and run it (`bench run ... --only sft`)")
    sft_length = float(frame.loc[frame["algorithm"] == "sft", "length"].mean())
    frame = frame[frame["algorithm"] != "sft"].copy()
    frame["eligible"] = (frame["grammatical_fraction"] >= 0.8) & (frame["length"] >= LENGTH_FLOOR * sft_length)
    hyper = [h for h in [*HYPER, *EXTRA] if h in frame.columns]
    print(f"Tuning sweep (`{' '.join(paths)}`): base policy length {sft_length:.1f} tokens; eligible = "
          f"grammatical >= 0.8 and length >= {LENGTH_FLOOR:g}x base; chosen = best eligible val_win_rate per algorithm.\n")
    print("| algorithm | " + " | ".join(hyper + COLUMNS) + " | chosen |")
    print("|" + "---|" * (len(hyper) + len(COLUMNS) + 2))
    for algo, group in frame.groupby("algorithm", sort=False):
        eligible = group[group["eligible"]]
        best = eligible["val_win_rate"].idxmax() if len(eligible) else None
        for idx, row in group.sort_values(hyper).iterrows():
            cells = ["" if pd.isna(row[h]) else f"{row[h]:g}" for h in hyper]
            cells += [f"{row[c]:.3g}" if pd.notna(row[c]) else "–" for c in COLUMNS]
            mark = "**chosen**" if idx == best else ("" if row["eligible"] else "ineligible")
            print(f"| {algo} | " + " | ".join(cells) + f" | {mark} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["results/controlled-tune"])
