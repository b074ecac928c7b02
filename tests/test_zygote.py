"""Run attempts are forked by a warm zygote (bench.launchers.zygote, issue 24): one zygote per launcher process
forks every attempt, each in its own process; a zygote that dies costs one attempt and a fresh one serves the
next; BENCH_ZYGOTE=0 starts a fresh interpreter per attempt as before; every run records start_s (process start,
imports, plan and stages) beside wall_s; GPT-2's gelu_new runs the fused kernel. The launcher tests are torch-free:
the `faulty` plug-in of tests/test_isolation.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import EXIT_OK
from test_isolation import REPO, _descendants, attempts, env, faulty_suite  # noqa: F401  (env is a fixture)
from test_runner import read_summary


def _parents(log: Path) -> list[int]:
    return [int(line.split()[2]) for line in log.read_text().splitlines()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _run(tmp_path: Path, path: Path, extra_env: dict | None = None, launcher=("--launcher", "sequential")):
    return subprocess.run([sys.executable, "-m", "bench.cli", "run", path.name, "--results", "res", "--no-report",
                           *launcher], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})})


def _start_seconds(tmp_path: Path) -> list:
    return [json.loads(p.read_text())["start_s"] for p in (tmp_path / "res" / "fl" / "runs").glob("*/metrics.json")]


def test_one_zygote_forks_every_attempt_each_in_its_own_process(tmp_path, env):
    path = faulty_suite(tmp_path, '[algorithms.ok]\nalgorithm = "faulty"\nbeta = [0.05, 0.1, 0.5]\n')
    proc = _run(tmp_path, path)
    assert proc.returncode == EXIT_OK, proc.stderr[-3000:]
    tried = attempts(env)
    assert len(tried) == 3 and len({pid for _, pid in tried}) == 3, "each attempt in its own process"
    assert len(set(_parents(env))) == 1, "one zygote forked them all"
    starts = _start_seconds(tmp_path)
    assert len(starts) == 3 and all(isinstance(s, float) and 0 <= s < 120 for s in starts)


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_without_the_zygote_each_attempt_is_a_fresh_interpreter(tmp_path, env):
    path = faulty_suite(tmp_path, '[algorithms.ok]\nalgorithm = "faulty"\nbeta = [0.05, 0.5]\n')
    proc = _run(tmp_path, path, {"BENCH_ZYGOTE": "0"})
    assert proc.returncode == EXIT_OK, proc.stderr[-3000:]
    assert len(attempts(env)) == 2 and len(set(_parents(env))) == 1  # started by `bench run` itself
    assert all(isinstance(s, float) for s in _start_seconds(tmp_path))


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_a_killed_zygote_costs_one_attempt_and_a_fresh_one_finishes_the_run(tmp_path, env):
    path = faulty_suite(tmp_path, '[algorithms.slow]\nalgorithm = "faulty"\nsleep = 8.0\n')
    proc = subprocess.Popen([sys.executable, "-m", "bench.cli", "run", path.name, "--results", "res", "--no-report",
                             "--launcher", "sequential"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 90
    while not attempts(env) and time.monotonic() < deadline:
        time.sleep(0.2)
    (zygote,) = _parents(env)
    assert "bench.launchers.zygote" in _cmdline(zygote) and zygote in _descendants(proc.pid)
    os.kill(zygote, signal.SIGKILL)  # its child dies with it (PR_SET_PDEATHSIG)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_OK, err[-3000:]
    assert [r["status"] for r in read_summary(tmp_path / "res" / "fl")] == ["finished"]
    tried = attempts(env)
    assert len(tried) == 2 and _parents(env)[1] != zygote, "the second attempt came from a fresh zygote"


def test_gpt2_gelu_new_runs_the_fused_kernel_of_the_same_function():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.activations import NewGELUActivation

    import bench.modeling  # noqa: F401  (re-points gelu_new)

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=11, n_positions=8))
    act = model.transformer.h[0].mlp.act
    assert model.config.activation_function == "gelu_new" and not isinstance(act, NewGELUActivation)
    x = torch.linspace(-6, 6, 1001)
    assert torch.allclose(act(x), NewGELUActivation()(x), rtol=0, atol=1e-6)
