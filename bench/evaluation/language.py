"""Seeds that left the language: the one rule that says which runs did, and the failure-aware reading of a setting.

A run *left the language* when the share of its samples that parse as the controlled world's grammar fell below the
floor: min(GRAMMATICAL_FLOOR, sft's mean share − 0.1) (the tuning suites' selection floor, or 10 points below what
π_ref itself writes where that is lower). Such seeds are the heavy tail of a setting's seed values: on the default
world SimPO's 14 seeds hold two at 53% and 67% well-formed whose win rates (0.39, 0.47) sit ten within-mode standard
deviations below the other twelve (benchmarks/coverage.py).

Why a reading of its own. The t interval over seeds (bench/evaluation/crossed.py) is valid for seeds that behave
alike; a mean over seeds with a rare failure mode cannot be covered from 3–5 draws by any interval that is not
uselessly wide — with no failing seed among the n drawn, nothing in the data says the mode exists (Bahadur &
Savage 1956: no nontrivial confidence interval for a mean holds over all distributions). So beside the mean (kept,
with every seed) the report states the two quantities that *can* be estimated honestly at these seed counts:

  * the failure rate, k of n seeds, with its exact Clopper–Pearson (1934) interval — valid for any k and n, and
    the statement of what 3 clean seeds do not rule out (0 of 3: up to 71% at 95%);
  * the mean over the seeds that stayed in the language, with the one uncertainty model's interval over them.

The coverage benchmark scores both on real seeds; tests/test_coverage.py on a synthetic failure mode.
"""

from __future__ import annotations

import math

import pandas as pd

GRAMMATICAL_FLOOR = 0.8  # the tuning suites' selection floor (suites/controlled-tune.toml): below it a seed has left
                         # the language (or, where π_ref itself writes less well-formed text, 0.1 below π_ref's share)


def language_floor(runs: pd.DataFrame) -> float:
    """The grammatical share below which a run has left the language: min(GRAMMATICAL_FLOOR, sft's mean − 0.1)."""
    g = pd.to_numeric(runs["grammatical_fraction"], errors="coerce")
    sft = g[(runs["algorithm"] == "sft") & (runs["status"] == "finished")]
    return min(GRAMMATICAL_FLOOR, float(sft.mean()) - 0.1) if sft.notna().any() else GRAMMATICAL_FLOOR


def off_language(runs: pd.DataFrame) -> pd.Series:
    """Per run (same index): True where the run's samples left the language — its `grammatical_fraction` is below
    `language_floor`. Runs without a grammatical share (a world without a grammar, a failed run) never are."""
    if not len(runs) or "grammatical_fraction" not in runs:
        return pd.Series(False, index=runs.index)
    g = pd.to_numeric(runs["grammatical_fraction"], errors="coerce")
    return (g < language_floor(runs)) & (runs["status"] == "finished")


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The exact (Clopper & Pearson 1934) 1 − alpha interval of a binomial rate from k successes in n trials: it
    covers at least nominally for every rate and n, so it is the honest statement at 3–10 seeds."""
    from scipy import stats

    if n <= 0:
        return math.nan, math.nan
    lo = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def failure_aware(unc, setting: str, off_run_ids: set[str], metric: str = "win_rate") -> dict:
    """The failure-aware reading of one setting: k of n finished seeds left the language, their rate's
    Clopper–Pearson interval, and `metric`'s interval over the seeds that stayed (the one uncertainty model on that
    subset; NaN with fewer than one). `unc`: bench.evaluation.uncertainty.Uncertainty."""
    finished = [r for r in unc.settings.get(setting, []) if unc.runs[r]["metrics"].get("status") == "finished"]
    stayed = [r for r in finished if r not in off_run_ids]
    k, n = len(finished) - len(stayed), len(finished)
    lo, hi = clopper_pearson(k, n)
    iv = unc.subset({setting: stayed}).interval(setting, metric) if stayed else None
    return {"off": k, "seeds": n, "rate": k / n if n else math.nan, "rate_lo": lo, "rate_hi": hi,
            "stayed": len(stayed), "mean": iv.mean if iv else math.nan, "lo": iv.lo if iv else math.nan,
            "hi": iv.hi if iv else math.nan}
