"""Power of a finished suite: the paired win-rate differences between every two trained settings, their 95%
half-widths under the harness's uncertainty model, and the seeds each pair would need for a half-width <= TARGET.

    python benchmarks/power.py results/controlled [--target 0.05]

The half-width of a mean over S seeds shrinks like 1/sqrt(S) once the seed factor dominates (it does here: the
prompt and reference-draw factors are held fixed across seeds), so S_needed ~ S * (half_width / target)^2.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from bench.evaluation.uncertainty import from_results
from bench.reporting.tables import label_order, leaderboard, pairwise
from bench.results import summary_frame


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("--target", type=float, default=0.05)
    args = parser.parse_args()
    frame = summary_frame(args.results, intervals=False)
    unc = from_results(args.results, frame)
    board = leaderboard(frame, label_order(frame), unc)
    print("setting, seeds, win_rate [95% over seeds x prompts x reference draws], tie_rate, kl [interval]")
    for _, r in board.iterrows():
        print(f"  {r['setting']:<28} {int(r['seeds'])}  {r['win_rate']:.3f} [{r['win_rate_lo']:.3f}, "
              f"{r['win_rate_hi']:.3f}]  ties {r['tie_rate']:.3f}  kl {r['kl']:.2f} [{r['kl_lo']:.2f}, {r['kl_hi']:.2f}]")
    pairs = pairwise(board, unc, "win_rate")
    print(f"\npaired win-rate differences (a - b), half-width target {args.target}")
    worst = 0.0
    for _, p in pairs.sort_values("half_width", ascending=False).iterrows():
        need = math.ceil(p["seeds"] * (p["half_width"] / args.target) ** 2) if p["seeds"] >= 2 else float("nan")
        worst = max(worst, p["half_width"])
        print(f"  {p['a']:<14} - {p['b']:<14} {p['difference']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]  "
              f"hw {p['half_width']:.3f}  seeds {int(p['seeds'])} -> ~{need} for hw <= {args.target}"
              f"{'  resolved' if p['significant'] else ''}")
    print(f"\nlargest half-width: {worst:.3f} ({len(pairs)} pairs; {int((pairs['half_width'] <= args.target).sum())}"
          f" within {args.target})")


if __name__ == "__main__":
    main()
