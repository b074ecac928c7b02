"""Issue 23's low-priority findings, each reproduced: a SLURM time limit names its fix; deeply nested TOML is one
line; a full disk names the right file; `bench status` escapes control characters and names a lock's holder;
summary.csv is not rebuilt after every run; a killed job's failure points at its logs, not a missing
traceback.txt; two suites with one [suite].name do not share a results folder; a read-only cache is readable."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from bench.cli import EXIT_OK, EXIT_RUNS_FAILED, EXIT_USER, main
from bench.errors import UserError
from bench.runner import run_suite
from bench.suite import load_suite
from test_isolation import FIXTURE, faulty_suite

FAKE = '[algorithms.ok]\nalgorithm = "faulty"\nbeta = [0.05, 0.5]\n'


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_QUIET", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_a_slurm_time_limit_failure_says_to_raise_the_limit(env):
    path = faulty_suite(env, '[algorithms.slow]\nalgorithm = "faulty"\ndie = "slurm_timeout"\n')
    outcome = run_suite(load_suite(path), results_root=env / "res")
    (error,) = [e for _, e in outcome.failed]
    assert "timed-out and not checkpointable" in error and "raise [launcher.slurm].time" in error


@pytest.mark.parametrize("depth", [5000, 40])
def test_deeply_nested_toml_is_one_line_exit_2(env, capsys, depth):
    path = env / "deep.toml"
    path.write_text('[suite]\nname = "d"\n[algorithms.fake]\nbeta = ' + "[" * depth + "]" * depth + "\n")
    assert main(["validate", str(path)]) == EXIT_USER
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "nested" in line and "deep" in line and str(path) in line


def test_a_full_disk_under_the_world_cache_names_the_stage(env, monkeypatch):
    from bench import cache

    def build(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")  # no filename, as many writers raise it

    with pytest.raises(UserError) as err:
        cache.load_or_build(env / "cache" / "worlds" / "w1", build, what="world")
    assert "cannot write" in str(err.value) and "worlds/w1" in str(err.value) and "?" not in str(err.value)


def test_a_full_disk_while_a_run_fails_names_what_failed_first(env, monkeypatch):
    """Saving the policy fails (torch reports ENOSPC as a RuntimeError naming the file); then writing the failure
    record fails too. The line names the first failure, not only log_history.jsonl."""
    import bench.execute as execute

    path = faulty_suite(env, '[algorithms.bad]\nalgorithm = "faulty"\nfail = true\n')
    real = execute._write_log_history

    def full(run_path, logs):
        raise OSError(errno.ENOSPC, "No space left on device", str(run_path / "log_history.jsonl"))

    monkeypatch.setattr(execute, "_write_log_history", full)
    with pytest.raises(UserError) as err:
        run_suite(load_suite(path), results_root=env / "res")
    text = str(err.value)
    assert "log_history.jsonl" in text and "the run had just failed with: RuntimeError: fake algorithm" in text
    monkeypatch.setattr(execute, "_write_log_history", real)


def test_status_escapes_control_characters_and_names_the_lock_holder(env, capsys):
    from bench.locking import hold
    from bench.runner import run_lock_path

    path = faulty_suite(env, FAKE)
    assert main(["run", str(path), "--results", str(env / "res"), "--no-report", "--launcher", "sequential"]) == 0
    results = env / "res" / "fl"
    runs = sorted((results / "runs").iterdir())
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    metrics.update(status="failed", error="boom \x1b[31mRED\x1b[0m \u202eevil\u202c end")
    (runs[0] / "metrics.json").write_text(json.dumps(metrics))
    shutil.rmtree(runs[1] / "metrics.json", ignore_errors=True)
    (runs[1] / "metrics.json").unlink()
    capsys.readouterr()
    with hold(run_lock_path(results, runs[1].name)):
        assert main(["status", str(results)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "\\x1b[31mRED" in out and "\\u202eevil" in out
    assert f"lock held by pid {os.getpid()} on {os.uname().nodename}" in out


def test_summary_is_not_rebuilt_after_every_run(env, monkeypatch):
    import bench.runner as runner

    calls = []
    real = runner.write_summary
    monkeypatch.setattr(runner, "write_summary", lambda d: (calls.append(d), real(d))[1])
    path = faulty_suite(env, '[algorithms.many]\nalgorithm = "faulty"\nbeta = [0.05, 0.1, 0.2, 0.3, 0.5]\n',
                        seeds=tuple(range(6)))
    outcome = run_suite(load_suite(path), results_root=env / "res")
    assert len(outcome.finished) == 30
    assert len(calls) <= 3, f"summary.csv rebuilt {len(calls)} times for 30 runs"
    import csv

    with open(env / "res" / "fl" / "summary.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 30  # complete at the end


def test_a_killed_run_points_at_its_logs_not_a_missing_traceback(env, capsys, monkeypatch):
    path = faulty_suite(env, '[algorithms.oom]\nalgorithm = "faulty"\ndie = "sigkill"\n')
    assert main(["run", str(path), "--results", str(env / "res"), "--no-report", "--launcher",
                 "sequential"]) == EXIT_RUNS_FAILED
    err = capsys.readouterr().err
    assert "traceback.txt" in err  # the attempt module writes one that says no traceback exists
    (run,) = (env / "res" / "fl" / "runs").iterdir()
    assert "no traceback" in (run / "traceback.txt").read_text()
    (run / "traceback.txt").unlink()  # a submitit job killed with kill -9: no traceback.txt at all
    from bench.cli import _where_to_look
    from bench.runner import SuiteOutcome

    outcome = SuiteOutcome(env / "res" / "fl", failed=[(run.name, "its job ended without a result")])
    text = _where_to_look(outcome)
    assert "traceback.txt" not in text and "bench status" in text


def test_two_suites_with_one_name_do_not_share_a_results_folder(env, capsys):
    a = faulty_suite(env, FAKE)
    other = env / "elsewhere"
    other.mkdir()
    b = faulty_suite(other, '[algorithms.different]\nalgorithm = "faulty"\nbeta = 0.3\n')
    assert main(["run", str(a), "--results", str(env / "res"), "--no-report", "--launcher", "sequential"]) == 0
    capsys.readouterr()
    assert main(["run", str(b), "--results", str(env / "res"), "--no-report", "--launcher", "sequential"]) == EXIT_USER
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "[suite].name = 'fl' is also the name of" in line and str(a.resolve()) in line
    # the same file again (edited) is the same owner
    a.write_text(a.read_text().replace("0.05", "0.07"))
    assert main(["run", str(a), "--results", str(env / "res"), "--no-report", "--launcher", "sequential"]) == 0


def test_a_read_only_cache_is_read_without_a_write_lock(env, monkeypatch):
    from bench import cache

    root = env / "shared" / "worlds" / "w1"

    def build(tmp):
        (tmp / "data.bin").write_bytes(b"x" * 100)
        return {"kind": "test"}

    record, hit = cache.load_or_build(root, build, marker="world.json")
    assert not hit

    def read_only(path, **kw):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(cache, "hold", read_only)
    cache._verified.clear()
    again, hit = cache.load_or_build(root, build, marker="world.json")
    assert hit and again["kind"] == "test"
    with pytest.raises(UserError) as err:  # missing from a read-only cache: one line, no build attempted
        cache.load_or_build(env / "shared" / "worlds" / "w2", build, marker="world.json")
    assert "read-only" in str(err.value) and "--cache-dir" in str(err.value)
