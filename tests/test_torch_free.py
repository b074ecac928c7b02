"""A torch-free suite (the `fake` algorithm) and the commands that only read results never import torch.

Torch + transformers cost ~5-8 s of import on a 2-core machine. Before this test, every `fake` run paid them in
its run process (the device pick, the provenance's thread count, the peak-memory window asked torch) and every
`bench run` paid them to check an `auto` device: 8 fake runs took 71 s instead of 8 s, a third of the test
suite's time. The rule: ask torch only where it is imported already (a process that computes with it has)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SUITE = """
[suite]
name = "torchless"
seeds = [0, 1]
[budget]
flops = 1e9
[algorithms.fake]
beta = 0.5
"""

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from bench.cli import main
    from bench.runner import run_suite
    from bench.suite import load_suite

    suite = Path(sys.argv[1])
    outcome = run_suite(load_suite(suite), results_root=suite.parent / "results", cache_dir=suite.parent / "cache")
    assert len(outcome.finished) == 2, outcome
    results = str(outcome.results_dir)
    assert main(["run", str(suite), "--dry-run"]) == 0
    assert main(["baseline", results, "-o", str(suite.parent / "baseline.json")]) == 0
    assert main(["check", results, "--baseline", str(suite.parent / "baseline.json")]) == 0
    assert main(["report", results]) == 0
    print("IMPORTED", sorted(m for m in ("torch", "transformers", "trl", "datasets") if m in sys.modules))
""")


def test_a_torch_free_suite_and_the_result_commands_import_no_torch(tmp_path):
    suite = tmp_path / "torchless.toml"
    suite.write_text(SUITE)
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(suite)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "IMPORTED []" in proc.stdout, proc.stdout[-500:]
    config = next((tmp_path / "results" / "torchless" / "runs").glob("*/config.json")).read_text()
    assert '"device": "cpu"' in config  # recorded without asking torch
