"""The online ladder (issue 14): which algorithm sits on which rung, the paired differences the report states for
the critic, the policy gradient and online data, and the section in a real report of a tiny ladder suite."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.evaluation.uncertainty import from_frame
from bench.reporting import tables
from bench.algorithms.registry import describe
from bench.reporting.ladder import ladder as _ladder, rung_of as _rung_of

DESCRIBED = describe(["ppo", "rloo", "grpo", "online_dpo", "dpo", "ipo", "sft"])  # as suite.json records them


def rung_of(algorithm):
    return _rung_of(algorithm, DESCRIBED)


def ladder(board, unc):
    return _ladder(board, unc, DESCRIBED)

WINS = {"ppo": 0.80, "rloo": 0.72, "grpo": 0.70, "online_dpo": 0.62, "dpo": 0.61, "sft": 0.5}
KLS = {"ppo": 6.0, "rloo": 5.0, "grpo": 5.5, "online_dpo": 3.0, "dpo": 9.0, "sft": 0.0}


def frame(wins=WINS, kls=KLS, seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for algo in wins:
        for s in seeds:
            noise = 0.01 * ((s * 7 + len(algo)) % 3 - 1)  # small seed noise, the same for every algorithm's seed
            rows.append({"run_id": f"{algo}_s{s}", "label": algo, "algorithm": algo, "seed": s,
                         "status": "finished", "win_rate": wins[algo] + noise, "kl": kls[algo] + noise})
    return pd.DataFrame(rows)


def test_rungs_come_from_the_registered_family():
    assert _rung_of("ppo") is None, "without the registry description the report knows no families"
    assert rung_of("ppo") == "rlhf"
    assert rung_of("rloo") == "online-rl" and rung_of("grpo") == "online-rl"
    assert rung_of("online_dpo") == "online"
    assert rung_of("dpo") == "offline"
    assert rung_of("ipo") is None and rung_of("sft") is None and rung_of("not_registered") is None


def test_each_step_is_a_paired_difference_with_an_interval():
    f = frame()
    board = tables.leaderboard(f, unc=from_frame(f))
    out = ladder(board, from_frame(f))
    steps = [(r["step"], r["a"], r["b"]) for r in out["rows"]]
    assert sorted(steps) == sorted([("the critic", "ppo", "rloo"), ("the critic", "ppo", "grpo"),
                                    ("the policy gradient", "rloo", "online_dpo"),
                                    ("the policy gradient", "grpo", "online_dpo"), ("online data", "online_dpo", "dpo")])
    assert [s for s, _, _ in steps] == ["the critic"] * 2 + ["the policy gradient"] * 2 + ["online data"]
    critic = next(r for r in out["rows"] if r["b"] == "rloo")
    assert critic["win"]["mean"] == pytest.approx(0.08) and critic["kl"]["mean"] == pytest.approx(1.0)
    assert critic["win"]["lo"] <= 0.08 <= critic["win"]["hi"] and critic["win"]["seeds"] == 3
    assert critic["win"]["sig"]  # 0.08 apart with 0.01 seed noise that is shared: resolved
    assert critic["verdict"].startswith("the critic bought +0.080 win rate [")
    assert "at +1.00 nats of KL" in critic["verdict"] and "ppo vs rloo, 3 paired seeds" in critic["verdict"]
    online = out["rows"][-1]
    assert online["win"]["mean"] == pytest.approx(0.01) and online["kl"]["mean"] == pytest.approx(-6.0)
    assert [r["rung"] for r in out["rungs"]] == ["rlhf", "online-rl", "online", "offline"]
    assert set(out["rungs"][1]["settings"].split(", ")) == {"rloo", "grpo"}


def test_an_unresolved_step_says_so():
    wins = dict(WINS, online_dpo=0.61)
    f = frame(wins)
    f.loc[f["label"] == "dpo", "win_rate"] = [0.65, 0.58, 0.60]  # the same mean, spread across seeds
    unc = from_frame(f)
    row = ladder(tables.leaderboard(f, unc=unc), unc)["rows"][-1]
    assert not row["win"]["sig"] and row["win"]["lo"] < 0 < row["win"]["hi"]
    assert row["verdict"].startswith("online data: no resolved win-rate difference")


def test_under_both_budget_views_each_view_is_its_own_ladder():
    f = frame()
    amortised = f[f["algorithm"].isin(["ppo", "rloo", "grpo", "online_dpo"])].copy()
    amortised["run_id"] += "_am"
    amortised["win_rate"] += 0.05
    f["budget_view"] = ["both" if a in ("dpo", "sft") else "end_to_end" for a in f["algorithm"]]
    amortised["budget_view"] = "amortised"
    f = pd.concat([f, amortised], ignore_index=True)
    unc = from_frame(f)
    rows = ladder(tables.leaderboard(f, unc=unc), unc)["rows"]
    assert len(rows) == 10  # 5 comparisons per view; none across views
    for r in rows:
        views = {v for v in ("end_to_end", "amortised") if v in r["a"] + r["b"]}
        assert len(views) == 1, (r["a"], r["b"])
    online = [r for r in rows if r["step"] == "online data" and "amortised" in r["a"]]
    assert len(online) == 1 and online[0]["win"]["mean"] == pytest.approx(0.06)


def test_no_ladder_without_two_adjacent_rungs():
    f = frame({"ppo": 0.8, "ipo": 0.7, "sft": 0.5}, {"ppo": 5.0, "ipo": 4.0, "sft": 0.0})
    unc = from_frame(f)
    assert ladder(tables.leaderboard(f, unc=unc), unc) is None
    assert ladder(tables.leaderboard(f.iloc[0:0], unc=unc), unc) is None


def test_the_ladder_suite_is_the_ladder():
    from bench.suite import load_suite

    suite = load_suite("suites/controlled-online-ladder.toml")
    algos = [e.algorithm for e in suite.entries]
    assert {"ppo", "rloo", "grpo", "online_dpo", "dpo"} <= set(algos)
    assert {rung_of(a) for a in algos} >= {"rlhf", "online-rl", "online", "offline"}
    assert suite.world.pair_source == "base" and len(suite.meta.seeds) >= 3
    # the same reward model for every online rung (default settings shared), the same budget for all
    rm = {tuple(v for k, v in e.grid if k.startswith("rm_")) for e in suite.entries
          if e.algorithm in ("ppo", "rloo", "grpo", "online_dpo")}
    assert rm == {()}


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_report_of_a_tiny_ladder_suite_has_the_section(tmp_path):
    """End to end on a tiny world: every rung trains, the report states each step with its interval."""
    from test_adapters import HEADER
    from tiny_suite import one_thread

    from bench.reporting import write_report
    from bench.runner import run_suite
    from bench.suite import load_suite

    body = HEADER.replace('name = "adapters"\nseeds = [0]', 'name = "ladder"\nseeds = [0, 1]') + "".join(
        f"\n[algorithms.{a}]\n{extra}\n" for a, extra in (
            ("dpo", ""), ("online_dpo", "rm_epochs = 0.5\nrm_batch_size = 8"),
            ("rloo", "rm_epochs = 0.5\nrm_batch_size = 8"), ("ppo", "rm_epochs = 0.5\nrm_batch_size = 8")))
    path = tmp_path / "ladder.toml"
    path.write_text(body, encoding="utf-8")
    with one_thread():
        outcome = run_suite(load_suite(path), results_root=tmp_path / "res", cache_dir=tmp_path / "cache",
                            device="cpu")
    assert len(outcome.finished) == 8 and not outcome.failed
    html = write_report(outcome.results_dir, tmp_path / "report").read_text(encoding="utf-8")
    assert 'id="ladder"' in html
    for step in ("the critic", "the policy gradient", "online data"):
        assert f"<td>{step}</td>" in html
    assert "ppo vs rloo, 2 paired seeds" in html and "online_dpo vs dpo, 2 paired seeds" in html


def test_settings_on_different_pair_sources_are_never_compared():
    """`[world] pair_source` swept: base and weak pairs are two worlds. No paired difference, pairwise row or
    ladder step crosses them (the pair source is part of the replicate key and of the conditions)."""
    base, weak = frame(), frame()
    base["pair_source"], weak["pair_source"] = "base", "weak"
    weak["run_id"] += "_weak"
    weak["win_rate"] -= 0.05
    f = pd.concat([base, weak], ignore_index=True)
    unc = from_frame(f)
    board = tables.leaderboard(f, unc=unc)
    assert set(board["pair_source"]) == {"base", "weak"}
    source = dict(zip(board["setting"], board["pair_source"]))
    pairs = tables.pairwise(board, unc, "win_rate")
    assert len(pairs) and all(source[a] == source[b] for a, b in zip(pairs["a"], pairs["b"]))
    rows = ladder(board, unc)["rows"]
    assert len(rows) == 10 and all(source[r["a"]] == source[r["b"]] for r in rows)
    cross = [s for s in board["setting"] if source[s] == "weak" and "dpo" == s.split(" ")[0]]
    assert cross and "ppo (pair_source=base)" in source
    assert math.isnan(unc.difference("ppo (pair_source=base)", cross[0], "win_rate").mean)
    assert math.isfinite(unc.difference("ppo (pair_source=base)", "dpo (pair_source=base)", "win_rate").mean)


def test_the_budget_chart_draws_one_line_per_world():
    """Under a budget sweep with pair_source swept too, each label has one line per pair source (never one line
    through both worlds' points), and crossovers are named only within a world."""
    import matplotlib as mpl

    from bench.reporting import figures

    rows = []
    for source, shift in (("base", 0.0), ("weak", -0.1)):
        for flops in (1e11, 1e12):
            for algo, win in (("dpo", 0.6), ("ppo", 0.55 if flops < 5e11 else 0.65)):
                w = win + shift
                rows.append({"label": algo, "algorithm": algo, "setting": f"{algo} {source} {flops:g}",
                             "budget_flops": flops, "pair_source": source, "budget_view": "end_to_end",
                             "win_rate": w, "win_rate_lo": w - 0.02, "win_rate_hi": w + 0.02,
                             "gold_reward": w, "gold_reward_lo": w, "gold_reward_hi": w})
    board = pd.DataFrame(rows)
    style = figures.styles(["dpo", "ppo"], {"dpo": "dpo", "ppo": "ppo"})
    with mpl.rc_context(figures.RC):
        fig = figures._budget_chart(board, pd.DataFrame(), style, "gold reward")
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert sorted(labels) == [f"{a} [pair_source={p}] (end-to-end)" for a in ("dpo", "ppo") for p in ("base", "weak")]
    title = fig.legends[0].get_title().get_text()
    assert "dpo [pair_source=base] × ppo [pair_source=base]" in title
    assert "[pair_source=base] × " not in title.replace("dpo [pair_source=base] × ppo [pair_source=base]", "")
