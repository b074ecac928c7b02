"""The columns of summary.csv and how its rows group into settings: which columns tell settings apart (swept
hyper-parameters, suite axes that vary), a setting's name ("dpo (beta=0.1)"), the report's order of runs.

Shared by results (summary.csv and its interval columns), the uncertainty model (bench.evaluation.uncertainty:
its groups are settings) and the report (bench.reporting.tables), which is why it sits below all three: the
summary's intervals need the settings, and neither the evaluation nor the results may import the report.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

SUMMARY_HEAD = ["run_id", "label", "algorithm", "seed"]
SUMMARY_METRICS = [
    "status", "win_rate", "win_rate_lo", "win_rate_hi", "win_rate_run_lo", "win_rate_run_hi", "tie_rate",
    "win_rate_lc", "win_rate_lc_lo", "win_rate_lc_hi", "win_rate_lc_run_lo", "win_rate_lc_run_hi",
    "win_rate_length_slope", "win_rate_grammar", "win_rate_grammar_lo", "win_rate_grammar_hi",
    "win_rate_sentiment", "win_rate_sentiment_lo", "win_rate_sentiment_hi",
    "gold_reward", "gold_reward_lo", "gold_reward_hi", "gold_reward_run_lo", "gold_reward_run_hi",
    "kl", "kl_lo", "kl_hi", "kl_run_lo", "kl_run_hi", "kl_tokenwise", "kl_tokenwise_lo", "kl_tokenwise_hi",
    "frontier_efficiency", "frontier_efficiency_lo", "frontier_efficiency_hi", "frontier_efficiency_run_lo",
    "frontier_efficiency_run_hi", "frontier_efficiency_bon", "frontier_efficiency_bon_lo",
    "frontier_efficiency_bon_hi", "limit_samples_used",
    "gao_rl_alpha", "gao_rl_beta", "gao_rl_peak_sqrt_kl", "gao_rl_r2", "gao_bon_alpha", "gao_bon_beta",
    "gao_bon_peak_sqrt_kl", "gao_bon_r2", "gao_better",
    "adjusted_chosen_minus_rejected_seq", "adjusted_chosen_minus_rejected_token",
    "train_adjusted_chosen_minus_rejected_seq", "train_adjusted_chosen_minus_rejected_token",
    "chosen_logp_delta", "rejected_logp_delta", "margin_delta", "chosen_fell_fraction",
    "control_logp_delta", "control_logp_delta_per_token", "chosen_vs_control_per_token",
    "train_chosen_logp_delta", "train_rejected_logp_delta", "train_margin_delta",
    "chosen_logp_delta_per_token", "rejected_logp_delta_per_token",
    "pref_accuracy", "rm_label_accuracy", "rm_gold_accuracy", "length", "sample_logp", "sample_entropy", "proxy_reward", "implicit_gold_corr",
    "lm_eval_score", "grammatical_fraction", "ended_fraction", "capped_fraction", "censored", "heldout_nll",
    "heldout_nll_delta", "train_implicit_margin", "margin_target", "val_win_rate", "budget_view", "flops",
    "flops_amortised", "tokens", "wall_s", "train_s", "eval_s", "curve_s", "peak_mem_mb", "steps", "epochs",
    "stop_reason", "budget_fraction", "best", "error",
]


AXIS_COLUMNS = ("budget_flops", "budget_view", "world_seed", "pair_source")  # suite-level axes (bench/suite.py AXES)


def param_columns(frame) -> list[str]:
    """The columns that tell settings apart: swept hyper-parameters, and the suite-level axes that vary."""
    fixed = set(SUMMARY_HEAD) | set(SUMMARY_METRICS) | {"setting"}
    return [c for c in frame.columns
            if c not in fixed or (c in AXIS_COLUMNS and frame[c].dropna().astype(str).nunique() > 1)]


def label_order(frame: pd.DataFrame, suite: dict | None = None) -> list[str]:
    """Labels in the suite's entry order (as the author wrote them), then any others alphabetically."""
    present = [str(x) for x in frame["label"].dropna().unique()] if len(frame) else []
    order = [e.get("label") for e in (suite or {}).get("entries", []) if e.get("label") in present]
    return list(dict.fromkeys(order + sorted(set(present) - set(order))))


def present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not (isinstance(value, float) and math.isnan(value)) and not pd.isna(value)
    except (TypeError, ValueError):
        return True


def format_param(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):g}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return str(value)


def setting_name(label: str, params: dict[str, Any]) -> str:
    """'dpo' or 'dpo (beta=0.1, learning_rate=0.001)': the label plus its swept values."""
    shown = [f"{k}={format_param(v)}" for k, v in params.items() if present(v)]
    return f"{label} ({', '.join(shown)})" if shown else str(label)


def sorted_runs(frame: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Runs in report order (label order, then swept values, then seed) with a `setting` column."""
    params = param_columns(frame)
    order = order or label_order(frame)
    rank = {label: i for i, label in enumerate(order)}
    runs = frame.copy()
    runs["_rank"] = runs["label"].map(lambda x: rank.get(x, len(rank)))
    mixed = {p for p in params if runs[p].dtype == object}  # e.g. strings beside numbers: sort as text
    runs = runs.sort_values(["_rank", "label", *params, "seed"], kind="stable", na_position="last",
                            key=lambda col: col.map(lambda v: format_param(v) if present(v) else v)
                            if col.name in mixed else col)
    runs["setting"] = [setting_name(r["label"], {p: r[p] for p in params}) for _, r in runs.iterrows()]
    return runs.drop(columns="_rank").reset_index(drop=True)




def setting_groups(frame) -> dict[str, list[str]]:
    """run_ids per setting (label + swept values), from a summary frame; the names follow the report's."""
    if not len(frame):
        return {}
    runs = sorted_runs(frame)
    return {s: list(g["run_id"]) for s, g in runs.groupby("setting", sort=False)}
