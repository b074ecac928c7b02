"""The online ladder: what RL's machinery buys beyond online data, read off one suite (issue 14).

Each algorithm sits on one rung by what it uses (its registered `family`):

    rlhf       critic (value model) + policy gradient + online data   ppo
    online-rl  policy gradient + online data, no critic               rloo, grpo
    online     online data, no policy gradient                        online_dpo
    dpo        offline pairs (only the algorithm `dpo` itself)        dpo

and each step down the ladder is a paired difference, on the same seeds, test prompts and reference draws
(bench.evaluation.uncertainty, the pairwise table's model): the critic = rlhf − online-rl, the policy gradient =
online-rl − online, online data = online − dpo. Every comparison is given in win rate against π_ref *and* in
KL(π‖π_ref), with 95% intervals: a rung that "buys" win rate by spending more KL is shown as such. When a rung
holds two algorithms (rloo and grpo) each is compared on its own — picking the better one on the test prompts
would bias the difference upwards.

Under suite-level axes (a budget sweep, both budget views) only settings under the same conditions are
compared; a setting that serves both views (`budget_view = "both"`: DPO has no reward model to charge) is
compared under each.

`ladder(board, unc)` returns None when the suite does not hold two adjacent rungs (the section is then omitted).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from bench.reporting import tables

RUNGS = (("rlhf", "critic + policy gradient + online data"),
         ("online-rl", "policy gradient + online data, no critic"),
         ("online", "online data, no policy gradient"),
         ("offline", "offline pairs, no reward model"))
STEPS = {("rlhf", "online-rl"): "the critic", ("online-rl", "online"): "the policy gradient",
         ("online", "offline"): "online data"}
METRICS = (("win_rate", "win rate", "+.3f"), ("kl", "KL", "+.2f"))


def rung_of(algorithm: str, described: dict | None = None) -> str | None:
    """The rung of an algorithm from its registered family, read from the registry description the runner wrote
    into suite.json ("algorithms"; the report never imports algorithms/). None: not on the ladder, or unknown."""
    if algorithm == "dpo":
        return "offline"
    family = ((described or {}).get(algorithm) or {}).get("family", "")
    return family if family in ("rlhf", "online-rl", "online") else None


def _interval(unc, a: str, b: str, metric: str, fmt: str) -> dict[str, Any]:
    iv = unc.difference(a, b, metric)
    finite = tables.present(iv.mean) and math.isfinite(iv.mean)
    resolved = finite and math.isfinite(iv.lo) and (iv.lo > 0 or iv.hi < 0)
    return {"d": tables.format_number(iv.mean, fmt) if finite else "–",
            "ci": f"[{tables.format_number(iv.lo, fmt)}, {tables.format_number(iv.hi, fmt)}]"
            if finite and math.isfinite(iv.lo) else "",
            "sig": bool(resolved), "mean": iv.mean if finite else math.nan, "lo": iv.lo, "hi": iv.hi,
            "seeds": iv.seeds}


def _verdict(step: str, a: str, b: str, win: dict, kl: dict) -> str:
    if not math.isfinite(win["mean"]):
        return f"{step}: no paired seeds of {a} and {b}."
    if win["sig"]:
        if win["mean"] > 0:
            what = f"{step} bought {win['d']} win rate {win['ci']}"
        else:  # the rung without the piece won: say who won and by how much, as a positive number
            what = (f"{step} did not pay: {b} beat {a} by {tables.format_number(-win['mean'], '.3f')} win rate "
                    f"[{tables.format_number(-win['hi'], '.3f')}, {tables.format_number(-win['lo'], '.3f')}]")
    else:
        what = f"{step}: no resolved win-rate difference ({win['d']} {win['ci']})"
    if math.isfinite(kl["mean"]):
        what += f", at {kl['d']} nats of KL {kl['ci']}" + ("" if kl["sig"] else " (not resolved)")
    return what + f" — {a} vs {b}, {win['seeds']} paired seeds."


def ladder(board: pd.DataFrame, unc, described: dict | None = None) -> dict[str, Any] | None:
    if not len(board):
        return None
    board = board[tables.competitors(board)]
    members: dict[str, list[str]] = {r: [] for r, _ in RUNGS}
    labels = {}
    for _, row in board.iterrows():
        rung = rung_of(str(row["algorithm"]), described)
        if rung is not None:
            members[rung].append(row["setting"])
            labels[row["setting"]] = row["label"]
    rows = []
    for (upper, lower), step in STEPS.items():
        for a in members[upper]:
            for b in members[lower]:
                if not tables.same_conditions(board, a, b):
                    continue
                win, kl = (_interval(unc, a, b, m, fmt) for m, _, fmt in METRICS)
                rows.append({"step": step, "a": a, "b": b, "win": win, "kl": kl,
                             "verdict": _verdict(step, labels[a], labels[b], win, kl)})
    if not rows:
        return None
    rungs = [{"rung": name, "uses": uses, "settings": ", ".join(members[name]) or "–"} for name, uses in RUNGS]
    return {"rungs": rungs, "rows": rows}
