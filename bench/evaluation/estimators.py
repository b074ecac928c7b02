"""Statistical estimators used by the evaluation (the metrics are defined in docs/results-schema.md).

Pure functions over numpy arrays (torch tensors are accepted and converted), no model code.
Conventions: the first axis of every per-prompt array is the prompt axis; confidence intervals
are two-sided at level 1 - alpha; everything is deterministic for a given ``seed``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "win_rate", "pairwise_accuracy", "bootstrap_ci", "win_rate_ci", "mean_ci",
    "t_quantile", "seed_ci",
    "kl_mc", "kl_k3", "kl_exact_tokenwise",
    "best_of_n_kl", "best_of_n_expected",
    "OptimalLimit", "kl_optimal_limit",
    "within_prompt_corr",
    "Crossed", "crossed_components", "crossed_ci", "interval_of", "welch_ci", "seeds_to_resolve", "minimum_detectable",
    "crossed_batch",
    "crossed_bootstrap_means", "crossed_bootstrap_ci", "percentile_interval", "paired_difference_ci", "win_matrix",
]


def _np(x) -> np.ndarray:
    """Float64 numpy view of an array-like or (possibly grad-tracking, GPU) torch tensor."""
    if type(x).__module__.startswith("torch"):  # torch is imported only by callers that pass tensors
        import torch

        x = x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


# --------------------------------------------------------------------------- win rates

def _win_scores(a, b, ties_eps: float = 0.0) -> np.ndarray:
    """Elementwise 1 (a wins), 1/2 (|a - b| <= ties_eps) or 0 (b wins)."""
    a, b = _np(a), _np(b)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays must have the same shape, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("empty input")
    diff = a - b
    return np.where(np.abs(diff) <= ties_eps, 0.5, (diff > 0).astype(np.float64))


def _per_prompt(scores: np.ndarray) -> np.ndarray:
    """Collapse [prompts, samples, ...] to one value per prompt (mean over the other axes)."""
    return scores if scores.ndim == 1 else scores.reshape(len(scores), -1).mean(axis=1)


def win_rate(policy_scores, reference_scores, *, ties_eps: float = 0.0) -> float:
    """Win rate P(s_pi > s_ref) + 1/2 P(tie), paired per prompt.

    Arrays have the same shape: [prompts] or [prompts, samples] (compared elementwise, i.e. the
    j-th policy sample of a prompt against the j-th reference sample). ``|s_pi - s_ref| <= ties_eps``
    counts as a tie.
    """
    return float(_win_scores(policy_scores, reference_scores, ties_eps).mean())


def pairwise_accuracy(chosen_scores, rejected_scores) -> float:
    """Fraction of pairs whose chosen response scores above the rejected one (exact ties count 1/2)."""
    return win_rate(chosen_scores, rejected_scores)


# --------------------------------------------------------------------------- bootstrap

def bootstrap_ci(stat_fn: Callable[..., np.ndarray], *arrays, n_boot: int = 1000,
                 alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI (Efron & Tibshirani 1993, ch. 13) resampling prompts.

    The same resampled prompt indices are applied to the first axis of every array, so paired
    data (policy vs reference, chosen vs rejected) stays paired. Vectorised: ``stat_fn`` receives
    each array indexed as ``a[idx]`` with ``idx`` of shape [n_boot, n_prompts], i.e. with a leading
    replicate axis followed by the prompt axis, and must return one statistic per replicate
    (shape [n_boot]); e.g. ``lambda x: x.mean(axis=1)``. Returns (lo, hi).
    """
    arrays = [_np(a) for a in arrays]
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    n = len(arrays[0])
    if n == 0 or any(len(a) != n for a in arrays):
        raise ValueError("arrays must be non-empty with the same number of prompts")
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    stats = np.asarray(stat_fn(*(a[idx] for a in arrays)), dtype=np.float64)
    if stats.shape != (n_boot,):
        raise ValueError(f"stat_fn must return shape ({n_boot},), got {stats.shape}")
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def mean_ci(x, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """Mean with a percentile-bootstrap CI over prompts: (mean, lo, hi).

    ``x`` is [prompts] or [prompts, samples]; for 2-D input the per-prompt mean is resampled
    (equal samples per prompt, so the point estimate is the grand mean).
    """
    v = _per_prompt(_np(x))
    lo, hi = bootstrap_ci(lambda b: b.mean(axis=1), v, n_boot=n_boot, alpha=alpha, seed=seed)
    return float(v.mean()), lo, hi


def win_rate_ci(policy_scores, reference_scores, *, ties_eps: float = 0.0, n_boot: int = 1000,
                alpha: float = 0.05, seed: int = 0) -> tuple[float, float, float]:
    """``win_rate`` with a percentile-bootstrap CI over prompts: (point, lo, hi)."""
    v = _per_prompt(_win_scores(policy_scores, reference_scores, ties_eps))
    return mean_ci(v, n_boot=n_boot, alpha=alpha, seed=seed)


# --------------------------------------------------------------------------- seeds (Student t)

def t_quantile(q: float, df: int) -> float:
    """Quantile of Student's t with ``df`` >= 1 degrees of freedom (``scipy.stats.t.ppf``)."""
    from scipy import stats

    if not 0 < q < 1 or df < 1:
        raise ValueError("need 0 < q < 1 and df >= 1")
    return float(stats.t.ppf(q, df))


def seed_ci(values, alpha: float = 0.05) -> tuple[float, float, float]:
    """Mean over seeds with a Student-t CI: mean -/+ t_{1-alpha/2, n-1} * sd / sqrt(n).

    The seed-only case of the one uncertainty model (`crossed_ci` with one unit per seed); kept as a library
    function with its own edge cases. Unbounded: with few seeds it can leave a metric's range.

    NaNs are dropped; n = 1 gives lo = hi = mean; n = 0 gives NaNs.
    """
    v = _np(values).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if v.size == 1:
        return m, m, m
    from scipy import stats

    lo, hi = stats.t.interval(1 - alpha, v.size - 1, loc=m, scale=float(v.std(ddof=1)) / math.sqrt(v.size))
    return m, float(lo), float(hi)


# --------------------------------------------------------------------------- KL(pi || pi_ref)
# All three estimators below estimate the same sequence-level KL(pi(.|x) || pi_ref(.|x)) when
# the sequences are sampled from pi: k1 and k3 are unbiased per sample; the exact-tokenwise one
# is their Rao-Blackwellisation (the inner expectation over each next token done exactly).

def _seq_sum(tok: np.ndarray, mask) -> np.ndarray:
    if tok.ndim == 1:
        return tok
    if mask is not None:
        tok = tok * _np(mask)
    return tok.sum(axis=-1)


def kl_mc(policy_logp_seq, ref_logp_seq, mask=None) -> np.ndarray:
    """Per-sequence Monte-Carlo KL, the "k1" estimator: sum_t log pi(y_t|.) - log pi_ref(y_t|.).

    Inputs are sequence log-probs [B] or per-token log-probs [B, T] (with optional mask [B, T]) of
    samples y ~ pi. Unbiased for KL(pi || pi_ref); individual samples can be negative.
    """
    return _seq_sum(_np(policy_logp_seq) - _np(ref_logp_seq), mask)


def kl_k3(policy_logp, ref_logp, mask=None) -> np.ndarray:
    """Per-sequence "k3" estimator (Schulman 2020, "Approximating KL divergence").

    Per token, with log r = log pi_ref - log pi of the sampled token: (r - 1) - log r >= 0, summed
    over tokens ([B, T] input, optional mask) or applied to sequence log-probs ([B] input). Unbiased
    for samples from pi (E_pi[r] = 1 at each step) and usually lower-variance than k1.
    """
    log_r = _np(ref_logp) - _np(policy_logp)
    return _seq_sum(np.expm1(log_r) - log_r, mask)


def kl_exact_tokenwise(policy_logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask=None) -> np.ndarray:
    """Per-sequence sum over sampled prefixes of the exact next-token KL:
    sum_t KL(pi(.|x, y_<t) || pi_ref(.|x, y_<t)).

    Inputs are logits or log-probs [B, T, V] (log_softmax is applied, a no-op on log-probs) and a
    mask [B, T] of response positions. Unbiased for the sequence KL when y ~ pi (tower rule), with
    lower variance than k1/k3 because each step's expectation over the vocabulary is exact.
    Computed in float32 or wider; returns a numpy array [B].
    """
    import torch

    def logp(x):
        x = torch.as_tensor(x)
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return torch.log_softmax(x, dim=-1)

    with torch.no_grad():
        lp = logp(policy_logprobs)
        lq = logp(ref_logprobs).to(lp.device, lp.dtype)
        p = lp.exp()
        tok_kl = torch.where(p > 0, p * (lp - lq), torch.zeros_like(p)).sum(-1)  # [B, T]
        if mask is not None:
            tok_kl = tok_kl * torch.as_tensor(mask, device=tok_kl.device).to(tok_kl.dtype)
        return tok_kl.sum(-1).double().cpu().numpy()


# --------------------------------------------------------------------------- best-of-n

def best_of_n_kl(n: int) -> float:
    """KL(best-of-n || base) analytic value log n - (n-1)/n (Stiennon et al. 2020, App. G.3).

    Beirami et al. 2024 ("Theoretical guarantees on the best-of-n alignment policy") show it is
    an upper bound on the true KL (tight when rewards have no ties).
    """
    if n < 1:
        raise ValueError("n >= 1")
    return math.log(n) - (n - 1) / n


def best_of_n_expected(rewards_per_prompt, n: int) -> float:
    """Unbiased estimate of E[max of n i.i.d. draws], averaged over prompts.

    From m >= n samples per prompt ([P, m]), via order statistics: the i-th smallest of m
    (1-based) is the max of a uniformly random n-subset with probability C(i-1, n-1) / C(m, n),
    so the estimator is the average of the max over all C(m, n) subsets.
    """
    r = np.sort(_np(rewards_per_prompt), axis=-1)
    if r.ndim != 2:
        raise ValueError("rewards_per_prompt must be [P, m]")
    m = r.shape[1]
    if not 1 <= n <= m:
        raise ValueError(f"need 1 <= n <= m (= {m}), got n={n}")
    total = math.comb(m, n)
    w = np.array([math.comb(i - 1, n - 1) / total for i in range(1, m + 1)])
    return float((r @ w).mean())


# --------------------------------------------------------------------------- KL-regularised optimum

class OptimalLimit(NamedTuple):
    expected_reward: float  # E_{pi*}[r], mean over prompts
    kl: float               # KL(pi* || pi_ref), mean over prompts
    ess: float              # effective sample size 1 / sum w^2, mean over prompts (out of m)


def kl_optimal_limit(rewards, beta: float) -> OptimalLimit:
    """Reward and KL of the KL-regularised optimum pi* ∝ pi_ref exp(r / beta).

    ``rewards`` [P, m] are rewards of m samples from pi_ref per prompt. Self-normalised importance
    sampling: w_j = softmax(r / beta)_j, E*[r] = sum_j w_j r_j,
    KL(pi* || pi_ref) = sum_j w_j log(m w_j) = E*[r]/beta - log mean_j exp(r_j / beta).
    Both are averaged over prompts. A small ESS (relative to m) means few samples carry the
    weight and the estimates are unreliable (typically biased low for small beta).
    """
    r = _np(rewards)
    if r.ndim == 1:
        r = r[None]
    if beta <= 0:
        raise ValueError("beta > 0")
    z = r / beta
    zmax = z.max(axis=1, keepdims=True)
    log_w = z - (zmax + np.log(np.exp(z - zmax).sum(axis=1, keepdims=True)))
    w = np.exp(log_w)
    m = r.shape[1]
    return OptimalLimit(
        expected_reward=float((w * r).sum(axis=1).mean()),
        kl=float((w * (log_w + math.log(m))).sum(axis=1).mean()),
        ess=float((1.0 / (w ** 2).sum(axis=1)).mean()),
    )


# --------------------------------------------------------------------------- correlations

def within_prompt_corr(x, y, groups) -> float:
    """Mean over groups (prompts) of the within-group Pearson correlation of x and y.

    Groups with fewer than 2 items or zero variance in x or y are skipped; NaN if none remain.
    Used e.g. for implicit reward vs gold reward of several responses to one prompt.
    """
    x, y, g = _np(x).ravel(), _np(y).ravel(), np.asarray(groups).ravel()
    if not len(x) == len(y) == len(g):
        raise ValueError("x, y, groups must have the same length")
    corrs = []
    for key in np.unique(g):
        sel = g == key
        if sel.sum() < 2:
            continue
        xc, yc = x[sel] - x[sel].mean(), y[sel] - y[sel].mean()
        den = math.sqrt(float((xc ** 2).sum() * (yc ** 2).sum()))
        if den > 0:
            corrs.append(float((xc * yc).sum()) / den)
    return float(np.mean(corrs)) if corrs else math.nan


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


def _t_ppf(q: float, df: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(q)) if df == math.inf or df > 1e7 else float(stats.t.ppf(q, df))


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


def win_matrix(policy_scores, reference_scores, *, ties_eps: float = 0.0) -> np.ndarray:
    """[prompts, draws] of 1 / ½ / 0: each prompt's policy sample ([P]) against each reference draw ([P, K])."""
    p, r = _np(policy_scores), _np(reference_scores)
    if r.ndim == 1:
        r = r[:, None]
    if p.ndim != 1 or len(p) != len(r):
        raise ValueError(f"need policy scores [P] and reference scores [P, K], got {p.shape} and {r.shape}")
    return _win_scores(np.repeat(p[:, None], r.shape[1], axis=1), r, ties_eps)
