"""Statistical estimators used by the evaluation (the metrics are defined in docs/results-schema.md).

The one uncertainty model (the crossed seeds × prompts interval every `_lo/_hi` uses) is bench/evaluation/crossed.py.

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
    "win_rate",
    "pairwise_accuracy",
    "bootstrap_ci",
    "win_rate_ci",
    "mean_ci",
    "t_quantile",
    "seed_ci",
    "kl_mc",
    "kl_k3",
    "kl_exact_tokenwise",
    "best_of_n_kl",
    "best_of_n_expected",
    "OptimalLimit",
    "kl_optimal_limit",
    "within_prompt_corr",
    "win_matrix",
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


def win_matrix(policy_scores, reference_scores, *, ties_eps: float = 0.0) -> np.ndarray:
    """[prompts, draws] of 1 / ½ / 0: each prompt's policy sample ([P]) against each reference draw ([P, K])."""
    p, r = _np(policy_scores), _np(reference_scores)
    if r.ndim == 1:
        r = r[:, None]
    if p.ndim != 1 or len(p) != len(r):
        raise ValueError(f"need policy scores [P] and reference scores [P, K], got {p.shape} and {r.shape}")
    return _win_scores(np.repeat(p[:, None], r.shape[1], axis=1), r, ties_eps)
