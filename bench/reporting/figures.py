"""The report's charts (matplotlib, object API: no pyplot, no global backend, safe headless and in threads).

Each public function takes the loaded results and returns an SVG data URI (`data:image/svg+xml;base64,...`),
or None when the data for that chart is absent. SVG keeps charts sharp in print; text is drawn as paths, so no
font is needed by the reader; a fixed hash salt and no date make the bytes reproducible.

Conventions shared by every chart: one colour and marker per label (Okabe–Ito palette, colour-blind safe;
markers and line styles keep labels apart in greyscale print), training compute in FLOPs with a readable unit,
log-probabilities and KL in nats. Uncertainty follows the one model (bench/evaluation/uncertainty.py): final
points carry the leaderboard's 95% interval over seeds and prompts; bands along curves are the 95% t
interval over seeds of each curve point (the curve's own prompts are shared by all seeds). The reward–KL
frontier chart, the largest, has its own module (bench/reporting/frontier_chart.py) built on these helpers.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.evaluation.crossed import crossed_ci
from bench.reporting.tables import REFERENCE_ALGORITHMS

# Okabe & Ito (2008) without black (kept for sft); their yellow (#F0E442) vanishes on white paper, so the seventh
# colour is Paul Tol's olive (#999933), also colour-blind safe.
OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#999933")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")
LINESTYLES = ("-", "--", "-.", ":")
REFERENCE_STYLE = {"sft": ("#000000", "x"), "best_of_n": ("#777777", "*"), "scripted": ("#aaaaaa", "+")}
RC = {
    "svg.hashsalt": "daa-bench-report", "svg.fonttype": "path", "font.family": "DejaVu Sans",
    "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9, "legend.fontsize": 8, "xtick.labelsize": 8,
    "ytick.labelsize": 8, "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.color": "#dddddd", "grid.linewidth": 0.6, "legend.frameon": False, "figure.dpi": 100,
}


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
    lo, hi = np.full(n, np.nan), np.full(n, np.nan)
    for j in range(n):  # the one uncertainty model, over seeds (a curve point is one number per seed)
        v = ys[:, j][np.isfinite(ys[:, j])]
        if v.size > 1:
            _, lo[j], hi[j] = crossed_ci(v[:, None])
        elif v.size == 1:
            lo[j] = hi[j] = v[0]
    return np.nanmean(xs, axis=0), np.nanmean(ys, axis=0), lo, hi, len(series)


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


def budget_chart(board: pd.DataFrame, runs: pd.DataFrame, style: dict[str, Style], reward_name: str) -> str | None:
    return _render(_budget_chart, board, runs, style, reward_name)


def _budget_of(board: pd.DataFrame, runs: pd.DataFrame) -> pd.Series:
    """Each board row's budget in FLOPs: the swept axis where there is one, else the runs' configured budget."""
    if "budget_flops" in board.columns:
        return pd.to_numeric(board["budget_flops"], errors="coerce")
    return pd.Series(np.nan, index=board.index)


def _budget_chart(board, runs, style, reward_name):
    if not len(board):
        return None
    budgets = _budget_of(board, runs)
    views = board["budget_view"] if "budget_view" in board.columns else pd.Series("end_to_end", index=board.index)
    if budgets.nunique() < 2 and views.nunique() < 2:
        return None
    trained = ~board["algorithm"].isin(REFERENCE_ALGORITHMS)
    fig = Figure(figsize=(10.4, 4.0), layout="constrained")
    ax_w, ax_r = fig.subplots(1, 2, sharex=True)
    ends: dict[str, dict[float, float]] = {}
    xs_all = budgets[np.isfinite(budgets)]
    # each swept world (world seed, pair source) is its own line: a budget sweep never joins two worlds' points
    worlds = [c for c in ("world_seed", "pair_source") if c in board.columns and board[c].astype(str).nunique() > 1]
    world_of: dict[str, tuple] = {}
    for key, rows in board[trained].groupby(["label", *worlds], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        label = key[0]
        name = label + "".join(f" [{c}={v}]" for c, v in zip(worlds, key[1:]))
        world_of[name] = key[1:]
        st = style[label]
        for view in ("end_to_end", "amortised"):
            sel = rows[views[rows.index].isin([view, "both"])]
            if not len(sel):
                continue
            if view == "amortised" and (views[rows.index] == "both").all():
                continue  # no reward model: the same runs as the end-to-end line
            x = budgets[sel.index].to_numpy(dtype=float)
            if not np.isfinite(x).any():  # no budget sweep: the suite's one budget, placed at 1
                x = np.ones(len(sel))
            order = np.argsort(x)
            for ax, metric in ((ax_w, "win_rate"), (ax_r, "gold_reward")):
                y = _numbers(sel[metric])[order]
                lo, hi = _numbers(sel[f"{metric}_lo"])[order], _numbers(sel[f"{metric}_hi"])[order]
                err = np.vstack([np.maximum(y - lo, 0), np.maximum(hi - y, 0)])
                err = np.where(np.isfinite(err), err, 0.0)
                ax.errorbar(x[order], y, yerr=err, color=st.color, marker=st.marker, ms=5, capsize=2,
                            ls="-" if view == "end_to_end" else "--", mfc=st.color if view == "end_to_end" else "white",
                            label=f"{_text(name)} ({view.replace('_', '-')})"
                            if (views[rows.index] != "both").any() else _text(name))
            if view == "end_to_end" or name not in ends:
                ends[name] = dict(zip(x[order], _numbers(sel["win_rate"])[order]))
    crossings = []
    if xs_all.nunique() >= 2:
        lo_b, hi_b = float(xs_all.min()), float(xs_all.max())
        names = [k for k, v in ends.items() if lo_b in v and hi_b in v]
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if world_of.get(a) != world_of.get(b):  # crossovers only within one world
                    continue
                d0, d1 = ends[a][lo_b] - ends[b][lo_b], ends[a][hi_b] - ends[b][hi_b]
                if d0 * d1 < 0:
                    crossings.append(f"{a} × {b}")
        ax_w.set_xscale("log")
        ax_w.set_xlabel("budget [FLOPs per run]")
        ax_r.set_xlabel("budget [FLOPs per run]")
    else:
        ax_w.set_xticks([1.0], ["suite budget"])
    ax_w.axhline(0.5, color="#aaaaaa", lw=1, ls=":", zorder=0)
    ax_w.set_ylabel("win rate vs π_ref samples")
    ax_r.set_ylabel(f"{reward_name} of policy samples")
    handles, labels = ax_w.get_legend_handles_labels()
    title = ("crossovers (win rate, smallest vs largest budget): " + ", ".join(crossings)) if crossings else \
        ("no crossovers between the smallest and largest budget" if xs_all.nunique() >= 2 else None)
    fig.legend(handles, labels, loc="outside right upper", title=title, title_fontsize=7)
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
         ("margin_delta", "#000000", "--", "Δ margin (chosen − rejected)"),
         ("control_logp_delta", "#009E73", ":", "Δ log π on fresh π_ref samples (control: global drift)"))


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
        title = f"{_text(setting)} · {drawn[0][4]} seed{'s' if drawn[0][4] != 1 else ''}"
        ax.set_title(textwrap.fill(title, 38), fontsize=8)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.supxlabel(f"training compute [{unit}]", fontsize=9)
    fig.supylabel("change of log π(y|x) on held-out pairs [nats]", fontsize=9)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncols=2)
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


def seeds_chart(board: pd.DataFrame, runs: pd.DataFrame, style: dict[str, Style], reward_name: str) -> str | None:
    return _render(_seeds_chart, board, runs, style, reward_name)


def _seeds_chart(board, runs, style, reward_name):
    """Every seed's value as a dot beside its setting's 95% interval (rliable's advice: show the runs, not only the
    aggregate), for win rate and the reward; seeds that left the language (`tables.off_language`) hollow and red,
    named by their seed. The interval is the leaderboard's (seeds and prompts), the dots are the seeds' means."""
    from bench.reporting.tables import off_language

    if not len(board) or not len(runs):
        return None
    done = runs[runs["status"] == "finished"].copy()
    if not len(done):
        return None
    done["_off"] = off_language(done)
    settings = [s for s in board["setting"] if (done["setting"] == s).any()]
    metrics = [(m, t) for m, t in (("win_rate", "win rate vs π_ref"), ("gold_reward", reward_name))
               if m in board and pd.to_numeric(board[m], errors="coerce").notna().any()]
    if not settings or not metrics:
        return None
    fig = Figure(figsize=(4.2 * len(metrics) + 1.6, 0.32 * len(settings) + 1.2), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(metrics), sharey=True))
    rows = board.set_index("setting")
    label_of = dict(zip(board["setting"], board["label"]))
    for ax, (m, title) in zip(axes, metrics):
        for i, setting in enumerate(settings):
            st = style.get(label_of[setting], Style("#000000", "o", "-"))
            mean, lo, hi = (float(pd.to_numeric(rows.at[setting, c], errors="coerce")) for c in (m, f"{m}_lo", f"{m}_hi"))
            if math.isfinite(lo) and math.isfinite(hi):
                ax.plot([lo, hi], [i, i], color=st.color, lw=2.2, alpha=0.55, solid_capstyle="butt")
            if math.isfinite(mean):
                ax.plot([mean], [i], marker="|", ms=12, mew=2, color=st.color)
            seeds = done[done["setting"] == setting]
            v = _numbers(seeds[m])
            off = seeds["_off"].to_numpy(dtype=bool)
            jitter = (np.arange(len(v)) % 3 - 1) * 0.12
            ok = np.isfinite(v) & ~off
            ax.scatter(v[ok], i + 0.22 + jitter[ok], s=12, color=st.color, zorder=3, lw=0)
            bad = np.isfinite(v) & off
            if bad.any():
                ax.scatter(v[bad], i + 0.22 + jitter[bad], s=22, facecolors="none", edgecolors="#c00000", zorder=3,
                           lw=1.1)
                for x, y, sd in zip(v[bad], i + 0.22 + jitter[bad], seeds["seed"].to_numpy()[bad]):
                    ax.annotate(f"s{int(sd)}", (x, y), xytext=(3, 2), textcoords="offset points", fontsize=7,
                                color="#c00000")
        if m == "win_rate":
            ax.axvline(0.5, color="#aaaaaa", lw=1, ls=":", zorder=0)
        ax.set_xlabel(title)
    axes[0].set_yticks(range(len(settings)), [_text(s) for s in settings])
    axes[0].invert_yaxis()
    return fig
