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


def run_and_check(tmp_path, suite_name: str, baseline_name: str, sft_slack: float = 0.0) -> None:
    """`bench run` the suite into tmp_path, then `bench check` it against its committed baseline."""
    results = tmp_path / "results"
    cache = os.environ.get("BENCH_CACHE") or str(tmp_path / "cache")
    suite = ROOT / "suites" / f"{suite_name}.toml"
    assert main(["run", str(suite), "--results", str(results), "--cache-dir", cache, "--no-report"]) == 0
    out = results / suite_name
    check_intervals(out, sft_slack)
    code = main(["check", str(out), "--baseline", str(ROOT / "results" / "baselines" / baseline_name)])
    assert code == 0, (out / "check.md").read_text()


def check_intervals(out: Path, sft_slack: float = 0.0) -> None:
    """The uncertainty model on a real suite: every over-seeds interval in its metric's range, and sft (π_ref
    against itself) reading 0.5 within its win-rate interval (K reference draws per prompt, resampled), or
    within `sft_slack` of it (the CI world: see test_controlled_ci_suite_matches_committed_baseline)."""
    from bench.evaluation.uncertainty import bounds_of
    from bench.results import summary_frame

    frame = summary_frame(out)
    done = frame[frame["status"] == "finished"]
    for m in ("win_rate", "gold_reward", "kl"):
        low, high = bounds_of(m)
        assert ((done[f"{m}_lo"] >= low) & (done[f"{m}_hi"] <= high)).all(), m
        assert ((done[f"{m}_run_lo"] >= low) & (done[f"{m}_run_hi"] <= high)).all(), m
    sft = done[done["algorithm"] == "sft"]
    assert len(sft) and (sft["win_rate_lo"] <= 0.5 + sft_slack).all() and \
        (sft["win_rate_hi"] >= 0.5 - sft_slack).all(), \
        sft[["seed", "win_rate", "win_rate_lo", "win_rate_hi"]]


def test_controlled_ci_suite_matches_committed_baseline(tmp_path):
    # Open defect (issue 11's note): in the CI world (74% grammatical base samples) sft reads below 0.5 against its
    # 8 fixed reference draws per prompt: v3 gold 0.467 [0.449, 0.478]; v4 gold 0.466 [0.411, 0.528] (the wider
    # interval: ill-formed text now sits 8.5 below the floor of well-formed reviews). Unexplained yet (a
    # batch-layout test of the sampler found no padding effect beyond noise); the default suite's sft reads 0.501
    # [0.462, 0.537] and is held to 0.5 exactly.
    run_and_check(tmp_path, "controlled-ci", "controlled-ci.json", sft_slack=0.03)


@pytest.mark.slow
def test_default_suite_matches_committed_baseline(tmp_path):
    """The full default suite (~5 min on 2 cores) against results/baselines/controlled.json: `pytest -m slow`."""
    run_and_check(tmp_path, "controlled", "controlled.json")
