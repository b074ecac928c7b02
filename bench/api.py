"""The Python API for notebooks: run a suite and read its results as tidy pandas DataFrames.

    import bench
    bench.run_suite("suites/controlled.toml", budget__flops=1e11)      # = bench run ... --set budget.flops=1e11
    res = bench.load_results("results/controlled")
    res.runs        # one row per run: label, algorithm, seed, setting, swept settings, every summary.csv metric
    res.curves      # one row per (curve point, split) with run_id, label, algorithm, seed, setting, swept settings
    res.logs        # every trainer log entry (log_history.jsonl) with the same identifying columns

`load_results` reads the run folders the way the report does (`bench.reporting.data.load_results`), so a run
that is incomplete or damaged shows up with its status rather than disappearing. The library never prints.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

ID_COLUMNS = ("run_id", "label", "algorithm", "seed", "setting")


@dataclass
class BenchResults:
    """A results folder as DataFrames (`runs`, `curves`, `logs`), plus the raw records for anything else."""

    name: str
    runs: pd.DataFrame
    curves: pd.DataFrame
    logs: pd.DataFrame
    settings: list[str] = field(default_factory=list)   # the swept columns that tell settings apart
    configs: dict[str, dict] = field(default_factory=dict)   # run_id -> config.json
    metrics: dict[str, dict] = field(default_factory=dict)   # run_id -> metrics.json
    dirs: dict[str, Path] = field(default_factory=dict)      # run_id -> run folder


def _setting(label: str, row: pd.Series, columns: list[str]) -> str:
    parts = [f"{c}={row[c]}" for c in columns if c in row and not _missing(row[c])]
    return " ".join([label, *parts])


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


def _read_logs(path: Path, run_id: str) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            rows.append({"run_id": run_id, **entry})
    return rows


def load_results(results_dir: str | Path) -> BenchResults:
    """Read `results/<suite>/` into tidy DataFrames (see the module docstring)."""
    from bench.errors import UserError
    from bench.reporting.data import load_results as load_record
    from bench.results import param_columns

    results_dir = Path(results_dir)
    if not (results_dir / "runs").is_dir() and not (results_dir / "suite.json").is_file():
        raise UserError(f"{results_dir}: not a results folder (no runs/ or suite.json); pass results/<suite>")
    record = load_record(results_dir)
    runs = record.frame.copy()
    settings = [c for c in param_columns(runs) if c not in ID_COLUMNS]
    if len(runs):
        runs.insert(runs.columns.get_loc("seed") + 1, "setting",
                    [_setting(r["label"], r, settings) for _, r in runs.iterrows()])
    ids = runs[[c for c in (*ID_COLUMNS, *settings) if c in runs.columns]] if len(runs) else pd.DataFrame(
        columns=list(ID_COLUMNS))
    curves = record.curves.merge(ids, on="run_id", how="left") if len(record.curves) else pd.DataFrame()
    if len(curves):  # identifying columns first
        first = [c for c in (*ID_COLUMNS, *settings) if c in curves.columns]
        curves = curves[first + [c for c in curves.columns if c not in first]]
    log_rows = [row for run_id, d in record.dirs.items() for row in _read_logs(d / "log_history.jsonl", run_id)]
    logs = pd.DataFrame(log_rows)
    if len(logs):
        logs = logs.merge(ids, on="run_id", how="left")
        first = [c for c in (*ID_COLUMNS, *settings) if c in logs.columns]
        logs = logs[first + [c for c in logs.columns if c not in first]]
    return BenchResults(name=record.name, runs=runs, curves=curves, logs=logs, settings=settings,
                        configs=record.configs, metrics=record.metrics, dirs=record.dirs)


def _toml_value(value: Any) -> str:
    """A Python value as a TOML value (what `--set section.key=VALUE` parses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a suite value")


def run_suite(path: str | Path, *, results: str | Path = "results", cache_dir: str | Path | None = None,
              only: list[str] | None = None, seeds: list[int] | None = None, device: str = "auto",
              report: str | Path | None = "report", quiet: bool = True, launcher: str | None = None,
              workers: int | None = None, **overrides: Any):
    """`bench run PATH` from Python; returns the runner's outcome (`.results_dir`, `.finished`, `.failed`, ...).

    Runs execute where `bench run` would put them: the suite's [launcher] (default `auto`), or `launcher` /
    `workers` as `--launcher` / `--workers` — each run in a child process, so a run the kernel kills is a `failed`
    row and never takes the caller (a notebook kernel) down with it.

    Overrides are suite fields, `section__key=value` (or `**{"section.key": value}`), validated like the file:
    `run_suite("suites/controlled.toml", budget__flops=1e11, train__report_to="tensorboard")`. `report`: the
    report root (`report/<suite>/index.html`), None for no report. Invalid suites raise `bench.errors.UserError`.
    `quiet` (default): as quiet as `bench run` — no transformers / datasets loading bars, advisory FutureWarnings or
    library log lines while the suite runs (warning filters and logger levels are restored afterwards; the
    environment switches stay, so the worker processes it starts are quiet too). `quiet=False` shows them.
    """
    if quiet:
        return _quietly(run_suite, path, results=results, cache_dir=cache_dir, only=only, seeds=seeds,
                        device=device, report=report, quiet=False, launcher=launcher, workers=workers, **overrides)
    from bench.runner import run_suite as run
    from bench.suite import load_suite

    items = [f"{key.replace('__', '.')}={_toml_value(value)}" for key, value in overrides.items()]
    suite = load_suite(path, items)
    from bench.launchers import make_launcher

    if workers is not None and workers < 1:
        from bench.errors import UserError

        raise UserError(f"workers: expected a number of worker processes >= 1, got {workers}")
    where = make_launcher(suite.launcher, kind=launcher, workers=workers, device=device)
    outcome = run(suite, results_root=Path(results), cache_dir=cache_dir, only=only, seeds=seeds, device=device,
                  launcher=where)
    if report is not None and outcome.complete:  # a SLURM submission returns before its runs: no report yet
        from bench.reporting import write_report

        write_report(outcome.results_dir, Path(report) / suite.name)
    return outcome


def _quietly(fn, *args, **kwargs):
    """Call `fn` with bench.quiet's settings, then put the caller's warning filters and logger levels back."""
    import logging
    import warnings

    from bench.quiet import quiet_libraries

    names = ("transformers", "trl", "datasets", "accelerate", "huggingface_hub")
    levels = {n: logging.getLogger(n).level for n in names}
    with warnings.catch_warnings():
        quiet_libraries()
        try:
            return fn(*args, **kwargs)
        finally:
            for n, level in levels.items():
                logging.getLogger(n).setLevel(level)
