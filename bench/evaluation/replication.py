"""The verdict of a replication suite (`[replication]`, bench/replication_schema.py): reproduced, contradicted or
inconclusive, read from the paired interval of the deciding comparison.

The interval is the project's one uncertainty model (bench/evaluation/uncertainty.py: a t interval over the seeds
both arms finished, plus the prompts' and reference draws' shared variance, differenced cell by cell); nothing
here estimates variance of its own. With the claim's expected sign s (+1 for "positive", -1 for "negative") and
the 95% interval [lo, hi] of a - b:

    reproduced     s·lo > 0 at every matched point      (the interval excludes 0 on the claimed side)
    contradicted   s·hi < 0 at some matched point       (it excludes 0 on the other side)
    inconclusive   otherwise, or nothing could be matched (which is said)

A claim that one effect exceeds another ("the data moves the result more than the algorithm") names the second
difference in `beyond = "c - d"`: each matched-budget point is then (a − b) − (c − d), paired by seed, and the
verdict reads its sign.

Matched points. `matched_budget`: each arm's selected setting (the runner's `best`, chosen on validation prompts;
an arm without a grid has one) under every suite-level condition both arms ran (budget, budget view, world seed,
pair source) — a claim about a ranking must hold at each budget the suite sweeps. `matched_kl` (Rafailov et al.
2023, Fig. 2 compare reward at equal KL(π‖π_ref)): for each setting of arm a (over its grid and budgets), the
setting of arm b with the nearest mean KL on the same world; a point counts when the two means differ by at most
`kl_tolerance` of the larger, so a frontier claim is read across the KL range both arms cover. The report shows
each point; the headline is the point that decides (the contradicting one, else the weakest reproducing one).
`frontier` reads a whole reward–KL frontier: every setting of arm a whose mean KL lies inside the KL range of arm
b's settings (same world) is compared with b's frontier at that KL, the straight line between the two settings
of b that bracket it — the contrast a − (1 − w)·b₁ − w·b₂, w = (KL_a − KL_b₁)/(KL_b₂ − KL_b₁), paired by seed on
the shared prompts and draws (Uncertainty.contrast). The weights take the mean KLs as given (their own seed noise
is not propagated); settings of a outside b's range are not extrapolated, and the verdict names them.

A matched-budget verdict is read at matched KL as well (`also_at_kl`, shown beside it; the verdict stays the
budget reading the claim names). An inconclusive verdict says what would decide it (`to_decide`): the paired seeds that detect every undecided
point's difference, were it as large as observed, with 80% power (`crossed.seeds_for_power`), and their run time at
the suite's measured time per seed. Each tuned arm's selection is named interior or at its grid's edge
(`selection`), since a claim read at the edge of a grid may move with a wider one.

The matched points are built in bench/evaluation/replication_points.py; this module decides and words the verdict.
No algorithm code: the suite's records (summary frame, per-unit files) are all it reads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from bench.columns import AXIS_COLUMNS, format_param, param_columns, present, sorted_runs
from bench.evaluation.replication_points import (  # noqa: F401  (Arm, Point, parse_arms: re-exported)
    Arm, Point, aggregate, arm_rows, budget_points, frontier_points, kl_points, parse_arms)

VERDICTS = ("reproduced", "contradicted", "inconclusive")
DIAGNOSTICS = (("kl", "KL {:.2f}"), ("length", "length {:.1f}"), ("grammatical_fraction", "{:.0%} grammatical"),
               ("steps", "{:.0f} optimizer steps"), ("epochs", "{:.2f} epochs"),
               ("rm_gold_accuracy", "its reward model agrees with gold on {:.1%} of held-out pairs"))
@dataclass
class Verdict:
    verdict: str
    claim: str
    citation: str
    metric: str
    compare: str
    at: str
    expect: str
    headline: str                       # one line: the verdict, the deciding number with its interval
    reason: str = ""                    # why inconclusive (nothing matched, too few seeds, ...), else ""
    mechanism: str = ""                 # contradicted: the suite's mechanism sentence + measured diagnostics
    deciding: Point | None = None
    points: list[Point] = field(default_factory=list)
    stands_in_for: str = ""
    world_gap: str = ""
    beyond: str = ""                    # "c - d": the claim is that compare's difference exceeds this one's
    to_decide: str = ""                 # inconclusive: the seeds (and run time) that would decide it
    also_at_kl: str = ""                # matched_budget: the deciding settings' KLs and the matched-KL reading
    selection: list[str] = field(default_factory=list)  # each tuned arm's selected setting: interior or at an edge

    def to_dict(self) -> dict[str, Any]:
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return [clean(x) for x in v] if isinstance(v, list) else v

        return clean(asdict(self))


def _diagnostics(runs: pd.DataFrame, setting: str) -> str:
    rows = runs[(runs["setting"] == setting) & (runs["status"] == "finished")]
    parts = []
    for col, fmt in DIAGNOSTICS:
        if col in rows:
            values = pd.to_numeric(rows[col], errors="coerce").dropna()
            if len(values):
                parts.append(fmt.format(float(values.mean())))
    return f"{setting}: " + (", ".join(parts) if parts else "no finished runs")


def _hours(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _to_decide(runs: pd.DataFrame, points: list[Point], deciding: Point) -> str:
    """For an inconclusive verdict: the paired seeds that would tell the sign of every undecided point at 80% power
    if its difference is as large as observed (`crossed.seeds_for_power`: the seed part shrinks with more seeds,
    the shared prompt/draw part does not), and what they would cost at this suite's measured run time per seed.
    A planning number, not a promise: the observed difference of an unresolved comparison is itself noisy."""
    open_points = [p for p in points if p.reading == "inconclusive" and math.isfinite(p.difference)]
    if not open_points or deciding.seeds < 2:
        return ""
    need = [p.seeds_to_decide for p in open_points]
    if all(n is None for n in need):
        return (f"more than 1,000 paired seeds, or none at these prompts: the observed difference "
                f"({_fmt(deciding.difference)}) is too small for the seeds' spread, or for the prompts' and reference "
                "draws' shared variance, which more seeds do not shrink")
    n = max(x for x in need if x is not None)
    done = runs[runs["status"] == "finished"]
    wall = pd.to_numeric(done["wall_s"], errors="coerce").sum() if "wall_s" in done else math.nan
    per_seed = wall / deciding.seeds if wall and math.isfinite(wall) else math.nan
    more = max(n - deciding.seeds, 0)
    cost = (f"; ≈ {_hours(more * per_seed)} more run time at this suite's {_hours(per_seed)} per seed "
            f"(≈ {_hours(more * per_seed / 2)} on 2 parallel workers)" if more and math.isfinite(per_seed) else "")
    unreachable = sum(x is None for x in need)
    return (f"telling each undecided point's sign at 80% power, if its difference is as large as observed, takes "
            f"{n} paired seeds (this run: {deciding.seeds}){cost}"
            + (f"; {unreachable} matched point(s) need more than 1,000 seeds or more prompts (a difference near 0)"
               if unreachable else ""))


def _selection(runs: pd.DataFrame, arms: tuple[Arm, Arm], at: str = "matched_budget") -> list[str]:
    """Each tuned arm's selected setting (the runner's `best`: highest mean validation win rate over seeds, with no
    eligibility cut-off) and, per swept hyper-parameter, whether it is interior to the grid or at an edge — a
    selection at an edge means the optimum may lie beyond the grid, and the verdict may move with a wider one.
    A KL reading (`frontier`, `matched_kl`) selects nothing: every setting of the sweep is a point of it."""
    cols = param_columns(runs) if len(runs) else []
    params = [c for c in cols if c not in AXIS_COLUMNS]
    axes = [c for c in cols if c in AXIS_COLUMNS]
    out, seen = [], set()
    for arm in arms:
        if str(arm) in seen:
            continue
        seen.add(str(arm))
        rows = arm_rows(runs, arm)
        groups = rows.groupby(axes, dropna=False, sort=False) if axes and len(rows) else [((), rows)]
        for cond, group in groups:
            keys = [k for k in params if k in group and group[k].notna().any() and group[k].nunique() > 1]
            if not keys:
                continue
            cond = cond if isinstance(cond, tuple) else (cond,)
            where = ", ".join(f"{a}={format_param(v)}" for a, v in zip(axes, cond)
                              if present(v) and runs[a].dropna().astype(str).nunique() > 1)
            head = f"{arm}" + (f" ({where})" if where else "")
            if at in ("frontier", "matched_kl"):
                read = "on the frontier" if at == "frontier" else "at matched KL"
                out.append(f"{head}: {', '.join(keys)} swept, every setting read {read} (nothing selected)")
                continue
            chosen = group[group["best"].astype(str) == "best"] if "best" in group else group.iloc[0:0]
            if chosen.empty:
                out.append(f"{head}: a grid over {', '.join(keys)} with no selected setting")
                continue
            parts = []
            for k in keys:
                values = sorted(group[k].dropna().unique(), key=lambda v: (float(v) if _number(v) else math.inf, str(v)))
                v = chosen[k].iloc[0]
                if not all(_number(x) for x in values) or not _number(v):  # a categorical grid has no edges
                    parts.append(f"{k}={format_param(v)} (of {', '.join(format_param(x) for x in values)})")
                    continue
                place = ("the grid's lowest" if v == values[0] else "the grid's highest" if v == values[-1]
                         else "interior")
                parts.append(f"{k}={format_param(v)} ({place} of {', '.join(format_param(x) for x in values)})")
            out.append(f"{head}: " + "; ".join(parts))
    return out


def _number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _fmt(x: float) -> str:
    return f"{x:+.3f}" if math.isfinite(x) else "–"


def _also_at_kl(runs, unc, a: Arm, b: Arm, metric: str, sign: int, deciding: Point, tolerance: float) -> str:
    """A matched-budget verdict read at matched KL as well (a ranking at equal compute may be a ranking of how far
    each moved): the deciding settings' KLs, and the matched-KL reading over both arms' settings (`kl_points`)."""
    kl_a, kl_b = (unc.interval(s, "kl").mean for s in (deciding.a, deciding.b))
    text = (f"the deciding settings sit at KL {kl_a:.2f} ({deciding.a}) and {kl_b:.2f} ({deciding.b})"
            if math.isfinite(kl_a) and math.isfinite(kl_b) else "")
    if a.label == b.label:  # one setting under two conditions (budgets): the KL gap is part of the effect
        return text
    points, why = kl_points(runs, unc, a, b, metric, sign, tolerance)
    if points:
        reading, p = aggregate(points, sign)
        ci = f"[{_fmt(p.lo)}, {_fmt(p.hi)}]" if math.isfinite(p.lo) else "(one seed)"
        at_kl = (f"at matched KL (within {tolerance:.0%}) {reading} over {len(points)} pair"
                 f"{'s' if len(points) != 1 else ''}: {p.a} − {p.b} = {_fmt(p.difference)} {ci} ({p.condition})")
    else:
        at_kl = f"no reading at matched KL: {why}"
    return f"{text}; {at_kl}" if text else at_kl


def decide(replication: dict[str, Any], frame: pd.DataFrame, unc, swept: list[str] | None = None) -> Verdict:
    """The verdict of a replication suite from its runs (`frame`: the summary frame; `unc`: its Uncertainty;
    `swept`: the suite-level axes the suite sweeps, suite.json's "axes" names)."""
    rep = dict(replication)
    a, b = parse_arms(rep["compare"])
    beyond = parse_arms(rep["beyond"]) if rep.get("beyond") else None
    sign = 1 if rep.get("expect", "positive") == "positive" else -1
    metric, at = rep.get("metric", "gold_reward"), rep.get("at", "matched_budget")
    base = {k: rep.get(k, "") for k in ("claim", "citation", "compare", "beyond", "stands_in_for", "world_gap")}
    base.update(metric=metric, at=at, expect=rep.get("expect", "positive"))
    runs = sorted_runs(frame) if len(frame) else frame.assign(setting=[])
    if at == "matched_kl":
        points, why = kl_points(runs, unc, a, b, metric, sign, float(rep.get("kl_tolerance", 0.25)))
    elif at == "frontier":
        points, why = frontier_points(runs, unc, a, b, metric, sign)
    else:
        points, why = budget_points(runs, unc, a, b, metric, sign, swept, beyond)
    where = {"matched_kl": "at matched KL", "frontier": "against the frontier"}.get(at, "at matched budget")
    if not points:
        return Verdict("inconclusive", headline=f"inconclusive: {why}", reason=why,
                       selection=_selection(runs, (a, b, *(beyond or ())), at), **base)
    verdict, deciding = aggregate(points, sign)
    seeds = f"{deciding.seeds} paired seed{'s' if deciding.seeds != 1 else ''}"
    ci = f"[{_fmt(deciding.lo)}, {_fmt(deciding.hi)}]" if math.isfinite(deciding.lo) else "(no interval: one seed)"
    headline = (f"{verdict}: {metric} {deciding.a} − {deciding.b} = {_fmt(deciding.difference)} {ci} {where}"
                + (f" ({deciding.condition})" if deciding.condition else "") + f", {seeds}"
                + (f"; {len(points)} matched points" if len(points) > 1 else "")
                + f"; the claim expects {'> 0' if sign > 0 else '< 0'}"
                + (f"; {why}." if why and at == "frontier" else "."))
    reason = ""
    if verdict == "inconclusive":
        reason = ("the interval includes 0" if math.isfinite(deciding.lo) else "one paired seed gives no interval") \
            + (f"; {why}" if why else "")
    to_decide = _to_decide(runs, points, deciding) if verdict == "inconclusive" else ""
    also = (_also_at_kl(runs, unc, a, b, metric, sign, deciding, float(rep.get("kl_tolerance", 0.25)))
            if at == "matched_budget" and not beyond else "")
    mechanism = ""
    if verdict == "contradicted":
        measured = "; ".join(_diagnostics(runs, s) for s in (deciding.settings or (deciding.a, deciding.b)))
        mechanism = (rep.get("mechanism", "").strip() + " " if rep.get("mechanism") else "") + f"Measured: {measured}."
    return Verdict(verdict, headline=headline, reason=reason, mechanism=mechanism, deciding=deciding,
                   points=points, to_decide=to_decide, selection=_selection(runs, (a, b, *(beyond or ())), at),
                   also_at_kl=also, **base)


def swept_axes(suite: dict[str, Any]) -> list[str] | None:
    """The names of the axes a suite.json record sweeps (None for a record without "axes")."""
    axes = suite.get("axes")
    return None if axes is None else [a[0] for a in axes if a]


def with_selection(frame: pd.DataFrame, results_dir) -> pd.DataFrame:
    """`frame` with summary.csv's `best` column (the runner's selected setting of each swept entry), which the
    per-run records do not hold; unchanged when it already marks one or there is no summary.csv."""
    from pathlib import Path

    path = Path(results_dir) / "summary.csv"
    marked = "best" in frame.columns and (frame["best"].astype(str) == "best").any()
    if marked or not path.is_file() or not len(frame):
        return frame
    try:
        summary = pd.read_csv(path, usecols=lambda c: c in ("run_id", "best"), dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, ValueError):
        return frame
    lookup = dict(zip(summary["run_id"], summary["best"])) if "best" in summary.columns else {}
    return frame.assign(best=frame["run_id"].map(lambda r: lookup.get(r, "") or ""))

