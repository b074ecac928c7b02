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


def run_and_check(tmp_path, suite_name: str, baseline_name: str) -> None:
    """`bench run` the suite into tmp_path, then `bench check` it against its committed baseline."""
    results = tmp_path / "results"
    cache = os.environ.get("BENCH_CACHE") or str(tmp_path / "cache")
    suite = ROOT / "suites" / f"{suite_name}.toml"
    assert main(["run", str(suite), "--results", str(results), "--cache-dir", cache, "--no-report"]) == 0
    out = results / suite_name
    check_intervals(out)
    code = main(["check", str(out), "--baseline", str(ROOT / "results" / "baselines" / baseline_name)])
    assert code == 0, (out / "check.md").read_text()


def check_intervals(out: Path) -> None:
    """The uncertainty model on a real suite: every over-seeds interval in its metric's range, and sft (π_ref
    against itself) reading 0.5 within its win-rate interval (seeds, prompts and the K reference draws per prompt)."""
    from bench.evaluation.uncertainty import bounds_of
    from bench.results import summary_frame

    frame = summary_frame(out)
    done = frame[frame["status"] == "finished"]
    for m in ("win_rate", "gold_reward", "kl"):
        low, high = bounds_of(m)
        assert ((done[f"{m}_lo"] >= low) & (done[f"{m}_hi"] <= high)).all(), m
        assert ((done[f"{m}_run_lo"] >= low) & (done[f"{m}_run_hi"] <= high)).all(), m
    sft = done[done["algorithm"] == "sft"]
    assert len(sft) and (sft["win_rate_lo"] <= 0.5).all() and (sft["win_rate_hi"] >= 0.5).all(), \
        sft[["seed", "win_rate", "win_rate_lo", "win_rate_hi"]]


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_controlled_ci_suite_matches_committed_baseline(tmp_path):
    # sft (π_ref against itself) reads 0.467 in the CI world; explained in issue 21: no sampling bias
    # (benchmarks/reference_layout.py: policy-layout against reference-layout samples of the base model, 48 seeds ×
    # 6 draw sets, win rate 0.502), but seeds 0-2 sit 0.024 below the 16-seed mean (about two seed-part standard
    # errors) and the one cached draw set sits ~0.009 above the population (one shared-part standard error). The
    # interval now carries both parts — t over 3 seeds (4.30) and the shared draws — and contains 0.5:
    # 0.467 [0.430, 0.503] on the v3 world; 0.466 [0.423, 0.509] on gold v4 (world format 4); the tolerance is 0,
    # no wider than the interval.
    run_and_check(tmp_path, "controlled-ci", "controlled-ci.json")


@pytest.mark.slow
def test_default_suite_matches_committed_baseline(tmp_path):
    """The full default suite (~5 min on 2 cores) against results/baselines/controlled.json: `pytest -m slow`."""
    run_and_check(tmp_path, "controlled", "controlled.json")
