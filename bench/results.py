"""The results directory is the database. One folder per run; the summary is always rebuilt from the folders.

    results/<suite>/
        suite.json                     the resolved suite (hash, source file) of the last `bench run`
        summary.csv                    one row per run (rebuilt, never the only copy of anything)
        runs/<run_id>/
            config.json                resolved spec + config hash + provenance (git commit, packages, device)
            curves.csv                 metric vs step / FLOPs / seconds during training
            samples.jsonl              prompt, policy sample, reference sample, judge scores
            metrics.json               final metrics + compute record + status — written LAST, atomically

A run folder is *finished* only when every required file parses and agrees with the others (`inspect_run`):
config.json is an object whose run_id is the folder's name and whose config_hash is the run's (its first 8 hex
digits end the run id; when the runner asks, the hash of the spec it would run); metrics.json is an object with
status "finished", the same run_id and config_hash (schema 2), and numbers for the headline metrics
(REQUIRED_METRICS) and only numbers or null for the other numeric columns; curves.csv is UTF-8 CSV and every
samples.jsonl line a JSON object (both are written before metrics.json; one deleted afterwards only costs
the report its chart or sample table, so it is noted there rather than trained again). A run with status
"diverged" (the divergence guard stopped it, or a headline metric was not a number) is *done* as well: it is
kept and shown with its status, not re-run. Anything else — failed, interrupted, a truncated or foreign file — is
"to be re-run": `bench run` names it in one warning line and trains it again, the summary and the report list it
as "incomplete" with the reason; it never crashes a command.

Columns of summary.csv and keys of metrics.json, with their meaning and intervals: docs/results-schema.md (the
one list; bench/columns.py orders them). Intervals follow the one uncertainty model (bench/evaluation/crossed.py,
read through bench/evaluation/uncertainty.py): `<m>_run_lo/_run_hi` within one run (t over its prompts),
`<m>_lo/_hi` over the setting's seeds × prompts × reference draws (the same on every seed's row of a setting).
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.columns import AXIS_COLUMNS, SUMMARY_HEAD, SUMMARY_METRICS, param_columns  # noqa: F401  (re-exported)
from bench.io import non_finite, read_json, write_json_atomic, write_text_atomic

SCHEMA_VERSION = 2  # 2: metrics.json repeats run_id and config_hash
DONE = ("finished", "diverged")  # statuses that are not re-run
REQUIRED_FILES = ("config.json", "metrics.json")  # curves.csv and samples.jsonl must parse when present
REQUIRED_METRICS = ("win_rate", "kl", "flops", "wall_s")  # numbers in every finished run
TEXT_COLUMNS = {"status", "stop_reason", "best", "error", "budget_view", "gao_better"}



def run_dir(results_dir: Path, run_id: str) -> Path:
    return Path(results_dir) / "runs" / run_id


@dataclass
class RunState:
    """What a run folder holds, after checking every file (see the module docstring)."""

    status: str                      # finished | diverged | failed | incomplete (also: damaged, to be re-run)
    reason: str = ""                 # why it is not done ("" when done or simply absent)
    config: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    damaged: bool = False            # a file exists but does not parse or does not match
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.status in DONE


def _load_json_object(path: Path) -> tuple[dict | None, str]:
    try:
        data = read_json(path)
    except FileNotFoundError:
        return None, f"{path.name} missing"
    except UnicodeDecodeError:
        return None, f"{path.name} is not UTF-8"
    except json.JSONDecodeError as exc:
        return None, f"{path.name} does not parse (line {exc.lineno})"
    except OSError as exc:
        return None, f"{path.name}: {exc.strerror}"
    if not isinstance(data, dict):
        return None, f"{path.name} is not a JSON object"
    return data, ""


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# Metrics that are probabilities (or their interval ends): a value outside [0, 1] is not a result.
PROBABILITIES = ("win_rate", "win_rate_lo", "win_rate_hi", "win_rate_run_lo", "win_rate_run_hi", "tie_rate",
                 "pref_accuracy", "val_win_rate", "grammatical_fraction", "ended_fraction", "capped_fraction",
                 "chosen_fell_fraction")
MAX_ABS = 1e300  # beyond it a "number" overflows every later sum, mean and plot axis (a 401-digit int, 1e308)


def number_problem(v: Any) -> str:
    """'' for a usable finite number; else what is wrong with it. Never raises (math.isfinite of a 401-digit
    int overflows; this does not)."""
    if not _is_number(v):
        return repr(v)[:80]
    try:
        f = float(v)
    except OverflowError:
        return f"an integer of {len(str(abs(v)))} digits (too large for a float)"
    if not math.isfinite(f):
        return "non-finite"
    if abs(f) > MAX_ABS:
        return f"{f:.3g} (beyond ±{MAX_ABS:.0e}: overflows sums and plots)"
    return ""


def check_config(config: dict[str, Any], name: str, config_hash: str | None = None) -> str:
    """'' when config.json belongs to the run folder `name` (and to `config_hash`, when given)."""
    for key in ("run_id", "label", "algorithm", "seed"):
        if key not in config:
            return f"config.json lacks {key!r}"
    if config["run_id"] != name:
        return f"config.json is for run {config['run_id']!r}"
    have = config.get("config_hash")
    if have is not None and (not isinstance(have, str) or not re.fullmatch(r"[0-9a-f]{16,64}", have)):
        return "config.json has a malformed config_hash"
    if have is not None and re.search(r"_[0-9a-f]{8}$", name) and not name.endswith(have[:8]):
        return "config.json's config_hash does not match the run id"
    if config_hash is not None and have != config_hash:
        return "config.json is for other settings (config_hash differs)"
    return ""


def check_metrics(metrics: dict[str, Any], config: dict[str, Any]) -> str:
    """'' when metrics.json is a complete record of this config's run."""
    status = metrics.get("status")
    if not isinstance(status, str):
        return "metrics.json has no status"
    if int(metrics.get("schema_version") or 1) >= 2 or "run_id" in metrics:
        if metrics.get("run_id") != config.get("run_id"):
            return f"metrics.json is for run {metrics.get('run_id')!r}"
        if metrics.get("config_hash") != config.get("config_hash"):
            return "metrics.json's config_hash differs from config.json's"
    if status != "finished":
        return ""
    nan = non_finite(metrics)
    for key in REQUIRED_METRICS:
        why = number_problem(metrics.get(key))
        if why:
            return f"metrics.json: {key} is {'non-finite' if key in nan else why}"
    for key in SUMMARY_METRICS:
        v = metrics.get(key)
        if key not in TEXT_COLUMNS and v is not None:
            why = number_problem(v)
            if why and why != "non-finite":
                return f"metrics.json: {key} is not a usable number ({why})"
    for key in PROBABILITIES:
        v = metrics.get(key)
        if v is not None and not number_problem(v) and not 0.0 <= v <= 1.0:
            return f"metrics.json: {key} is {v!r}, outside [0, 1] (a probability)"
    return ""


def _check_text_files(path: Path) -> str:
    curves, samples = path / "curves.csv", path / "samples.jsonl"
    # written before metrics.json, so normally present; one deleted later costs its chart or sample table only
    # (the report says so) and is no reason to train again. One that is present must parse.
    if curves.exists() and not curves.is_file() or samples.exists() and not samples.is_file():
        return "curves.csv or samples.jsonl is not a file"
    try:
        if not curves.exists():
            raise FileNotFoundError

        text = curves.read_text(encoding="utf-8")
        if "\0" in text:
            return "curves.csv is binary"
        rows = list(csv.reader(text.splitlines()))
        if rows and any(len(r) != len(rows[0]) for r in rows[1:] if r):
            return "curves.csv has rows of the wrong width (truncated?)"
    except FileNotFoundError:
        pass
    except UnicodeDecodeError:
        return "curves.csv is not UTF-8"
    except (OSError, csv.Error) as exc:
        return f"curves.csv does not parse ({exc})"
    if not samples.exists():
        return ""
    try:
        lines = samples.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return "samples.jsonl is not UTF-8"
    except OSError as exc:
        return f"samples.jsonl: {exc.strerror}"
    for i, line in enumerate(lines, 1):
        try:
            if line.strip() and not isinstance(json.loads(line), dict):
                return f"samples.jsonl line {i} is not a JSON object"
        except json.JSONDecodeError:
            return f"samples.jsonl line {i} does not parse"
    return ""


def inspect_run(path: Path, config_hash: str | None = None) -> RunState:
    """Check every file of a run folder; never raises for what is on disk."""
    path = Path(path)
    if not path.is_dir():
        return RunState("incomplete")
    config, why = _load_json_object(path / "config.json")
    metrics, why_m = _load_json_object(path / "metrics.json") if (path / "metrics.json").exists() else (None, "")
    if config is None:
        damaged = (path / "config.json").exists() or metrics is not None
        return RunState("incomplete", why, None, metrics, damaged=damaged)
    why = check_config(config, path.name, config_hash)
    if why:
        return RunState("incomplete", why, config, metrics, damaged=True)
    if metrics is None:
        if why_m:
            return RunState("incomplete", why_m, config, None, damaged=True)
        return RunState("incomplete", "no metrics.json: the run did not finish (interrupted or still running)",
                        config, None)
    why = check_metrics(metrics, config)
    if why:
        return RunState("incomplete", why, config, metrics, damaged=True)
    status = metrics["status"]
    if status in DONE:
        why = _check_text_files(path)
        if why:
            return RunState("incomplete", why, config, metrics, damaged=True)
        return RunState(status, "", config, metrics)
    if status == "failed":
        return RunState("failed", str(metrics.get("error") or "failed"), config, metrics)
    return RunState("incomplete", f"status {status!r}", config, metrics)


def is_finished(path: Path, config_hash: str | None = None) -> bool:
    """True for a complete run folder with status "finished" (every file checked)."""
    return inspect_run(path, config_hash).status == "finished"


def is_done(path: Path, config_hash: str | None = None) -> bool:
    """True for a complete run folder that is not re-run: finished, or stopped by the divergence guard."""
    return inspect_run(path, config_hash).done


def write_curves(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        write_text_atomic(path, "")
        return
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def write_samples(path: Path, rows: list[dict[str, Any]]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_metrics(path: Path, metrics: dict[str, Any], *, run_id: str, config_hash: str) -> None:
    """The run's last file: with status 'finished' (and every other file valid) it marks the run done."""
    write_json_atomic(Path(path) / "metrics.json", {"schema_version": SCHEMA_VERSION, "run_id": run_id,
                                                     "config_hash": config_hash, **metrics})


def _fallback_config(name: str, known: dict[str, Any]) -> dict[str, Any]:
    """Enough of a config to list a run whose config.json is unusable: suite.json's record, else the run id."""
    if isinstance(known.get(name), dict):
        return {"run_id": name, "params": {}, "swept": [], **known[name]}
    m = re.search(r"_s(\d+)_[0-9a-f]{8}$", name)
    label = name.split("_", 1)[0]
    return {"run_id": name, "label": label, "algorithm": label, "seed": int(m[1]) if m else -1, "params": {},
            "swept": []}


def load_runs(results_dir: Path) -> list[dict[str, Any]]:
    """Run folders of the suite as last run (suite.json's run_ids; all folders when absent), each checked by
    `inspect_run`: {"dir", "config", "metrics", "state"}. A folder whose files are damaged or do not match is
    listed with metrics {"status": "incomplete", "error": <why>} (never dropped, never a crash). Folders of older
    configurations are kept on disk, not read."""
    runs = []
    suite_file = Path(results_dir) / "suite.json"
    suite, _ = _load_json_object(suite_file) if suite_file.is_file() else (None, "")
    suite = suite or {}
    current = set(suite.get("run_ids") or [])
    known = suite.get("runs") if isinstance(suite.get("runs"), dict) else {}
    for d in sorted((Path(results_dir) / "runs").glob("*/")):
        if current and d.name not in current:
            continue
        if not current and not (d / "config.json").exists() and not (d / "metrics.json").exists():
            continue  # an empty folder of no known run
        state = inspect_run(d)
        usable = state.config is not None and all(k in state.config for k in ("run_id", "label", "algorithm", "seed"))
        config = state.config if usable else _fallback_config(d.name, known)
        if state.done or state.status == "failed":
            metrics = state.metrics
        elif state.status == "incomplete" and state.metrics is None and not state.damaged:
            metrics = {"status": "incomplete"}
        else:
            metrics = {"status": "incomplete", "error": f"to be re-run: {state.reason}"}
        runs.append({"dir": d, "config": config, "metrics": metrics, "state": state})
    return runs


def hidden_runs(results_dir: Path) -> list[str]:
    """Run folders on disk that the suite as last run does not list (suite.json's run_ids): runs of an earlier
    configuration (another --set, an edited suite file). They stay on disk but are not read by the summary, the
    report or `bench check`, so the caller says so in one line (`hidden_line`)."""
    suite_file = Path(results_dir) / "suite.json"
    suite, _ = _load_json_object(suite_file) if suite_file.is_file() else (None, "")
    current = set((suite or {}).get("run_ids") or [])
    if not current:
        return []
    return [d.name for d in sorted((Path(results_dir) / "runs").glob("*/"))
            if d.name not in current and (d / "config.json").exists()]


def hidden_line(results_dir: Path, hidden: list[str]) -> str:
    """One line naming how many runs of an earlier configuration are left out (empty when none)."""
    if not hidden:
        return ""
    return (f"{len(hidden)} run folder(s) in {Path(results_dir) / 'runs'} belong to an earlier configuration of this "
            "suite (other settings, --set or an edited file) and are left out of this summary and report; they stay "
            "on disk — run the earlier configuration again to see them, or use another --results-dir")


def damaged_runs(results_dir: Path) -> list[tuple[str, str]]:
    """(run_id, why) of the run folders whose files are damaged or do not match (they will be re-run)."""
    return [(r["dir"].name, r["state"].reason) for r in load_runs(results_dir) if r["state"].damaged]


def damaged_line(damaged: list[tuple[str, str]]) -> str:
    """One line naming every damaged run folder (empty when none)."""
    if not damaged:
        return ""
    names = "; ".join(f"{run_id} ({why})" for run_id, why in damaged)
    return f"{len(damaged)} run folder(s) damaged, to be re-run: {names}"


SETTING_INTERVALS = ("win_rate", "win_rate_lc", "win_rate_grammar", "win_rate_sentiment", "gold_reward", "kl",
                     "kl_tokenwise", "frontier_efficiency", "frontier_efficiency_bon")  # summary.csv's over-seeds `_lo/_hi` columns


def summary_frame(results_dir: Path, intervals: bool = True):
    """One row per run (pandas DataFrame), columns as documented above, sorted by label, params, seed.

    `intervals`: fill the over-seeds `<m>_lo/_hi` columns from the crossed bootstrap (else left as recorded)."""
    import pandas as pd

    rows, swept = [], []
    for run in load_runs(results_dir):
        cfg, m = run["config"], run["metrics"]
        row = {"run_id": cfg["run_id"], "label": cfg["label"], "algorithm": cfg["algorithm"], "seed": cfg["seed"]}
        axes = cfg.get("axes") or {}
        for key in [*cfg.get("swept", []), *axes]:  # swept hyper-parameters, then suite-level axes
            row[key] = (cfg.get("params") or {})[key] if key in (cfg.get("params") or {}) else axes[key]
            if key not in swept:
                swept.append(key)
        nan = non_finite(m)
        for key in SUMMARY_METRICS:
            if key in axes:  # the axis value wins: a run serving both budget views reads budget_view = "both"
                continue
            v = m.get(key)
            row[key] = float(nan[key]) if v is None and key in nan else v
        top = [f"{k}={v}" for k, v in sorted(nan.items()) if "." not in k]
        if top and not row.get("error"):  # measured but not a number: said, never a silent blank
            row["error"] = "non-finite: " + ", ".join(top)
        if m.get("status") == "diverged" and isinstance(m.get("diverged"), dict) and not m.get("error"):
            d = m["diverged"]
            row["error"] = f"diverged at step {d.get('step')}: {d.get('metric')} = {d.get('value')}"
        rows.append(row)
    columns = SUMMARY_HEAD + swept + [c for c in SUMMARY_METRICS if c not in swept]  # budget_view: once
    frame = pd.DataFrame(rows, columns=columns)
    if len(frame):
        frame = frame.sort_values(["label", *swept, "seed"], kind="stable").reset_index(drop=True)
        if intervals:
            _setting_intervals(results_dir, frame)
    return frame


def _setting_intervals(results_dir: Path, frame) -> None:

    unc = from_results(results_dir, frame)
    for setting, run_ids in unc.settings.items():
        rows = frame["run_id"].isin(run_ids)
        for m in SETTING_INTERVALS:
            iv = unc.interval(setting, m)
            frame.loc[rows, f"{m}_lo"], frame.loc[rows, f"{m}_hi"] = iv.lo, iv.hi


def write_summary(results_dir: Path) -> Path:
    path = Path(results_dir) / "summary.csv"
    frame = summary_frame(results_dir)
    _mark_best(frame)
    write_text_atomic(path, frame.to_csv(index=False, float_format="%.6g"))
    return path


def _mark_best(frame) -> None:
    """For labels with a swept grid: mark the setting with the best mean validation win rate over seeds.

    Selection uses validation prompts disjoint from the test prompts that define `win_rate`, so the reported
    best setting's win rate is not selected on itself; every algorithm is selected by the same criterion.
    """
    frame["best"] = ""
    if not len(frame):
        return
    params = [p for p in param_columns(frame) if p not in AXIS_COLUMNS]  # budgets, views, worlds: conditions,
    axes = [a for a in param_columns(frame) if a in AXIS_COLUMNS]         # not knobs: selected within each
    for _, group in frame.groupby(["label", *axes], dropna=False):
        label = group["label"].iloc[0]
        keys = [p for p in params if group[p].notna().any() and group[p].nunique() > 1]
        if not keys:
            continue
        finished = group[group["status"] == "finished"]
        if finished.empty or finished["val_win_rate"].isna().all():
            continue
        means = finished.groupby(keys)["val_win_rate"].mean()
        best = means.idxmax()
        best = best if isinstance(best, tuple) else (best,)
        mask = (frame["label"] == label) & frame.index.isin(group.index)
        for k, v in zip(keys, best):
            mask &= frame[k] == v
        frame.loc[mask, "best"] = "best"


def from_results(results_dir: Path, frame=None) -> Uncertainty:
    """The uncertainty model (bench.evaluation.uncertainty) of a results directory (suite as last run)."""
    from bench.columns import setting_groups
    from bench.evaluation.uncertainty import Uncertainty

    results_dir = Path(results_dir)
    loaded = load_runs(results_dir)
    runs = {r["config"]["run_id"]: r for r in loaded}
    frame = summary_frame(results_dir) if frame is None else frame
    return Uncertainty(runs, setting_groups(frame))
