"""`fake`: a torch-free algorithm for instant end-to-end tests of the runner, results, report and check.

Its "metrics" are a deterministic function of (seed, beta) with seed noise, so sweeps, CIs and regressions can
be exercised in milliseconds. `fail = true` raises (failure isolation); `sleep` waits (kill-and-resume tests);
`diverge = true` makes the divergence guard stop it at step 3 (loss 3e10); `nan_metric = "kl"` reports that metric
as NaN. With $BENCH_FAKE_TRAIN_LOG set, every training appends its run id to that file (tests count trainings).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field

from bench.algorithms.base import TrainOutcome
from bench.algorithms.registry import Algorithm, register


@dataclass(frozen=True)
class FakeParams:
    beta: float = field(default=0.1, metadata={"gt": 0})
    learning_rate: float = field(default=1e-3, metadata={"gt": 0})
    fail: bool = False
    sleep: float = field(default=0.0, metadata={"min": 0})
    noise: float = field(default=0.02, metadata={"min": 0})
    diverge: bool = False
    nan_metric: str = ""


@register("fake")
class Fake(Algorithm):
    summary = "torch-free stand-in with synthetic metrics (tests only)"
    hidden = True
    family = "test"
    Params = FakeParams
    needs_torch = False
    uses_reference = False

    def train(self, ctx) -> TrainOutcome:
        p = ctx.params
        log = os.environ.get("BENCH_FAKE_TRAIN_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{ctx.spec.run_id} {os.getpid()}\n")
        if p["diverge"]:
            guard = ctx.meter.guard
            for step, loss in enumerate((0.69, 0.5, 3e10), 1):  # as the step callback would see them
                guard.logs.append({"step": step, "loss": loss, "grad_norm": 1.0})
                guard.check_history(guard.logs, step)
        if p["fail"]:
            raise RuntimeError("fake algorithm asked to fail (fail = true)")
        if p["sleep"]:
            time.sleep(p["sleep"])
        rng = random.Random(f"{ctx.spec.seed}-{p['beta']}-{p['learning_rate']}")
        quality = 1.0 / (1.0 + math.exp(-math.log(p["beta"] * 10)))  # peaks smoothly with beta
        noise = lambda: rng.gauss(0.0, p["noise"])  # noqa: E731
        win = min(max(0.5 + 0.4 * quality + noise(), 0.0), 1.0)
        budget = ctx.spec.budget.amount
        curves = [{"step": s, "flops": budget * s / 10, "budget_fraction": s / 10, "train_seconds": 0.0,
                   "split": split, "chosen_logp": -10 - s * 0.3 * quality + noise(),
                   "rejected_logp": -10 - s * 0.6 * quality + noise()}
                  for s in range(11) for split in ("heldout", "train")]
        for row in curves:
            row["margin"] = row["chosen_logp"] - row["rejected_logp"]
        metrics = {
            "win_rate": win, "win_rate_run_lo": max(0.0, win - 0.05), "win_rate_run_hi": min(1.0, win + 0.05),
            "gold_reward": 2 * quality + noise(), "kl": 5 * quality + abs(noise()),
            "chosen_logp_delta": -3 * quality + noise(), "rejected_logp_delta": -6 * quality + noise(),
            "pref_accuracy": 0.5 + 0.3 * quality + noise(), "length": 10 + noise(),
            "val_win_rate": win + noise(),
        }
        metrics["margin_delta"] = metrics["chosen_logp_delta"] - metrics["rejected_logp_delta"]
        if p["nan_metric"]:
            metrics[p["nan_metric"]] = float("nan")
        ctx.meter.charge("policy", budget if ctx.spec.budget.kind == "flops" else 0.0, 1000)
        return TrainOutcome(steps=10, epochs=1.0, stop_reason="budget", metrics=metrics, curves=curves)
