"""What an algorithm gets (`RunContext`) and gives back (`TrainOutcome`); helpers shared by the TRL adapters.

The runner builds the context: the run spec, the world (models and pairs on disk), the compute meter, the
shared stages (reward model, reference log-probs), and the curve recorder whose callback every trainer adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainOutcome:
    policy_dir: Path | None = None        # saved policy to evaluate (None: the base policy itself)
    steps: int = 0
    epochs: float = 0.0
    stop_reason: str = "budget"           # budget | data_exhausted | training_free
    proxy_reward_dir: Path | None = None  # reward model the policy was optimised against (ppo, online_dpo)
    logs: list[dict[str, Any]] = field(default_factory=list)  # trainer log history
    metrics: dict[str, Any] | None = None  # precomputed final metrics (the torch-free fake algorithm only)
    curves: list[dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunContext:
    spec: Any                 # bench.suite.RunSpec
    world: Any                # bench.worlds.base.World (None for torch-free algorithms)
    run_dir: Path
    meter: Any                # bench.budget.ComputeMeter
    device: Any
    stages: Any               # bench.stages.SharedStages
    curves: Any               # bench.evaluation.curves.CurveRecorder (None for torch-free algorithms)
    progress: Any = None
    step_cap: str = "data_exhausted"  # which cap set the trainer's max_steps (see trl_common.stop_reason)
    tracker: Any = None       # bench.tracking.RunTracker, made by the first trainer's callbacks
    algorithm: Any = None     # the registered Algorithm class: the evaluation reads its declarations (implicit
                              # reward, margin target) from here rather than importing the registry

    @property
    def params(self) -> dict[str, Any]:
        return self.spec.param_dict

    @property
    def work_dir(self) -> Path:
        path = self.run_dir / "work"
        path.mkdir(parents=True, exist_ok=True)
        return path
