"""The knobs replication suites need (issue 28): an update budget (equal optimizer steps instead of equal FLOPs),
DPO on pairs relabelled by the shared reward model (`dpo_rm`), Online DPO labelled by the simulated annotator
under a label budget (`online_dpo_annotator`), and the reward model's quality recorded in summary.csv."""

from __future__ import annotations

import json

import pytest

from bench.errors import UserError
from bench.suite import expand, load_suite
from tests.tiny_suite import one_thread, run_dirs, tiny_suite_text


def _suite(tmp_path, text, name="knobs.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_an_update_budget_is_a_step_cap_and_changes_no_other_run_id(tmp_path):
    flops = load_suite(_suite(tmp_path, tiny_suite_text()))
    updates = load_suite(_suite(tmp_path, tiny_suite_text()), ["budget.updates=7"])  # --set replaces flops
    assert updates.budget.kind == "updates" and updates.budget.max_steps == 7 and updates.budget.flops is None
    assert updates.budget.meter == ("flops", float("inf"))  # FLOPs metered, uncapped
    assert flops.budget.meter == ("flops", 1.2e9)
    assert expand(updates)[0].run_id != expand(flops)[0].run_id
    assert "updates" not in expand(flops)[0].canonical()["budget"]  # older run ids and suite hashes stay


@pytest.mark.parametrize("budget, words", [
    ("flops = 1e9\nupdates = 5", "set exactly one of `flops`, `seconds` or `updates`"),
    ("updates = 5\nmax_steps = 3", "[budget].max_steps: an `updates` budget is the step cap"),
    ("updates = 0", "[budget].updates: must be >= 1"),
])
def test_update_budget_errors_name_the_field(tmp_path, budget, words):
    text = tiny_suite_text().replace("[budget]\nflops = 1.2e+09\n", f"[budget]\n{budget}\n")
    with pytest.raises(UserError) as err:
        load_suite(_suite(tmp_path, text))
    assert len(err.value.problems) == 1 and words in err.value.problems[0]


def test_relabel_swaps_where_the_judge_prefers_the_rejected():
    from bench.algorithms.one_judge import relabel

    assert relabel([1.0, 0.0, 0.5], [0.5, 0.5, 0.5]) == [False, True, False]  # ties keep the recorded order


def test_annotator_labels_follow_bradley_terry():
    """Gumbel(0, β) noise per completion: the pair's argmax is a BT draw with P(a ≻ b) = σ((u_a − u_b)/β)."""
    import math

    from bench.algorithms.one_judge import LabelMeter, annotator_function
    from bench.worlds.controlled.config import ControlledWorldConfig

    class Tok:
        pad_token_id = 0

        def decode(self, ids, skip_special_tokens=True):
            return ids[0]

    meter = LabelMeter(10)
    cfg = ControlledWorldConfig(beta_labeller=1.0, labeller="sentiment")
    fn = annotator_function(cfg, Tok(), meter, seed=0)
    a, b = "it was good .", "it was bad ."
    from bench.worlds.controlled.pairs import labeller_from

    p = labeller_from(cfg).prob_first(" " + a, " " + b, "the film")
    wins = 0
    n = 4000
    for _ in range(n):
        sa, sb = fn(["the film", "the film"], None, [[a], [b]])
        wins += sa > sb
    assert meter.used == n  # one label per pair
    assert abs(wins / n - p) < 4 * math.sqrt(p * (1 - p) / n) and 0.55 < p < 0.999


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    from bench.cli import main

    root = tmp_path_factory.mktemp("knobs")
    algorithms = ("[algorithms.dpo]\nlearning_rate = 1e-3\n[algorithms.dpo_rm]\nlearning_rate = 1e-3\n"
                  "[algorithms.online_dpo_annotator]\nlearning_rate = 1e-3\nlabel_budget = 16\n"
                  "max_new_tokens = 8\n")
    path = _suite(root, tiny_suite_text("knobs", algorithms=algorithms).replace(
        "[budget]\nflops = 1.2e+09\n", "[budget]\nupdates = 3\n"))
    with one_thread():
        assert main(["run", str(path), "--results", str(root / "results"), "--no-report", "--workers", "1"]) == 0
    return root / "results" / "knobs"


def test_the_knobs_train_end_to_end(tiny_results):
    dirs = run_dirs(tiny_results)
    dpo = json.loads((dirs["dpo"] / "metrics.json").read_text())
    assert dpo["steps"] == 3 and dpo["stop_reason"] == "max_steps"  # equal updates, not equal FLOPs
    rm = json.loads((dirs["dpo_rm"] / "metrics.json").read_text())
    assert rm["steps"] == 3 and 0 <= rm["extra_relabel"]["swapped_fraction"] <= 1
    assert 0 <= rm["rm_gold_accuracy"] <= 1 and rm["compute"]["flops_by_component"]["reward_model"] > 0
    ann = json.loads((dirs["online_dpo_annotator"] / "metrics.json").read_text())
    assert ann["extra_labels"] == {"used": 16, "budget": 16}  # 8 prompts per step, one label per pair
    assert ann["steps"] == 2 and ann["stop_reason"] == "label_budget"
    assert "reward_model" not in ann["compute"]["flops_by_component"]
    import pandas as pd

    summary = pd.read_csv(tiny_results / "summary.csv")
    assert summary.set_index("label").loc["dpo_rm", "rm_gold_accuracy"] == pytest.approx(rm["rm_gold_accuracy"])
