"""What is achievable in a world with a known reward: the limits every algorithm is drawn against.

From m samples per prompt of π_ref, judged by the gold reward:
- best-of-n frontier (n = 1, 2, 4, ..., ≤ m): expected gold reward of the best of n draws (unbiased
  order-statistics estimator) against its KL, log n − (n−1)/n (Stiennon et al. 2020; Beirami et al. 2024 show
  it is an upper bound on the true KL of best-of-n);
- KL-regularised optimum π* ∝ π_ref·exp(r*/β) (Rafailov et al. 2023, Eq. 4) over a β grid, estimated by
  self-normalised importance sampling: expected reward, KL(π*‖π_ref), and the effective sample size (the
  estimate is only trustworthy where the ESS is a sizeable fraction of m).
Computed once per (world, eval settings) and cached as JSON beside the world.
"""

from __future__ import annotations

from bench.evaluation.estimators import best_of_n_expected, best_of_n_kl, kl_optimal_limit
from bench.evaluation.judges import judge_for_world

BETAS = (0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
CORR_PROMPTS, CORR_SAMPLES = 32, 8
LIMITS_FORMAT = 1


def world_limits(stages, ev) -> dict:
    from bench.hashing import stable_hash

    world = stages.world()
    key = stable_hash({"format": LIMITS_FORMAT, "world": world.key, "prompts": ev.limit_prompts,
                       "samples": ev.limit_samples, "max_new_tokens": ev.max_new_tokens,
                       "temperature": ev.temperature})[:12]
    path = world.root / f"limits-{key}.json"
    from bench.cache import load_json_cache

    # built under a lock; a limits file that does not parse is rebuilt with one warning line
    return load_json_cache(path, lambda: _compute_limits(stages, world, ev), what="limits")


def _compute_limits(stages, world, ev) -> dict:
    from bench.evaluation.reference import reference_model
    from bench.modeling import load_tokenizer, sample, sequence_logps

    tok = load_tokenizer(world.tokenizer_dir)
    model = reference_model(stages)
    prompts = list(world.eval_prompts)[: ev.limit_prompts]
    repeated = [p for p in prompts for _ in range(ev.limit_samples)]
    s = sample(model, tok, repeated, max_new_tokens=ev.max_new_tokens, temperature=ev.temperature, seed=777)
    gold = judge_for_world(world).score(repeated, s.completions)
    rewards = gold.reshape(len(prompts), ev.limit_samples)
    ns = [n for n in (1, 2, 4, 8, 16, 32, 64, 128) if n <= ev.limit_samples]
    best_of_n = [{"n": n, "kl": best_of_n_kl(n), "gold_reward": best_of_n_expected(rewards, n)} for n in ns]
    optimum = []
    for beta in BETAS:
        lim = kl_optimal_limit(rewards, beta)
        optimum.append({"beta": beta, "kl": float(lim.kl), "gold_reward": float(lim.expected_reward),
                        "ess": float(lim.ess), "ess_fraction": float(lim.ess) / ev.limit_samples})
    # a small multi-sample set for the implicit-vs-gold reward correlation of each run
    k = min(CORR_SAMPLES, ev.limit_samples)
    idx = [i * ev.limit_samples + j for i in range(min(CORR_PROMPTS, len(prompts))) for j in range(k)]
    corr_prompts = [repeated[i] for i in idx]
    corr_completions = [s.completions[i] for i in idx]
    ref_lp, _ = sequence_logps(model, tok, corr_prompts, corr_completions)
    out = {"reference_gold_reward": float(rewards.mean()), "samples_per_prompt": ev.limit_samples,
           "prompts": len(prompts), "best_of_n": best_of_n, "kl_optimal": optimum,
           "corr_samples": {"prompt": corr_prompts, "completion": corr_completions,
                            "gold": [float(gold[i]) for i in idx], "ref_logp": [float(x) for x in ref_lp],
                            "group": [i // ev.limit_samples for i in idx]}}
    return out



