"""Training-free references: `sft` (the base policy itself) and `best_of_n` (n samples of π_ref, judge's best).

They bound the comparison from below and beside: every trained algorithm starts at `sft` (win rate ≈ 0.5,
KL = 0), and `best_of_n` is the inference-time alternative whose KL is known in closed form,
log n − (n−1)/n. Best-of-n picks with the world's judge (the gold reward in the controlled world), so it is
an oracle reference, not a fair competitor: it is drawn for scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field


from bench.algorithms.base import TrainOutcome
from bench.algorithms.registry import Algorithm, NoParams, register


@register("sft")
class SFT(Algorithm):
    summary = "the base (SFT) policy = π_ref, untrained: the starting point of every algorithm"
    Params = NoParams
    family = "reference"
    trains = False
    uses_reference = False
    implicit_reward = "log_ratio"  # identically zero: pref accuracy 0.5 by construction

    def train(self, ctx) -> TrainOutcome:
        return TrainOutcome(policy_dir=None, steps=0, stop_reason="training_free")


@dataclass(frozen=True)
class BestOfNParams:
    n: int = field(default=16, metadata={"min": 1, "doc": "samples per prompt; the judge keeps the best"})


@register("best_of_n")
class BestOfN(Algorithm):
    summary = "best of n π_ref samples by the judge (oracle inference-time reference; KL = log n − (n−1)/n)"
    Params = BestOfNParams
    family = "reference"
    trains = False
    uses_reference = False
    implicit_reward = None

    def train(self, ctx) -> TrainOutcome:
        return TrainOutcome(policy_dir=None, steps=0, stop_reason="training_free", extra={"best_of_n": ctx.params["n"]})


def best_of_n_samples(ctx, n: int):
    """SampleMetrics-like record of best-of-n samples on the eval prompts, and π_ref's scores there."""
    from bench.evaluation.best_of_n import best_of_n_metrics

    return best_of_n_metrics(ctx, n)


