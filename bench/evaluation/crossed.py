"""The one uncertainty model: intervals over a crossed design of training seeds × shared test prompts (× reference
draws), with degrees of freedom from the seeds. Every `_lo/_hi` the harness reports, the pairwise table, `bench
baseline` / `bench check`'s seed path and the coverage benchmark call this module (through
bench/evaluation/uncertainty.py for results on disk). Split from estimators.py (issue 23: one idea per module);
the derivation and references are in the comment below.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from bench.evaluation.estimators import _np

__all__ = [
    "Crossed",
    "crossed_components",
    "crossed_ci",
    "interval_of",
    "welch_ci",
    "seeds_to_resolve",
    "minimum_detectable",
    "crossed_batch",
    "crossed_bootstrap_means",
    "crossed_bootstrap_ci",
    "percentile_interval",
    "paired_difference_ci",
]


# --------------------------------------------------------------------------- the one uncertainty model
# Every interval over seeds the harness reports comes from `crossed_components` / `crossed_ci`: a Student-t
# interval whose variance has two parts and whose degrees of freedom come from the seeds.
#
# The design is crossed: every seed (training randomness: init, data order, sampling) is evaluated on the SAME
# P test prompts (or held-out pairs) against the SAME K reference draws per prompt, and two algorithms share seeds
# (common random numbers), so a paired difference is the same computation on a − b cell by cell. The draws are
# nested in their prompt, so the prompt (with its draws) is the unit: y[s, p] = mean over draws. The random-effects
# model y_sp = μ + a_s + b_p + e_sp (e: seed × prompt interaction + sampling noise) gives
#     Var(ȳ) = σ²_a/S + σ²_b/P + σ²_e/(SP) = (MS_seeds + MS_prompts − MS_resid) / (S·P)
# with the two-way ANOVA mean squares (E MS_seeds = σ²_e + Pσ²_a, E MS_prompts = σ²_e + Sσ²_b, E MS_resid = σ²_e).
# We report it as two parts:
#     seed part   = MS_seeds / (S·P) = s²(seed means) / S            everything that changes with the seed
#     shared part = max(MS_prompts − MS_resid, 0) / (S·P) = σ̂²_b / P  the prompts and draws every seed shares
# (clipping the shared part at 0 errs wide), so the interval covers the population mean over seeds, prompts and
# draws, the quantity a paper claims. The seed part alone is the plain t on seed means; it is what `bench check`
# uses, where baseline and current share the prompts and draws and only the seeds differ.
# The multiplier: each part gets its own Student t, combined as a root-sum-square of the two half-widths,
#     half-width = sqrt( t²_{S−1} · seed part + t²_{P−1} · shared part )
# Banerjee's (1960, Sankhyā 22, "Approximate confidence interval for linear functions of means of k populations
# when the population variances are not equal") conservative interval: coverage >= 1 − α for independent normal
# parts with chi-square variance estimates, whatever their ratio (here the seed part is exactly that, with S − 1
# df; the shared part's estimate is a difference of mean squares with hundreds of df, where its t is ≈ z).
# Satterthwaite's pooled df under-covered in the same simulation: 91.6% at 3 training-dominated seeds. At 3
# seeds the seed part is multiplied by t_{0.975, 2} = 4.30, not the normal 1.96; when the shared evaluation noise
# dominates, by ~1.97. This is what makes it valid by construction at 3–10 seeds:
#   - the percentile bootstrap over S seeds spans about ±1.8 standard errors at S = 3 (10 distinct resamples) and
#     covers ~81% under normal seeds; rliable (Agarwal et al. 2021, "Deep RL at the edge of the statistical
#     precipice") and Henderson et al. (2018, "Deep RL that matters") show how few-seed claims mislead;
#   - the pigeonhole bootstrap (Owen 2007, Ann. Appl. Stat. 1(1)) resamples seeds and prompts jointly and so
#     counts the seed × prompt interaction twice: it covered the default suite by padding, not by construction
#     (issue 21); here σ²_e enters once, through MS_seeds.
# Heavy-tailed seeds (a seed that leaves the language) are the t-interval's known weak spot; the coverage test
# (tests/test_coverage.py) and benchmarks/coverage.py measure it on synthetic and on real seeds.


class Crossed(NamedTuple):
    """The variance of a grand mean over [seeds, units] in its two parts, each with its degrees of freedom."""

    mean: float
    seed_var: float    # MS_seeds/(S·P): the variance of the mean that a new set of seeds would change
    shared_var: float  # σ̂²_b/P: the variance from the prompts / pairs / reference draws every seed shares
    seed_df: float     # S − 1
    shared_df: float   # P − 1
    seeds: int
    units: int

    @property
    def var(self) -> float:
        return self.seed_var + self.shared_var

    @property
    def se(self) -> float:
        return math.sqrt(self.var) if math.isfinite(self.var) else math.nan

    def half_width(self, alpha: float = 0.05) -> float:
        """Banerjee's root-sum-square of the parts' t half-widths (see the section comment)."""
        if not math.isfinite(self.var):
            return math.nan
        total = 0.0
        for v, df in ((self.seed_var, self.seed_df), (self.shared_var, self.shared_df)):
            if v > 0:
                if not df >= 1:
                    return math.nan
                total += _t_ppf(1 - alpha / 2, df) ** 2 * v
        return math.sqrt(total)

    def at_seeds(self, seeds: int) -> Crossed:
        """The same components projected to `seeds` seeds (same prompts and draws): the seed part shrinks like 1/S,
        the shared part does not (more seeds cannot remove the evaluation set's own luck)."""
        if self.seeds < 2 or seeds < 2:
            return self._replace(seeds=seeds, seed_df=math.nan)
        return self._replace(seed_var=self.seed_var * self.seeds / seeds, seeds=seeds, seed_df=float(seeds - 1))


@functools.lru_cache(maxsize=4096)
def _t_ppf(q: float, df: float) -> float:
    """Student's t quantile (the normal's beyond 1e7 df), from the special functions `scipy.stats.t.ppf` and
    `norm.ppf` evaluate (`stdtrit`, `ndtri`: the same values, bit for bit, checked on 12,000 (q, df) pairs) without
    their ~0.15 ms of argument handling per call; memoised, as a report asks for the same pairs many times. Together
    ~2 s of `bench report` on the default suite (16.7 s)."""
    from scipy import special

    return float(special.ndtri(q)) if df == math.inf or df > 1e7 else float(special.stdtrit(df, q))


def _satterthwaite(terms: list[tuple[float, float]]) -> float:
    """df of a sum of independent variance estimates (value, df) (Satterthwaite 1946); inf when all are zero."""
    total = sum(v for v, _ in terms)
    den = sum(v * v / d for v, d in terms if d > 0 and v != 0)
    return total * total / den if den > 0 else math.inf


def seeds_to_resolve(c: Crossed, target: float, *, alpha: float = 0.05, most: int = 1000) -> int | None:
    """The fewest seeds (>= 2) whose projected half-width (`Crossed.at_seeds`, same prompts and draws) is <=
    `target`; None when no seed count reaches it (the shared part alone is too wide: more prompts are needed)."""
    if c.seeds < 2 or not math.isfinite(c.var) or not target > 0:
        return None
    for n in range(2, most + 1):
        if c.at_seeds(n).half_width(alpha) <= target:
            return n
    return None


def minimum_detectable(c: Crossed, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference a paired comparison with these components detects with probability `power`
    (two-sided level alpha): half-width + the t_{power} multiple of its standard error (a normal-theory sizing)."""
    hw = c.half_width(alpha)
    if not math.isfinite(hw):
        return math.nan
    total = 0.0
    for v, df in ((c.seed_var, c.seed_df), (c.shared_var, c.shared_df)):
        if v > 0:
            total += _t_ppf(power, df) ** 2 * v
    return hw + math.sqrt(total)


def seeds_for_power(c: Crossed, effect: float, *, alpha: float = 0.05, power: float = 0.8,
                    most: int = 1000) -> int | None:
    """The fewest seeds (>= 2) at which a true difference of `effect` is detected with probability `power`
    (`minimum_detectable` of the components projected to that many seeds, `Crossed.at_seeds`: same prompts and
    draws); None when no seed count reaches it — the shared prompt/draw part alone is too wide, so only more
    evaluation prompts (or draws) would. The planning number for an unresolved comparison (Cohen 1988's sizing
    with the t quantiles of the seeds' degrees of freedom)."""
    if c.seeds < 2 or not math.isfinite(c.var) or not abs(effect) > 0:
        return None
    for n in range(2, most + 1):
        if minimum_detectable(c.at_seeds(n), alpha=alpha, power=power) <= abs(effect):
            return n
    return None


def crossed_components(x) -> Crossed:
    """The one uncertainty model's variance of the grand mean of ``x`` = [seeds, units] or [seeds, units, draws]
    (draws are nested in units and averaged first; see the section comment). NaN cells are not allowed.

    S >= 2 and P >= 2: the two-way random-effects decomposition; P = 1 (one value per seed: scalars, the check's
    seed-only path): s²/S with S − 1 df; S = 1 (one run: its own evaluation noise): s²_units/P with P − 1 df;
    one cell: variance NaN (nothing to estimate it from).
    """
    x = _np(x)
    if x.ndim == 3:
        x = x.mean(axis=2)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"x must be [seeds, units] or [seeds, units, draws], got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("x has NaN cells; align seeds and units first")
    s, p = x.shape
    grand = float(x.mean())
    if s == 1 and p == 1:
        return Crossed(grand, math.nan, math.nan, math.nan, math.nan, 1, 1)
    if p == 1:
        v = float(x[:, 0].var(ddof=1)) / s
        return Crossed(grand, v, 0.0, float(s - 1), math.nan, s, 1)
    if s == 1:
        v = float(x[0].var(ddof=1)) / p
        return Crossed(grand, 0.0, v, math.nan, float(p - 1), 1, p)
    seed_means, unit_means = x.mean(axis=1), x.mean(axis=0)
    ms_s = p * float(seed_means.var(ddof=1))
    ms_p = s * float(unit_means.var(ddof=1))
    resid = x - seed_means[:, None] - unit_means[None, :] + grand
    ms_e = float((resid ** 2).sum()) / ((s - 1) * (p - 1))
    return Crossed(grand, ms_s / (s * p), max(ms_p - ms_e, 0.0) / (s * p), float(s - 1), float(p - 1), s, p)


def crossed_batch(x, *, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`crossed_components` for many independent data sets at once (coverage studies): ``x`` [R, S, P] or
    [R, S, P, K] with S >= 2 and P >= 2 → (means [R], seed_var [R], shared_var [R], half_widths [R])."""
    x = _np(x)
    if x.ndim == 4:
        x = x.mean(axis=3)
    r, s, p = x.shape
    if s < 2 or p < 2:
        raise ValueError(f"crossed_batch needs S >= 2 and P >= 2, got {x.shape}")
    grand = x.mean(axis=(1, 2))
    seed_means, unit_means = x.mean(axis=2), x.mean(axis=1)
    ms_s = p * seed_means.var(axis=1, ddof=1)
    ms_p = s * unit_means.var(axis=1, ddof=1)
    resid = x - seed_means[:, :, None] - unit_means[:, None, :] + grand[:, None, None]
    ms_e = (resid ** 2).sum(axis=(1, 2)) / ((s - 1) * (p - 1))
    seed_var, shared_var = ms_s / (s * p), np.maximum(ms_p - ms_e, 0.0) / (s * p)
    hw = np.sqrt(_t_ppf(1 - alpha / 2, s - 1) ** 2 * seed_var + _t_ppf(1 - alpha / 2, p - 1) ** 2 * shared_var)
    return grand, seed_var, shared_var, hw


def interval_of(c: Crossed, *, alpha: float = 0.05, bounds: tuple[float, float] = (-math.inf, math.inf)
                ) -> tuple[float, float, float]:
    """(mean, lo, hi) of a `Crossed` at level 1 − alpha, clipped to the metric's range ``bounds`` (a mean of
    in-range values is in range, so the clip only removes impossible values; the mean itself is clipped too, for
    estimators such as k1 KL whose single samples can leave the range). One cell: (mean, mean, mean) — no spread
    to estimate, shown as no interval."""
    mean = float(np.clip(c.mean, *bounds))
    if c.seeds * c.units == 1:
        return mean, mean, mean
    hw = c.half_width(alpha)
    if not math.isfinite(hw):
        return mean, math.nan, math.nan
    lo, hi = float(np.clip(c.mean - hw, *bounds)), float(np.clip(c.mean + hw, *bounds))
    return mean, min(lo, mean), max(hi, mean)


def crossed_ci(x, *, alpha: float = 0.05, bounds: tuple[float, float] = (-math.inf, math.inf)
               ) -> tuple[float, float, float]:
    """(grand mean, lo, hi) of ``x`` [seeds, units(, draws)] under the one uncertainty model, within ``bounds``."""
    return interval_of(crossed_components(x), alpha=alpha, bounds=bounds)


def welch_ci(current, baseline, *, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """(mean(current) − mean(baseline), lo, hi, df): Welch's t interval for two independent sets of seed values
    (Welch 1947), the seed-only path of the one model for two result sets that share prompts and draws (so the
    shared part cancels). NaN interval when either side has fewer than 2 values."""
    a, b = _np(current).ravel(), _np(baseline).ravel()
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    d = float(a.mean() - b.mean())
    if a.size < 2 or b.size < 2:
        return d, math.nan, math.nan, math.nan
    va, vb = float(a.var(ddof=1)) / a.size, float(b.var(ddof=1)) / b.size
    if va + vb == 0:
        return d, d, d, math.inf
    df = _satterthwaite([(va, a.size - 1), (vb, b.size - 1)])
    hw = _t_ppf(1 - alpha / 2, df) * math.sqrt(va + vb)
    return d, d - hw, d + hw, df


# --------------------------------------------------------------------------- the previous model (for comparison)
# `crossed_bootstrap_means`: the pigeonhole percentile bootstrap over the crossed factors (Owen 2007) that produced
# every interval until issue 21. Kept because the coverage test and benchmarks/coverage.py print its coverage beside
# the current model's, and because it is still a fine *within-run* resampler; it is not valid by construction at
# 3–10 seeds (see the section above), so no reported interval uses it.
# With S seeds the seed factor is resampled from S values, which under-states its variance by (S-1)/S (the
# plug-in variance); `seed_inflation=True` rescales the seed-level deviations by sqrt(S/(S-1)) to undo that.


def _resample_weights(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """[n_boot, n] multinomial counts / n: the weight of each unit in one bootstrap replicate (rows sum to 1)."""
    if n == 1:
        return np.ones((n_boot, 1))
    idx = rng.integers(0, n, size=(n_boot, n))
    w = np.zeros((n_boot, n))
    np.add.at(w, (np.arange(n_boot)[:, None], idx), 1.0)
    return w / n


def crossed_bootstrap_means(x, *, n_boot: int = 1000, seed: int = 0, seed_inflation: bool = True) -> np.ndarray:
    """Bootstrap replicates [n_boot] of the grand mean of ``x`` = [seeds, units] or [seeds, units, draws].

    Each replicate reweights seeds, units (prompts or pairs) and draws (reference samples) by independent
    multinomial resampling (see the section comment). NaN cells are not allowed (align first). Deterministic for a
    given (shape, seed): replicates of two arrays of the same shape are paired.
    """
    x = _np(x)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3 or x.size == 0:
        raise ValueError(f"x must be [seeds, units] or [seeds, units, draws], got shape {x.shape}")
    if np.isnan(x).any():
        raise ValueError("x has NaN cells; align seeds and units before bootstrapping")
    s, p, k = x.shape
    rng = np.random.default_rng([seed, s, p, k])
    ws, wp, wk = (_resample_weights(rng, n_boot, n) for n in (s, p, k))
    grand = float(x.mean())
    if seed_inflation and s > 1:
        # per-seed means deviate from the grand mean; scaling those deviations by sqrt(S/(S-1)) makes the
        # bootstrap variance of the seed factor match the unbiased estimate instead of the plug-in one
        seed_means = x.mean(axis=(1, 2))
        x = x + ((math.sqrt(s / (s - 1)) - 1) * (seed_means - grand))[:, None, None]
    return np.einsum("bs,bp,bk,spk->b", ws, wp, wk, x, optimize=True)


def percentile_interval(replicates, *, alpha: float = 0.05, bounds: tuple[float, float] = (-math.inf, math.inf)
                        ) -> tuple[float, float]:
    """Two-sided percentile interval of bootstrap replicates, clipped to the metric's range ``bounds``.

    The clip matters only where single observations can leave the range of the quantity (the k1 KL estimate of
    one sample can be negative while KL >= 0); for means of in-range values it never binds.
    """
    r = _np(replicates)
    lo, hi = np.quantile(r, [alpha / 2, 1 - alpha / 2])
    return float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))


def crossed_bootstrap_ci(x, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0,
                         bounds: tuple[float, float] = (-math.inf, math.inf)) -> tuple[float, float, float]:
    """(grand mean, lo, hi) of ``x`` [seeds, units(, draws)] under the previous model (the pigeonhole bootstrap),
    clipped to ``bounds``; for comparison only (see the section comment)."""
    x = _np(x)
    mean = float(np.clip(x.mean(), *bounds))
    lo, hi = percentile_interval(crossed_bootstrap_means(x, n_boot=n_boot, seed=seed), alpha=alpha, bounds=bounds)
    return mean, min(lo, mean), max(hi, mean)


def paired_difference_ci(a, b, *, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean(a) - mean(b), lo, hi) under the one uncertainty model: both [seeds, units(, draws)] on the same seeds,
    units and draws, differenced cell by cell (paired: the shared parts of a and b cancel where they agree)."""
    a, b = _np(a), _np(b)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays must have the same shape, got {a.shape} and {b.shape}")
    return crossed_ci(a - b, alpha=alpha)
