"""Best-of-n as a policy: for each eval prompt draw n samples from π_ref and keep the judge's best.

Its KL to π_ref has the closed form log n − (n−1)/n (an upper bound, Beirami et al. 2024), which is what the
`kl` column reports for it (both KL estimators are set to it: no per-sample estimate is meaningful here).
"""

from __future__ import annotations

import numpy as np

from bench.evaluation.judges import judge_for_world


def best_of_n_metrics(ctx, n: int):
    from bench.evaluation.estimators import best_of_n_kl
    from bench.evaluation.policy_metrics import SampleMetrics
    from bench.evaluation.reference import eval_prompts, reference_model, reference_samples
    from bench.modeling import load_tokenizer, sample, sequence_logps

    ev, stages = ctx.spec.eval, ctx.stages
    world = stages.world()
    tok = load_tokenizer(world.tokenizer_dir)
    prompts = eval_prompts(stages, ev.prompts)
    repeated = [p for p in prompts for _ in range(n)]
    s = sample(reference_model(stages), tok, repeated, max_new_tokens=ev.max_new_tokens,
               temperature=ev.temperature, seed=20_011 * (ctx.spec.seed + 1), cut_at_pad=True)
    scores = judge_for_world(world).score(repeated, s.completions).reshape(len(prompts), n)
    best = scores.argmax(axis=1)
    pick = [i * n + int(j) for i, j in enumerate(best)]
    completions = [s.completions[i] for i in pick]
    logp, lengths = sequence_logps(reference_model(stages), tok, prompts, completions)
    kl = np.full(len(prompts), best_of_n_kl(n))
    _, ref_scores = reference_samples(stages, ev.prompts, ev.max_new_tokens, ev.temperature)
    m = SampleMetrics(prompts, completions, scores[np.arange(len(prompts)), best], kl, kl.copy(), logp, logp.copy(),
                      np.full(len(prompts), np.nan), lengths.astype(np.float64),
                      np.asarray([s.ended[i] for i in pick], dtype=bool))
    return m, np.asarray(ref_scores)
