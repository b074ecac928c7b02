"""A run that dies cannot take the suite with it (issue 23): every local launcher trains each run in a child
process; a run SIGKILLed (as the OOM killer does) is retried once, then recorded `failed` with the cause, and
the suite goes on; SIGTERM to `bench run` stops workers and runs like Ctrl-C (exit 143); workers die with their
parent; `[suite].plugins` algorithms run under every launcher; malformed metrics are `failed` with the field
named. Torch-free: the `faulty` plug-in (tests/fixtures/faulty/faulty_algorithms.py) misbehaves on request."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import EXIT_OK, EXIT_RUNS_FAILED, EXIT_TERMINATED, EXIT_USER, main
from bench.results import inspect_run, run_dir
from bench.runner import run_suite
from bench.suite import expand, load_suite
from test_runner import read_summary

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "faulty" / "faulty_algorithms.py"


def faulty_suite(tmp_path: Path, entries: str, name: str = "fl", seeds=(0,)) -> Path:
    """A suite beside a copy of the `faulty` plug-in, which it lists in [suite].plugins."""
    shutil.copy(FIXTURE, tmp_path / "faulty_algorithms.py")
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[suite]\nname = "{name}"\nseeds = {list(seeds)}\nplugins = ["faulty_algorithms"]\n\n'
                    f"[budget]\nflops = 1e9\n\n{entries}", encoding="utf-8")
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_QUIET", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    log = tmp_path / "attempts.log"
    monkeypatch.setenv("BENCH_FAULTY_LOG", str(log))
    return log


def attempts(log: Path) -> list[tuple[str, int]]:
    return [(line.split()[0], int(line.split()[1])) for line in log.read_text().splitlines()] if log.exists() else []


def bench(args: list[str], cwd: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300, **kw)


KILLER_FIRST = """
[algorithms.oom]
algorithm = "faulty"
die = "sigkill"

[algorithms.ok]
algorithm = "faulty"
beta = [0.05, 0.5]
"""


@pytest.mark.parametrize("launcher", [["--launcher", "sequential"], ["--launcher", "local", "--workers", "2"]],
                         ids=["sequential", "local-2-workers"])
@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_a_sigkilled_run_is_failed_with_its_cause_and_the_suite_goes_on(tmp_path, env, launcher):
    path = faulty_suite(tmp_path, KILLER_FIRST)
    proc = bench(["run", path.name, "--results", "res", "--report-dir", "rep", *launcher], tmp_path)
    assert proc.returncode == EXIT_RUNS_FAILED, proc.stderr[-3000:]
    summary = read_summary(tmp_path / "res" / "fl")
    assert len(summary) == 3
    assert [r["status"] for r in summary if r["label"] == "ok"] == ["finished"] * 2
    rows = {r["label"]: r for r in summary}
    assert rows["oom"]["status"] == "failed"
    assert "killed by signal 9 (SIGKILL) — out of memory?" in rows["oom"]["error"]
    assert "peak RSS" in rows["oom"]["error"] and "(2 attempts)" in rows["oom"]["error"]
    assert (tmp_path / "rep" / "fl" / "index.html").exists(), "the suite went on to its report"
    assert "failed: fl_oom" in proc.stdout or "oom" in proc.stdout
    assert "error: 1 run(s) failed" in proc.stderr, "one killed run is one failure, whatever the worker count"
    assert (proc.stdout + proc.stderr).count("killed by signal 9") <= 2, "said once (its ✗ line and the summary)"
    tried = attempts(env)
    oom = [pid for run_id, pid in tried if run_id.startswith("oom_")]
    assert len(oom) == 2, "two attempts, then recorded failed"
    pids = {pid for _, pid in tried}
    assert len(pids) == len(tried) == 4, "each attempt in its own child process, never in `bench run` or a worker"
    (oom_dir,) = [d for d in (tmp_path / "res" / "fl" / "runs").iterdir() if d.name.startswith("oom_")]
    assert "no traceback (the process was killed)" in (oom_dir / "traceback.txt").read_text()
    # a later `bench run` retries only that run (failed runs are retried), and records it again
    again = bench(["run", path.name, "--results", "res", "--no-report", *launcher], tmp_path)
    assert again.returncode == EXIT_RUNS_FAILED and "2 already finished" in again.stdout


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_a_sigkilled_run_under_submitit_local_is_failed_with_its_cause(tmp_path, env):
    """A submitit task runs its run in a child process too: the kill is a `failed` row with its cause after two
    attempts (not a job that 'ended without a result', re-run forever), and `bench run` itself never trains."""
    pytest.importorskip("submitit")
    path = faulty_suite(tmp_path, KILLER_FIRST)
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", path.name, "--results", "res", "--no-report",
                             "--launcher", "submitit-local"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == EXIT_RUNS_FAILED, (out[-2000:], err[-3000:])
    summary = read_summary(tmp_path / "res" / "fl")
    assert [r["status"] for r in summary if r["label"] == "ok"] == ["finished"] * 2
    (oom,) = [r for r in summary if r["label"] == "oom"]
    assert oom["status"] == "failed" and "killed by signal 9 (SIGKILL) — out of memory?" in oom["error"]
    assert "(2 attempts)" in oom["error"]
    assert "error: 1 run(s) failed" in err
    tried = attempts(env)
    assert len([r for r, _ in tried if r.startswith("oom_")]) == 2 and len(tried) == 4
    assert proc.pid not in {pid for _, pid in tried}, "`bench run` itself never trains a run"


def test_a_run_killed_once_finishes_on_its_second_attempt(tmp_path, env):
    path = faulty_suite(tmp_path, '[algorithms.flaky]\nalgorithm = "faulty"\ndie = "sigkill_once"\n')
    proc = bench(["run", path.name, "--results", "res", "--no-report", "--launcher", "sequential"], tmp_path)
    assert proc.returncode == EXIT_OK, proc.stderr[-3000:]
    assert [r["status"] for r in read_summary(tmp_path / "res" / "fl")] == ["finished"]
    assert len(attempts(env)) == 2


@pytest.mark.parametrize("launcher", [["--launcher", "sequential"], ["--launcher", "local", "--workers", "2"],
                                      ["--launcher", "auto"], ["--launcher", "submitit-local"]],
                         ids=["sequential", "local", "auto", "submitit-local"])
@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_a_suite_plugin_algorithm_runs_under_every_local_launcher(tmp_path, env, launcher):
    if launcher[1] == "submitit-local":
        pytest.importorskip("submitit")
    path = faulty_suite(tmp_path, '[algorithms.plug]\nalgorithm = "faulty"\nbeta = [0.05, 0.5]\n', seeds=(0, 1))
    proc = bench(["run", path.name, "--results", "res", "--no-report", *launcher], tmp_path)
    assert proc.returncode == EXIT_OK, (proc.stdout[-2000:], proc.stderr[-3000:])
    rows = read_summary(tmp_path / "res" / "fl")
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    assert len(attempts(env)) == 4


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def _start_slow_suite(tmp_path: Path, env: Path) -> subprocess.Popen:
    path = faulty_suite(tmp_path, '[algorithms.slow]\nalgorithm = "faulty"\nbeta = [0.05, 0.1, 0.2, 0.5]\n'
                                  "sleep = 30.0\n")
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", path.name, "--results", "res", "--no-report",
                             "--launcher", "local", "--workers", "2"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 90
    while len(attempts(env)) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(attempts(env)) == 2, "both workers started a run"
    return proc


def _descendants(root: int) -> set[int]:
    """Every process whose parent chain reaches `root` (read from /proc; children re-parented later are caught
    by their pids being remembered before the parent dies)."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().split(") ")[-1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    out, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - out
        out |= frontier
    return out


def _all_gone(pids, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_sigterm_stops_the_workers_like_ctrl_c(tmp_path, env):
    proc = _start_slow_suite(tmp_path, env)
    family = _descendants(proc.pid)
    assert len(family) >= 4, "2 workers, each with a run attempt"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_TERMINATED == 143
    assert err.strip().splitlines()[-1].startswith("error: terminated (SIGTERM)"), err[-2000:]
    assert "Traceback" not in err
    assert _all_gone(family, 20), "no worker or run attempt trains on after the suite was stopped"
    assert len(attempts(env)) == 2, "no run started after SIGTERM"


def test_workers_and_runs_die_with_a_killed_parent(tmp_path, env):
    proc = _start_slow_suite(tmp_path, env)
    family = _descendants(proc.pid)
    assert len(family) >= 4
    proc.kill()  # SIGKILL: no handler runs; the workers must notice on their own
    proc.communicate(timeout=30)
    assert _all_gone(family, 20), "workers and their runs end with their parent (PR_SET_PDEATHSIG)"
    time.sleep(1.0)
    assert len(attempts(env)) == 2, "no orphan started another run"


# ----------------------------------------------------------------------------------------- malformed metrics
@pytest.mark.parametrize("value, status, named", [
    ("nan32", "diverged", "win_rate"),       # numpy NaN: the divergence rule sees it
    ("inf64", "diverged", "win_rate"),
    ("string", "failed", "win_rate is 'abc'"),
    ("none", "failed", "win_rate is None"),
    ("list", "failed", "win_rate is [0.5]"),
    ("missing", "failed", "win_rate is None"),
    ("big", "failed", "win_rate is 7.5, outside [0, 1]"),
    ("huge_int", "failed", "win_rate is an integer of 401 digits"),
])
def test_malformed_metrics_are_failed_with_the_field_named(tmp_path, env, value, status, named):
    path = faulty_suite(tmp_path, f'[algorithms.bad]\nalgorithm = "faulty"\nmetric = "win_rate"\nvalue = "{value}"\n')
    outcome = run_suite(load_suite(path), results_root=tmp_path / "res")
    (spec,) = expand(load_suite(path))
    state = inspect_run(run_dir(outcome.results_dir, spec.run_id), spec.config_hash)
    assert state.status == status and not state.damaged, state.reason
    error = (outcome.failed or outcome.diverged)[0][1]
    assert named in error, error
    # recorded, not re-trained on every later run: a diverged run is done; a failed one is retried (once per run)
    again = run_suite(load_suite(path), results_root=tmp_path / "res")
    assert (again.skipped == [spec.run_id]) == (status == "diverged")


# ------------------------------------------------------------------------------------ plug-ins that exit
@pytest.mark.parametrize("body, shown", [("import sys\nsys.exit(0)\n", "called sys.exit(0)"),
                                         ("raise SystemExit('bye')\n", "called sys.exit('bye')")])
def test_a_plugin_that_exits_at_import_is_one_line_and_exit_2(tmp_path, body, shown):
    (tmp_path / "quitter.py").write_text(body, encoding="utf-8")
    (tmp_path / "q.toml").write_text('[suite]\nname = "q"\nplugins = ["quitter"]\n[budget]\nflops = 1e9\n'
                                     "[algorithms.fake]\n", encoding="utf-8")
    for command in (["validate", "q.toml"], ["run", "q.toml", "--results", "res", "--no-report"]):
        proc = bench(command, tmp_path)
        assert proc.returncode == EXIT_USER, (command, proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and shown in lines[0] and "[suite].plugins" in lines[0], lines


# ----------------------------------------------------------------------------- absurd numbers on disk
@pytest.mark.parametrize("value", [10 ** 400, 1e308])
@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_an_absurd_number_in_metrics_json_crashes_no_command(tmp_path, env, capsys, value):
    path = faulty_suite(tmp_path, '[algorithms.ok]\nalgorithm = "faulty"\nbeta = [0.05, 0.5]\n')
    assert main(["run", str(path), "--results", str(tmp_path / "res"), "--no-report", "--launcher",
                 "sequential"]) == EXIT_OK
    results = tmp_path / "res" / "fl"
    victim = sorted((results / "runs").iterdir())[0]
    metrics = json.loads((victim / "metrics.json").read_text())
    metrics["gold_reward"] = value
    (victim / "metrics.json").write_text(json.dumps(metrics))
    capsys.readouterr()
    assert main(["status", str(results)]) == EXIT_OK
    assert main(["report", str(results), "--out", str(tmp_path / "rep")]) == EXIT_OK
    code = main(["run", str(path), "--results", str(tmp_path / "res"), "--report-dir", str(tmp_path / "rep2"),
                 "--launcher", "sequential"])
    assert code == EXIT_OK, capsys.readouterr()
    err = capsys.readouterr().err
    assert "gold_reward is not a usable number" in err  # named in the damaged-runs line, and re-run
