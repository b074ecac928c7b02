"""Coverage of the one uncertainty model, proven on synthetic crossed data with a known truth (issue 21).

The design the harness measures: S training seeds × P shared test prompts × K shared reference draws per prompt,
two algorithms paired by seed (common random numbers). Cells: S ∈ {3, 5, 10}; variance that is training-dominated
(seed effects), evaluation-dominated (per-run sample noise and the shared prompts/draws) or mixed; seed effects
normal, heavy-tailed (Student t, 3 df) or skewed (10% of seeds "leave the language": a drop of 3 units); true
difference 0 or 0.05. Each cell: 2000 independent data sets, so coverage is known to ±1.1% (95%), within the
issue's ±1.5%. The interval must cover the truth (population difference, and each algorithm's population mean) in
[93%, 99%] of them in every cell. The previous model (the pigeonhole percentile bootstrap) is printed beside it on
150 of the data sets (`pytest -s tests/test_coverage.py`), and shown to fail where training noise dominates at 3
seeds. ~30 s on one free core.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.evaluation.crossed import crossed_batch, crossed_bootstrap_means, crossed_ci, percentile_interval

P, K, REPS, OLD_REPS = 48, 4, 2000, 150
# regime → (seed effect sd, per-(prompt, draw) sd of each algorithm's own prompt effect, per-cell noise sd)
REGIMES = {"training": (0.05, 0.08, 0.16), "evaluation": (0.002, 0.16, 0.24), "mixed": (0.02, 0.08, 0.16)}
SHARED_PROMPT_SD = 0.1  # prompt difficulty both algorithms share: cancels in the paired difference
TAILS = ("normal", "heavy", "skewed")


def seed_effects(rng, tail: str, size) -> np.ndarray:
    """Unit-variance, mean-zero seed effects."""
    if tail == "normal":
        return rng.normal(size=size)
    if tail == "heavy":
        return rng.standard_t(3, size=size) / math.sqrt(3)
    z = 0.6 * rng.normal(size=size) - 3.0 * (rng.random(size) < 0.1)  # a seed that leaves the language drops
    return (z + 0.3) / math.sqrt(0.36 + 0.81)


def crossed_pair(rng, seeds: int, regime: str, tail: str, effect: float, reps: int, regimes=REGIMES):
    """(a, b) [reps, seeds, P]: two algorithms on the same prompts and draws, a − b = effect in truth. Each cell is
    already the mean over its prompt's K draws (the model averages draws first, `test_batch_matches_the_one_model`
    checks that path), so the (prompt, draw) and cell noise enter with sd / sqrt(K): the same distribution as
    drawing [reps, seeds, P, K] and averaging, at a quarter of the cost."""
    sa, sb, se = regimes[regime]
    shared = SHARED_PROMPT_SD * rng.normal(size=(reps, 1, P))

    def algorithm(mu):
        return (mu + sa * seed_effects(rng, tail, (reps, seeds, 1)) + sb / math.sqrt(K) * rng.normal(size=(reps, 1, P))
                + shared + se / math.sqrt(K) * rng.normal(size=(reps, seeds, P)))

    return algorithm(0.6 + effect), algorithm(0.6)


def coverage(x, truth: float) -> tuple[float, float]:
    mean, _, _, hw = crossed_batch(x)
    return float(np.mean(np.abs(mean - truth) <= hw)), float(hw.mean())


def old_coverage(x, truth: float, reps: int = OLD_REPS) -> float:
    hits = [lo <= truth <= hi for lo, hi in
            (percentile_interval(crossed_bootstrap_means(r, n_boot=400, seed=i)) for i, r in enumerate(x[:reps]))]
    return float(np.mean(hits))


CELLS = [(s, r, t, e) for s in (3, 5, 10) for r in REGIMES for t in TAILS for e in (0.0, 0.05)]


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(2021)
    out = {}
    print(f"\n{'S':>3} {'regime':<11}{'seeds':<8}{'effect':>6}   difference: new (mean half-width) | old    "
          "single setting: new")
    for cell in CELLS:
        s, regime, tail, effect = cell
        a, b = crossed_pair(rng, s, regime, tail, effect, REPS)
        d_cov, d_hw = coverage(a - b, effect)
        a_cov, _ = coverage(a, 0.6 + effect)
        out[cell] = (d_cov, a_cov)
        print(f"{s:>3} {regime:<11}{tail:<8}{effect:>6.2f}   {d_cov:6.1%} ({d_hw:.3f}) | {old_coverage(a - b, effect):6.1%}"
              f"    {a_cov:6.1%}")
    return out


@pytest.mark.parametrize("cell", CELLS, ids=lambda c: f"S{c[0]}-{c[1]}-{c[2]}-d{c[3]}")
def test_coverage_in_every_cell(results, cell):
    d_cov, a_cov = results[cell]
    assert 0.93 <= d_cov <= 0.99, f"paired difference covered {d_cov:.1%}"
    assert 0.93 <= a_cov <= 0.99, f"single setting covered {a_cov:.1%}"


def test_batch_matches_the_one_model():
    x = np.random.default_rng(0).normal(size=(3, 4, 9, 2))
    mean, _, _, hw = crossed_batch(x)
    for i in range(3):
        m, lo, hi = crossed_ci(x[i])
        assert (m, lo, hi) == pytest.approx((mean[i], mean[i] - hw[i], mean[i] + hw[i]), abs=1e-12)


def test_old_model_fails_where_training_noise_dominates():
    """The record the new model is measured against: at 3 seeds whose training noise dwarfs the evaluation noise,
    the pigeonhole bootstrap covers ~80% (it spans ±1.8 standard errors where t needs ±4.30); the new model 95%."""
    rng = np.random.default_rng(7)
    a, b = crossed_pair(rng, 3, "training", "normal", 0.0, 400, regimes={"training": (0.05, 0.01, 0.02)})
    assert old_coverage(a - b, 0.0, reps=400) < 0.88
    assert 0.93 <= coverage(a - b, 0.0)[0] <= 0.99


def test_a_failure_mode_defeats_the_mean_and_the_failure_aware_reading_covers():
    """A realistic failure mode (benchmarks/coverage.py's SimPO: 2 of 14 seeds left the language, ten within-mode
    SDs below the others): 1 seed in 7 falls by 10 SDs. The all-seed interval cannot cover the mixture's mean at 3
    or 5 seeds — with no failing seed among those drawn nothing in the data shows the mode (Bahadur & Savage 1956) —
    while the two quantities the report adds for such a setting (bench/evaluation/language.py) do: the failure
    rate's Clopper–Pearson interval (>= 95% by construction) and the one model's interval over the seeds that
    stayed, against their own mean."""
    from bench.evaluation.language import clopper_pearson

    rng = np.random.default_rng(1934)
    p_fail, drop, sd = 1 / 7, 0.2, 0.02
    for seeds in (3, 5):
        reps = 2000
        fail = rng.random((reps, seeds)) < p_fail
        x = (0.65 + sd * rng.normal(size=(reps, seeds, 1)) - drop * fail[:, :, None]
             + 0.1 * rng.normal(size=(reps, 1, P)) + 0.2 / math.sqrt(K) * rng.normal(size=(reps, seeds, P)))
        plain, _ = coverage(x, 0.65 - drop * p_fail)
        rate = np.mean([clopper_pearson(int(k), seeds)[0] <= p_fail <= clopper_pearson(int(k), seeds)[1]
                        for k in fail.sum(axis=1)])
        hits = []
        for r in range(reps):
            kept = x[r][~fail[r]]
            if len(kept) >= 2:
                m, _, _, hw = crossed_batch(kept[None])
                hits.append(abs(m[0] - 0.65) <= hw[0])
        stayed = float(np.mean(hits))
        print(f"\nfailure mode 1 in 7, S={seeds}: all-seed mean {plain:.1%}, failure rate {rate:.1%}, "
              f"the seeds that stayed {stayed:.1%} of {len(hits)}")
        assert plain < 0.92  # the limitation the report states (below the 92–99% band)
        assert rate >= 0.95
        assert 0.93 <= stayed <= 0.99
