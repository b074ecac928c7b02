"""Assemble the page: header facts, tables, charts and samples into one template context, then render it.

The template is rendered with autoescaping on: every string from the results (labels, prompts, completions,
errors, package names) reaches the page as text, never as markup. Charts are data URIs built here.
"""

from __future__ import annotations

from collections import Counter
from importlib import resources
from typing import Any

import jinja2
import pandas as pd

from bench.reporting import figures, ladder, sweeps, tables
from bench.reporting.data import Results, finite

SAMPLE_PROMPTS = 4      # prompts shown in the samples section
SAMPLE_MAX_CHARS = 600  # longer completions are cut (real-model outputs can be pages long)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return tables.format_number(value, ".3g") if finite(value) else "–"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "[]"
    if value is None:
        return "–"
    return str(value)


def _distinct(values: list[str]) -> str:
    """'a' when all agree, else 'a (3 runs), b (1 run)' so a mixed provenance is visible."""
    counts = Counter(v for v in values if v)
    if len(counts) <= 1:
        return next(iter(counts), "–")
    return ", ".join(f"{v} ({n} run{'s' if n != 1 else ''})" for v, n in sorted(counts.items()))


def _seeds(planned: Any, frame: pd.DataFrame) -> str:
    """The suite's seeds, and the seeds actually present when they differ (a suite still running, --seeds)."""
    found = sorted({int(x) for x in pd.to_numeric(frame["seed"], errors="coerce").dropna()}) if len(frame) else []
    if planned is None:
        return _fmt(found) if found else "–"
    text = _fmt(list(planned))
    return text if sorted(planned) == found else f"{text} (in these results: {_fmt(found) if found else 'none'})"


def header(res: Results) -> dict[str, Any]:
    suite, world_info = res.suite, res.world
    world = suite.get("world") or next((c.get("world") for c in res.configs.values() if c.get("world")), {}) or {}
    budget = suite.get("budget") or next((c.get("budget") for c in res.configs.values() if c.get("budget")), {}) or {}
    ev = suite.get("eval") or {}
    prov = [c.get("provenance") or {} for c in res.configs.values()]
    commits = []
    for p in prov:
        git = p.get("git") or {}
        if git.get("commit"):
            commits.append(str(git["commit"])[:12] + (" (dirty)" if git.get("dirty") else ""))
    packages: dict[str, list[str]] = {}
    for p in prov:
        for name, version in (p.get("packages") or {}).items():
            packages.setdefault(name, []).append(str(version))
    devices = [" / ".join(str(d.get(k)) for k in ("device", "machine") if d.get(k))
               for d in (p.get("device") or {} for p in prov)]
    frame = res.frame
    statuses = Counter(str(s) if tables.present(s) else "incomplete" for s in frame["status"]) if len(frame) else {}
    budget_text = []
    if finite(budget.get("flops")):
        budget_text.append(f"{tables.format_number(budget['flops'], '.3g')} FLOPs per run")
    if finite(budget.get("seconds")):
        budget_text.append(f"{budget['seconds']:g} s per run")
    if budget.get("max_epochs"):
        budget_text.append(f"at most {budget['max_epochs']} epochs")
    axes = dict((suite.get("axes") or []))
    if axes.get("budget_flops"):
        budget_text.append("swept over " + ", ".join(tables.format_number(v, ".3g") for v in axes["budget_flops"])
                           + " FLOPs")
    views = axes.get("budget_view") or [budget.get("view") or "end_to_end"]
    budget_text.append("view: " + " and ".join(views) + " (end_to_end: the reward model's training is charged "
                       "to every run using it; amortised: listed apart, the budget pays policy optimisation only)")
    model = []
    pre = world_info.get("pretrain") or {}
    if finite(pre.get("parameters")):
        model.append(f"{int(pre['parameters']):,} parameters")
    if finite(pre.get("heldout_perplexity")):
        model.append(f"held-out perplexity {pre['heldout_perplexity']:.2f}")
    pairs = (world_info.get("pairs") or {})
    for split in ("train", "heldout"):
        p = pairs.get(split) or {}
        if finite(p.get("pairs")):
            agree = f", labels agree with gold on {p['gold_agreement']:.1%}" if finite(p.get("gold_agreement")) else ""
            model.append(f"{int(p['pairs'])} {split} pairs{agree}")
    return {
        "suite": res.name, "path": suite.get("path") or "", "hash": str(suite.get("hash") or "")[:12],
        "world_kind": world.get("kind") or world_info.get("kind") or "–",
        "world": [(k, _fmt(v)) for k, v in sorted(world.items()) if k != "kind"],
        "model": "; ".join(model), "budget": "; ".join(budget_text) or "–",
        "seeds": _seeds(suite.get("seeds"), frame),
        "eval": [(k, _fmt(v)) for k, v in sorted(ev.items())],
        "date": res.date or "–", "commit": _distinct(commits), "device": _distinct(devices),
        "packages": [(name, _distinct(v)) for name, v in sorted(packages.items())],
        "runs": len(frame), "statuses": sorted(statuses.items()),
    }


def _cut(text: Any) -> tuple[str, bool]:
    text = "" if text is None else str(text)
    return (text[:SAMPLE_MAX_CHARS] + "…", True) if len(text) > SAMPLE_MAX_CHARS else (text, False)


def samples(res: Results, runs: pd.DataFrame, board: pd.DataFrame) -> list[dict[str, Any]]:
    """The first prompts shared by all labels: π_ref's sample once, then each label's sample (lowest seed of
    the selected, else first, setting) with its judge score."""
    chosen: list[tuple[str, str, dict[str, dict]]] = []
    for label, rows in board.groupby("label", sort=False):
        settings = list(rows.loc[rows["selected"], "setting"]) + list(rows["setting"])
        for setting in settings:
            ids = [r for r in runs.loc[(runs["setting"] == setting) & (runs["status"] == "finished"), "run_id"]
                   if res.samples.get(r)]
            if ids:
                rows_by_prompt: dict[str, dict] = {}
                for s in res.samples[ids[0]]:
                    rows_by_prompt.setdefault(str(s.get("prompt", "")), s)
                chosen.append((setting, ids[0], rows_by_prompt))
                break
    if not chosen:
        return []
    common = [p for p in chosen[0][2] if all(p in c[2] for c in chosen)]
    if not common:  # no prompt every label answered: show the first label's prompts and whatever matches
        common = list(chosen[0][2])
    out = []
    for prompt in common[:SAMPLE_PROMPTS]:
        ref = next((c[2][prompt] for c in chosen if prompt in c[2] and "reference" in c[2][prompt]), {})
        ref_text, ref_cut = _cut(ref.get("reference"))
        entry = {"prompt": prompt, "reference": ref_text, "reference_cut": ref_cut,
                 "reference_score": _fmt(ref.get("reference_score")), "rows": []}
        for setting, run_id, by_prompt in chosen:
            s = by_prompt.get(prompt)
            if s is None:
                continue
            text, cut = _cut(s.get("completion"))
            entry["rows"].append({"setting": setting, "run_id": run_id, "completion": text, "cut": cut,
                                  "score": _fmt(s.get("score")), "kl": _fmt(s.get("kl"))})
        out.append(entry)
    return out


def context(res: Results) -> dict[str, Any]:
    frame = res.frame
    order = tables.label_order(frame, res.suite)
    params = tables.param_columns(frame)
    runs = tables.sorted_runs(frame, order) if len(frame) else frame.assign(setting=pd.Series(dtype=object))
    from bench.evaluation.uncertainty import from_frame

    n_boot = int((res.suite.get("eval") or {}).get("bootstrap") or 1000)
    unc = from_frame(frame, res.dirs, n_boot=n_boot)
    board = tables.leaderboard(frame, order, unc)
    marks = tables.best_marks(board, unc)
    pairs = tables.pairwise(board, unc, "win_rate")
    algorithms = dict(zip(board["label"], board["algorithm"]))
    style = figures.styles(order, algorithms)
    controlled = (res.world.get("kind") or (res.suite.get("world") or {}).get("kind")) == "controlled"
    reward_name = "gold reward" if controlled else "judge reward"
    tax = tables.alignment_tax(board)
    failed = tables.failed_runs(frame, order)
    sweep = any(len(rows) > 1 for _, rows in board.groupby("label")) if len(board) else False
    has_proxy = len(frame) and pd.to_numeric(frame["proxy_reward"], errors="coerce").notna().any()
    charts = {
        "frontier": figures.frontier(board, runs, res.limits, style, reward_name, res.curves) if len(board) else None,
        "budget": figures.budget_chart(board, runs, style, reward_name) if len(board) else None,
        "displacement": figures.displacement(board, runs, res.curves) if len(board) else None,
        "progress": figures.progress(board, runs, res.curves, style) if len(board) else None,
        "sensitivity": sweeps.sensitivity(board, runs, params, style) if sweep else None,
        "proxy": sweeps.proxy_vs_gold(board, runs, style, reward_name) if has_proxy else None,
    }
    metrics = [{"title": m.title.replace("gold reward", reward_name), "unit": m.unit,
                "direction": {1: "↑", -1: "↓"}.get(m.direction, "")} for m in tables.LEADERBOARD]
    return {
        "h": header(res), "metrics": metrics, "board": tables.leaderboard_view(board, marks),
        "pairs": [{"a": r["a"], "b": r["b"], "d": tables.format_number(r["difference"], "+.3f"),
                   "ci": f"[{tables.format_number(r['lo'], '+.3f')}, {tables.format_number(r['hi'], '+.3f')}]",
                   "hw": tables.format_number(r["half_width"], ".3f"), "seeds": int(r["seeds"]),
                   "sig": bool(r["significant"]),
                   "need": "" if not tables.present(r["seeds_needed"]) else str(int(r["seeds_needed"]))}
                  for _, r in pairs.iterrows()],
        "power_target": tables.POWER_TARGET,
        "max_half_width": tables.format_number(pairs["half_width"].max(), ".3f") if len(pairs) else "",
        "n_boot": n_boot, "reference_samples": (res.suite.get("eval") or {}).get("reference_samples") or 1,
        "params": params, "charts": charts, "reward_name": reward_name, "limits": bool(res.limits),
        "sweep": sweep, "has_proxy": bool(has_proxy),
        "tax": [{"setting": r["setting"], "seeds": int(r["seeds"]),
                 "score": tables.format_number(r["lm_eval_score"], ".3f"),
                 "ci": tables.format_ci(r["lm_eval_score"], r["lm_eval_score_lo"], r["lm_eval_score_hi"],
                                        int(r["seeds"]), ".3f"),
                 "delta": tables.format_number(r["delta_vs_sft"], "+.3f")} for _, r in tax.iterrows()],
        "lm_eval_tasks": _fmt((res.suite.get("eval") or {}).get("lm_eval_tasks") or []),
        "samples": samples(res, runs, board),
        "ladder": ladder.ladder(board, unc),
        "failed": [{k: ("" if not tables.present(v) else str(v)) for k, v in r.items()} for _, r in failed.iterrows()],
    }


def render(ctx: dict[str, Any]) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    source = resources.files("bench.reporting").joinpath("template.html").read_text(encoding="utf-8")
    return env.from_string(source).render(**ctx)
