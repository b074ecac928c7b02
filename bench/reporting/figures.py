"""The report's charts (matplotlib, object API: no pyplot, no global backend, safe headless and in threads).

Each public function takes the loaded results and returns an SVG data URI (`data:image/svg+xml;base64,...`),
or None when the data for that chart is absent. SVG keeps charts sharp in print; text is drawn as paths, so no
font is needed by the reader; a fixed hash salt and no date make the bytes reproducible.

Conventions shared by every chart: one colour and marker per label (Okabe–Ito palette, colour-blind safe;
markers and line styles keep labels apart in greyscale print), training compute in FLOPs with a readable unit,
log-probabilities and KL in nats, and bands / error bars showing the spread (min–max) over seeds.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.reporting.tables import REFERENCE_ALGORITHMS, present

# Okabe & Ito (2008) without black (kept for sft); their yellow (#F0E442) vanishes on white paper, so the seventh
# colour is Paul Tol's olive (#999933), also colour-blind safe.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#999933")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")
LINESTYLES = ("-", "--", "-.", ":")
REFERENCE_STYLE = {"sft": ("#000000", "x"), "best_of_n": ("#777777", "*")}
RC = {
    "svg.hashsalt": "daa-bench-report", "svg.fonttype": "path", "font.family": "DejaVu Sans",
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#dddddd", "grid.linewidth": 0.6, "legend.frameon": False, "figure.dpi": 100,
}
MIN_ESS_FRACTION = 0.1  # below this, the importance-sampling estimate of π* is drawn as unreliable


@dataclass(frozen=True)
class Style:
    color: str
    marker: str
    linestyle: str


def styles(labels: list[str], algorithms: dict[str, str]) -> dict[str, Style]:
    """A fixed style per label, in label order: references in black/grey, trained labels through the palette."""
    out, i = {}, 0
    for label in labels:
        algo = algorithms.get(label, label)
        if algo in REFERENCE_STYLE:
            color, marker = REFERENCE_STYLE[algo]
            out[label] = Style(color, marker, ":")
            continue
        out[label] = Style(OKABE_ITO[i % len(OKABE_ITO)], MARKERS[i % len(MARKERS)],
                           LINESTYLES[(i // len(OKABE_ITO)) % len(LINESTYLES)])
        i += 1
    return out


def _text(value) -> str:
    """User text (labels, parameter values) for matplotlib: '$' would start mathtext."""
    return str(value).replace("$", r"\$")


def _uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _render(build, *args) -> str | None:
    with mpl.rc_context(RC):
        fig = build(*args)
        return None if fig is None else _uri(fig)


def flops_unit(max_flops: float) -> tuple[float, str]:
    for scale, name in ((1e18, "EFLOPs"), (1e15, "PFLOPs"), (1e12, "TFLOPs"), (1e9, "GFLOPs"), (1e6, "MFLOPs")):
        if max_flops >= scale:
            return scale, name
    return 1.0, "FLOPs"


def _g(value, _pos=None) -> str:
    return f"{value:g}"


def _numbers(series) -> np.ndarray:
    return pd.to_numeric(pd.Series(series), errors="coerce").to_numpy(dtype=float)


def _spread(values: np.ndarray) -> tuple[float, float, float] | None:
    values = values[np.isfinite(values)]
    if not values.size:
        return None
    return float(values.mean()), float(values.min()), float(values.max())


def _bars(mean: float, lo: float, hi: float) -> np.ndarray:
    """Error-bar lengths [[below], [above]], never negative (float rounding can put the mean outside min–max)."""
    return np.array([[max(0.0, mean - lo)], [max(0.0, hi - mean)]])


def over_seeds(curves: pd.DataFrame, run_ids: list[str], column: str) -> tuple[np.ndarray, ...] | None:
    """Held-out curve of `column` for a setting: (flops, mean, min, max, n_seeds), aligned by evaluation point.

    Every run evaluates at the same budget fractions, so the k-th point of each seed is the same moment of
    training; x is the mean FLOPs of that point. Seeds that stopped early simply contribute fewer points.
    """
    if not len(curves) or column not in curves.columns:
        return None
    series = []
    for run_id in run_ids:
        c = curves[curves["run_id"] == run_id]
        if "split" in c.columns:
            c = c[c["split"] == "heldout"]
        x, y = _numbers(c["flops"]), _numbers(c[column])
        keep = np.isfinite(x) & np.isfinite(y)
        if keep.any():
            order = np.argsort(x[keep], kind="stable")
            series.append((x[keep][order], y[keep][order]))
    if not series:
        return None
    n = max(len(s[0]) for s in series)
    xs, ys = np.full((len(series), n), np.nan), np.full((len(series), n), np.nan)
    for i, (x, y) in enumerate(series):
        xs[i, : len(x)], ys[i, : len(y)] = x, y
    return (np.nanmean(xs, axis=0), np.nanmean(ys, axis=0), np.nanmin(ys, axis=0), np.nanmax(ys, axis=0),
            len(series))


def shown_settings(board: pd.DataFrame, runs: pd.DataFrame, curves: pd.DataFrame) -> dict[str, str]:
    """Per label, the setting drawn in curve charts: the runner's selected one, else the first with curves."""
    with_curves = set(curves["run_id"]) if len(curves) else set()
    out = {}
    for label, rows in board.groupby("label", sort=False):
        candidates = [s for s in rows["setting"]
                      if with_curves & set(runs.loc[(runs["setting"] == s) & (runs["status"] == "finished"),
                                                    "run_id"])]
        if not candidates:
            continue
        selected = [s for s in rows.loc[rows["selected"], "setting"] if s in candidates]
        out[label] = (selected or candidates)[0]
    return out


def _finished_ids(runs: pd.DataFrame, setting: str) -> list[str]:
    return list(runs.loc[(runs["setting"] == setting) & (runs["status"] == "finished"), "run_id"])


# --------------------------------------------------------------------------- reward–KL frontier

def frontier(board: pd.DataFrame, runs: pd.DataFrame, limits: dict, style: dict[str, Style],
             reward_name: str) -> str | None:
    return _render(_frontier, board, runs, limits, style, reward_name)


def _frontier(board, runs, limits, style, reward_name):
    done = runs[runs["status"] == "finished"]
    if not len(done) or not (np.isfinite(_numbers(done["kl"])) & np.isfinite(_numbers(done["gold_reward"]))).any():
        return None
    fig = Figure(figsize=(9.4, 5.6), layout="constrained")
    ax = fig.add_subplot()
    limit_kl = [0.0]
    bon = sorted(limits.get("best_of_n") or [], key=lambda r: r.get("kl", 0))
    if bon:
        x, y = _numbers([r.get("kl") for r in bon]), _numbers([r.get("gold_reward") for r in bon])
        ax.plot(x, y, color="#888888", lw=1.4, marker=".", ms=5, zorder=1,
                label="best-of-n of π_ref (KL = log n − (n−1)/n)")
        for r, xi, yi in zip(bon, x, y):
            ax.annotate(f"n={r.get('n')}", (xi, yi), textcoords="offset points", xytext=(3, -9),
                        fontsize=6.5, color="#666666")
        limit_kl += list(x[np.isfinite(x)])
    opt = sorted(limits.get("kl_optimal") or [], key=lambda r: r.get("kl", 0))
    if opt:
        x, y = _numbers([r.get("kl") for r in opt]), _numbers([r.get("gold_reward") for r in opt])
        ess = _numbers([r.get("ess_fraction", 1.0) for r in opt])
        ax.plot(x, y, color="#000000", lw=1.2, ls="--", zorder=1,
                label="KL-optimal π* ∝ π_ref·exp(r*/β) (importance-sampling estimate)")
        weak = ess < MIN_ESS_FRACTION
        if weak.any():
            ax.scatter(x[weak], y[weak], facecolors="white", edgecolors="#000000", s=16, zorder=2,
                       label=f"π* estimate unreliable (ESS < {MIN_ESS_FRACTION:.0%} of samples)")
        limit_kl += list(x[np.isfinite(x)])
    if present(limits.get("reference_gold_reward")):
        ax.axhline(float(limits["reference_gold_reward"]), color="#aaaaaa", lw=1, ls=":", zorder=0,
                   label="π_ref mean reward")
    handles = []
    for label, rows in board.groupby("label", sort=False):
        st, drawn = style[label], False
        # A grid with a selected setting: that one in full, the others as hollow markers (position only)
        highlight = set(rows.loc[rows["selected"], "setting"]) or set(rows["setting"])
        for _, row in rows.iterrows():
            sel = done[done["setting"] == row["setting"]]
            kl, rew = _numbers(sel["kl"]), _numbers(sel["gold_reward"])
            ok = np.isfinite(kl) & np.isfinite(rew)
            if not ok.any():
                continue
            kl, rew = kl[ok], rew[ok]
            mk, mr = kl.mean(), rew.mean()
            drawn = True
            if row["setting"] not in highlight:
                ax.plot(mk, mr, ls="none", marker=st.marker, mfc="white", mec=st.color, ms=5.5, zorder=3)
                continue
            if len(kl) > 1:
                ax.scatter(kl, rew, color=st.color, marker=st.marker, s=10, alpha=0.35, lw=0, zorder=3)
            ax.errorbar(mk, mr, xerr=_bars(mk, kl.min(), kl.max()), yerr=_bars(mr, rew.min(), rew.max()),
                        fmt=st.marker, color=st.color, ms=7, capsize=2, elinewidth=1, zorder=4)
            ax.annotate(_text(label), (mk, mr), textcoords="offset points", xytext=(6, 4), fontsize=7.5,
                        color=st.color)
        if drawn:
            handles.append(Line2D([], [], ls="none", marker=st.marker, color=st.color, ms=7, label=_text(label)))
    kls = _numbers(done["kl"])
    kls = kls[np.isfinite(kls)]
    top = max([*kls, *limit_kl, 1.0])
    if top > 20 and top > 3 * max(limit_kl + [1.0]):
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.6)
        ax.xaxis.set_major_formatter(FuncFormatter(_g))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("KL(π‖π_ref) per prompt [nats]  (symmetric-log scale: linear below 1)")
    else:
        ax.set_xlabel("KL(π‖π_ref) per prompt [nats]")
    ax.set_ylabel(f"{reward_name} of policy samples")
    limit_handles, _ = ax.get_legend_handles_labels()
    if limit_handles:
        fig.legend(handles=limit_handles, loc="outside lower left", ncols=2)
    fig.legend(handles=handles, loc="outside right upper")
    return fig


# --------------------------------------------------------------------------- curves against compute

def _flops_scale(curves: pd.DataFrame, run_ids: list[str]) -> tuple[float, str]:
    sub = curves[curves["run_id"].isin(run_ids)] if len(curves) else curves
    top = np.nanmax(_numbers(sub["flops"])) if len(sub) and np.isfinite(_numbers(sub["flops"])).any() else 1.0
    return flops_unit(float(top))


def displacement(board: pd.DataFrame, runs: pd.DataFrame, curves: pd.DataFrame) -> str | None:
    return _render(_displacement, board, runs, curves)


DRIFT = (("chosen_logp_delta", "#0072B2", "-", "Δ log π(y_c|x), chosen"),
         ("rejected_logp_delta", "#D55E00", "-", "Δ log π(y_r|x), rejected"),
         ("margin_delta", "#000000", "--", "Δ margin (chosen − rejected)"))


def _displacement(board, runs, curves):
    panels = []
    references = set(board.loc[board["algorithm"].isin(REFERENCE_ALGORITHMS), "label"])
    for label, setting in shown_settings(board, runs, curves).items():
        if label in references:
            continue
        ids = _finished_ids(runs, setting)
        drawn = [over_seeds(curves, ids, col) for col, *_ in DRIFT]
        if drawn[0] is not None and len(drawn[0][0]) > 1:
            panels.append((setting, drawn))
    if not panels:
        return None
    all_ids = [r for s, _ in panels for r in _finished_ids(runs, s)]
    scale, unit = _flops_scale(curves, all_ids)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(2.9 * ncols + 0.6, 2.3 * nrows + 0.9), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False).ravel()
    for ax, (setting, drawn) in zip(axes, panels):
        ax.axhline(0, color="#999999", lw=0.8, zorder=0)
        for (col, color, ls, name), s in zip(DRIFT, drawn):
            if s is None:
                continue
            x, mean, lo, hi, n = s
            ax.plot(x / scale, mean, color=color, ls=ls, lw=1.5, label=name)
            if n > 1:
                ax.fill_between(x / scale, lo, hi, color=color, alpha=0.18, lw=0)
        ax.set_title(f"{_text(setting)} · {drawn[0][4]} seed{'s' if drawn[0][4] != 1 else ''}")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.supxlabel(f"training compute [{unit}]", fontsize=9)
    fig.supylabel("change of log π(y|x) on held-out pairs [nats]", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=3)
    return fig


def progress(board: pd.DataFrame, runs: pd.DataFrame, curves: pd.DataFrame, style: dict[str, Style]) -> str | None:
    return _render(_progress, board, runs, curves, style)


def _progress(board, runs, curves, style):
    shown = shown_settings(board, runs, curves)
    references = set(board.loc[board["algorithm"].isin(REFERENCE_ALGORITHMS), "label"])
    lines = {}
    for label, setting in shown.items():
        if label in references:  # training-free: drawn below as its final value
            continue
        ids = _finished_ids(runs, setting)
        wr, kl = over_seeds(curves, ids, "win_rate"), over_seeds(curves, ids, "kl")
        if wr is not None or kl is not None:
            lines[label] = (setting, wr, kl, ids)
    if not lines:
        return None
    scale, unit = _flops_scale(curves, [i for v in lines.values() for i in v[3]])
    fig = Figure(figsize=(9.4, 3.8), layout="constrained")
    ax_w, ax_k = fig.subplots(1, 2, sharex=True)
    ax_w.axhline(0.5, color="#aaaaaa", lw=1, ls=":", zorder=0)
    for label, (setting, wr, kl, _) in lines.items():
        st = style[label]
        for ax, s in ((ax_w, wr), (ax_k, kl)):
            if s is None:
                continue
            x, mean, lo, hi, n = s
            ax.plot(x / scale, mean, color=st.color, ls=st.linestyle if st.linestyle != ":" else "-", lw=1.5,
                    marker=st.marker, ms=3.5, label=_text(setting))
            if n > 1:
                ax.fill_between(x / scale, lo, hi, color=st.color, alpha=0.15, lw=0)
    # training-free references (no curve): their final value as a flat line for scale
    done = runs[runs["status"] == "finished"]
    for label, rows in board.groupby("label", sort=False):
        if label not in references:
            continue
        st = style[label]
        for ax, col in ((ax_w, "win_rate"), (ax_k, "kl")):
            s = _spread(_numbers(done.loc[done["label"] == label, col]))
            if s is not None:
                ax.axhline(s[0], color=st.color, lw=1.2, ls=":", label=f"{_text(label)} (training-free, final)")
    ax_w.set_ylabel("win rate vs π_ref samples")
    ax_k.set_ylabel("KL(π‖π_ref) per prompt [nats]")
    for ax in (ax_w, ax_k):
        ax.set_xlabel(f"training compute [{unit}]")
    handles, labels = ax_w.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper")
    return fig
