"""Padded batches computed without their padding: a GPT-2 backbone forward run as a few length-sorted chunks, each
cut to the columns its own rows use.

Why: the default suite's training batches are 32 pairs = 64 right-padded sequences of 4–36 tokens; 42% of a
batch's positions are padding, and a causal transformer's forward and backward cost is linear in positions, so
nearly half of every step was spent on tokens whose outputs are masked away (issue 24's profile; the same holds
for the evaluation's scoring passes over policy samples). The usual fixes are packing ("padding-free", which needs
a varlen attention kernel on GPU) or length bucketing of the dataset (which changes which pairs share a step, i.e.
the optimisation). This does neither: the batch, its rows and its loss are the trainer's own; only the forward is
evaluated row-group by row-group, as inference servers do with ragged batches.

Exactness: for a causal model the output at position t depends only on positions ≤ t of its own row, and masked
key positions contribute exp(−inf) = 0 to attention. So every non-padding position's output is mathematically the
same; its float32 value can differ in the last bits (GEMMs over different row counts, attention over fewer keys:
measured max |Δ| 2e-6 on hidden states). Padding positions get zeros instead of values nobody reads. Positions are
kept: the columns a chunk drops on the left are passed as explicit `position_ids` (what GPT-2 computes from
`cache_position` when none are given).

When it applies (else the model's own forward runs unchanged): outside `full_width()` (the stages cached beside
the world and keyed without it: the world, reward models, limits), `use_cache=False` passed explicitly (no KV
cache is being built for generation), a 2-D attention mask, `input_ids` given, no cache, `inputs_embeds`, token
types, cross-attention or requested attentions / hidden states (in the call or the model's config). Callers: every
TRL trainer whose forward goes through TRL's fused LM head (it passes use_cache=False: DPO, CPO for SimPO / ORPO,
KTO, RLOO, GRPO, the loss-hook variants), the evaluation's scoring passes (bench.modeling.token_logps,
bench.evaluation.policy_metrics). With dropout on (a Hub GPT-2 at its default 0.1; the controlled world has none)
the chunks draw their dropout masks in another order, so such runs move by more than rounding: the same
distribution, other draws. Our PPO's forwards do not ask for it: its trajectories (sampled from the policy
it trains) would move with the last bits and its forward is a small share of its time (3% measured); the judges
(reward-model scores compared for ties) do not either.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

# A forward of the backbone costs about as much fixed time (Python, kernel launches) as this many extra positions;
# the chunking minimises rows × width + CHUNK_COST × chunks (measured on the default suite's 64-row batches: 4
# chunks 0.055 s, 1 chunk 0.075 s, 8 chunks 0.060 s for forward + backward).
CHUNK_COST = 192
MAX_CHUNKS = 6

# Part of the key of every π_ref product computed inside runs and kept on disk (bench.stages.SharedStages.kept):
# their last bits depend on it. Not part of the world's key: world building and reward-model training run in
# `full_width()`, so cached worlds and reward models stay what they were.
BATCHING = (f"padding trimmed per length-sorted chunk (bench.padding_trim v2: equal-size chunks, cost {CHUNK_COST}, "
            f"at most {MAX_CHUNKS})")

_enabled = True


@contextlib.contextmanager
def full_width():
    """Compute every forward at its full padded width inside this block: the stages cached beside a world (the
    world itself, its reward models, limits and reference draws) are keyed without the batching, so they must be
    computed exactly as before."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def batching() -> str | None:
    """What a kept product's key records about the batching: None at full width (the key it always had)."""
    return BATCHING if _enabled else None


def plan_chunks(lengths: list[int], cost: int = CHUNK_COST, max_chunks: int = MAX_CHUNKS) -> list[tuple[int, int]]:
    """Split rows sorted by decreasing length into k contiguous groups of (nearly) equal size [(start, stop), ...],
    k ≤ max_chunks chosen to minimise Σ rows × longest + cost × groups. (An exact dynamic programme over the cut
    points saves a few per cent more positions but costs milliseconds of Python per forward.)"""
    n = len(lengths)
    best, plan = None, [(0, n)]
    for k in range(1, min(max_chunks, n) + 1):
        cuts = [round(i * n / k) for i in range(k + 1)]
        groups = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
        c = sum((b - a) * lengths[a] + cost for a, b in groups)
        if best is None or c < best:
            best, plan = c, groups
    return plan


_PASSABLE = {"use_cache", "position_ids", "return_dict"}  # kwargs the chunks pass on as they are


def _applies(module, input_ids, attention_mask, kwargs: dict[str, Any]) -> bool:
    if not _enabled or input_ids is None or attention_mask is None or attention_mask.ndim != 2:
        return False
    config = getattr(module, "config", None)
    if getattr(config, "output_hidden_states", False) or getattr(config, "output_attentions", False):
        return False  # the config asks for every layer's outputs: only the full-width forward returns them
    if kwargs.get("use_cache") is not False:
        return False
    for name, value in kwargs.items():
        if name in _PASSABLE:
            continue
        if name in ("output_attentions", "output_hidden_states") and not value:
            continue
        if value is not None:
            return False
    return input_ids.shape[0] > 1


def trimmed_forward(original, module, input_ids, attention_mask, **kwargs):
    """The backbone's forward on length-sorted chunks, each cut to its used columns; outputs scattered back into
    the batch's order and width (zeros at padding). Autograd flows through the chunks as through one forward."""
    from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

    batch, width = input_ids.shape
    used = attention_mask.bool()
    if bool(used.all()):
        return original(module, input_ids, attention_mask=attention_mask, **kwargs)
    cols = torch.arange(width, device=input_ids.device)
    empty = ~used.any(dim=1)  # an all-padding row: computed on its first column (its outputs are never read)
    first = torch.where(used, cols, width).min(dim=1).values.masked_fill(empty, 0)
    last = torch.where(used, cols, -1).max(dim=1).values.masked_fill(empty, 0)
    spans = (last - first + 1).tolist()  # plain ints: one conversion, not one tensor index per row
    order = sorted(range(batch), key=lambda i: -spans[i])
    groups = plan_chunks([spans[i] for i in order])
    if len(groups) == 1 and int(first.min()) == 0 and int(last.max()) == width - 1:
        return original(module, input_ids, attention_mask=attention_mask, **kwargs)
    position_ids = kwargs.pop("position_ids", None)
    if position_ids is None:
        position_ids = cols.unsqueeze(0).expand(batch, width)
    elif position_ids.shape[0] != batch:
        position_ids = position_ids.expand(batch, width)
    parts, rows_in_order = [], []
    for start, stop in groups:
        rows = torch.tensor(order[start:stop], device=input_ids.device)
        a, b = int(first[rows].min()), int(last[rows].max()) + 1
        out = original(module, input_ids[rows, a:b], attention_mask=attention_mask[rows, a:b],
                       position_ids=position_ids[rows, a:b], **kwargs)
        h = out.last_hidden_state
        parts.append(torch.nn.functional.pad(h, (0, 0, a, width - b)))
        rows_in_order.append(rows)
    stacked = torch.cat(parts, dim=0)
    inverse = torch.empty(batch, dtype=torch.long, device=input_ids.device)
    inverse[torch.cat(rows_in_order)] = torch.arange(batch, device=input_ids.device)
    return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=stacked[inverse])


def install() -> None:
    """Route GPT-2's backbone forward (transformers' GPT2Model, the controlled world's architecture) through
    `trimmed_forward` where it applies. Other architectures are untouched."""
    from transformers.models.gpt2 import modeling_gpt2

    cls = modeling_gpt2.GPT2Model
    if getattr(cls.forward, "_bench_trimmed", False):
        return
    original = cls.forward

    def forward(self, input_ids=None, *args, attention_mask=None, **kwargs):
        if not args and _applies(self, input_ids, attention_mask, kwargs):
            return trimmed_forward(original, self, input_ids, attention_mask, **kwargs)
        return original(self, input_ids, *args, attention_mask=attention_mask, **kwargs)

    forward._bench_trimmed = True
    forward.__wrapped__ = original
    cls.forward = forward
