"""SimPO (Meng et al. 2024, Eq. 6): −log σ(β/|y_c|·log π(y_c|x) − β/|y_r|·log π(y_r|x) − γ). No reference model.

Through `trl.experimental.cpo.CPOTrainer` with loss_type = "simpo" and cpo_alpha = 0 (CPO's default 1.0 would add
an SFT term). TRL's `simpo_gamma` is the paper's γ itself (the paper's γ/β ratio is internal to TRL:
`logits = Δavg − simpo_gamma/β`, then −log σ(β·logits)); e.g. the paper's β = 2.5, γ/β = 0.55 is
simpo_gamma = 1.375. Cross-checked in tests/test_reference_losses.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.algorithms.offline_common import estimate_reference_free, train_reference_free
from bench.algorithms.registry import Algorithm, TrainParams, register


@dataclass(frozen=True)
class SimPOParams(TrainParams):
    beta: float = field(default=2.0, metadata={"gt": 0, "doc": "reward scale β on the average log-prob"})
    simpo_gamma: float = field(default=1.0, metadata={"min": 0, "doc": "target margin γ (the paper's γ, not γ/β)"})


@register("simpo")
class SimPO(Algorithm):
    trl_config = "trl.experimental.cpo:CPOConfig"
    summary = "SimPO (Meng et al. 2024): length-normalised reward, margin γ, no reference (TRL CPOTrainer)"
    Params = SimPOParams
    supports_peft = True
    paper = "Meng, Xia & Chen 2024, SimPO: Simple Preference Optimization with a Reference-Free Reward, arXiv:2405.14734"
    family = "reference-free"
    uses_reference = False
    implicit_reward = "avg_logp"
    estimate = classmethod(lambda cls, spec, sizes: estimate_reference_free(spec, sizes))

    def train(self, ctx):
        from bench.algorithms.trl_common import experimental

        CPOConfig, CPOTrainer = experimental(self.name, "cpo", "CPOConfig", "CPOTrainer")

        p = ctx.params
        return train_reference_free(ctx, CPOTrainer, CPOConfig, loss_type="simpo", cpo_alpha=0.0, beta=p["beta"],
                                    simpo_gamma=p["simpo_gamma"])


@dataclass(frozen=True)
class AlphaPOParams(SimPOParams):
    alpha: float = field(default=0.25, metadata={"doc": "α: reward shape r = (1 − p^(−α))/α on the per-token "
                                                        "probability p; α = 0 is exactly SimPO (TRL CPOConfig.alpha)"})


@register("alphapo")
class AlphaPO(Algorithm):
    trl_config = "trl.experimental.cpo:CPOConfig"
    """AlphaPO (Gupta et al. 2025, Eq. 6): SimPO with the reward reshaped by α. TRL 1.12 CPOTrainer
    `loss_type="alphapo"` (sugar for "simpo" with cpo_alpha = 0) and `alpha`; cross-checked against
    bench.algorithms.reference_losses.alphapo_loss. `pref_accuracy` ranks pairs by the average log-prob, a
    monotone transform of r_α, so it equals the ranking by r_α itself."""

    summary = "AlphaPO (Gupta et al. 2025): SimPO with reward shape (1 − p^(−α))/α, no reference (TRL CPOTrainer)"
    paper = "Gupta et al. 2025, AlphaPO: Reward Shape Matters for LLM Alignment, arXiv:2501.03884"
    family = "reference-free"
    Params = AlphaPOParams
    uses_reference = False
    implicit_reward = "avg_logp"
    estimate = classmethod(lambda cls, spec, sizes: estimate_reference_free(spec, sizes))

    def train(self, ctx):
        from bench.algorithms.trl_common import experimental

        CPOConfig, CPOTrainer = experimental(self.name, "cpo", "CPOConfig", "CPOTrainer")

        p = ctx.params
        return train_reference_free(ctx, CPOTrainer, CPOConfig, loss_type="alphapo", alpha=p["alpha"],
                                    beta=p["beta"], simpo_gamma=p["simpo_gamma"])
