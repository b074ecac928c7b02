"""The answer: what a suite found, in the few lines a reader takes in first (the report's first screen and the last
lines `bench run` prints).

Pure functions of tables the report already builds (tables.leaderboard, tables.pairwise_readings, tables.runs_table,
tables.seed_flags, tables.failed_runs); no new statistics. The *tied-best group* is the win-rate leader among the
competing settings (trained algorithms; in a grid only the runner's selected setting) together with every
competitor whose paired win-rate difference with the leader is not resolved (its 95% interval, the pairwise
table's, covers 0). Each other competitor's gap to the leader is quoted with that same interval. Settings are
compared only under equal suite-level conditions (tables.same_conditions: budget, budget view, world seed, pair
source), so a suite that sweeps such an axis gets one answer per condition.

The caveats name what changes how the answer reads: which settings paid a reward model's training out of the
budget (and, when the suite ran the amortised view, their reading there), a competitor that took far fewer
optimizer steps than another under the same budget, runs that diverged or did not finish, seeds that left the
language (collapsed), and settings whose length and KL are censored by the completion cap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from bench.columns import AXIS_COLUMNS, present
from bench.reporting.tables import COMPONENT_ORDER, REFERENCE_ALGORITHMS, competitors, format_ci, format_number

FEW_STEPS = 0.25  # a competitor with fewer than this share of another's optimizer steps gets a caveat
COMPONENT_NAMES = {"policy": "policy", "reference": "reference", "reward_model_training": "reward-model training",
                   "reward_model": "reward-model scoring", "value_model": "value model", "generation": "generation"}
# the columns of the short leaderboard (report and terminal): key, title, format
# steps right after KL: on a phone only the first columns show, and an algorithm's few optimizer steps (PPO's,
# paying for its reward model) is the caveat a reader must see beside its win rate
SHORT_COLUMNS = (("win_rate", "win rate", ".3f"), ("kl", "KL", ".2f"), ("steps", "steps", ".0f"),
                 ("epochs", "epochs", ".2f"), ("flops", "FLOPs", ".2e"), ("wall_s", "wall s", ".0f"))
SHORT_UNITS = {"win_rate": "vs π_ref", "kl": "nats"}


def _num(value: Any) -> float:
    try:
        return float(value) if present(value) else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def _conditions(board: pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """(caption, mask over board) per combination of suite-level axis values; ("", all rows) when none is swept. A
    setting serving both budget views (`budget_view = "both"`) belongs to every view's group."""
    axes = [a for a in AXIS_COLUMNS if a in board.columns and board[a].astype(str).nunique() > 1]
    if not axes:
        return [("", pd.Series(True, index=board.index))]
    keys = board[axes].astype(str)
    out = []
    for values, rows in keys.groupby(axes, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        if "both" in values:
            continue
        mask = pd.Series(True, index=board.index)
        for axis, value in zip(axes, values):
            mask &= (keys[axis] == value) | ((keys[axis] == "both") if axis == "budget_view" else False)
        out.append((", ".join(f"{a.replace('_', ' ')} {v}" for a, v in zip(axes, values)), mask))
    return out


def _gap(pairs: pd.DataFrame, leader: str, other: str) -> dict[str, Any] | None:
    """leader − other from the pairwise table (either orientation): difference, lo, hi, significant."""
    for a, b, sign in ((leader, other, 1.0), (other, leader, -1.0)):
        row = pairs[(pairs["a"] == a) & (pairs["b"] == b)]
        if len(row):
            r = row.iloc[0]
            lo, hi = sorted((sign * float(r["lo"]), sign * float(r["hi"])))
            return {"difference": sign * float(r["difference"]), "lo": lo, "hi": hi,
                    "significant": bool(r["significant"]), "seeds": int(r["seeds"])}
    return None


def _gap_text(g: dict[str, Any]) -> str:
    return f"{format_number(g['difference'], '+.3f')} [{format_number(g['lo'], '+.3f')}, " \
           f"{format_number(g['hi'], '+.3f')}]"


def _cost(board_row: pd.Series, runs: pd.DataFrame) -> dict[str, Any]:
    """Mean cost of a setting's finished runs: steps, epochs, FLOPs with each component's share, wall time."""
    mine = runs[(runs["setting"] == board_row["setting"]) & (runs["status"] == "finished")]
    parts = {}
    for c in [c for c in COMPONENT_ORDER if f"flops_{c}" in runs.columns] + \
             sorted(c[6:] for c in runs.columns if c.startswith("flops_") and c[6:] not in COMPONENT_ORDER
                    and c != "flops_amortised"):
        v = pd.to_numeric(mine.get(f"flops_{c}", pd.Series(dtype=float)), errors="coerce").mean()
        if present(v) and v > 0:
            parts[c] = float(v)
    total = _num(board_row.get("flops"))
    share = ", ".join(f"{COMPONENT_NAMES.get(c, c.replace('_', ' '))} {v / sum(parts.values()):.0%}"
                      for c, v in parts.items()) if parts else ""
    return {"setting": board_row["setting"], "steps": _num(board_row.get("steps")),
            "epochs": _num(board_row.get("epochs")), "flops": total, "parts": parts, "share": share,
            "wall_s": _num(board_row.get("wall_s")),
            "reward_model": parts.get("reward_model_training", 0.0) / sum(parts.values()) if parts else 0.0}


def _short_row(row: pd.Series, rank: str) -> dict[str, Any]:
    seeds = int(row["seeds"]) if present(row.get("seeds")) else 0
    cells = []
    for key, _, fmt in SHORT_COLUMNS:
        value = row.get(key)
        ci = format_ci(value, row.get(f"{key}_lo"), row.get(f"{key}_hi"), seeds, fmt) \
            if key in ("win_rate", "kl") else ""
        cells.append({"key": key, "value": format_number(value, fmt), "ci": ci})
    return {"setting": row["setting"], "seeds": seeds, "rank": rank, "cells": cells,
            "reference": row["algorithm"] in REFERENCE_ALGORITHMS}


def verdict(board: pd.DataFrame, pairs: pd.DataFrame, runs: pd.DataFrame, flags: dict[str, str] | None = None,
            failed: pd.DataFrame | None = None) -> dict[str, Any]:
    """The answer as data for the template and the terminal: per condition the leader, the tied-best group, the
    resolved gaps (leader − other, 95% interval) and the short leaderboard rows (sorted by win rate, references
    last); the cost of each competitor; the caveats (sentences)."""
    flags = flags or {}
    out: dict[str, Any] = {"groups": [], "costs": [], "caveats": []}
    if not len(board) or "win_rate" not in board:
        return out
    comp = competitors(board)
    for caption, mask in _conditions(board):
        rows = board[mask].copy()
        rows["_w"] = pd.to_numeric(rows["win_rate"], errors="coerce")
        contenders = rows[comp[mask] & rows["_w"].notna()].sort_values("_w", ascending=False, kind="stable")
        group: dict[str, Any] = {"condition": caption, "leader": "", "tied": [], "gaps": [], "unresolved": [],
                                 "other_gaps": [], "rows": []}
        if len(contenders):
            leader = contenders.iloc[0]
            group["leader"] = leader["setting"]
            group["leader_win"] = format_number(leader["win_rate"], ".3f")
            group["leader_ci"] = format_ci(leader["win_rate"], leader["win_rate_lo"], leader["win_rate_hi"],
                                           int(leader["seeds"]), ".3f")
            tied = [leader["setting"]]
            for _, other in contenders.iloc[1:].iterrows():
                g = _gap(pairs, leader["setting"], other["setting"])
                if g is None:
                    group["unresolved"].append(other["setting"])
                elif g["significant"]:
                    group["gaps"].append({"setting": other["setting"], "text": _gap_text(g), **g})
                else:
                    tied.append(other["setting"])
            group["tied"] = tied
            names = list(contenders["setting"])
            for i, a in enumerate(names[1:], start=1):  # every other resolved pair: a reader should not need the table
                for b in names[i + 1:]:
                    g = _gap(pairs, a, b)
                    if g is not None and g["significant"]:
                        first, second = (a, b) if g["difference"] > 0 else (b, a)
                        g = _gap(pairs, first, second)
                        group["other_gaps"].append({"a": first, "b": second, "text": _gap_text(g), **g})
        trained = rows[~rows["algorithm"].isin(REFERENCE_ALGORITHMS) & rows["seeds"].astype(int).gt(0)]
        trained = trained[comp[trained.index]].sort_values("_w", ascending=False, kind="stable", na_position="last")
        refs = rows[rows["algorithm"].isin(REFERENCE_ALGORITHMS)].sort_values("_w", ascending=False, kind="stable")
        for _, r in trained.iterrows():
            rank = "best" if r["setting"] == group["leader"] else ("tied" if r["setting"] in group["tied"] else "")
            group["rows"].append(_short_row(r, rank))
        group["rows"] += [_short_row(r, "") for _, r in refs.iterrows()]
        out["groups"].append(group)
    trained = board[comp & board["seeds"].astype(int).gt(0)]
    out["costs"] = [_cost(r, runs) for _, r in trained.iterrows()]
    out["caveats"] = _caveats(board, trained, out["costs"], flags, failed)
    return out


def _caveats(board: pd.DataFrame, trained: pd.DataFrame, costs: list[dict[str, Any]], flags: dict[str, str],
             failed: pd.DataFrame | None) -> list[str]:
    notes = []
    payers = [c for c in costs if c["reward_model"] > 0]
    if payers:
        views = set(board["budget_view"].astype(str)) if "budget_view" in board.columns else {"end_to_end"}
        paid = ", ".join(f"{c['setting']} ({c['reward_model']:.0%})" for c in payers)
        text = (f"Reward model: {paid} paid for training it out of the same budget (the end-to-end view); the "
                "others never train one.")
        if "amortised" in views:
            amortised = board[board["budget_view"].astype(str) == "amortised"]
            readings = [f"{r['setting']} {format_number(r['win_rate'], '.3f')}"
                        for _, r in amortised.iterrows() if r["algorithm"] not in REFERENCE_ALGORITHMS]
            text += " Amortised view (reward model paid apart): " + ", ".join(readings) + "."
        else:
            text += (" The amortised view (reward model paid apart) was not run: add budget.view = "
                     "[\"end_to_end\", \"amortised\"] to read it beside this one.")
        notes.append(text)
    steps = [(c["setting"], c["steps"], c["epochs"]) for c in costs if np.isfinite(c["steps"]) and c["steps"] > 0]
    if len(steps) >= 2:
        most = max(steps, key=lambda s: s[1])
        for setting, n, epochs in steps:
            if n < FEW_STEPS * most[1]:
                notes.append(f"Optimizer steps: {setting} took {n:.0f} ({format_number(epochs, '.2f')} epochs) "
                             f"against {most[0]}'s {most[1]:.0f} under the same FLOP budget — each of its steps "
                             "pays for more than a gradient (generation, scoring, value model), so it trained "
                             "less.")
    if "win_rate_lc" in trained.columns:  # what the win is made of: a win at equal length near ½ is brevity
        brief = []
        for _, r in trained.iterrows():
            w, lc = _num(r.get("win_rate")), _num(r.get("win_rate_lc"))
            if np.isfinite(w) and np.isfinite(lc) and w > 0.5 and lc - 0.5 < (w - 0.5) / 2:
                brief.append(f"{r['setting']} {format_number(w, '.3f')} → {format_number(lc, '.3f')}")
        if brief:
            notes.append("Brevity: read at equal length (length-controlled win rate), most of the win goes: "
                         + ", ".join(brief) + " — they win mostly by writing shorter than π_ref.")
    for setting, text in flags.items():
        for part in text.split("; "):  # seed_flags' final collapses; transient_flags' excursions (page.py joins)
            if "mid-training" in part:  # the final readings hide it, the curve through training shows it
                notes.append(f"Transient collapse: {setting}: {part}; its final readings do not show it, its curve "
                             "through training does.")
            else:
                notes.append(f"Collapsed seeds: {setting}: {part} (kept in its mean and interval).")
    if "censored" in board.columns:
        for _, r in board.iterrows():
            if _num(r.get("censored")) > 0:
                notes.append(f"Censored: {r['setting']} — over 5% of its samples hit the completion cap; its "
                             "length and KL are lower bounds.")
    if failed is not None and len(failed):
        by_status = failed.groupby("status")["setting"].apply(lambda s: ", ".join(dict.fromkeys(map(str, s))))
        for status, settings in by_status.items():
            n = int((failed["status"] == status).sum())
            notes.append(f"{n} run{'s' if n != 1 else ''} {status} ({settings}): left out of every number here.")
    return notes


def answer_sentences(v: dict[str, Any]) -> list[str]:
    """The answer in words, one sentence per condition: the tied-best group and each resolved gap."""
    out = []
    for g in v["groups"]:
        if not g["leader"]:
            continue
        head = f"{g['condition']}: " if g["condition"] else ""
        win = f"win rate {g['leader_win']}" + (f" {g['leader_ci']}" if g.get("leader_ci") else "") + " vs π_ref"
        if len(g["tied"]) > 2:  # a many-way tie has no winner: say so before naming the highest
            text = (f"{head}no clear best: {g['leader']} has the highest {win}, tied with "
                    f"{', '.join(g['tied'][1:])} — their paired differences' 95% intervals cover 0.")
        elif len(g["tied"]) > 1:
            text = (f"{head}best: {g['leader']} ({win}), tied with {', '.join(g['tied'][1:])} — their paired "
                    "differences' 95% intervals cover 0.")
        else:
            text = f"{head}best: {g['leader']} ({win}), ahead of every other algorithm."
        if g["gaps"]:
            text += " It beats " + "; ".join(f"{x['setting']} by {x['text']}" for x in g["gaps"]) + "."
        if g.get("other_gaps"):
            text += " Also resolved: " + "; ".join(f"{x['a']} − {x['b']} {x['text']}" for x in g["other_gaps"]) + "."
        if g["unresolved"]:
            text += f" Not compared (no shared seeds): {', '.join(g['unresolved'])}."
        out.append(text)
    return out


def cost_sentences(v: dict[str, Any]) -> list[str]:
    return [f"{c['setting']}: {format_number(c['steps'], '.0f')} steps, {format_number(c['epochs'], '.2f')} epochs, "
            f"{format_number(c['flops'], '.2e')} FLOPs" + (f" ({c['share']})" if c["share"] else "")
            + f", {format_number(c['wall_s'], '.0f')} s" for c in v["costs"]]


def text(v: dict[str, Any]) -> str:
    """The answer for a terminal: the sentences, the short leaderboard (best ★, tied =) and the caveats."""
    lines = []
    for sentence in answer_sentences(v):
        lines.append(sentence)
    for g in v["groups"]:
        if g["condition"]:
            lines += ["", g["condition"]]
        header = ["", "setting", "win rate [95%]", *(t for k, t, _ in SHORT_COLUMNS if k != "win_rate")]
        table = [header]
        for r in g["rows"]:
            mark = {"best": "★", "tied": "="}.get(r["rank"], " ")
            cells = {c["key"]: c for c in r["cells"]}
            win = cells["win_rate"]["value"] + (f" {cells['win_rate']['ci']}" if cells["win_rate"]["ci"] else "")
            table.append([mark, r["setting"] + (" (ref)" if r["reference"] else ""), win,
                          *(cells[k]["value"] for k, _, _ in SHORT_COLUMNS if k != "win_rate")])
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
        lines.append("")
        for row in table:
            lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in
                                   enumerate(zip(row, widths))).rstrip())
    if v["caveats"]:
        lines.append("")
        lines += [f"! {c}" for c in v["caveats"]]
    if lines:
        lines.append("★ highest win rate, = tied with it (paired 95% interval covers 0); (ref): training-free reference. "
                     "Details and every metric: the report and summary.csv.")
    return "\n".join(lines) + "\n" if lines else ""
