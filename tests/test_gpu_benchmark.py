"""benchmarks/gpu.py keeps working: its `--tiny` CPU mode runs every section (bench vs bare TRL throughput for DPO,
SimPO and PPO, the precompute memory table, the FLOP-counter check, a `bench run` end to end) in well under a
minute, and the JSON it writes has every figure, sane. The GPU figures themselves come from the full mode on a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# every test here shares a module fixture that runs the benchmark's tiny mode (~30 s on 2 cores): the slow tier
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gpu_benchmark")
    out = tmp / "gpu-tiny.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--tiny", "--device", "cpu",
                           "--out", str(out), "--cache-dir", str(tmp / "cache"), "--work-dir", str(tmp / "work")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - t
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {"result": json.loads(out.read_text()), "seconds": seconds, "stdout": proc.stdout}


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_tiny_mode_runs_every_section_on_cpu(tiny):
    r = tiny["result"]
    assert r["mode"] == "tiny" and r["device"] == "cpu" and r["device_name"] == "cpu"
    assert r["errors"] == {}
    for key in ("throughput_dpo", "throughput_simpo", "throughput_ppo", "memory", "flop_counter", "e2e", "summary",
                "provenance", "model", "config", "seconds"):
        assert key in r, key
    assert r["pytest_gpu"] is None  # tests/test_gpu.py is only run on CUDA
    packages = r["provenance"]["packages"]
    assert packages["torch"] and packages["trl"] and packages["transformers"]
    assert r["model"]["parameters"] > 0 and r["model"]["pair_tokens_mean"] > 0
    assert tiny["seconds"] < 120, f"--tiny took {tiny['seconds']:.0f} s"  # ~35 s on two shared cores


def test_throughput_figures_are_positive(tiny):
    r = tiny["result"]
    for label in ("dpo", "simpo"):
        rec = r[f"throughput_{label}"]
        for who in ("bare_trl", "bench"):
            assert rec[who]["tokens_per_s"] > 0 and rec[who]["step_s_median"] > 0, (label, who)
            assert rec[who]["steps"] >= 2
            assert rec[who]["mfu"] is None  # no GPU: no bf16 peak to divide by
        assert rec["bench"]["meter_flops_per_step"] > 0
        assert rec["bench_over_bare_throughput"] > 0
    ppo = r["throughput_ppo"]
    assert r["summary"]["dpo_tokens_per_s_bench"] > 0
    if "skipped" in ppo:  # trl >= 1.13 has no PPOTrainer: the bare-TRL side of the PPO comparison cannot run
        import trl

        assert int(trl.__version__.split(".")[1]) >= 13 and "removed in trl 1.13" in ppo["skipped"]
        assert r["summary"]["ppo_generated_tokens_per_s_bench"] is None
        return
    for who in ("bare_trl", "bench"):
        assert ppo[who]["episodes_per_s"] > 0
        assert ppo[who]["generation"]["generated_tokens_per_s"] > 0 and ppo[who]["generation"]["calls"] >= 1
    assert ppo["bench"]["meter_flops_per_step"] > 0
    assert r["summary"]["ppo_generated_tokens_per_s_bench"] > 0


def test_memory_table_is_complete_and_null_on_cpu(tiny):
    rows = tiny["result"]["memory"]["rows"]
    assert len(rows) == 8  # 2 batch sizes x checkpointing on/off x reference in the loop / precomputed
    assert {(x["batch"], x["gradient_checkpointing_requested"], x["reference"]) for x in rows} == {
        (b, c, ref) for b in (2, 4) for c in (False, True) for ref in ("in_loop", "precompute")}
    for row in rows:
        assert "error" not in row, row
        for key in ("peak_mb", "init_peak_mb", "train_peak_mb"):
            assert row[key] is None or row[key] > 0  # CUDA allocator figures: null without a GPU
        assert row["step_s_median"] > 0


def test_meter_agrees_with_torch_flop_counter(tiny):
    fc = tiny["result"]["flop_counter"]
    assert fc["steps"] == 1 and fc["flop_counter_flops"] > 0 and fc["meter_flops"] > 0
    assert set(fc["meter_flops_by_component"]) == {"policy", "reference"}
    # the meter (2N/6N per non-padding token) vs every matmul on padded tensors: measured 0.92 here
    assert 0.7 < fc["meter_over_flop_counter"] < 1.3, fc


def test_bench_run_end_to_end(tiny):
    e2e = tiny["result"]["e2e"]
    assert e2e["exit_code"] == 0 and e2e["all_finished"], e2e
    assert e2e["runs"]["dpo"]["steps"] >= 1 and e2e["runs"]["dpo"]["flops"] > 0
    assert all(run["device"] == "cpu" for run in e2e["runs"].values())
