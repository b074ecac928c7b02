"""The notebook API: `bench.run_suite(path, **overrides)` trains a tiny swept suite (overrides validated like
`--set`), and `bench.load_results(dir)` returns tidy DataFrames whose runs, curves and trainer logs carry the
label, algorithm, seed, setting and swept-setting columns."""

from __future__ import annotations

import pytest

import bench
from bench.errors import UserError
from tiny_suite import one_thread, write_tiny_suite


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    suite = write_tiny_suite(tmp, name="api", algorithms="[algorithms.dpo]\nbeta = [0.1, 0.3]\n[algorithms.sft]\n")
    with one_thread():
        outcome = bench.run_suite(suite, results=tmp / "results", cache_dir=tmp / "cache", device="cpu",
                                  report=tmp / "report", eval__curve_every=0.25, **{"budget.max_steps": 6})
    return {"outcome": outcome, "res": bench.load_results(outcome.results_dir), "tmp": tmp}


def test_run_suite_applies_overrides_and_writes_the_report(results):
    outcome = results["outcome"]
    assert len(outcome.finished) == 3 and not outcome.failed
    assert (results["tmp"] / "report" / "api" / "index.html").is_file()
    runs = results["res"].runs
    assert set(runs["steps"][runs["algorithm"] == "dpo"]) == {6}  # budget.max_steps=6


def test_runs_frame_has_identity_and_settings(results):
    runs = results["res"].runs
    assert results["res"].settings == ["beta"]
    assert list(runs.columns[:5]) == ["run_id", "label", "algorithm", "seed", "setting"]
    assert sorted(runs["setting"]) == ["dpo beta=0.1", "dpo beta=0.3", "sft"]
    assert runs["win_rate"].between(0, 1).all()


def test_curves_and_logs_carry_label_seed_and_settings(results):
    res = results["res"]
    curves, logs = res.curves, res.logs
    for frame in (curves, logs):
        assert list(frame.columns[:6]) == ["run_id", "label", "algorithm", "seed", "setting", "beta"]
        assert frame["label"].notna().all() and frame["seed"].eq(0).all()
    dpo = curves[curves["algorithm"] == "dpo"]
    assert set(dpo["beta"]) == {0.1, 0.3}
    assert dpo.groupby("setting")["step"].max().eq(6).all()  # each run's curve reaches its last step
    per_run = logs[logs["loss"].notna()].groupby("run_id")["step"].apply(list)
    assert all(steps == [1, 2, 3, 4, 5, 6] for steps in per_run)
    assert logs["budget_fraction"].between(0, 1).all()


def test_bad_override_and_folder_are_user_errors(results, tmp_path):
    with pytest.raises(UserError, match=r"\[budget\]\.flops"):
        bench.run_suite(write_tiny_suite(tmp_path), results=tmp_path / "r", budget__flops=-1)
    with pytest.raises(UserError, match="not a results folder"):
        bench.load_results(tmp_path / "nothing")
