"""The suite-level uncertainty model: a t interval over seeds plus the shared prompt / reference-draw variance.

Every interval a reader sees over seeds — summary.csv's `<metric>_lo/_hi`, the leaderboard's ±, the pairwise
win-rate differences, the ladder's verdicts, the baselines and the check — comes from here (the estimator itself is
`crossed_components` in bench/evaluation/crossed.py, whose comment gives the model, its references and why it is
valid by construction at 3–10 seeds). Column convention, used everywhere:

    <metric>_run_lo, <metric>_run_hi   within ONE run: t over its prompts (each with its reference draws)
    <metric>_lo, <metric>_hi           over the setting's seeds AND its prompts (and reference draws): what a
                                       reader needs to compare settings; the same value on every seed's row

The units come from each run's per_prompt.csv / per_pair.csv (written by bench/evaluation/final.py); a metric
with no per-unit file (the torch-free fake algorithm, older results, scalars such as steps or wall time) has only
its seed part (t over seed values). Intervals are clipped to the metric's range (`bounds_of`). Differences between
two settings are paired: the seeds both have (common random numbers: the same data order and sampling seed per
seed), the same prompts, the same reference draws, differenced cell by cell.

With `world.seed` swept, the replicate unit is (world seed, training seed): each world is one more draw of the
data, the base policy and the prompts, so its spread enters the seed part. (Prompt i of two worlds is then not
the same prompt; the shared part then also holds a little of the worlds' prompt spread, which errs wide.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.columns import setting_groups  # noqa: F401  (settings of a summary frame; re-exported)
from bench.evaluation.crossed import Crossed, crossed_components, interval_of

INF = math.inf
# metric -> (file, columns: a prefix (one column per reference draw) or one column, bounds of the metric)
UNITS: dict[str, tuple[str, str, tuple[float, float]]] = {
    "win_rate": ("per_prompt.csv", "win_ref*", (0.0, 1.0)),
    "win_rate_lc": ("per_prompt.csv", "lc_ref*", (0.0, 1.0)),  # bench/evaluation/win_parts.py
    "win_rate_grammar": ("per_prompt.csv", "grammar_ref*", (-0.5, 0.5)),
    "win_rate_sentiment": ("per_prompt.csv", "sentiment_ref*", (-0.5, 0.5)),
    "gold_reward": ("per_prompt.csv", "gold_reward", (-INF, INF)),
    "kl": ("per_prompt.csv", "kl", (0.0, INF)),
    "kl_tokenwise": ("per_prompt.csv", "kl_tokenwise", (0.0, INF)),
    "length": ("per_prompt.csv", "length", (0.0, INF)),
    "frontier_efficiency": ("per_prompt.csv", "efficiency", (-INF, INF)),      # bench/evaluation/frontier.py
    "frontier_efficiency_bon": ("per_prompt.csv", "efficiency_bon", (-INF, INF)),
    "control_logp_delta": ("per_prompt.csv", "control_logp_delta", (-INF, INF)),
    "pref_accuracy": ("per_pair.csv", "pref_correct", (0.0, 1.0)),
    "chosen_logp_delta": ("per_pair.csv", "chosen_logp_delta", (-INF, INF)),
    "rejected_logp_delta": ("per_pair.csv", "rejected_logp_delta", (-INF, INF)),
    "chosen_fell_fraction": ("per_pair.csv", "chosen_fell", (0.0, 1.0)),
}
# metrics with no per-unit file: bootstrapped over seeds, within these bounds
SCALAR_BOUNDS: dict[str, tuple[float, float]] = {
    "tie_rate": (0.0, 1.0), "val_win_rate": (0.0, 1.0), "lm_eval_score": (0.0, 1.0),
    "flops": (0.0, INF), "wall_s": (0.0, INF), "train_s": (0.0, INF), "steps": (0.0, INF), "epochs": (0.0, INF),
    "peak_mem_mb": (0.0, INF),
    # shares of samples (a seed that left the language made an unclipped t interval run to 147%)
    "grammatical_fraction": (0.0, 1.0), "ended_fraction": (0.0, 1.0), "capped_fraction": (0.0, 1.0),
    "rm_label_accuracy": (0.0, 1.0), "rm_gold_accuracy": (0.0, 1.0),
}


def bounds_of(metric: str) -> tuple[float, float]:
    if metric in UNITS:
        return UNITS[metric][2]
    return SCALAR_BOUNDS.get(metric, (-INF, INF))


@dataclass
class Interval:
    mean: float
    lo: float
    hi: float
    seeds: int
    values: dict = field(default_factory=dict)  # replicate key -> that seed's mean (the dots beside an interval)
    parts: Crossed | None = None                # the variance in its seed and shared parts (power, seeds needed)

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


NAN = Interval(math.nan, math.nan, math.nan, 0)


def seed_key(config: dict[str, Any]) -> tuple:
    """The replicate unit: (world seed, pair source, training seed). Runs of two settings with the same key share
    the world, the data order and the sampling seed. The pair source is a condition, not a draw: runs on base and
    weak pairs share no key, so no difference is ever paired across them."""
    world = config.get("world") or {}
    return (world.get("seed"), world.get("pair_source"), config.get("seed"))


@dataclass
class Uncertainty:
    """Intervals for settings (groups of runs over seeds) and paired differences between them.

    `runs`: run_id -> {"dir": Path | None, "config": dict, "metrics": dict} (finished runs only are used);
    `settings`: setting name -> run_ids.
    """

    runs: dict[str, dict[str, Any]]
    settings: dict[str, list[str]]
    alpha: float = 0.05
    _tables: dict[tuple[str, str], Any] = field(default_factory=dict)
    _unit_arrays: dict[tuple[str, str], Any] = field(default_factory=dict)  # (run, metric) -> `_units`, read once

    def _table(self, run_id: str, file: str):
        key = (run_id, file)
        if key not in self._tables:
            import pandas as pd

            d = self.runs[run_id].get("dir")
            path = Path(d) / file if d is not None else None
            try:
                self._tables[key] = pd.read_csv(path) if path is not None and path.is_file() else None
            except (pd.errors.EmptyDataError, pd.errors.ParserError):
                self._tables[key] = None
        return self._tables[key]

    def _units(self, run_id: str, metric: str) -> np.ndarray | None:
        """[units, draws] of a run for a metric, or [1, 1] from its scalar, or None. Read once per (run, metric)
        and kept read-only: a report asks for the same run's units hundreds of times (pandas column selection was
        ~1 s of `bench report` on the default suite)."""
        key = (run_id, metric)
        if key not in self._unit_arrays:
            x = self._read_units(run_id, metric)
            if x is not None:
                x.flags.writeable = False
            self._unit_arrays[key] = x
        return self._unit_arrays[key]

    def _read_units(self, run_id: str, metric: str) -> np.ndarray | None:
        run = self.runs[run_id]
        if metric in UNITS:
            file, col, _ = UNITS[metric]
            table = self._table(run_id, file)
            if table is not None:
                cols = [c for c in table.columns if c.startswith(col[:-1])] if col.endswith("*") else \
                    ([col] if col in table.columns else [])
                if cols:
                    x = table[cols].to_numpy(dtype=float)
                    if np.isfinite(x).all():
                        return x
        value = run["metrics"].get(metric)
        try:
            value = float(value)
        except (TypeError, ValueError):
            return None
        return np.array([[value]]) if math.isfinite(value) else None

    def _finished(self, setting: str) -> list[str]:
        return [r for r in self.settings.get(setting, []) if self.runs[r]["metrics"].get("status") == "finished"]

    def _matrix(self, run_ids: list[str], metric: str) -> tuple[dict[tuple, np.ndarray], bool]:
        by_seed = {}
        for r in run_ids:
            u = self._units(r, metric)
            if u is not None:
                by_seed[seed_key(self.runs[r]["config"])] = u
        shapes = {u.shape for u in by_seed.values()}
        if len(shapes) > 1:  # runs disagree on the units (a changed eval setting): fall back to their means
            by_seed = {k: np.array([[float(u.mean())]]) for k, u in by_seed.items()}
        return by_seed, len(shapes) <= 1

    def seed_matrices(self, setting: str, metric: str) -> dict[tuple, np.ndarray]:
        """replicate key -> that finished run's [units, draws] values of `metric` (coverage studies, power)."""
        return self._matrix(self._finished(setting), metric)[0]

    def subset(self, settings: dict[str, list[str]]) -> Uncertainty:
        """The same runs (and already-read per-unit files) grouped into other settings, e.g. a subset of seeds."""
        return Uncertainty(self.runs, settings, alpha=self.alpha, _tables=self._tables, _unit_arrays=self._unit_arrays)

    def interval(self, setting: str, metric: str) -> Interval:
        by_seed, _ = self._matrix(self._finished(setting), metric)
        if not by_seed:
            return NAN
        keys = sorted(by_seed, key=str)
        x = np.stack([by_seed[k] for k in keys])
        parts = crossed_components(x)
        mean, lo, hi = interval_of(parts, alpha=self.alpha, bounds=bounds_of(metric))
        return Interval(mean, lo, hi, len(keys), {k: float(by_seed[k].mean()) for k in keys}, parts)

    def difference(self, a: str, b: str, metric: str) -> Interval:
        """mean(a) − mean(b) with its paired interval, over the seeds both settings finished."""
        return self.contrast([(a, 1.0), (b, -1.0)], metric)

    def contrast(self, weights, metric: str) -> Interval:
        """Σ w_s · mean(s) with its paired interval, over the seeds every weighted setting finished, computed cell
        by cell on the shared prompts and draws: a difference (weights 1, −1), or a setting against a point
        interpolated between two others (1, −(1 − w), −w: the frontier reading of bench/evaluation/replication.py).
        `weights`: {setting: w} or (setting, w) pairs; a setting named twice has its weights added (a − a is 0).
        The range: each setting's metric range weighted by its sign."""
        total: dict[str, float] = {}
        for s, w in (weights.items() if isinstance(weights, dict) else weights):
            total[s] = total.get(s, 0.0) + float(w)
        weights = {s: w for s, w in total.items() if w != 0}
        mats = [(w, self._matrix(self._finished(s), metric)[0]) for s, w in weights.items()]
        if not mats:  # every weight cancelled (a − a): exactly 0 over the seeds the setting finished
            keys = sorted(self._matrix(self._finished(next(iter(total))), metric)[0], key=str) if total else []
            return Interval(0.0, 0.0, 0.0, len(keys), {k: 0.0 for k in keys}) if keys else NAN
        keys = set(mats[0][1])
        for _, m in mats[1:]:
            keys &= set(m)
        keys = sorted((k for k in keys if len({m[k].shape for _, m in mats}) == 1), key=str)
        if not keys:
            return NAN
        d = sum(w * np.stack([m[k] for k in keys]) for w, m in mats)
        values = {k: float(sum(w * m[k].mean() for w, m in mats)) for k in keys}
        if d.shape[0] * d.shape[1] == 1:  # one seed, one unit: no information on the spread
            return Interval(float(d.mean()), math.nan, math.nan, 1, values)
        low, high = bounds_of(metric)
        pos, neg = sum(w for w in weights.values() if w > 0), sum(w for w in weights.values() if w < 0)
        bounds = (_bound(pos, low) + _bound(neg, high), _bound(pos, high) + _bound(neg, low))
        parts = crossed_components(d)
        mean, lo, hi = interval_of(parts, alpha=self.alpha, bounds=bounds)
        return Interval(mean, lo, hi, len(keys), values, parts)


def _bound(weight: float, end: float) -> float:
    """weight · end of a metric's range, 0 for no weight (an infinite end times 0 is no bound, not NaN)."""
    return weight * end if weight else 0.0


def from_frame(frame, dirs: dict[str, Path] | None = None) -> Uncertainty:
    """The uncertainty model of a summary frame: per-unit files from `dirs` (run_id -> run folder) where given,
    else each run's summary value (a seed-level bootstrap)."""
    dirs = dirs or {}
    runs = {}
    for row in frame.to_dict("records"):
        world = {"seed": row.get("world_seed"), "pair_source": row.get("pair_source")}
        runs[row["run_id"]] = {"dir": dirs.get(row["run_id"]), "metrics": row,
                               "config": {"seed": row.get("seed"), "world": world}}
    return Uncertainty(runs, setting_groups(frame))
