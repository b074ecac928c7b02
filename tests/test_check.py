"""bench baseline / check / compare on torch-free `fake` results: pass, regression, noise, missing run, schema."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main

SUITE = """
[suite]
name = "papers"
seeds = [0, 1, 2, 3]
[budget]
flops = 1e9
[algorithms.fake]
beta = [0.05, 0.5]
noise = 0.02
"""


def run(tmp_path: Path, text: str = SUITE, name: str = "suite.toml", results: str = "results") -> Path:
    path = tmp_path / name
    path.write_text(text)
    assert main(["run", str(path), "--results", str(tmp_path / results), "--no-report"]) == 0
    return tmp_path / results / "papers"


def shift_metric(results: Path, metric: str, by: float, label_beta: float | None = None) -> None:
    """Edit finished runs' metrics.json as a regressed re-run would have written them."""
    for metrics in (results / "runs").glob("*/metrics.json"):
        config = json.loads((metrics.parent / "config.json").read_text())
        if label_beta is not None and config["params"]["beta"] != label_beta:
            continue
        data = json.loads(metrics.read_text())
        data[metric] += by
        metrics.write_text(json.dumps(data))


def test_unchanged_result_passes(tmp_path, capsys):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(results), "-o", str(baseline)]) == 0
    data = json.loads(baseline.read_text())
    assert data["schema_version"] == 1 and len(data["settings"]) == 2
    setting = next(iter(data["settings"].values()))
    assert len(setting["metrics"]["win_rate"]["values"]) == 4
    capsys.readouterr()
    assert main(["check", str(results), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("PASS")
    assert (results / "check.json").is_file() and (results / "check.md").read_text().startswith("### daa-bench check")


def test_shifted_metric_fails_and_is_named(tmp_path, capsys):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    shift_metric(results, "win_rate", -0.15, label_beta=0.5)
    capsys.readouterr()
    assert main(["check", str(results), "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL")
    bad = [r for r in json.loads((results / "check.json").read_text())["rows"] if r["status"] == "regression"]
    assert [(r["setting"], r["metric"]) for r in bad] == [("fake|beta=0.5", "win_rate")]


def test_improvement_is_not_a_regression(tmp_path):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    shift_metric(results, "win_rate", +0.10)  # beyond the 0.06 tolerance, and still a probability (<= 1)
    shift_metric(results, "kl", -5.0)
    assert main(["check", str(results), "--baseline", str(baseline)]) == 0
    rows = json.loads((results / "check.json").read_text())["rows"]
    assert {r["status"] for r in rows if r["metric"] in ("win_rate", "kl")} == {"improved"}


def test_noise_within_ci_passes(tmp_path):
    """Other seeds of the same configuration: different numbers, same distribution → pass."""
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    other = run(tmp_path, SUITE.replace("seeds = [0, 1, 2, 3]", "seeds = [4, 5, 6, 7]"), "b.toml", "results_b")
    base_values = json.loads(baseline.read_text())["settings"]["fake|beta=0.5"]["metrics"]["win_rate"]["values"]
    new_values = [json.loads(p.read_text())["win_rate"] for p in (other / "runs").glob("fake_beta0.5_*/metrics.json")]
    assert sorted(base_values) != sorted(new_values)  # really different draws
    assert main(["check", str(other), "--baseline", str(baseline), "--allow-config-change"]) == 0


def test_shift_within_tolerance_but_significant_passes(tmp_path):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    shift_metric(results, "win_rate", -0.03)  # every seed worse (significant) but under the 0.06 tolerance
    assert main(["check", str(results), "--baseline", str(baseline)]) == 0


def test_missing_or_failed_run_fails(tmp_path, capsys):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    for run_dir in (results / "runs").glob("fake_beta0.05_*"):
        data = json.loads((run_dir / "metrics.json").read_text())
        data["status"], data["error"] = "failed", "RuntimeError: boom"
        (run_dir / "metrics.json").write_text(json.dumps(data))
    assert main(["check", str(results), "--baseline", str(baseline)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_changed_suite_fails_unless_allowed(tmp_path, capsys):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    data = json.loads(baseline.read_text())
    data["suite_hash"] = "0" * 64
    baseline.write_text(json.dumps(data))
    assert main(["check", str(results), "--baseline", str(baseline)]) == 1
    assert "suite changed" in capsys.readouterr().out
    assert main(["check", str(results), "--baseline", str(baseline), "--allow-config-change"]) == 0


@pytest.mark.parametrize("content, message", [
    ('{"schema_version": 99, "settings": {}}', "schema_version 99 is not supported"),
    ("not json", "not valid JSON"),
])
def test_bad_baseline_is_a_clear_usage_error(tmp_path, capsys, content, message):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    baseline.write_text(content)
    capsys.readouterr()
    assert main(["check", str(results), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "bench baseline" in err[0]


def test_tolerance_from_suite_check_table(tmp_path):
    results = run(tmp_path, SUITE + "\n[check]\nwin_rate = 0.5\n")
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    shift_metric(results, "win_rate", -0.15)
    assert main(["check", str(results), "--baseline", str(baseline)]) == 0


def test_compare_prints_table(tmp_path, capsys):
    a = run(tmp_path)
    b = run(tmp_path, results="results_b")
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "win_rate" in out and "fake|beta=0.5" in out
    assert isinstance(pd.read_csv(a / "summary.csv"), pd.DataFrame)
