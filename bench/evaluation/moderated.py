"""Empirical-Bayes moderated variances for many small comparisons (Smyth 2004, the limma method).

`bench check` compares each (setting, metric) row of a fresh result with its baseline over a handful of seeds:
3 + 3 values give a variance with 4 degrees of freedom, and a family of ~100 rows corrected by Holm needs a
one-sided level near 0.0005, where Student's t with 4 df asks for 8.6 standard errors. Such a check cannot flag a
KL that more than doubled. The rows of one metric share a scale, though: DPO's, IPO's and cDPO's seed spreads of KL
say something about each other. Smyth's model lets them: each row's true variance σ²_i is a draw from a scaled
inverse χ² prior with d0 degrees of freedom around s0²; the posterior mean of 1/σ²_i gives the moderated variance

    s̃²_i = (d0 s0² + d_i s²_i) / (d0 + d_i)

and t = move / √(s̃²_i (1/n_a + 1/n_b)) is Student's t with d0 + d_i degrees of freedom under the null, exactly,
when the prior holds (Smyth 2004, Theorem 2). d0 and s0² are estimated from the rows' own log-variances by moments
(Smyth 2004, §6.2): the more the rows' variances differ beyond what their own sampling noise explains, the smaller
d0, and the less a row borrows (d0 → 0 is the row's own t; rows that agree give d0 → ∞, a pooled variance).

Reference: G. K. Smyth (2004), "Linear models and empirical Bayes methods for assessing differential expression in
microarray experiments", Statistical Applications in Genetics and Molecular Biology 3(1), article 3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

INFINITE_DF = 1e6  # d0 when the rows' variances agree beyond their sampling noise: a pooled variance


@dataclass(frozen=True)
class Prior:
    """The fitted prior of one metric's row variances: s0² (its scale) and d0 (its strength, in degrees of freedom)."""

    s0_2: float
    d0: float
    rows: int  # rows with a positive variance the fit used

    def moderate(self, s2: float, d: int) -> tuple[float, float]:
        """(s̃², its degrees of freedom) for a row with sample variance s2 on d degrees of freedom."""
        if self.d0 <= 0:
            return s2, float(d)
        if self.d0 >= INFINITE_DF:
            return self.s0_2, INFINITE_DF + d
        return (self.d0 * self.s0_2 + d * s2) / (self.d0 + d), self.d0 + d


NO_PRIOR = Prior(0.0, 0.0, 0)


def pooled_variance(a: list[float], b: list[float]) -> tuple[float, int]:
    """The two samples' pooled variance and its degrees of freedom (n_a + n_b − 2): under a check's null the two
    sides are the same algorithm, so they share one seed variance."""
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    ss = sum((x - ma) ** 2 for x in a) + sum((x - mb) ** 2 for x in b)
    d = na + nb - 2
    return ss / d, d


def _trigamma_inverse(y: float) -> float:
    """x > 0 with ψ'(x) = y (ψ' falls from ∞ to 0, so the root is unique)."""
    from scipy import optimize, special

    f = lambda x: float(special.polygamma(1, x)) - y  # noqa: E731
    lo, hi = 1e-8, 1.0
    while f(hi) > 0:
        hi *= 2.0
        if hi > 1e12:
            return hi
    return float(optimize.brentq(f, lo, hi, xtol=1e-12, rtol=1e-10))


def fit_prior(variances: list[tuple[float, int]]) -> Prior:
    """Smyth's moment estimates of (s0², d0) from rows' (s², d); rows with s² = 0 (a deterministic reading) carry no
    log-variance and are left out. Fewer than 3 usable rows: no prior (each row keeps its own variance)."""
    from scipy import special

    rows = [(s2, d) for s2, d in variances if s2 > 0 and d > 0 and math.isfinite(s2)]
    g = len(rows)
    if g < 3:
        return NO_PRIOR
    e = [math.log(s2) - float(special.digamma(d / 2)) + math.log(d / 2) for s2, d in rows]
    mean_e = sum(e) / g
    spread = sum((x - mean_e) ** 2 for x in e) / (g - 1) - sum(float(special.polygamma(1, d / 2)) for _, d in rows) / g
    if spread <= 0:  # the variances agree as well as their sampling noise allows: pool them
        return Prior(math.exp(mean_e), INFINITE_DF, g)
    d0 = 2.0 * _trigamma_inverse(spread)
    if d0 >= INFINITE_DF:
        return Prior(math.exp(mean_e), INFINITE_DF, g)
    s0_2 = math.exp(mean_e + float(special.digamma(d0 / 2)) - math.log(d0 / 2))
    return Prior(s0_2, d0, g)
