"""The sampler (bench.modeling.sample) keeps a sampled pad token: it is a token the policy emitted, not padding.

Found on a PPO run of suites/replications/critic-rloo-ppo.toml (learning rate 1e-4, seed 5): the policy put 3.5%
per step on `<pad>`, which π_ref never emits; the sampler cut each sample at its first pad id, so 26% of the
samples ended without their end token, read as ill-formed clause fragments, and the sampled KL (0.03) missed the
pad tokens' log-ratio that the token-wise KL (1.76) counted. PPO's rollouts used the same cut samples, so the pad
token was never in a response PPO trained on or paid KL for.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from bench.worlds.controlled.tokenizer import build_tokenizer


class Scripted(torch.nn.Module):
    """A 'model' whose next token is fixed per step (all other logits −inf): its sample is known exactly."""

    def __init__(self, script: list[int], vocab: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.script, self.vocab, self.calls = script, vocab, 0

    def forward(self, input_ids, **kwargs):
        logits = torch.full((input_ids.shape[0], 1, self.vocab), -1e9)
        logits[:, :, self.script[min(self.calls, len(self.script) - 1)]] = 0.0
        self.calls += 1
        return SimpleNamespace(logits=logits, cache=None)


def test_a_sampled_pad_token_is_kept_and_shown():
    from bench.modeling import sample

    tok = build_tokenizer()
    word = tok.convert_tokens_to_ids(tok.tokenize("great")[0])
    other = tok.convert_tokens_to_ids(tok.tokenize("while")[0])
    script = [word, tok.pad_token_id, other, tok.eos_token_id]
    s = sample(Scripted(script, len(tok)), tok, ["the acting looked"], max_new_tokens=8)
    assert s.completion_ids == [script]          # the pad token stays; the row ends at its end token
    assert s.ended == [True]
    assert s.completions == ["great <pad> while"]  # the judge sees what the policy wrote


def test_rows_after_their_end_token_and_rows_cut_at_the_cap_are_unchanged():
    from bench.modeling import sample

    tok = build_tokenizer()
    word = tok.convert_tokens_to_ids(tok.tokenize("great")[0])
    ended = sample(Scripted([word, tok.eos_token_id], len(tok)), tok, ["the acting looked"], max_new_tokens=8)
    assert ended.completion_ids == [[word, tok.eos_token_id]] and ended.ended == [True]
    assert ended.completions == ["great"]
    capped = sample(Scripted([word], len(tok)), tok, ["the acting looked"], max_new_tokens=3)
    assert capped.completion_ids == [[word] * 3] and capped.ended == [False]


def test_every_end_token_of_the_model_ends_a_row():
    """A model whose generation config names a second end token (Qwen2.5-Instruct: <|im_end|> and <|endoftext|>)
    stops at either; the end token is the row's last id and is not in the text."""
    from bench.modeling import end_tokens, sample

    tok = build_tokenizer()
    word = tok.convert_tokens_to_ids(tok.tokenize("great")[0])
    unk = tok.convert_tokens_to_ids(tok.unk_token)
    model = Scripted([word, unk, word], len(tok))
    model.generation_config = SimpleNamespace(eos_token_id=[tok.eos_token_id, unk])
    assert end_tokens(model, tok) == {tok.eos_token_id, unk}
    s = sample(model, tok, ["the acting looked"], max_new_tokens=8)
    assert s.completion_ids == [[word, unk]] and s.ended == [True] and s.completions == ["great"]
    assert end_tokens(Scripted([word], len(tok)), tok) == {tok.eos_token_id}  # no config: the tokenizer's


def test_the_world_stages_keep_the_first_behaviour():
    """`cut_at_pad=True` (the world's pairs, reference draws, best-of-n, limits: data cached beside a world) keeps
    the sampler's first behaviour, so a world and its stages built before the fix are what a fresh build makes."""
    from bench.modeling import sample

    tok = build_tokenizer()
    word = tok.convert_tokens_to_ids(tok.tokenize("great")[0])
    other = tok.convert_tokens_to_ids(tok.tokenize("while")[0])
    script = [word, tok.pad_token_id, other, tok.eos_token_id]
    s = sample(Scripted(script, len(tok)), tok, ["the acting looked"], max_new_tokens=8, cut_at_pad=True)
    assert s.completion_ids == [[word]] and s.ended == [False] and s.completions == ["great"]
