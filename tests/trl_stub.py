"""A stand-in for a causal LM with fixed logits, answering the calls TRL's trainers make in `_compute_loss`.

TRL 1.14+ runs DPO and KTO through a fused LM head (`trl.trainer.utils.add_fused_lm_head`): `model(...,
labels=labels, fused_lm_head=True)` returns per-token log-probs of each next token whose label is not -100 (zero
elsewhere) plus the logged per-token fields (entropy, mean logit, top-1 hit). This stub computes those from its
logits the way the fused head defines them, so a test can call TRL's own loss on known numbers."""

from __future__ import annotations

from types import SimpleNamespace

import torch


def fixed_logits_model(logits: torch.Tensor):
    def model(labels=None, fused_lm_head=False, **kw):
        if not fused_lm_head:
            return SimpleNamespace(logits=logits)
        target, shifted = labels[:, 1:], logits[:, :-1].float()
        all_logp = torch.log_softmax(shifted, -1)
        logp = all_logp.gather(-1, target.clamp(min=0)[..., None]).squeeze(-1)
        zero = target == -100
        return SimpleNamespace(log_probs=logp.masked_fill(zero, 0.0), aux_loss=None,
                               entropy=-(all_logp.exp() * all_logp).sum(-1).masked_fill(zero, 0.0),
                               mean_logits=shifted.mean(-1).masked_fill(zero, 0.0),
                               is_top1=(shifted.argmax(-1) == target).masked_fill(zero, False))

    return model
