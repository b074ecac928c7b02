"""Is sft's 0.467 in the CI world a bias of the comparison or luck? (issue 21)

    python benchmarks/reference_layout.py results/ci-cache/worlds/<controlled-...>  [-o benchmarks/results/reference-layout.json]

π_ref against itself must read 0.5 in expectation, so a systematic gap would have to come from how the two sides
are sampled: the policy's samples come one per prompt in a batch of distinct prompts (seed 10_007·(seed+1)), the K
reference draws per prompt with each prompt repeated K times in adjacent rows (bench/evaluation/reference.py).
This script samples the CI world's base model both ways, many times, and compares them on the same prompts:
48 policy-layout seeds × 128 prompts against 6 reference-layout draw sets × 128 prompts × 8 draws — gold reward
(paired per prompt) and the win rate of the one against the other. A gap near zero with a tight interval clears
the layout, and what remains of 0.467 is the interval's business: the three seeds' own luck and the luck of the
one cached draw set (the shared part, which every seed of a suite meets). ~4 minutes on one core.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("world", type=Path, help="a controlled world folder (base/, tokenizer/, eval_prompts.json)")
    parser.add_argument("-o", "--out", type=Path, default=Path("benchmarks/results/reference-layout.json"))
    parser.add_argument("--prompts", type=int, default=128)
    args = parser.parse_args()
    from bench.evaluation.crossed import crossed_ci
    from bench.evaluation.estimators import win_matrix
    from bench.modeling import load_causal_lm, load_tokenizer, sample
    from bench.worlds.controlled.language import gold_reward

    model, tok = load_causal_lm(args.world / "base"), load_tokenizer(args.world / "tokenizer")
    prompts = json.loads((args.world / "eval_prompts.json").read_text())
    prompts = (prompts if isinstance(prompts, list) else prompts["prompts"])[:args.prompts]
    score = lambda ps, cs: np.array([gold_reward(c, p) for p, c in zip(ps, cs)])  # noqa: E731
    draw = lambda ps, seed: score(ps, sample(model, tok, ps, max_new_tokens=32, temperature=1.0,  # noqa: E731
                                             seed=seed).completions)
    policy = np.stack([draw(prompts, 10_007 * (s + 1) + 5) for s in range(48)])  # [48, P]: policy layout
    repeated = [p for p in prompts for _ in range(8)]
    reference = np.stack([draw(repeated, 2_000_000 + j).reshape(len(prompts), 8) for j in range(6)])  # [6, P, 8]
    gap = policy.mean(axis=0) - reference.mean(axis=(0, 2))  # per prompt, paired
    gap_mean, gap_lo, gap_hi = crossed_ci(gap[None])
    wins = np.stack([[win_matrix(policy[s], reference[j]).mean(axis=1) for s in range(48)] for j in range(6)])
    # wins [draw sets, seeds, prompts]: seeds × prompts crossed within each draw set; draw sets are replicates
    per_set = [crossed_ci(w) for w in wins]
    result = {
        "world": str(args.world), "prompts": len(prompts), "policy_seeds": 48, "reference_sets": 6, "draws": 8,
        "gold_policy_layout": float(policy.mean()), "gold_reference_layout": float(reference.mean()),
        "gold_gap_per_prompt": {"mean": gap_mean, "lo": gap_lo, "hi": gap_hi},
        "win_rate_policy_vs_reference_layout": float(wins.mean()),
        "win_rate_per_reference_set": [{"mean": m, "lo": lo, "hi": hi} for m, lo, hi in per_set],
        "gold_sd_per_sample": float(policy.std(ddof=1)),
        "se_of_one_draw_set_mean_gold": float(reference[0].std(ddof=1) / math.sqrt(reference[0].size)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
