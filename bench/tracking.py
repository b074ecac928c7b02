"""Experiment tracking: each run's training logs, budget fraction, evaluation curves and final metrics, sent to
the trackers named by `[train] report_to` (TensorBoard, trackio, W&B, MLflow) through transformers' own
integration callbacks, so each tracker sees the run exactly as a TRL user's run.

Why a forwarding callback rather than `TrainingArguments.report_to`: a trainer closes its trackers when training
ends, but a run's final metrics are computed afterwards (the runner evaluates the saved policy). `RunTracker`
owns the transformers callbacks (`get_reporting_integration_callbacks(report_to)`), forwards the trainer's
events to them with the budget fraction and the curve points added to every log, and closes them only in
`finish()`, after logging the final metrics — so training, curves and results land in one tracker run. The
trainer itself keeps `report_to = "none"` (it would otherwise open a second run).

Keys, as transformers' integrations rewrite them: `train/<trainer log key>` and `train/budget/fraction`,
`train/budget/flops` every logged step; `eval/<split>/<metric>` for each curve point (at its step; split =
heldout | train: log-prob drift, and on generation points win rate, gold reward, KL, length); `test/<metric>`
for the final evaluation on the held-out test prompts (win rate, reward, KL, drift, FLOPs, steps, ...).

Naming: run name = the run id, group = the suite (W&B `group`, trackio's project), tags = algorithm, label,
seed (W&B tags; a `run/tags` text entry for TensorBoard; trackio's config). TensorBoard writes to
`<run folder>/tensorboard/` (`tensorboard --logdir results/<suite>/runs`); trackio to its local database
(`$TRACKIO_DIR`, `trackio show --project <suite>`); W&B and MLflow follow their own environment
(`WANDB_MODE=offline`, `MLFLOW_TRACKING_URI`). Only rank 0 reports. Nothing here changes a number: with no tracker
the callback only adds `budget_fraction` / `flops` to each trainer log entry (kept in `log_history.jsonl`).
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

CURVE_KEYS = ("chosen_logp_delta", "rejected_logp_delta", "margin_delta", "control_logp_delta", "win_rate",
              "gold_reward", "kl", "length")
FINAL_KEYS = ("win_rate", "gold_reward", "kl", "chosen_logp_delta", "rejected_logp_delta", "margin_delta",
              "pref_accuracy", "length", "grammatical_fraction", "heldout_nll_delta", "flops", "budget_fraction",
              "steps", "epochs", "train_s", "peak_mem_mb")


def run_tags(spec) -> dict[str, str]:
    return {"suite": spec.suite, "algorithm": spec.algorithm, "label": spec.label, "seed": str(spec.seed),
            "run_id": spec.run_id}


def args_kwargs(spec) -> dict[str, Any]:
    """TrainingArguments fields the trackers read (run name, trackio project; never a Hub upload); none without
    a tracker, so the default run's arguments are unchanged."""
    if not spec.options.trackers:
        return {}
    return {"run_name": spec.run_id, "project": spec.suite, "trackio_static_space_id": False}


def _numeric(logs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in logs.items():
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, (int, float)) and math.isfinite(float(v)):
            out[k] = v
    return out


def _quiet():
    """The library never prints: trackers' own messages ("Uploading logs to Trackio...") go nowhere."""
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())


class _Env:
    """W&B reads group and tags from the environment: set them for one run, restore afterwards."""

    def __init__(self, values: dict[str, str]):
        self.values, self.saved = values, {}

    def __enter__(self):
        for k, v in self.values.items():
            self.saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_tracker(ctx):
    """The `RunTracker` callback of this run (one per run, shared by the run's trainers)."""
    tracker = getattr(ctx, "tracker", None)
    if tracker is None:
        tracker = RunTracker(ctx.spec, ctx.run_dir, ctx.meter, ctx.curves)
        ctx.tracker = tracker
    return tracker


def _make_callback():
    from transformers import TrainerCallback

    class RunTrackerCallback(TrainerCallback):
        """Forwards the trainer's events to the run's trackers (see the module docstring)."""

        def __init__(self, owner):
            self.owner = owner

        def on_train_begin(self, args, state, control, **kwargs):
            self.owner.begin(args, state, control, **kwargs)

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.owner.log(args, state, control, logs if logs is not None else {}, **kwargs)

    return RunTrackerCallback


class RunTracker:
    def __init__(self, spec, run_dir: Path, meter, curves):
        self.spec, self.run_dir, self.meter, self.curves = spec, Path(run_dir), meter, curves
        self.names = spec.options.trackers
        self.reporters: list[Any] = []
        self.args = self.state = self.control = None
        self.sent_rows = 0
        self.tagged = False
        self.callback = _make_callback()(self)
        self.env = {"WANDB_RUN_GROUP": spec.suite, "WANDB_TAGS": ",".join(
            [spec.algorithm, spec.label, f"seed{spec.seed}"]), "WANDB_NAME": spec.run_id}

    @property
    def active(self) -> bool:
        from bench.distributed import is_main

        return bool(self.names) and is_main()

    # -- trainer events
    def begin(self, args, state, control, **kwargs) -> None:
        self.args, self.state, self.control = args, state, control
        if not self.active or self.reporters:
            return  # a second trainer of the same run (none today) reports into the same tracker run
        from transformers.integrations import get_reporting_integration_callbacks

        try:
            classes = get_reporting_integration_callbacks(list(self.names))
        except Exception as exc:  # a tracker that is not installed: one line naming the fix
            from bench.errors import UserError

            raise UserError(f"[train].report_to: {exc}".splitlines()[0]) from None
        args = copy.copy(args)
        args.run_name, args.project = self.spec.run_id, self.spec.suite
        self.args = args
        for cls in classes:
            cb = cls()
            if type(cb).__name__ == "TensorBoardCallback":
                cb.logging_dir = str(self.run_dir / "tensorboard")
            self.reporters.append(cb)
        with _Env(self.env), _quiet():
            for cb in self.reporters:
                cb.on_train_begin(args, state, control, **kwargs)
        self._trackio_config()

    def log(self, args, state, control, logs: dict[str, Any], **kwargs) -> None:
        self.state = state
        extra = {"budget_fraction": self.meter.fraction, "flops": self.meter.flops}
        if state.log_history:  # the full history (log_history.jsonl) carries the budget fraction of every entry
            state.log_history[-1].update(extra)
        if not self.active or not self.reporters:
            return
        entry = {**logs, "budget/fraction": extra["budget_fraction"], "budget/flops": extra["flops"]}
        if not self.tagged:
            entry["run/tags"] = " ".join(f"{k}={v}" for k, v in run_tags(self.spec).items())
            self.tagged = True
        self._send(entry, state.global_step)
        self._send_curves()

    # -- after training
    def finish(self, metrics: dict[str, Any] | None) -> None:
        """Log the curve points recorded after training and the final metrics (`final/...`), then close."""
        if not self.active or not self.reporters:
            return
        try:
            self._send_curves()
            if metrics:
                final = {f"test_{k}": metrics[k] for k in FINAL_KEYS if k in metrics}
                self._send(_numeric(final), self.state.global_step if self.state is not None else 0)
            with _Env(self.env), _quiet():
                for cb in self.reporters:
                    cb.on_train_end(self.args, self.state, self.control)
        finally:
            self.reporters = []

    # -- helpers
    def _send(self, logs: dict[str, Any], step: int) -> None:
        state = copy.copy(self.state)
        state.global_step = int(step)
        with _quiet():
            for cb in self.reporters:
                cb.on_log(self.args, state, self.control, logs=dict(logs))

    def _send_curves(self) -> None:
        rows = self.curves.rows if self.curves is not None else []
        for row in rows[self.sent_rows:]:
            split = row.get("split", "heldout")
            values = {f"eval_{split}/{k}": row[k] for k in CURVE_KEYS if k in row}
            values = _numeric(values)
            if values:
                self._send({**values, "eval_budget_fraction": row.get("budget_fraction", 0.0)},
                           int(row.get("step", 0) or 0))
        self.sent_rows = len(rows)

    def _trackio_config(self) -> None:
        if "trackio" in self.names:
            import trackio

            trackio.config.update({f"bench/{k}": v for k, v in run_tags(self.spec).items()}, allow_val_change=True)
