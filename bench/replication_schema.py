"""`[replication]`: a suite that reruns one published claim, and the comparison that decides it.

    [replication]
    claim = "DPO's reward-KL frontier dominates PPO's on controlled sentiment generation."
    citation = "Rafailov et al. 2023, Direct Preference Optimization, Fig. 2 (IMDb)"
    stands_in_for = "GPT-2-large on IMDb prefixes, a sentiment classifier as the gold reward"
    world_gap = "a 0.4M-parameter policy on a synthetic language; no pretrained knowledge"
    metric = "gold_reward"       # a metric with an interval (docs/suite-format.md lists them)
    compare = "dpo - ppo"        # two entry labels of this suite: the paired difference a - b
    at = "frontier"              # or "matched_kl", "matched_budget"
    expect = "positive"          # the sign the claim predicts for `compare`
    beyond = "cdpo - ipo"        # optional (matched_budget): the claim is that compare's difference exceeds this
                                 # one's — the verdict reads (a − b) − (c − d), paired by seed
    mechanism = "PPO's few updates ..."   # shown when the rerun contradicts the claim

Torch-free and read by bench/suite.py like every other table; the verdict itself is computed from results by
bench/evaluation/replication.py. The table changes no run (run ids and the suite hash ignore it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.columns import AXIS_COLUMNS

AT = ("matched_budget", "matched_kl", "frontier")
EXPECT = ("positive", "negative")
def parse_arms(text: str):
    """The two arms of `compare` (bench/evaluation/replication.py parses them), or None."""
    from bench.evaluation.replication import parse_arms as parse

    return parse(text)


def parse_compare(text: str) -> tuple[str, str] | None:
    """The two labels of `compare` ('dpo - ppo' -> ('dpo', 'ppo')); None when it is not two arms joined by ' - '."""
    arms = parse_arms(text)
    return (arms[0].label, arms[1].label) if arms else None


def decidable_metrics() -> tuple[str, ...]:
    """Metrics with an interval of the one uncertainty model (per-unit files, else the seed values)."""
    from bench.columns import SUMMARY_METRICS
    from bench.evaluation.uncertainty import SCALAR_BOUNDS, UNITS

    text = {"status", "stop_reason", "best", "error", "budget_view", "censored", "gao_better"}
    scalars = [m for m in SUMMARY_METRICS if m not in text and not m.endswith(("_lo", "_hi"))]
    # per-unit metrics (prompt / pair intervals), then the rest with a seed-level interval (t over seed values)
    return tuple(dict.fromkeys([*UNITS, *SCALAR_BOUNDS, *scalars]))


@dataclass(frozen=True)
class ReplicationConfig:
    claim: str = field(metadata={"doc": "the published claim, in one sentence"})
    citation: str = field(metadata={"doc": "authors, year, title, and the figure or table the claim comes from"})
    compare: str = field(metadata={"doc": "\"a - b\": two [algorithms] labels of this suite (either may be pinned to "
                                          "one value of a swept suite axis: \"dpo@budget_flops=2e12\"); the verdict "
                                          "reads the paired difference a - b of `metric`"})
    stands_in_for: str = field(default="", metadata={"doc": "the paper's setting this suite stands in for"})
    world_gap: str = field(default="", metadata={"doc": "where this world cannot stand in for the paper's setting"})
    metric: str = field(default="gold_reward", metadata={"doc": "the deciding metric (one with an interval: "
                                                                "gold_reward, win_rate, kl, length, ...)"})
    at: str = field(default="matched_budget", metadata={"choices": AT, "doc": "matched_budget: each arm's selected "
                    "setting under the same budget (every budget the suite sweeps); matched_kl: the two settings "
                    "(one per arm, over their grids and budgets) whose KL(π‖π_ref) agree best; frontier: each "
                    "setting of a against b's reward-KL frontier at its KL (linear between b's two bracketing "
                    "settings)"})
    expect: str = field(default="positive", metadata={"choices": EXPECT, "doc": "the sign of a - b the claim "
                                                                               "predicts"})
    beyond: str = field(default="", metadata={"doc": "optional, with at = \"matched_budget\": \"c - d\", two more labels; "
                        "the claim is that a - b exceeds c - d (\"the data moves the result more than the algorithm\"), "
                        "and the verdict reads the paired difference of differences (a - b) - (c - d), whose sign "
                        "`expect` names"})
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
        elif parse_arms(self.compare)[0] == parse_arms(self.compare)[1]:
            out.append(("compare", f"compares {arms[0]!r} with itself; name two different labels, or one label at "
                                   "two axis values (dpo@budget_flops=2e12 - dpo@budget_flops=5e11)"))
        else:
            for arm in parse_arms(self.compare):
                if arm.axis and arm.axis not in AXIS_COLUMNS:
                    out.append(("compare", f"{arm}: {arm.axis!r} is not a suite-level axis; use one of "
                                           f"{', '.join(AXIS_COLUMNS)}"))
        if self.beyond:
            pair = parse_arms(self.beyond)
            if pair is None:
                out.append(("beyond", f"{self.beyond!r} is not two labels joined by ' - '; write e.g. "
                                      "beyond = \"cdpo - ipo\" (labels of [algorithms] tables)"))
            elif pair[0] == pair[1]:
                out.append(("beyond", f"compares {pair[0]} with itself: that difference is 0; leave `beyond` out"))
            elif self.at != "matched_budget":
                out.append(("beyond", f"reads a difference of differences at matched budget only, not at "
                                      f"{self.at!r}; set at = \"matched_budget\" or leave `beyond` out"))
            elif parse_arms(self.compare) and {str(x) for x in pair} == {str(x) for x in parse_arms(self.compare)}:
                out.append(("beyond", f"{self.beyond!r} is `compare` itself (or reversed): the contrast would be 0 "
                                      "or twice compare; name the second effect's two labels"))
            elif any(x.axis and x.axis not in AXIS_COLUMNS for x in pair):
                out.append(("beyond", f"{self.beyond!r}: an arm's axis is not a suite-level axis; use one of "
                                      f"{', '.join(AXIS_COLUMNS)}"))
        metrics = decidable_metrics()
        if self.metric not in metrics:
            from bench.errors import did_you_mean

            out.append(("metric", f"{self.metric!r} has no interval to decide with; {did_you_mean(self.metric, metrics)}"))
        return out
