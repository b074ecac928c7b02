"""π_ref's side of every comparison, computed once per suite invocation and shared by all runs.

Win rate compares each policy sample with K = `eval.reference_samples` independent π_ref samples *for the same
prompt* (one fixed draw made the opponents' luck a bias common to every run: its mean gold reward sat 0.13 above
the population's and sft read 0.465), and every run is compared with the same π_ref draws (fixed seed), so
differences between algorithms are not differences of opponents and the draws can be resampled in the
bootstrap (bench/evaluation/crossed.py, "the one uncertainty model").

The control set (fresh π_ref samples, a different seed from the opponents) measures global drift: Δ log π on
text π_ref itself writes, beside Δ log π on the chosen / rejected completions of the pairs.
"""

from __future__ import annotations

import numpy as np

from bench.evaluation.judges import judge_for_world

REFERENCE_SEED = 1_000_003  # fixed: the opponent samples do not depend on the run's seed
CONTROL_SEED = 2_000_029    # the control set: fresh π_ref samples, not the opponents


def reference_model(stages):
    from bench.modeling import load_causal_lm

    return stages._timed("reference_model", "reference_model",
                         lambda: load_causal_lm(stages.world().base_model_dir, stages.device))


def eval_prompts(stages, n: int, offset: int = 0) -> list[str]:
    """Held-out prompts [offset, offset + n): the test set starts at 0, the validation set after it."""
    prompts = list(stages.world().eval_prompts)
    return prompts[offset:offset + n]


def _region(stages, n: int, offset: int) -> tuple[int, int]:
    """The prompt region [start, start + size) a request falls in: the test prompts or the validation prompts.
    Reference draws are made once per region, so a curve point on the first 64 test prompts meets the same
    opponents as the final evaluation on all of them."""
    ev = stages.suite.eval
    if offset + n <= ev.prompts:
        return 0, ev.prompts
    if offset >= ev.prompts:
        return ev.prompts, max(ev.validation_prompts, offset + n - ev.prompts)
    return offset, n


def reference_samples(stages, n: int, max_new_tokens: int, temperature: float, offset: int = 0):
    """π_ref's K draws on eval prompts [offset, offset + n): (completions [n][K], judge scores [n, K])."""
    k = int(getattr(stages.suite.eval, "reference_samples", 1))
    start, size = _region(stages, n, offset)

    def build():
        from bench.io import read_json, write_json_atomic
        from bench.modeling import load_tokenizer, sample
        from bench.hashing import stable_hash

        world = stages.world()
        # cached beside the world (like the limits): a real suite's K draws on hundreds of prompts are not cheap
        key = stable_hash({"format": 1, "world": world.key, "start": start, "size": size, "k": k,
                           "max_new_tokens": max_new_tokens, "temperature": temperature,
                           "seed": REFERENCE_SEED})[:12]
        path = world.root / f"reference-{key}.json"
        if path.is_file():
            cached = read_json(path)
            return cached["completions"], np.asarray(cached["scores"], dtype=np.float64)
        tok = load_tokenizer(world.tokenizer_dir)
        prompts = eval_prompts(stages, size, start)
        repeated = [p for p in prompts for _ in range(k)]
        s = sample(reference_model(stages), tok, repeated, max_new_tokens=max_new_tokens, temperature=temperature,
                   seed=REFERENCE_SEED + start, cut_at_pad=True)
        scores = judge_for_world(world).score(repeated, s.completions).reshape(len(prompts), k)
        completions = [s.completions[i * k:(i + 1) * k] for i in range(len(prompts))]
        from bench import distributed as dist

        if dist.is_main():
            write_json_atomic(path, {"completions": completions, "scores": scores.tolist()})
        return completions, scores

    completions, scores = stages._timed("reference_samples",
                                        ("ref_samples", start, size, k, max_new_tokens, temperature), build)
    lo = offset - start
    return completions[lo:lo + n], np.asarray(scores[lo:lo + n])


def control_set(stages, n: int, max_new_tokens: int, temperature: float) -> dict:
    """Fresh π_ref samples on the first n test prompts, with π_ref's Σ_t log π and lengths (the drift control)."""
    def build():
        from bench.modeling import load_tokenizer, sample, sequence_logps

        world = stages.world()
        tok = load_tokenizer(world.tokenizer_dir)
        prompts = eval_prompts(stages, n)
        s = sample(reference_model(stages), tok, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                   seed=CONTROL_SEED, cut_at_pad=True)
        completions = list(s.completions)  # scored with the end token appended, as the pairs are
        lp, lens = sequence_logps(reference_model(stages), tok, prompts, completions)
        return {"prompt": prompts, "completion": completions, "ref_logp": np.asarray(lp, dtype=np.float64),
                "len": np.asarray(lens, dtype=np.float64)}

    return stages.kept("control_set", {"n": n, "max_new_tokens": max_new_tokens, "temperature": temperature,
                                       "seed": CONTROL_SEED}, build)


def generation_metrics(ctx, policy, n_prompts: int, offset: int = 0):
    """(SampleMetrics of the policy on eval prompts [offset, offset + n), π_ref's judge scores there [n, K])."""
    from bench.evaluation.policy_metrics import sample_metrics
    from bench.modeling import load_tokenizer

    ev = ctx.spec.eval
    stages = ctx.stages
    tok = load_tokenizer(stages.world().tokenizer_dir)
    prompts = eval_prompts(stages, n_prompts, offset)
    _, ref_scores = reference_samples(stages, len(prompts), ev.max_new_tokens, ev.temperature, offset)
    # common random numbers: the sampling seed depends on the run's seed and the prompts only, not on the algorithm
    m = sample_metrics(policy, reference_model(stages), tok, judge_for_world(stages.world()), prompts,
                       max_new_tokens=ev.max_new_tokens, temperature=ev.temperature,
                       seed=10_007 * (ctx.spec.seed + 1) + offset)
    return m, np.asarray(ref_scores)
