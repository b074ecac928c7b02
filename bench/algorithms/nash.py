"""Online preference optimisation beyond Online DPO, from TRL's experimental trainers over `OnlineDPOTrainer`:

    xpo      Xie et al. 2024 ("Exploratory Preference Optimization"): Online DPO plus an exploration bonus α·log π
             on the reference's samples (TRL XPOTrainer, `alpha`).

Not registered: `nash_md` (Munos et al. 2023, TRL NashMDTrainer). On this stack (TRL 1.12, transformers 5.24)
its GeometricMixtureWrapper generation fails inside GPT-2's position embedding (IndexError: index out of range)
on the first step, with and without the position-id hook; it is left out rather than patched.

XPO (and Nash-MD) are the closest TRL 1.12 pieces to the chapter's DNO (Rosset et al. 2024, Direct Nash
Optimization), which they are *not*: DNO regresses, over several self-play rounds, onto a general preference
oracle's win rates with the previous round's policy as reference; XPO is a single-loop online algorithm of the
same online-preference family. It uses the shared reward model (charged in full, as ppo), the same 32-token cap,
temperature 1 and the same evaluation; TRL calls the reward model on token ids (prompt ids + completion ids, the
same ids the word-level tokenizer gives "prompt completion"), with position ids from the mask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.algorithms.online_dpo import OnlineDPO, OnlineDPOParams
from bench.algorithms.registry import register


class ModelJudged(OnlineDPO):
    """Online DPO's loop with TRL's model-only reward interface (the shared reward model, called on ids)."""

    def reward_kwargs(self, ctx, tok, reward) -> dict:
        reward.config.pad_token_id = tok.pad_token_id
        return {"reward_funcs": reward}


@dataclass(frozen=True)
class XPOParams(OnlineDPOParams):
    alpha: float = field(default=1e-5, metadata={"min": 0, "doc": "weight of the exploration term (TRL XPOConfig)"})


@register("xpo")
class XPO(ModelJudged):
    summary = "XPO (Xie et al. 2024): Online DPO plus an exploration bonus, judged by the reward model (TRL)"
    paper = "Xie et al. 2024, Exploratory Preference Optimization, arXiv:2405.21046"
    family = "online"
    Params = XPOParams

    def trl_classes(self):
        from trl.experimental.xpo import XPOConfig, XPOTrainer

        return XPOConfig, XPOTrainer

    def config_kwargs(self, p: dict) -> dict:
        return {"alpha": p["alpha"]}
