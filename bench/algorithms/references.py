"""Training-free references: `sft` (the base policy itself), `best_of_n` (n samples of π_ref, judge's best) and
`scripted` (a one-line rule written from the controlled world's grammar, bench/worlds/controlled/scripted.py).

They bound the comparison from below and beside: every trained algorithm starts at `sft` (win rate ≈ 0.5,
KL = 0), and `best_of_n` is the inference-time alternative whose KL is known in closed form,
log n − (n−1)/n. Best-of-n picks with the world's judge (the gold reward in the controlled world), so it is
an oracle reference, not a fair competitor: it is drawn for scale. `scripted` asks no judge: "finish the
prompt's clause and stop" and "finish with one positive adjective" show how much of a trained policy's win a
single rule already earns (its KL is exact: the rule is deterministic, KL = −log π_ref(y|x)).
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


@dataclass(frozen=True)
class ScriptedParams:
    rule: str = field(default="positive_adjective", metadata={
        "choices": ("finish_clause", "positive_adjective"),
        "doc": "finish_clause: finish the prompt's clause (neutral words) and stop; positive_adjective: finish "
               "with one positive adjective ('good')"})


@register("scripted")
class Scripted(Algorithm):
    summary = "a rule written from the controlled world's grammar (no training, no judge): the scale of a win"
    Params = ScriptedParams
    family = "reference"
    trains = False
    uses_reference = False
    implicit_reward = None

    def train(self, ctx) -> TrainOutcome:
        return TrainOutcome(policy_dir=None, steps=0, stop_reason="training_free",
                            extra={"scripted": ctx.params["rule"]})
