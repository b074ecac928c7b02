"""The results directory is the database. One folder per run; the summary is always rebuilt from the folders.

    results/<suite>/
        suite.json                     the resolved suite (hash, source file) of the last `bench run`
        summary.csv                    one row per run (rebuilt, never the only copy of anything)
        runs/<run_id>/
            config.json                resolved spec + config hash + provenance (git commit, packages, device)
            curves.csv                 metric vs step / FLOPs / seconds during training
            samples.jsonl              prompt, policy sample, reference sample, judge scores
            metrics.json               final metrics + compute record + status — written LAST, atomically

A run is finished only when metrics.json exists with status "finished"; anything else is re-run.

Columns of summary.csv (and keys of metrics.json):
    run_id, label, algorithm, seed, <each hyper-parameter swept in the suite>, status, error,
    Interval convention (one uncertainty model, bench/evaluation/uncertainty.py; 95%, percentile, clipped to
    the metric's range):
      <m>_run_lo, <m>_run_hi   within this run: bootstrap over its prompts (and reference draws)
      <m>_lo, <m>_hi           over the setting's seeds and prompts (and reference draws): the crossed bootstrap;
                               the same on every seed's row of a setting (use these to compare settings)
    win_rate (+ _lo/_hi, _run_lo/_run_hi)   P(judge(y_π) > judge(y_ref)) + ½P(tie), each prompt's sample against
                                         K π_ref draws (eval.reference_samples)
    tie_rate                             fraction of those comparisons that tie (each counts ½)
    gold_reward (+ intervals)            mean judge score of policy samples (gold reward in the controlled world)
    kl (+ intervals)                     Monte-Carlo KL(π‖π_ref) per prompt (k1 estimator on policy samples)
    kl_tokenwise                         exact per-token KL summed along sampled prefixes (lower variance)
    chosen_logp_delta, rejected_logp_delta, margin_delta      ALL held-out pairs: change of Σ_t log π(y|x) from step 0
    chosen_fell_fraction                 fraction of held-out pairs whose chosen log-prob fell (Razin et al. 2024)
    control_logp_delta(_per_token)       the same change on fresh π_ref samples (the control set: global drift)
    chosen_vs_control_per_token          Δ chosen per token − Δ control per token (displacement net of drift)
    train_chosen_logp_delta, ...         the same on a fixed subset of training pairs
    *_per_token                          the same divided by completion length
    pref_accuracy                        implicit-reward ranking accuracy on held-out pairs
    length                               mean completion tokens of policy samples
    sample_logp, sample_entropy          mean log π and per-token entropy of the policy's own samples
    proxy_reward                         reward-model score of samples (ppo, online_dpo): over-optimisation
    implicit_gold_corr                   within-prompt correlation of implicit reward and gold reward
    val_win_rate                         win rate on validation prompts (disjoint from the test prompts);
                                         `best` marks each swept label's best setting by its mean over seeds
    budget_view                          end_to_end (reward model charged to each run) | amortised (listed apart)
    flops_amortised                      FLOPs booked outside the budget under the amortised view (reward model)
    flops, tokens, wall_s, train_s, eval_s, peak_mem_mb, steps, epochs, stop_reason
                                         (train_s includes curve_s, the curve measurements made during training;
                                         eval_s is the final evaluation; the FLOP meter excludes both)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from bench.io import read_json, write_json_atomic, write_text_atomic

SCHEMA_VERSION = 1

SUMMARY_HEAD = ["run_id", "label", "algorithm", "seed"]
SUMMARY_METRICS = [
    "status", "win_rate", "win_rate_lo", "win_rate_hi", "win_rate_run_lo", "win_rate_run_hi", "tie_rate",
    "gold_reward", "gold_reward_lo", "gold_reward_hi", "gold_reward_run_lo", "gold_reward_run_hi",
    "kl", "kl_lo", "kl_hi", "kl_run_lo", "kl_run_hi", "kl_tokenwise",
    "chosen_logp_delta", "rejected_logp_delta", "margin_delta", "chosen_fell_fraction",
    "control_logp_delta", "control_logp_delta_per_token", "chosen_vs_control_per_token",
    "train_chosen_logp_delta", "train_rejected_logp_delta", "train_margin_delta",
    "chosen_logp_delta_per_token", "rejected_logp_delta_per_token",
    "pref_accuracy", "length", "sample_logp", "sample_entropy", "proxy_reward", "implicit_gold_corr",
    "lm_eval_score", "val_win_rate", "budget_view", "flops", "flops_amortised", "tokens", "wall_s", "train_s", "eval_s", "curve_s", "peak_mem_mb", "steps", "epochs",
    "stop_reason", "budget_fraction", "best", "error",
]


AXIS_COLUMNS = ("budget_flops", "budget_view", "world_seed")  # suite-level sweep axes (bench/suite.py AXES)


def param_columns(frame) -> list[str]:
    """The columns that tell settings apart: swept hyper-parameters, and the suite-level axes that vary."""
    fixed = set(SUMMARY_HEAD) | set(SUMMARY_METRICS) | {"setting"}
    return [c for c in frame.columns
            if c not in fixed or (c in AXIS_COLUMNS and frame[c].dropna().astype(str).nunique() > 1)]


def run_dir(results_dir: Path, run_id: str) -> Path:
    return Path(results_dir) / "runs" / run_id


def is_finished(path: Path) -> bool:
    metrics = Path(path) / "metrics.json"
    if not metrics.is_file():
        return False
    try:
        return read_json(metrics).get("status") == "finished"
    except (OSError, json.JSONDecodeError):
        return False


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


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """The run's last file: its presence with status 'finished' is what marks the run done."""
    write_json_atomic(Path(path) / "metrics.json", {"schema_version": SCHEMA_VERSION, **metrics})


def load_runs(results_dir: Path) -> list[dict[str, Any]]:
    """Run directories of the suite as last run (suite.json's run_ids; all when absent) with a config.json, joined
    with its metrics.json (status 'incomplete' if missing). Folders of older configurations are kept, not read."""
    runs = []
    suite_file = Path(results_dir) / "suite.json"
    current = set(read_json(suite_file).get("run_ids") or []) if suite_file.is_file() else set()
    for d in sorted((Path(results_dir) / "runs").glob("*/")):
        if not (d / "config.json").is_file() or (current and d.name not in current):
            continue
        config = read_json(d / "config.json")
        metrics = read_json(d / "metrics.json") if (d / "metrics.json").is_file() else {"status": "incomplete"}
        runs.append({"dir": d, "config": config, "metrics": metrics})
    return runs


SETTING_INTERVALS = ("win_rate", "gold_reward", "kl")  # summary.csv's over-seeds `_lo/_hi` columns


def summary_frame(results_dir: Path, intervals: bool = True):
    """One row per run (pandas DataFrame), columns as documented above, sorted by label, params, seed.

    `intervals`: fill the over-seeds `<m>_lo/_hi` columns from the crossed bootstrap (else left as recorded)."""
    import pandas as pd

    rows, swept = [], []
    for run in load_runs(results_dir):
        cfg, m = run["config"], run["metrics"]
        row = {"run_id": cfg["run_id"], "label": cfg["label"], "algorithm": cfg["algorithm"], "seed": cfg["seed"]}
        axes = cfg.get("axes") or {}
        for key in SUMMARY_METRICS:
            row[key] = m.get(key)
        for key in [*cfg.get("swept", []), *axes]:  # swept hyper-parameters, then suite-level axes
            row[key] = cfg["params"][key] if key in cfg["params"] else axes[key]
            if key not in swept:
                swept.append(key)
        rows.append(row)
    columns = SUMMARY_HEAD + swept + [c for c in SUMMARY_METRICS if c not in swept]  # budget_view: once
    frame = pd.DataFrame(rows, columns=columns)
    if len(frame):
        frame = frame.sort_values(["label", *swept, "seed"], kind="stable").reset_index(drop=True)
        if intervals:
            _setting_intervals(results_dir, frame)
    return frame


def _setting_intervals(results_dir: Path, frame) -> None:
    from bench.evaluation.uncertainty import from_results

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
