"""Multi-process runs on CPU (torchrun, gloo): every rank trains, rank 0 alone writes; FLOPs are summed over ranks
so the budget means the same thing as in a single process, and nobody hangs at the stop decision. PPO is our own
`ppo`, data parallel (its update's equality with one process: tests/test_ppo_distributed.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from tiny_suite import tiny_suite_text

SUITE = tiny_suite_text("mp", flops=3e9, heldout_prompts=64, eval={"best_of_n": None}, algorithms="""
[algorithms.dpo]
beta = 0.1
[algorithms.ppo]
rm_epochs = 0.5
rm_batch_size = 8
""")


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun not installed")
@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_two_processes_train_and_rank0_writes(tmp_path):
    suite = tmp_path / "mp.toml"
    suite.write_text(SUITE)
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    env = {**os.environ, "BENCH_QUIET": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([torchrun, "--nproc_per_node", "2", "-m", "bench.cli", "run", str(suite), "--results",
                          str(tmp_path / "res"), "--cache-dir", str(tmp_path / "cache"), "--no-report"],
                         capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.count("runs trained") == 1  # rank 0 alone reports
    runs = sorted((tmp_path / "res" / "mp" / "runs").glob("*/metrics.json"))
    assert len(runs) == 2
    for path in runs:
        m = json.loads(path.read_text())
        assert m["status"] == "finished", m.get("error")
        assert m["compute"]["flops_by_component"].get("other_ranks", 0) > 0  # rank 1's shard was counted
        assert m["flops"] <= 3e9 and m["budget_fraction"] > 0.8
