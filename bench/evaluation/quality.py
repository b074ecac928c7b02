"""The alignment tax that can fall: is the policy still a model of the language, or has it left it?

Per run, measured the same way for every algorithm (and for π_ref, the baseline of each delta):
- `heldout_nll`: mean negative log-likelihood per token (nats) of fresh reference text, completions given
  their prompts — fresh reviews drawn from the controlled world's language (never seen in training), or the
  held-out chosen completions of a hub world; `heldout_nll_delta` = policy − π_ref (> 0: it got worse at the
  language; likelihood displacement on text *outside* the pairs);
- `grammatical_fraction`: share of the policy's samples whose review (prompt + completion) is well-formed
  under the controlled grammar (every clause parses, ends with its "."): the number word salad cannot fake;
- `ended_fraction`: share of samples that emitted the end token; `capped_fraction`: share cut at
  `max_new_tokens`. When more than `CENSORED_ABOVE` of the samples are capped, `length` and `kl` are
  censored (the cap, not the policy, set them): `censored` = 1 says so and the report flags it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

CENSORED_ABOVE = 0.05
FRESH_REVIEWS = 512
FRESH_SEED = 424_242  # fixed: the same fresh text for every run of a world


def fresh_text(world) -> tuple[list[str], list[str]]:
    """(prompts, completions) of reference text the policies never trained on."""
    if world.kind == "controlled":
        from bench.worlds.controlled.language import ReviewGenerator

        gen = ReviewGenerator(FRESH_SEED + int(world.info.get("config", {}).get("seed", 0)))
        pcs = [gen.prompt_and_completion() for _ in range(FRESH_REVIEWS)]
        return [p for p, _ in pcs], [" " + c for _, c in pcs]
    heldout = world.load_pairs("heldout")
    n = min(len(heldout), FRESH_REVIEWS)
    return list(heldout["prompt"][:n]), list(heldout["chosen"][:n])


def nll_per_token(model, tokenizer, prompts: list[str], completions: list[str]) -> float:
    from bench.modeling import sequence_logps

    logp, counts = sequence_logps(model, tokenizer, prompts, completions)
    return float(-logp.sum() / max(int(counts.sum()), 1))


def reference_nll(stages) -> float:
    """π_ref's NLL per token on the fresh text, computed once per world (kept beside it: bench.stages.kept)."""
    def build():
        from bench.evaluation.reference import reference_model
        from bench.modeling import load_tokenizer

        world = stages.world()
        prompts, completions = fresh_text(world)
        return nll_per_token(reference_model(stages), load_tokenizer(world.tokenizer_dir), prompts, completions)

    if not hasattr(stages, "kept"):  # a stand-in stages object (tests) without the per-world disk cache
        return stages._timed("reference_nll", "reference_nll", build)
    return stages.kept("reference_nll", {"fresh_reviews": FRESH_REVIEWS, "seed": FRESH_SEED},
                       lambda: {"nll": build()})["nll"]


def quality_metrics(ctx, policy, samples) -> dict[str, Any]:
    """The metrics above for one policy; `samples` is its SampleMetrics on the test prompts."""
    from bench.modeling import load_tokenizer

    world = ctx.stages.world()
    tok = load_tokenizer(world.tokenizer_dir)
    prompts, completions = fresh_text(world)
    nll = nll_per_token(policy, tok, prompts, completions)
    ended = np.asarray(samples.ended, dtype=bool)
    capped = ~ended  # a sample that did not emit the end token was cut at max_new_tokens
    out: dict[str, Any] = {
        "heldout_nll": nll, "heldout_nll_delta": nll - reference_nll(ctx.stages),
        "ended_fraction": float(ended.mean()) if len(ended) else float("nan"),
        "capped_fraction": float(capped.mean()) if len(capped) else float("nan"),
    }
    out["censored"] = int(out["capped_fraction"] > CENSORED_ABOVE)
    if world.kind == "controlled":
        from bench.worlds.controlled.language import is_well_formed

        ok = [is_well_formed(p, c) for p, c in zip(samples.prompts, samples.completions)]
        out["grammatical_fraction"] = float(np.mean(ok)) if ok else float("nan")
    return out
