"""The meter's one convention for generation (bench.budget.LiveRows): a generated position is charged while its
row is live, whichever sampler runs. `transformers`' `generate` (TRL's Online DPO, RLOO, GRPO) keeps feeding ended
rows the pad token with a mask of 1 until the longest row ends; those positions are not charged, exactly as our
own sampler (which masks them) never charged them."""

from __future__ import annotations

import pytest
import torch

from bench.budget import ComputeMeter, LiveRows, count_tokens
from bench.modeling import end_tokens

PAD, EOS = 0, 2


def step(ids, mask):
    return (), {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}


def test_live_rows_by_hand_on_generate_s_pattern():
    rows = LiveRows(frozenset({EOS}))
    # the prompts' pass: 2 + 3 real tokens (left padding)
    assert rows.tokens(*step([[PAD, 5, 6], [7, 8, 9]], [[0, 1, 1], [1, 1, 1]])) == 5
    # row 0 sampled EOS: it feeds it once (charged: that position is computed like any other), row 1 feeds 3
    assert rows.tokens(*step([[EOS], [3]], [[0, 1, 1, 1], [1, 1, 1, 1]])) == 2
    # generate feeds the ended row 0 the pad token with a mask of 1: not charged (count_tokens would say 2)
    args = step([[PAD], [4]], [[0, 1, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert count_tokens(*args) == 2 and rows.tokens(*args) == 1
    assert rows.tokens(*step([[PAD], [EOS]], [[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])) == 1  # row 1 feeds its EOS
    # a full-width pass (training, scoring, the next prompts) starts over: every row live again
    assert rows.tokens(*step([[5, 6], [7, 8]], [[1, 1], [1, 1]])) == 4
    assert rows.tokens(*step([[PAD], [3]], [[1, 1, 1], [1, 1, 1]])) == 2  # a sampled pad is a live row's token


def test_live_rows_charges_our_sampler_as_its_mask_does():
    """bench.modeling.sample writes 0 into an ended row's mask: the tracker adds nothing to it."""
    rows = LiveRows(frozenset({EOS}))
    seq = [step([[PAD, 5, 6], [7, 8, 9]], [[0, 1, 1], [1, 1, 1]]),
           step([[EOS], [3]], [[0, 1, 1, 1], [1, 1, 1, 1]]),
           step([[PAD], [4]], [[0, 1, 1, 1, 0], [1, 1, 1, 1, 1]]),
           step([[PAD], [5]], [[0, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])]
    assert [rows.tokens(*s) for s in seq] == [count_tokens(*s) for s in seq] == [5, 2, 1, 1]


class _Tok:
    eos_token_id = 5


def test_end_tokens_are_what_the_samplers_stop_at():
    """The tokenizer's end token and the generation config's (what TRL hands `generate`, and what
    bench.modeling.end_tokens stops at); never the model config's, which `generate` ignores beside a generation
    config."""
    from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=20, n_positions=16,
                                       eos_token_id=3, pad_token_id=PAD))
    model.generation_config = GenerationConfig(eos_token_id=[EOS, 7], pad_token_id=PAD)
    assert end_tokens(model) == {EOS, 7}
    assert end_tokens(model, _Tok()) == {EOS, 7, 5}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mismatch", [False, True])
def test_generate_is_charged_only_for_live_positions(seed, mismatch):
    """The meter on a real `generate`: prompt tokens + each row's generated tokens it fed before and including its
    end token (the last sampled column is never fed), never the pad tokens fed to rows that ended."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    from bench.algorithms import trl_common

    # mismatch: the model's config names another end token (3) than the generation config and the tokenizer (2, 5),
    # as a checkpoint whose tokenizer's end token was switched may; TRL stops `generate` at the latter two
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=8, n_positions=64,
                                       bos_token_id=1, eos_token_id=3 if mismatch else EOS, pad_token_id=PAD)).eval()
    model.generation_config.eos_token_id = EOS
    ends = [EOS, 5] if mismatch else [EOS]
    with torch.no_grad():  # make the end tokens likely, so rows end at different steps
        for t in ends:
            model.lm_head.weight[t] += 1.5 * model.lm_head.weight.mean(0) + 0.3
    meter = ComputeMeter()
    trl_common.attach(meter, model, "policy", tokenizer=_Tok() if mismatch else None)
    prompts = torch.tensor([[PAD, PAD, 5, 6], [PAD, 7, 3, 4], [3, 4, 5, 6], [PAD, PAD, PAD, 7], [5, 5, 6, 6],
                            [PAD, 3, 3, 3]])
    mask = (prompts != PAD).long()
    with torch.no_grad():
        out = model.generate(input_ids=prompts, attention_mask=mask, max_new_tokens=12, do_sample=True,
                             eos_token_id=ends, pad_token_id=PAD, temperature=1.0)
    gen = out[:, prompts.shape[1]:].tolist()
    width = len(gen[0])
    lengths = [next((i + 1 for i, t in enumerate(row) if t in ends), width) for row in gen]
    assert min(lengths) < max(lengths), "the rows should end at different steps for this test to say anything"
    n = sum(p.numel() for p in model.parameters())
    fed = int(mask.sum()) + sum(min(length, width - 1) for length in lengths)
    assert meter.tokens["policy"] == fed
    assert meter.by_component["policy"] == pytest.approx(2.0 * n * fed)
    assert fed < int(mask.sum()) + len(gen) * (width - 1)  # what the meter charged before: every row every step
