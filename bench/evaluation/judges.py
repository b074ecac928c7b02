"""Judges score (prompt, completion) batches. Win rate and reward are defined by the world's judge.

- `GoldJudge`: the controlled world's gold reward r*(x, y) (the completion read as the prompt's continuation) —
  known truth, never seen by a trainer;
  its `well_formed` says which samples parse (judges without a grammar have no such method).
- `RewardModelJudge`: a Hugging Face sequence-classification model (num_labels = 1) scoring prompt+completion;
  the judge of real suites, and the *proxy* reward that `ppo` / `online_dpo` optimise (scored beside the gold
  reward to measure over-optimisation).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class Judge(Protocol):
    name: str

    def score(self, prompts: list[str], completions: list[str]) -> np.ndarray: ...


class GoldJudge:
    name = "gold"

    def score(self, prompts: list[str], completions: list[str]) -> np.ndarray:
        from bench.worlds.controlled.language import gold_reward

        return np.array([gold_reward(c, p) for p, c in zip(prompts, completions)], dtype=np.float64)

    def well_formed(self, prompts: list[str], completions: list[str]) -> np.ndarray:
        """Which reviews parse (and finished under the sampler's cap): the grammar side of a win."""
        from bench.worlds.controlled.language import is_well_formed

        return np.array([is_well_formed(p, c) for p, c in zip(prompts, completions)], dtype=bool)


class RewardModelJudge:
    """Scores `prompt + " " + completion + eos` with a sequence-classification model (right padding)."""

    def __init__(self, path: Path | str, device="cpu", batch_size: int = 64, name: str = "reward_model"):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = name
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path)).to(device).eval()
        self.device = device
        self.batch_size = batch_size

    def score(self, prompts: list[str], completions: list[str]) -> np.ndarray:
        import torch

        from bench.modeling import completion_batch

        out = []
        with torch.no_grad():
            for start in range(0, len(prompts), self.batch_size):
                batch = completion_batch(self.tokenizer, prompts[start:start + self.batch_size],
                                         completions[start:start + self.batch_size], device=self.device)
                logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                out.append(logits[:, 0].float().cpu().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros(0)


def judge_for_world(world) -> Judge:
    """The judge that defines win rate and reward for `world`: its own (World.judge), else by kind."""
    own = world.judge() if callable(getattr(world, "judge", None)) else None
    if own is not None:
        return own
    if world.kind == "controlled":
        return GoldJudge()
    if world.kind == "hub":
        from bench.worlds.hub.judge import HubJudge

        return HubJudge.for_world(world)
    judge_dir = world.info.get("judge_dir")
    if not judge_dir:
        raise ValueError(f"world {world.kind!r} has no judge")
    return RewardModelJudge(judge_dir)
