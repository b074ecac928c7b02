"""The readings that separate what a win is made of (bench/evaluation/win_parts.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.evaluation.win_parts import grammar_sentiment_parts, length_controlled


def test_parts_add_up_to_the_win_rate_and_separate_opposite_mixes():
    rng = np.random.default_rng(0)
    wins = rng.choice([0.0, 0.5, 1.0], size=(50, 4))
    pol, ref = rng.random(50) < 0.8, rng.random((50, 4)) < 0.9
    g, s = grammar_sentiment_parts(wins, pol, ref)
    assert 0.5 + g.mean() + s.mean() == pytest.approx(wins.mean())
    # a policy that always parses against a reference that slips half the time, losing every sentiment match:
    pol = np.ones(8, bool)
    ref = np.tile([True, False], (8, 1))
    wins = np.where(ref, 0.0, 1.0)
    g, s = grammar_sentiment_parts(wins, pol, ref)
    assert g.mean() == pytest.approx(0.25) and s.mean() == pytest.approx(-0.25) and wins.mean() == 0.5


def test_length_controlled_win_rate_removes_a_length_effect():
    """Wins driven only by length: the raw win rate is high, the LC win rate is near ½ (read at equal length);
    wins that do not depend on length: LC ≈ raw; the per-comparison values average to LC exactly."""
    rng = np.random.default_rng(1)
    n, k = 400, 8
    pol_len = rng.integers(5, 25, size=n).astype(float)
    ref_len = rng.integers(5, 15, size=(n, k)).astype(float)
    d = pol_len[:, None] - ref_len
    p = 1 / (1 + np.exp(-0.3 * d))
    wins = (rng.random((n, k)) < p).astype(float)
    lc, units, phi = length_controlled(wins, pol_len, ref_len)
    assert wins.mean() > 0.65 and abs(lc - 0.5) < 0.05 and phi > 0
    assert units.mean() == pytest.approx(lc, abs=1e-9)
    fair = (rng.random((n, k)) < 0.7).astype(float)
    lc2, units2, _ = length_controlled(fair, pol_len, ref_len)
    assert lc2 == pytest.approx(fair.mean(), abs=0.03) and units2.mean() == pytest.approx(lc2, abs=1e-9)
    # no length spread, or a unanimous result: LC is the raw win rate
    same = np.full((n, k), 10.0)
    assert length_controlled(fair, same[:, 0], same)[0] == pytest.approx(fair.mean())
    assert length_controlled(np.ones((n, k)), pol_len, ref_len)[0] == 1.0


def test_a_singular_newton_step_does_not_crash_the_run(monkeypatch):
    """A collapsed policy (simpo-vs-dpo's DPO at beta 0.03, seed 6) made the Newton system singular and failed the
    whole run in its final evaluation; the step falls back to least squares and the fit stays finite."""
    import numpy as np

    from bench.evaluation import win_parts

    rng = np.random.default_rng(3)
    wins = (rng.random((64, 4)) < 0.3).astype(float)
    policy_len, ref_len = rng.integers(1, 10, 64), rng.integers(1, 10, (64, 4))
    expected = win_parts.length_controlled(wins, policy_len, ref_len)
    real = np.linalg.solve
    calls = {"n": 0}

    def singular_once(h, g):
        calls["n"] += 1
        if calls["n"] == 1:
            raise np.linalg.LinAlgError("Singular matrix")
        return real(h, g)

    monkeypatch.setattr(win_parts.np.linalg, "solve", singular_once)
    lc, units, phi = win_parts.length_controlled(wins, policy_len, ref_len)
    assert calls["n"] > 1 and np.isfinite([lc, phi]).all() and np.isfinite(units).all()
    assert lc == __import__("pytest").approx(expected[0], abs=1e-6)  # least squares takes the same step here
