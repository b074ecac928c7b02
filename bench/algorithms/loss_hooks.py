"""A loss hook over TRL's `DPOTrainer` for pairwise losses TRL 1.12 does not compute (ODPO, Cal-DPO, REBEL).

`PairLossDPOTrainer` keeps everything of TRL's DPO trainer — data preparation, tokenisation, the collator, the
reference model (explicit, precomputed or synced), optimisation, logging — and replaces only the last step of
`_compute_loss`: the per-sequence log-probs of policy and reference go to a *pure reference loss* from
bench/algorithms/reference_losses.py, `pair_loss(pc, pr, rc, rr, target) -> (losses, chosen_r, rejected_r)`.
A per-pair number the loss needs (ODPO's offset, REBEL's reward-model score gap) travels as the dataset column
`pair_target`, which the wrapped collator turns into a tensor.

The log-probs are computed as TRL computes them (token-summed over the completion mask, selective log-softmax);
tests/test_variants.py checks that with `pair_loss = dpo_loss` this trainer's loss equals TRL's own sigmoid
loss on the same batch.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from trl import DPOTrainer
from trl.trainer.utils import selective_log_softmax

TARGET = "pair_target"


def sequence_logps(logits: torch.Tensor, input_ids: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """Token-summed log π(completion | prompt), as TRL's DPOTrainer computes it (reverse-KL, no ld_alpha)."""
    per_token = selective_log_softmax(logits[..., :-1, :], input_ids[..., 1:])
    per_token = per_token.masked_fill(completion_mask[..., 1:] == 0, 0.0)
    return per_token.sum(dim=1)


class WithTarget:
    """Collator wrapper: TRL's preference batch plus `pair_target` as a float tensor (one value per pair)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        if TARGET in examples[0]:
            batch[TARGET] = torch.tensor([float(e[TARGET]) for e in examples], dtype=torch.float32)
        return batch


class PairLossDPOTrainer(DPOTrainer):
    """`DPOTrainer` whose loss is `pair_loss`, a pure function of per-sequence log-probs (and `pair_target`)."""

    pair_loss: Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]] | None = None

    def __init__(self, *args, pair_loss, **kwargs):
        self.pair_loss = pair_loss
        super().__init__(*args, **kwargs)
        self.data_collator = WithTarget(self.data_collator)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if TARGET not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, TARGET]

    def _compute_loss(self, model, inputs, return_outputs=False):
        mode = "train" if self.model.training else "eval"
        model_kwargs = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "use_cache": False}
        logps = sequence_logps(model(**model_kwargs).logits, inputs["input_ids"], inputs["completion_mask"])
        chosen, rejected = logps.chunk(2, dim=0)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            with torch.no_grad():
                ref = sequence_logps(self.ref_model(**model_kwargs).logits, inputs["input_ids"],
                                     inputs["completion_mask"])
            ref_chosen, ref_rejected = ref.chunk(2, dim=0)
        target = inputs.get(TARGET)
        args = (chosen, rejected, ref_chosen.to(chosen.dtype), ref_rejected.to(chosen.dtype))
        losses, chosen_r, rejected_r = self.pair_loss(*args, target.to(chosen.dtype)) if target is not None \
            else self.pair_loss(*args)
        loss = losses.mean()
        gather = self.accelerator.gather_for_metrics
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen_r).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_r).mean().item())
        metrics["rewards/accuracies"].append(gather((chosen_r > rejected_r).float()).mean().item())
        metrics["rewards/margins"].append(gather(chosen_r - rejected_r).mean().item())
        metrics["logps/chosen"].append(gather(chosen.detach()).mean().item())
        metrics["logps/rejected"].append(gather(rejected.detach()).mean().item())
        return (loss, None) if return_outputs else loss
