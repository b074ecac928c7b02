"""Read a results directory into one in-memory record for the report (no rendering, no clock, no printing).

Everything the page shows comes from `results/<suite>/`: the run folders are the source of truth (a run with a
config.json but no metrics.json is listed as "incomplete", never dropped); summary.csv contributes only the
`best` column (the setting the runner selected on held-out pairs). The page date is the newest metrics.json
modification time, so rendering the same directory twice gives the same bytes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from bench.io import read_json
from bench.results import load_runs, summary_frame


@dataclass
class Results:
    name: str
    frame: pd.DataFrame                       # summary_frame(): one row per run (+ "best" from summary.csv)
    suite: dict[str, Any] = field(default_factory=dict)
    world: dict[str, Any] = field(default_factory=dict)       # world.json (build record), {} if absent
    limits: dict[str, Any] = field(default_factory=dict)      # limits.json, {} if absent
    utilisation: dict[str, Any] = field(default_factory=dict)  # utilisation.json (bench.utilisation), {} if absent
    configs: dict[str, dict] = field(default_factory=dict)    # run_id -> config.json
    metrics: dict[str, dict] = field(default_factory=dict)    # run_id -> metrics.json ({} if missing)
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)  # all curves.csv rows + run_id column
    samples: dict[str, list[dict]] = field(default_factory=dict)  # run_id -> samples.jsonl rows
    dirs: dict[str, Path] = field(default_factory=dict)       # run_id -> run folder (per-unit files: intervals)
    date: str = ""


def _read_optional_json(path: Path) -> dict:
    try:
        return read_json(path) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def _read_samples(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _read_curves(path: Path, run_id: str) -> pd.DataFrame | None:
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    frame.insert(0, "run_id", run_id)
    return frame


def _date(paths: list[Path]) -> str:
    stamps = [p.stat().st_mtime for p in paths if p.is_file()]
    if not stamps:
        return ""
    return datetime.fromtimestamp(max(stamps), tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _best_column(results_dir: Path, frame: pd.DataFrame) -> pd.Series:
    path = results_dir / "summary.csv"
    best = pd.Series([""] * len(frame), index=frame.index, dtype=object)
    if not path.is_file() or not len(frame):
        return best
    try:
        summary = pd.read_csv(path, usecols=lambda c: c in ("run_id", "best"), dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError):
        return best
    if "best" not in summary.columns:
        return best
    lookup = dict(zip(summary["run_id"], summary["best"]))
    return frame["run_id"].map(lambda r: lookup.get(r, "") or "").astype(object)


def load_results(results_dir: Path) -> Results:
    """Everything under results/<suite>/ that the report reads."""
    results_dir = Path(results_dir)
    suite = _read_optional_json(results_dir / "suite.json")
    frame = summary_frame(results_dir, intervals=False)  # the report computes its own (same model)
    frame["best"] = _best_column(results_dir, frame)
    res = Results(name=str(suite.get("name") or results_dir.name), frame=frame, suite=suite,
                  world=_read_optional_json(results_dir / "world.json"),
                  limits=_read_optional_json(results_dir / "limits.json"),
                  utilisation=_read_optional_json(results_dir / "utilisation.json"))
    curves = []
    for run in load_runs(results_dir):
        run_id = run["config"]["run_id"]
        res.configs[run_id] = run["config"]
        res.dirs[run_id] = run["dir"]
        res.metrics[run_id] = run["metrics"] if (run["dir"] / "metrics.json").is_file() else {}
        damaged = getattr(run.get("state"), "damaged", False)  # files that do not parse are not read
        c = None if damaged else _read_curves(run["dir"] / "curves.csv", run_id)
        if c is not None:
            curves.append(c)
        res.samples[run_id] = [] if damaged else _read_samples(run["dir"] / "samples.jsonl")
    if curves:
        res.curves = pd.concat(curves, ignore_index=True, sort=False)
    metric_files = sorted((results_dir / "runs").glob("*/metrics.json"))
    res.date = _date(metric_files) or _date([results_dir / "suite.json"])
    return res


def finite(x: Any) -> bool:
    """True for a real, finite number (NaN, None, strings are not)."""
    try:
        return x is not None and not isinstance(x, bool) and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
