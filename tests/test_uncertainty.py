"""The one uncertainty model (bench/evaluation/estimators.py `crossed_components`, bench/evaluation/
uncertainty.py): hand numbers, the variance parts, pairing, range bounds, power projections; the previous model
(`crossed_bootstrap_means`, kept for comparison) keeps its hand-number tests. Coverage: tests/test_coverage.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.evaluation.crossed import (
    crossed_bootstrap_ci,
    crossed_bootstrap_means,
    crossed_ci,
    crossed_components,
    minimum_detectable,
    paired_difference_ci,
    percentile_interval,
    seeds_to_resolve,
)
from bench.evaluation.estimators import win_matrix
from bench.evaluation.uncertainty import from_frame


def test_constant_data_has_a_zero_width_interval():
    assert crossed_ci(np.full((3, 5, 4), 0.25)) == pytest.approx((0.25, 0.25, 0.25))
    reps = crossed_bootstrap_means(np.full((3, 5, 4), 0.25), n_boot=200)
    assert np.allclose(reps, 0.25)


def test_two_seeds_by_hand():
    # seeds 0.70 and 0.72, one unit each: s = 0.01·√2, se = s/√2 = 0.01, t_{0.975, 1} = 12.706
    mean, lo, hi = crossed_ci(np.array([[0.70], [0.72]]))
    assert mean == pytest.approx(0.71)
    assert (lo, hi) == pytest.approx((0.71 - 12.7062047 * 0.01, 0.71 + 12.7062047 * 0.01), abs=1e-6)


def test_anova_parts_by_hand():
    # 2 seeds × 3 prompts: y = [[1, 2, 6], [3, 4, 8]]; seed means 3, 5; prompt means 2, 3, 7; grand 4
    # MS_seeds = 3·var(3, 5) = 6; MS_prompts = 2·var(2, 3, 7) = 2·7 = 14; residuals all 0 → MS_resid = 0
    c = crossed_components(np.array([[1.0, 2.0, 6.0], [3.0, 4.0, 8.0]]))
    assert (c.mean, c.seed_var, c.shared_var, c.seed_df, c.shared_df) == pytest.approx((4.0, 1.0, 14 / 6, 1, 2))
    t1, t2 = stats.t.ppf(0.975, 1), stats.t.ppf(0.975, 2)
    assert c.half_width() == pytest.approx(math.sqrt(t1 ** 2 * 1.0 + t2 ** 2 * 14 / 6))  # Banerjee's RSS


def test_draws_are_averaged_into_their_prompt():
    x = np.random.default_rng(0).normal(size=(3, 7, 4))
    assert crossed_ci(x) == pytest.approx(crossed_ci(x.mean(axis=2)))


def test_one_seed_is_t_over_prompts():
    # one seed, prompts 0 and 1: se = sqrt(0.5 / 2) = 0.5, t_{0.975, 1} = 12.7: clipped to the rate's range
    assert crossed_ci(np.array([[0.0, 1.0]]), bounds=(0.0, 1.0)) == (0.5, 0.0, 1.0)
    x = np.random.default_rng(3).normal(size=(1, 200))
    _, lo, hi = crossed_ci(x)
    se = x.std(ddof=1) / math.sqrt(200)
    assert hi - lo == pytest.approx(2 * stats.t.ppf(0.975, 199) * se)


def test_paired_difference_cancels_what_both_share():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 30, 5))
    b = a - 0.05  # b is a shifted by a constant: the paired difference has no spread at all
    assert paired_difference_ci(a, b) == pytest.approx((0.05, 0.05, 0.05))


def test_shared_part_is_not_counted_twice():
    # pure seed × prompt interaction noise (no shared prompt effect): the shared part is ~0, the seed part carries
    # the noise once (the pigeonhole bootstrap counted it in both factors)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 400))
    c = crossed_components(x)
    assert c.shared_var < 0.2 * c.seed_var + 1e-4


def test_bounds_clip_only_where_single_values_leave_the_range():
    kl = np.array([[-0.4, -0.2, 0.1, 0.05]])  # per-sample k1 estimates can be negative; KL >= 0
    mean, lo, hi = crossed_ci(kl, bounds=(0.0, math.inf))
    assert mean == 0.0 and lo == 0.0 and hi >= 0.0
    wins = win_matrix(np.array([1.0, 0.0, 2.0]), np.array([[0.0, 1.0], [0.0, 0.0], [3.0, 2.0]]))
    assert wins.tolist() == [[1.0, 0.5], [0.5, 0.5], [0.0, 0.5]]  # 1 vs 1 and 0 vs 0 tie: ½
    _, lo, hi = crossed_ci(wins[None], bounds=(0.0, 1.0))
    assert 0.0 <= lo <= hi <= 1.0
    _, lo, hi = crossed_bootstrap_ci(wins[None], bounds=(0.0, 1.0))
    assert 0.0 <= lo <= hi <= 1.0
    assert percentile_interval(np.array([-0.2, 0.1, 1.3]), bounds=(0.0, 1.0)) == pytest.approx((0.0, 1.0))


def test_power_projection_shrinks_only_the_seed_part():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 1))[:, :, None] * 0.05 + rng.normal(size=(1, 256, 1)) * 0.1 + \
        rng.normal(size=(3, 256, 1)) * 0.2
    c = crossed_components(x)
    many = c.at_seeds(1000)
    assert many.shared_var == c.shared_var and many.seed_var == pytest.approx(c.seed_var * 3 / 1000)
    floor = stats.t.ppf(0.975, 255) * math.sqrt(c.shared_var)  # no seed count gets below the shared part
    assert seeds_to_resolve(c, floor * 0.9) is None
    n = seeds_to_resolve(c, c.half_width() / 2)
    assert n is not None and c.at_seeds(n).half_width() <= c.half_width() / 2 < c.at_seeds(n - 1).half_width()
    assert minimum_detectable(c) > c.half_width()


def test_old_model_two_seeds_by_hand():
    # the previous model: seeds 0.70 and 0.72 inflated by sqrt(2): quantiles 0.71 ∓ 0.01·√2
    mean, lo, hi = crossed_bootstrap_ci(np.array([[0.70], [0.72]]), n_boot=4000)
    assert (mean, lo, hi) == pytest.approx((0.71, 0.71 - 0.01 * math.sqrt(2), 0.71 + 0.01 * math.sqrt(2)), abs=1e-12)


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


def test_shares_of_samples_stay_inside_zero_and_one():
    """A seed that left the language (DPO β 0.03: 22%, 86%, 0% well-formed samples) made the unclipped t interval
    of `grammatical_fraction` read [−74%, 147%]; shares are bounded like win rates."""
    frame = pd.DataFrame({"run_id": ["a0", "a1", "a2"], "label": ["a"] * 3, "algorithm": ["dpo"] * 3,
                          "seed": [0, 1, 2], "status": ["finished"] * 3,
                          "grammatical_fraction": [0.22, 0.86, 0.0], "ended_fraction": [0.3, 1.0, 0.1]})
    unc = from_frame(frame)
    for metric in ("grammatical_fraction", "ended_fraction"):
        iv = unc.interval("a", metric)
        assert 0.0 <= iv.lo <= iv.mean <= iv.hi <= 1.0, (metric, iv)
        assert iv.lo == 0.0 or iv.hi == 1.0  # clipped: three seeds this far apart span the whole range


def test_a_contrast_adds_a_settings_weights_and_keeps_the_metrics_range():
    """Uncertainty.contrast: a setting named twice has its weights added (a − a is exactly 0, as difference(a, a)
    always read), and an interpolated contrast a − ½b − ½c of a win rate stays inside [−1, 1]."""
    import numpy as np
    import pandas as pd

    from bench.evaluation.uncertainty import from_frame

    rng = np.random.default_rng(0)
    rows = [{"run_id": f"{s}_{seed}", "label": s, "algorithm": "fake", "seed": seed, "status": "finished",
             "win_rate": float(rng.uniform(0.3, 0.7))} for s in ("a", "b", "c") for seed in range(3)]
    unc = from_frame(pd.DataFrame(rows))
    names = {n[0]: n for n in unc.settings}
    same = unc.difference(names["a"], names["a"], "win_rate")
    assert (same.mean, same.lo, same.hi, same.seeds) == (0.0, 0.0, 0.0, 3)
    iv = unc.contrast([(names["a"], 1.0), (names["b"], -0.5), (names["c"], -0.5)], "win_rate")
    by_hand = np.mean([rows[i]["win_rate"] - 0.5 * rows[3 + i]["win_rate"] - 0.5 * rows[6 + i]["win_rate"]
                       for i in range(3)])
    assert iv.mean == pytest.approx(by_hand) and -1.0 <= iv.lo <= iv.mean <= iv.hi <= 1.0
    assert unc.difference(names["a"], names["b"], "win_rate").mean == pytest.approx(
        unc.contrast({names["a"]: 1.0, names["b"]: -1.0}, "win_rate").mean)
