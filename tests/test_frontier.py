"""Issue 25 with hand numbers and planted effects: the exact best-of-n estimator, the ESS rule, the samples that
cover a KL, the frontier efficiency, the Gao et al. (2022) fits, the quality-adjusted displacement and CHES."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench.evaluation.displacement import adjusted_units, ches, displacement_readings, raw_units
from bench.evaluation.crossed import crossed_ci
from bench.evaluation.estimators import best_of_n_kl
from bench.evaluation.frontier import (
    MIN_ESS_FRACTION,
    efficiency,
    efficiency_units,
    limit_at,
    limit_reach,
    samples_to_cover,
    valid_optimum,
)
from bench.evaluation.gao import better_form, fit_form, fit_seeds
from bench.evaluation.limits import limit_rows


def test_best_of_n_exact_from_the_empirical_distribution():
    # rewards {1, 2, 3}: best of 1 = 2; best of 2 over the 3 subsets = (2 + 3 + 3) / 3; best of 3 = 3
    bon, _ = limit_rows(np.array([[3.0, 1.0, 2.0], [3.0, 1.0, 2.0]]))
    assert [r["n"] for r in bon] == [1, 2]  # n ≤ m only (4 > 3)
    assert bon[0]["gold_reward"] == pytest.approx(2.0)
    assert bon[1]["gold_reward"] == pytest.approx(8 / 3)
    assert bon[1]["kl"] == pytest.approx(math.log(2) - 0.5)
    # two prompts with different rewards: the interval is over prompts and contains the mean
    bon, _ = limit_rows(np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]]))
    best4 = [r for r in bon if r["n"] == 4][0]
    assert best4["gold_reward"] == pytest.approx((3.0 + 1.0) / 2)
    assert best4["gold_lo"] < 2.0 < best4["gold_hi"]


def test_ess_rule_keeps_only_well_supported_optimum_rows():
    # one high reward among 100 zeros: small beta puts all the weight on one sample (ESS ≈ 1 of 101: 1%)
    rewards = np.zeros((4, 101))
    rewards[:, 0] = 5.0
    _, opt = limit_rows(rewards)
    by_beta = {r["beta"]: r for r in opt}
    assert by_beta[0.05]["ess_fraction"] < MIN_ESS_FRACTION and not by_beta[0.05]["valid"]
    assert by_beta[5.0]["ess_fraction"] > 0.5 and by_beta[5.0]["valid"]
    kept = valid_optimum(opt)
    assert all(r["ess_fraction"] >= MIN_ESS_FRACTION for r in kept)
    assert [r["kl"] for r in kept] == sorted(r["kl"] for r in kept)
    # hand rows: the rule is ≥ 10%, NaNs are dropped
    rows = [{"kl": 1.0, "gold_reward": 1.0, "ess_fraction": 0.1}, {"kl": 2.0, "gold_reward": 1.5,
            "ess_fraction": 0.099}, {"kl": float("nan"), "gold_reward": 1.0, "ess_fraction": 0.5}]
    assert valid_optimum(rows) == rows[:1]


def test_samples_to_cover_a_kl():
    assert best_of_n_kl(64) == pytest.approx(math.log(64) - 63 / 64)   # 3.17
    assert samples_to_cover(3.17) == 64
    assert samples_to_cover(3.2) == 128
    assert samples_to_cover(0.0, least=64) == 64
    assert samples_to_cover(50.0) == 1024  # capped: beyond it the chart says "no limit estimate"


LIMITS = {"reference_gold_reward": 0.0,
          "kl_optimal": [{"kl": 1.0, "gold_reward": 1.0, "ess_fraction": 0.5},
                         {"kl": 2.0, "gold_reward": 1.5, "ess_fraction": 0.3},
                         {"kl": 3.0, "gold_reward": 2.0, "ess_fraction": 0.05}],   # not valid
          "best_of_n": [{"n": 1, "kl": 0.0, "gold_reward": 0.0}, {"n": 2, "kl": best_of_n_kl(2), "gold_reward": 0.4},
                        {"n": 4, "kl": best_of_n_kl(4), "gold_reward": 0.8}]}


def test_efficiency_ratio_by_hand():
    assert limit_at(1.5, LIMITS, "optimum") == pytest.approx(1.25)
    assert limit_at(0.5, LIMITS, "optimum") == pytest.approx(0.5)
    assert math.isnan(limit_at(2.5, LIMITS, "optimum"))            # beyond the last valid π* point
    assert limit_reach(LIMITS) == pytest.approx(2.0)
    # gold 0.5 over π_ref's 0 at KL 1.5, where π* gains 1.25: 40% of the attainable improvement
    assert efficiency(0.5, 0.0, 1.5, LIMITS) == pytest.approx(0.4)
    # best-of-n: at KL log 4 − 3/4 best-of-4 gains 0.8
    assert efficiency(0.4, 0.0, best_of_n_kl(4), LIMITS, "best_of_n") == pytest.approx(0.5)
    assert math.isnan(efficiency(0.4, 0.0, 2.5, LIMITS))
    # per prompt: paired against each prompt's π_ref draws; the mean is the run's efficiency
    units = efficiency_units([1.0, 0.0], [[0.0, 0.5], [0.0, 0.0]], 1.0, LIMITS)
    assert units == pytest.approx([0.75, 0.0])


def test_gao_fits_recover_planted_coefficients():
    d = np.linspace(0.2, 3.0, 15)
    fit = fit_form(d ** 2, d * (1.0 - 0.3 * d), "bon")
    assert (fit.alpha, fit.beta) == pytest.approx((1.0, 0.3))
    assert fit.r2 == pytest.approx(1.0)
    assert fit.peak_d == pytest.approx(1.0 / 0.6) and fit.peak_observed
    rl = fit_form(d ** 2, d * (1.0 - 0.5 * np.log(d)), "rl")
    assert (rl.alpha, rl.beta) == pytest.approx((1.0, 0.5))
    assert rl.peak_d == pytest.approx(math.e)
    assert better_form({"bon": fit_form(d ** 2, d * (1.0 - 0.5 * np.log(d)), "bon"), "rl": rl}) == "rl"
    # three noisy seeds: the t interval over seeds contains the truth, and the right form wins
    rng = np.random.default_rng(0)
    seeds = [(d ** 2, d * (0.8 - 0.25 * d) + rng.normal(0, 0.02, d.size)) for _ in range(3)]
    out = fit_seeds(seeds)
    assert out["better"] == "bon"
    mean, lo, hi = out["bon"]["alpha"]
    assert lo < 0.8 < hi and abs(mean - 0.8) < 0.05
    mean, lo, hi = out["bon"]["beta"]
    assert lo < 0.25 < hi


def _planted(effect: float, n_pairs: int = 300, n_control: int = 400, seed: int = 0) -> pd.DataFrame:
    """Δlog π = 0.5·gold − 0.05·length + 0.3·well-formed + noise for every completion, plus `effect` on chosen
    ones only: chosen are better and shorter, rejected worse and longer (the confound of the issue)."""
    rng = np.random.default_rng(seed)
    rows = []
    for group, n, gold_mu, len_mu in (("chosen", n_pairs, 1.0, 8), ("rejected", n_pairs, -1.0, 12),
                                      ("control", n_control, 0.0, 10)):
        gold = rng.normal(gold_mu, 1.0, n)
        length = rng.poisson(len_mu, n).astype(float) + 1
        wf = (rng.random(n) < (0.98 if group == "chosen" else 0.9)).astype(float)
        delta = 0.5 * gold - 0.05 * length + 0.3 * wf + rng.normal(0, 0.5, n) + (effect if group == "chosen" else 0)
        rows.append(pd.DataFrame({"split": "control" if group == "control" else "heldout", "unit": np.arange(n),
                                  "group": group, "delta": delta, "delta_per_token": delta / length,
                                  "length": length, "gold": gold, "well_formed": wf}))
    return pd.concat(rows, ignore_index=True)


def test_adjusted_displacement_finds_a_planted_effect_and_removes_the_confound():
    for effect in (-0.3, 0.0):
        frame = _planted(effect)
        r = displacement_readings(frame, "heldout")
        value, units, infl = r["adjusted_chosen_minus_rejected_seq"]
        assert infl.mean() == pytest.approx(value)          # influence values average to the estimate
        _, lo, hi = crossed_ci(infl[None])
        assert lo < effect < hi and hi - lo < 0.4
        raw, _, raw_infl = r["raw_chosen_minus_rejected_seq"]
        assert raw > effect + 0.7                             # the raw contrast carries the quality gap (≈ 1.2)
        _, rlo, _ = crossed_ci(raw_infl[None])
        assert rlo > effect + 0.3                             # and its interval excludes the planted effect
        v, _, _ = r["adjusted_chosen_vs_control_seq"]
        assert v == pytest.approx(effect, abs=0.15)


def test_raw_contrast_is_the_difference_of_means():
    y = np.array([1.0, 3.0, 0.0, 2.0, 5.0])
    group = np.array(["chosen", "chosen", "rejected", "rejected", "control"])
    unit = np.array(["p0", "p1", "p0", "p1", "c0"])
    c, units, infl = raw_units(y, group, unit, {"chosen": 1.0, "rejected": -1.0})
    assert c == pytest.approx(2.0 - 1.0)
    assert infl.mean() == pytest.approx(c)
    c, _, _ = raw_units(y, group, unit, {"chosen": 1.0})
    assert c == pytest.approx(2.0 - 5.0)
    # a constant covariate is dropped (collinear with the intercept), not a singular fit
    c, _, _ = adjusted_units(y, group, {"well_formed": np.ones(5)}, unit, {"chosen": 1.0, "rejected": -1.0})
    assert c == pytest.approx(1.0)


def test_ches_by_hand():
    # Razin et al. 2024: CHES = <h+, h-> - ||h+||^2
    assert ches(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))[0] == pytest.approx(-1.0)
    assert ches(np.array([[1.0, 1.0]]), np.array([[1.0, 1.0]]))[0] == pytest.approx(0.0)
    assert ches(np.array([[2.0, 0.0]]), np.array([[4.0, 2.0]]))[0] == pytest.approx(8.0 - 4.0)
    # length-normalised: each sum divided by its length
    assert ches(np.array([[2.0, 0.0]]), np.array([[4.0, 2.0]]), [2], [2])[0] == pytest.approx(2.0 - 1.0)


def test_limit_shape_raises_samples_and_keeps_the_sampling_cost():
    from types import SimpleNamespace

    from bench.evaluation.limits import limit_shape

    ev = SimpleNamespace(limit_samples=64, limit_prompts=128)
    assert limit_shape(ev) == (128, 64)
    assert limit_shape(ev, 3.0) == (128, 64)          # best-of-64 already reaches KL 3.17
    assert limit_shape(ev, 5.0) == (16, 512)          # best-of-512: KL 5.24; 128 × 64 draws kept
    assert limit_shape(ev, 40.0) == (16, 1024)        # capped; never fewer than 16 prompts


def test_runs_reach_kl_reads_metrics_and_curves(tmp_path):
    from bench.world_record import runs_reach_kl

    run = tmp_path / "runs" / "a"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"kl_tokenwise": 1.5}')
    (run / "curves.csv").write_text("step,kl_tokenwise\n0,0\n5,2.75\n6,\n")
    assert runs_reach_kl(tmp_path) == pytest.approx(2.75)
    assert runs_reach_kl(tmp_path / "missing") == 0.0


def test_run_fit_metrics_from_curve_rows():
    from bench.evaluation.gao import run_fit_metrics

    d = np.linspace(0.3, 2.5, 8)
    rows = [{"split": "heldout", "kl_tokenwise": float(x * x), "gold_reward": float(x * (1.2 - 0.4 * x)) - 1.0,
             "reference_gold_reward": -1.0} for x in d]
    rows += [{"split": "train", "kl_tokenwise": 9.0, "gold_reward": 9.0, "reference_gold_reward": 0.0},
             {"split": "heldout", "chosen_logp": -3.0}]  # drift-only rows are skipped
    out = run_fit_metrics(rows)
    assert out["gao_bon_alpha"] == pytest.approx(1.2) and out["gao_bon_beta"] == pytest.approx(0.4)
    assert out["gao_bon_peak_sqrt_kl"] == pytest.approx(1.5) and out["gao_better"] == "bon"
    assert run_fit_metrics(rows[:2]) == {}


def test_a_trained_run_records_its_gao_fits_in_metrics_and_summary(tmp_path):
    """Issue 25: every trained run fits both of Gao et al.'s forms to its own held-out curve (metrics.json) and
    summary.csv carries them; the leaderboard shows the efficiency against best-of-n."""
    import json

    import pandas as pd

    from bench.reporting.tables import LEADERBOARD
    from bench.runner import run_suite
    from bench.suite import load_suite
    from tiny_suite import one_thread, write_tiny_suite

    suite = load_suite(write_tiny_suite(tmp_path, "gao"))
    with one_thread():
        outcome = run_suite(suite, results_root=tmp_path / "results", cache_dir=tmp_path / "cache", device="cpu")
    (run,) = (outcome.results_dir / "runs").iterdir()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "finished", metrics.get("error")
    for form in ("rl", "bon"):
        for part in ("alpha", "beta", "r2"):
            assert math.isfinite(metrics[f"gao_{form}_{part}"]), (form, part)
    assert metrics["gao_better"] in ("rl", "bon")
    frame = pd.read_csv(outcome.results_dir / "summary.csv")
    assert frame["gao_rl_alpha"].iloc[0] == pytest.approx(metrics["gao_rl_alpha"], rel=1e-4)
    assert "frontier_efficiency_bon" in [m.key for m in LEADERBOARD]


def test_gao_fit_across_a_sweep_recovers_a_planted_curve():
    """A β sweep's settings, each one final point per seed, lie on gain = d(1.2 − 0.4 d) (best-of-n form): the row
    fitted across the sweep recovers α and β, and R² stays <= 1 in its interval."""
    import numpy as np
    import pandas as pd

    from bench.reporting.gao_table import gao_fits

    betas = [0.03, 0.1, 0.3, 1.0]
    sqrt_kl = {0.03: 2.5, 0.1: 1.6, 0.3: 1.0, 1.0: 0.5}
    runs, curves = [], []
    for b in betas:
        for seed in (0, 1, 2):
            d = sqrt_kl[b] * (1 + 0.01 * seed)
            run_id = f"dpo_b{b}_s{seed}"
            runs.append({"run_id": run_id, "setting": f"dpo (beta={b})", "seed": seed, "status": "finished",
                         "kl_tokenwise": d * d, "gold_reward": -1.0 + d * (1.2 - 0.4 * d), "gao_rl_alpha": np.nan})
            curves.append({"run_id": run_id, "split": "heldout", "reference_gold_reward": -1.0})
    board = pd.DataFrame({"label": "dpo", "algorithm": "dpo", "beta": betas,  # the swept column sits before setting
                          "setting": [f"dpo (beta={b})" for b in betas]})
    g = gao_fits(pd.DataFrame(runs), board, pd.DataFrame(curves))  # no per-run fits: only the sweep row
    row = g[g["setting"] == "dpo (across its 4 settings)"].iloc[0]
    assert row["bon_alpha"] == pytest.approx(1.2, abs=1e-6) and row["bon_beta"] == pytest.approx(0.4, abs=1e-6)
    assert row["better_bon"] == 3 and row["bon_r2_hi"] <= 1.0
    # settings that differ only by a suite-level axis (budget views, budgets, worlds) are not a sweep to fit across
    views = board.drop(columns="beta").assign(budget_view=["end_to_end", "amortised", "both", "x"])
    views = views[["label", "algorithm", "budget_view", "setting"]]
    assert not (gao_fits(pd.DataFrame(runs), views, pd.DataFrame(curves))["setting"].str.contains("across")).any()
