"""Charts for sweep suites and learned rewards: sensitivity over each label's grid, proxy against gold reward.

Same conventions as figures.py (whose helpers these use): SVG data URIs, one style per label, seed min–max bars.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from bench.reporting.figures import (
    LINESTYLES,
    MARKERS,
    Style,
    _bars,
    _g,
    _numbers,
    _render,
    _spread,
    _text,
)
from bench.reporting.tables import format_param


def sensitivity(board: pd.DataFrame, runs: pd.DataFrame, params: list[str], style: dict[str, Style],
                metric: str = "win_rate", metric_name: str = "win rate vs π_ref") -> str | None:
    return _render(_sensitivity, board, runs, params, style, metric, metric_name)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _sensitivity(board, runs, params, style, metric, metric_name):
    done = runs[runs["status"] == "finished"]
    panels = []
    for label, rows in board.groupby("label", sort=False):
        rows = rows[np.isfinite(_numbers(rows[metric]))]
        vary = [p for p in params if rows[p].dropna().nunique() > 1]
        if len(rows) > 1 and vary:
            panels.append((label, rows, vary))
    if not panels:
        return None
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(3.0 * ncols + 0.6, 2.6 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
    for ax, (label, rows, vary) in zip(axes, panels):
        st = style[label]
        numeric = [p for p in vary if all(_is_number(v) for v in rows[p].dropna())]
        numeric.sort(key=lambda p: p == "learning_rate")  # x: the beta-analogue; learning rates as lines
        xp = numeric[0] if numeric else None
        others = [p for p in vary if p != xp]
        groups = rows.groupby([rows[p].map(format_param) for p in others], sort=False) if others else [("", rows)]
        for j, (key, grp) in enumerate(groups):
            if xp is not None:
                grp = grp.sort_values(xp)
                x = _numbers(grp[xp])
            else:
                x = np.arange(len(grp), dtype=float)
            stats = [_spread(_numbers(done.loc[done["setting"] == s, metric])) for s in grp["setting"]]
            y = np.array([s[0] if s else np.nan for s in stats])
            err = np.hstack([_bars(*s) if s else np.zeros((2, 1)) for s in stats])
            key = key if isinstance(key, tuple) else (key,)
            name = ", ".join(f"{p}={k}" for p, k in zip(others, key)) if others and xp is not None else None
            ax.errorbar(x, y, yerr=err, color=st.color, marker=MARKERS[j % len(MARKERS)], ms=4.5, capsize=2,
                        lw=1.2, ls=LINESTYLES[j % len(LINESTYLES)], label=_text(name) if name else None)
            sel = grp["selected"].to_numpy(dtype=bool)
            if sel.any():
                ax.scatter(x[sel], y[sel], marker="*", s=150, facecolors="none", edgecolors="#000000", lw=1.1,
                           zorder=5, label="selected setting")
            if xp is None:
                ax.set_xticks(x, [_text(", ".join(f"{p}={format_param(v)}" for p, v in zip(vary, r)))
                                  for r in grp[vary].itertuples(index=False)], rotation=30, ha="right")
        if xp is not None:
            xs = _numbers(rows[xp])
            xs = xs[np.isfinite(xs)]
            if xs.size and xs.min() > 0 and xs.max() / xs.min() >= 10:
                ax.set_xscale("log")
                ax.xaxis.set_major_formatter(FuncFormatter(_g))
                ax.xaxis.set_minor_formatter(NullFormatter())
                ax.set_xticks(sorted(set(xs)))
            ax.set_xlabel(_text(xp))
        ax.set_title(_text(label))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.supylabel(f"{metric_name} (mean, bars: seed min–max)", fontsize=9)
    return fig


def proxy_vs_gold(board: pd.DataFrame, runs: pd.DataFrame, style: dict[str, Style], reward_name: str) -> str | None:
    return _render(_proxy_vs_gold, board, runs, style, reward_name)


def _proxy_vs_gold(board, runs, style, reward_name):
    done = runs[runs["status"] == "finished"]
    ok = np.isfinite(_numbers(done["proxy_reward"])) & np.isfinite(_numbers(done["gold_reward"]))
    done = done[ok]
    if not len(done):
        return None
    fig = Figure(figsize=(9.4, 3.6), layout="constrained")
    ax_s, ax_k = fig.subplots(1, 2)
    for label in board["label"].unique():
        sub = done[done["label"] == label]
        if not len(sub):
            continue
        st = style[label]
        proxy, gold, kl = _numbers(sub["proxy_reward"]), _numbers(sub["gold_reward"]), _numbers(sub["kl"])
        ax_s.scatter(proxy, gold, color=st.color, marker=st.marker, s=22, label=_text(label))
        ax_k.scatter(kl, proxy, facecolors="white", edgecolors=st.color, marker=st.marker, s=22,
                     label=f"{_text(label)}: proxy (reward model)")
        ax_k.scatter(kl, gold, color=st.color, marker=st.marker, s=22, label=f"{_text(label)}: {reward_name}")
    ax_s.set_xlabel("proxy reward (reward-model score of samples)")
    ax_s.set_ylabel(f"{reward_name} of the same samples")
    ax_s.legend(loc="best")
    ax_k.set_xlabel("KL(π‖π_ref) per prompt [nats]")
    ax_k.set_ylabel("reward of policy samples")
    ax_k.legend(loc="best")
    return fig
