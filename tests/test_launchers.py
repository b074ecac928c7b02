"""Launchers: the same suite gives the same results, summary and report whatever runs it (sequential loop, local
worker processes, submitit's local executor), for the torch-free `fake` algorithm and a tiny real suite (DPO and
PPO with its shared reward model); [launcher] validation; `auto`'s layout; thread pinning; utilisation; `bench
status` and `bench env`. The SLURM launcher on a real single-node cluster is tests/test_slurm.py."""

from __future__ import annotations

import csv
import json
import os
import textwrap
from pathlib import Path

import pytest

from bench.cli import main
from bench.launchers import make_launcher
from bench.launchers.config import time_minutes
from tiny_suite import tiny_suite_text
from bench.launchers.layout import choose
from bench.runner import RunPlan, run_suite
from bench.suite import expand, load_suite

# columns that must agree exactly whatever the launcher (timings and memory are measurements, not results)
NOT_RESULTS = {"wall_s", "train_s", "eval_s", "curve_s", "start_s", "peak_mem_mb"}

FAKE = """
[suite]
name = "fk"
seeds = [0, 1, 2]
[budget]
flops = 1e9
[algorithms.fake]
beta = [0.05, 0.5]
"""

TINY = tiny_suite_text(flops=2e9, heldout_prompts=64, eval={"best_of_n": None}, algorithms="""
[algorithms.dpo]
beta = 0.1
[algorithms.ipo]
beta = 0.5
[algorithms.ppo]
rm_epochs = 0.5
rm_batch_size = 8
""")


def write(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def summary_rows(results_dir: Path) -> dict[str, dict[str, str]]:
    with open(results_dir / "summary.csv", newline="", encoding="utf-8") as f:
        return {r["run_id"]: {k: v for k, v in r.items() if k not in NOT_RESULTS} for r in csv.DictReader(f)}


def assert_same_results(a: Path, b: Path) -> None:
    ra, rb = summary_rows(a), summary_rows(b)
    assert sorted(ra) == sorted(rb)
    for run_id in ra:
        diff = {k: (ra[run_id][k], rb[run_id].get(k)) for k in ra[run_id] if ra[run_id][k] != rb[run_id].get(k)}
        assert not diff, f"{run_id} differs between launchers: {diff}"
    assert any(r.get("win_rate") for r in ra.values()), "the summaries hold no numbers"


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setenv("BENCH_QUIET", "1")


def assert_run_lines(text: str, run_ids, where: str) -> None:
    """Each run's one start line and one finish line (bench.runlines), the start before the finish."""
    lines = text.splitlines()
    for run_id in run_ids:
        starts = [i for i, line in enumerate(lines) if line.startswith(f"▶ {run_id} fake seed ")]
        ends = [i for i, line in enumerate(lines) if line.startswith(f"✓ {run_id} win 0.") and line.endswith(" s")]
        assert len(starts) == 1 and len(ends) == 1 and starts[0] < ends[0], (where, run_id, text)


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_fake_suite_identical_across_launchers(tmp_path, capsys):
    """Same results whatever the launcher; and every launcher prints each run's start and finish line where the
    user sees them (stderr), and writes them to its workers' / tasks' logs, none of which is empty."""
    suite = write(tmp_path, FAKE)
    cache = str(tmp_path / "cache")
    roots, err = {}, {}
    for kind, extra in (("sequential", []), ("local", ["--workers", "2"]), ("submitit-local", [])):
        roots[kind] = tmp_path / kind
        code = main(["run", str(suite), "--results", str(roots[kind]), "--cache-dir", cache, "--launcher", kind,
                     "--no-report", *extra])
        assert code == 0, kind
        err[kind] = capsys.readouterr().err
    run_ids = [s.run_id for s in expand(load_suite(suite))]
    for kind in roots:
        assert_run_lines(err[kind], run_ids, kind)
    logs = sorted((roots["local"] / "fk" / ".launch" / "local").glob("worker-*.log"))
    assert len(logs) == 2 and all(p.read_text(encoding="utf-8").strip() for p in logs)
    ran = [r for r in run_ids if any(f"▶ {r} " in p.read_text(encoding="utf-8") for p in logs)]
    assert sorted(ran) == sorted(run_ids)  # each run's lines are in the log of the worker that trained it
    assert_run_lines("\n".join(p.read_text(encoding="utf-8") for p in logs), run_ids, "worker logs")
    for kind in ("local", "submitit-local"):
        assert_same_results(roots["sequential"] / "fk", roots[kind] / "fk")
    # two workers really shared the runs: each recorded some of them, none twice
    records = [json.loads(p.read_text()) for p in sorted((roots["local"] / "fk" / ".launch" / "local").glob(
        "worker-*.json"))]
    assert len(records) == 2
    trained = [r for rec in records for r in rec["finished"]]
    assert sorted(trained) == sorted(summary_rows(roots["sequential"] / "fk")) and len(set(trained)) == 6
    # submitit's local executor kept each task's stdout/stderr under the run folder
    for d in (roots["submitit-local"] / "fk" / "runs").iterdir():
        logs = list((d / "logs").glob("*.out"))
        assert len(logs) == 1, d
        assert_run_lines(logs[0].read_text(encoding="utf-8"), [d.name], "submitit task log")
        assert f"(job {logs[0].stem} on " in logs[0].read_text(encoding="utf-8")
    stages_logs = [p for p in (roots["submitit-local"] / "fk" / ".launch").rglob("*_log.out")
                   if "shared stages" in p.read_text(encoding="utf-8")]
    assert stages_logs and "bench: stages ready" in stages_logs[0].read_text(encoding="utf-8")


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_tiny_real_suite_identical_sequential_local_submitit(tmp_path, quiet, capsys):
    """DPO and PPO (reward model as a shared stage) give the same numbers in one process with 1 thread, as two
    workers x 1 thread, and through submitit's local executor; the local workers' reward model is built once,
    before they start."""
    suite = write(tmp_path, TINY)
    cache = str(tmp_path / "cache")
    roots = {k: tmp_path / k for k in ("sequential", "local", "submitit-local")}
    for kind, root in roots.items():
        extra = ["--workers", "2"] if kind == "local" else []
        assert main(["run", str(suite), "--results", str(root), "--cache-dir", cache, "--launcher", kind,
                     "--no-report", *extra]) == 0, kind
    out = capsys.readouterr().out
    assert "local: 2 workers x 1 thread each" in out and "utilisation" in out
    assert_same_results(roots["sequential"] / "tiny", roots["local"] / "tiny")
    assert_same_results(roots["sequential"] / "tiny", roots["submitit-local"] / "tiny")
    for root in roots.values():  # every launcher ran every run with threads_per_run = 1 thread
        for d in (root / "tiny" / "runs").iterdir():
            assert json.loads((d / "config.json").read_text())["provenance"]["device"]["torch_threads"] == 1
    util = json.loads((roots["local"] / "tiny" / "utilisation.json").read_text())
    assert util["runs_trained"] == 3 and util["flops"] > 0 and 0 < util["utilisation"] < 1
    # the reward model's training is charged to each PPO run but counted once (if at all) as computed
    ppo = [json.loads((d / "metrics.json").read_text()) for d in (roots["local"] / "tiny" / "runs").glob("ppo_*")]
    charged = sum(m["compute"]["flops_by_component"].get("reward_model_training", 0) for m in ppo)
    assert charged > 0 and util["flops_shared_stages"] < charged
    # the report is the same page whatever the launcher (its header states the utilisation)
    from bench.reporting import write_report

    page = write_report(roots["local"] / "tiny", tmp_path / "report")
    assert "utilisation" in Path(page).read_text(encoding="utf-8").lower()


def test_launcher_section_is_validated_and_not_part_of_run_identity(tmp_path):
    plain = load_suite(write(tmp_path, FAKE))
    with_launcher = load_suite(write(tmp_path, FAKE + textwrap.dedent("""
        [launcher]
        kind = "local"
        workers = 2
        [launcher.slurm]
        partition = "gpu"
        time = "1-00:00:00"
        sbatch = { constraint = "a100" }
        """), "b.toml"))
    assert with_launcher.launcher.kind == "local" and with_launcher.launcher.slurm.partition == "gpu"
    assert [s.run_id for s in expand(plain)] == [s.run_id for s in expand(with_launcher)]
    assert plain.raw_hash == with_launcher.raw_hash

    from bench.errors import UserError

    bad = write(tmp_path, FAKE + "[launcher]\nworkrs = 2\nkind = \"cluster\"\n[launcher.slurm]\ntime = \"soon\"\n"
                                 "sbatch = { array = \"1-3\" }\npartiton = \"x\"\n", "bad.toml")
    with pytest.raises(UserError) as err:
        load_suite(bad)
    text = "\n".join(err.value.problems)
    assert "[launcher].workrs: unknown key; did you mean 'workers'?" in text
    assert "[launcher].kind: must be one of" in text
    assert "[launcher.slurm].partiton: unknown key; did you mean 'partition'?" in text
    # cross-field checks run once the table's keys are valid
    bad2 = write(tmp_path, FAKE + "[launcher.slurm]\ntime = \"soon\"\n", "bad2.toml")
    with pytest.raises(UserError) as err:
        load_suite(bad2)
    assert "[launcher.slurm].time: 'soon' is not a SLURM time" in err.value.problems[0]
    bad3 = write(tmp_path, FAKE + "[launcher.slurm]\nsbatch = { array = \"1-3\" }\n", "bad3.toml")
    with pytest.raises(UserError) as err:
        load_suite(bad3)
    assert "'array' is set by the launcher" in err.value.problems[0]


def test_cli_errors_are_one_line(tmp_path, capsys):
    suite = write(tmp_path, FAKE)
    assert main(["run", str(suite), "--workers", "0", "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--workers" in err[0] and "Traceback" not in err[0]
    assert main(["status", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no suite.json" in err[0]


def test_slurm_times():
    assert time_minutes("04:00:00") == 240 and time_minutes("90") == 90 and time_minutes("1-00:00:00") == 1440
    assert time_minutes("1-12") == 36 * 60 and time_minutes("10:30") == 11 and time_minutes("soon") is None


def test_auto_layout(tmp_path, monkeypatch):
    suite = load_suite(write(tmp_path, FAKE))
    specs = expand(suite)
    plan = RunPlan(suite, specs, tmp_path, tmp_path)
    assert choose(plan).workers == 1  # torch-free runs: one process
    assert choose(plan, workers=3).workers == 3  # asked for: honoured
    assert choose(RunPlan(suite, specs[:1], tmp_path, tmp_path), workers=4).workers == 1  # one run to do
    tiny = load_suite(write(tmp_path, TINY, "tiny.toml"))
    tplan = RunPlan(tiny, expand(tiny), tmp_path, tmp_path, device="cpu", threads=1)
    monkeypatch.setattr("bench.machine.cpu_cores", lambda: 2)
    assert choose(tplan, device="cpu").workers == 2  # measured faster on 2 cores: 2 x 1 thread
    monkeypatch.setattr("bench.machine.cpu_cores", lambda: 16)
    assert choose(tplan, device="cpu").workers == 3  # never more workers than runs (3 in TINY)
    tplan2 = RunPlan(tiny, expand(tiny), tmp_path, tmp_path, device="cpu", threads=8)
    assert choose(tplan2, device="cpu").workers == 2  # 16 cores / 8 threads per run
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert choose(tplan, device="cpu").workers == 1  # accelerate/torchrun: ranks share each run


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_in_process_is_the_library_default_and_auto_the_cli_default(tmp_path, quiet, capsys):
    suite = load_suite(write(tmp_path, FAKE))
    outcome = run_suite(suite, results_root=tmp_path / "r", cache_dir=tmp_path / "c")
    assert outcome.launcher.startswith("in-process") and len(outcome.finished) == 6
    assert make_launcher(suite.launcher).name == "local"  # auto resolves to a local layout
    assert main(["run", str(write(tmp_path, FAKE, "x.toml")), "--results", str(tmp_path / "r2"), "--no-report"]) == 0
    assert "6 runs trained" in capsys.readouterr().out


def test_status_and_env(tmp_path, quiet, capsys):
    suite = load_suite(write(tmp_path, FAKE.replace("beta = [0.05, 0.5]", "beta = [0.05, 0.5]\nfail = false")))
    run_suite(suite, results_root=tmp_path / "r", cache_dir=tmp_path / "c")
    from bench.results import run_dir

    specs = expand(suite)
    killed = run_dir(tmp_path / "r" / "fk", specs[0].run_id)
    (killed / "metrics.json").unlink()  # as a job killed mid-run leaves it: config.json, no metrics.json
    assert main(["status", str(tmp_path / "r" / "fk")]) == 0
    out = capsys.readouterr().out
    assert "5 finished, 1 killed of 6 runs" in out.splitlines()[0]
    assert f"{specs[0].run_id}" in out and "killed" in out
    assert main(["env", "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    for word in ("python:", "torch:", "trl:", "transformers:", "datasets:", "lm-eval:", "submitit:", "cuda devices:",
                 "cache:", "fp32 matmul peak"):
        assert word in out, word
    peak = [line for line in out.splitlines() if line.startswith("fp32 matmul peak, cpu")][0]
    assert float(peak.split(":")[1].split()[0]) > 0


def test_matmul_peak_cache_only_rises(tmp_path):
    """A peak cached on a busy machine is replaced by a higher measurement; a higher cached peak is kept."""
    import json
    import platform

    from bench.machine import matmul_peak

    path = tmp_path / "machine" / f"matmul-peak-{platform.node()}-cpu-1t.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"flops_per_s": 1.0, "device": "cpu", "threads": 1}), encoding="utf-8")
    low = matmul_peak(tmp_path, "cpu", 1)
    assert low["flops_per_s"] > 1e6 and json.loads(path.read_text())["flops_per_s"] == low["flops_per_s"]
    path.write_text(json.dumps({"flops_per_s": 1e18, "device": "cpu", "threads": 1}), encoding="utf-8")
    assert matmul_peak(tmp_path, "cpu", 1)["flops_per_s"] == 1e18
