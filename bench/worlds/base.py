"""What every world hands the runner: paths on disk (TRL trainers read models from disk) plus a judge."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class World:
    kind: str
    key: str                  # content hash of the world config: the cache key
    root: Path                # cache directory holding everything below
    tokenizer_dir: Path
    base_model_dir: Path      # SFT policy = π_ref = starting point of every algorithm
    train_pairs_dir: Path     # `datasets` dataset: prompt, chosen, rejected, score_chosen, score_rejected, ...
    heldout_pairs_dir: Path
    eval_prompts: tuple[str, ...]  # held-out prompts for generation metrics (disjoint from training prompts)
    info: dict[str, Any] = field(default_factory=dict)  # build record (sizes, timings, statistics)

    def load_pairs(self, split: str):
        from datasets import load_from_disk

        return load_from_disk(str(self.train_pairs_dir if split == "train" else self.heldout_pairs_dir))

    def judge(self):
        """A world kind's own judge, when it brings one; None (the default): the evaluation picks the judge by
        kind (bench.evaluation.judges.judge_for_world: gold reward in the controlled world, the hub judge model).
        Worlds never import the evaluation: the evaluation depends on the worlds, not the other way round."""
        return None

    @property
    def record_path(self) -> Path:
        return self.root / "world.json"
