"""Where the limits are valid, and how far from them a policy is (frontier efficiency). Pure functions of the
limits record (bench/evaluation/limits.py) and of numbers; no model, no file.

- Best-of-n from m π_ref samples per prompt is exact for n ≤ m (order statistics,
  `estimators.best_of_n_expected`); its KL is log n − (n−1)/n (Stiennon et al. 2020; an upper bound, Beirami et
  al. 2024), so m samples cover KL up to log m − (m−1)/m and no further.
- π* ∝ π_ref·exp(r/β) by self-normalised importance sampling (Rafailov et al. 2023, Eq. 4) is trusted only where
  its effective sample size is at least `MIN_ESS_FRACTION` of m; its KL can never exceed log m. A relative ESS
  rule caps π*'s reach whatever m is: ESS/m → 1/E_ref[w²] = exp(−D₂(π*‖π_ref)) (Rényi-2 divergence), so
  ESS ≥ 10% of m means D₂ ≤ log 10 and KL ≤ D₂ ≤ 2.30 nats. Measured on the default world: valid to KL 1.50
  with m = 64 and 1.65 with m = 1024; best-of-n, exact for n ≤ m, is the only limit beyond.
- `samples_to_cover(kl)`: the m (a power of two) whose best-of-n reaches a KL, so `limit_samples` can be raised
  to the KL a suite's runs reach.
- Frontier efficiency of a policy at KL k: (its gold − π_ref's gold) / (limit's gold at k − π_ref's gold), the
  fraction of the improvement attainable at that KL it achieved (1 = on the limit; NaN beyond a valid estimate).
  Per prompt, the numerator is paired (the policy's sample against that prompt's π_ref draws); the denominator
  is one number per run (read at the run's KL), so a seed's KL moves it and the seed part of the one uncertainty
  model (crossed.crossed_components) carries that; the limit's own sampling error (128 prompts × m draws) is
  not propagated — it is small next to the policy's, and stated where the efficiency is shown.
"""

from __future__ import annotations

import math

import numpy as np

from bench.evaluation.estimators import best_of_n_kl

MIN_ESS_FRACTION = 0.1   # π* estimates below this ESS / m are not drawn, nor used for efficiency
MAX_LIMIT_SAMPLES = 1024  # best-of-1024 reaches KL 5.93; beyond that the chart says "no limit estimate"


def samples_to_cover(kl: float, *, least: int = 2, most: int = MAX_LIMIT_SAMPLES) -> int:
    """The smallest power of two m ≥ `least` with best-of-m's KL ≥ `kl` (capped at `most`)."""
    m = 1
    while m < least:
        m *= 2
    while m < most and not best_of_n_kl(m) >= kl:
        m *= 2
    return min(m, most)


def valid_optimum(rows: list[dict]) -> list[dict]:
    """The π* rows whose ESS fraction is ≥ MIN_ESS_FRACTION and whose numbers are finite, sorted by KL."""
    out = [r for r in rows if _finite(r.get("kl")) and _finite(r.get("gold_reward"))
           and float(r.get("ess_fraction", 0.0)) >= MIN_ESS_FRACTION]
    return sorted(out, key=lambda r: float(r["kl"]))


def limit_curve(limits: dict, which: str) -> tuple[np.ndarray, np.ndarray]:
    """(KL, gold) of a limit ("optimum": valid π* rows, "best_of_n"), starting at (0, π_ref's gold), increasing KL.

    Only valid points: best-of-n rows are exact for n ≤ m; π* rows pass `valid_optimum`."""
    ref = float(limits.get("reference_gold_reward", math.nan))
    rows = valid_optimum(limits.get("kl_optimal") or []) if which == "optimum" else \
        sorted([r for r in limits.get("best_of_n") or [] if _finite(r.get("kl"))], key=lambda r: float(r["kl"]))
    kl = [0.0] + [float(r["kl"]) for r in rows if float(r["kl"]) > 0]
    gold = [ref] + [float(r["gold_reward"]) for r in rows if float(r["kl"]) > 0]
    return np.asarray(kl), np.asarray(gold)


def limit_reach(limits: dict) -> float:
    """The largest KL at which either limit has a valid estimate (0 when none)."""
    return max(float(limit_curve(limits, "optimum")[0].max()), float(limit_curve(limits, "best_of_n")[0].max()))


def limit_at(kl: float, limits: dict, which: str) -> float:
    """The limit's gold at KL `kl` (linear interpolation between valid points); NaN beyond its last valid point.

    π*'s curve is concave in KL (reward against KL of the exponential tilt), so the chord under-states it a little
    between grid points: efficiencies err high by at most the chord gap (≤ 0.02 on the default grid)."""
    x, y = limit_curve(limits, which)
    if not (_finite(kl) and len(x) > 1) or kl > x[-1] + 1e-12:
        return math.nan
    return float(np.interp(max(kl, 0.0), x, y))


def efficiency_units(policy_gold, reference_gold, kl: float, limits: dict, which: str = "optimum") -> np.ndarray:
    """Per prompt: (policy gold − mean of that prompt's π_ref draws) / (limit gold at `kl` − π_ref's gold).

    `policy_gold` [P], `reference_gold` [P] or [P, K]; the mean over prompts is the run's frontier efficiency.
    All NaN when the limit has no valid estimate at `kl`, or its gain there is ≤ 0."""
    g = np.asarray(policy_gold, dtype=float)
    r = np.asarray(reference_gold, dtype=float)
    r = r.mean(axis=1) if r.ndim == 2 else r
    gain = limit_at(kl, limits, which) - float(limits.get("reference_gold_reward", math.nan))
    if not (_finite(gain) and gain > 0):
        return np.full(g.shape, math.nan)
    return (g - r) / gain


def efficiency(gold: float, reference_gold: float, kl: float, limits: dict, which: str = "optimum") -> float:
    """Scalar frontier efficiency (gold, π_ref's gold on the same prompts, KL)."""
    return float(efficiency_units(np.array([gold]), np.array([reference_gold]), kl, limits, which)[0])


def _finite(x) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
