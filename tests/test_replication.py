"""Replication suites (issue 28): the `[replication]` table's validation, the verdict from the paired interval
(reproduced / contradicted / inconclusive, matched budget and matched KL), the report's opening section, the
`bench run` line, the baseline's verdict and README's table, on torch-free `fake` results."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.suite import load_suite

REPLICATION = """
[replication]
claim = "A higher beta buys more gold reward."
citation = "Nobody et al. 2099, Fig. 1"
stands_in_for = "a fake world"
world_gap = "everything"
compare = "hi - lo"
metric = "gold_reward"
at = "matched_budget"
expect = "positive"
mechanism = "The fake algorithm's quality rises with beta."
"""

SUITE = """
[suite]
name = "rep-fake"
seeds = [0, 1]
[budget]
flops = 1e9
[algorithms.hi]
algorithm = "fake"
beta = 0.5
[algorithms.lo]
algorithm = "fake"
beta = [0.05, 0.1]
""" + REPLICATION


def write(tmp_path: Path, text: str, name: str = "rep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(UserError) as err:
        load_suite(write(tmp_path, text))
    return err.value.problems


def test_a_valid_replication_table_is_read_and_changes_no_run(tmp_path):
    with_rep = load_suite(write(tmp_path, SUITE))
    without = load_suite(write(tmp_path, SUITE.replace(REPLICATION, ""), name="plain.toml"))
    assert with_rep.replication.arms == ("hi", "lo") and with_rep.replication.at == "matched_budget"
    assert without.replication is None
    assert with_rep.raw_hash == without.raw_hash  # metadata: no run id and no suite hash moves


@pytest.mark.parametrize("change, field, words", [
    ('compare = "hi - lo"', "compare", "not an [algorithms] label"),
    ('metric = "gold_reward"', "metric", "has no interval"),
    ('at = "matched_budget"', "at", "must be one of"),
    ('claim = "A higher beta buys more gold reward."', "claim", "is empty"),
])
def test_each_bad_field_is_one_line_naming_it(tmp_path, change, field, words):
    bad = {"compare": 'compare = "hi - nope"', "metric": 'metric = "gold"', "at": 'at = "matched_flops"',
           "claim": 'claim = " "'}[field]
    problems = problems_of(tmp_path, SUITE.replace(change, bad))
    assert len(problems) == 1 and f"[replication].{field}:" in problems[0] and words in problems[0]
    assert "\n" not in problems[0]


def test_compare_needs_two_labels_and_the_claim_its_citation(tmp_path):
    problems = problems_of(tmp_path, SUITE.replace('compare = "hi - lo"', 'compare = "hi > lo"'))
    assert "[replication].compare:" in problems[0] and "dpo - ppo" in problems[0]
    problems = problems_of(tmp_path, SUITE.replace('citation = "Nobody et al. 2099, Fig. 1"\n', ""))
    assert "[replication].citation: required key is missing" in problems[0]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    path = write(root, SUITE)
    assert main(["run", str(path), "--results", str(root / "results"), "--report-dir", str(root / "report")]) == 0
    return root


def _decide(results: Path, **changes):
    from bench.evaluation.replication import decide, with_selection
    from bench.io import read_json
    from bench.results import from_results, summary_frame

    d = results / "results" / "rep-fake"
    frame = with_selection(summary_frame(d, intervals=False), d)
    rep = {**read_json(d / "suite.json")["replication"], **changes}
    return decide(rep, frame, from_results(d, frame))


def test_the_verdict_follows_the_paired_interval(results):
    # fake: gold = 2·sigmoid(log 10β) + noise: hi (β 0.5) ≈ 1.67; lo's runner-selected setting β 0.1 ≈ 1.0
    v = _decide(results)
    assert len(v.points) == 1 and v.deciding.b == "lo (beta=0.1)"  # matched budget: the selected setting of a grid
    assert v.verdict == "reproduced" and v.deciding.lo > 0 and v.deciding.difference == pytest.approx(0.67, abs=0.1)
    assert not v.mechanism and not v.reason
    assert re.search(r"\[\+\d\.\d{3}, \+\d\.\d{3}\]", v.headline)  # the deciding interval is in the line
    mirrored = _decide(results, compare="lo - hi", expect="negative")
    assert mirrored.verdict == "reproduced"
    assert mirrored.deciding.difference == pytest.approx(-v.deciding.difference)
    flipped = _decide(results, expect="negative")
    assert flipped.verdict == "contradicted" and flipped.headline.startswith("contradicted: gold_reward hi − lo")
    assert flipped.mechanism.startswith("The fake algorithm's quality rises with beta. Measured: hi: KL 4.")
    assert "lo (beta=0.1): KL 2." in flipped.mechanism


def test_inconclusive_when_the_interval_holds_zero(results):
    v = _decide(results, metric="length")  # length is 10 + noise for every setting
    assert v.verdict == "inconclusive" and v.deciding.lo < 0 < v.deciding.hi
    assert v.reason.startswith("the interval includes 0")


def test_matched_kl_pairs_the_nearest_kl_or_says_why_not(results):
    none = _decide(results, at="matched_kl")  # KL 4.2 (hi) vs 2.5 / 1.7 (lo): no pair within 25%
    assert none.verdict == "inconclusive" and not none.points
    assert "closest: hi at KL 4.1" in none.reason and "widen the grids" in none.reason
    v = _decide(results, at="matched_kl", kl_tolerance=0.5)
    assert [(p.a, p.b) for p in v.points] == [("hi", "lo (beta=0.1)")]
    assert v.points[0].condition.startswith("KL 4.1") and "matched KL" in v.headline


def test_report_opens_with_the_verdict_and_run_prints_it(results, capsys):
    page = (results / "report" / "rep-fake" / "index.html").read_text()
    assert page.index('id="replication"') < page.index('<table class="facts">')
    assert "Replication verdict:" in page and "Nobody et al. 2099, Fig. 1" in page and "Rerun: <code>bench run" in page
    path = results / "rep.toml"
    assert main(["run", str(path), "--results", str(results / "results"), "--no-report"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^verdict: (reproduced|contradicted|inconclusive): gold_reward hi − lo", out, re.M)


def test_baseline_carries_the_verdict_and_readme_table_reads_it(results, tmp_path):
    from benchmarks.replications import table

    baseline = tmp_path / "rep-fake.json"
    assert main(["baseline", str(results / "results" / "rep-fake"), "-o", str(baseline)]) == 0
    data = json.loads(baseline.read_text())
    assert data["replication"]["verdict"] in ("reproduced", "contradicted", "inconclusive")
    assert data["replication"]["claim"] == "A higher beta buys more gold reward."
    text = table([baseline])
    row = text.splitlines()[2]
    assert "A higher beta buys more gold reward." in row and "Nobody et al. 2099" in row
    assert data["replication"]["verdict"] in row and "`bench run " in row


def test_an_arm_may_be_pinned_to_one_value_of_a_suite_axis(tmp_path, results):
    from bench.evaluation.replication import Arm, parse_arms

    assert parse_arms("dpo@budget_flops=2e12 - dpo@budget_flops=5e11") == (
        Arm("dpo", "budget_flops", "2e12"), Arm("dpo", "budget_flops", "5e11"))
    assert parse_arms("dpo - ppo") == (Arm("dpo"), Arm("ppo")) and parse_arms("dpo > ppo") is None
    ok = load_suite(write(tmp_path, SUITE.replace('compare = "hi - lo"',
                                                  'compare = "hi@budget_flops=2e9 - hi@budget_flops=1e9"')))
    assert ok.replication.arms == ("hi", "hi")
    problems = problems_of(tmp_path, SUITE.replace('compare = "hi - lo"', 'compare = "hi@beta=1 - lo"'))
    assert "[replication].compare: hi@beta=1: 'beta' is not a suite-level axis" in problems[0]
    # this suite sweeps no budget: an arm pinned to one finds no runs, and the verdict says so
    v = _decide(results, compare="hi@budget_flops=2e9 - lo")
    assert v.verdict == "inconclusive" and "never ran under the same conditions" in v.reason


def test_every_replication_suite_validates_and_names_its_claim():
    root = Path(__file__).resolve().parents[1] / "suites" / "replications"
    files = sorted(root.glob("*.toml"))
    assert len(files) >= 11  # one per row of issue 28's table (the over-optimisation claim has a control too)
    for path in files:
        suite = load_suite(path)
        rep = suite.replication
        assert rep is not None, f"{path.name}: no [replication] table"
        assert suite.name == path.stem, f"{path.name}: [suite].name should be the file's stem (README's table)"
        assert rep.stands_in_for and rep.world_gap and rep.mechanism, f"{path.name}: say what it stands in for"


def test_an_unswept_budget_view_is_one_condition():
    """In an amortised suite a run without a reward model records budget_view "end_to_end": still comparable."""
    import pandas as pd

    from bench.evaluation.replication import decide
    from bench.evaluation.uncertainty import Interval

    class Unc:
        def difference(self, a, b, metric):
            return Interval(0.2, 0.1, 0.3, 3)

        def interval(self, s, metric):
            return Interval(1.0, 0.9, 1.1, 3)

    frame = pd.DataFrame([{"run_id": f"{label}_s{s}", "label": label, "algorithm": label, "seed": s,
                           "status": "finished", "best": "", "budget_view": view, "gold_reward": 0.0}
                          for label, view in (("dpo", "end_to_end"), ("dpo_rm", "amortised")) for s in range(3)])
    rep = {"compare": "dpo - dpo_rm", "metric": "gold_reward", "claim": "c", "citation": "x"}
    assert decide(rep, frame, Unc(), swept=[]).verdict == "reproduced"
    assert decide(rep, frame, Unc()).verdict == "reproduced"  # no "axes" in an older suite.json: view ignored
    swept = frame.assign(budget_view=["both"] * 3 + ["amortised"] * 3)
    assert decide(rep, swept, Unc(), swept=["budget_view"]).points[0].condition == ""


def test_check_fails_when_a_resolved_verdict_reverses():
    from bench.check import replication_change

    def rep(v):
        return {"replication": {"verdict": v}}

    assert replication_change(rep("reproduced"), rep("reproduced")) == (False, "")
    assert replication_change(rep("contradicted"), rep("reproduced"))[0] is True
    fails, note = replication_change(rep("inconclusive"), rep("reproduced"))
    assert not fails and note == "replication verdict: reproduced in the baseline, inconclusive now"
    assert replication_change({}, rep("reproduced")) == (False, "")


def test_frontier_reads_each_setting_against_the_other_arms_interpolated_frontier():
    """at = "frontier": a setting of a inside b's KL range is compared with the straight line between b's two
    bracketing settings (weights from the mean KLs); a setting outside is named, never extrapolated."""
    import pandas as pd

    from bench.evaluation.replication import decide
    from bench.evaluation.uncertainty import Interval

    kl = {"dpo (beta=0.1)": 9.0, "dpo (beta=0.3)": 1.5, "dpo (beta=1)": 0.5,
          "ppo (kl_coef=0.1)": 2.0, "ppo (kl_coef=0.5)": 1.0, "ppo (kl_coef=2)": 0.25}
    gold = {"dpo (beta=0.1)": -4.0, "dpo (beta=0.3)": -0.4, "dpo (beta=1)": -0.9,
            "ppo (kl_coef=0.1)": -0.2, "ppo (kl_coef=0.5)": -1.0, "ppo (kl_coef=2)": -1.5}
    asked = []

    class Unc:
        def interval(self, s, metric):
            return Interval(kl[s], kl[s], kl[s], 3)

        def contrast(self, weights, metric):
            weights = dict(weights)  # (setting, weight) pairs, as Uncertainty.contrast takes them
            asked.append(weights)
            m = sum(w * gold[s] for s, w in weights.items())
            return Interval(m, m - 0.1, m + 0.1, 3)

        def difference(self, a, b, metric):
            return self.contrast({a: 1.0, b: -1.0}, metric)

    rows = [{"label": "dpo", "algorithm": "dpo", "beta": b, "kl_coef": None} for b in (0.1, 0.3, 1.0)]
    rows += [{"label": "ppo", "algorithm": "ppo", "beta": None, "kl_coef": k} for k in (0.1, 0.5, 2.0)]
    frame = pd.DataFrame([{**r, "run_id": f"{r['label']}_{r['beta']}_{r['kl_coef']}_s{s}", "seed": s,
                           "status": "finished", "best": ""} for r in rows for s in range(3)])
    rep = {"compare": "dpo - ppo", "metric": "gold_reward", "at": "frontier", "claim": "c", "citation": "x"}
    v = decide(rep, frame, Unc(), swept=[])
    by_a = {p.a: p for p in v.points}
    assert set(by_a) == {"dpo (beta=0.3)", "dpo (beta=1)"}  # β 0.1's KL 9 is outside ppo's 0.25–2.0
    # β 0.3 at KL 1.5: halfway between ppo's 1.0 (gold −1.0) and 2.0 (−0.2): the frontier reads −0.6 there
    assert by_a["dpo (beta=0.3)"].difference == pytest.approx(-0.4 + 0.6)
    assert {"dpo (beta=0.3)": 1.0, "ppo (kl_coef=0.5)": -0.5, "ppo (kl_coef=0.1)": -0.5} in asked
    # β 1 at KL 0.5: a third of the way from 0.25 (−1.5) to 1.0 (−1.0): −1.5 + (0.25/0.75)·0.5
    assert by_a["dpo (beta=1)"].difference == pytest.approx(-0.9 - (-1.5 + 0.5 / 3))
    assert v.verdict == "reproduced" and "against the frontier" in v.headline
    assert v.selection == ["dpo: beta swept, every setting read on the frontier (nothing selected)",
                           "ppo: kl_coef swept, every setting read on the frontier (nothing selected)"]
    assert "not extrapolated: dpo (beta=0.1) (KL 9.00)" in v.headline
    assert "outside ppo's KL range (0.25–2.00)" in v.headline
    # two worlds (a swept world seed): each setting outside is named with the other arm's range in its own world
    import unittest.mock as mock

    from bench.evaluation import replication_points as r

    arm_a, arm_b = r.parse_arms("dpo - ppo")
    settings = {arm_a: {"dpo (beta=0.1)": ("0",), "dpo (w1)": ("1",)},
                arm_b: {"ppo (kl_coef=0.1)": ("0",), "ppo (kl_coef=2)": ("0",), "ppo (w1 a)": ("1",),
                        "ppo (w1 b)": ("1",)}}
    kls = {**kl, "dpo (w1)": 5.0, "ppo (w1 a)": 0.1, "ppo (w1 b)": 0.3}
    with mock.patch.object(r, "settings_with_kl", lambda *args: (settings, kls)):
        _points, why = r.frontier_points(frame, Unc(), arm_a, arm_b, "gold_reward", 1)
    assert "outside ppo's KL range in the same world" in why
    assert "dpo (beta=0.1) (KL 9.00; ppo there: 0.25–2.00)" in why and "dpo (w1) (KL 5.00; ppo there: 0.10–0.30)" in why
    gold["dpo (beta=1)"] = -2.0  # below ppo's frontier at its KL: a contradiction decides
    assert decide(rep, frame, Unc(), swept=[]).verdict == "contradicted"


def test_an_inconclusive_verdict_says_what_would_decide_it(results):
    """The seeds for 80% power at the observed difference (crossed.seeds_for_power) and their run time, in the
    verdict, the report's reason line and the docs table."""
    v = _decide(results, metric="length")  # inconclusive: length is 10 + noise for every setting
    m = re.search(r"takes (\d+) paired seeds \(this run: 2\)", v.to_decide)
    assert m, v.to_decide
    need = int(m.group(1))
    assert need == v.deciding.seeds_to_decide > 2
    assert "more run time at this suite's" in v.to_decide and "on 2 parallel workers" in v.to_decide
    assert not _decide(results).to_decide  # a decided verdict needs nothing more


def test_seeds_for_power_matches_the_hand_sizing():
    """Pure seed part: the fewest n with (t_.975,n−1 + t_.8,n−1)·σ/√n <= effect; a shared part wider than the
    effect: no seed count."""
    import math

    from scipy import stats

    from bench.evaluation.crossed import Crossed, seeds_for_power

    sigma2 = 0.03  # per-seed variance; three seeds' mean has variance 0.01
    c = Crossed(0.0, sigma2 / 3, 0.0, 2.0, math.nan, 3, 1)
    effect = 0.2
    hand = next(n for n in range(2, 500)
                if (stats.t.ppf(0.975, n - 1) + stats.t.ppf(0.8, n - 1)) * math.sqrt(sigma2 / n) <= effect)
    assert seeds_for_power(c, effect) == hand == 8  # (2.365 + 0.896)·√(0.03/8) = 0.1997
    assert seeds_for_power(c, -effect) == hand  # the sign does not matter
    wide = Crossed(0.0, sigma2 / 3, 0.02, 2.0, 255.0, 3, 256)  # shared half-width 1.97·0.141 = 0.28 > 0.2
    assert seeds_for_power(wide, effect) is None
    assert seeds_for_power(c, 0.0) is None


def test_the_selection_of_each_tuned_arm_is_named_interior_or_at_an_edge(results):
    from benchmarks.replications import _number

    v = _decide(results)
    assert v.selection == ["lo: beta=0.1 (the grid's highest of 0.05, 0.1)"]
    cell = _number(v.to_dict())
    assert "Selected at a grid's edge: lo: beta=0.1" in cell


def test_beyond_reads_a_difference_of_differences():
    """`beyond = "c - d"`: the claim that a − b exceeds c − d is read from the paired contrast (a − b) − (c − d)
    of each arm's one setting (Uncertainty.contrast with weights 1, −1, −1, 1)."""
    import pandas as pd

    from bench.evaluation.replication import decide
    from bench.evaluation.uncertainty import Interval

    gold = {"dpo": -0.4, "dpo_rm": -1.4, "cdpo": -0.3, "ipo": -0.6}
    asked = []

    class Unc:
        def contrast(self, weights, metric):
            weights = dict(weights)
            asked.append(weights)
            m = sum(w * gold[s] for s, w in weights.items())
            return Interval(m, m - 0.5, m + 0.5, 3)

        def difference(self, a, b, metric):
            return self.contrast({a: 1.0, b: -1.0}, metric)

    frame = pd.DataFrame([{"run_id": f"{label}_s{s}", "label": label, "algorithm": label, "seed": s,
                           "status": "finished", "best": ""} for label in gold for s in range(3)])
    rep = {"compare": "dpo - dpo_rm", "beyond": "cdpo - ipo", "metric": "gold_reward", "at": "matched_budget",
           "claim": "c", "citation": "x"}
    v = decide(rep, frame, Unc(), swept=[])
    assert {"dpo": 1.0, "dpo_rm": -1.0, "cdpo": -1.0, "ipo": 1.0} in asked
    assert v.deciding.difference == pytest.approx((-0.4 + 1.4) - (-0.3 + 0.6))  # 1.0 − 0.3
    assert v.verdict == "reproduced" and v.beyond == "cdpo - ipo"
    assert v.headline.startswith("reproduced: gold_reward (dpo − dpo_rm) − (cdpo − ipo) = +0.700 [+0.200, +1.200]")
    assert v.deciding.settings == ["dpo", "dpo_rm", "cdpo", "ipo"]
    assert "a − b +1.000 [+0.500, +1.500], c − d +0.300 [-0.200, +0.800]" in v.headline  # both effects shown
    gold["ipo"] = -0.1  # the algorithm gap reverses (c − d < 0): the signed contrast compares no sizes
    flipped = decide(rep, frame, Unc(), swept=[])
    assert flipped.verdict == "inconclusive" and "the contrast compares no sizes" in flipped.headline
    gold["ipo"] = -0.6
    gold["cdpo"] = 1.0  # the algorithm gap now exceeds the labels': contradicted, diagnostics name all four
    v = decide({**rep, "mechanism": "m."}, frame, Unc(), swept=[])
    assert v.verdict == "contradicted" and all(f"{s}: " in v.mechanism for s in gold), v.mechanism


@pytest.mark.parametrize("beyond, at, words", [
    ('"hi - nope"', "matched_budget", "[replication].beyond: 'nope' is not an [algorithms] label"),
    ('"hi - hi"', "matched_budget", "[replication].beyond: compares hi with itself"),
    ('"lo - hi"', "frontier", "[replication].beyond: reads a difference of differences at matched budget only"),
    ('"lo - hi"', "matched_budget", "[replication].beyond: 'lo - hi' is `compare` itself (or reversed)"),
])
def test_a_bad_beyond_is_one_line_naming_it(tmp_path, beyond, at, words):
    text = SUITE.replace('at = "matched_budget"', f'at = "{at}"\nbeyond = {beyond}')
    problems = problems_of(tmp_path, text)
    assert len(problems) == 1 and words in problems[0], problems


def test_a_matched_budget_verdict_is_read_at_matched_kl_as_well(results):
    v = _decide(results)  # hi (KL ~4.1) vs lo's selected β 0.1 (KL ~2.5): no pair within 25%
    assert re.match(r"the deciding settings sit at KL 4\.\d\d \(hi\) and 2\.\d\d \(lo \(beta=0\.1\)\); "
                    r"no reading at matched KL: no setting of hi has a KL within 25%", v.also_at_kl), v.also_at_kl
    wide = _decide(results, kl_tolerance=0.5)
    assert re.search(r"; at matched KL \(within 50%\) (reproduced|inconclusive|contradicted) over 1 pair: "
                     r"hi − lo \(beta=0\.1\) = [+-]\d\.\d{3} \[", wide.also_at_kl), wide.also_at_kl
    assert wide.verdict == v.verdict  # the verdict stays the budget reading the claim names
    assert not _decide(results, at="matched_kl", kl_tolerance=0.5).also_at_kl


def test_the_rerun_command_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    from bench.reporting.replication import rerun_command

    monkeypatch.chdir(tmp_path)
    inside = tmp_path / "suites" / "replications" / "x.toml"
    assert rerun_command({"path": str(inside)}) == "bench run suites/replications/x.toml"
    assert rerun_command({"path": "/elsewhere/x.toml"}) == "bench run /elsewhere/x.toml"
    assert rerun_command({"name": "y"}) == "bench run suites/replications/y.toml"


def test_a_categorical_grid_has_no_edges():
    import pandas as pd

    from bench.evaluation.replication import _selection
    from bench.evaluation.replication_points import parse_arms

    frame = pd.DataFrame([{"run_id": f"d{i}", "label": "dpo", "algorithm": "dpo", "seed": 0, "status": "finished",
                           "loss_type": lt, "best": "best" if lt == "ipo" else ""}
                          for i, lt in enumerate(("hinge", "ipo", "sigmoid"))])
    a, b = parse_arms("dpo - ppo")
    assert _selection(frame, (a,)) == ["dpo: loss_type=ipo (of hinge, ipo, sigmoid)"]
