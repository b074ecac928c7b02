"""The readings of a win end to end (tiny controlled world): LC win rate and the grammar / sentiment parts in
metrics.json, per_prompt.csv and summary.csv (with intervals from the one uncertainty model), and the scripted
references built from the grammar."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bench.runner import run_suite
from bench.suite import expand, load_suite
from bench.worlds.controlled.language import is_well_formed
from tiny_suite import one_thread, write_tiny_suite

ENTRIES = """
[algorithms.sft]

[algorithms.finish_clause]
algorithm = "scripted"
rule = "finish_clause"

[algorithms.one_positive]
algorithm = "scripted"
rule = "positive_adjective"
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("readings")
    suite = load_suite(write_tiny_suite(folder, "readings", algorithms=ENTRIES))
    with one_thread():
        outcome = run_suite(suite, results_root=folder / "results", cache_dir=folder / "cache", device="cpu")
    out = {}
    for spec in expand(suite):
        d = outcome.results_dir / "runs" / spec.run_id
        out[spec.label] = {"dir": d, "metrics": json.loads((d / "metrics.json").read_text()),
                           "samples": [json.loads(x) for x in (d / "samples.jsonl").read_text().splitlines()]}
    return outcome.results_dir, out


@pytest.mark.parametrize("label", ["sft", "finish_clause", "one_positive"])
def test_parts_add_up_and_units_reproduce_the_readings(runs, label):
    _, by_label = runs
    m = by_label[label]["metrics"]
    assert m["status"] == "finished", m.get("error")
    assert 0.5 + m["win_rate_grammar"] + m["win_rate_sentiment"] == pytest.approx(m["win_rate"], abs=1e-9)
    assert 0 <= m["win_rate_lc"] <= 1 and math.isfinite(m["win_rate_length_slope"])
    table = pd.read_csv(by_label[label]["dir"] / "per_prompt.csv")
    for prefix, key in (("lc_ref", "win_rate_lc"), ("grammar_ref", "win_rate_grammar"),
                        ("sentiment_ref", "win_rate_sentiment")):
        cols = [c for c in table.columns if c.startswith(prefix)]
        assert len(cols) == len([c for c in table.columns if c.startswith("win_ref")])
        assert table[cols].to_numpy().mean() == pytest.approx(m[key], abs=1e-6)


def test_scripted_references_write_the_rule_and_report_exact_kl(runs):
    _, by_label = runs
    for label in ("finish_clause", "one_positive"):
        m, samples = by_label[label]["metrics"], by_label[label]["samples"]
        assert m["flops"] == 0 and m["stop_reason"] == "training_free" and m["kl"] > 0
        assert m["grammatical_fraction"] == 1.0
        assert all(is_well_formed(s["prompt"], s["completion"]) for s in samples)
    assert all(s["score"] == 0 for s in by_label["finish_clause"]["samples"])
    assert all("good" in s["completion"].split() for s in by_label["one_positive"]["samples"])
    # every win of a well-formed rule against π_ref's well-formed draws is sentiment; against its slips, grammar
    assert by_label["finish_clause"]["metrics"]["win_rate_grammar"] >= 0


def test_summary_has_the_readings_with_intervals(runs):
    results_dir, _ = runs
    frame = pd.read_csv(results_dir / "summary.csv")
    for key in ("win_rate_lc", "win_rate_grammar", "win_rate_sentiment"):
        for col in (key, f"{key}_lo", f"{key}_hi"):
            assert col in frame.columns and frame[col].notna().all(), col
        assert (frame[f"{key}_lo"] <= frame[key] + 1e-9).all() and (frame[key] <= frame[f"{key}_hi"] + 1e-9).all()


def test_scripted_rules_finish_every_language_prompt_in_a_few_words():
    from bench.worlds.controlled.language import ReviewGenerator, gold_reward
    from bench.worlds.controlled.scripted import scripted_completion

    gen = ReviewGenerator(17)
    prompts = [gen.prompt_and_completion()[0] for _ in range(1500)]
    for prompt in prompts:
        finish = scripted_completion(prompt, "finish_clause")
        positive = scripted_completion(prompt, "positive_adjective")
        assert is_well_formed(prompt, finish) and is_well_formed(prompt, positive), prompt
        assert gold_reward(finish, prompt) == 0.0                  # neutral words only: no verdict
        assert positive.split().count("good") == 1 and len(positive.split()) <= 6
    with pytest.raises(ValueError, match="unknown scripted rule"):
        scripted_completion("the plot was", "longest")
