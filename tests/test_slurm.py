"""The SLURM launcher on a real SLURM: Debian's slurm-wlm (slurmctld + slurmd + munge) as a single-node cluster on
localhost, started by .ci/slurm-single-node.sh (as root; .ci/run installs the packages). Jobs are submitted through
submitit and sbatch for real: a stages job, then a job array that depends on it (afterok).

- a fake-algorithm suite and a tiny real DPO run finish with the same summary as the sequential launcher;
- a re-run while the array is queued submits nothing; `scancel` of one running array task leaves that run without
  a result (no half-written run), `bench status` names it killed with its job id and logs, and the next
  `bench run` re-submits only it: the suite completes with nothing lost and nothing trained twice.
Where the cluster cannot start (not root, packages missing) the tests skip and say why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from bench.cli import main
from tests.test_launchers import TINY, assert_same_results, summary_rows, write

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / ".ci" / "slurm-single-node.sh"
LAUNCHER = """
[launcher.slurm]
cpus_per_task = 1
mem_gb = 1
time = "00:10:00"
stages_time = "00:10:00"
"""


@pytest.fixture(scope="module")
def slurm():
    if shutil.which("sbatch") is None or shutil.which("slurmctld") is None:
        pytest.skip("slurm-wlm is not installed (apt-get install slurm-wlm munge; .ci/run does it)")
    if os.geteuid() != 0:
        pytest.skip("the single-node SLURM cluster is started as root (.ci/run runs as root)")
    pytest.importorskip("submitit")
    out = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True, timeout=120)
    conf = next((line.split("=", 1)[1] for line in out.stdout.splitlines() if line.startswith("SLURM_CONF=")), None)
    if out.returncode != 0 or conf is None:
        pytest.skip(f"the single-node SLURM cluster did not start: {(out.stderr or out.stdout).strip()[-300:]}")
    before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf
    yield conf
    if before is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = before


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setenv("BENCH_QUIET", "1")


def fake_suite(tmp_path: Path, sleep: float = 0.0) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return write(tmp_path, f"""
        [suite]
        name = "fk"
        seeds = [0, 1]
        [budget]
        flops = 1e9
        [algorithms.fake]
        beta = [0.05, 0.5]
        sleep = {sleep}
        """ + LAUNCHER)


def squeue(*ids: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i %T"], capture_output=True, text=True)
    return [line for line in out.stdout.splitlines() if line.strip()]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def jobs(results: Path) -> dict:
    return json.loads((results / ".launch" / "slurm" / "jobs.json").read_text())


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_slurm_summary_equals_sequential_fake_and_tiny_dpo(tmp_path, slurm, quiet, capsys, monkeypatch):
    suite = fake_suite(tmp_path)
    cache = str(tmp_path / "cache")
    assert main(["run", str(suite), "--results", str(tmp_path / "seq"), "--cache-dir", cache,
                 "--launcher", "sequential", "--no-report"]) == 0
    capsys.readouterr()
    monkeypatch.delenv("BENCH_QUIET")  # the parent's polling output: each task's lines as its result arrives
    assert main(["run", str(suite), "--results", str(tmp_path / "slurm"), "--cache-dir", cache,
                 "--launcher", "slurm", "--wait", "--no-report"]) == 0
    monkeypatch.setenv("BENCH_QUIET", "1")
    captured = capsys.readouterr()
    out = captured.out
    assert "submitted to SLURM: stages job" in out and "--dependency=afterok:" in out
    assert_same_results(tmp_path / "seq" / "fk", tmp_path / "slurm" / "fk")
    record = jobs(tmp_path / "slurm" / "fk")
    assert len(record["runs"]) == 4 and all("_" in r["job_id"] for r in record["runs"].values())  # array tasks
    for run_id, r in record["runs"].items():  # each task's stdout/stderr under its run folder
        out_log = tmp_path / "slurm" / "fk" / "runs" / run_id / "logs" / f"{r['job_id']}.out"
        text = out_log.read_text()
        assert f"▶ {run_id} fake seed " in text and f"(job {r['job_id']} on " in text, text
        assert f"✓ {run_id} win 0." in text, text  # the task's log holds its run's finish line (bench.runlines)
        parent = captured.err.splitlines()
        assert any(line.startswith(f"▶ {run_id} fake seed ") for line in parent), captured.err
        assert any(line.startswith(f"✓ {run_id} win 0.") for line in parent), captured.err

    tiny = write(tmp_path, TINY + LAUNCHER, "tiny.toml")
    for kind in ("sequential", "slurm"):
        assert main(["run", str(tiny), "--only", "dpo", "--results", str(tmp_path / kind), "--cache-dir", cache,
                     "--launcher", kind, "--wait", "--no-report"]) == 0, kind
    assert_same_results(tmp_path / "sequential" / "tiny", tmp_path / "slurm" / "tiny")


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_scancel_of_one_task_then_rerun_completes_the_suite(tmp_path, slurm, quiet, capsys, monkeypatch):
    train_log = tmp_path / "trained.log"
    monkeypatch.setenv("BENCH_FAKE_TRAIN_LOG", str(train_log))  # exported to the jobs by sbatch
    suite = fake_suite(tmp_path, sleep=8.0)
    results = tmp_path / "results" / "fk"
    args = ["run", str(suite), "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
            "--launcher", "slurm", "--no-report"]
    assert main(args) == 0  # returns after submitting
    assert "submitted to SLURM" in capsys.readouterr().out
    first = jobs(results)
    assert len(first["submissions"]) == 1 and len(first["runs"]) == 4

    assert main(args) == 0  # everything is queued or running: nothing is submitted twice
    assert "4 run(s) already queued or running" in capsys.readouterr().out
    assert len(jobs(results)["submissions"]) == 1

    victim = sorted(first["runs"])[0]
    job_id = first["runs"][victim]["job_id"]
    wait_until(lambda: (results / "runs" / victim / "config.json").exists(), 120, f"{victim} to start")
    subprocess.run(["scancel", job_id], check=True)
    array = first["submissions"][0]["array_job"]
    wait_until(lambda: not squeue(array), 180, "the job array to end")

    assert not (results / "runs" / victim / "metrics.json").exists()  # no half-written run
    assert main(["status", str(results)]) == 0
    status = capsys.readouterr().out
    assert "3 finished, 1 killed of 4 runs" in status.splitlines()[0]
    line = next(x for x in status.splitlines() if x.startswith(victim))
    assert "killed" in line and job_id in line and "logs" in line

    assert main([*args, "--wait"]) == 0  # re-submits only the killed run, waits, completes the summary
    after = jobs(results)
    assert len(after["submissions"]) == 2 and after["submissions"][1]["runs"] == [victim]
    trained = [line.split()[0] for line in train_log.read_text().splitlines()]
    assert sorted(trained) == sorted([*first["runs"], victim]), "only the cancelled run trained again"
    rows = summary_rows(results)
    assert sorted(rows) == sorted(first["runs"]) and {r["status"] for r in rows.values()} == {"finished"}

    # the same numbers as a sequential run of the suite that nothing interrupted (`sleep` changes the run ids only)
    assert main(["run", str(fake_suite(tmp_path / "seq")), "--results", str(tmp_path / "seq"), "--launcher",
                 "sequential", "--no-report"]) == 0
    by_setting = lambda rows: {(r["beta"], r["seed"]): {k: v for k, v in r.items() if k != "run_id"}  # noqa: E731
                               for r in rows.values()}
    assert by_setting(summary_rows(results)) == by_setting(summary_rows(tmp_path / "seq" / "fk"))
    assert main(args) == 0 and "every run is finished" in capsys.readouterr().out


def test_sbatch_refusal_is_one_line(tmp_path, slurm, capsys):
    suite = fake_suite(tmp_path)
    code = main(["run", str(suite), "--results", str(tmp_path / "r"), "--launcher", "slurm", "--no-report",
                 "--set", "launcher.slurm.partition=no-such-partition"])
    assert code == 2
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(ours) == 1 and "[launcher.slurm]" in ours[0] and "invalid partition" in ours[0].lower()


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_a_suite_plugin_algorithm_runs_on_slurm(tmp_path, slurm, quiet, capsys):
    """Issue 23: the stages job and every array task import the suite's [suite].plugins before unpickling the
    plan (it died with "unknown algorithm", leaving the array PENDING (DependencyNeverSatisfied) forever)."""
    import shutil as sh

    sh.copy(Path(__file__).parent / "fixtures" / "faulty" / "faulty_algorithms.py", tmp_path / "faulty_algorithms.py")
    suite = write(tmp_path, """
        [suite]
        name = "plug"
        seeds = [0, 1]
        plugins = ["faulty_algorithms"]
        [budget]
        flops = 1e9
        [algorithms.plug]
        algorithm = "faulty"
        beta = [0.05, 0.5]
        """ + LAUNCHER, "plug.toml")
    assert main(["run", str(suite), "--results", str(tmp_path / "res"), "--cache-dir", str(tmp_path / "cache"),
                 "--launcher", "slurm", "--wait", "--no-report"]) == 0, capsys.readouterr()
    rows = json.loads((tmp_path / "res" / "plug" / "suite.json").read_text())["run_ids"]
    import csv

    with open(tmp_path / "res" / "plug" / "summary.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert sorted(r["run_id"] for r in summary) == sorted(rows) and {r["status"] for r in summary} == {"finished"}
