"""Curves during training: log-prob drift every `curve_every` of the budget, sampling metrics more coarsely.

Every point is recorded with step, FLOPs spent, budget fraction and training seconds, so any curve can be drawn
against compute. The meter is paused while measuring: evaluation is not charged to the run. The same recorder
serves every trainer through `callback(get_policy)`, including PPO, which never sees the pairs — its drift on
them is the contrast that shows displacement is a property of training on the pairs.

Rows (`curves.csv`), one per (point, split):
    step, flops, budget_fraction, train_seconds, split (heldout | train),
    chosen_logp, rejected_logp, margin (means of Σ_t log π), chosen_logp_delta, rejected_logp_delta,
    margin_delta (from the π_ref value, i.e. step 0), *_per_token,
    control_logp_delta(_per_token) (split = heldout: the same change on fresh π_ref samples, the drift control),
    and on generation points (split = heldout only, every `curve_generation_every`, default 10% of the budget):
    win_rate (vs K π_ref draws per prompt), tie_rate, gold_reward, kl, kl_tokenwise, length, with within-run
    95% intervals over the checkpoint's prompts (`win_rate_run_lo/_hi`, `gold_reward_run_lo/_hi`,
    `kl_tokenwise_run_lo/_hi`), `curve_prompts` (how many) and `reference_gold_reward` (π_ref's gold on the same
    prompts, the zero of the frontier efficiency). The per-prompt values of every generation point are kept in
    `prompt_rows` and written to curve_prompts.csv (point, prompt_index, gold_reward, reference_gold,
    kl_tokenwise, kl, win_rate, length): the units of an interval over seeds and prompts per checkpoint.
    The per-pair changes of every point (tracked held-out and training pairs, and the control set, with gold and
    length) are kept in `pair_rows` and written to curve_pair_drift.csv (point, split, group, unit, delta, length,
    gold): the quality-adjusted displacement at any checkpoint, e.g. PPO's at a DPO run's KL.

How many prompts a checkpoint needs (issue 25): a checkpoint's within-run half-width shrinks as 1/√P; the default
suite's checkpoints use the full test set (256 prompts) so that an algorithm's own consecutive points are resolved
at the scale of the gaps between algorithms (measured: benchmarks/frontier_readings.py prints both).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any

import numpy as np


class CurveRecorder:
    def __init__(self, ctx):
        self.ctx = ctx
        self.rows: list[dict[str, Any]] = []
        ev = ctx.spec.eval
        self.every = ev.curve_every
        self.gen_every = ev.curve_generation_every
        self.next_point = 0.0
        self.next_gen = 0.0
        self.seconds = 0.0  # wall time spent measuring (reported as curve_s: evaluation cost inside training)
        self._tokenizer = None
        self.prompt_rows: list[dict[str, Any]] = []  # per generation point: per-prompt arrays (curve_prompts.csv)
        self.pair_rows: list[dict[str, Any]] = []    # per point: per-pair / control Δlog π (curve_pair_drift.csv)
        self._control_gold = None
        # the measurements of the latest point, kept for the final evaluation of the same policy object, which
        # would otherwise score the same sequences again (issue 24): {("pairs", split) | ("generation", n): value}
        self._latest: tuple[Any, dict[tuple, Any]] = (None, {})

    def latest(self, policy, what: tuple):
        """What the latest point measured for `what` on this very policy object (the final point, when the final
        evaluation asks), else None. Same code, same inputs, same seeds: the values the caller would compute."""
        owner, kept = self._latest
        return kept.get(what) if owner is policy else None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from bench.modeling import load_tokenizer

            self._tokenizer = load_tokenizer(self.ctx.world.tokenizer_dir)
        return self._tokenizer

    def callback(self, get_policy):
        """A TrainerCallback measuring at step 0 and whenever the budget fraction passes the next point.

        `get_policy(kwargs)` returns the policy module from the callback's kwargs (trainers wrap it differently).
        """
        from transformers import TrainerCallback

        recorder = self

        class CurveCallback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                recorder.maybe_record(get_policy(kwargs), state.global_step, force=True)

            def on_step_end(self, args, state, control, **kwargs):
                recorder.maybe_record(get_policy(kwargs), state.global_step)

        return CurveCallback()

    def maybe_record(self, policy, step: int, *, force: bool = False, final: bool = False) -> None:
        fraction = self.ctx.meter.fraction
        if not (force or final or fraction + 1e-9 >= self.next_point):
            return
        with_gen = force or final or fraction + 1e-9 >= self.next_gen
        t = time.perf_counter()
        with preserved_rng():  # measuring must not move the trainer's random streams (data order, sampling)
            self.record(policy, step, with_generation=with_gen)
        self.seconds += time.perf_counter() - t
        self.next_point = (math.floor(fraction / self.every + 1e-9) + 1) * self.every
        if with_gen:
            self.next_gen = (math.floor(fraction / self.gen_every + 1e-9) + 1) * self.gen_every

    def record(self, policy, step: int, *, with_generation: bool) -> None:
        from bench.evaluation.policy_metrics import pair_logps

        ctx = self.ctx
        ev = ctx.spec.eval
        meter = ctx.meter
        self._latest = (policy, {})
        with meter.paused():
            was_training = policy.training
            base = {"step": int(step), "flops": meter.flops, "budget_fraction": meter.fraction,
                    "train_seconds": meter.seconds}
            for split in ("heldout", "train"):
                pairs = ctx.stages.curve_pairs(split, ev.curve_pairs)
                ref = ctx.stages.base_logps(split, ev.curve_pairs)
                now = pair_logps(policy, self.tokenizer, pairs)
                self._latest[1][("pairs", split)] = now
                row = dict(base, split=split, **drift_row(now, ref))
                point = len(self.rows) // 2
                for side in ("chosen", "rejected"):
                    self.pair_rows.append({"point": point, "split": split, "group": side,
                                           "unit": np.arange(len(now[side])), "delta": now[side] - ref[side],
                                           "length": np.asarray(ref[f"{side}_len"], dtype=float),
                                           "gold": np.asarray(pairs[f"score_{side}"], dtype=float)})
                if split == "heldout":
                    row.update(self._control_point(policy, point))
                if with_generation and split == "heldout":
                    row.update(self._generation_point(policy))
                self.rows.append(row)
            policy.train(was_training)

    def _control_point(self, policy, point: int) -> dict[str, float]:
        """Δ log π on fresh π_ref samples (the control set): how far the policy moved on π_ref's own text."""
        from bench.evaluation.reference import control_set
        from bench.modeling import sequence_logps

        ev = self.ctx.spec.eval
        control = control_set(self.ctx.stages, ev.control_prompts, ev.max_new_tokens, ev.temperature)
        lp, _ = sequence_logps(policy, self.tokenizer, control["prompt"], control["completion"])
        d = np.asarray(lp) - control["ref_logp"]
        if self._control_gold is None:  # the control's gold: a covariate of the quality-adjusted displacement
            from bench.evaluation.judges import judge_for_world

            self._control_gold = np.asarray(judge_for_world(self.ctx.stages.world()).score(
                control["prompt"], control["completion"]), dtype=float)
        self.pair_rows.append({"point": point, "split": "control", "group": "control", "unit": np.arange(len(d)),
                               "delta": d, "length": np.asarray(control["len"], dtype=float),
                               "gold": self._control_gold})
        return {"control_logp_delta": float(d.mean()),
                "control_logp_delta_per_token": float((d / np.maximum(control["len"], 1)).mean())}

    def _generation_point(self, policy) -> dict[str, float]:
        from bench.evaluation.crossed import crossed_ci
        from bench.evaluation.estimators import win_matrix
        from bench.evaluation.reference import generation_metrics

        ctx = self.ctx
        n = ctx.spec.eval.curve_generation_prompts
        m, ref_scores = generation_metrics(ctx, policy, n_prompts=n)
        self._latest[1][("generation", n)] = (m, ref_scores)
        wins = win_matrix(m.scores, ref_scores)
        point = {"win_rate": float(wins.mean()), "tie_rate": float((wins == 0.5).mean()),
                 "gold_reward": float(m.scores.mean()),
                 "kl": float(m.kl_k1.mean()), "kl_tokenwise": float(m.kl_tokenwise.mean()),
                 "length": float(m.lengths.mean()), "curve_prompts": len(m.scores),
                 "reference_gold_reward": float(np.mean(ref_scores))}
        # within-run 95% intervals over the checkpoint's prompts (the one uncertainty model with one seed)
        for name, x, bounds in (("win_rate", wins, (0.0, 1.0)), ("gold_reward", m.scores, (-np.inf, np.inf)),
                                ("kl_tokenwise", m.kl_tokenwise, (0.0, np.inf))):
            _, point[f"{name}_run_lo"], point[f"{name}_run_hi"] = crossed_ci(x[None], bounds=bounds)
        # per prompt, so a report can put the seeds and the shared prompts into one interval per checkpoint
        self.prompt_rows.append({"point": len(self.prompt_rows), "gold_reward": m.scores,
                                 "reference_gold": np.asarray(ref_scores, dtype=float).mean(axis=1),
                                 "kl_tokenwise": m.kl_tokenwise, "kl": m.kl_k1, "win_rate": wins.mean(axis=1),
                                 "length": m.lengths})
        if ctx.stages.world().kind == "controlled":  # leaving the language through training (the final metric's twin)
            from bench.worlds.controlled.language import is_well_formed

            point["grammatical_fraction"] = float(np.mean([is_well_formed(p, c)
                                                           for p, c in zip(m.prompts, m.completions)]))
        return point


@contextlib.contextmanager
def preserved_rng():
    """Restore Python's, NumPy's and torch's global RNG states afterwards: a run's numbers then do not depend
    on what the evaluation did in between (e.g. loading the reference model the first time initialises weights
    from the global generator), nor on which other runs shared the process."""
    import random

    import torch

    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


def drift_row(now: dict[str, np.ndarray], ref: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean log-probs now and their change from π_ref (step 0), in total and per completion token."""
    dc = now["chosen"] - ref["chosen"]
    dr = now["rejected"] - ref["rejected"]
    return {
        "chosen_logp": float(now["chosen"].mean()), "rejected_logp": float(now["rejected"].mean()),
        "margin": float((now["chosen"] - now["rejected"]).mean()),
        "chosen_logp_delta": float(dc.mean()), "rejected_logp_delta": float(dr.mean()),
        "margin_delta": float((dc - dr).mean()),
        "chosen_logp_delta_per_token": float((dc / np.maximum(ref["chosen_len"], 1)).mean()),
        "rejected_logp_delta_per_token": float((dr / np.maximum(ref["rejected_len"], 1)).mean()),
    }
