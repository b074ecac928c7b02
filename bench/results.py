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
    win_rate, win_rate_lo, win_rate_hi   P(judge(y_π) > judge(y_ref)) + ½P(tie), 95% bootstrap CI over prompts
    gold_reward                          mean judge score of policy samples (gold reward in the controlled world)
    kl, kl_lo, kl_hi                     Monte-Carlo KL(π‖π_ref) per prompt (k1 estimator on policy samples)
    kl_tokenwise                         exact per-token KL summed along sampled prefixes (lower variance)
    chosen_logp_delta, rejected_logp_delta, margin_delta      held-out pairs: change of Σ_t log π(y|x) from step 0
    train_chosen_logp_delta, ...         the same on a fixed subset of training pairs
    *_per_token                          the same divided by completion length
    pref_accuracy                        implicit-reward ranking accuracy on held-out pairs
    length                               mean completion tokens of policy samples
    sample_logp, sample_entropy          mean log π and per-token entropy of the policy's own samples
    proxy_reward                         reward-model score of samples (ppo, online_dpo): over-optimisation
    implicit_gold_corr                   within-prompt correlation of implicit reward and gold reward
    grammatical_fraction                 share of samples whose review parses under the controlled grammar
    ended_fraction, capped_fraction      share of samples that emitted the end token / were cut at the cap
    censored                             1 when > 5% of samples were capped: length and kl are censored
    heldout_nll, heldout_nll_delta       nats/token on fresh reference text, and policy − π_ref (the tax)
                                         (all five: bench/evaluation/quality.py)
    train_implicit_margin, margin_target median implicit-reward margin on the tracked training pairs, and the
                                         margin at the loss's finite optimum (IPO 1/(2β) per token; cDPO
                                         log((1−ε)/ε)/β): is the bounded-optimum regime reached?
    val_win_rate                         win rate on validation prompts (disjoint from the test prompts);
                                         `best` marks each swept label's best setting by its mean over seeds
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
    "status", "win_rate", "win_rate_lo", "win_rate_hi", "gold_reward", "gold_reward_lo", "gold_reward_hi",
    "kl", "kl_lo", "kl_hi", "kl_tokenwise", "chosen_logp_delta", "rejected_logp_delta", "margin_delta",
    "train_chosen_logp_delta", "train_rejected_logp_delta", "train_margin_delta",
    "chosen_logp_delta_per_token", "rejected_logp_delta_per_token",
    "pref_accuracy", "length", "sample_logp", "sample_entropy", "proxy_reward", "implicit_gold_corr",
    "lm_eval_score", "grammatical_fraction", "ended_fraction", "capped_fraction", "censored", "heldout_nll",
    "heldout_nll_delta", "train_implicit_margin", "margin_target", "val_win_rate", "flops", "tokens", "wall_s", "train_s", "eval_s", "curve_s", "peak_mem_mb", "steps", "epochs",
    "stop_reason", "budget_fraction", "best", "error",
]


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


def summary_frame(results_dir: Path):
    """One row per run (pandas DataFrame), columns as documented above, sorted by label, params, seed."""
    import pandas as pd

    rows, swept = [], []
    for run in load_runs(results_dir):
        cfg, m = run["config"], run["metrics"]
        row = {"run_id": cfg["run_id"], "label": cfg["label"], "algorithm": cfg["algorithm"], "seed": cfg["seed"]}
        for key in cfg.get("swept", []):
            row[key] = cfg["params"][key]
            if key not in swept:
                swept.append(key)
        for key in SUMMARY_METRICS:
            row[key] = m.get(key)
        rows.append(row)
    columns = SUMMARY_HEAD + swept + SUMMARY_METRICS
    frame = pd.DataFrame(rows, columns=columns)
    if len(frame):
        frame = frame.sort_values(["label", *swept, "seed"], kind="stable").reset_index(drop=True)
    return frame


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
    params = [c for c in frame.columns if c not in SUMMARY_HEAD and c not in SUMMARY_METRICS]
    for label, group in frame.groupby("label"):
        keys = [p for p in params if group[p].notna().any() and group[p].nunique() > 1]
        if not keys:
            continue
        finished = group[group["status"] == "finished"]
        if finished.empty or finished["val_win_rate"].isna().all():
            continue
        means = finished.groupby(keys)["val_win_rate"].mean()
        best = means.idxmax()
        best = best if isinstance(best, tuple) else (best,)
        mask = (frame["label"] == label)
        for k, v in zip(keys, best):
            mask &= frame[k] == v
        frame.loc[mask, "best"] = "best"
