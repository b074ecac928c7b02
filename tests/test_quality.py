"""The alignment tax that can fall (bench/evaluation/quality.py): grammatical / ended / capped fractions, the
censored flag, and the held-out NLL delta, on a tiny built world with hand-made samples."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench.evaluation.quality import CENSORED_ABOVE, fresh_text, nll_per_token, quality_metrics
from bench.worlds.controlled.config import ControlledWorldConfig

TINY = ControlledWorldConfig(corpus_sentences=600, n_layer=1, n_embd=32, n_head=2, pairs=60, heldout_pairs=10,
                             heldout_prompts=20)


class _Stages:
    def __init__(self, world):
        self._world, self.device, self.cache = world, "cpu", {}

    def world(self):
        return self._world

    def _timed(self, name, key, build):
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from bench.worlds.controlled.build import build_world

    return build_world(TINY, tmp_path_factory.mktemp("cache"))


def _samples(prompts, completions, ended):
    return SimpleNamespace(prompts=prompts, completions=completions, ended=np.asarray(ended),
                           lengths=np.array([len(c.split()) + 1 for c in completions]))


def test_fresh_text_is_reviews_of_the_language_not_training_text(world):
    from bench.worlds.controlled.language import is_well_formed

    prompts, completions = fresh_text(world)
    assert len(prompts) == 512 and all(is_well_formed(p, c) for p, c in zip(prompts, completions))
    assert fresh_text(world) == (prompts, completions)  # the same text for every run
    train = {(r["prompt"], r["chosen"]) for r in world.load_pairs("train").to_list()}
    assert not train & set(zip(prompts, completions))


def test_quality_metrics_of_reference_and_of_a_broken_policy(world):
    from bench.modeling import load_causal_lm, load_tokenizer

    ref = load_causal_lm(world.base_model_dir)
    ctx = SimpleNamespace(stages=_Stages(world))
    prompts = ["the plot was", "i found the", "the cast was", "a truly"]
    good = _samples(prompts, ["great .", "music lovely .", "not dull .", "awful script ."], [True] * 4)
    q = quality_metrics(ctx, ref, good)
    assert q["grammatical_fraction"] == 1.0 and q["ended_fraction"] == 1.0 and q["capped_fraction"] == 0.0
    assert q["censored"] == 0 and q["heldout_nll_delta"] == pytest.approx(0.0, abs=1e-9)
    tok = load_tokenizer(world.tokenizer_dir)
    assert q["heldout_nll"] == pytest.approx(nll_per_token(ref, tok, *fresh_text(world)))

    salad = _samples(prompts, ["great superb lovely", "great .", "and and", "film film film"], [False, True, False, True])
    broken = load_causal_lm(world.base_model_dir)
    import torch

    with torch.no_grad():  # scramble the output head: the policy no longer models the language
        w = broken.get_output_embeddings().weight
        w.copy_(w[torch.randperm(w.shape[0], generator=torch.Generator().manual_seed(0))])
    q = quality_metrics(ctx, broken, salad)
    assert q["grammatical_fraction"] == 0.0  # "i found the" + "great ." lacks its noun
    assert q["ended_fraction"] == 0.5 and q["capped_fraction"] == 0.5 > CENSORED_ABOVE and q["censored"] == 1
    assert q["heldout_nll_delta"] > 0.2  # the tax: worse at fresh text of the language
