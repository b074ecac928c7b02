"""GPU path (marker `gpu`, deselected by default; run with `python -m pytest -m gpu`): a tiny controlled suite
trains DPO (bf16 is off in the controlled world) and PPO on CUDA and is evaluated there. Skips without CUDA."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

SUITE = """
[suite]
name = "gpu-smoke"
seeds = [0]
[world]
corpus_sentences = 2000
n_layer = 2
n_embd = 64
n_head = 2
pairs = 256
heldout_pairs = 32
heldout_prompts = 96
[budget]
flops = 5e10
[eval]
prompts = 32
validation_prompts = 16
curve_pairs = 16
curve_generation_prompts = 16
limit_prompts = 16
limit_samples = 8
best_of_n = 4
[algorithms.dpo]
beta = 0.1
[algorithms.ppo]
rm_epochs = 0.5
"""


def test_controlled_suite_trains_on_cuda(tmp_path):
    from bench.cli import main

    suite = tmp_path / "gpu.toml"
    suite.write_text(SUITE)
    code = main(["run", str(suite), "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
                 "--device", "cuda", "--no-report"])
    assert code == 0
    for metrics in (tmp_path / "results" / "gpu-smoke" / "runs").glob("*/metrics.json"):
        data = json.loads(metrics.read_text())
        assert data["status"] == "finished", data.get("error")
        config = json.loads((metrics.parent / "config.json").read_text())
        assert config["provenance"]["device"]["device"].startswith("cuda")
        assert data["peak_mem_mb"] > 0 and data["steps"] >= 1
