"""Regression checks for papers: a committed baseline of a suite's results, and a check of fresh results against it.

    bench baseline results/<suite> -o results/baselines/<suite>.json
    bench check    results/<suite> --baseline results/baselines/<suite>.json   (exit 0 pass, 1 regression, 2 usage)
    bench compare  results/A results/B                                         (the same table, no verdict)

A *setting* is (label, swept hyper-parameter values); the baseline stores, per setting and metric, the per-seed
values with mean and 95% interval (the crossed bootstrap of bench/evaluation/uncertainty.py over the seed values,
clipped to the metric's range), plus the suite hash, the world identity and provenance.

A metric regresses when BOTH hold (asv-style: a factor alone flags noise, a test alone flags tiny effects):
  1. it moved in its bad direction by more than its tolerance (absolute, per metric; defaults below, override in
     the suite's [check] table, e.g. `win_rate = 0.08`), and
  2. the move is significant over seeds: Welch's one-sided t-test of current vs baseline seed values at
     level `alpha` (default 0.05). With fewer than 2 seeds on either side no test is possible and the
     tolerance alone decides (stated in the output).
Metrics with a direction: higher is better for win_rate, win_rate_lc (length-controlled), gold_reward,
pref_accuracy, lm_eval_score; lower is better for kl. Drift metrics (chosen/rejected/margin deltas), length and the
grammar / sentiment parts of the win rate have no better side: a move beyond tolerance in either direction is a
regression (a paper pins them as findings). Metrics absent from an older baseline are not checked.
Also a regression: a baseline setting missing from the results, or a run that failed; a changed suite hash or
world identity, unless `--allow-config-change`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.io import read_json, write_json_atomic, write_text_atomic

BASELINE_SCHEMA_VERSION = 1

# metric → (direction, default absolute tolerance). Tolerances were set from the run-to-run and seed spread
# measured on the CI-sized suite (results/baselines/controlled-ci.json); direction +1 higher is better, -1 lower is
# better, 0 either way.
METRICS: dict[str, tuple[int, float]] = {
    "win_rate": (+1, 0.06),
    "win_rate_lc": (+1, 0.06),         # length-controlled (bench/evaluation/win_parts.py)
    "win_rate_grammar": (0, 0.05),     # what the win is made of: a shift between the parts at an equal win rate
    "win_rate_sentiment": (0, 0.06),   # is a finding a paper pins, so either direction counts
    "gold_reward": (+1, 0.30),
    "kl": (-1, 3.0),
    "pref_accuracy": (+1, 0.06),
    "lm_eval_score": (+1, 0.05),
    "chosen_logp_delta": (0, 3.0),
    "rejected_logp_delta": (0, 3.0),
    "margin_delta": (0, 2.0),
    "length": (0, 3.0),
    "grammatical_fraction": (+1, 0.05),
    "ended_fraction": (+1, 0.05),
    "heldout_nll_delta": (-1, 0.10),
}


def _setting_key(label: str, params: dict[str, Any]) -> str:
    return label + "".join(f"|{k}={params[k]}" for k in sorted(params))


def collect(results_dir: Path) -> dict[str, Any]:
    """Per setting: per-seed values of every checked metric, mean and CI; plus identity and failures."""
    import numpy as np

    from bench.evaluation.estimators import crossed_bootstrap_ci
    from bench.evaluation.uncertainty import bounds_of
    from bench.results import load_runs, summary_frame

    results_dir = Path(results_dir)
    if not (results_dir / "runs").is_dir():
        raise UserError(f"{results_dir}: no runs/ folder; pass a results/<suite> directory written by `bench run`")
    frame = summary_frame(results_dir)
    suite = read_json(results_dir / "suite.json") if (results_dir / "suite.json").is_file() else {}
    world = read_json(results_dir / "world.json") if (results_dir / "world.json").is_file() else {}
    from bench.results import param_columns

    params = param_columns(frame)
    settings: dict[str, Any] = {}
    for _, row in frame.iterrows():
        p = {k: _plain(row[k]) for k in params if not _isnan(row[k])}
        key = _setting_key(row["label"], p)
        s = settings.setdefault(key, {"label": row["label"], "algorithm": row["algorithm"], "params": p,
                                      "seeds": [], "failed_seeds": [], "values": {m: [] for m in METRICS}})
        if row["status"] != "finished":
            s["failed_seeds"].append(int(row["seed"]))
            continue
        s["seeds"].append(int(row["seed"]))
        for m in METRICS:
            s["values"][m].append(None if _isnan(row.get(m)) else float(row[m]))
    for s in settings.values():
        s["metrics"] = {}
        for m, vals in s.pop("values").items():
            present = [v for v in vals if v is not None]
            if not present:
                continue
            # the harness's one uncertainty model, over seeds (one value per seed here), within the metric's range
            # (the mean itself is the plain mean of the seeds' values: what the regression test compares)
            _, lo, hi = crossed_bootstrap_ci(np.array(present)[:, None], bounds=bounds_of(m))
            mean = float(np.mean(present))
            s["metrics"][m] = {"values": vals, "mean": mean, "lo": lo, "hi": hi}
    runs = load_runs(results_dir)
    provenance = runs[0]["config"].get("provenance", {}) if runs else {}
    return {"suite": suite.get("name", results_dir.name), "suite_hash": suite.get("hash"),
            "world_key": world.get("key"), "world": suite.get("world"), "check": suite.get("check", {}),
            "provenance": {"git": provenance.get("git"), "packages": provenance.get("packages")},
            "settings": settings}


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
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such baseline; create one with `bench baseline results/<suite> -o {path}`")
    try:
        data = read_json(path)
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); regenerate it with `bench baseline`") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != BASELINE_SCHEMA_VERSION:
        raise UserError(f"{path}: baseline schema_version {version!r} is not supported (this daa-bench reads "
                        f"{BASELINE_SCHEMA_VERSION}); regenerate it with `bench baseline`")
    return data


def welch_p_worse(current: list[float], baseline: list[float], direction: int) -> float | None:
    """One-sided p-value that `current` is worse than `baseline` (Welch's t-test); None if n < 2 on a side.

    direction +1: worse = lower; -1: worse = higher; 0: two-sided (any change).
    """
    from scipy import stats

    a = [v for v in current if v is not None]
    b = [v for v in baseline if v is not None]
    if len(a) < 2 or len(b) < 2:
        return None
    if max(a) == min(a) and max(b) == min(b):  # no spread on either side: the test is degenerate
        return 0.0 if a[0] != b[0] else 1.0
    alternative = {1: "less", -1: "greater", 0: "two-sided"}[direction]
    return float(stats.ttest_ind(a, b, equal_var=False, alternative=alternative).pvalue)


@dataclass
class Row:
    setting: str
    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    tolerance: float
    p_value: float | None
    status: str  # ok | regression | improved | missing | failed


def compare(current: dict[str, Any], baseline: dict[str, Any], *, tolerances: dict[str, float] | None = None,
            alpha: float = 0.05) -> list[Row]:
    tolerances = {**{m: t for m, (_, t) in METRICS.items()}, **(tolerances or {})}
    rows: list[Row] = []
    for key, base in baseline["settings"].items():
        cur = current["settings"].get(key)
        if cur is None or not cur["seeds"]:
            status = "failed" if cur is not None and cur["failed_seeds"] else "missing"
            rows.append(Row(key, "-", None, None, None, 0.0, None, status))
            continue
        if cur["failed_seeds"]:
            rows.append(Row(key, "runs", None, None, None, 0.0, None, "failed"))
        for metric, b in base["metrics"].items():
            if metric not in METRICS or metric not in cur["metrics"]:
                continue
            direction = METRICS[metric][0]
            c = cur["metrics"][metric]
            delta = c["mean"] - b["mean"]
            tol = float(tolerances.get(metric, METRICS[metric][1]))
            p = welch_p_worse(c["values"], b["values"], direction)
            bad_move = (-delta if direction > 0 else delta if direction < 0 else abs(delta)) > tol
            significant = p is None or p < alpha
            if bad_move and significant:
                status = "regression"
            elif direction and (delta if direction > 0 else -delta) > tol:
                status = "improved"
            else:
                status = "ok"
            rows.append(Row(key, metric, b["mean"], c["mean"], delta, tol, p, status))
    return rows


def identity_problems(current: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    out = []
    if baseline.get("suite_hash") and current.get("suite_hash") != baseline.get("suite_hash"):
        out.append(f"suite changed (hash {str(current.get('suite_hash'))[:12]} vs baseline "
                   f"{str(baseline.get('suite_hash'))[:12]})")
    if baseline.get("world_key") and current.get("world_key") != baseline.get("world_key"):
        out.append(f"world changed (key {str(current.get('world_key'))[:12]} vs baseline "
                   f"{str(baseline.get('world_key'))[:12]})")
    return out


PROBLEMS = ("regression", "missing", "failed")  # row statuses that fail a check


def format_table(rows: list[Row], *, markdown: bool = False, names: tuple[str, str] = ("baseline", "current")) -> str:
    """The rows as an aligned text (or markdown) table; `names` head the two value columns."""
    head = ["setting", "metric", *names, "Δ", "tolerance", "p (worse)", "status"]
    body = []
    for r in rows:
        f = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
        body.append([r.setting, r.metric, f(r.baseline), f(r.current), f(r.delta), f"{r.tolerance:g}",
                     f(r.p_value), r.status.upper() if r.status in ("regression", "missing", "failed") else r.status])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(x.replace("|", "\\|") for x in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = lambda row: "  ".join(x.ljust(w) for x, w in zip(row, widths))  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(row) for row in body])


def run_check(results_dir: Path, baseline_path: Path, *, allow_config_change: bool = False,
              out_dir: Path | None = None, verbose: bool = False) -> tuple[bool, str]:
    """Compare, write check.json and check.md (CI comment, every row) into out_dir (default: results_dir);
    → (passed, text). The text lists only the rows that fail the check unless `verbose` (a passing check of the
    default suite has ~80 rows: the verdict is what a CI log needs)."""
    baseline = load_baseline(baseline_path)
    current = collect(results_dir)
    check_cfg = dict(current.get("check") or {})
    alpha = float(check_cfg.pop("alpha", 0.05))
    unknown = [k for k in check_cfg if k not in METRICS]
    if unknown:
        from bench.errors import did_you_mean

        raise UserError(f"[check].{unknown[0]}: not a checked metric; {did_you_mean(unknown[0], METRICS)}")
    rows = compare(current, baseline, tolerances={k: float(v) for k, v in check_cfg.items()}, alpha=alpha)
    identity = identity_problems(current, baseline)
    failed_rows = [r for r in rows if r.status in PROBLEMS]
    passed = not failed_rows and (allow_config_change or not identity)
    verdict = "PASS" if passed else "FAIL"
    notes = [f"identity: {p}" + (" (allowed)" if allow_config_change else "") for p in identity]
    few = sorted({r.setting for r in rows if r.p_value is None and r.metric not in ("-", "runs")})
    if few:
        notes.append("fewer than 2 seeds on a side: tolerance alone decides for " + ", ".join(few))
    summary = (f"{verdict}: {len(failed_rows)} problem(s) in {len(rows)} checks of '{current['suite']}' against "
               f"{baseline_path} (tolerance and Welch t-test over seeds, alpha {alpha})")
    shown = rows if verbose else failed_rows
    hidden = len(rows) - len(shown)
    table = [format_table(shown)] if shown else []
    if hidden:
        table.append(f"({hidden} row(s) ok or improved not shown; `bench check -v` prints every row, check.md has "
                     "them all)")
    text = "\n".join([summary, *notes, "", *table])
    markdown = "\n".join([f"### daa-bench check: {verdict}", "", summary, "", *[f"- {n}" for n in notes], "",
                          format_table(rows, markdown=True), ""])
    out_dir = Path(out_dir or results_dir)
    write_json_atomic(out_dir / "check.json", {
        "passed": passed, "alpha": alpha, "baseline": str(baseline_path), "identity_problems": identity,
        "allow_config_change": allow_config_change, "rows": [r.__dict__ for r in rows]})
    write_text_atomic(out_dir / "check.md", markdown)
    return passed, text


def run_compare(a: Path, b: Path) -> str:
    """The check table for two result sets, without a verdict: A plays the baseline, B the current results; the
    columns are headed with both folders' names, Δ = B − A and the status reads B against A."""
    a, b = Path(a), Path(b)
    rows = compare(collect(b), collect(a))
    name_a, name_b = _column_names(a, b)
    return (f"A = {a}\nB = {b}\n(Δ = B − A; status: B against A)\n\n"
            + format_table(rows, names=(f"A: {name_a}", f"B: {name_b}")))


def _column_names(a: Path, b: Path) -> tuple[str, str]:
    """The folders' names, or their paths when the names are the same (results/x vs other/results/x)."""
    if a.name != b.name:
        return a.name, b.name
    return str(a), str(b)
