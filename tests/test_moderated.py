"""Smyth's (2004) empirical-Bayes moderated variances (bench/evaluation/moderated.py), against hand numbers and
simulation: the fit recovers a known prior, rows that agree pool, rows that differ borrow little."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.evaluation.moderated import INFINITE_DF, NO_PRIOR, Prior, fit_prior, pooled_variance


def test_pooled_variance_by_hand():
    s2, d = pooled_variance([1.0, 2.0, 3.0], [2.0, 4.0])
    # (1 + 0 + 1) + (1 + 1) = 4 over 3 + 2 - 2 = 3
    assert d == 3 and s2 == pytest.approx(4 / 3)


def test_moderation_by_hand():
    prior = Prior(s0_2=0.04, d0=6.0, rows=5)
    var, df = prior.moderate(0.01, 4)
    assert df == 10 and var == pytest.approx((6 * 0.04 + 4 * 0.01) / 10)
    assert NO_PRIOR.moderate(0.01, 4) == (0.01, 4.0)


def test_fit_recovers_a_known_prior():
    """Variances drawn from the model itself (σ² ~ d0 s0² / χ²_d0, then s² ~ σ² χ²_d / d): the moment estimates
    land near the truth."""
    rng = np.random.default_rng(0)
    d0, s0_2, d, g = 8.0, 0.05, 4, 4000
    sigma2 = d0 * s0_2 / rng.chisquare(d0, size=g)
    s2 = sigma2 * rng.chisquare(d, size=g) / d
    prior = fit_prior([(float(v), d) for v in s2])
    assert prior.rows == g
    assert prior.d0 == pytest.approx(d0, rel=0.25)
    assert prior.s0_2 == pytest.approx(s0_2, rel=0.1)


def test_rows_that_agree_pool_and_too_few_rows_fit_nothing():
    rng = np.random.default_rng(1)
    s2 = 0.02 * rng.chisquare(4, size=400) / 4  # one common variance: only sampling noise between rows
    prior = fit_prior([(float(v), 4) for v in s2])
    assert prior.d0 >= 50 or prior.d0 == INFINITE_DF
    assert prior.s0_2 == pytest.approx(0.02, rel=0.1)
    assert fit_prior([(0.1, 4), (0.2, 4)]) == NO_PRIOR
    assert fit_prior([(0.0, 4), (0.0, 4), (0.1, 4), (0.2, 4)]) == NO_PRIOR  # zero variances carry no log-variance


def test_rows_far_apart_borrow_little():
    spread = [(10.0 ** k, 4) for k in range(-4, 4)]  # variances over eight orders of magnitude
    prior = fit_prior(spread)
    assert 0 < prior.d0 < 1.0
    var, df = prior.moderate(1e-4, 4)
    assert df < 5 and math.log10(var) < -1
