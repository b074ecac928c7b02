"""The one uncertainty model (bench/evaluation/estimators.py `crossed_bootstrap_means`, bench/evaluation/
uncertainty.py): hand numbers, pairing, range bounds, and the spread it reports against a known one."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.evaluation.estimators import (
    crossed_bootstrap_ci,
    crossed_bootstrap_means,
    paired_difference_ci,
    percentile_interval,
    win_matrix,
)
from bench.evaluation.uncertainty import from_frame


def test_constant_data_has_a_zero_width_interval():
    reps = crossed_bootstrap_means(np.full((3, 5, 4), 0.25), n_boot=200)
    assert np.allclose(reps, 0.25)


def test_two_seeds_by_hand():
    # seeds 0.70 and 0.72, one unit each: deviations ±0.01 inflated by sqrt(2/1); resampling 2 of 2 gives the
    # means 0.71 - 0.01√2 (p = 1/4), 0.71 (1/2), 0.71 + 0.01√2 (1/4): the 2.5% / 97.5% quantiles are the extremes
    mean, lo, hi = crossed_bootstrap_ci(np.array([[0.70], [0.72]]), n_boot=4000)
    assert mean == pytest.approx(0.71)
    assert lo == pytest.approx(0.71 - 0.01 * math.sqrt(2), abs=1e-12)
    assert hi == pytest.approx(0.71 + 0.01 * math.sqrt(2), abs=1e-12)


def test_one_seed_resamples_prompts_only():
    # one seed, prompts 0 and 1: the mean of 2 resampled prompts is 0, 1/2 or 1 with p = 1/4, 1/2, 1/4
    mean, lo, hi = crossed_bootstrap_ci(np.array([[0.0, 1.0]]), n_boot=4000)
    assert (mean, lo, hi) == (0.5, 0.0, 1.0)


def test_paired_replicates_share_every_resampled_index():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 30, 5))
    b = a - 0.05  # b is a shifted by a constant: every paired replicate of a − b is exactly 0.05
    d, lo, hi = paired_difference_ci(a, b, n_boot=300)
    assert (d, lo, hi) == pytest.approx((0.05, 0.05, 0.05))
    # and the replicates of two same-shaped arrays are drawn with the same indices
    assert np.allclose(crossed_bootstrap_means(a, seed=3) - crossed_bootstrap_means(b, seed=3), 0.05)


def test_bounds_clip_only_where_single_values_leave_the_range():
    kl = np.array([[-0.4, -0.2, 0.1, 0.05]])  # per-sample k1 estimates can be negative; KL >= 0
    mean, lo, hi = crossed_bootstrap_ci(kl, bounds=(0.0, math.inf))
    assert mean == 0.0 and lo == 0.0 and hi >= 0.0
    wins = win_matrix(np.array([1.0, 0.0, 2.0]), np.array([[0.0, 1.0], [0.0, 0.0], [3.0, 2.0]]))
    assert wins.tolist() == [[1.0, 0.5], [0.5, 0.5], [0.0, 0.5]]  # 1 vs 1 and 0 vs 0 tie: ½
    _, lo, hi = crossed_bootstrap_ci(wins[None], bounds=(0.0, 1.0))
    assert 0.0 <= lo <= hi <= 1.0
    assert percentile_interval(np.array([-0.2, 0.1, 1.3]), bounds=(0.0, 1.0)) == pytest.approx((0.0, 1.0))


def test_seed_spread_matches_the_known_standard_error():
    # a strong seed effect (sd 1) and small cell noise: the bootstrap SE of the grand mean must match the
    # textbook s/sqrt(S) of the seed means (within 10%), not the far smaller prompt-level SE
    rng = np.random.default_rng(0)
    s, p = 20, 100
    x = rng.normal(size=(s, 1)) + 0.1 * rng.normal(size=(s, p))
    se = float(np.std(crossed_bootstrap_means(x, n_boot=4000), ddof=1))
    textbook = float(x.mean(axis=1).std(ddof=1) / math.sqrt(s))
    assert se == pytest.approx(textbook, rel=0.1)


def test_interval_is_paired_across_settings_and_unresolved_with_one_scalar_seed():
    frame = pd.DataFrame({
        "run_id": ["a0", "a1", "b0", "b1", "c0"], "label": ["a", "a", "b", "b", "c"],
        "algorithm": ["dpo", "dpo", "ipo", "ipo", "ppo"], "seed": [0, 1, 0, 1, 0],
        "status": ["finished"] * 5, "win_rate": [0.60, 0.80, 0.55, 0.75, 0.9]})
    unc = from_frame(frame)
    iv = unc.difference("a", "b", "win_rate")  # seed by seed a − b = 0.05: paired, no spread
    assert (iv.mean, iv.lo, iv.hi, iv.seeds) == pytest.approx((0.05, 0.05, 0.05, 2))
    wide = unc.interval("a", "win_rate")  # unpaired, the seed spread shows
    assert wide.lo < 0.65 and wide.hi > 0.75
    assert math.isnan(unc.difference("a", "c", "win_rate").lo)  # one common seed, no units: not resolvable
