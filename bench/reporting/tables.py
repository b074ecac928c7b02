"""The report's tables as pure pandas functions of the summary frame (golden-tested in tests/test_report.py).

A *setting* is one (label, swept hyper-parameter values) combination; its seeds are aggregated as the mean with
a 95% interval over seeds AND prompts (and reference draws) from the one uncertainty model
(bench/evaluation/uncertainty.py: t over seeds plus the shared prompt variance, clipped to each metric's range; `<m>_lo/_hi`). Only
finished runs enter the statistics; the others are counted (`not_finished`) and listed by `failed_runs`.

"Best" per column follows the metric's direction (higher win rate, gold reward and preference accuracy; KL has
none: it is the price paid for reward, read against reward on the frontier, and the lowest KL is won by barely
training) and is chosen among trained algorithms only: the training-free references `sft` (KL = 0 by construction)
and `best_of_n` (picks with the judge itself: an oracle) would otherwise win columns they cannot lose. A column's
leader is marked only when it beats the runner-up *significantly*: the paired difference's 95% interval (same
seeds, prompts and reference draws) excludes 0. For a label with a grid, only the setting the runner selected (on
validation data) competes: picking the grid point with the best *test* score would reward the bigger grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bench.columns import format_param, label_order, param_columns, present, setting_name, sorted_runs  # noqa: F401
from bench.evaluation.language import GRAMMATICAL_FLOOR, language_floor, off_language  # noqa: F401  (the rule)


REFERENCE_ALGORITHMS = ("sft", "best_of_n", "scripted")


@dataclass(frozen=True)
class Metric:
    key: str
    title: str
    unit: str
    direction: int  # +1 higher is better, -1 lower is better, 0 no ordering
    fmt: str


LEADERBOARD = (
    Metric("win_rate", "win rate", "vs π_ref", +1, ".3f"),
    # what the win is made of (bench/evaluation/win_parts.py): read at equal length, and split into the part
    # decided by grammar and the part decided by sentiment (win rate − ½ = grammar + sentiment)
    Metric("win_rate_lc", "LC win rate", "vs π_ref at equal length", +1, ".3f"),
    Metric("win_rate_grammar", "grammar part", "of win rate − ½", 0, "+.3f"),
    Metric("win_rate_sentiment", "sentiment part", "of win rate − ½", 0, "+.3f"),
    Metric("tie_rate", "ties", "share of comparisons", 0, ".3f"),
    Metric("gold_reward", "gold reward", "judge score", +1, ".2f"),
    # no "best" KL: it is the price of reward, read on the frontier; the lowest KL is won by barely training
    Metric("kl", "KL(π‖π_ref)", "nats", 0, ".2f"),
    # how far from the frontier at its own KL (bench/evaluation/frontier.py): gold gain over π_ref / best-of-n's gain
    # there. Best-of-n, not π*: its exact estimator reaches every run's KL, π*'s importance weights stop near 1.65
    # nats (the two agree within 0.02 where both exist on the default suite); π*'s column is in summary.csv
    Metric("frontier_efficiency_bon", "efficiency", "of best-of-n's gain at its KL", +1, ".2f"),
    Metric("grammatical_fraction", "grammatical", "share of samples", +1, ".3f"),
    Metric("heldout_nll_delta", "Δ NLL", "nats/token, fresh text", -1, ".3f"),
    Metric("pref_accuracy", "pref. accuracy", "held-out pairs", +1, ".3f"),
    Metric("chosen_logp_delta", "Δ log π(y_c|x)", "nats", 0, ".2f"),
    Metric("rejected_logp_delta", "Δ log π(y_r|x)", "nats", 0, ".2f"),
    Metric("control_logp_delta_per_token", "Δ log π control", "nats/token, π_ref samples", 0, ".3f"),
    Metric("chosen_vs_control_per_token", "Δ chosen − Δ control", "nats/token", 0, ".3f"),
    Metric("chosen_fell_fraction", "chosen fell", "fraction of pairs", 0, ".2f"),
    Metric("length", "length", "tokens", 0, ".1f"),
    Metric("flops", "compute", "FLOPs (budget)", 0, ".2e"),
    Metric("steps", "steps", "optimizer", 0, ".0f"),
    Metric("epochs", "epochs", "over the pairs", 0, ".2f"),
    Metric("wall_s", "wall time", "s", 0, ".1f"),
)
EXTRA_METRICS = ("margin_delta", "proxy_reward", "lm_eval_score", "tie_rate", "chosen_fell_fraction",
                 "control_logp_delta", "control_logp_delta_per_token", "chosen_vs_control_per_token",
                 "steps", "epochs", "flops_amortised", "ended_fraction", "capped_fraction", "censored")
AGGREGATED = tuple(dict.fromkeys(tuple(m.key for m in LEADERBOARD) + EXTRA_METRICS))


def _numeric(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def _uncertainty(frame: pd.DataFrame, unc):
    if unc is not None:
        return unc
    from bench.evaluation.uncertainty import from_frame

    return from_frame(frame)


def leaderboard(frame: pd.DataFrame, order: list[str] | None = None, unc=None) -> pd.DataFrame:
    """One row per setting: label, algorithm, swept values, seeds (finished), not_finished, selected, stop
    reasons, and for each aggregated metric `m`: m (mean over seeds), m_lo, m_hi (95% interval
    over seeds and prompts, `unc`: an `Uncertainty`; without per-unit files, over seeds only)."""
    params = param_columns(frame)
    columns = ["label", "algorithm", *params, "setting", "seeds", "not_finished", "selected", "stop_reason"]
    columns += [f"{m}{s}" for m in AGGREGATED for s in ("", "_lo", "_hi")]
    if not len(frame):
        return pd.DataFrame(columns=columns)
    unc = _uncertainty(frame, unc)
    rows = []
    for setting, group in sorted_runs(frame, order).groupby("setting", sort=False):
        done = group[group["status"] == "finished"]
        reasons = [str(r) for r in done.get("stop_reason", pd.Series(dtype=object)) if present(r)]
        row = {"label": group["label"].iloc[0], "algorithm": group["algorithm"].iloc[0],
               **{p: group[p].iloc[0] for p in params}, "setting": setting, "seeds": len(done),
               "not_finished": len(group) - len(done),
               "selected": bool((group.get("best", pd.Series(dtype=object)) == "best").any()),
               "stop_reason": ", ".join(f"{r}×{reasons.count(r)}" if reasons.count(r) > 1 else r
                                        for r in dict.fromkeys(reasons))}
        for m in AGGREGATED:
            iv = unc.interval(setting, m) if m in done and _numeric(done[m]).size and \
                np.isfinite(_numeric(done[m])).any() else None
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = (iv.mean, iv.lo, iv.hi) if iv else (np.nan,) * 3
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def competitors(board: pd.DataFrame) -> pd.Series:
    """Settings that may win a column: trained algorithms, and in a grid only the runner's selected setting."""
    if not len(board):
        return pd.Series(dtype=bool)
    trained = ~board["algorithm"].isin(REFERENCE_ALGORITHMS)
    has_selection = board.groupby("label")["selected"].transform("any")
    return trained & (board["selected"] | ~has_selection)


POWER_TARGET = 0.05  # the paired win-rate difference a suite should resolve (issue 11: half-width <= 0.05)


def same_conditions(board: pd.DataFrame, a: str, b: str) -> bool:
    """Whether settings `a` and `b` ran under the same suite-level conditions (bench/results.py AXIS_COLUMNS: the
    budget, the budget view, the world seed, the pair source), so that comparing them is fair. A setting that
    serves both budget views (`budget_view = "both"`: no reward model to charge) matches either view."""
    from bench.results import AXIS_COLUMNS

    rows = board.set_index("setting")
    for axis in AXIS_COLUMNS:
        if axis not in rows.columns:
            continue
        va, vb = str(rows.at[a, axis]), str(rows.at[b, axis])
        if va != vb and not (axis == "budget_view" and "both" in (va, vb)):
            return False
    return True


def pairwise(board: pd.DataFrame, unc, metric: str = "win_rate", target: float = POWER_TARGET) -> pd.DataFrame:
    """Paired differences `a − b` of `metric` between every two competing settings (a listed before b), with the
    95% interval over the seeds both finished, prompts and reference draws (the one uncertainty model);
    `significant` when it excludes 0. Power, from the interval's two variance parts projected to more seeds (the
    seed part shrinks like 1/seeds, the part the seeds share — prompts and draws — does not):
    `mdd`: the minimum detectable difference at these seeds (80% power, two-sided 5%); `seeds_needed`: seeds for a
    half-width <= `target`; `seeds_to_resolve`: for an unresolved pair, seeds for a half-width below its observed
    |difference| (NaN: resolved, no difference, or unreachable by seeds alone — more prompts needed)."""
    from bench.evaluation.crossed import minimum_detectable, seeds_to_resolve

    cols = ["a", "b", "difference", "lo", "hi", "half_width", "seeds", "significant", "mdd", "seeds_needed",
            "seeds_to_resolve"]
    names = list(board.loc[competitors(board), "setting"]) if len(board) else []
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if not same_conditions(board, a, b):  # under suite-level axes: comparisons under equal conditions
                continue
            iv = unc.difference(a, b, metric)
            if not present(iv.mean) or not math.isfinite(iv.mean):
                continue
            significant = bool(iv.lo > 0 or iv.hi < 0)
            parts = iv.parts if iv.parts is not None and iv.seeds >= 2 else None  # 1 seed: no seed spread
            need = seeds_to_resolve(parts, target) if parts else None
            resolve = seeds_to_resolve(parts, abs(iv.mean)) if parts and not significant and iv.mean else None
            rows.append({"a": a, "b": b, "difference": iv.mean, "lo": iv.lo, "hi": iv.hi,
                         "half_width": iv.half_width, "seeds": iv.seeds, "significant": significant,
                         "mdd": minimum_detectable(parts) if parts else np.nan,
                         "seeds_needed": need if need is not None else np.nan,
                         "seeds_to_resolve": resolve if resolve is not None else np.nan})
    return pd.DataFrame(rows, columns=cols)


READINGS = (("win_rate_lc", "lc"), ("win_rate_grammar", "grammar"), ("win_rate_sentiment", "sentiment"))


def pairwise_readings(board: pd.DataFrame, unc, target: float = POWER_TARGET) -> pd.DataFrame:
    """`pairwise` on the win rate, with the same paired differences of the LC win rate and of the grammar and
    sentiment parts beside it (`<reading>_difference`, `_lo`, `_hi`; absent readings stay empty)."""
    pairs = pairwise(board, unc, "win_rate", target)
    for metric, short in READINGS:
        values, los, his = [], [], []
        for a, b in zip(pairs["a"], pairs["b"]):
            iv = unc.difference(a, b, metric)
            ok = present(iv.mean) and math.isfinite(iv.mean)
            values.append(iv.mean if ok else np.nan)
            los.append(iv.lo if ok else np.nan)
            his.append(iv.hi if ok else np.nan)
        pairs[f"{short}_difference"], pairs[f"{short}_lo"], pairs[f"{short}_hi"] = values, los, his
    return pairs


def seed_flags(runs: pd.DataFrame, unc=None) -> dict[str, str]:
    """setting -> 'seed 7: 68% grammatical, …' for the seeds that left the language (see `off_language`); with the
    uncertainty model `unc`, followed by the failure-aware reading (bench/evaluation/language.py): k of n seeds,
    the failure rate's exact interval, and the win rate over the seeds that stayed."""
    from bench.evaluation.language import failure_aware

    if not len(runs) or "setting" not in runs:
        return {}
    mask = off_language(runs)
    off = runs[mask]
    out: dict[str, str] = {}
    for setting, rows in off.groupby("setting", sort=False):
        text = ", ".join(f"seed {int(r['seed'])}: {float(r['grammatical_fraction']):.0%} grammatical"
                         for _, r in rows.iterrows())
        if unc is not None and setting in unc.settings:
            f = failure_aware(unc, setting, set(off["run_id"]))
            pct = lambda v: f"{v:.1%}" if 0 < v < 0.01 or 0.99 < v < 1 else f"{v:.0%}"  # noqa: E731  (not 0%, 100%)
            text += (f" — {f['off']} of {f['seeds']} seeds left the language, a failure rate with 95% interval "
                     f"[{pct(f['rate_lo'])}, {pct(f['rate_hi'])}] (Clopper–Pearson)")
            if f["stayed"] >= 2 and math.isfinite(f["lo"]):
                text += (f", win rate {f['mean']:.3f} [{f['lo']:.3f}, {f['hi']:.3f}] over the {f['stayed']} "
                         "that stayed")
            elif f["stayed"] == 1:
                text += f", win rate {f['mean']:.3f} for the one that stayed"
        out[setting] = text
    return out


def transient_flags(curves: pd.DataFrame, runs: pd.DataFrame) -> dict[str, str]:
    """setting -> 'seed 0 left the language mid-training (8% grammatical at step 106, KL 50) and came back' for
    finished seeds whose held-out checkpoints fell below the language floor (`off_language`'s) while their final
    samples did not: the final readings hide such an excursion (cDPO seed 0 of the default suite: KL 50 at 80% of
    its budget, 96% grammatical at the end)."""
    need = {"run_id", "grammatical_fraction", "step"}
    if not len(curves) or not need <= set(curves.columns) or not len(runs) or "setting" not in runs:
        return {}
    g_runs = pd.to_numeric(runs["grammatical_fraction"], errors="coerce")
    floor = language_floor(runs)
    held = curves[curves["split"] == "heldout"] if "split" in curves.columns else curves
    out: dict[str, list[str]] = {}
    final_off = off_language(runs)
    for i, run in runs[(runs["status"] == "finished") & ~final_off].iterrows():
        pts = held[held["run_id"] == run["run_id"]]
        g = pd.to_numeric(pts["grammatical_fraction"], errors="coerce")
        if not (g < floor).any():
            continue
        j = g.idxmin()
        kl = pd.to_numeric(pts.get("kl_tokenwise", pts.get("kl")), errors="coerce")
        kl_text = f", KL {float(kl[j]):.3g}" if j in kl.index and np.isfinite(kl[j]) else ""
        out.setdefault(run["setting"], []).append(
            f"seed {int(run['seed'])} left the language mid-training ({float(g[j]):.0%} grammatical at step "
            f"{int(pts.at[j, 'step'])}{kl_text}) and came back ({float(g_runs[i]):.0%} at the end)")
    return {k: ", ".join(v) for k, v in out.items()}


def board_params(board: pd.DataFrame) -> list[str]:
    """The swept hyper-parameter columns of a leaderboard (they sit between `algorithm` and `setting`)."""
    cols = list(board.columns)
    return cols[cols.index("algorithm") + 1: cols.index("setting")]


def best_marks(board: pd.DataFrame, unc=None, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """Boolean frame (same index as `board`, one column per leaderboard metric): the leader per column among the
    competing settings (`competitors`), by the metric's direction, marked only when its paired difference with
    the runner-up is significant (95% interval excludes 0; `unc`, built from `frame` when not given); all False
    for metrics without a direction, and when the leader ties or is not resolved."""
    marks = pd.DataFrame(False, index=board.index, columns=[m.key for m in LEADERBOARD])
    if not len(board):
        return marks
    if unc is None and frame is not None:
        unc = _uncertainty(frame, None)
    trained = competitors(board)
    for m in LEADERBOARD:
        if m.direction == 0:
            continue
        values = pd.to_numeric(board[m.key], errors="coerce").where(trained).dropna()
        if len(values) < 1:
            continue
        ranked = values.sort_values(ascending=m.direction < 0, kind="stable")
        lead = ranked.index[0]
        if len(ranked) == 1:
            marks.loc[lead, m.key] = True
            continue
        runner = ranked.index[1]
        if ranked.iloc[0] == ranked.iloc[1] or unc is None:
            continue
        iv = unc.difference(board.at[lead, "setting"], board.at[runner, "setting"], m.key)
        if present(iv.mean) and math.isfinite(iv.mean) and (iv.lo > 0 if m.direction > 0 else iv.hi < 0):
            marks.loc[lead, m.key] = True
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
    """'[lo, hi]' of the interval (asymmetric where the metric's range clips it), or '' when it is not defined
    or has no width (one seed of a scalar metric)."""
    if not (present(lo) and present(hi) and present(mean)) or float(hi) - float(lo) <= 0:
        return ""
    return f"[{format_number(lo, fmt)}, {format_number(hi, fmt)}]"


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
                     "primary": bool(row["selected"] or not has_selection[i]), "cells": cells,
                     "stop_reason": str(row["stop_reason"]) if present(row.get("stop_reason")) else ""})
    return view


# the meter's components in the order a reader follows a run: policy passes, reference, reward model, value model,
# generation (bench/budget.py); any other component follows alphabetically
COMPONENT_ORDER = ("policy", "reference", "reward_model_training", "reward_model", "value_model", "generation")


def flop_components(metrics: dict[str, dict]) -> list[str]:
    """Every component any run's meter charged (metrics.json `compute.flops_by_component`), in COMPONENT_ORDER."""
    seen = {k for m in metrics.values() for k in ((m.get("compute") or {}).get("flops_by_component") or {})}
    return [c for c in COMPONENT_ORDER if c in seen] + sorted(seen - set(COMPONENT_ORDER))


def runs_table(frame: pd.DataFrame, metrics: dict[str, dict], order: list[str] | None = None) -> pd.DataFrame:
    """One row per run in report order: run_id, setting, seed, status, steps, epochs, stop_reason, budget_fraction,
    flops, wall_s, and `flops_<component>` for each component of the FLOP meter (from each run's metrics.json)."""
    components = flop_components(metrics)
    cols = ["run_id", "setting", "seed", "status", "steps", "epochs", "stop_reason", "budget_fraction", "flops",
            *(f"flops_{c}" for c in components), "flops_amortised", "wall_s"]
    if not len(frame):
        return pd.DataFrame(columns=cols)
    runs = sorted_runs(frame, order)
    runs["status"] = runs["status"].map(lambda s: s if present(s) else "incomplete")
    for c in components:
        runs[f"flops_{c}"] = [(((metrics.get(r) or {}).get("compute") or {}).get("flops_by_component") or {})
                              .get(c, np.nan) for r in runs["run_id"]]
    return runs[cols].reset_index(drop=True)
