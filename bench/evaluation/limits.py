"""What is achievable in a world with a known reward: the limits every algorithm is drawn against.

From m samples per prompt of π_ref, judged by the gold reward:
- best-of-n frontier (n = 1, 2, 4, ..., ≤ m): expected gold reward of the best of n draws (the exact
  order-statistics estimator from the empirical reward distribution, valid for n ≤ m) against its KL,
  log n − (n−1)/n (Stiennon et al. 2020; Beirami et al. 2024 show it is an upper bound on the true KL);
- KL-regularised optimum π* ∝ π_ref·exp(r*/β) (Rafailov et al. 2023, Eq. 4) over a β grid, estimated by
  self-normalised importance sampling: expected reward, KL(π*‖π_ref), and the effective sample size; a row is
  `valid` only where ESS ≥ 10% of m (bench/evaluation/frontier.py), and SNIS can never put more than log m nats
  between π* and π_ref.
Every point carries a 95% interval over the limit's prompts (the one uncertainty model with one "seed").

m is `eval.limit_samples`, raised automatically (powers of two, at most frontier.MAX_LIMIT_SAMPLES) so that
best-of-m covers the KL the runs reach (`reach_kl`); the number of prompts then shrinks so that the sampling cost
stays at limit_prompts × limit_samples draws (never below MIN_PROMPTS). Computed once per (world, eval settings,
m) and cached as JSON beside the world.
"""

from __future__ import annotations

import math

import numpy as np

from bench.evaluation.crossed import crossed_ci
from bench.evaluation.estimators import best_of_n_kl, kl_optimal_limit
from bench.evaluation.frontier import MIN_ESS_FRACTION, samples_to_cover
from bench.evaluation.judges import judge_for_world

BETAS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
CORR_PROMPTS, CORR_SAMPLES = 32, 8
MIN_PROMPTS = 16
LIMITS_FORMAT = 2


def limit_shape(ev, reach_kl: float = 0.0) -> tuple[int, int]:
    """(prompts, samples per prompt) of the limits for runs reaching `reach_kl`."""
    m = max(ev.limit_samples, samples_to_cover(reach_kl, least=ev.limit_samples)) if reach_kl > 0 else \
        ev.limit_samples
    prompts = ev.limit_prompts if m == ev.limit_samples else \
        max(min(MIN_PROMPTS, ev.limit_prompts), ev.limit_prompts * ev.limit_samples // m)
    return prompts, m


def world_limits(stages, ev, reach_kl: float = 0.0) -> dict:
    from bench.cache import load_json_cache
    from bench.hashing import stable_hash

    world = stages.world()
    prompts, m = limit_shape(ev, reach_kl)
    key = stable_hash({"format": LIMITS_FORMAT, "world": world.key, "prompts": prompts, "samples": m,
                       "max_new_tokens": ev.max_new_tokens, "temperature": ev.temperature})[:12]
    path = world.root / f"limits-{key}.json"

    def compute() -> dict:
        from bench.padding_trim import full_width

        with full_width():  # keyed without the batching (bench.padding_trim): computed as before
            return _compute_limits(stages, world, ev, prompts, m)

    # built under a lock; a limits file that does not parse is rebuilt with one warning line
    return load_json_cache(path, compute, what="limits")


def limit_rows(rewards: np.ndarray) -> tuple[list[dict], list[dict]]:
    """(best-of-n rows, π* rows) from rewards [P, m] of π_ref samples, each with a 95% interval over prompts."""
    r = np.sort(np.asarray(rewards, dtype=float), axis=1)
    p, m = r.shape
    best_of_n = []
    for n in (2 ** k for k in range(0, 12)):
        if n > m:
            break
        total = math.comb(m, n)
        w = np.array([math.comb(i - 1, n - 1) / total for i in range(1, m + 1)])
        mean, lo, hi = crossed_ci((r @ w)[None])  # the exact estimator per prompt, interval over prompts
        best_of_n.append({"n": n, "kl": best_of_n_kl(n), "gold_reward": mean, "gold_lo": lo, "gold_hi": hi})
    optimum = []
    for beta in BETAS:
        lim = kl_optimal_limit(r, beta)
        per_prompt = np.array([kl_optimal_limit(row[None], beta).expected_reward for row in r])
        _, lo, hi = crossed_ci(per_prompt[None])
        frac = float(lim.ess) / m
        optimum.append({"beta": beta, "kl": float(lim.kl), "gold_reward": float(lim.expected_reward),
                        "gold_lo": lo, "gold_hi": hi, "ess": float(lim.ess), "ess_fraction": frac,
                        "valid": bool(frac >= MIN_ESS_FRACTION)})
    return best_of_n, optimum


def _compute_limits(stages, world, ev, n_prompts: int, m: int) -> dict:
    from bench.evaluation.reference import reference_model
    from bench.modeling import load_tokenizer, sample, sequence_logps

    tok = load_tokenizer(world.tokenizer_dir)
    model = reference_model(stages)
    prompts = list(world.eval_prompts)[:n_prompts]
    repeated = [p for p in prompts for _ in range(m)]
    s = sample(model, tok, repeated, max_new_tokens=ev.max_new_tokens, temperature=ev.temperature, seed=777,
               cut_at_pad=True)
    gold = judge_for_world(world).score(repeated, s.completions)
    rewards = gold.reshape(len(prompts), m)
    best_of_n, optimum = limit_rows(rewards)
    # a small multi-sample set for the implicit-vs-gold reward correlation of each run
    k = min(CORR_SAMPLES, m)
    idx = [i * m + j for i in range(min(CORR_PROMPTS, len(prompts))) for j in range(k)]
    corr_prompts = [repeated[i] for i in idx]
    corr_completions = [s.completions[i] for i in idx]
    ref_lp, _ = sequence_logps(model, tok, corr_prompts, corr_completions)
    valid = [r["kl"] for r in optimum if r["valid"]] + [r["kl"] for r in best_of_n]
    out = {"reference_gold_reward": float(rewards.mean()), "samples_per_prompt": m,
           "prompts": len(prompts), "best_of_n": best_of_n, "kl_optimal": optimum,
           "min_ess_fraction": MIN_ESS_FRACTION, "valid_to_kl": float(max(valid)),
           "corr_samples": {"prompt": corr_prompts, "completion": corr_completions,
                            "gold": [float(gold[i]) for i in idx], "ref_logp": [float(x) for x in ref_lp],
                            "group": [i // m for i in idx]}}
    return out
