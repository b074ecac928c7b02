"""The command line's small manners (issue 15, item 6), each checked as a user meets it: `--version`, `validate`
with several files, no traceback on a closed pipe, progress that does not flood a log, `compare` columns named A
and B, `check` printing only its problems, the `algorithm = "dpo"` hint, and `--set budget.seconds` replacing
`flops`. Everything runs the torch-free `fake` algorithm: seconds."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench.cli import main
from bench.progress import MILESTONES, LineProgress, TqdmProgress, for_stream
from bench.suite import load_suite
from test_runner import write_suite

ROOT = Path(__file__).resolve().parent.parent
SWEEP = """
[algorithms.fake]
beta = [0.05, 0.5]
noise = 0.02
"""


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "BENCH_FSYNC": "0", **extra}
    env.pop("BENCH_QUIET", None)
    return env


def _bench(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=_env(), timeout=120, **kw)


# ------------------------------------------------------------------------------------------------ --version

def test_version_names_the_package_and_its_stack():
    proc = _bench("--version")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert proc.returncode == 0 and proc.stderr == ""
    line = proc.stdout.strip()
    assert line.startswith(f"bench (daa-bench) {version}") and "trl " in line and "torch " in line


# ------------------------------------------------------------------------------------------------ validate

def test_validate_takes_several_files_and_reports_each(tmp_path, capsys):
    good = write_suite(tmp_path, SWEEP, name="good", seeds=(0,))
    other = write_suite(tmp_path, SWEEP, name="other", seeds=(0, 1))
    bad = write_suite(tmp_path, "[algorithms.fake]\nbetta = 1\n", name="bad")
    assert main(["validate", str(good), str(bad), str(other), str(tmp_path / "nope.toml")]) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith(f"{good}: ok") and "2 runs" in out.splitlines()[0]
    assert out.splitlines()[1].startswith(f"{other}: ok") and "4 runs" in out.splitlines()[1]
    err_lines = err.strip().splitlines()
    assert len(err_lines) == 2 and "Traceback" not in err
    assert f"{bad}: [algorithms.fake].betta" in err_lines[0] and "nope.toml: no such suite file" in err_lines[1]
    assert main(["validate", str(good), str(other)]) == 0


def test_validate_every_shipped_suite():
    suites = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "suites").glob("*.toml"))
    proc = _bench("validate", *suites)
    assert proc.returncode == 0, proc.stderr
    assert [line.split(":")[0] for line in proc.stdout.splitlines()] == suites


# ------------------------------------------------------------------------------------------------ closed pipe

@pytest.mark.parametrize("args", [["list"], ["--help"], ["validate", *["suites/controlled-ci.toml"] * 400]])
def test_a_closed_pipe_is_not_an_error(args):
    """`bench list | head -1`: the reader leaves early; bench exits 0 without a traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT, env=_env())
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and first
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


# ------------------------------------------------------------------------------------------------ progress

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_bars_on_a_terminal_and_lines_elsewhere():
    assert isinstance(for_stream(_Terminal()), TqdmProgress)
    assert isinstance(for_stream(io.StringIO()), LineProgress)


def test_line_progress_writes_only_milestones():
    log = io.StringIO()
    progress = LineProgress(log, clock=lambda: 0.0)
    for stage in ("train a", "train b"):
        for done in range(0, 1001):
            progress(stage, done, 1000)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 * len(MILESTONES)
    assert lines[:5] == [f"train a: {n}/1000 ({n // 10}%, 0 s)" for n in (0, 250, 500, 750, 1000)]
    assert "\r" not in log.getvalue() and "\x1b" not in log.getvalue()
    progress("jump", 0, 10)
    progress("jump", 10, 10)  # several milestones at once: one line
    assert log.getvalue().splitlines()[-2:] == ["jump: 0/10 (0%, 0 s)", "jump: 10/10 (100%, 0 s)"]


def test_terminal_bars_are_throttled():
    """2,000 updates within a fraction of a second redraw the bar a handful of times, not 2,000."""
    term = _Terminal()
    progress = TqdmProgress(term, mininterval=60)
    for done in range(2001):
        progress("runs", done, 2000)
    assert term.getvalue().count("\r") < 10
    assert "2000/2000" in term.getvalue()


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_run_log_outside_a_terminal_is_small(tmp_path):
    """A `bench run` whose stderr is a file writes milestone lines: no carriage returns, no cursor escapes."""
    path = write_suite(tmp_path, SWEEP, seeds=(0, 1, 2))
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", str(path), "--results",
                               str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-report"],
                              stdout=log, stderr=log, cwd=ROOT, env=_env(), timeout=300)
    text = (tmp_path / "log.txt").read_text()
    assert proc.returncode == 0, text
    assert "\r" not in text and "\x1b" not in text
    assert "runs: 6/6 (100%" in text
    assert len(text.encode()) < 200 * 6 * len(MILESTONES), text  # a few lines per run


# ------------------------------------------------------------------------------------------------ compare/check

def _results(tmp_path: Path, name: str, seeds=(0, 1, 2, 3)) -> Path:
    path = write_suite(tmp_path, SWEEP, name="papers", seeds=seeds)
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--no-report",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    out = tmp_path / name
    if not out.exists():
        shutil.copytree(tmp_path / "r" / "papers", out)
    return out


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_compare_names_its_columns_a_and_b(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_QUIET", "1")
    a, b = _results(tmp_path, "trl-1.12"), _results(tmp_path, "trl-1.13")
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("setting"))
    assert "A: trl-1.12" in head and "B: trl-1.13" in head
    assert "baseline" not in head and "current" not in head
    assert out.startswith(f"A = {a}\nB = {b}\n")


def _shift(results: Path, metric: str, by: float) -> None:
    for metrics in (results / "runs").glob("fake_beta0.5_*/metrics.json"):
        data = json.loads(metrics.read_text())
        data[metric] += by
        metrics.write_text(json.dumps(data))


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_check_prints_only_problems_unless_verbose(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_QUIET", "1")
    results = _results(tmp_path, "papers-now")
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(results), "-o", str(baseline)]) == 0
    capsys.readouterr()

    assert main(["check", str(results), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS") and "setting" not in out and "`bench check -v`" in out
    md_rows = [line for line in (results / "check.md").read_text().splitlines() if line.startswith("| fake")]
    assert len(md_rows) > 10  # check.md keeps every row

    _shift(results, "win_rate", -0.2)
    assert main(["check", str(results), "--baseline", str(baseline)]) == 1
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fake")]
    assert len(rows) == 1 and "win_rate" in rows[0] and "REGRESSION" in rows[0]

    assert main(["check", str(results), "--baseline", str(baseline), "-v"]) == 1
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("fake")]
    assert len(rows) == len(md_rows) and any(line.rstrip().endswith(" ok") for line in rows)


# ------------------------------------------------------------------------------------------------ suite hints

def test_a_label_that_is_not_an_algorithm_gets_the_algorithm_hint(tmp_path, capsys):
    from bench.algorithms.registry import all_algorithms

    if "dpo" not in all_algorithms():
        pytest.skip("the dpo adapter is not registered")
    path = write_suite(tmp_path, "[algorithms.mydpo]\nbeta = 0.1\n", seeds=(0,))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "[algorithms.mydpo]" in err[0]
    assert 'add algorithm = "dpo"' in err[0] and "did you mean" not in err[0]
    # a typo of a name is still a typo
    path = write_suite(tmp_path, "[algorithms.dpoo]\nbeta = 0.1\n", seeds=(0,))
    assert main(["validate", str(path)]) == 2
    assert "did you mean 'dpo'?" in capsys.readouterr().err


def test_set_budget_seconds_replaces_flops(tmp_path):
    path = write_suite(tmp_path, SWEEP, seeds=(0,))  # the file sets budget.flops = 1e9
    suite = load_suite(path, ["budget.seconds=60"])
    assert (suite.budget.kind, suite.budget.amount, suite.budget.flops) == ("seconds", 60.0, None)
    back = load_suite(path, ["budget.seconds=60", "budget.flops=2e9"])
    assert (back.budget.kind, back.budget.amount, back.budget.seconds) == ("flops", 2e9, None)
    assert load_suite(path).budget.kind == "flops"
