"""`[train] save_policy = "final"` and `bench export`: a tiny controlled-world DPO run trained first without and then
with save_policy (the finished run is re-trained for its checkpoint: same numbers), exported, and reloaded with
`AutoModelForCausalLM` / `AutoTokenizer`; the reloaded policy gives the trained policy's log-probs (recorded from
the trainer's in-memory model when it was saved). Offline Hub pushes and bad arguments are one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.algorithms import trl_common
from bench.cli import main
from tiny_suite import one_thread, run_dirs, stable_metrics, write_tiny_suite


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    import os

    quiet = os.environ.get("BENCH_QUIET")
    os.environ["BENCH_QUIET"] = "1"  # restored when the fixture's runs are done: later tests read the run lines
    try:
        return _saved(tmp_path_factory)
    finally:
        if quiet is None:
            os.environ.pop("BENCH_QUIET", None)
        else:
            os.environ["BENCH_QUIET"] = quiet


def _saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("export")
    suite = write_tiny_suite(tmp, name="exp", algorithms="[algorithms.dpo]\n[algorithms.sft]\n")
    base = ["run", str(suite), "--results", str(tmp / "results"), "--cache-dir", str(tmp / "cache"), "--device",
            "cpu", "--no-report"]
    recorded = {}
    original = trl_common.save_policy

    def save_and_record(trainer_or_model, tokenizer, path):
        """The real save, after measuring the in-memory policy on held-out pairs (what an export must match)."""
        from bench.evaluation.policy_metrics import pair_logps

        model = getattr(trainer_or_model, "model", trainer_or_model)
        hooks = dict(model._forward_pre_hooks)  # the compute meter's: this measurement is not the run's
        model._forward_pre_hooks.clear()
        try:
            recorded["logps"] = pair_logps(model.eval(), tokenizer, recorded["pairs"])
        finally:
            model._forward_pre_hooks.update(hooks)
        return original(trainer_or_model, tokenizer, path)

    with one_thread():
        assert main(base) == 0
        first = run_dirs(tmp / "results" / "exp")["dpo"]
        before = stable_metrics(first)
        assert not (first / "policy").exists()
        from bench.suite import load_suite
        from bench.stages import SharedStages

        stages = SharedStages(load_suite(suite), tmp / "cache", device="cpu")
        recorded["pairs"] = stages.curve_pairs("heldout", 8)
        trl_common.save_policy = save_and_record
        try:  # in this process (the library's launcher): `bench run` trains in a child, beyond this patch
            from bench.runner import run_suite

            outcome = run_suite(load_suite(suite, ["train.save_policy=final"]), results_root=tmp / "results",
                                cache_dir=tmp / "cache", device="cpu")
            assert not outcome.failed and len(outcome.finished) == 1  # dpo again, for its policy; sft keeps none
        finally:
            trl_common.save_policy = original
    run = run_dirs(tmp / "results" / "exp")["dpo"]
    return {"tmp": tmp, "results": tmp / "results" / "exp", "run": run, "before": before, **recorded}


def test_a_finished_run_is_retrained_for_its_policy_with_the_same_numbers(saved):
    assert saved["run"].name == saved["before"]["run_id"]
    assert stable_metrics(saved["run"]) == saved["before"]
    assert (saved["run"] / "policy" / "model.safetensors").is_file()
    assert not (saved["run"] / "work").exists()
    sft = run_dirs(saved["results"])["sft"]
    assert not (sft / "policy").exists()  # training-free: nothing trained, nothing kept


def test_model_card_names_suite_algorithm_settings_and_metrics(saved):
    card = (saved["run"] / "policy" / "README.md").read_text()
    metrics = json.loads((saved["run"] / "metrics.json").read_text())
    assert card.startswith("---\nlibrary_name: transformers\n") and "- dpo\n" in card
    assert "suite `exp`" in card and "algorithm `dpo`" in card and saved["run"].name in card
    assert "| beta | 0.1 |" in card and "| learning_rate | 0.001 |" in card
    assert f"| win_rate | {metrics['win_rate']:.4g} |" in card and f"| steps | {metrics['steps']} |" in card


def test_export_reloads_with_transformers_and_matches_the_trained_policy(saved, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.evaluation.policy_metrics import pair_logps

    out = saved["tmp"] / "exported"
    assert main(["export", str(saved["results"]), "--run", saved["run"].name, "--to", str(out)]) == 0
    assert "exported:" in capsys.readouterr().out
    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    tok = AutoTokenizer.from_pretrained(str(out))
    again = pair_logps(model, tok, saved["pairs"])
    for key in ("chosen", "rejected"):
        np.testing.assert_allclose(again[key], saved["logps"][key], rtol=0, atol=1e-4)
    record = json.loads((out / "daa_bench.json").read_text())
    assert record["config"]["run_id"] == saved["run"].name and record["metrics"]["status"] == "finished"
    assert (out / "README.md").is_file()


def test_export_errors_are_one_line(saved, capsys, monkeypatch):
    results, run_id = str(saved["results"]), saved["run"].name
    cases = [
        (["--run", run_id[:-2], "--to", str(saved["tmp"] / "x1")], "did you mean"),
        (["--run", run_dirs(saved["results"])["sft"].name, "--to", str(saved["tmp"] / "x2")], "training-free"),
        (["--run", run_id, "--to", str(saved["run"])], "not an empty folder"),
    ]
    for extra, needle in cases:
        assert main(["export", results, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err and "Traceback" not in err, err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = saved["tmp"] / "pushed"
    assert main(["export", results, "--run", run_id, "--to", str(out), "--push-to-hub", "someone/policy"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "HF_HUB_OFFLINE" in err and str(out) in err
    assert (out / "model.safetensors").is_file()  # the export is kept
