"""The suite runner end to end with the torch-free `fake` algorithm: run folders, summary, skip on re-run,
failure isolation, resume after a kill, and the `bench run` filters / dry run. Everything here takes seconds."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.results import is_finished, run_dir
from bench.runner import plan_text, run_suite, select
from bench.suite import expand, load_suite

SUMMARY_COLUMNS = ["run_id", "algorithm", "seed", "beta", "win_rate", "win_rate_lo", "win_rate_hi", "gold_reward",
                   "kl", "chosen_logp_delta", "rejected_logp_delta", "pref_accuracy", "length", "flops", "wall_s",
                   "status"]


def write_suite(tmp_path: Path, body: str, name: str = "fk", seeds=(0, 1, 2)) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""\
        [suite]
        name = "{name}"
        seeds = {list(seeds)}

        [budget]
        flops = 1e9
        """) + textwrap.dedent(body), encoding="utf-8")
    return path


def read_summary(results_dir: Path) -> list[dict[str, str]]:
    with open(results_dir / "summary.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_dirs(results_dir: Path) -> dict[str, Path]:
    root = results_dir / "runs"
    return {d.name: d for d in sorted(root.iterdir())} if root.is_dir() else {}


SWEEP = """
[algorithms.fake]
beta = [0.05, 0.5]
"""


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setenv("BENCH_QUIET", "1")


def test_end_to_end_sweep(tmp_path):
    suite = load_suite(write_suite(tmp_path, SWEEP))
    outcome = run_suite(suite, results_root=tmp_path / "results", cache_dir=tmp_path / "cache")
    results = tmp_path / "results" / "fk"
    assert outcome.results_dir == results
    assert len(outcome.finished) == 6 and not outcome.skipped and not outcome.failed

    dirs = run_dirs(results)
    assert sorted(dirs) == sorted(outcome.finished) == sorted(s.run_id for s in expand(suite))
    for spec in expand(suite):
        d = dirs[spec.run_id]
        for name in ("config.json", "metrics.json", "curves.csv", "samples.jsonl"):
            assert (d / name).is_file(), f"{spec.run_id}: {name} missing"
        config = json.loads((d / "config.json").read_text())
        assert config["run_id"] == spec.run_id
        assert config["config_hash"] == spec.config_hash and spec.run_id.endswith(spec.config_hash[:8])
        assert config["seed"] == spec.seed
        assert config["params"]["beta"] == spec.param_dict["beta"]
        assert config["provenance"]["git"].keys() >= {"commit", "dirty"}
        assert config["provenance"]["packages"].get("daa-bench")
        metrics = json.loads((d / "metrics.json").read_text())
        assert metrics["status"] == "finished"
        assert metrics["flops"] == pytest.approx(1e9)
        assert is_finished(d)
        with open(d / "curves.csv", newline="", encoding="utf-8") as f:
            curves = list(csv.DictReader(f))
        assert curves and {"step", "flops"} <= curves[0].keys()

    rows = read_summary(results)
    assert len(rows) == 6
    assert sorted(r["run_id"] for r in rows) == sorted(dirs)
    missing = [c for c in SUMMARY_COLUMNS + ["best"] if c not in rows[0]]
    assert not missing, f"summary.csv lacks {missing}"
    assert {r["status"] for r in rows} == {"finished"}
    assert {float(r["beta"]) for r in rows} == {0.05, 0.5}
    assert sorted(int(r["seed"]) for r in rows) == [0, 0, 1, 1, 2, 2]
    for r in rows:
        assert float(r["win_rate_lo"]) <= float(r["win_rate"]) <= float(r["win_rate_hi"])

    # `best` marks exactly one beta setting (all its seeds): the best mean validation win rate (not the test
    # prompts' win rate, which would select on the reported number itself)
    best = {float(r["beta"]) for r in rows if r["best"] == "best"}
    assert len(best) == 1
    assert sum(r["best"] == "best" for r in rows) == 3
    mean_val = {b: sum(float(r["val_win_rate"]) for r in rows if float(r["beta"]) == b) / 3 for b in (0.05, 0.5)}
    assert best == {max(mean_val, key=mean_val.get)}

    assert (results / "suite.json").is_file()


def test_rerun_skips_finished_runs(tmp_path):
    suite = load_suite(write_suite(tmp_path, SWEEP))
    first = run_suite(suite, results_root=tmp_path / "results", cache_dir=tmp_path / "cache")
    results = first.results_dir
    mtimes = {name: (d / "metrics.json").stat().st_mtime_ns for name, d in run_dirs(results).items()}
    time.sleep(0.05)  # a rewrite would show as a newer mtime
    again = run_suite(load_suite(write_suite(tmp_path, SWEEP)), results_root=tmp_path / "results",
                      cache_dir=tmp_path / "cache")
    assert sorted(again.skipped) == sorted(first.finished) and len(again.skipped) == 6
    assert not again.finished and not again.failed
    assert {name: (d / "metrics.json").stat().st_mtime_ns for name, d in run_dirs(results).items()} == mtimes
    assert len(read_summary(results)) == 6


def test_runs_made_on_an_older_world_build_are_trained_again(tmp_path, capsys):
    """Run ids hash the suite, not the world's build: a finished run whose config.json records another world key
    than the one this code builds (format or kernels changed) is re-run with a warning, never reused."""
    from bench.worlds import WORLDS

    suite = load_suite(write_suite(tmp_path, SWEEP))
    first = run_suite(suite, results_root=tmp_path / "results", cache_dir=tmp_path / "cache")
    dirs = run_dirs(first.results_dir)
    current = WORLDS["controlled"].key(suite.world)
    assert current and len(current) >= 12
    old, same = sorted(dirs)[:2]
    for name, key in ((old, "0123456789ab-older-format"), (same, current)):
        config = json.loads((dirs[name] / "config.json").read_text())
        config["world_key"] = key
        (dirs[name] / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    again = run_suite(load_suite(write_suite(tmp_path, SWEEP)), results_root=tmp_path / "results",
                      cache_dir=tmp_path / "cache")
    assert again.stale == [old] and again.finished == [old]
    assert same in again.skipped and len(again.skipped) == 5
    assert "made on an older build of the world" in capsys.readouterr().err
    assert json.loads((dirs[old] / "config.json").read_text()).get("world_key") != "0123456789ab-older-format"


def test_failing_run_is_isolated(tmp_path, quiet, capsys):
    path = write_suite(tmp_path, """
        [algorithms.good]
        algorithm = "fake"
        beta = 0.1

        [algorithms.bad]
        algorithm = "fake"
        fail = true
        """, seeds=(0, 1))
    code = main(["run", str(path), "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
                 "--no-report"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 3  # a run failed: its own exit status (not 0, not 1 = regression)
    assert "2 run(s) failed" in captured.err
    results = tmp_path / "results" / "fk"
    dirs = run_dirs(results)
    bad = {k: v for k, v in dirs.items() if k.startswith("bad_")}
    good = {k: v for k, v in dirs.items() if k.startswith("good_")}
    assert len(bad) == 2 and len(good) == 2
    for name, d in bad.items():
        metrics = json.loads((d / "metrics.json").read_text())
        assert metrics["status"] == "failed"
        assert "asked to fail" in metrics["error"]
        assert "RuntimeError" in (d / "traceback.txt").read_text()
        assert not is_finished(d)
        assert f"failed: {name}" in out  # failed runs are listed by the CLI
    for d in good.values():
        assert json.loads((d / "metrics.json").read_text())["status"] == "finished"
    rows = {r["run_id"]: r for r in read_summary(results)}
    assert len(rows) == 4
    for name in bad:
        assert rows[name]["status"] == "failed" and "asked to fail" in rows[name]["error"]
    for name in good:
        assert rows[name]["status"] == "finished" and not rows[name]["error"]

    # a failed run is not "finished": the next `bench run` retries it (and only it)
    suite = load_suite(path)
    again = run_suite(suite, results_root=tmp_path / "results", cache_dir=tmp_path / "cache")
    assert sorted(again.skipped) == sorted(good)
    assert sorted(r for r, _ in again.failed) == sorted(bad)


def test_resume_after_kill(tmp_path):
    path = write_suite(tmp_path, """
        [algorithms.fake]
        beta = [0.05, 0.5]
        sleep = 2
        """, name="slow", seeds=(0,))
    suite = load_suite(path)
    first_id, second_id = [s.run_id for s in expand(suite)]
    results = tmp_path / "results" / "slow"
    cmd = [sys.executable, "-m", "bench.cli", "run", str(path), "--results", str(tmp_path / "results"),
           "--cache-dir", str(tmp_path / "cache"), "--no-report"]
    env = {**os.environ, "BENCH_QUIET": "1"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        first, second = run_dir(results, first_id), run_dir(results, second_id)
        while not (is_finished(first) and (second / "config.json").is_file()):
            assert proc.poll() is None, f"bench run ended early: {proc.communicate()}"
            assert time.monotonic() < deadline, "the first run did not finish in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # mid-way through the second run's 2 s of "training"
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert is_finished(first)
    assert (second / "config.json").is_file() and not (second / "metrics.json").exists()
    summary = {r["run_id"]: r for r in read_summary(results)}  # written after the first run
    assert summary[first_id]["status"] == "finished"
    (second / "leftover.txt").write_text("from the killed attempt")
    first_mtime = (first / "metrics.json").stat().st_mtime_ns

    again = run_suite(load_suite(path), results_root=tmp_path / "results", cache_dir=tmp_path / "cache")
    assert again.skipped == [first_id]
    assert again.finished == [second_id] and not again.failed
    assert (first / "metrics.json").stat().st_mtime_ns == first_mtime
    assert is_finished(second)
    assert not (second / "leftover.txt").exists(), "an interrupted run restarts from a clean folder"
    rows = read_summary(results)
    assert sorted(r["run_id"] for r in rows) == sorted([first_id, second_id])
    assert {r["status"] for r in rows} == {"finished"}


FILTER_SUITE = """
[algorithms.fake]
beta = [0.05, 0.5]

[algorithms.other]
algorithm = "fake"
beta = 0.2
"""


def test_only_and_seeds_filters(tmp_path, quiet, capsys):
    path = write_suite(tmp_path, FILTER_SUITE)
    results = tmp_path / "results" / "fk"
    base = ["run", str(path), "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
            "--no-report"]
    assert main(base + ["--only", "other", "--seeds", "1"]) == 0
    dirs = run_dirs(results)
    assert len(dirs) == 1
    (config,) = [json.loads((d / "config.json").read_text()) for d in dirs.values()]
    assert config["label"] == "other" and config["seed"] == 1

    assert main(base + ["--only", "fake,other", "--seeds", "0,2"]) == 0
    configs = [json.loads((d / "config.json").read_text()) for d in run_dirs(results).values()]
    assert len(configs) == 1 + 2 * 3
    assert sorted((c["label"], c["seed"]) for c in configs) == sorted(
        [("other", 1)] + [("fake", s) for s in (0, 0, 2, 2)] + [("other", s) for s in (0, 2)])

    # the library function behind the flags
    suite = load_suite(path)
    specs = expand(suite)
    assert [s.run_id for s in select(specs, suite, ["fake"], [2])] == [
        s.run_id for s in specs if s.label == "fake" and s.seed == 2]
    assert select(specs, suite, None, None) == specs


def test_unknown_only_label_is_a_user_error(tmp_path, quiet, capsys):
    path = write_suite(tmp_path, FILTER_SUITE)
    code = main(["run", str(path), "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
                 "--no-report", "--only", "fak"])
    err = capsys.readouterr().err
    assert code == 2
    assert "did you mean 'fake'?" in err and "Traceback" not in err
    assert not (tmp_path / "results" / "fk" / "runs").exists()

    code = main(["run", str(path), "--results", str(tmp_path / "results"), "--no-report", "--seeds", "7"])
    err = capsys.readouterr().err
    assert code == 2 and "seed 7" in err
    code = main(["run", str(path), "--results", str(tmp_path / "results"), "--no-report", "--seeds", "one"])
    assert code == 2 and "--seeds" in capsys.readouterr().err


def test_dry_run_prints_plan_and_trains_nothing(tmp_path, quiet, capsys):
    path = write_suite(tmp_path, FILTER_SUITE)
    code = main(["run", str(path), "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
                 "--no-report", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    suite = load_suite(path)
    specs = expand(suite)
    assert len(specs) == 9
    for spec in specs:
        assert spec.run_id in out
    assert "9 runs" in out
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("runs"))
    assert not (tmp_path / "cache").exists()

    # filters apply to the plan too
    text = plan_text(suite, only=["other"], seeds=[0])
    assert "1 runs" in text
    assert sum(s.run_id in text for s in specs) == 1


def test_a_run_serving_both_budget_views_reads_both_in_the_summary(tmp_path, quiet):
    """With `[budget] view` swept, a run without a reward model serves both views: summary.csv says
    `budget_view = both` (not the end_to_end its budget ran under), so the report's ladder compares it with each
    view's rungs; suite.json records the swept axes the report header states."""
    from bench.io import read_json

    path = write_suite(tmp_path, '[algorithms.fake]\n', seeds=(0,))
    path.write_text(path.read_text().replace("flops = 1e9\n", 'flops = 1e9\nview = ["end_to_end", "amortised"]\n'))
    run_suite(load_suite(path), results_root=tmp_path / "results", cache_dir=tmp_path / "cache")
    rows = read_summary(tmp_path / "results" / "fk")
    assert [r["budget_view"] for r in rows] == ["both"]
    assert read_json(tmp_path / "results" / "fk" / "suite.json")["axes"] == [["budget_view", ["end_to_end", "amortised"]]]


def test_the_report_header_states_a_swept_world_setting(tmp_path, quiet):
    """With `[world] seed` (or pair_source) swept, every value is its own world: the header reads all values, not
    the first one as if it were the only world."""
    from bench.reporting import write_report

    path = write_suite(tmp_path, '[world]\nkind = "controlled"\nseed = [0, 1]\n\n[algorithms.fake]\n', seeds=(0,))
    outcome = run_suite(load_suite(path), results_root=tmp_path / "results", cache_dir=tmp_path / "cache")
    html = write_report(outcome.results_dir, tmp_path / "report").read_text(encoding="utf-8")
    assert "swept: 0, 1" in html
