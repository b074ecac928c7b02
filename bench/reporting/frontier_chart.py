"""The reward–KL frontier chart: gold (or proxy) reward against tokenwise KL to π_ref, per trained setting.

Each checkpoint carries its interval in KL and in reward (the seed-mean curve: `over_seeds` in
bench/reporting/figures.py), each final point the leaderboard's 95% interval over seeds × prompts × draws. The limits are drawn only where they
are valid (best-of-n for n ≤ m, π* where the importance weights' ESS is ≥ 10% of m: bench/evaluation/frontier.py)
with their interval over prompts, "no limit estimate" shading beyond their reach, and each selected setting's
frontier efficiency (its gain over π_ref as a share of best-of-n's at its KL) in its label. A checkpoint mean
beyond twice the largest final KL (a transient excursion out of the language) is named off the frame rather than
stretching it. Split from figures.py (issue 23: one idea per module); it shares that module's style and helpers.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.evaluation.crossed import crossed_ci
from bench.evaluation.frontier import MIN_ESS_FRACTION, limit_reach, valid_optimum
from bench.reporting.figures import Style, _bars, _finished_ids, _g, _numbers, _render, _text, over_seeds
from bench.reporting.tables import REFERENCE_ALGORITHMS, present


def frontier(board: pd.DataFrame, runs: pd.DataFrame, limits: dict, style: dict[str, Style],
             reward_name: str, curves: pd.DataFrame | None = None) -> str | None:
    return _render(_frontier, board, runs, limits, style, reward_name,
                   curves if curves is not None else pd.DataFrame())


def _valid_limits(limits: dict) -> tuple[list, list, float]:
    """(best-of-n rows, π* rows with ESS ≥ MIN_ESS_FRACTION of m, the largest KL either validly reaches)."""
    bon = sorted(limits.get("best_of_n") or [], key=lambda r: r.get("kl", 0))
    opt = valid_optimum(limits.get("kl_optimal") or [])
    return bon, opt, (limit_reach(limits) if limits else 0.0)


SETTING_COLUMNS = ("kl_tokenwise", "frontier_efficiency", "frontier_efficiency_bon")


def _with_setting_columns(row: pd.Series, runs: pd.DataFrame) -> pd.Series:
    """The board row plus the setting's tokenwise KL and frontier efficiencies from summary.csv (mean over its
    finished seeds; `_lo/_hi` are the setting's interval, the same on every seed's row; where the frame has none,
    the one model's t over the seed values)."""
    sub = runs[(runs["setting"] == row["setting"]) & (runs["status"] == "finished")]
    extra = {}
    for col in SETTING_COLUMNS:
        if col in sub.columns and len(sub):
            v = _numbers(sub[col])
            if np.isfinite(v).all():
                extra[col] = float(v.mean())
                lo = _numbers(sub[f"{col}_lo"])[0] if f"{col}_lo" in sub.columns else math.nan
                hi = _numbers(sub[f"{col}_hi"])[0] if f"{col}_hi" in sub.columns else math.nan
                if not (math.isfinite(lo) and math.isfinite(hi)) and v.size > 1:
                    _, lo, hi = crossed_ci(v[:, None])  # summary.csv without setting intervals: t over seeds
                extra[f"{col}_lo"], extra[f"{col}_hi"] = lo, hi
    return pd.concat([row, pd.Series(extra, dtype=object)]) if extra else row


def _clip_to_means(axes, means_y: dict[int, list[float]], limits: dict, kl_max: float, reach: float) -> None:
    """Fit each row's y axis to the drawn means and limits (plus a margin), the x axes to the KL the means and the
    limits reach: an interval that runs past the axes (one seed that left the language: the t interval over 3 seeds
    is then ±5 nats wide) is cut at the edge instead of flattening every curve."""
    lim_y = [float(r["gold_reward"]) for r in (limits.get("best_of_n") or []) + (limits.get("kl_optimal") or [])
             if finite_number(r.get("gold_reward"))] if limits else []
    for r in (0, 1):
        ys = [v for v in means_y[r] + (lim_y if r == 0 else [0.5]) if math.isfinite(v)]
        if len(ys) < 2:
            continue
        lo, hi = min(ys), max(ys)
        pad = 0.2 * (hi - lo) if hi > lo else 0.5
        for c in (0, 1):
            axes[r, c].set_ylim(lo - pad, hi + pad)
    for c, transform in enumerate((lambda v: v, np.sqrt)):
        right = transform(kl_max * 1.25)  # the runs, not the limits, set the range (limits may reach far beyond)
        for r in (0, 1):
            if axes[r, c].get_xlim()[1] > right:
                axes[r, c].set_xlim(right=right)


def _efficiency_note(row) -> str:
    """' · 31% of π*' (or of best-of-n where π* has no valid estimate at that KL), from the frontier efficiency."""
    for col, name in (("frontier_efficiency", "π*"), ("frontier_efficiency_bon", "BoN")):
        v = row.get(col)
        if finite_number(v):
            lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
            span = f" [{float(lo):.0%}, {float(hi):.0%}]" if finite_number(lo) and finite_number(hi) else ""
            return f" · {float(v):.0%}{span} of {name}"
    return ""


def finite_number(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _trajectory(curves, runs, setting):
    """Per generation point of a setting's curves, over seeds: (kl, reward, win) as (mean, lo, hi) triples (or None).

    KL is the tokenwise (Rao–Blackwellised) estimate where the curves have it (k1 in older results). Intervals:
    with ≥ 2 seeds the one model's t over the seeds' values of that point (each seed's value already averages
    the checkpoint's prompts); with one seed the run's own interval over its prompts (`*_run_lo/_hi`)."""
    ids = _finished_ids(runs, setting)
    if not len(curves) or "gold_reward" not in curves.columns:
        return None
    sub = curves[curves["run_id"].isin(ids)]
    if "split" in sub.columns:
        sub = sub[sub["split"] == "heldout"]
    sub = sub[np.isfinite(_numbers(sub["gold_reward"]))]
    if not len(sub):
        return None
    kl_col = "kl_tokenwise" if "kl_tokenwise" in sub.columns and np.isfinite(_numbers(sub["kl_tokenwise"])).any() \
        else "kl"

    def series(column):
        if column not in sub.columns:
            return None
        out = over_seeds(sub, ids, column)
        if out is None:
            return None
        _, mean, lo, hi, n = out
        if n == 1 and f"{column}_run_lo" in sub.columns:
            lo, hi = _numbers(sub[f"{column}_run_lo"]), _numbers(sub[f"{column}_run_hi"])
            lo, hi = (lo, hi) if len(lo) == len(mean) else (mean, mean)
        return mean, lo, hi

    kl, rew, win = series(kl_col), series("gold_reward"), series("win_rate")
    if kl is None or rew is None:
        return None
    return kl, rew, win


def _frontier(board, runs, limits, style, reward_name, curves):
    done = runs[runs["status"] == "finished"]
    if not len(done) or not (np.isfinite(_numbers(done["kl"])) & np.isfinite(_numbers(done["gold_reward"]))).any():
        return None
    fig = Figure(figsize=(10.4, 7.6), layout="constrained")
    axes = fig.subplots(2, 2, sharey="row")
    bon, opt, reach = _valid_limits(limits)
    top_kl = [1.0]   # final points' KL
    kcols = [k for k in ("kl_tokenwise", "kl") if k in runs.columns]
    final_cap = max([1.0] + [float(v) for v in _numbers(done[kcols[0]]) if np.isfinite(v)]) if kcols else 1.0
    curve_kl: list[float] = []  # checkpoints' KL
    means_y: dict[int, list[float]] = {0: [], 1: []}  # per row: every drawn mean (the axes are fitted to them)
    handles = []
    cells = [(r, c) for r in (0, 1) for c in (0, 1)]
    labels_at: dict = {k: [] for k in cells}   # (x, y, text, colour) of each selected setting's final point
    extent: dict = {k: [] for k in cells}      # the trained runs' points (final and through training): the frame
    ref_points: dict = {k: [] for k in cells}  # training-free references: in the frame only if they fall inside
    n_trained_labels = board.loc[~board["algorithm"].isin(REFERENCE_ALGORITHMS), "label"].nunique()
    for label, rows in board.groupby("label", sort=False):
        st = style[label]
        reference = rows["algorithm"].iloc[0] in REFERENCE_ALGORITHMS
        # a one-algorithm sweep (suites/controlled-dpo-beta.toml) is read across its settings — the frontier a β
        # traces — so each is drawn in full and named; beside other algorithms only the selected setting is
        one_label_sweep = n_trained_labels == 1 and len(rows) > 1 and not reference
        highlight = set(rows["setting"]) if one_label_sweep else \
            set(rows.loc[rows["selected"], "setting"]) or set(rows["setting"])
        drawn = False
        for _, row in rows.iterrows():
            if not (finite_number(row["kl"]) and finite_number(row["gold_reward"])):
                continue
            drawn = True
            full = row["setting"] in highlight
            final = {"gold_reward": row["gold_reward"], "win_rate": row["win_rate"]}
            traj = None if reference else _trajectory(curves, runs, row["setting"])
            row = _with_setting_columns(row, runs)
            kcol = "kl_tokenwise" if finite_number(row.get("kl_tokenwise")) and not reference else "kl"
            kx = float(max(row[kcol], 0.0))
            top_kl.append(kx)
            for r, metric in enumerate(("gold_reward", "win_rate")):
                for c, transform in enumerate((lambda v: v, np.sqrt)):
                    ax = axes[r, c]
                    if traj is not None:
                        (tk, tk_lo, tk_hi), tr, tw = traj
                        ty3 = tr if metric == "gold_reward" else tw
                        if ty3 is not None:
                            ty, ty_lo, ty_hi = ty3
                            ok = np.isfinite(tk) & np.isfinite(ty)
                            xs = transform(np.maximum(tk[ok], 0.0))
                            means_y[r].extend(float(v) for v in ty[ok])
                            ax.plot(xs, ty[ok], color=st.color, ls="-" if full else ":", lw=1.3 if full else 0.8,
                                    marker=st.marker, ms=2.5 if full else 1.5, alpha=0.9 if full else 0.5, zorder=3)
                            if full:  # every checkpoint's 95% interval, in KL and in reward
                                band = ok & np.isfinite(ty_lo) & np.isfinite(ty_hi) & np.isfinite(tk_lo) & \
                                    np.isfinite(tk_hi)
                                # a checkpoint whose KL interval runs far past every final point (one seed off
                                # the language mid-training) says only "unknown": its bars would cross the frame
                                band &= tk_hi <= EXCURSION * final_cap
                                for j in np.flatnonzero(band):
                                    x0 = transform(max(float(tk[j]), 0.0))
                                    ax.plot([x0, x0], [ty_lo[j], ty_hi[j]], color=st.color, lw=0.7, alpha=0.45,
                                            zorder=2)
                                    ax.plot([transform(max(float(tk_lo[j]), 0.0)), transform(max(float(tk_hi[j]),
                                             0.0))], [ty[j], ty[j]], color=st.color, lw=0.7, alpha=0.45, zorder=2)
                            curve_kl.extend(list(np.maximum(tk[ok], 0.0)))
                            if full:
                                extent[(r, c)].extend((x, y, "curve", _text(label)) for x, y in zip(xs, ty[ok]))
                            if full and ok.sum() > 2:  # the peak, marked where it is not the last point: a hump
                                j = int(np.nanargmax(ty[ok]))
                                if j < ok.sum() - 1 and ty[ok][j] > ty[ok][-1]:
                                    ax.scatter(xs[j], ty[ok][j], marker="*", s=90, color=st.color,
                                               edgecolors="#000000", linewidths=0.6, zorder=6)
                    y = final[metric]
                    if not finite_number(y):
                        continue
                    lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
                    klo, khi = row.get(f"{kcol}_lo"), row.get(f"{kcol}_hi")
                    yerr = _bars(float(y), float(lo), float(hi)) if finite_number(lo) and finite_number(hi) else None
                    xerr = None
                    if finite_number(klo) and finite_number(khi):
                        xerr = _bars(transform(kx), transform(max(float(klo), 0.0)), transform(max(float(khi), 0.0)))
                    means_y[r].append(float(y))
                    ax.errorbar(transform(kx), y, xerr=xerr, yerr=yerr, fmt=st.marker, color=st.color,
                                ms=7 if full else 5, mfc=st.color if full else "white", capsize=2, elinewidth=1,
                                zorder=5)
                    if full:
                        note = _efficiency_note(row) if metric == "gold_reward" else ""
                        name = _text(row["setting"]) if one_label_sweep else _text(label)
                        labels_at[(r, c)].append((transform(kx), float(y), name + note, st.color))
                        if not reference or rows["algorithm"].iloc[0] == "sft":  # π_ref itself: the origin
                            extent[(r, c)].append((transform(kx), float(y), "final", _text(label)))
                        else:
                            ref_points[(r, c)].append((transform(kx), float(y), _text(label)))
        if drawn:
            handles.append(Line2D([], [], marker=st.marker, color=st.color, ms=6, label=_text(label)))
    # a checkpoint mean far beyond every final point is an excursion (a seed that left the language mid-training
    # and came back: cDPO seed 0 of the default suite at KL 50): named off the frame, not allowed to squeeze it
    kl_max = max(top_kl + [k for k in curve_kl if k <= EXCURSION * max(top_kl)])
    _clip_to_means(axes, means_y, limits, kl_max, reach)
    for c, transform in enumerate((lambda v: v, np.sqrt)):
        ax = axes[0, c]
        for rows_, colour, ls in ((bon, "#888888", "-"), (opt, "#000000", "--")):
            if not rows_:
                continue
            x, y = _numbers([r.get("kl") for r in rows_]), _numbers([r.get("gold_reward") for r in rows_])
            ax.plot(transform(x), y, color=colour, lw=1.4 if ls == "-" else 1.2, ls=ls,
                    marker="." if ls == "-" else None, ms=5, zorder=1)
            lo, hi = _numbers([r.get("gold_lo") for r in rows_]), _numbers([r.get("gold_hi") for r in rows_])
            if np.isfinite(lo).all() and np.isfinite(hi).all():  # 95% interval over the limit's prompts
                ax.fill_between(transform(x), lo, hi, color=colour, alpha=0.12, lw=0, zorder=0)
        if present(limits.get("reference_gold_reward")):
            ax.axhline(float(limits["reference_gold_reward"]), color="#aaaaaa", lw=1, ls=":", zorder=0)
        for r in (0, 1):
            a = axes[r, c]
            if limits and reach < kl_max:  # where the limit estimates stop being valid: say so, draw nothing
                right = max(a.get_xlim()[1], transform(kl_max * 1.05))  # to the axis' edge (error bars reach it)
                a.axvspan(transform(reach), right, color="#f2f2f2", zorder=0, lw=0)
                a.set_xlim(right=right)
                if r == 0:
                    a.text(transform(reach), 0.98, " no limit estimate →", transform=a.get_xaxis_transform(),
                           ha="left", va="top", fontsize=7, color="#555555", clip_on=True)  # hidden off the frame
        axes[1, c].axhline(0.5, color="#aaaaaa", lw=1, ls=":", zorder=0)
    axes[0, 0].set_ylabel(f"{reward_name} of policy samples")
    axes[1, 0].set_ylabel("win rate vs π_ref samples")
    axes[1, 0].set_xlabel("KL(π‖π_ref) per prompt [nats]")
    axes[1, 1].set_xlabel("√KL [√nats]  (Gao et al. 2022: reward is hump-shaped in √KL)")
    if kl_max > 20:
        for r in (0, 1):
            axes[r, 0].set_xscale("symlog", linthresh=1.0, linscale=0.6)
            axes[r, 0].xaxis.set_major_formatter(FuncFormatter(_g))
            axes[r, 0].xaxis.set_minor_formatter(NullFormatter())
        axes[1, 0].set_xlabel("KL(π‖π_ref) per prompt [nats]  (symmetric-log scale: linear below 1)")
    limit_handles = [Line2D([], [], color="#888888", marker=".", label="best-of-n of π_ref (KL = log n − (n−1)/n)"),
                     Line2D([], [], color="#000000", ls="--", label="KL-optimal π* (importance sampling; drawn "
                            f"only where ESS ≥ {MIN_ESS_FRACTION:.0%} of the samples)"),
                     Line2D([], [], ls="none", marker="|", color="#777777", ms=7,
                            label="95% intervals: checkpoints over seeds, limits over prompts (bands)"),
                     Line2D([], [], ls="none", marker="*", color="#555555", mec="#000000", ms=9,
                            label="peak of a curve through training (above its final point: a hump)"),
                     Patch(color="#f2f2f2", label=f"beyond KL ≈ {reach:.2g}: no limit estimate from the "
                           f"{limits.get('samples_per_prompt', '?')} π_ref samples per prompt"),
                     Line2D([], [], ls="none", label="label: x% = gold gain over π_ref as a share of π*'s "
                            "(BoN: best-of-n's) at the same KL")] if limits else []
    _fit_and_label(fig, axes, extent, labels_at, ref_points, kl_max)
    if limit_handles:
        fig.legend(handles=limit_handles, loc="outside lower left", ncols=2)
    fig.legend(handles=handles, loc="outside right upper")
    return fig


LABEL_GAP_PT = 9.0  # vertical room of one 7-pt label
EXCURSION = 2.0  # a checkpoint mean beyond this multiple of the largest final KL is named off the frame


def _fit_and_label(fig, axes, extent, labels_at, ref_points, kl_max) -> None:
    """Frame each panel on the trained runs (their final points and their curves, with a margin), so the runs are
    not squeezed into a corner by limits that reach far beyond them: the limits stay as context inside the frame.
    References outside the frame are named in a corner note. Labels are spread vertically so no two overlap
    (greedy: sorted by y, each at least LABEL_GAP_PT below the one above, in the panel's point space), with a thin
    leader line where a label moved away from its point."""
    width_in, height_in = fig.get_size_inches()
    panel_h_pt = height_in * 72 * 0.36  # two rows of panels and the legends: about a third of the figure each
    for (r, c), every in extent.items():
        ax = axes[r, c]
        every = [p for p in every if np.isfinite(p[0]) and np.isfinite(p[1])]
        finals = [p[0] for p in every if p[2] == "final"]
        cap = (EXCURSION if c == 0 else math.sqrt(EXCURSION)) * max(finals + [1.0])
        pts = [(x, y) for x, y, kind, _ in every if kind == "final" or x <= cap]
        excursions: dict[str, tuple[float, float]] = {}
        for x, y, kind, name in every:
            if kind == "curve" and x > cap and x > excursions.get(name, (-1.0, 0.0))[0]:
                excursions[name] = (x, y)
        if len(pts) >= 2 and kl_max > 0:
            xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
            x_hi = float(xs.max()) * 1.18 + 0.02
            y_lo, y_hi = float(ys.min()), float(ys.max())
            pad = max(0.08 * (y_hi - y_lo), 0.02)
            ax.set_xlim(0.0, x_hi)  # KL >= 0 on either scale (symlog's own limits reached below 0)
            ax.set_ylim(y_lo - pad, y_hi + 2.5 * pad)
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        outside = [f"{t} ({x:.3g}, {y:.3g})" for x, y, t in ref_points[(r, c)] if not (x0 <= x <= x1 and y0 <= y <= y1)]
        outside += [f"{t} mid-training ({x:.3g}, {y:.3g})" for t, (x, y) in excursions.items()]
        if outside:  # wrapped to the panel, kept out of the layout engine (a long line would shrink the axes)
            note = ax.text(0.99, 0.01, textwrap.fill("off the frame (x, y): " + "; ".join(outside), 62),
                           transform=ax.transAxes, ha="right", va="bottom", fontsize=6.5, color="#555555",
                           bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8}, zorder=9)
            note.set_in_layout(False)
        shown = sorted(((x, y, t, col) for x, y, t, col in labels_at[(r, c)] if x0 <= x <= x1 and y0 <= y <= y1),
                       key=lambda p: -p[1])
        span = (y1 - y0) or 1.0
        placed: list[float] = []  # label heights in points from the panel's bottom
        for x, y, text, colour in shown:
            want = (y - y0) / span * panel_h_pt
            at = min([want] + [placed[-1] - LABEL_GAP_PT] if placed else [want])
            placed.append(at)
            moved = abs(at - want) > 1.0
            ax.annotate(text, (x, y), textcoords="offset points", xytext=(9, at - want + 3), fontsize=7, color=colour,
                        va="center", zorder=8, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                                                     "alpha": 0.8},
                        arrowprops={"arrowstyle": "-", "lw": 0.5, "color": colour} if moved else None)
