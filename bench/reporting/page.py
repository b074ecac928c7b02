"""Assemble the page: header facts, tables, charts and samples into one template context, then render it.

The template is rendered with autoescaping on: every string from the results (labels, prompts, completions,
errors, package names) reaches the page as text, never as markup. Charts are data URIs built here, and so is each
table's CSV download (`data:text/csv`, no script). Run rows link to their folders through `link_base`, the
results directory relative to the page (`../../results/<suite>/` for `bench run`'s report/<suite>/index.html).
"""

from __future__ import annotations

from collections import Counter
from importlib import resources
from typing import Any
from urllib.parse import quote

import jinja2
import pandas as pd

from bench.reporting import figures, frontier_chart, gao_table, ladder, replication, sweeps, tables, verdict
from bench.reporting.data import Results, finite
from bench.suite import AXES

SAMPLE_PROMPTS = 4      # prompts shown in the samples section
SAMPLE_MAX_CHARS = 600  # longer completions are cut (real-model outputs can be pages long)
COLLAPSED_MAX_WORDS = 1  # a completion of at most this many words (empty, ".", one word) is flagged "collapsed"


def csv_uri(frame: pd.DataFrame) -> str:
    """A table as a `data:text/csv` link target: downloadable without a script or a second file."""
    text = frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    return "data:text/csv;charset=utf-8," + quote(text, safe="")


def run_links(link_base: str, run_id: str) -> dict[str, str]:
    """Relative links from the page to a run's folder and its config.json / metrics.json."""
    folder = f"{link_base}runs/{quote(str(run_id))}/"
    return {"folder": folder, "config": folder + "config.json", "metrics": folder + "metrics.json"}


def sample_flags(text: str, length: Any, cap: Any) -> list[str]:
    """'collapsed': empty or near-empty (at most COLLAPSED_MAX_WORDS words); 'capped': the sample reached the
    completion cap (`eval.max_new_tokens`) — cut, so its text and score are of an unfinished answer. `length` is
    the sample's token count (per_prompt.csv, end token included) or, without it, its word count."""
    flags = []
    if len(str(text).split()) <= COLLAPSED_MAX_WORDS:
        flags.append("collapsed")
    if finite(cap) and finite(length) and float(length) >= float(cap):
        flags.append("capped")
    return flags


def _lengths(res: Results, run_id: str) -> dict[int, float]:
    """Token count of each test prompt's sample (per_prompt.csv `length`, by prompt_index); {} without the file."""
    path = res.dirs.get(run_id)
    path = path / "per_prompt.csv" if path is not None else None
    if path is None or not path.is_file():
        return {}
    try:
        frame = pd.read_csv(path, usecols=["prompt_index", "length"])
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError):
        return {}
    return {int(i): float(n) for i, n in zip(frame["prompt_index"], frame["length"]) if finite(i)}


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


def utilisation_text(u: dict[str, Any]) -> str:
    """The last invocation's utilisation (bench.utilisation): FLOPs computed / (wall x this machine's peak)."""
    if not u or not finite(u.get("utilisation")):
        return ""
    return (f"{100 * u['utilisation']:.1f}% of the fp32 matmul peak: {u['flops']:.3g} FLOPs computed (shared stages "
            f"once) in {u['wall_s']:.0f} s at {u['peak_flops_per_s'] / 1e9:.0f} GFLOP/s peak "
            f"({u.get('peak_device', 'cpu')}, {u.get('peak_threads')} threads); {u.get('runs_trained')} runs, "
            f"{u.get('launcher', '')}")


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
    # a swept world setting (seed, pair source) reads as all its values: each value is its own world
    swept_world = {AXES[name][1]: "swept: " + ", ".join(map(str, values))
                   for name, values in (suite.get("axes") or []) if name in AXES and AXES[name][0] == "world"}
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
        "utilisation": utilisation_text(res.utilisation),
        "suite": res.name, "path": suite.get("path") or "", "hash": str(suite.get("hash") or "")[:12],
        "world_kind": world.get("kind") or world_info.get("kind") or "–",
        "world": [(k, _fmt(swept_world.get(k, v))) for k, v in sorted(world.items()) if k != "kind"],
        "model": "; ".join(model) + (" (the first world's; each swept world setting gives one world per value)"
                                     if swept_world and model else ""),
        "budget": "; ".join(budget_text) or "–",
        "seeds": _seeds(suite.get("seeds"), frame),
        "eval": [(k, _fmt(v)) for k, v in sorted(ev.items())],
        "date": res.date or "–", "commit": _distinct(commits), "device": _distinct(devices),
        "packages": [(name, _distinct(v)) for name, v in sorted(packages.items())],
        "runs": len(frame), "statuses": sorted(statuses.items()),
    }


def _cut(text: Any) -> tuple[str, bool]:
    text = "" if text is None else str(text)
    return (text[:SAMPLE_MAX_CHARS] + "…", True) if len(text) > SAMPLE_MAX_CHARS else (text, False)


def samples(res: Results, runs: pd.DataFrame, board: pd.DataFrame, link_base: str = "") -> list[dict[str, Any]]:
    """The first prompts shared by all labels: π_ref's sample once, then each label's sample (lowest seed of
    the selected, else first, setting) with its judge score, its flags (`sample_flags`) and its run's links."""
    cap = (res.suite.get("eval") or {}).get("max_new_tokens")
    untrained = set(board.loc[board["algorithm"] == "sft", "setting"]) if len(board) else set()
    chosen: list[tuple[str, str, dict[str, dict]]] = []
    for label, rows in board.groupby("label", sort=False):
        settings = list(rows.loc[rows["selected"], "setting"]) + list(rows["setting"])
        for setting in settings:
            ids = [r for r in runs.loc[(runs["setting"] == setting) & (runs["status"] == "finished"), "run_id"]
                   if res.samples.get(r)]
            if ids:
                rows_by_prompt: dict[str, dict] = {}
                lengths = _lengths(res, ids[0])
                for i, s in enumerate(res.samples[ids[0]]):
                    text = "" if s.get("completion") is None else str(s.get("completion"))
                    length = lengths.get(i, len(text.split()))
                    rows_by_prompt.setdefault(str(s.get("prompt", "")), {**s, "_flags": sample_flags(text, length,
                                                                                                      cap)})
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
        ref_raw = "" if ref.get("reference") is None else str(ref.get("reference"))
        entry = {"prompt": prompt, "reference": ref_text, "reference_cut": ref_cut,
                 "reference_score": _fmt(ref.get("reference_score")),
                 "reference_flags": sample_flags(ref_raw, len(ref_raw.split()), cap) if ref else [], "rows": []}
        for setting, run_id, by_prompt in chosen:
            s = by_prompt.get(prompt)
            if s is None or (ref and setting in untrained):  # sft is π_ref: its row would repeat the one above
                continue
            text, cut = _cut(s.get("completion"))
            entry["rows"].append({"setting": setting, "run_id": run_id, "completion": text, "cut": cut,
                                  "score": _fmt(s.get("score")), "kl": _fmt(s.get("kl")), "flags": s["_flags"],
                                  "links": run_links(link_base, run_id)})
        out.append(entry)
    return out


def samples_frame(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """The samples section as a table (its CSV download): one row per shown completion, π_ref's first."""
    rows = []
    for e in entries:
        if e["reference"]:
            rows.append({"prompt": e["prompt"], "policy": "π_ref (reference)", "run_id": "",
                         "completion": e["reference"], "score": e["reference_score"], "log_ratio": "0",
                         "flags": " ".join(e["reference_flags"])})
        rows += [{"prompt": e["prompt"], "policy": r["setting"], "run_id": r["run_id"], "completion": r["completion"],
                  "score": r["score"], "log_ratio": r["kl"], "flags": " ".join(r["flags"])} for r in e["rows"]]
    return pd.DataFrame(rows, columns=["prompt", "policy", "run_id", "completion", "score", "log_ratio", "flags"])


COMPONENT_TITLES = {"policy": "policy", "reference": "reference", "reward_model_training": "reward model training",
                    "reward_model": "reward model (scoring)", "value_model": "value model", "generation": "generation"}


def runs_view(table: pd.DataFrame, link_base: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(component titles, display rows) of the per-run table: counts, stop reason and the FLOP breakdown."""
    components = [c[len("flops_"):] for c in table.columns
                  if c.startswith("flops_") and c != "flops_amortised"]
    rows = []
    for _, r in table.iterrows():
        rows.append({"run_id": r["run_id"], "setting": r["setting"], "seed": _fmt(r["seed"]),
                     "status": str(r["status"]), "links": run_links(link_base, r["run_id"]),
                     "steps": tables.format_number(r["steps"], ".0f"),
                     "epochs": tables.format_number(r["epochs"], ".2f"),
                     "stop_reason": str(r["stop_reason"]) if tables.present(r["stop_reason"]) else "–",
                     "budget_fraction": tables.format_number(r["budget_fraction"], ".2f"),
                     "flops": tables.format_number(r["flops"], ".2e"),
                     "components": [tables.format_number(r[f"flops_{c}"], ".2e") for c in components],
                     "amortised": tables.format_number(r["flops_amortised"], ".2e"),
                     "wall_s": tables.format_number(r["wall_s"], ".1f")})
    return [COMPONENT_TITLES.get(c, c.replace("_", " ")) for c in components], rows


def _seeds_text(n: Any, seeds: Any) -> str:
    """A projected seed count for the pairwise table: the number, or "more prompts" where seeds alone cannot get
    there (the shared prompt / draw part is too wide), or "" where there is nothing to project (one seed)."""
    if tables.present(n):
        return str(int(n))
    return "more prompts" if tables.present(seeds) and int(seeds) >= 2 else ""


def context(res: Results, link_base: str | None = None) -> dict[str, Any]:
    """Everything the template shows. `link_base`: the results directory as seen from the page (a relative URL
    ending in '/'); default: `bench run`'s layout, report/<suite>/ beside results/<suite>/."""
    link_base = link_base if link_base is not None else f"../../results/{quote(res.name)}/"
    frame = res.frame
    order = tables.label_order(frame, res.suite)
    params = tables.param_columns(frame)
    runs = tables.sorted_runs(frame, order) if len(frame) else frame.assign(setting=pd.Series(dtype=object))
    from bench.evaluation.uncertainty import from_frame

    unc = from_frame(frame, res.dirs)
    board = tables.leaderboard(frame, order, unc)
    marks = tables.best_marks(board, unc)
    pairs = tables.pairwise_readings(board, unc)
    algorithms = dict(zip(board["label"], board["algorithm"]))
    style = figures.styles(order, algorithms)
    controlled = (res.world.get("kind") or (res.suite.get("world") or {}).get("kind")) == "controlled"
    reward_name = "gold reward" if controlled else "judge reward"
    tax = tables.alignment_tax(board)
    gao = gao_table.gao_fits(runs, board, res.curves)
    failed = tables.failed_runs(frame, order)
    run_table = tables.runs_table(frame, res.metrics, order)
    component_titles, run_rows = runs_view(run_table, link_base)
    sample_entries = samples(res, runs, board, link_base)
    first_run = dict(zip(run_table["setting"][::-1], run_table["run_id"][::-1]))  # setting -> its first run
    flags = tables.seed_flags(runs)  # the leaderboard's ⚠: which seeds; the caveats: with the failure-aware reading
    caveat_flags = tables.seed_flags(runs, unc)
    for setting, text in tables.transient_flags(res.curves, runs).items():  # both kinds: one line each
        for kept in (flags, caveat_flags):
            kept[setting] = f"{kept[setting]}; {text}" if setting in kept else text
    board_rows = [{**row, "anchor": f"run-{first_run[setting]}" if setting in first_run else "",
                   "flag": flags.get(setting, "")}
                  for row, setting in zip(tables.leaderboard_view(board, marks), board["setting"])]
    sweep = any(len(rows) > 1 for _, rows in board.groupby("label")) if len(board) else False
    has_proxy = len(frame) and pd.to_numeric(frame["proxy_reward"], errors="coerce").notna().any()
    charts = {
        "frontier": frontier_chart.frontier(board, runs, res.limits, style, reward_name, res.curves) if len(board) else None,
        "budget": figures.budget_chart(board, runs, style, reward_name) if len(board) else None,
        "displacement": figures.displacement(board, runs, res.curves) if len(board) else None,
        "progress": figures.progress(board, runs, res.curves, style) if len(board) else None,
        "seeds": figures.seeds_chart(board, runs, style, reward_name) if len(board) else None,
        "sensitivity": sweeps.sensitivity(board, runs, params, style) if sweep else None,
        "proxy": sweeps.proxy_vs_gold(board, runs, style, reward_name) if has_proxy else None,
    }
    metrics = [{"title": m.title.replace("gold reward", reward_name), "unit": m.unit,
                "direction": {1: "↑", -1: "↓"}.get(m.direction, "")} for m in tables.LEADERBOARD]
    answer = verdict.verdict(board, pairs, run_table, caveat_flags, failed)
    return {
        "answer": answer, "answer_sentences": verdict.answer_sentences(answer),
        "answer_costs": verdict.cost_sentences(answer), "answer_text": verdict.text(answer),
        # the short table's head, built from the same SHORT_COLUMNS as its cells (a hand-written head once kept the
        # old order after the cells moved: "steps" sat above the FLOPs)
        "short_columns": [{"title": t, "unit": verdict.SHORT_UNITS.get(k, "")} for k, t, _ in verdict.SHORT_COLUMNS],
        "h": header(res), "metrics": metrics, "board": board_rows,
        "pairs": [{"a": r["a"], "b": r["b"], "d": tables.format_number(r["difference"], "+.3f"),
                   "ci": f"[{tables.format_number(r['lo'], '+.3f')}, {tables.format_number(r['hi'], '+.3f')}]",
                   "hw": tables.format_number(r["half_width"], ".3f"), "seeds": int(r["seeds"]),
                   "sig": bool(r["significant"]),
                   **{short: (tables.format_number(r[f"{short}_difference"], "+.3f") +
                              (f" [{tables.format_number(r[f'{short}_lo'], '+.3f')}, "
                               f"{tables.format_number(r[f'{short}_hi'], '+.3f')}]"
                               if tables.present(r[f"{short}_lo"]) else ""))
                      for _, short in tables.READINGS},
                   "need": _seeds_text(r["seeds_needed"], r["seeds"]),
                   "mdd": tables.format_number(r["mdd"], ".3f"),
                   "resolve": "" if r["significant"] else _seeds_text(r["seeds_to_resolve"], r["seeds"])}
                  for _, r in pairs.iterrows()],
        "mdd": tables.format_number(pairs["mdd"].max(), ".3f") if len(pairs) else "",
        "mdd_seeds": int(pairs["seeds"].max()) if len(pairs) else 0,
        "power_target": tables.POWER_TARGET,
        "max_half_width": tables.format_number(pairs["half_width"].max(), ".3f") if len(pairs) else "",
        "reference_samples": (res.suite.get("eval") or {}).get("reference_samples") or 1,
        "params": params, "charts": charts, "reward_name": reward_name, "limits": bool(res.limits),
        "sweep": sweep, "has_proxy": bool(has_proxy),
        "gao": [{"setting": r["setting"], "seeds": int(r["seeds"]),
                 "better": f"RL {int(r['better_rl'])} · BoN {int(r['better_bon'])}",
                 "cells": [{"value": tables.format_number(r[f"{form}_{part}"], ".2f"),
                            "ci": tables.format_ci(r[f"{form}_{part}"], r[f"{form}_{part}_lo"],
                                                   r[f"{form}_{part}_hi"], int(r["seeds"]), ".2f")}
                           for form in ("rl", "bon") for part in gao_table.GAO_PARTS]}
                for _, r in gao.iterrows()],
        "tax": [{"setting": r["setting"], "seeds": int(r["seeds"]),
                 "score": tables.format_number(r["lm_eval_score"], ".3f"),
                 "ci": tables.format_ci(r["lm_eval_score"], r["lm_eval_score_lo"], r["lm_eval_score_hi"],
                                        int(r["seeds"]), ".3f"),
                 "delta": tables.format_number(r["delta_vs_sft"], "+.3f")} for _, r in tax.iterrows()],
        "lm_eval_tasks": _fmt((res.suite.get("eval") or {}).get("lm_eval_tasks") or []),
        "samples": sample_entries,
        "ladder": ladder.ladder(board, unc, res.suite.get("algorithms")),
        "replication": replication.section(res.suite, frame, unc),  # [replication]: the verdict opens the page
        "failed": [{**{k: ("" if not tables.present(v) else str(v)) for k, v in r.items()},
                    "links": run_links(link_base, r["run_id"])} for _, r in failed.iterrows()],
        "runs": run_rows, "components": component_titles,
        "collapsed_max_words": COLLAPSED_MAX_WORDS,
        "csv": {"leaderboard": csv_uri(board), "pairs": csv_uri(pairs), "tax": csv_uri(tax), "gao": csv_uri(gao),
                "samples": csv_uri(samples_frame(sample_entries)), "runs": csv_uri(run_table),
                "failed": csv_uri(failed)},
    }


def render(ctx: dict[str, Any]) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    source = resources.files("bench.reporting").joinpath("template.html").read_text(encoding="utf-8")
    return env.from_string(source).render(**ctx)
