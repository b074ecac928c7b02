"""Faults injected on purpose (issue 12): corrupt run files, damaged caches, concurrent runs, kills at write points,
divergence, full disks, bad suites, suites that would run code. Torch-free (the `fake` algorithm, fake stage
builds); every test here takes well under a second except the process-level ones (a few seconds together)."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from bench import cache as stage_cache
from bench.cli import EXIT_CRASH, EXIT_OK, EXIT_RUNS_FAILED, EXIT_USER, main
from bench.errors import UserError
from bench.io import clean_stale_temps, read_json, write_json_atomic
from bench.results import inspect_run, is_finished, load_runs, run_dir
from bench.runner import run_suite
from bench.suite import expand, load_suite
from test_runner import read_summary as summary, write_suite as _write_suite

REPO = Path(__file__).resolve().parents[1]


def write_suite(tmp_path: Path, body: str = "", name: str = "fk", seeds=(0, 1, 2), algorithms: str | None = None
                ) -> Path:
    """test_runner's suite writer, with a fake-algorithm sweep as the default algorithms."""
    algorithms = algorithms if algorithms is not None else "[algorithms.fake]\nbeta = [0.05, 0.5]\n"
    return _write_suite(tmp_path, textwrap.dedent(body) + "\n" + algorithms, name, seeds)


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_QUIET", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    log = tmp_path / "trained.log"
    monkeypatch.setenv("BENCH_FAKE_TRAIN_LOG", str(log))
    return log


def cli_run(path: Path, tmp_path: Path, *extra: str) -> int:
    return main(["run", str(path), "--results", str(tmp_path / "results"), "--report-dir", str(tmp_path / "report"),
                 *extra])


def trained(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.is_file() else []


# ------------------------------------------------------------------------------------------ corrupt run files
CORRUPTIONS = {
    "metrics_truncated": ("metrics.json", lambda t: t[: len(t) // 2]),
    "metrics_list": ("metrics.json", lambda t: "[]"),
    "metrics_status_only": ("metrics.json", lambda t: json.dumps({"status": "finished"})),
    "metrics_non_numeric": ("metrics.json", lambda t: json.dumps({**json.loads(t), "win_rate": "abc"})),
    "metrics_other_run": ("metrics.json", lambda t: json.dumps({**json.loads(t), "run_id": "someone_else"})),
    "config_truncated": ("config.json", lambda t: t[:40]),
    "config_empty_object": ("config.json", lambda t: "{}"),
    "config_deleted": ("config.json", None),
    "config_other_hash": ("config.json", lambda t: json.dumps({**json.loads(t), "config_hash": "0" * 64})),
    "curves_binary": ("curves.csv", b"\x00\xff\xfe binary \x00 junk"),
    "samples_not_utf8": ("samples.jsonl", b'{"a": "\xff\xfe"}\n'),
    "samples_truncated": ("samples.jsonl", b'{"prompt": "a"}\n{"prompt": "the fi'),
}


def corrupt(d: Path, how: str) -> None:
    name, change = CORRUPTIONS[how]
    p = d / name
    if change is None:
        p.unlink()
    elif isinstance(change, bytes):
        p.write_bytes(change)
    else:
        p.write_text(change(p.read_text(encoding="utf-8")), encoding="utf-8")


@pytest.mark.parametrize("how", sorted(CORRUPTIONS))
def test_corrupt_run_file_is_rerun_never_a_crash(tmp_path, env, capsys, how):
    path = write_suite(tmp_path, seeds=(0, 1))
    run_suite(load_suite(path), results_root=tmp_path / "results")
    results = tmp_path / "results" / "fk"
    specs = expand(load_suite(path))
    victims = [specs[0].run_id, specs[1].run_id]  # two damaged folders at once
    for v in victims:
        corrupt(run_dir(results, v), how)
        assert not is_finished(run_dir(results, v), next(s.config_hash for s in specs if s.run_id == v))
    # every run is listed (the damaged ones as incomplete, with the reason), nothing raises
    runs = {r["dir"].name: r for r in load_runs(results)}
    assert len(runs) == len(specs)
    for v in victims:
        assert runs[v]["metrics"]["status"] == "incomplete" and "to be re-run" in runs[v]["metrics"]["error"]
        assert runs[v]["config"]["run_id"] == v
    capsys.readouterr()
    # the next run re-trains exactly the damaged ones, with one warning line naming them, and ends complete
    env.unlink()
    outcome = run_suite(load_suite(path), results_root=tmp_path / "results")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and all(v in warnings[0] for v in victims)
    assert sorted(trained(env)) == sorted(victims) == sorted(outcome.finished)
    rows = summary(results)
    assert sorted(r["run_id"] for r in rows) == sorted(s.run_id for s in specs)
    assert {r["status"] for r in rows} == {"finished"}


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_report_and_run_survive_every_corruption_at_once(tmp_path, env, capsys):
    path = write_suite(tmp_path, seeds=tuple(range(6)))
    assert cli_run(path, tmp_path, "--no-report") == EXIT_OK
    results = tmp_path / "results" / "fk"
    specs = expand(load_suite(path))
    victims = []
    for spec, how in zip(specs, sorted(CORRUPTIONS)):
        corrupt(run_dir(results, spec.run_id), how)
        victims.append(spec.run_id)
    capsys.readouterr()
    # the report lists the damaged runs as incomplete, with one warning line naming them
    assert main(["report", str(results), "--out", str(tmp_path / "rep")]) == EXIT_OK
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and all(v in warnings[0] for v in victims), err
    assert "Traceback" not in err
    html = (tmp_path / "rep" / "index.html").read_text(encoding="utf-8")
    assert all(v in html for v in victims) and "to be re-run" in html
    env.unlink()
    assert cli_run(path, tmp_path, "--no-report") == EXIT_OK  # one re-run recovers all
    assert sorted(trained(env)) == sorted(victims)
    assert {r["status"] for r in summary(results)} == {"finished"}


def test_finished_needs_numbers_so_seed_counts_match(tmp_path, env):
    path = write_suite(tmp_path)
    run_suite(load_suite(path), results_root=tmp_path / "results")
    results = tmp_path / "results" / "fk"
    d = run_dir(results, expand(load_suite(path))[0].run_id)
    m = read_json(d / "metrics.json")
    m["win_rate"] = None
    (d / "metrics.json").write_text(json.dumps(m))
    state = inspect_run(d)
    assert state.status == "incomplete" and "win_rate" in state.reason
    run_suite(load_suite(path), results_root=tmp_path / "results")
    assert all(r["status"] == "finished" and r["win_rate"] for r in summary(results))


# ------------------------------------------------------------------------------------------------ stage caches
def fake_stage(counter: Path, sleep: float = 0.0):
    def build(tmp: Path) -> dict:
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(sleep)
        (tmp / "model").mkdir()
        (tmp / "model" / "weights.bin").write_bytes(os.urandom(2048))
        (tmp / "eval_prompts.json").write_text('["a", "b"]')
        return {"kind": "fake"}
    return build


@pytest.mark.parametrize("damage", ["weights_deleted", "weights_truncated", "weights_changed", "marker_truncated",
                                    "marker_no_manifest", "prompts_deleted"])
def test_damaged_stage_is_rebuilt_with_one_line(tmp_path, capsys, damage):
    root, counter = tmp_path / "worlds" / "w-1", tmp_path / "builds"
    record, hit = stage_cache.load_or_build(root, fake_stage(counter), what="world")
    assert not hit and record["kind"] == "fake" and "model/weights.bin" in record["manifest"]
    assert stage_cache.load_or_build(root, fake_stage(counter))[1] is True
    weights = root / "model" / "weights.bin"
    if damage == "weights_deleted":
        weights.unlink()
    elif damage == "weights_truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "weights_changed":
        data = bytearray(weights.read_bytes())
        data[0] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "marker_truncated":
        (root / "world.json").write_text('{"kind": "fa')
    elif damage == "marker_no_manifest":
        (root / "world.json").write_text('{"kind": "fake"}')
    else:
        (root / "eval_prompts.json").unlink()
    capsys.readouterr()
    record, hit = stage_cache.load_or_build(root, fake_stage(counter), what="world")
    err = capsys.readouterr().err
    assert not hit and len(counter.read_text().splitlines()) == 2
    assert err.count("\n") == 1 and err.startswith("warning: cached world at") and "rebuilding" in err
    assert stage_cache.verify(root)[0] is not None
    assert not list(root.parent.glob("*.building-*")) and not list(root.parent.glob("*.damaged-*"))


def test_controlled_world_damage_is_rebuilt(tmp_path, monkeypatch, capsys):
    """build_world verifies every required folder (fake contents: the real build is tested in test_world)."""
    from bench.worlds.controlled import build as cb
    from bench.worlds.controlled.config import ControlledWorldConfig

    calls = []

    def fake_build_into(cfg, root, progress):
        calls.append(root)
        for sub in ("tokenizer", "base", "weak", "pairs_train", "pairs_heldout"):
            (root / sub).mkdir()
            (root / sub / "data.bin").write_bytes(sub.encode() * 10)
        (root / "eval_prompts.json").write_text('["the film was"]')
        return {"kind": "controlled"}

    monkeypatch.setattr(cb, "_build_into", fake_build_into)
    cfg = ControlledWorldConfig()
    w = cb.build_world(cfg, tmp_path)
    assert w.info["cache_hit"] is False and "manifest" not in w.info
    assert cb.build_world(cfg, tmp_path).info["cache_hit"] is True
    (w.root / "base" / "data.bin").unlink()  # deleted model weights
    capsys.readouterr()
    w2 = cb.build_world(cfg, tmp_path)
    assert w2.info["cache_hit"] is False and len(calls) == 2
    assert "base/data.bin missing" in capsys.readouterr().err
    assert cb.build_world(cfg, tmp_path).info["cache_hit"] is True


def test_limits_cache_truncated_is_rebuilt(tmp_path, capsys):
    path = tmp_path / "limits-abc.json"
    n = []
    build = lambda: n.append(1) or {"best_of_n": [1, 2]}  # noqa: E731
    assert stage_cache.load_json_cache(path, build, what="limits") == {"best_of_n": [1, 2]}
    assert stage_cache.load_json_cache(path, build) == {"best_of_n": [1, 2]} and len(n) == 1
    path.write_text('{"best_of')
    assert stage_cache.load_json_cache(path, build, what="limits") == {"best_of_n": [1, 2]} and len(n) == 2
    assert "warning: cached limits" in capsys.readouterr().err


_CONCURRENT_BUILD = """
import sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from bench.cache import load_or_build
sys.path.insert(0, {tests!r})
from test_faults import fake_stage
record, hit = load_or_build(Path({root!r}), fake_stage(Path({counter!r}), sleep=0.5), what="world")
print("hit" if hit else "built", record["kind"])
"""


def test_concurrent_builds_of_a_fresh_cache_build_once(tmp_path):
    root, counter = tmp_path / "cache" / "worlds" / "w-1", tmp_path / "builds"
    code = _CONCURRENT_BUILD.format(repo=str(REPO), tests=str(REPO / "tests"), root=str(root), counter=str(counter))
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert sorted(o.split()[0] for o, _ in outs) == ["built", "hit", "hit"]
    assert len(counter.read_text().splitlines()) == 1
    assert stage_cache.verify(root)[0] is not None
    assert sorted(p.name for p in root.parent.iterdir()) == ["w-1", "w-1.lock"]


# -------------------------------------------------------------------------------------------------- concurrency
def test_a_run_claimed_elsewhere_is_waited_for_not_redone(tmp_path, env):
    from bench.locking import hold

    path = write_suite(tmp_path, seeds=(0,), algorithms="[algorithms.fake]\n")
    (spec,) = expand(load_suite(path))
    results = tmp_path / "results" / "fk"
    lock_path = results / ".locks" / f"{spec.run_id}.lock"
    # another "process" holds the claim and finishes the run while we wait
    other = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from bench.locking import hold
        with hold({str(lock_path)!r}):
            print("held", flush=True)
            time.sleep(1.0)
        """)], stdout=subprocess.PIPE, text=True)
    assert other.stdout.readline().strip() == "held"
    t = time.perf_counter()
    outcome = run_suite(load_suite(path), results_root=tmp_path / "results")
    other.wait(timeout=30)
    # it held the claim and then let go without finishing (as a killed process would): we waited, then took over
    assert outcome.finished == [spec.run_id] and time.perf_counter() - t > 0.3
    assert trained(env) == [spec.run_id]
    with hold(lock_path):  # released
        pass


_FAKE_WORLD_PLUGIN = """
# A [suite].plugins module: imported by `bench run` and by every process that executes one of its runs
from pathlib import Path
import bench.runner as runner
import bench.worlds.controlled.build as cb
from bench.algorithms.fake import Fake
from bench.algorithms.registry import register

def fake_build_into(cfg, root, progress):  # the real build is tested in test_world; this one counts builds
    import time
    with open({counter!r}, "a") as f:
        f.write("built\\n")
    time.sleep(1.0)
    for sub in ("tokenizer", "base", "weak", "pairs_train", "pairs_heldout"):
        (root / sub).mkdir()
        (root / sub / "data.bin").write_bytes(sub.encode() * 100)
    (root / "eval_prompts.json").write_text('["the film was"]')
    return {{"kind": "controlled"}}

cb._build_into = fake_build_into
runner.write_world_record = lambda results_dir, stages: None  # limits would sample the (fake) base policy

@register("fake_world")
class FakeWorld(Fake):
    needs_torch = True  # the runner resolves (builds) the world before training it
"""

_RUN_ON_FAKE_WORLD = """
import sys
sys.path.insert(0, {repo!r})
from bench.cli import main
sys.exit(main(["run", {suite!r}, "--results", {results!r}, "--cache-dir", {cache!r}, "--no-report",
                "--launcher", "sequential"]))
"""


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_two_bench_runs_on_a_fresh_cache_build_the_world_once(tmp_path, env):
    """Two `bench run` of one suite at once on an empty cache: the world is built once (the other process waits
    on its lock), the runs are shared (claims), none is trained twice, both end with the complete summary."""
    counter, cache = tmp_path / "builds", tmp_path / "fresh-cache"
    (tmp_path / "fake_world_plugin.py").write_text(_FAKE_WORLD_PLUGIN.format(counter=str(counter)), encoding="utf-8")
    path = write_suite(tmp_path, seeds=(0, 1), algorithms="[algorithms.fake_world]\nbeta = [0.05, 0.5]\n"
                                                        "sleep = 0.5\n")
    path.write_text(path.read_text().replace("[suite]\n", '[suite]\nplugins = ["fake_world_plugin"]\n', 1))
    code = _RUN_ON_FAKE_WORLD.format(repo=str(REPO), suite=str(path),
                                     results=str(tmp_path / "results"), cache=str(cache))
    child_env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env=child_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert counter.read_text().splitlines() == ["built"], "the world was built once"
    (world,) = [p for p in (cache / "worlds").iterdir() if p.is_dir()]
    assert stage_cache.verify(world)[0] is not None and not list((cache / "worlds").glob("*.building-*"))
    runs = trained(env)  # (fake_world is registered in the children only)
    assert len(runs) == len(set(runs)) == 4, "every run trained exactly once"
    pids = {line.split()[1] for line in env.read_text().splitlines()}
    assert len(pids) == 4 and not pids & {str(p.pid) for p in procs}, "each run in a child, never in `bench run`"
    import re

    assert all(int(re.search(r"(\d+) runs trained", out).group(1)) >= 1 for out, _ in outs), "both trained some"
    rows = summary(tmp_path / "results" / "fk")
    assert sorted(r["run_id"] for r in rows) == sorted(runs) and {r["status"] for r in rows} == {"finished"}
    for out, _ in outs:
        assert "trained by another process" in out


# -------------------------------------------------------------------------------------- kills at write points
def _fork_and_kill_at(path: Path, results_root: Path, point: int, phase: str) -> int:
    """Run the suite in a forked child that SIGKILLs itself at its `point`-th atomic write (before the temporary
    file is renamed into place, or just after); return the child's wait status."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            import bench.io as bio

            original = bio.os.replace
            count = {"n": 0}

            def replace(src, dst):
                count["n"] += 1
                if count["n"] == point and phase == "before_rename":
                    os.kill(os.getpid(), signal.SIGKILL)
                original(src, dst)
                if count["n"] == point and phase == "after_rename":
                    os.kill(os.getpid(), signal.SIGKILL)

            bio.os.replace = replace
            run_suite(load_suite(path), results_root=results_root)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


def _count_writes(path: Path, results_root: Path, monkeypatch) -> int:
    import bench.io as bio

    n = {"n": 0}
    original = bio.os.replace

    def counting(src, dst):
        n["n"] += 1
        original(src, dst)

    with monkeypatch.context() as m:
        m.setattr(bio.os, "replace", counting)
        run_suite(load_suite(path), results_root=results_root)
    return n["n"]


def test_kill_at_random_write_points_then_rerun_finishes_each_run_once(tmp_path, env, monkeypatch):
    path = write_suite(tmp_path, seeds=(0, 1))
    specs = expand(load_suite(path))
    writes = _count_writes(path, tmp_path / "clean", monkeypatch)
    assert writes >= 5 * len(specs)
    rng = random.Random(12)
    points = rng.sample(range(1, writes + 1), 10)
    for trial, point in enumerate(points):
        root = tmp_path / f"r{trial}"
        status = _fork_and_kill_at(path, root, point, rng.choice(["before_rename", "after_rename"]))
        assert os.WIFSIGNALED(status), f"write point {point} of {writes} was never reached"
        if trial % 3 == 0:  # the resume itself is killed too, at a random point
            _fork_and_kill_at(path, root, rng.randint(1, writes), "before_rename")
        results = root / "fk"
        done_before = {s.run_id for s in specs if is_finished(run_dir(results, s.run_id), s.config_hash)}
        env.write_text("")
        outcome = run_suite(load_suite(path), results_root=root)
        assert not outcome.failed
        assert sorted(outcome.skipped) == sorted(done_before), "a finished run is never trained again"
        assert sorted(trained(env)) == sorted(outcome.finished) == sorted({s.run_id for s in specs} - done_before)
        rows = summary(results)
        assert sorted(r["run_id"] for r in rows) == sorted(s.run_id for s in specs)  # each exactly once
        assert {r["status"] for r in rows} == {"finished"}
        for spec in specs:
            assert is_finished(run_dir(results, spec.run_id), spec.config_hash)
        assert sorted(p.name for p in (results / "runs").iterdir()) == sorted(s.run_id for s in specs)
        assert not [p for p in results.rglob("*.tmp")], "temporary files of the killed writer are cleaned up"


def test_kill_at_random_moments_then_rerun(tmp_path, env):
    path = write_suite(tmp_path, seeds=(0,), algorithms="[algorithms.fake]\nbeta = [0.05, 0.2, 0.5]\nsleep = 0.15\n")
    cmd = [sys.executable, "-m", "bench.cli", "run", str(path), "--results", str(tmp_path / "results"),
           "--no-report"]
    child_env = {**os.environ, "PYTHONPATH": str(REPO)}
    rng = random.Random(7)
    for _ in range(2):
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=child_env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    run_suite(load_suite(path), results_root=tmp_path / "results")
    rows = summary(tmp_path / "results" / "fk")
    assert sorted(r["run_id"] for r in rows) == sorted(s.run_id for s in expand(load_suite(path)))
    assert {r["status"] for r in rows} == {"finished"}


def test_stale_temp_files_are_removed(tmp_path, env):
    results = tmp_path / "results" / "fk"
    results.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = [results / f".summary.csv.{dead.pid}.tmp", results / f".suite.json.{dead.pid}.ab12cd34.tmp"]
    for p in stale:
        p.write_text("half")
    live = results / f".summary.csv.{os.getpid()}.0badf00d.tmp"
    live.write_text("in progress")
    assert sorted(clean_stale_temps(results)) == sorted(stale)
    assert live.exists()
    live.unlink()
    report = tmp_path / "report" / "fk"
    report.mkdir(parents=True)
    (report / f".index.html.{dead.pid}.tmp").write_text("half")
    assert cli_run(write_suite(tmp_path, seeds=(0,)), tmp_path) == EXIT_OK
    assert not list(results.glob(".*.tmp")) and not list(report.glob(".*.tmp"))


# ------------------------------------------------------------------------------------------------- divergence
def test_guard_rules():
    from bench.budget import LOSS_EXPLOSION_FACTOR, DivergenceGuard, Diverged

    g = DivergenceGuard()
    g.check_history([{"step": 1, "loss": 0.69, "grad_norm": 3.0}, {"step": 2, "loss": 50.0}], 2)  # fine
    with pytest.raises(Diverged) as e:
        g.check_history(g.logs + [{"step": 3, "loss": 0.69 * 0 + LOSS_EXPLOSION_FACTOR * 1.01}], 3)
    assert e.value.step == 3 and e.value.metric == "loss" and e.value.logs
    for entry in ({"loss": float("nan")}, {"grad_norm": float("inf")}, {"loss/policy_avg": float("-inf")}):
        with pytest.raises(Diverged) as e:
            DivergenceGuard().check_log(entry, 5)
        assert e.value.record()["value"] in ("nan", "inf", "-inf")


def test_guard_checks_parameters():
    torch = pytest.importorskip("torch")
    from bench.budget import DivergenceGuard, Diverged

    model = torch.nn.Linear(3, 2)
    DivergenceGuard().check_parameters(model, 1)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(Diverged):
        DivergenceGuard().check_parameters(model, 2)


def test_diverged_run_is_a_status_with_its_logs_and_is_not_rerun(tmp_path, env, capsys):
    path = write_suite(tmp_path, seeds=(0,), algorithms=textwrap.dedent("""\
        [algorithms.good]
        algorithm = "fake"

        [algorithms.wild]
        algorithm = "fake"
        diverge = true

        [algorithms.nanny]
        algorithm = "fake"
        nan_metric = "kl"
        """))
    assert cli_run(path, tmp_path) == EXIT_OK  # diverged runs are results, not failures
    out = capsys.readouterr().out
    assert "2 diverged" in out
    results = tmp_path / "results" / "fk"
    rows = {r["label"]: r for r in summary(results)}
    assert rows["good"]["status"] == "finished"
    assert rows["wild"]["status"] == "diverged" and "step 3" in rows["wild"]["error"]
    assert rows["nanny"]["status"] == "diverged" and "kl" in rows["nanny"]["error"]
    wild = read_json(run_dir(results, rows["wild"]["run_id"]) / "metrics.json")
    assert wild["diverged"] == {"step": 3, "metric": "loss", "value": 3e10}
    assert [h["loss"] for h in wild["train_logs"]] == [0.69, 0.5, 3e10]
    nanny = read_json(run_dir(results, rows["nanny"]["run_id"]) / "metrics.json")
    assert nanny["kl"] is None and nanny["_non_finite"]["kl"] == "nan"  # explicit, never a silent null
    html = (tmp_path / "report" / "fk" / "index.html").read_text(encoding="utf-8")
    assert "diverged" in html
    env.unlink()
    again = run_suite(load_suite(path), results_root=tmp_path / "results")
    assert len(again.skipped) == 3 and not trained(env)


def test_non_finite_json_is_explicit(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"kl": float("nan"), "logs": [{"loss": float("inf")}], "ok": 1.0})
    data = read_json(tmp_path / "m.json")
    assert data["kl"] is None and data["ok"] == 1.0
    assert data["_non_finite"] == {"kl": "nan", "logs.0.loss": "inf"}
    assert "NaN" not in (tmp_path / "m.json").read_text()


# ------------------------------------------------------------------------------------------ exit codes, storage
def test_failed_runs_exit_3_and_crash_exits_4(tmp_path, env, capsys, monkeypatch):
    path = write_suite(tmp_path, seeds=(0,), algorithms='[algorithms.bad]\nalgorithm = "fake"\nfail = true\n')
    assert cli_run(path, tmp_path, "--no-report") == EXIT_RUNS_FAILED
    assert "1 run(s) failed" in capsys.readouterr().err
    import bench.cli as cli

    def boom(args):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_validate", boom)
    assert main(["validate", str(path)]) == EXIT_CRASH
    err = capsys.readouterr().err
    assert "Traceback" in err and "internal error" in err
    assert len({EXIT_OK, 1, EXIT_USER, EXIT_RUNS_FAILED, EXIT_CRASH}) == 5


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_disk_full_or_read_only_is_one_line_exit_2(tmp_path, env, capsys, monkeypatch, code):
    path = write_suite(tmp_path, seeds=(0, 1))
    assert cli_run(path, tmp_path, "--only", "fake", "--seeds", "0") == EXIT_OK
    results = tmp_path / "results" / "fk"
    before = {p.name: (p / "metrics.json").read_bytes() for p in (results / "runs").iterdir()}
    capsys.readouterr()
    import bench.io as bio

    def full(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setenv("BENCH_FSYNC", "1")
    monkeypatch.setattr(bio.os, "fsync", full)
    assert cli_run(path, tmp_path) == EXIT_USER
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot write ") and str(tmp_path) in lines[0], err
    assert os.strerror(code) in lines[0] and "Traceback" not in err
    monkeypatch.undo()
    for name, data in before.items():  # finished runs intact
        assert (results / "runs" / name / "metrics.json").read_bytes() == data
        assert is_finished(results / "runs" / name)
    assert not [p for p in results.rglob("*.tmp")]
    assert not list((results / "runs").glob("*/traceback.txt"))


def test_real_48k_disk_when_we_may_mount_one(tmp_path, env, capsys):
    """The issue's 48 KiB disk, for real where a tmpfs can be mounted (root in a container); skipped elsewhere."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        path = write_suite(tmp_path, seeds=tuple(range(10)))
        code = main(["run", str(path), "--results", str(disk / "results"), "--report-dir", str(disk / "report")])
        err = capsys.readouterr().err
        assert code == EXIT_USER and "No space left on device" in err and "Traceback" not in err
        assert len([line for line in err.splitlines() if line.startswith("error:")]) == 1
        runs = [inspect_run(d) for d in (disk / "results" / "fk" / "runs").iterdir()]
        assert any(r.status == "finished" for r in runs) and not [p for p in disk.rglob("*.tmp")]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_failing_world_leaves_suite_json_alone(tmp_path, env, capsys):
    path = write_suite(tmp_path, seeds=(0,))
    assert cli_run(path, tmp_path, "--no-report") == EXIT_OK
    results = tmp_path / "results" / "fk"
    before = (results / "suite.json").read_text()
    broken = write_suite(tmp_path, body=textwrap.dedent("""\
        [world]
        kind = "hub"
        model = "/no/such/model/dir"
        dataset = "/no/such/data.jsonl"
        judge = "/no/such/judge"
        """), seeds=(0,), algorithms="[algorithms.sft]\n")
    assert cli_run(broken, tmp_path, "--no-report") == EXIT_USER
    assert "Traceback" not in capsys.readouterr().err
    assert (results / "suite.json").read_text() == before
    assert main(["report", str(results), "--out", str(tmp_path / "rep")]) == EXIT_OK


def test_broken_pipe_is_quiet(monkeypatch, capsys):
    class Closed:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def fileno(self):
            raise OSError("no fileno")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["list"]) == EXIT_OK
    assert "Traceback" not in capsys.readouterr().err


def test_report_of_missing_folder_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope")]) == EXIT_USER
    assert "no such results folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- validation
def problems_of(tmp_path: Path, text: str, overrides=()) -> str:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_suite(path, list(overrides))
    return str(e.value)


BASE = '[suite]\nname = "v"\nseeds = [0]\n[budget]\nflops = 1e9\n[algorithms.fake]\n'


def test_long_names_and_labels_are_refused(tmp_path):
    assert "at most 64" in problems_of(tmp_path, BASE.replace('name = "v"', f'name = "{"n" * 300}"'))
    assert "at most 64" in problems_of(tmp_path, BASE.replace("[algorithms.fake]",
                                                              f'[algorithms.{"a" * 300}]\nalgorithm = "fake"'))


def test_seed_range(tmp_path):
    text = problems_of(tmp_path, BASE.replace("seeds = [0]", "seeds = [-1, 4294967296]"))
    assert "[suite].seeds" in text and "2**32" in text
    path = tmp_path / "ok.toml"
    path.write_text(BASE.replace("seeds = [0]", "seeds = [0, 4294967295]"))
    assert len(expand(load_suite(path))) == 2


@pytest.mark.parametrize("table, expect", [
    ('win_rate = "abc"', "expected a finite number"), ("win_rate = nan", "expected a finite number"),
    ("win_rate = -0.1", ">= 0"), ("alpha = 1.5", "between 0 and 1"), ("win_rat = 0.1", "did you mean"),
    ("alpha = true", "expected a finite number")])
def test_check_table_is_validated(tmp_path, table, expect):
    assert expect in problems_of(tmp_path, BASE + f"\n[check]\n{table}\n")


def test_huge_grid_is_refused(tmp_path):
    grid = "beta = [" + ", ".join(str(0.01 * (i + 1)) for i in range(200)) + "]\nlearning_rate = [" + \
        ", ".join(str(1e-4 * (i + 1)) for i in range(200)) + "]\nnoise = [" + \
        ", ".join(str(0.001 * i) for i in range(50)) + "]\n"
    t = time.perf_counter()
    text = problems_of(tmp_path, BASE + grid)
    assert "2,000,000 runs" in text and "at most 10,000" in text
    assert time.perf_counter() - t < 5


def test_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_suite(path).name == "v"


def test_set_errors_name_the_flag(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(BASE)
    with pytest.raises(UserError) as e:
        load_suite(path, ["budget.flops="])
    assert str(e.value).startswith("--set budget.flops=: [budget].flops:"), str(e.value)
    assert str(path) not in str(e.value)
    with pytest.raises(UserError) as e:
        load_suite(path, ["budget.flops=lots"])
    assert str(e.value).startswith("--set budget.flops=lots: [budget].flops:"), str(e.value)


def test_jsonl_errors(tmp_path):
    from bench.worlds.hub.sources import check_jsonl

    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(UserError, match="is empty"):
        check_jsonl(empty)
    cut = tmp_path / "cut.jsonl"
    cut.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "a", "cho\n')
    with pytest.raises(UserError, match="row 2"):
        check_jsonl(cut)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"a": "\xff"}\n')
    with pytest.raises(UserError, match="not UTF-8"):
        check_jsonl(bad)


# -------------------------------------------------------------------------------------------- code execution
def test_local_lm_eval_task_needs_explicit_trust(tmp_path):
    task = tmp_path / "task.yaml"
    task.write_text("task: evil\ndoc_to_text: !function utils.doc\n")
    text = problems_of(tmp_path, BASE.replace("[algorithms.fake]", f'[eval]\nlm_eval_tasks = ["{task}"]\n'
                                                                  "[algorithms.fake]"))
    assert "[eval].lm_eval_tasks" in text and "trust_task_code" in text
    path = tmp_path / "trusted.toml"
    path.write_text(BASE.replace("[algorithms.fake]", f'[eval]\nlm_eval_tasks = ["{task}"]\ntrust_task_code = true\n'
                                                      "[algorithms.fake]"))
    assert load_suite(path).eval.trust_task_code is True
    plain = tmp_path / "plain.toml"
    plain.write_text(BASE.replace("[algorithms.fake]", '[eval]\nlm_eval_tasks = ["hellaswag"]\n[algorithms.fake]'))
    assert load_suite(plain).eval.lm_eval_tasks == ("hellaswag",)
    # the adapter refuses a task path too (defence in depth), before lm-eval is imported
    from bench.evaluation.lm_eval_adapter import resolve_task_manager

    with pytest.raises(UserError, match="trust_task_code"):
        resolve_task_manager([str(task)], None)


def test_trust_flag_does_not_change_run_ids(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(BASE)
    b.write_text(BASE.replace("[algorithms.fake]", "[eval]\ntrust_task_code = false\n[algorithms.fake]"))
    assert [s.run_id for s in expand(load_suite(a))] == [s.run_id for s in expand(load_suite(b))]
    assert load_suite(a).raw_hash == load_suite(b).raw_hash
