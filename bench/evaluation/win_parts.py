"""What a win is made of: the win rate split into its grammar and sentiment parts, and read at equal length.

Pure numpy over the [prompts, K] comparison matrix of a run (each prompt's policy sample against K π_ref draws;
w = 1 win, ½ tie, 0 loss; bench/evaluation/estimators.py `win_matrix`). Every reading is the *mean of a
per-comparison value*, so its per-prompt columns go to per_prompt.csv and its intervals come from the suite's
one uncertainty model (bench/evaluation/uncertainty.py UNITS), exactly like the raw win rate.

- Grammar and sentiment parts (worlds with a grammar; the controlled world's judge says which samples are
  well-formed): win_rate − ½ = grammar + sentiment, with
      grammar   = mean over comparisons of (w − ½) · [policy or reference sample ill-formed]
      sentiment = mean over comparisons of (w − ½) · [both well-formed]
  A policy can gain by writing well-formed text where π_ref slips (grammar > 0) or by saying better things in
  well-formed reviews (sentiment > 0); two algorithms with one win rate can have opposite mixes.
- Length-controlled win rate (the idea of AlpacaEval 2's LC win rate, Dubois et al. 2024, "Length-Controlled
  AlpacaEval"): a logistic regression of the preference on the length difference,
      P(w = 1) = σ(θ + φ · tanh(Δlen / sd(Δlen))),    Δlen = tokens(policy sample) − tokens(reference draw),
  fitted to the run's comparisons (ties as ½), read at equal length: LC = σ(θ). The per-comparison value
  w − p̂ + σ(θ) has mean exactly σ(θ) (the intercept's score equation: Σ (w − p̂) = 0; only φ carries a small
  ridge, against separation), so the bootstrap resamples it as a unit; φ is held at the run's fit (a plug-in:
  its own uncertainty is not propagated). AlpacaEval fits one GLM over many models and instructions; here each
  run has its own, against the same π_ref draws.
"""

from __future__ import annotations

import math

import numpy as np

RIDGE = 1e-3  # on φ only, per comparison: keeps the fit finite when the length difference separates the outcomes


def grammar_sentiment_parts(wins: np.ndarray, policy_ok: np.ndarray,
                            ref_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([prompts, K] grammar part, [prompts, K] sentiment part) per comparison; their means add to win_rate − ½.
    `policy_ok`: [prompts] well-formed policy samples; `ref_ok`: [prompts, K] well-formed reference draws."""
    wins = np.asarray(wins, dtype=float)
    both = np.asarray(policy_ok, dtype=bool)[:, None] & np.asarray(ref_ok, dtype=bool)
    centred = wins - 0.5
    return np.where(both, 0.0, centred), np.where(both, centred, 0.0)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


def length_controlled(wins: np.ndarray, policy_len: np.ndarray, ref_len: np.ndarray,
                      iterations: int = 50) -> tuple[float, np.ndarray, float]:
    """(LC win rate, [prompts, K] per-comparison values whose mean is LC, φ). `policy_len`: [prompts];
    `ref_len`: [prompts, K] (tokens). Without a spread of length differences LC is the raw win rate."""
    y = np.asarray(wins, dtype=float)
    diff = np.asarray(policy_len, dtype=float)[:, None] - np.asarray(ref_len, dtype=float)
    sd = float(diff.std())
    mean = float(y.mean())
    if not (sd > 0) or mean in (0.0, 1.0) or not np.isfinite(y).all():
        return mean, y.copy(), 0.0
    x = np.tanh(diff / sd).ravel()
    t = y.ravel()
    n = t.size
    theta, phi = math.log(mean / (1 - mean)), 0.0

    def loglik(th: float, ph: float) -> float:  # the penalised log-likelihood Newton climbs
        z = np.clip(th + ph * x, -50.0, 50.0)
        return float(np.sum(t * z - np.logaddexp(0.0, z)) - 0.5 * RIDGE * n * ph * ph)

    for _ in range(iterations):  # Newton's method on the (concave) penalised log-likelihood, with step halving
        p = _sigmoid(theta + phi * x)
        v = p * (1 - p)
        g = np.array([np.sum(t - p), np.sum((t - p) * x) - RIDGE * n * phi])
        h = np.array([[np.sum(v), np.sum(v * x)], [np.sum(v * x), np.sum(v * x * x) + RIDGE * n]])
        try:
            step = np.linalg.solve(h, g)
        except np.linalg.LinAlgError:  # a saturated fit: v underflows where every comparison is lost or won
            step = np.linalg.lstsq(h, g, rcond=None)[0]
        if not np.isfinite(step).all():
            break
        # a full Newton step can overshoot on nearly separated data (a collapsed policy): take it only where it
        # does not lower the likelihood, else halve it (a well-behaved fit accepts every full step, as before)
        here = loglik(theta, phi)
        for _halving in range(40):
            if loglik(theta + step[0], phi + step[1]) >= here - 1e-12 * max(1.0, abs(here)):
                break
            step = step / 2
        theta, phi = theta + step[0], phi + step[1]
        if np.abs(step).max() < 1e-10:
            break
    p = _sigmoid(theta + phi * x).reshape(y.shape)
    lc = float(_sigmoid(theta))
    return lc, y - p + lc, float(phi)
