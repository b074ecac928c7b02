import itertools
import math
import time

import numpy as np
import pytest
import torch

from bench.evaluation import estimators as E


# ----------------------------------------------------------------- win rate / accuracy

def test_win_rate_with_ties():
    p = np.array([1.0, 2.0, 3.0, 4.0])
    r = np.array([0.0, 2.0, 5.0, 4.05])
    assert E.win_rate(p, r) == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert E.win_rate(p, r, ties_eps=0.1) == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    # 2-D: elementwise over [prompts, samples]
    p2 = np.array([[1.0, 0.0], [2.0, 2.0]])
    r2 = np.array([[0.0, 1.0], [2.0, 1.0]])
    assert E.win_rate(p2, r2) == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    with pytest.raises(ValueError):
        E.win_rate(p, r[:3])


def test_pairwise_accuracy():
    assert E.pairwise_accuracy([1, 2, 3, 0], [0, 2, 1, 1]) == pytest.approx(0.625)
    assert E.pairwise_accuracy(torch.tensor([1.0]), torch.tensor([0.0])) == 1.0


# ----------------------------------------------------------------- bootstrap

def test_bootstrap_deterministic_and_paired():
    rng = np.random.default_rng(1)
    p, r = rng.normal(size=256), rng.normal(size=256)
    a = E.win_rate_ci(p, r, seed=3)
    assert a == E.win_rate_ci(p, r, seed=3)
    assert a != E.win_rate_ci(p, r, seed=4)
    assert a[1] <= a[0] <= a[2]
    # pairing: policy == ref + 1 always wins, so every resample has win rate exactly 1
    assert E.win_rate_ci(r + 1, r) == (1.0, 1.0, 1.0)
    lo, hi = E.bootstrap_ci(lambda x, y: (x - y).mean(axis=1), r + 1, r)
    assert lo == pytest.approx(1) and hi == pytest.approx(1)


def test_bootstrap_fast():
    x = np.random.default_rng(0).normal(size=(256, 4))
    t0 = time.perf_counter()
    E.mean_ci(x, n_boot=1000)
    assert time.perf_counter() - t0 < 0.5


def test_bootstrap_coverage_bernoulli():
    rng = np.random.default_rng(0)
    covered = 0
    for rep in range(200):
        x = (rng.random(200) < 0.7).astype(float)
        _, lo, hi = E.mean_ci(x, seed=rep)
        covered += lo <= 0.7 <= hi
    assert 180 <= covered <= 198  # 90%..99% of 200


# ----------------------------------------------------------------- Student t over seeds

@pytest.mark.parametrize("df,t", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (9, 2.2622),
                                  (10, 2.2281), (29, 2.0452), (30, 2.0423), (120, 1.9799)])
def test_t_quantile_table(df, t):
    assert E.t_quantile(0.975, df) == pytest.approx(t, abs=1e-3)


def test_t_quantile_other_levels():
    assert E.t_quantile(0.95, 5) == pytest.approx(2.0150, abs=1e-3)
    assert E.t_quantile(0.995, 10) == pytest.approx(3.1693, abs=1e-3)
    assert E.t_quantile(0.025, 4) == pytest.approx(-2.7764, abs=1e-3)
    assert E.t_quantile(0.975, 5000) == pytest.approx(1.9604, abs=1e-3)


def test_seed_ci():
    v = [1.0, 2.0, 3.0]  # mean 2, sd 1, n 3 -> half = 4.3027 / sqrt(3)
    m, lo, hi = E.seed_ci(v)
    half = 4.302653 / math.sqrt(3)
    assert (m, lo, hi) == pytest.approx((2.0, 2 - half, 2 + half), abs=1e-5)
    assert E.seed_ci([0.4]) == (0.4, 0.4, 0.4)
    assert E.seed_ci([0.4, float("nan")]) == (0.4, 0.4, 0.4)
    assert all(math.isnan(z) for z in E.seed_ci([]))


# Values printed by the hand-written series + bisection quantile that scipy replaced (Abramowitz & Stegun
# 26.7.3/4, bisection to 1e-12): the replacement must reproduce them to 1e-9.
_OLD_SEED_CI = [([0.1, 0.5, 0.3], (0.3, -0.19682754235009958, 0.7968275423500996)),
                ([1, 2], (1.5, -4.8531023680861844, 7.8531023680861844)),
                ([0.2, 0.4, 0.9, 0.1, 0.5], (0.42000000000000004, 0.033285945445144516, 0.8067140545548556))]


@pytest.mark.parametrize("values,old", _OLD_SEED_CI)
def test_seed_ci_matches_the_replaced_implementation(values, old):
    assert E.seed_ci(values) == pytest.approx(old, abs=1e-9, rel=0)


def test_t_quantile_matches_the_replaced_implementation():
    old = {(0.975, 1): 12.706204736172367, (0.975, 2): 4.302652729749752, (0.975, 4): 2.776445105198036,
           (0.995, 10): 3.1692726726168985, (0.025, 4): -2.776445105198036, (0.5, 3): 0.0}
    for (q, df), t in old.items():
        assert E.t_quantile(q, df) == pytest.approx(t, abs=1e-9, rel=0)
    with pytest.raises(ValueError):
        E.t_quantile(1.0, 3)


# ----------------------------------------------------------------- KL estimators

def test_kl_mc_and_k3_categorical():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    q = np.array([0.25, 0.25, 0.25, 0.25])
    exact = float((p * np.log(p / q)).sum())
    y = np.random.default_rng(0).choice(4, size=200_000, p=p)
    k1 = E.kl_mc(np.log(p)[y], np.log(q)[y])
    k3 = E.kl_k3(np.log(p)[y], np.log(q)[y])
    assert k1.mean() == pytest.approx(exact, abs=0.01)
    assert k3.mean() == pytest.approx(exact, abs=0.01)
    assert (k1 < 0).any() and (k3 >= 0).all()
    # enumerated expectation is exact for both
    assert (p * E.kl_mc(np.log(p), np.log(q))).sum() == pytest.approx(exact)
    assert (p * E.kl_k3(np.log(p), np.log(q))).sum() == pytest.approx(exact)


def _toy_two_step(V=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    lp1, lq1 = (torch.log_softmax(torch.randn(V, generator=g), -1) for _ in range(2))
    lp2, lq2 = (torch.log_softmax(torch.randn(V, V, generator=g), -1) for _ in range(2))  # [y1, y2]
    return lp1, lq1, lp2, lq2


def test_kl_exact_tokenwise_two_step():
    V = 3
    lp1, lq1, lp2, lq2 = _toy_two_step(V)
    # analytic sequence KL by enumerating all V^2 sequences
    seq_kl = sum(float((lp1[a] + lp2[a, b]).exp() * (lp1[a] + lp2[a, b] - lq1[a] - lq2[a, b]))
                 for a, b in itertools.product(range(V), repeat=2))
    # one row per first token y1 = a; position 0 holds pi(.), position 1 holds pi(.|a)
    pol = torch.stack([torch.stack([lp1, lp2[a]]) for a in range(V)])  # [V, 2, V]
    ref = torch.stack([torch.stack([lq1, lq2[a]]) for a in range(V)])
    est = E.kl_exact_tokenwise(pol, ref, torch.ones(V, 2))
    assert float((lp1.exp().numpy() * est).sum()) == pytest.approx(seq_kl, rel=1e-6)
    # logits give the same answer; masked padding positions are ignored
    assert E.kl_exact_tokenwise(pol * 1 + 7.0, ref - 2.0, torch.ones(V, 2)) == pytest.approx(est, rel=1e-5)
    pad = torch.cat([pol, torch.randn(V, 1, V)], 1), torch.cat([ref, torch.randn(V, 1, V)], 1)
    mask = torch.tensor([[1, 1, 0]] * V)
    assert E.kl_exact_tokenwise(*pad, mask) == pytest.approx(est, rel=1e-6)

    # Monte Carlo: sample sequences from pi; k1, k3 and exact-tokenwise all agree with seq_kl
    g = torch.Generator().manual_seed(1)
    n = 100_000
    y1 = torch.multinomial(lp1.exp(), n, replacement=True, generator=g)
    y2 = torch.multinomial(lp2[y1].exp(), 1, generator=g).squeeze(1)
    tok_p = torch.stack([lp1[y1], lp2[y1, y2]], 1)
    tok_q = torch.stack([lq1[y1], lq2[y1, y2]], 1)
    k1, k3 = E.kl_mc(tok_p, tok_q), E.kl_k3(tok_p, tok_q)
    ex = est[y1.numpy()]
    for e in (k1, k3, ex):
        assert e.mean() == pytest.approx(seq_kl, abs=0.02)
    assert ex.var() < k1.var()


# ----------------------------------------------------------------- best-of-n

def test_best_of_n_kl():
    assert E.best_of_n_kl(1) == 0.0
    assert E.best_of_n_kl(4) == pytest.approx(math.log(4) - 0.75)


def test_best_of_n_expected_uniform():
    r = np.random.default_rng(0).random((2000, 16))
    for n in (1, 2, 4, 16):
        assert E.best_of_n_expected(r, n) == pytest.approx(n / (n + 1), abs=0.01)


def test_best_of_n_expected_brute_force():
    r = np.random.default_rng(1).normal(size=(5, 7))
    for n in (1, 3, 7):
        brute = np.mean([np.mean([row[list(s)].max() for s in itertools.combinations(range(7), n)])
                         for row in r])
        assert E.best_of_n_expected(r, n) == pytest.approx(brute)
    with pytest.raises(ValueError):
        E.best_of_n_expected(r, 8)


# ----------------------------------------------------------------- KL-regularised optimum

def test_kl_optimal_limit_closed_form():
    vals, beta = np.array([0.0, 1.0, 2.0, 5.0]), 0.7
    pstar = np.exp(vals / beta) / np.exp(vals / beta).sum()
    want_r = float((pstar * vals).sum())
    want_kl = float((pstar * np.log(pstar * len(vals))).sum())
    # each reward exactly once = exact enumeration of uniform pi_ref: SNIS is exact
    res = E.kl_optimal_limit(np.tile(vals, (3, 1)), beta)
    assert res.expected_reward == pytest.approx(want_r) and res.kl == pytest.approx(want_kl)
    assert res.kl == pytest.approx(want_r / beta - math.log(np.exp(vals / beta).mean()))
    assert res.ess == pytest.approx(1 / (pstar ** 2).sum())
    # samples from pi_ref: consistent
    samp = np.random.default_rng(0).choice(vals, size=(4, 20_000))
    res = E.kl_optimal_limit(samp, beta)
    assert res.expected_reward == pytest.approx(want_r, abs=0.02)
    assert res.kl == pytest.approx(want_kl, abs=0.02)
    # numerically stable for tiny beta (huge exponents); beta -> inf gives pi_ref
    res = E.kl_optimal_limit(np.tile(vals, (2, 1)) * 1e3, 1e-3)
    assert res.expected_reward == pytest.approx(5e3) and res.kl == pytest.approx(math.log(4))
    assert res.ess == pytest.approx(1.0)
    res = E.kl_optimal_limit(np.tile(vals, (2, 1)), 1e9)
    assert res.kl == pytest.approx(0, abs=1e-9) and res.ess == pytest.approx(4)


# ----------------------------------------------------------------- correlations

def test_within_prompt_corr():
    x = np.array([1, 2, 3, 1, 2, 3, 5, 4, 4], float)
    y = np.array([2, 4, 6, 3, 2, 1, 0, 1, 1], float)
    g = np.array([0, 0, 0, 1, 1, 1, 2, 3, 3])  # group 2 singleton, group 3 zero x-variance: skipped
    assert E.within_prompt_corr(x, y, g) == pytest.approx(0.0)  # mean of +1 and -1
    assert E.within_prompt_corr(x[:3], y[:3], g[:3]) == pytest.approx(1.0)
    assert math.isnan(E.within_prompt_corr(x[6:], y[6:], g[6:]))
    # within-prompt, not pooled: a per-prompt offset does not create correlation
    rng = np.random.default_rng(0)
    gg = np.repeat(np.arange(200), 8)
    xs, ys = rng.normal(size=1600) + gg, rng.normal(size=1600) + gg
    assert abs(E.within_prompt_corr(xs, ys, gg)) < 0.15 < 0.9 < np.corrcoef(xs, ys)[0, 1]
