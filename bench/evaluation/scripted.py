"""A scripted (training-free, rule-written) policy as a SampleMetrics record, like best-of-n's.

The rule lives with the world's grammar (bench/worlds/controlled/scripted.py); the algorithm entry that asks for
it (`scripted`, bench/algorithms/references.py) passes only the rule's name. The policy is deterministic, so its
KL to π_ref is exact: KL(δ_y ‖ π_ref(·|x)) = −log π_ref(y|x), the end token included; the policy's own
log-probability of its sample is 0 and its entropy 0.
"""

from __future__ import annotations

import numpy as np


def scripted_metrics(ctx, rule: str):
    """(SampleMetrics of the rule on the test prompts, π_ref's judge scores there [n, K])."""
    from bench.errors import UserError
    from bench.evaluation.judges import judge_for_world
    from bench.evaluation.policy_metrics import SampleMetrics
    from bench.evaluation.reference import eval_prompts, reference_model, reference_samples
    from bench.modeling import load_tokenizer, sequence_logps

    ev, stages = ctx.spec.eval, ctx.stages
    world = stages.world()
    if world.kind != "controlled":
        raise UserError(f"[algorithms.{ctx.spec.label}]: scripted rules are written from the controlled world's "
                        f"grammar; this suite's world is {world.kind!r} (remove the entry)")
    from bench.worlds.controlled.scripted import scripted_completion

    tok = load_tokenizer(world.tokenizer_dir)
    prompts = eval_prompts(stages, ev.prompts)
    completions = [" " + scripted_completion(p, rule) for p in prompts]
    ref_logp, lengths = sequence_logps(reference_model(stages), tok, prompts, completions)
    kl = -np.asarray(ref_logp, dtype=np.float64)
    scores = judge_for_world(world).score(prompts, completions)
    _, ref_scores = reference_samples(stages, ev.prompts, ev.max_new_tokens, ev.temperature)
    m = SampleMetrics(prompts, completions, scores, kl, kl.copy(), np.zeros(len(prompts)),
                      np.asarray(ref_logp, dtype=np.float64), np.zeros(len(prompts)),
                      np.asarray(lengths, dtype=np.float64), np.ones(len(prompts), dtype=bool))
    return m, np.asarray(ref_scores)
