"""Padded batches computed without their padding (bench/padding_trim.py): same outputs at every non-padding
position and the same gradients as the full-width forward, to float32 rounding; untouched where it must not apply."""

import pytest
import torch

import bench.modeling  # noqa: F401  (installs the trimmed forward)
from bench import padding_trim
from bench.padding_trim import full_width, plan_chunks


def _model(seed=0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=50, n_positions=48, n_embd=32, n_layer=2, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def _right_padded(lengths, width, vocab=50, seed=1):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    return ids.masked_fill(mask == 0, 0), mask


def _logits_and_grads(model, **inputs):
    model.zero_grad()
    out = model(**inputs)
    mask = inputs["attention_mask"].bool()
    loss = (out.logits.log_softmax(-1)[..., 3] * mask).sum()
    loss.backward()
    return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


LENGTHS = [5, 40, 7, 33, 12, 3, 40, 21, 9, 28, 16, 4] * 3


def test_right_padded_batch_matches_full_width_outputs_and_gradients():
    model = _model()
    ids, mask = _right_padded(LENGTHS, 40)
    with full_width():
        ref_logits, ref_grads = _logits_and_grads(model, input_ids=ids, attention_mask=mask, use_cache=False)
    logits, grads = _logits_and_grads(model, input_ids=ids, attention_mask=mask, use_cache=False)
    used = mask.bool()
    assert torch.allclose(logits[used], ref_logits[used], atol=1e-5, rtol=1e-5)
    assert not torch.equal(logits[~used], ref_logits[~used])  # padding: zeros through the head, not computed
    for name, g in ref_grads.items():
        assert torch.allclose(grads[name], g, atol=1e-4, rtol=1e-4), name


def test_left_padded_prompts_keep_their_explicit_positions():
    """PPO's layout: left-padded prompts then right-padded responses, positions given by the caller."""
    model = _model()
    width = 30
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(1, 50, (16, width), generator=g)
    mask = torch.zeros(16, width, dtype=torch.long)
    for i in range(16):
        pad_left, length = (i * 3) % 8, 4 + (i * 5) % 18
        mask[i, pad_left:pad_left + length] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with full_width():
        ref_logits, ref_grads = _logits_and_grads(model, input_ids=ids, attention_mask=mask, position_ids=pos,
                                                  use_cache=False)
    logits, grads = _logits_and_grads(model, input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
    used = mask.bool()
    assert torch.allclose(logits[used], ref_logits[used], atol=1e-5, rtol=1e-5)
    for name, g in ref_grads.items():
        assert torch.allclose(grads[name], g, atol=1e-4, rtol=1e-4), name


def test_it_does_not_apply_without_use_cache_false_or_inside_full_width(monkeypatch):
    calls = []
    real = padding_trim.trimmed_forward
    monkeypatch.setattr(padding_trim, "trimmed_forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = _model().eval()
    ids, mask = _right_padded(LENGTHS, 40)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)  # use_cache unset: a caller that may want the KV cache
        model(input_ids=ids, attention_mask=mask, use_cache=True)
        with full_width():
            model(input_ids=ids, attention_mask=mask, use_cache=False)
        model(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
        assert calls == []
        model(input_ids=ids, attention_mask=mask, use_cache=False)
    assert calls == [1]


def test_generation_through_the_kv_cache_is_unchanged():
    from bench.modeling import sample

    class Tok:
        eos_token_id, pad_token_id = 1, 0

        def __call__(self, texts, **kw):
            rows = [[2 + (ord(c) % 40) for c in t] for t in texts]
            width = max(map(len, rows))
            ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
            return _Enc({"input_ids": ids, "attention_mask": (ids != 0).long()})

        def decode(self, ids, **kw):
            return " ".join(map(str, ids))

    class _Enc(dict):
        def to(self, device):
            return self

    model = _model().eval()
    prompts = ["ab", "abcdef", "x"]
    a = sample(model, Tok(), prompts, max_new_tokens=6, seed=3)
    with full_width():
        b = sample(model, Tok(), prompts, max_new_tokens=6, seed=3)
    assert a.completion_ids == b.completion_ids


@pytest.mark.parametrize("lengths", [[36, 30, 29, 28, 25, 20, 18, 17, 15, 12, 10, 9, 8, 7, 6, 5] * 4, [10, 9], [4]])
def test_chunk_plan_covers_every_row_once_and_costs_no_more_than_one_chunk(lengths):
    lengths = sorted(lengths, reverse=True)
    groups = plan_chunks(lengths)
    assert groups[0][0] == 0 and groups[-1][1] == len(lengths)
    assert all(a[1] == b[0] for a, b in zip(groups, groups[1:]))
    cost = sum((stop - start) * lengths[start] + padding_trim.CHUNK_COST for start, stop in groups)
    assert cost <= len(lengths) * lengths[0] + padding_trim.CHUNK_COST
    assert len(groups) <= padding_trim.MAX_CHUNKS


def test_all_padding_rows_do_not_break_the_chunks():
    model = _model()
    ids, mask = _right_padded([7] * 32 + [0] * 32, 20)
    with full_width():
        ref_logits, _ = _logits_and_grads(model, input_ids=ids, attention_mask=mask, use_cache=False)
    logits, _ = _logits_and_grads(model, input_ids=ids, attention_mask=mask, use_cache=False)
    used = mask.bool()
    assert torch.allclose(logits[used], ref_logits[used], atol=1e-5, rtol=1e-5)
