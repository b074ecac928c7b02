"""One run's life: clear its folder, config.json, train (budget, divergence guard, curve callbacks), evaluate,
curves.csv, samples.jsonl, metrics.json (last, atomic), close its trackers. Called by the runner's loop in the
process that executes the run (a run attempt's child process under the local launchers, bench.launchers.attempt;
the task itself on SLURM; each rank of a multi-process launch).

A run that raises is recorded as status "failed" with its error and traceback.txt; a run the divergence guard
stops, or whose headline metric is not a number (NaN / inf, numpy scalars included), is recorded "diverged"
(step, quantity, value, training logs). An algorithm's metrics are checked before they are written, with the
same check that reads a run folder back (bench.results.check_metrics): a value that is missing, not a number,
or a probability outside [0, 1] makes the run "failed" with the field named, not a "finished" run that every
later `bench run` finds damaged and trains again. Storage errors stop the suite (StorageError, one line).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import traceback
from pathlib import Path

from bench import distributed as dist
from bench.algorithms.registry import get_algorithm
from bench.errors import UserError
from bench.io import is_storage_error, storage_error, warn, write_json_atomic
from bench.progress import report
from bench.results import SCHEMA_VERSION, run_dir, write_curves, write_metrics, write_samples
from bench.schema import as_dict
from bench.suite import RunSpec


class MalformedMetrics(Exception):
    """An algorithm's metrics that would not read back as a finished run (the field is in the message)."""



def reward_model_quality(extra: dict) -> dict:
    """The shared reward model's held-out accuracy (against the labels, and against the gold reward where the world
    has one) as summary columns of every run that used it: its quality is a knob (`rm_epochs`), so it is reported."""
    rm = extra.get("reward_model") if isinstance(extra, dict) else None
    if not isinstance(rm, dict):
        return {}
    keys = {"rm_label_accuracy": "heldout_label_accuracy", "rm_gold_accuracy": "heldout_gold_accuracy"}
    return {k: float(rm[v]) for k, v in keys.items() if isinstance(rm.get(v), (int, float))}

def failure_hint(exc: BaseException) -> str:
    """What to change when a failure's cause is outside the run: a SLURM time limit (submitit's warning signal
    raises UncompletedJobError "timed-out and not checkpointable" inside training, up to 90 s before the limit;
    the same limit fails the same way on every re-run)."""
    if type(exc).__name__ == "UncompletedJobError" and "timed-out" in str(exc):
        return ("; the job reached its SLURM time limit: raise [launcher.slurm].time in the suite (submitit stops "
                "a run up to 90 s before the limit)")
    return ""


def run_device(cls, stages):
    """The device a run trains on: the stages' pick for a torch run, "cpu" for a torch-free one (asking the stages
    would import torch and transformers, ~5 s of a run that computes nothing with them)."""
    return stages.device if stages is not None and cls.needs_torch else "cpu"


def write_config(spec: RunSpec, path: Path, stages) -> None:
    """config.json: the resolved spec, its hash and provenance (git commit, packages, device)."""
    from bench.provenance import provenance

    cls = get_algorithm(spec.algorithm)
    device = run_device(cls, stages)
    path.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path / "config.json", {
        "run_id": spec.run_id, "config_hash": spec.config_hash, "suite": spec.suite, "label": spec.label,
        "algorithm": spec.algorithm, "algorithm_version": spec.algorithm_version, "seed": spec.seed,
        "params": spec.param_dict, "swept": list(spec.swept), "world": as_dict(spec.world),
        "world_key": stages.world_key() if stages is not None and cls.needs_torch else None,
        "world_revisions": stages.world().info.get("revisions") if stages is not None and cls.needs_torch else None,
        "budget": as_dict(spec.budget), "eval": as_dict(spec.eval), "axes": dict(spec.axes),
        "budget_view": spec.budget.view, "train_options": as_dict(spec.options),
        **({"trl": spec.trl_dict} if spec.trl else {}),  # [algorithms.<label>.trl], passed to the TRL config
        "provenance": provenance(device),
    })


def _write_log_history(path: Path, logs: list[dict]) -> None:
    """The trainer's full log history, one JSON object a line (metrics.json keeps the last 50 entries)."""
    import json

    from bench.io import write_text_atomic

    write_text_atomic(path / "log_history.jsonl", "".join(json.dumps(h, default=str) + "\n" for h in logs))


def _finish_tracking(ctx, metrics, run_id: str) -> None:
    """Close the run's trackers (final metrics logged first); a tracker's failure never fails a finished run."""
    tracker = getattr(ctx, "tracker", None) if ctx is not None else None
    if tracker is None:
        return
    try:
        tracker.finish(metrics)
    except Exception as exc:
        warn(f"{run_id}: tracking ({', '.join(tracker.names)}) failed to log the final metrics: "
             f"{type(exc).__name__}: {exc}".splitlines()[0][:300])


def _headline_non_finite(metrics: dict) -> tuple[str, float] | None:
    """The first headline metric that is NaN/inf: a run whose result is not a number has diverged."""
    import math

    for key in ("win_rate", "gold_reward", "kl", "chosen_logp_delta", "rejected_logp_delta", "margin_delta",
                "pref_accuracy", "length"):
        v = metrics.get(key)  # plain Python numbers by now (plain_numbers): numpy's NaN is caught too
        if isinstance(v, float) and not math.isfinite(v):
            return key, v
    return None


def plain_numbers(metrics: dict) -> dict:
    """An algorithm's metrics with numpy / torch 0-d scalars as Python numbers (np.float32 NaN is a NaN the
    divergence rule sees, and what metrics.json will hold is what is checked)."""
    out = {}
    for key, v in metrics.items():
        if not isinstance(v, (bool, int, float, str)) and v is not None and getattr(v, "shape", None) == () \
                and callable(getattr(v, "item", None)):
            try:
                v = v.item()
            except (TypeError, ValueError):
                pass
        out[key] = v
    return out


def malformed(metrics: dict, spec: RunSpec) -> str:
    """'' when `metrics` would be read back as a finished run; else why not, naming the field: the check that
    reads a run folder (bench.results.check_metrics), applied before the folder is written."""
    from bench.results import check_metrics

    record = {"schema_version": SCHEMA_VERSION, "run_id": spec.run_id, "config_hash": spec.config_hash,
              **metrics, "status": "finished"}
    return check_metrics(record, {"run_id": spec.run_id, "config_hash": spec.config_hash})


REQUESTED_AT = "BENCH_RUN_REQUESTED_AT"  # unix time a launcher asked for this run's process (bench.launchers)


def _start_seconds() -> float | None:
    """Seconds from the launcher's request for this run's process to its training start (interpreter start,
    imports, plan and stages loaded): the run's `start_s`, a timing like wall_s; None outside a launcher."""
    try:
        return max(0.0, time.time() - float(os.environ[REQUESTED_AT]))
    except (KeyError, ValueError):
        return None


def execute_run(spec: RunSpec, results_dir: Path, stages, progress=None) -> tuple[str, str]:
    """Train and evaluate one run; return (status, one-line error): ("finished", ""), ("diverged", why) or
    ("failed", why). Every outcome is recorded in metrics.json; storage errors stop the suite (StorageError)."""
    from bench.algorithms.base import RunContext
    from bench.budget import ComputeMeter, Diverged, peak_memory_mb, reset_peak_memory

    path = run_dir(results_dir, spec.run_id)
    cls = get_algorithm(spec.algorithm)
    device = run_device(cls, stages)
    if not dist.is_main():
        error = _follow_run(spec, path, stages, progress)
        return ("finished", "") if error is None else ("failed", error)
    ids = {"run_id": spec.run_id, "config_hash": spec.config_hash}
    try:
        clear_run_folder(path)  # leftovers of an interrupted or failed attempt (we hold the run's lock)
        write_config(spec, path, stages)
    except OSError as exc:
        if is_storage_error(exc):
            raise storage_error(exc, path) from None
        raise
    dist.barrier()  # the run folder exists before any rank trains
    reset_peak_memory()
    meter = ComputeMeter(*spec.budget.meter, amortised=spec.budget.amortised_components)
    t0 = time.perf_counter()
    start_s = _start_seconds()
    ctx = None
    try:
        ctx = RunContext(spec=spec, world=None, run_dir=path, meter=meter, device=device, stages=stages,
                         curves=None, progress=progress, algorithm=cls)
        if cls.needs_torch:
            from bench.evaluation.curves import CurveRecorder

            _seed_everything(spec.seed)
            ctx.world = stages.world()
            ctx.curves = CurveRecorder(ctx)
        train_out = cls().train(ctx)
        if cls.trains:
            report(progress, f"train {spec.run_id} (% of budget)", 100, 100)
        train_s = time.perf_counter() - t0
        t_eval = time.perf_counter()  # the other ranks wait for rank 0 at the next run's first barrier
        if train_out.metrics is not None:
            metrics, samples, curves = dict(train_out.metrics), [], train_out.curves or []
        else:
            from bench.evaluation.final import evaluate_run

            metrics, samples = evaluate_run(ctx, train_out)
            curves = ctx.curves.rows
        from bench.evaluation.gao import run_fit_metrics

        metrics.update(run_fit_metrics(curves))  # Gao et al.'s two forms through this run's own training
        eval_s = time.perf_counter() - t_eval
        write_curves(path / "curves.csv", curves)
        write_samples(path / "samples.jsonl", samples)
        record = meter.record()
        metrics = plain_numbers(metrics)
        bad = _headline_non_finite(metrics)
        status = "finished" if bad is None else "diverged"
        metrics.update({
            "status": status, "flops": record["flops"], "tokens": record["tokens"],
            "budget_view": spec.budget.view, "flops_amortised": record["flops_amortised"],
            "budget_fraction": record["budget_fraction"], "train_s": train_s, "eval_s": eval_s,
            "curve_s": ctx.curves.seconds if ctx.curves is not None else 0.0,
            "wall_s": time.perf_counter() - t0, "start_s": start_s, "peak_mem_mb": peak_memory_mb(),
            "steps": train_out.steps,
            "epochs": train_out.epochs, "stop_reason": train_out.stop_reason, "compute": record,
            "train_logs": train_out.logs[-50:], **{f"extra_{k}": v for k, v in train_out.extra.items()},
        })
        metrics.update(reward_model_quality(train_out.extra))
        error = ""
        if bad is not None:
            info = Diverged(train_out.steps, bad[0], bad[1])
            metrics["diverged"], metrics["error"] = info.record(), str(info)
            error = str(info)
        _write_log_history(path, train_out.logs)
        if spec.options.save_policy == "final" and cls.trains and train_out.policy_dir is not None:
            from bench.checkpoint import keep_policy

            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
            keep_policy(train_out.policy_dir, path, config, metrics)
        if (path / "work").exists():
            shutil.rmtree(path / "work")
        why = malformed(metrics, spec) if status == "finished" else ""
        if why:  # recorded as the failure it is, never as a result read back as damaged and re-trained forever
            raise MalformedMetrics(f"{spec.algorithm} returned malformed metrics: {why.replace('metrics.json: ', '')}")
        write_metrics(path, metrics, **ids)
        _finish_tracking(ctx, metrics, spec.run_id)
        return status, error
    except (KeyboardInterrupt, UserError):
        raise
    except Exception as exc:  # failure isolation: record it, the suite goes on
        if is_storage_error(exc):  # the disk is full or read-only: every later write fails too; stop, one line
            raise (exc if isinstance(exc, UserError) else storage_error(exc, path)) from None
        diverged = exc if isinstance(exc, Diverged) else _sampler_divergence(exc, meter)
        logs = (diverged.logs if diverged is not None else None) or meter.guard.logs
        curves = ctx.curves.rows if ctx is not None and ctx.curves is not None else []
        try:
            _write_log_history(path, [dict(h) for h in logs])
            if diverged is not None:  # the guard stopped it: a result (status diverged), kept with its logs
                write_curves(path / "curves.csv", curves)
                write_samples(path / "samples.jsonl", [])
                if (path / "work").exists():
                    shutil.rmtree(path / "work")
                write_metrics(path, {"status": "diverged", "error": str(diverged), "diverged": diverged.record(),
                                     "steps": diverged.step, "stop_reason": "diverged",
                                     "wall_s": time.perf_counter() - t0, "compute": meter.record(),
                                     "flops": meter.flops, "train_logs": [dict(h) for h in logs[-50:]]}, **ids)
                return "diverged", str(diverged)
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500] + failure_hint(exc)
            (path / "traceback.txt").write_text(traceback.format_exc(), encoding="utf-8")
            write_metrics(path, {"status": "failed", "error": message, "wall_s": time.perf_counter() - t0,
                                 "compute": meter.record(), "train_logs": [dict(h) for h in logs[-50:]]}, **ids)
            return "failed", message
        except OSError as write_exc:
            if is_storage_error(write_exc):  # the disk filled: say what failed first (e.g. saving the policy)
                from bench.io import StorageError

                first = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
                raise StorageError(f"{storage_error(write_exc, path)} (the run had just failed with: {first})") \
                    from None
            raise
    finally:
        meter.detach()
        _finish_tracking(ctx, None, spec.run_id)  # a no-op once finished; closes a failed run's trackers


LOGS = "logs"  # a run folder's job logs (stdout/stderr of its SLURM or worker job): kept when the folder is cleared


def clear_run_folder(path: Path) -> None:
    """Start a run from a clean folder, keeping only `logs/` (the job now writing into it)."""
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.name == LOGS and child.is_dir():
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _sampler_divergence(exc: Exception, meter):
    """A sampler that meets inf/NaN probabilities mid-training means the policy diverged (torch.multinomial's
    "probability tensor contains either `inf`, `nan` or element < 0"): record it as such, at the guard's step."""
    from bench.budget import Diverged

    text = str(exc)
    if isinstance(exc, RuntimeError) and "probability tensor contains" in text:
        return Diverged(meter.guard.step, "policy probabilities", float("nan"), meter.guard.logs)
    return None


def _follow_run(spec: RunSpec, path: Path, stages, progress) -> str | None:
    """Ranks > 0 of a multi-process run: train in step with rank 0 (TRL shards the batches), write nothing."""
    from bench.algorithms.base import RunContext
    from bench.budget import ComputeMeter

    cls = get_algorithm(spec.algorithm)
    dist.barrier()
    meter = ComputeMeter(*spec.budget.meter, amortised=spec.budget.amortised_components)
    try:
        ctx = RunContext(spec=spec, world=None, run_dir=path, meter=meter, device=stages.device, stages=stages,
                         curves=None, progress=None)
        if cls.needs_torch:
            from bench.evaluation.curves import CurveRecorder

            _seed_everything(spec.seed)
            ctx.world = stages.world()
            ctx.curves = CurveRecorder(ctx)
        cls().train(ctx)
        return None
    except Exception as exc:  # rank 0 records the run's failure; this rank only reports it
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
    finally:
        meter.detach()


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

