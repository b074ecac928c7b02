"""The matched points of a replication verdict (bench/evaluation/replication.py): which settings of the two arms
are compared, under which conditions, and each point's paired interval and reading.

`matched_budget`: each arm's selected setting under every suite-level condition both ran (with `beyond`, the
difference of differences of four arms); `matched_kl`: each setting of a against the setting of b with the nearest
mean KL; `frontier`: each setting of a against b's reward–KL frontier at its KL. The intervals are the project's one
uncertainty model (`Uncertainty.difference` / `.contrast`); nothing here estimates variance of its own.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from bench.columns import AXIS_COLUMNS, present

_MATCH_AXES = ("world_seed", "pair_source")  # matched_kl pairs across budgets, never across worlds


_ARM = r"([a-z0-9][a-z0-9_]*)(?:@([a-z_]+)=([A-Za-z0-9_.+-]+))?"
_COMPARE = re.compile(rf"\s*{_ARM}\s+-\s+{_ARM}\s*")


@dataclass(frozen=True)
class Arm:
    """One side of `compare`: an [algorithms] label, optionally at one value of a suite-level axis
    (`dpo@budget_flops=2e12`: the same label at two budgets is then a paired comparison of one setting)."""

    label: str
    axis: str = ""
    value: str = ""

    def __str__(self) -> str:
        return f"{self.label}@{self.axis}={self.value}" if self.axis else self.label


def parse_arms(text: str) -> tuple[Arm, Arm] | None:
    """'dpo - ppo' -> (Arm('dpo'), Arm('ppo')); 'dpo@budget_flops=2e12 - dpo@budget_flops=5e11' -> two arms at
    two budgets; None when it is not two arms joined by ' - '."""
    m = _COMPARE.fullmatch(text or "")
    if not m:
        return None
    g = m.groups()
    return Arm(g[0], g[1] or "", g[2] or ""), Arm(g[3], g[4] or "", g[5] or "")


@dataclass
class Point:
    """One matched comparison: setting a vs setting b, the paired difference of the metric."""

    a: str
    b: str
    difference: float
    lo: float
    hi: float
    seeds: int
    reading: str            # reproduced / contradicted / inconclusive at this point
    condition: str = ""     # the suite-level condition (matched_budget) or the two KLs (matched_kl)
    kl_a: float = math.nan
    kl_b: float = math.nan
    seeds_to_decide: int | None = None  # inconclusive: paired seeds for 80% power at |difference| (None: no
                                        # seed count does; the shared prompt/draw part alone is too wide)
    settings: list[str] = field(default_factory=list)  # `beyond`: the four settings of (a − b) − (c − d)


def _reading(lo: float, hi: float, sign: int) -> str:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if sign * (lo if sign > 0 else hi) > 0:
        return "reproduced"
    if sign * (hi if sign > 0 else lo) < 0:
        return "contradicted"
    return "inconclusive"


def _point(name_a: str, name_b: str, iv, sign: int, condition: str = "", kl_a: float = math.nan,
           kl_b: float = math.nan) -> Point:
    """A matched comparison from its paired interval; an inconclusive one with the seeds that would decide it."""
    from bench.evaluation.crossed import seeds_for_power

    reading = _reading(iv.lo, iv.hi, sign)
    need = None
    if reading == "inconclusive" and iv.parts is not None and iv.seeds >= 2 and math.isfinite(iv.mean):
        need = seeds_for_power(iv.parts, iv.mean)
    return Point(name_a, name_b, iv.mean, iv.lo, iv.hi, iv.seeds, reading, condition, kl_a, kl_b, need)


def _condition(row: pd.Series, axes: tuple[str, ...]) -> tuple:
    return tuple(str(row[a]) if a in row and present(row[a]) else "" for a in axes)


def _matches(value: Any, text: str) -> bool:
    """A summary cell equals an arm's axis value: numerically where both are numbers (2e12 == 2000000000000.0)."""
    try:
        return math.isclose(float(value), float(text), rel_tol=1e-9)
    except (TypeError, ValueError):
        return str(value) == text


def arm_rows(runs: pd.DataFrame, arm: Arm) -> pd.DataFrame:
    """The arm's finished runs (an unfinished run has no metrics, so it would name a setting of its own)."""
    rows = runs[(runs["label"] == arm.label) & (runs["status"] == "finished")]
    if arm.axis:
        if arm.axis not in rows.columns:
            return rows.iloc[0:0]
        rows = rows[rows[arm.axis].map(lambda v: _matches(v, arm.value))]
    return rows


def _selected(rows: pd.DataFrame, axes: tuple[str, ...]) -> dict[tuple, str | None]:
    """condition -> the arm's one setting there (the runner's `best` among several; None: several, none chosen)."""
    groups: dict[tuple, dict[str, bool]] = {}  # condition -> setting -> selected by the runner
    for _, row in rows.iterrows():
        chosen = groups.setdefault(_condition(row, axes), {})
        chosen[row["setting"]] = chosen.get(row["setting"], False) or str(row.get("best", "")) == "best"
    out: dict[tuple, str | None] = {}
    for cond, names in groups.items():
        best = [n for n, sel in names.items() if sel]
        out[cond] = next(iter(names)) if len(names) == 1 else (best[0] if len(best) == 1 else None)
    return out


def budget_points(runs, unc, a: Arm, b: Arm, metric: str, sign: int, swept: list[str] | None,
                   beyond: tuple[Arm, Arm] | None = None) -> tuple[list[Point], str]:
    """Matched on the suite's swept axes only: an axis column that is not swept is one condition, whatever it reads
    (a run without a reward model records budget_view "end_to_end" in an amortised suite; the view changes nothing
    for it). `swept` None (an older suite.json): the columns that vary, budget_view aside. `beyond` (c, d): each
    point is the difference of differences (a − b) − (c − d), every arm at its selected setting under the
    condition, paired by seed (`Uncertainty.contrast`)."""
    extra = tuple(beyond or ())
    pinned = {arm.axis for arm in (a, b, *extra)} - {""}  # an axis an arm is pinned to is not matched on
    if swept is None:
        swept = [c for c in AXIS_COLUMNS if c in runs.columns and c != "budget_view"
                 and runs[c].dropna().astype(str).nunique() > 1]
    axes = tuple(c for c in AXIS_COLUMNS if c in runs.columns and c in swept and c not in pinned)
    varying = set(axes)
    sa, sb = _selected(arm_rows(runs, a), axes), _selected(arm_rows(runs, b), axes)
    chosen_extra = [_selected(arm_rows(runs, arm), axes) for arm in extra]

    def compatible(cond, c) -> bool:
        return all(x == y or "" in (x, y) or "both" in (x, y) for x, y in zip(cond, c))

    points, why = [], ""
    for cond, name_a in sa.items():
        partners = [(c, n) for c, n in sb.items() if compatible(cond, c)]
        for cond_b, name_b in partners:
            others = [next((n for c, n in sel.items() if compatible(cond, c)), "") for sel in chosen_extra]
            names = [name_a, name_b, *others]
            if any(n is None for n in names):
                arm = (a, b, *extra)[[n is None for n in names].index(True)]
                why = (f"{arm} has several settings and no selected one; give it one setting, or let the runner "
                       "select (validation prompts)")
                continue
            if any(n == "" for n in others):
                missing = [str(arm) for arm, n in zip(extra, others) if n == ""]
                why = f"{' and '.join(missing)} never ran under the conditions {a} and {b} share"
                continue
            text = ", ".join(f"{ax}={v}" for ax, v in zip(axes, cond) if v and v != "both" and ax in varying)
            if extra:
                iv = unc.contrast([(name_a, 1.0), (name_b, -1.0), (others[0], -1.0), (others[1], 1.0)], metric)
                ab, cd = unc.difference(name_a, name_b, metric), unc.difference(others[0], others[1], metric)
                parts = (f"a − b {ab.mean:+.3f} [{ab.lo:+.3f}, {ab.hi:+.3f}], c − d {cd.mean:+.3f} "
                         f"[{cd.lo:+.3f}, {cd.hi:+.3f}]")
                point = _point(f"({name_a} − {name_b})", f"({others[0]} − {others[1]})", iv, sign,
                               f"{text}; {parts}" if text else parts)
                if sign * cd.mean < 0 or sign * ab.mean < 0:  # a signed contrast compares sizes only when both
                    point.reading = "inconclusive"            # differences have the claimed sign
                    point.condition += "; a difference has the other sign: the contrast compares no sizes"
                point.settings = names
                points.append(point)
            else:
                points.append(_point(name_a, name_b, unc.difference(name_a, name_b, metric), sign, text))
    if not points and not why:
        why = f"{a} and {b} never ran under the same conditions (or one of them has no finished runs)"
    return points, why


def settings_with_kl(runs, unc, a: Arm, b: Arm) -> tuple[dict, dict[str, float]]:
    """Per arm, its settings with their world condition (never matched across worlds), and every setting's mean KL:
    what both KL readings (matched_kl, frontier) start from."""
    axes = tuple(c for c in _MATCH_AXES if c in runs.columns and c not in {a.axis, b.axis})
    settings = {}
    for arm in (a, b):
        mine = arm_rows(runs, arm)
        settings[arm] = {s: _condition(g.iloc[0], axes) for s, g in mine.groupby("setting", sort=False)}
    kls = {s: unc.interval(s, "kl").mean for arm in (a, b) for s in settings[arm]}
    return settings, kls


def kl_points(runs, unc, a: Arm, b: Arm, metric: str, sign: int, tolerance: float) -> tuple[list[Point], str]:
    settings, kls = settings_with_kl(runs, unc, a, b)
    points, closest = [], None
    for name_a, cond in settings[a].items():
        options = [(abs(kls[name_a] - kls[n]) / max(kls[name_a], kls[n], 1e-9), n)
                   for n, c in settings[b].items() if c == cond and math.isfinite(kls[n]) and math.isfinite(kls[name_a])]
        if not options:
            continue
        gap, name_b = min(options)
        if closest is None or gap < closest[0]:
            closest = (gap, name_a, name_b)
        if gap > tolerance:
            continue
        iv = unc.difference(name_a, name_b, metric)
        points.append(_point(name_a, name_b, iv, sign, f"KL {kls[name_a]:.2f} vs {kls[name_b]:.2f}",
                             kls[name_a], kls[name_b]))
    why = ""
    if not points:
        why = (f"no setting of {a} has a KL within {tolerance:.0%} of one of {b}'s" +
               (f" (closest: {closest[1]} at KL {kls[closest[1]]:.2f} vs {closest[2]} at {kls[closest[2]]:.2f}); "
                "widen the grids (beta, kl_coef, budget) until their KL ranges overlap" if closest else
                "; no finished runs with a KL"))
    return points, why


def frontier_points(runs, unc, a: Arm, b: Arm, metric: str, sign: int) -> tuple[list[Point], str]:
    """Each setting of a inside b's KL range against b's frontier there (linear between the bracketing settings)."""
    settings, kls = settings_with_kl(runs, unc, a, b)
    points, outside = [], []
    for name_a, cond in settings[a].items():
        line = sorted((kls[n], n) for n, c in settings[b].items() if c == cond and math.isfinite(kls[n]))
        ka = kls[name_a]
        if len(line) < 1 or not math.isfinite(ka) or not line[0][0] <= ka <= line[-1][0]:
            outside.append((name_a, ka, f"{line[0][0]:.2f}–{line[-1][0]:.2f}" if line else "none"))
            continue
        (k1, b1), (k2, b2) = max((p for p in line if p[0] <= ka)), min((p for p in line if p[0] >= ka))
        if k1 == k2:  # on one of b's settings (two tied at its KL: the first)
            b2, k2 = b1, k1
        w = 0.0 if k2 == k1 else (ka - k1) / (k2 - k1)
        iv = unc.contrast([(name_a, 1.0), (b1, -(1.0 - w)), (b2, -w)], metric) if b1 != b2 else \
            unc.difference(name_a, b1, metric)
        on = b1 if b1 == b2 else f"{b1} ↔ {b2}"
        where = (f"KL {ka:.2f} on {b}'s frontier at {k1:.2f}" if b1 == b2 else
                 f"KL {ka:.2f} on {b}'s frontier between {k1:.2f} and {k2:.2f}")
        points.append(_point(name_a, on, iv, sign, where, ka, (1 - w) * k1 + w * k2))
    why = ""
    if outside:  # b's range where each setting was read: in the same world condition (a knob's worlds differ)
        ranges = {rng for _, _, rng in outside}
        if len(ranges) == 1:
            why = (f"outside {b}'s KL range ({ranges.pop()}), not extrapolated: "
                   + ", ".join(f"{n} (KL {k:.2f})" for n, k, _ in outside))
        else:
            why = (f"outside {b}'s KL range in the same world, not extrapolated: "
                   + ", ".join(f"{n} (KL {k:.2f}; {b} there: {rng})" for n, k, rng in outside))
    if not points and not why:
        why = f"{a} or {b} has no finished runs with a KL"
    return points, why


def aggregate(points: list[Point], sign: int) -> tuple[str, Point]:
    """The verdict over matched points and the point that decides it: a contradiction anywhere decides (the
    largest); reproduced needs every point (the weakest decides); else the first inconclusive one."""
    contra = [p for p in points if p.reading == "contradicted"]
    if contra:
        return "contradicted", max(contra, key=lambda p: abs(p.difference))
    if all(p.reading == "reproduced" for p in points):
        return "reproduced", min(points, key=lambda p: sign * (p.lo if sign > 0 else p.hi))
    return "inconclusive", next(p for p in points if p.reading == "inconclusive")
