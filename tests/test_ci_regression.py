"""The project's CI checks its science, not only its code: re-run the CI-sized controlled suite and compare it
with the committed baseline (results/baselines/controlled-ci.json) through `bench check`. ~3-4 minutes on 2 cores.

If a change moves these numbers on purpose (a fixed bug, a new default), regenerate the baseline in the same
commit and say why: `bench run suites/controlled-ci.toml && bench baseline results/controlled-ci -o
results/baselines/controlled-ci.json`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_controlled_ci_suite_matches_committed_baseline(tmp_path):
    results = tmp_path / "results"
    cache = os.environ.get("BENCH_CACHE") or str(tmp_path / "cache")
    suite = ROOT / "suites" / "controlled-ci.toml"
    assert main(["run", str(suite), "--results", str(results), "--cache-dir", cache, "--no-report"]) == 0
    out = results / "controlled-ci"
    code = main(["check", str(out), "--baseline", str(ROOT / "results" / "baselines" / "controlled-ci.json")])
    assert code == 0, (out / "check.md").read_text()


@pytest.mark.slow
def test_default_suite_matches_committed_baseline(tmp_path):
    """The full default suite (~5 min on 2 cores) against results/baselines/controlled.json: `pytest -m slow`."""
    results = tmp_path / "results"
    cache = os.environ.get("BENCH_CACHE") or str(tmp_path / "cache")
    suite = ROOT / "suites" / "controlled.toml"
    assert main(["run", str(suite), "--results", str(results), "--cache-dir", cache, "--no-report"]) == 0
    out = results / "controlled"
    code = main(["check", str(out), "--baseline", str(ROOT / "results" / "baselines" / "controlled.json")])
    assert code == 0, (out / "check.md").read_text()
