"""The committed baseline of a suite: what `bench baseline` writes and `bench check` / `bench compare` read.

Per *setting* (label, swept hyper-parameter values) and checked metric: the per-seed values, their mean and 95%
interval from the one uncertainty model (bench/evaluation/uncertainty.py: t over seeds plus the shared prompt /
reference-draw part, within the metric's range) with that interval's variance parts (`seed_var`, `shared_var`,
`units`); plus the suite hash, the world identity, provenance and, for a replication suite, its verdict. A baseline
is validated on load: no settings, or a value that is not a finite number, is a UserError naming the file and the
field (a check that checked nothing must not pass). Split from bench/check.py (issue 23), which holds the test.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.io import read_json, write_json_atomic

BASELINE_SCHEMA_VERSION = 2  # 2: intervals from the t model with their variance parts (issue 21); 1 is migrated

# metric → (direction, scale): +1 higher is better, -1 lower is better, 0 either way; the scale picks the floor
METRICS: dict[str, tuple[int, str]] = {
    "win_rate": (+1, "rate"),
    "win_rate_lc": (+1, "rate"),         # length-controlled (bench/evaluation/win_parts.py)
    "win_rate_grammar": (0, "rate"),     # what the win is made of: a shift between the parts at an equal win rate
    "win_rate_sentiment": (0, "rate"),   # is a finding a paper pins, so either direction counts
    "gold_reward": (+1, "score"),
    "kl": (-1, "nats"),
    "pref_accuracy": (+1, "rate"),
    "lm_eval_score": (+1, "rate"),
    "chosen_logp_delta": (0, "nats"),
    "rejected_logp_delta": (0, "nats"),
    "margin_delta": (0, "nats"),
    "length": (0, "tokens"),
    "grammatical_fraction": (+1, "rate"),
    "ended_fraction": (+1, "rate"),
    "heldout_nll_delta": (-1, "nats_per_token"),
}


def _setting_key(label: str, params: dict[str, Any]) -> str:
    return label + "".join(f"|{k}={params[k]}" for k in sorted(params))


def collect(results_dir: Path) -> dict[str, Any]:
    """Per setting: per-seed values of every checked metric, mean and interval (with its variance parts); plus
    identity and failures."""
    from bench.results import from_results
    from bench.results import load_runs, param_columns, summary_frame

    results_dir = Path(results_dir)
    if not (results_dir / "runs").is_dir():
        raise UserError(f"{results_dir}: no runs/ folder; pass a results/<suite> directory written by `bench run`")
    frame = summary_frame(results_dir, intervals=False)
    suite = read_json(results_dir / "suite.json") if (results_dir / "suite.json").is_file() else {}
    world = read_json(results_dir / "world.json") if (results_dir / "world.json").is_file() else {}
    unc = from_results(results_dir, frame)
    setting_of = {r: name for name, ids in unc.settings.items() for r in ids}

    params = param_columns(frame)
    settings: dict[str, Any] = {}
    names: dict[str, str] = {}
    for _, row in frame.iterrows():
        p = {k: _plain(row[k]) for k in params if not _isnan(row[k])}
        key = _setting_key(row["label"], p)
        names[key] = setting_of.get(row["run_id"], key)
        s = settings.setdefault(key, {"label": row["label"], "algorithm": row["algorithm"], "params": p,
                                      "seeds": [], "failed_seeds": [], "values": {m: [] for m in METRICS}})
        if row["status"] != "finished":
            s["failed_seeds"].append(int(row["seed"]))
            continue
        s["seeds"].append(int(row["seed"]))
        for m in METRICS:
            s["values"][m].append(None if _isnan(row.get(m)) else float(row[m]))
    for key, s in settings.items():
        s["metrics"] = {}
        for m, vals in s.pop("values").items():
            present = [v for v in vals if v is not None]
            if not present:
                continue
            # the harness's one uncertainty model, over seeds and (where the runs kept them) prompts and draws
            iv = unc.interval(names[key], m)
            mean = sum(present) / len(present)  # the plain mean of the seeds' values: what the check compares
            entry = {"values": vals, "mean": mean, "lo": _finite_or_none(iv.lo), "hi": _finite_or_none(iv.hi)}
            if iv.parts is not None:
                entry.update({"seed_var": _finite_or_none(iv.parts.seed_var),
                              "shared_var": _finite_or_none(iv.parts.shared_var), "units": iv.parts.units})
            s["metrics"][m] = entry
    runs = load_runs(results_dir)
    provenance = runs[0]["config"].get("provenance", {}) if runs else {}
    out = {"suite": suite.get("name", results_dir.name), "suite_hash": suite.get("hash"),
            "world_key": world.get("key"), "world_content": world.get("content"), "world": suite.get("world"),
            "check": suite.get("check", {}),
            "provenance": {"git": provenance.get("git"), "packages": provenance.get("packages")},
            "settings": settings}
    if suite.get("replication"):  # a replication suite: its verdict, for README's table (benchmarks/replications.py)
        from bench.evaluation.replication import decide, swept_axes, with_selection

        verdict = decide(suite["replication"], with_selection(frame, results_dir), unc, swept_axes(suite))
        out["replication"] = {**verdict.to_dict(), "path": suite.get("path")}
    return out


def _finite_or_none(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def write_baseline(results_dir: Path, out: Path) -> Path:
    data = collect(results_dir)
    if not data["settings"]:
        raise UserError(f"{results_dir}: no runs to baseline; run the suite first")
    write_json_atomic(Path(out), {"schema_version": BASELINE_SCHEMA_VERSION, **data})
    return Path(out)


def load_baseline(path: Path) -> dict[str, Any]:
    """A validated baseline (schema 2; schema 1 is migrated: its intervals are recomputed from the seed values).
    Every problem is a UserError naming the file and the field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such baseline; create one with `bench baseline results/<suite> -o {path}`")
    try:
        data = read_json(path)
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); regenerate it with `bench baseline`") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version not in (1, BASELINE_SCHEMA_VERSION):
        raise UserError(f"{path}: baseline schema_version {version!r} is not supported (this daa-bench reads "
                        f"{BASELINE_SCHEMA_VERSION}); regenerate it with `bench baseline`")
    validate_baseline(data, path)
    if version == 1:
        data = _migrate_v1(data)
    return data


def validate_baseline(data: dict[str, Any], path: Path) -> None:
    """Refuse what a check must not pass on: no settings, or values that are not finite numbers."""
    settings = data.get("settings")
    fix = "regenerate it with `bench baseline results/<suite> -o " + str(path) + "`"
    if not isinstance(settings, dict) or not settings:
        raise UserError(f"{path}: field 'settings' is empty or missing: a baseline with no settings checks nothing; "
                        f"{fix}")
    for key, s in settings.items():
        where = f"settings.{key}"
        if not isinstance(s, dict) or not isinstance(s.get("metrics"), dict):
            raise UserError(f"{path}: field '{where}.metrics' is missing or not an object; {fix}")
        if not isinstance(s.get("seeds", []), list):
            raise UserError(f"{path}: field '{where}.seeds' is not a list; {fix}")
        for m, entry in s["metrics"].items():
            if not isinstance(entry, dict):
                raise UserError(f"{path}: field '{where}.metrics.{m}' is not an object; {fix}")
            values = entry.get("values")
            if not isinstance(values, list) or not [v for v in values if v is not None]:
                raise UserError(f"{path}: field '{where}.metrics.{m}.values' holds no seed values; {fix}")
            for i, v in enumerate(values):
                if v is None:
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise UserError(f"{path}: field '{where}.metrics.{m}.values[{i}]' is {v!r}, not a number; {fix}")
                if not math.isfinite(v):
                    raise UserError(f"{path}: field '{where}.metrics.{m}.values[{i}]' is {v}, not a finite number; "
                                    f"{fix}")
            mean = entry.get("mean")
            if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
                raise UserError(f"{path}: field '{where}.metrics.{m}.mean' is {mean!r}, not a finite number; {fix}")


def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Schema 1 stored the seed-only percentile bootstrap's lo/hi (coverage 80–87% at 3 seeds, issue 21): recompute
    them as the seed-only t interval of the same values (no per-prompt summary was stored)."""
    import numpy as np

    from bench.evaluation.crossed import crossed_ci
    from bench.evaluation.uncertainty import bounds_of

    for s in data["settings"].values():
        for m, entry in s["metrics"].items():
            v = [x for x in entry["values"] if x is not None]
            _, lo, hi = crossed_ci(np.array(v)[:, None], bounds=bounds_of(m))
            entry["lo"], entry["hi"] = _finite_or_none(lo), _finite_or_none(hi)
    return {**data, "schema_version": BASELINE_SCHEMA_VERSION, "migrated_from": 1}
