"""`[replication]`: a suite that reruns one published claim, and the comparison that decides it.

    [replication]
    claim = "DPO's reward-KL frontier dominates PPO's on controlled sentiment generation."
    citation = "Rafailov et al. 2023, Direct Preference Optimization, Fig. 2 (IMDb)"
    stands_in_for = "GPT-2-large on IMDb prefixes, a sentiment classifier as the gold reward"
    world_gap = "a 0.4M-parameter policy on a synthetic language; no pretrained knowledge"
    metric = "gold_reward"       # a metric with an interval (docs/suite-format.md lists them)
    compare = "dpo - ppo"        # two entry labels of this suite: the paired difference a - b
    at = "matched_kl"            # or "matched_budget"
    expect = "positive"          # the sign the claim predicts for `compare`
    mechanism = "PPO's few updates ..."   # shown when the rerun contradicts the claim

Torch-free and read by bench/suite.py like every other table; the verdict itself is computed from results by
bench/evaluation/replication.py. The table changes no run (run ids and the suite hash ignore it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

AT = ("matched_budget", "matched_kl")
EXPECT = ("positive", "negative")
_COMPARE = re.compile(r"\s*([a-z0-9][a-z0-9_]*)\s+-\s+([a-z0-9][a-z0-9_]*)\s*")


def parse_compare(text: str) -> tuple[str, str] | None:
    """'dpo - ppo' -> ('dpo', 'ppo'); None when it is not two labels joined by ' - '."""
    m = _COMPARE.fullmatch(text or "")
    return (m.group(1), m.group(2)) if m else None


def decidable_metrics() -> tuple[str, ...]:
    """Metrics with an interval of the one uncertainty model (per-unit files, or seed values)."""
    from bench.evaluation.uncertainty import SCALAR_BOUNDS, UNITS

    return tuple(UNITS) + tuple(m for m in SCALAR_BOUNDS if m not in UNITS)


@dataclass(frozen=True)
class ReplicationConfig:
    claim: str = field(metadata={"doc": "the published claim, in one sentence"})
    citation: str = field(metadata={"doc": "authors, year, title, and the figure or table the claim comes from"})
    compare: str = field(metadata={"doc": "\"a - b\": two [algorithms] labels of this suite; the verdict reads the "
                                          "paired difference a - b of `metric`"})
    stands_in_for: str = field(default="", metadata={"doc": "the paper's setting this suite stands in for"})
    world_gap: str = field(default="", metadata={"doc": "where this world cannot stand in for the paper's setting"})
    metric: str = field(default="gold_reward", metadata={"doc": "the deciding metric (one with an interval: "
                                                                "gold_reward, win_rate, kl, length, ...)"})
    at: str = field(default="matched_budget", metadata={"choices": AT, "doc": "matched_budget: each arm's selected "
                    "setting under the same budget (every budget the suite sweeps); matched_kl: the two settings "
                    "(one per arm, over their grids and budgets) whose KL(π‖π_ref) agree best"})
    expect: str = field(default="positive", metadata={"choices": EXPECT, "doc": "the sign of a - b the claim "
                                                                               "predicts"})
    kl_tolerance: float = field(default=0.25, metadata={"gt": 0, "doc": "matched_kl: the two arms' mean KLs may "
                                "differ by at most this fraction of the larger one, else the verdict is inconclusive"})
    mechanism: str = field(default="", metadata={"doc": "one sentence: what in this world would explain a "
                                                        "contradiction (shown with the measured diagnostics)"})

    @property
    def arms(self) -> tuple[str, str]:
        return parse_compare(self.compare) or ("", "")

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for name in ("claim", "citation"):
            if not getattr(self, name).strip():
                out.append((name, "is empty; write it in one sentence"))
        arms = parse_compare(self.compare)
        if arms is None:
            out.append(("compare", f"{self.compare!r} is not two labels joined by ' - '; write e.g. "
                                   "compare = \"dpo - ppo\" (labels of [algorithms] tables)"))
        elif arms[0] == arms[1]:
            out.append(("compare", f"compares {arms[0]!r} with itself; name two different [algorithms] labels"))
        metrics = decidable_metrics()
        if self.metric not in metrics:
            from bench.errors import did_you_mean

            out.append(("metric", f"{self.metric!r} has no interval to decide with; {did_you_mean(self.metric, metrics)}"))
        return out
