"""The report's tables as pure pandas functions of the summary frame (golden-tested in tests/test_report.py).

A *setting* is one (label, swept hyper-parameter values) combination; its seeds are aggregated as the mean with
a 95% Student-t confidence interval over seeds (`seed_ci`). Only finished runs enter the statistics; the others
are counted (`not_finished`) and listed by `failed_runs`, never dropped.

"Best" per column follows the metric's direction (higher win rate, gold reward and preference accuracy; lower
KL) and is chosen among trained algorithms only: the training-free references `sft` (KL = 0 by construction)
and `best_of_n` (picks with the judge itself: an oracle) would otherwise win columns they cannot lose. For a
label with a grid, only the setting the runner selected (on validation data) competes: picking the grid point
with the best *test* score would reward the label with the bigger grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.evaluation.estimators import seed_ci
from bench.results import SUMMARY_HEAD, SUMMARY_METRICS

REFERENCE_ALGORITHMS = ("sft", "best_of_n")


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    direction: int  # +1 higher is better, -1 lower is better, 0 no ordering
    fmt: str


LEADERBOARD = (
    Metric("win_rate", "win rate", "vs π_ref", +1, ".3f"),
    Metric("gold_reward", "gold reward", "judge score", +1, ".2f"),
    Metric("kl", "KL(π‖π_ref)", "nats", -1, ".2f"),
    Metric("grammatical_fraction", "grammatical", "share of samples", +1, ".3f"),
    Metric("heldout_nll_delta", "Δ NLL", "nats/token, fresh text", -1, ".3f"),
    Metric("pref_accuracy", "pref. accuracy", "held-out pairs", +1, ".3f"),
    Metric("chosen_logp_delta", "Δ log π(y_c|x)", "nats", 0, ".2f"),
    Metric("rejected_logp_delta", "Δ log π(y_r|x)", "nats", 0, ".2f"),
    Metric("length", "length", "tokens", 0, ".1f"),
    Metric("flops", "compute", "FLOPs", 0, ".2e"),
    Metric("wall_s", "wall time", "s", 0, ".1f"),
)
EXTRA_METRICS = ("margin_delta", "proxy_reward", "lm_eval_score", "ended_fraction", "capped_fraction", "censored")
AGGREGATED = tuple(m.key for m in LEADERBOARD) + EXTRA_METRICS


def param_columns(frame: pd.DataFrame) -> list[str]:
    """The swept hyper-parameter columns of a summary frame (everything not a fixed summary column)."""
    fixed = set(SUMMARY_HEAD) | set(SUMMARY_METRICS) | {"setting"}
    return [c for c in frame.columns if c not in fixed]


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


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def leaderboard(frame: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """One row per setting: label, algorithm, swept values, seeds (finished), not_finished, selected, and for
    each aggregated metric `m`: m (mean over seeds), m_lo, m_hi (95% t-interval; = mean for one seed)."""
    params = param_columns(frame)
    columns = ["label", "algorithm", *params, "setting", "seeds", "not_finished", "selected"]
    columns += [f"{m}{s}" for m in AGGREGATED for s in ("", "_lo", "_hi")]
    if not len(frame):
        return pd.DataFrame(columns=columns)
    rows = []
    for setting, group in sorted_runs(frame, order).groupby("setting", sort=False):
        done = group[group["status"] == "finished"]
        row = {"label": group["label"].iloc[0], "algorithm": group["algorithm"].iloc[0],
               **{p: group[p].iloc[0] for p in params}, "setting": setting, "seeds": len(done),
               "not_finished": len(group) - len(done),
               "selected": bool((group.get("best", pd.Series(dtype=object)) == "best").any())}
        for m in AGGREGATED:
            values = _numeric(done[m]) if m in done else np.array([])
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = seed_ci(values)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def board_params(board: pd.DataFrame) -> list[str]:
    """The swept hyper-parameter columns of a leaderboard (they sit between `algorithm` and `setting`)."""
    cols = list(board.columns)
    return cols[cols.index("algorithm") + 1: cols.index("setting")]


def best_marks(board: pd.DataFrame) -> pd.DataFrame:
    """Boolean frame (same index as `board`, one column per leaderboard metric): the best setting(s) per column
    among trained algorithms, by the metric's direction; all False for metrics without a direction."""
    marks = pd.DataFrame(False, index=board.index, columns=[m.key for m in LEADERBOARD])
    trained = ~board["algorithm"].isin(REFERENCE_ALGORITHMS) if len(board) else pd.Series(dtype=bool)
    if len(board):  # in a grid, only the runner's selected setting competes (not the best test score: tuning luck)
        has_selection = board.groupby("label")["selected"].transform("any")
        trained &= board["selected"] | ~has_selection
    for m in LEADERBOARD:
        if m.direction == 0 or not len(board):
            continue
        values = pd.to_numeric(board[m.key], errors="coerce").where(trained)
        if values.notna().any():
            best = values.max() if m.direction > 0 else values.min()
            marks[m.key] = values == best
    return marks


def failed_runs(frame: pd.DataFrame, order: list[str] | None = None) -> pd.DataFrame:
    """Every run that did not finish: run_id, setting, seed, status and its error (one line)."""
    cols = ["run_id", "setting", "seed", "status", "error"]
    if not len(frame):
        return pd.DataFrame(columns=cols)
    runs = sorted_runs(frame, order)
    bad = runs[runs["status"] != "finished"].copy()
    bad["status"] = bad["status"].map(lambda s: s if present(s) else "incomplete")
    bad["error"] = [str(e) if present(e) and str(e) else
                    ("no metrics.json: the run did not finish (interrupted or still running)"
                     if s == "incomplete" else "no error recorded")
                    for e, s in zip(bad["error"], bad["status"])]
    return bad[cols].reset_index(drop=True)


def alignment_tax(board: pd.DataFrame) -> pd.DataFrame:
    """Settings with an lm-eval score: mean, CI and the change against `sft` (the untrained base policy)."""
    cols = ["setting", "seeds", "lm_eval_score", "lm_eval_score_lo", "lm_eval_score_hi", "delta_vs_sft"]
    if not len(board) or board["lm_eval_score"].isna().all():
        return pd.DataFrame(columns=cols)
    rows = board[board["lm_eval_score"].notna()].copy()
    base = board.loc[board["algorithm"] == "sft", "lm_eval_score"].dropna()
    rows["delta_vs_sft"] = rows["lm_eval_score"] - base.iloc[0] if len(base) else np.nan
    return rows[cols].reset_index(drop=True)


def format_number(value: Any, fmt: str) -> str:
    if not present(value):
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if "e" in fmt and number == 0:
        return "0"
    text = format(number, fmt)
    if text.startswith("-") and float(text) == 0:  # -0.00 -> 0.00
        text = text[1:]
    if "e" in text:  # 2.99e+11 -> 2.99e11
        mant, exp = text.split("e")
        text = f"{mant}e{int(exp)}"
    return text


def format_ci(mean: Any, lo: Any, hi: Any, seeds: int, fmt: str) -> str:
    """'± half-width' of the seed interval, or '' when it is not defined (fewer than two seeds)."""
    if seeds < 2 or not (present(lo) and present(hi) and present(mean)):
        return ""
    return "± " + format_number((float(hi) - float(lo)) / 2, fmt)


def leaderboard_view(board: pd.DataFrame, marks: pd.DataFrame) -> list[dict[str, Any]]:
    """The leaderboard as rows of display cells for the template (text only; escaping is the template's)."""
    params = board_params(board)
    has_selection = board.groupby("label")["selected"].transform("any") if len(board) else board["selected"]
    view = []
    for i, row in board.iterrows():
        cells = [{"value": format_number(row[m.key], m.fmt),
                  "ci": format_ci(row[m.key], row[f"{m.key}_lo"], row[f"{m.key}_hi"], int(row["seeds"]), m.fmt),
                  "best": bool(marks.at[i, m.key])} for m in LEADERBOARD]
        swept = [f"{p}={format_param(row[p])}" for p in params if present(row[p])]
        view.append({"label": row["label"], "algorithm": row["algorithm"], "swept": swept,
                     "seeds": int(row["seeds"]), "not_finished": int(row["not_finished"]),
                     "selected": bool(row["selected"]), "reference": row["algorithm"] in REFERENCE_ALGORITHMS,
                     # the row that represents its label in a compact table: its selected setting, if any
                     "primary": bool(row["selected"] or not has_selection[i]), "cells": cells})
    return view
