"""The statistics of one `bench check` row: the moderated one-sided t-test of a move beyond its floor, the margin
it could flag, and what is added when the two sides did not measure on the same world.

The check's premise is a paired comparison: baseline and current runs share the world's prompts, pairs, reference
draws and reward model, so the shared (prompt / pair / draw) part of each interval cancels and only the seeds
differ (bench/check.py). That premise holds on one kind of machine, where a world is rebuilt bit for bit. On
another CPU or kernel library the world is built from the same config (same key) by other floating-point sums:
another base model, other pairs, other reference draws and another reward model. Seen on this project: a baseline
made on one 2-core VM, checked on an AMD EPYC VM: sft's win rate per seed 0.496 / 0.512 / 0.512 against 0.514 /
0.510 / 0.514, 254 held-out pairs against 255, and PPO's preference accuracy (its reward model's, the same for
every seed) 0.689 against 0.651, flagged as a regression by a test that took a reading with no seed spread for
an exact one. Each world build records its content fingerprint (a hash of its file manifest) and each baseline stores it
(`world_content`). Two rules, both using the shared part the baseline already stores (`shared_var`: the variance
of the mean that the prompts / pairs / draws contribute):
  - where the fingerprints differ, every row adds both sides' shared parts to its standard error, with
    Welch–Satterthwaite degrees of freedom, and the check says so: the pairs, the reference draws and the models
    no longer cancel (the prompts themselves come from a pure-Python generator and are the same on every CPU, so
    this over-counts their part: conservative);
  - a reading with no seed spread on either side that is measured over units (shared_var > 0: a reward model's
    accuracy over the held-out pairs) is a product of the shared stages alone. Where both sides name the same
    content it is compared exactly, as before; where they differ or either side does not say (baselines made
    before the fingerprint), with the standard error of two independent measurements over their units,
    sqrt(shared_b + shared_c); with no shared part (sft's KL of 0, best-of-n's analytic KL) always exactly.
What neither rule holds: the variance of the world itself (another base model and reward model move every seed
and unit together), which one baseline cannot estimate; a suite that sweeps `world.seed` measures it. A package
upgrade that rewrites a model file's recorded version also changes the fingerprint (a version note says so).
"""

from __future__ import annotations

import math
from typing import Any

from bench.evaluation.moderated import NO_PRIOR, Prior, pooled_variance

NEGLIGIBLE = 1e-20  # a shared part below this is rounding (best-of-n's analytic KL: 3e-33), not a measurement


def same_world(current: dict[str, Any], baseline: dict[str, Any]) -> bool | None:
    """True / False where both sides name their world's content (`world_content`: bench.cache.content_fingerprint
    of the build's file manifest) and it is / is not the same; None where either side does not say."""
    a, b = current.get("world_content"), baseline.get("world_content")
    return (a == b) if a and b else None


def _shared_part(entry: dict[str, Any]) -> tuple[float, int] | None:
    """(shared_var, units) of one side's entry, or None where it holds no usable one (absent, NaN, negative)."""
    v = entry.get("shared_var")
    try:
        v = float(v)
        units = int(entry.get("units") or 0)
    except (TypeError, ValueError):
        return None
    return (v, units) if math.isfinite(v) and v >= 0 else None


def shared_allowance(current_entry: dict[str, Any], baseline_entry: dict[str, Any], seed_invariant: bool,
                     same: bool | None) -> tuple[float, float]:
    """(variance added to the difference of means, its degrees of freedom): both sides' shared parts where the
    worlds differ, or where the reading has no seed spread and the worlds are not known to be the same (see the
    module docstring); (0, inf) otherwise. A side without a usable shared part counts as the other side's twin."""
    if not (same is False or (seed_invariant and same is not True)):
        return 0.0, math.inf
    parts = [p for p in (_shared_part(current_entry), _shared_part(baseline_entry)) if p is not None]
    if not parts:
        return 0.0, math.inf
    if len(parts) == 1:
        parts = parts * 2
    extra = sum(v for v, _ in parts)
    if extra <= NEGLIGIBLE:
        return 0.0, math.inf
    denominator = sum(v ** 2 / (u - 1) for v, u in parts if u > 1)  # Welch–Satterthwaite over the two parts
    return extra, (extra ** 2 / denominator if denominator > 0 else math.inf)


def _sides(current: list[float], baseline: list[float]) -> tuple[list[float], list[float]] | None:
    a = [v for v in current if v is not None]
    b = [v for v in baseline if v is not None]
    return (a, b) if len(a) >= 2 and len(b) >= 2 else None


def row_variance(current: list[float], baseline: list[float]) -> tuple[float, int] | None:
    """The row's pooled seed variance and its degrees of freedom; None if n < 2 on a side."""
    sides = _sides(current, baseline)
    return pooled_variance(*sides) if sides else None


def _moderated_se(a: list[float], b: list[float], prior: Prior,
                  extra: tuple[float, float] = (0.0, math.inf)) -> tuple[float, float]:
    """(standard error of mean(a) − mean(b), its degrees of freedom) from the moderated pooled variance plus
    `extra` (a variance and its degrees of freedom: shared_allowance), Welch–Satterthwaite; SE 0 for a
    deterministic reading (no spread on either side, nothing extra)."""
    s2, d = pooled_variance(a, b)
    seed_part, seed_df = 0.0, float(d)
    if s2 > 0:
        var, seed_df = prior.moderate(s2, d)
        seed_part = var * (1 / len(a) + 1 / len(b))
    ev, edf = extra
    if ev == 0:  # nothing added: exactly the moderated seed-only test
        return (math.sqrt(seed_part), seed_df) if seed_part > 0 else (0.0, float(d))
    total = seed_part + ev
    denominator = sum(v ** 2 / df for v, df in ((seed_part, seed_df), (ev, edf)) if v > 0)  # v²/inf = 0
    return math.sqrt(total), (total ** 2 / denominator if denominator > 0 else math.inf)


def p_worse(current: list[float], baseline: list[float], direction: int, floor: float = 0.0,
            prior: Prior = NO_PRIOR, extra: tuple[float, float] = (0.0, math.inf)) -> float | None:
    """One-sided p-value that `current` is worse than `baseline` by more than `floor`: the moderated t-test
    (bench/evaluation/moderated.py; with NO_PRIOR, the pooled two-sample t) of the shifted hypothesis
    H0: bad move <= floor; None if n < 2 on a side.

    direction +1: worse = lower; -1: worse = higher; 0: either way (twice the smaller one-sided p, capped at 1).
    """
    from scipy import stats

    sides = _sides(current, baseline)
    if sides is None:
        return None
    if direction == 0:
        return min(1.0, 2 * min(p_worse(current, baseline, +1, floor, prior, extra),
                                p_worse(current, baseline, -1, floor, prior, extra)))
    a, b = sides
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    bad = (mb - ma) if direction > 0 else (ma - mb)  # the move in the bad direction
    se, df = _moderated_se(a, b, prior, extra)
    if se == 0:  # a deterministic reading: the test is degenerate, the move decides
        return 0.0 if bad > floor else 1.0
    return float(stats.t.sf((bad - floor) / se, df))


def margin_of(current: list[float], baseline: list[float], floor: float, level: float,
              prior: Prior = NO_PRIOR, extra: tuple[float, float] = (0.0, math.inf)) -> float | None:
    """The smallest bad move that would read significant at one-sided `level`: floor + t_{1−level}·SE."""
    from scipy import stats

    sides = _sides(current, baseline)
    if sides is None:
        return None
    se, df = _moderated_se(*sides, prior, extra)
    return floor if se == 0 else floor + float(stats.t.isf(level, df)) * se
