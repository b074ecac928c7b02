"""π_ref's side of every comparison, computed once per suite invocation and shared by all runs.

Win rate compares each policy's sample with π_ref's sample *for the same prompt*, and every run is compared
with the same π_ref samples (fixed seed), so differences between algorithms are not differences of opponents.
"""

from __future__ import annotations

import numpy as np

REFERENCE_SEED = 1_000_003  # fixed: the opponent samples do not depend on the run's seed


def reference_model(stages):
    from bench.modeling import load_causal_lm

    return stages._timed("reference_model", "reference_model",
                         lambda: load_causal_lm(stages.world().base_model_dir, stages.device))


def eval_prompts(stages, n: int, offset: int = 0) -> list[str]:
    """Held-out prompts [offset, offset + n): the test set starts at 0, the validation set after it."""
    prompts = list(stages.world().eval_prompts)
    return prompts[offset:offset + n]


def reference_samples(stages, n: int, max_new_tokens: int, temperature: float, offset: int = 0):
    """π_ref's samples on eval prompts [offset, offset + n), with their judge scores."""
    def build():
        from bench.modeling import load_tokenizer, sample

        world = stages.world()
        tok = load_tokenizer(world.tokenizer_dir)
        prompts = eval_prompts(stages, n, offset)
        s = sample(reference_model(stages), tok, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                   seed=REFERENCE_SEED)
        return s, world.judge().score(prompts, s.completions)

    return stages._timed("reference_samples", ("ref_samples", n, max_new_tokens, temperature, offset), build)


def generation_metrics(ctx, policy, n_prompts: int, offset: int = 0):
    """(SampleMetrics of the policy on eval prompts [offset, offset + n), π_ref's judge scores on them)."""
    from bench.evaluation.policy_metrics import sample_metrics
    from bench.modeling import load_tokenizer

    ev = ctx.spec.eval
    stages = ctx.stages
    tok = load_tokenizer(stages.world().tokenizer_dir)
    prompts = eval_prompts(stages, n_prompts, offset)
    _, ref_scores = reference_samples(stages, len(prompts), ev.max_new_tokens, ev.temperature, offset)
    m = sample_metrics(policy, reference_model(stages), tok, stages.world().judge(), prompts,
                       max_new_tokens=ev.max_new_tokens, temperature=ev.temperature,
                       seed=10_007 * (ctx.spec.seed + 1) + offset)
    return m, np.asarray(ref_scores)
