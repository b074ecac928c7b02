"""Regression checks for papers: a committed baseline of a suite's results, and a check of fresh results against it.

    bench baseline results/<suite> -o results/baselines/<suite>.json
    bench check    results/<suite> --baseline results/baselines/<suite>.json   (exit 0 pass, 1 regression, 2 usage)
    bench compare  results/A results/B                                         (the same table, no verdict)

A *setting* is (label, swept hyper-parameter values); the baseline (written and validated by bench/baseline.py)
stores, per setting and metric, the per-seed values with mean and 95% interval from the one uncertainty model
(bench/evaluation/uncertainty.py: t over seeds plus the shared prompt / reference-draw part, within the metric's
range) and that interval's per-prompt summary (`seed_var`, `shared_var`, `units`: the variance parts the prompts
contribute), plus the suite hash, the world identity and provenance.

The check asks the question the baseline can answer: baseline and current results share the world, the prompts and
the reference draws (else the identity check fails), so the shared part cancels and only seeds differ. Its test is
the seed-only path of the same model, a two-sample t on the two sets of seed values whose variance is *moderated*:
each row's pooled seed variance is shrunk towards the variance its metric's other rows show, by Smyth's (2004)
empirical-Bayes prior fitted on the check's own rows (bench/evaluation/moderated.py), which adds the prior's degrees
of freedom to the row's 4 (3 + 3 seeds). A metric regresses when BOTH hold (asv-style: a factor alone flags noise,
a test alone flags tiny effects):
  1. it moved in its bad direction by more than its floor, set by the metric's scale (FLOORS: absolute + relative to
     the baseline mean; override a metric's absolute floor in the suite's [check] table, e.g. `win_rate = 0.08`),
  2. the move beyond that floor is significant: the moderated one-sided t-test of (current − baseline) against the
     floor, with Holm's step-down correction over every row that can vary (Holm 1979; a deterministic reading —
     no seed spread on either side and no shared part — is compared exactly and left out of the family, Tarone
     1990), so that a rerun of an unchanged suite with other seeds fails with probability <= `alpha` (default
     0.05) as a whole. A reading with no seed spread but measured over units (a reward model's accuracy on the
     held-out pairs), and every row where the two sides' worlds were built to different content (another CPU),
     add the shared parts to the standard error (bench/check_stats.py says why).
The smallest move a row can flag is its `margin` (floor + the critical value × the moderated standard error): the
tolerance, derived from the seeds' own spread, its metric's other rows and the metric's scale. What this buys at
3 seeds on the default suite's gold-v4 baseline: DPO's KL 0.43 → 1.24 is flagged (Welch's t alone, p = 0.03 before
a correction over ~160 rows, was not); 0.43 → 1.01 (p = 0.004) is not — the row's margin, printed on it, says what
3 seeds resolve (0.79 nats there; tests/test_check.py re-reads it on whatever baseline is committed).
With fewer than 2 seeds on either side no test is possible and the floor alone decides (stated in the output).
Metrics with a direction: higher is better for win_rate, win_rate_lc (length-controlled), gold_reward,
pref_accuracy, lm_eval_score, grammatical and ended fractions; lower is better for kl and heldout_nll_delta. Drift
metrics (chosen/rejected/margin deltas), length and the grammar / sentiment parts of the win rate have no better
side: a move beyond the margin either way is a regression.

Findings are checked by direction as well (a paper states them as signs and orders):
  - a drift metric whose baseline interval excludes 0 (e.g. DPO's chosen log-prob falls: displacement) fails when
    the current seeds resolve the opposite sign (t over the current seed values);
  - a pair of settings whose win-rate order the baseline resolved (t over the seed-paired differences) fails when the
    current seeds resolve the opposite order.
Also a regression: a baseline setting missing from the results, or a run that failed; a changed suite hash or
world identity, unless `--allow-config-change`. A current setting the baseline lacks is named (not checked).
A baseline with NaN or non-numeric values, or no settings, is a usage error (exit 2) naming the file and field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.baseline import METRICS, collect, load_baseline
from bench.check_stats import margin_of, p_worse, row_variance, same_world, shared_allowance
from bench.errors import UserError
from bench.evaluation.moderated import Prior, fit_prior
from bench.io import write_json_atomic, write_text_atomic


# scale → (absolute floor, floor relative to |baseline mean|): a move smaller than abs + rel·|mean| is not a
# regression whatever the seeds say (0.02 of a rate; 10% of a KL or a log-prob change, at least 0.05 nats; 5% of a
# length, at least half a token)
FLOORS: dict[str, tuple[float, float]] = {
    "rate": (0.02, 0.0), "score": (0.05, 0.05), "nats": (0.05, 0.10), "tokens": (0.5, 0.05),
    "nats_per_token": (0.01, 0.10),
}
FINDINGS = ("chosen_logp_delta", "rejected_logp_delta", "margin_delta")  # signs a paper states
ORDERED = ("win_rate",)  # metrics whose resolved pairwise order is a finding


def floor_of(metric: str, baseline_mean: float, absolute: float | None = None) -> float:
    """The metric-scale part of the tolerance (FLOORS; `absolute` overrides the absolute part)."""
    abs_floor, rel = FLOORS[METRICS[metric][1]]
    return (abs_floor if absolute is None else absolute) + rel * abs(baseline_mean)


@dataclass
class Row:
    setting: str
    metric: str
    baseline: float | None
    current: float | None
    delta: float | None
    tolerance: float   # the metric-scale floor
    p_value: float | None
    status: str  # ok | regression | improved | missing | failed | reversed | new
    margin: float | None = None  # the smallest bad move this row could flag (floor + seed-spread part)
    note: str = ""
    exact: bool = False  # no spread on either side (a deterministic reading): the move alone decides, outside Holm


def _holm(rows: list[Row], alpha: float) -> set[int]:
    """Indices of rows whose p-value is significant under Holm's step-down procedure at family level alpha.

    Exact rows (no seed spread on either side: best-of-n's analytic KL, a scripted row, sft's zero drift) are left
    out of the family: a reading that cannot vary cannot be falsely flagged, so counting it would only lower every
    other row's threshold (Tarone 1990: only hypotheses that can reach significance enter the correction)."""
    tested = sorted((r.p_value, i) for i, r in enumerate(rows) if r.p_value is not None and not r.exact)
    m, out = len(tested), set()
    for k, (p, i) in enumerate(tested):
        if p > alpha / (m - k):
            break
        out.add(i)
    return out


def _t_interval(values: list[float]) -> tuple[float, float] | None:
    import numpy as np

    from bench.evaluation.crossed import crossed_ci

    v = [x for x in values if x is not None]
    if len(v) < 2:
        return None
    _, lo, hi = crossed_ci(np.array(v, dtype=float)[:, None])
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def _sign(lo: float | None, hi: float | None) -> int:
    if lo is None or hi is None:
        return 0
    return 1 if lo > 0 else -1 if hi < 0 else 0


def _paired(a: dict[str, Any], b: dict[str, Any], metric: str) -> tuple[float, float] | None:
    """t interval of a − b over the seeds both settings finished (seed-paired: common random numbers)."""
    ma, mb = a["metrics"].get(metric), b["metrics"].get(metric)
    if ma is None or mb is None:
        return None
    va, vb = dict(zip(a["seeds"], ma["values"])), dict(zip(b["seeds"], mb["values"]))
    diffs = [va[k] - vb[k] for k in sorted(set(va) & set(vb)) if va[k] is not None and vb[k] is not None]
    return _t_interval(diffs)


def _trained(setting: dict[str, Any]) -> bool:
    return setting.get("algorithm") not in ("sft", "best_of_n")


def finding_rows(current: dict[str, Any], baseline: dict[str, Any]) -> list[Row]:
    """Directional checks: resolved signs of drift metrics, resolved win-rate orders of pairs of trained settings."""
    rows = []
    for key, base in baseline["settings"].items():
        cur = current["settings"].get(key)
        if cur is None or not cur["seeds"]:
            continue
        for m in FINDINGS:
            b, c = base["metrics"].get(m), cur["metrics"].get(m)
            if b is None or c is None:
                continue
            was = _sign(b.get("lo"), b.get("hi"))
            now_iv = _t_interval(c["values"])
            now = _sign(*now_iv) if now_iv else 0
            if was and now == -was:
                rows.append(Row(key, f"sign of {m}", b["mean"], c["mean"], c["mean"] - b["mean"], 0.0, None,
                                "reversed", note=f"baseline resolved {'> 0' if was > 0 else '< 0'}, current resolves "
                                                 f"{'> 0' if now > 0 else '< 0'}"))
    keys = [k for k, s in baseline["settings"].items() if _trained(s)]
    for i, ka in enumerate(keys):
        for kb in keys[i + 1:]:
            ca, cb = current["settings"].get(ka), current["settings"].get(kb)
            if ca is None or cb is None:
                continue
            for m in ORDERED:
                was_iv = _paired(baseline["settings"][ka], baseline["settings"][kb], m)
                now_iv = _paired(ca, cb, m)
                was = _sign(*was_iv) if was_iv else 0
                now = _sign(*now_iv) if now_iv else 0
                if was and now == -was:
                    first, second = (ka, kb) if was > 0 else (kb, ka)
                    rows.append(Row(f"{ka} vs {kb}", f"order of {m}", None, None, None, 0.0, None, "reversed",
                                    note=f"baseline resolved {first} > {second}; current resolves the opposite"))
    return rows


def metric_priors(current: dict[str, Any], baseline: dict[str, Any], rows: list[Row]) -> dict[str, Prior]:
    """Per metric, the prior its rows' seed variances share (bench/evaluation/moderated.py), fitted on this check's
    own rows of that metric (every setting's pooled variance, baseline and current seeds together)."""
    out: dict[str, list[tuple[float, int]]] = {m: [] for m in METRICS}
    for r in rows:
        if r.metric in METRICS:
            v = row_variance(current["settings"][r.setting]["metrics"][r.metric]["values"],
                             baseline["settings"][r.setting]["metrics"][r.metric]["values"])
            if v is not None:
                out[r.metric].append(v)
    return {m: fit_prior(v) for m, v in out.items()}


def compare(current: dict[str, Any], baseline: dict[str, Any], *, tolerances: dict[str, float] | None = None,
            alpha: float = 0.05) -> list[Row]:
    """Every check row: per (setting, metric) the move and its Holm-corrected moderated t-test against the floor, the
    directional findings, missing / failed / new settings."""
    tolerances = tolerances or {}
    rows: list[Row] = []
    for key, base in baseline["settings"].items():
        cur = current["settings"].get(key)
        if cur is None or not cur["seeds"]:
            status = "failed" if cur is not None and cur["failed_seeds"] else "missing"
            rows.append(Row(key, "-", None, None, None, 0.0, None, status))
            continue
        if cur["failed_seeds"]:
            rows.append(Row(key, "runs", None, None, None, 0.0, None, "failed"))
        for metric, b in base["metrics"].items():
            if metric not in METRICS or metric not in cur["metrics"]:
                continue
            direction = METRICS[metric][0]
            c = cur["metrics"][metric]
            delta = c["mean"] - b["mean"]
            floor = floor_of(metric, b["mean"], tolerances.get(metric))
            rows.append(Row(key, metric, b["mean"], c["mean"], delta, floor, None, "ok"))
    priors = metric_priors(current, baseline, rows)
    same = same_world(current, baseline)
    extras: dict[int, tuple[float, float]] = {}
    for i, r in enumerate(rows):
        if r.metric in METRICS:
            be, ce = (x["settings"][r.setting]["metrics"][r.metric] for x in (baseline, current))
            v = row_variance(ce["values"], be["values"])
            invariant = v is not None and v[0] == 0  # no seed spread on either side
            extras[i] = shared_allowance(ce, be, invariant, same)  # bench/check_stats.py
            r.p_value = p_worse(ce["values"], be["values"], METRICS[r.metric][0], r.tolerance, priors[r.metric],
                                extras[i])
            r.exact = invariant and extras[i][0] == 0
            if invariant and extras[i][0] > 0:
                r.note = "no seed spread: a shared-stage reading, within its precision over its units"
    significant = _holm(rows, alpha)
    n_tested = sum(r.p_value is not None and not r.exact for r in rows)
    for i, r in enumerate(rows):
        if r.metric in ("-", "runs"):
            continue
        direction = METRICS[r.metric][0]
        bad = -r.delta if direction > 0 else r.delta if direction < 0 else abs(r.delta)
        good = (r.delta if direction > 0 else -r.delta) if direction else 0.0
        base_v = baseline["settings"][r.setting]["metrics"][r.metric]["values"]
        cur_v = current["settings"][r.setting]["metrics"][r.metric]["values"]
        r.margin = margin_of(cur_v, base_v, r.tolerance, alpha / max(n_tested, 1) / (2 if direction == 0 else 1),
                             priors[r.metric], extras.get(i, (0.0, math.inf)))
        if bad > r.tolerance and (r.p_value is None or r.exact or i in significant):
            r.status = "regression"
        elif direction and good > (r.margin if r.margin is not None else r.tolerance):
            r.status = "improved"
    rows += finding_rows(current, baseline)
    for key, cur in current["settings"].items():
        if key not in baseline["settings"]:
            rows.append(Row(key, "-", None, None, None, 0.0, None, "new",
                            note="not in the baseline: unchecked (regenerate the baseline to pin it)"))
    return rows


def identity_problems(current: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    out = []
    if baseline.get("suite_hash") and current.get("suite_hash") != baseline.get("suite_hash"):
        out.append(f"suite changed (hash {str(current.get('suite_hash'))[:12]} vs baseline "
                   f"{str(baseline.get('suite_hash'))[:12]})")
    if baseline.get("world_key") and current.get("world_key") != baseline.get("world_key"):
        out.append(f"world changed (key {str(current.get('world_key'))[:12]} vs baseline "
                   f"{str(baseline.get('world_key'))[:12]})")
    return out


VERSIONED_PACKAGES = ("trl", "transformers", "torch")  # the stack whose releases move trained numbers


def version_changes(current: dict[str, Any], baseline: dict[str, Any]) -> str | None:
    """One warning line when the results were made with other TRL / transformers / torch versions than the
    baseline ("trl 1.12.0 → 1.16.0"): numbers may move for that reason alone. A warning, never a failure (a paper's
    CI upgrading its stack should see why a check moved, not be stopped by the upgrade itself); None when the same
    or when either side recorded no versions."""
    old = (baseline.get("provenance") or {}).get("packages") or {}
    new = (current.get("provenance") or {}).get("packages") or {}
    moved = [f"{name} {old[name]} → {new[name]}" for name in VERSIONED_PACKAGES
             if old.get(name) and new.get(name) and old[name] != new[name]]
    if not moved:
        return None
    return ("warning: package versions differ from the baseline's (" + ", ".join(moved) + "): numbers may move with "
            "them; not a failure (regenerate the baseline on the new versions to pin them)")


PROBLEMS = ("regression", "missing", "failed", "reversed")  # row statuses that fail a check


def format_table(rows: list[Row], *, markdown: bool = False, names: tuple[str, str] = ("baseline", "current")) -> str:
    """The rows as an aligned text (or markdown) table; `names` head the two value columns."""
    head = ["setting", "metric", *names, "Δ", "floor", "margin", "p (worse)", "status", "note"]
    body = []
    for r in rows:
        f = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
        body.append([r.setting, r.metric, f(r.baseline), f(r.current), f(r.delta), f"{r.tolerance:g}", f(r.margin),
                     f(r.p_value), r.status.upper() if r.status in PROBLEMS else r.status, r.note])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(x.replace("|", "\\|") for x in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = lambda row: "  ".join(x.ljust(w) for x, w in zip(row, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(row) for row in body])


def replication_change(current: dict[str, Any], baseline: dict[str, Any]) -> tuple[bool, str]:
    """A replication suite's verdict against its baseline's: (fails, note). A resolved verdict that turns into the
    opposite one (reproduced <-> contradicted) fails, like a resolved sign that reverses; to or from inconclusive
    is a note."""
    now, then = (d.get("replication", {}).get("verdict") for d in (current, baseline))
    if not now or not then or now == then:
        return False, ""
    fails = {now, then} == {"reproduced", "contradicted"}
    return fails, f"replication verdict: {then} in the baseline, {now} now" + (" (reversed)" if fails else "")


def run_check(results_dir: Path, baseline_path: Path, *, allow_config_change: bool = False,
              out_dir: Path | None = None, verbose: bool = False) -> tuple[bool, str]:
    """Compare, write check.json and check.md (CI comment, every row) into out_dir (default: results_dir);
    → (passed, text). The text lists the rows that fail the check and the settings the baseline lacks unless
    `verbose` (a passing check of the default suite has ~100 rows: the verdict is what a CI log needs)."""
    baseline = load_baseline(baseline_path)
    current = collect(results_dir)
    check_cfg = dict(current.get("check") or {})
    alpha = float(check_cfg.pop("alpha", 0.05))
    unknown = [k for k in check_cfg if k not in METRICS]
    if unknown:
        from bench.errors import did_you_mean

        raise UserError(f"[check].{unknown[0]}: not a checked metric; {did_you_mean(unknown[0], METRICS)}")
    rows = compare(current, baseline, tolerances={k: float(v) for k, v in check_cfg.items()}, alpha=alpha)
    identity = identity_problems(current, baseline)
    failed_rows = [r for r in rows if r.status in PROBLEMS]
    reversed_verdict, verdict_note = replication_change(current, baseline)
    passed = not failed_rows and not reversed_verdict and (allow_config_change or not identity)
    verdict = "PASS" if passed else "FAIL"
    notes = [f"identity: {p}" + (" (allowed)" if allow_config_change else "") for p in identity]
    versions = version_changes(current, baseline)
    if versions:
        notes.append(versions)
    notes += [verdict_note] if verdict_note else []
    few = sorted({r.setting for r in rows if r.p_value is None and r.metric in METRICS})
    if few:
        notes.append("fewer than 2 seeds on a side: the floor alone decides for " + ", ".join(few))
    if same_world(current, baseline) is False:
        notes.append(f"world built differently (content {current['world_content']} here, "
                     f"{baseline['world_content']} in the baseline: another CPU, kernel library or package "
                     "version): its pairs, draws and models no longer cancel, so both sides' shared parts are added "
                     "to every row")
    new = [r.setting for r in rows if r.status == "new"]
    if new:
        notes.append("not in the baseline (unchecked): " + ", ".join(new))
    n_tested = sum(r.p_value is not None and not r.exact for r in rows)
    n_exact = sum(r.exact for r in rows)
    summary = (f"{verdict}: {len(failed_rows)} problem(s) in {len(rows)} checks of '{current['suite']}' against "
               f"{baseline_path} (moderated t over seeds beyond each metric's floor, Holm-corrected over {n_tested} "
               f"tests at family alpha {alpha}; {n_exact} deterministic readings compared exactly; resolved signs and "
               "orders must not reverse)")
    shown = rows if verbose else failed_rows
    hidden = len(rows) - len(shown)
    table = [format_table(shown)] if shown else []
    if hidden:
        table.append(f"({hidden} row(s) ok, improved or new not shown; `bench check -v` prints every row, check.md "
                     "has them all)")
    text = "\n".join([summary, *notes, "", *table])
    markdown = "\n".join([f"### daa-bench check: {verdict}", "", summary, "", *[f"- {n}" for n in notes], "",
                          format_table(rows, markdown=True), ""])
    out_dir = Path(out_dir or results_dir)
    write_json_atomic(out_dir / "check.json", {
        "passed": passed, "alpha": alpha, "baseline": str(baseline_path), "identity_problems": identity,
        "allow_config_change": allow_config_change, "package_versions": versions, "rows": [r.__dict__ for r in rows]})
    write_text_atomic(out_dir / "check.md", markdown)
    return passed, text


def run_compare(a: Path, b: Path) -> str:
    """The check table for two result sets, without a verdict: A plays the baseline, B the current results; the
    columns are headed with both folders' names, Δ = B − A and the status reads B against A. Either may be a
    baseline JSON file (`bench baseline`) instead of a results directory."""
    a, b = Path(a), Path(b)
    cur, base = _collected(b), _collected(a)
    rows = compare(cur, base)
    name_a, name_b = _column_names(a, b)
    versions = version_changes(cur, base)
    return (f"A = {a}\nB = {b}\n(Δ = B − A; status: B against A)\n" + (f"{versions}\n" if versions else "") + "\n"
            + format_table(rows, names=(f"A: {name_a}", f"B: {name_b}")))


def _collected(path: Path) -> dict[str, Any]:
    """A results directory's collected values, or a baseline JSON file's (`bench baseline` output, validated)."""
    if path.is_file() and path.suffix == ".json":
        return load_baseline(path)
    if not path.is_dir():
        raise UserError(f"{path}: neither a results directory (results/<suite>) nor a baseline JSON file")
    return collect(path)


def _column_names(a: Path, b: Path) -> tuple[str, str]:
    """The folders' names, or their paths when the names are the same (results/x vs other/results/x)."""
    if a.name != b.name:
        return a.name, b.name
    return str(a), str(b)
