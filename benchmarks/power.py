"""Power of a finished suite: the paired win-rate differences between every two trained settings, their 95%
half-widths under the harness's uncertainty model, the minimum detectable difference at the suite's seeds, and the
seeds each pair would need for a half-width <= TARGET (and, unresolved, to resolve its observed difference).

    python benchmarks/power.py results/controlled [--target 0.05]

Projections split the interval into its two parts (bench/evaluation/estimators.py): the seed part shrinks like
1/seeds, the part every seed shares (the same prompts and reference draws) does not, so some targets need more
prompts, not more seeds ("more prompts").
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.results import from_results
from bench.reporting.tables import label_order, leaderboard, pairwise
from bench.results import summary_frame


def _n(v) -> str:
    return "more prompts" if v != v else str(int(v))  # NaN: unreachable by seeds alone


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
    pairs = pairwise(board, unc, "win_rate", target=args.target)
    print(f"\npaired win-rate differences (a - b), half-width target {args.target}")
    for _, p in pairs.sort_values("half_width", ascending=False).iterrows():
        resolve = "resolved" if p["significant"] else (
            f"unresolved: {int(p['seeds_to_resolve'])} seeds to resolve" if p["seeds_to_resolve"] == p["seeds_to_resolve"]
            else "unresolved: |difference| below what seeds alone can resolve (more prompts)")
        print(f"  {p['a']:<14} - {p['b']:<14} {p['difference']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]  "
              f"hw {p['half_width']:.3f}  mdd {p['mdd']:.3f}  seeds {int(p['seeds'])} -> {_n(p['seeds_needed'])} "
              f"for hw <= {args.target}  {resolve}")
    if len(pairs):
        print(f"\nlargest half-width: {pairs['half_width'].max():.3f}; minimum detectable difference (80% power) up to "
              f"{pairs['mdd'].max():.3f} ({len(pairs)} pairs; {int((pairs['half_width'] <= args.target).sum())} "
              f"within {args.target}; {int(pairs['significant'].sum())} resolved)")


if __name__ == "__main__":
    main()
