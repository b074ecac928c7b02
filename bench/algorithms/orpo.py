"""ORPO (Hong et al. 2024, Eq. 6–7): L_SFT(y_c) + λ·(−log σ(log odds(y_c) − log odds(y_r))), no reference model.

Through `trl.experimental.orpo.ORPOTrainer`, whose `beta` is the paper's λ, applied to per-token average
log-probs (odds = p/(1−p) with p = exp(avg log-prob)). TRL's NLL term covers the chosen completion's tokens
averaged over the batch; see bench/algorithms/reference_losses.py for the exact correspondence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.algorithms.offline_common import estimate_reference_free, train_reference_free
from bench.algorithms.registry import Algorithm, TrainParams, register


@dataclass(frozen=True)
class ORPOParams(TrainParams):
    beta: float = field(default=0.1, metadata={"gt": 0, "doc": "λ: weight of the odds-ratio term"})


@register("orpo")
class ORPO(Algorithm):
    trl_config = "trl.experimental.orpo:ORPOConfig"
    summary = "ORPO (Hong et al. 2024): SFT on chosen + odds-ratio penalty, no reference (TRL ORPOTrainer)"
    Params = ORPOParams
    supports_peft = True
    paper = "Hong, Lee & Thorne 2024, ORPO: Monolithic Preference Optimization without Reference Model, arXiv:2403.07691"
    family = "reference-free"
    uses_reference = False
    implicit_reward = "log_odds"
    estimate = classmethod(lambda cls, spec, sizes: estimate_reference_free(spec, sizes))

    def train(self, ctx):
        from bench.algorithms.trl_common import experimental

        ORPOConfig, ORPOTrainer = experimental(self.name, "orpo", "ORPOConfig", "ORPOTrainer")

        return train_reference_free(ctx, ORPOTrainer, ORPOConfig, beta=ctx.params["beta"])
