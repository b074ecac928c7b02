"""The report's Gao et al. (2022) table: the over-optimisation forms fitted per run and across a sweep.

Per trained setting, each coefficient of the RL form d(α − β log d) and the best-of-n form d(α − β d), d = √KL,
fitted to each seed's own curve through training (summary.csv's gao_* columns, bench/evaluation/gao.py), with its
mean over seeds and the seed-only t interval (a fit is one number per seed); and, for a label swept over 3 or more
values of one hyper-parameter (a β sweep), the forms fitted across its settings' final points, as Gao et al. read RL
runs at several KL penalties. Split from bench/reporting/tables.py (issue 23: one idea per module).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.reporting.tables import REFERENCE_ALGORITHMS, _numeric, board_params

GAO_PARTS = ("alpha", "beta", "peak_sqrt_kl", "r2")
_GAO_BOUNDS = {"r2": (-np.inf, 1.0), "peak_sqrt_kl": (0.0, np.inf)}  # R² <= 1; a peak's √KL >= 0


def gao_fits(runs: pd.DataFrame, board: pd.DataFrame, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per trained setting, Gao et al. (2022)'s two forms fitted to each seed's own curve through training
    (summary.csv's gao_* columns, bench/evaluation/gao.py): each coefficient's mean over the finished seeds with
    the seed-only t interval (a fit is one number per seed), and how many seeds each form fitted better."""
    cols = ["setting", "seeds", "better_rl", "better_bon"] + [
        f"{form}_{part}{s}" for form in ("rl", "bon") for part in GAO_PARTS for s in ("", "_lo", "_hi")]
    if not len(runs) or "gao_rl_alpha" not in runs.columns:
        return pd.DataFrame(columns=cols)
    rows = []
    for setting in board.loc[~board["algorithm"].isin(REFERENCE_ALGORITHMS), "setting"]:
        sub = runs[(runs["setting"] == setting) & (runs["status"] == "finished")]
        alpha = _numeric(sub["gao_rl_alpha"]) if len(sub) else np.array([])
        if not np.isfinite(alpha).any():
            continue
        better = sub["gao_better"].astype(str) if "gao_better" in sub.columns else pd.Series(dtype=str)
        row: dict[str, Any] = {"setting": setting, "seeds": int(np.isfinite(alpha).sum()),
                               "better_rl": int((better == "rl").sum()), "better_bon": int((better == "bon").sum())}
        for form in ("rl", "bon"):
            for part in GAO_PARTS:
                row.update(_over_seeds(f"{form}_{part}", part, _numeric(sub[f"gao_{form}_{part}"])))
        rows.append(row)
    rows += _sweep_fits(runs, board, curves)
    return pd.DataFrame(rows, columns=cols)


def _over_seeds(column: str, part: str, values) -> dict[str, float]:
    """A Gao coefficient's mean over seeds with the t interval over seeds, inside its range (`_GAO_BOUNDS`)."""
    from bench.evaluation.crossed import crossed_ci

    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    bounds = _GAO_BOUNDS.get(part, (-np.inf, np.inf))
    mean, lo, hi = crossed_ci(v[:, None], bounds=bounds) if v.size else (np.nan,) * 3
    return {column: mean, f"{column}_lo": lo, f"{column}_hi": hi}


def _sweep_fits(runs: pd.DataFrame, board: pd.DataFrame, curves: pd.DataFrame | None) -> list[dict[str, Any]]:
    """Across a swept label's settings (a β sweep: each setting one point, its final tokenwise KL and gold gain over
    π_ref), Gao et al.'s forms fitted per seed — the curve a sweep traces, as Gao et al. read RL runs at several KL
    penalties — with the t interval over seeds. Only for labels with 3 or more settings."""
    from bench.evaluation.gao import FORMS, better_form, fit_form

    if curves is None or not len(curves) or "reference_gold_reward" not in curves.columns or \
            "kl_tokenwise" not in runs.columns:
        return []
    held = curves[curves["split"] == "heldout"] if "split" in curves.columns else curves
    reference = pd.to_numeric(held.groupby("run_id")["reference_gold_reward"].first(), errors="coerce")
    out = []
    trained = board[~board["algorithm"].isin(REFERENCE_ALGORITHMS)]
    from bench.columns import AXIS_COLUMNS

    hyper = [p for p in board_params(board) if p not in AXIS_COLUMNS]  # a β sweep, not budgets, views or worlds
    for label, settings in trained.groupby("label", sort=False):
        if len(settings) < 3 or not any(settings[p].astype(str).nunique() >= 3 for p in hyper):
            continue
        done = runs[runs["setting"].isin(settings["setting"]) & (runs["status"] == "finished")]
        fits: dict[str, list] = {form: [] for form in FORMS}
        for _, seed_runs in done.groupby("seed"):
            kl = _numeric(seed_runs["kl_tokenwise"])
            gain = _numeric(seed_runs["gold_reward"]) - reference.reindex(seed_runs["run_id"]).to_numpy(dtype=float)
            if np.isfinite(kl + gain).sum() < 3:
                continue
            for form in FORMS:
                fits[form].append(fit_form(kl, gain, form))
        n = len(fits["rl"])
        if n == 0:
            continue
        better = [better_form({"bon": b, "rl": r}) for b, r in zip(fits["bon"], fits["rl"])]
        row: dict[str, Any] = {"setting": f"{label} (across its {len(settings)} settings)", "seeds": n,
                               "better_rl": better.count("rl"), "better_bon": better.count("bon")}
        for form in FORMS:
            for part, attr in zip(GAO_PARTS, ("alpha", "beta", "peak_d", "r2")):
                row.update(_over_seeds(f"{form}_{part}", part, [getattr(f, attr) for f in fits[form]]))
        out.append(row)
    return out
