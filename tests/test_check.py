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


_TRAINED: dict[str, Path] = {}  # suite text -> a results folder trained once for this module


def run(tmp_path: Path, text: str = SUITE, name: str = "suite.toml", results: str = "results") -> Path:
    """Results of `text` in tmp_path/results/papers. Each distinct suite is trained once per test session (8 runs,
    each in its own child process: most of this file's time) and copied for every further test, which then edits
    its own copy; a copy is a complete results folder (run folders are independent of where they sit)."""
    import shutil
    import tempfile

    path = tmp_path / name
    path.write_text(text)
    if text not in _TRAINED:
        home = Path(tempfile.mkdtemp(prefix="check-suite-"))
        (home / name).write_text(text)
        assert main(["run", str(home / name), "--results", str(home / "results"), "--no-report"]) == 0
        _TRAINED[text] = home / "results" / "papers"
    out = tmp_path / results / "papers"
    shutil.copytree(_TRAINED[text], out, ignore=shutil.ignore_patterns(".launch", ".locks"))
    return out


def shift_metric(results: Path, metric: str, by: float, label_beta: float | None = None) -> None:
    """Edit finished runs' metrics.json as a regressed re-run would have written them."""
    for metrics in (results / "runs").glob("*/metrics.json"):
        config = json.loads((metrics.parent / "config.json").read_text())
        if label_beta is not None and config["params"]["beta"] != label_beta:
            continue
        data = json.loads(metrics.read_text())
        data[metric] += by
        if metric in ("win_rate", "pref_accuracy", "grammatical_fraction"):  # a real re-run stays in range (and
            data[metric] = min(1.0, max(0.0, data[metric]))                 # the run reader refuses one that is not)
        elif metric == "kl":
            data[metric] = max(0.0, data[metric])
        metrics.write_text(json.dumps(data))


def test_unchanged_result_passes(tmp_path, capsys):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(results), "-o", str(baseline)]) == 0
    data = json.loads(baseline.read_text())
    assert data["schema_version"] == 2 and len(data["settings"]) == 2
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


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
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


def test_shift_within_floor_but_significant_passes(tmp_path):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    shift_metric(results, "win_rate", -0.015)  # every seed worse, but under the 0.02 floor of a rate
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


def test_other_package_versions_are_a_warning_line_not_a_failure(tmp_path, capsys):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    data = json.loads(baseline.read_text())
    packages = data["provenance"]["packages"]
    assert packages.get("trl") and packages.get("torch")  # the runs recorded the stack's versions
    capsys.readouterr()
    assert main(["check", str(results), "--baseline", str(baseline)]) == 0
    assert "package versions differ" not in capsys.readouterr().out  # same versions: no line
    data["provenance"]["packages"] = {**packages, "trl": "1.12.0", "torch": "0.0.1", "numpy": "0.1"}
    baseline.write_text(json.dumps(data))
    assert main(["check", str(results), "--baseline", str(baseline)]) == 0  # still a pass
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "package versions differ" in line]
    assert len(lines) == 1 and lines[0].startswith("warning:")
    assert f"trl 1.12.0 → {packages['trl']}" in lines[0] and "torch 0.0.1 →" in lines[0]
    assert "numpy" not in lines[0] and "transformers" not in lines[0]  # only the stack, only what moved
    assert json.loads((results / "check.json").read_text())["package_versions"] == lines[0]


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


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
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


# ------------------------------------------------------------------ issue 21: an honest check (no runs needed)

def _setting(algorithm: str, values: dict[str, list[float]], seeds: list[int] | None = None) -> dict:
    """A collected setting as `bench.baseline.collect` writes it, intervals from the seed-only t (the check's path)."""
    import numpy as np

    from bench.evaluation.crossed import crossed_ci

    metrics = {}
    for m, v in values.items():
        _, lo, hi = crossed_ci(np.array(v)[:, None])
        metrics[m] = {"values": list(v), "mean": float(np.mean(v)), "lo": lo, "hi": hi}
    return {"label": algorithm, "algorithm": algorithm, "params": {}, "seeds": seeds or list(range(len(next(iter(
        values.values()))))), "failed_seeds": [], "metrics": metrics}


def _collected(settings: dict) -> dict:
    return {"suite": "s", "suite_hash": "h", "world_key": "w", "settings": settings}


def _failures(current: dict, baseline: dict) -> list:
    from bench.check import PROBLEMS, compare

    return [r for r in compare(current, baseline) if r.status in PROBLEMS]


DPO = {"chosen_logp_delta": [-0.85, -0.93, -0.90], "rejected_logp_delta": [-2.1, -2.4, -2.2],
       "kl": [0.41, 0.47, 0.42], "win_rate": [0.62, 0.60, 0.64]}


def test_flipped_displacement_fails():
    """DPO's chosen log-prob falls in the baseline (resolved < 0); a current result where it rose to +0.90 fails,
    both as a move beyond the margin and as a reversed finding."""
    base = _collected({"dpo": _setting("dpo", DPO)})
    flipped = {**DPO, "chosen_logp_delta": [0.87, 0.93, 0.90]}
    bad = _failures(_collected({"dpo": _setting("dpo", flipped)}), base)
    assert {(r.metric, r.status) for r in bad} == {("chosen_logp_delta", "regression"),
                                                    ("sign of chosen_logp_delta", "reversed")}


def test_kl_that_tripled_fails():
    """KL 0.43 → 1.24 (the old fixed 3-nat tolerance passed it)."""
    base = _collected({"ppo": _setting("ppo", DPO)})
    cur = _collected({"ppo": _setting("ppo", {**DPO, "kl": [1.20, 1.28, 1.24]})})
    assert [(r.metric, r.status) for r in _failures(cur, base)] == [("kl", "regression")]


def test_identical_rerun_passes():
    base = _collected({"dpo": _setting("dpo", DPO), "ipo": _setting("ipo", {**DPO, "win_rate": [0.55, 0.54, 0.56]})})
    assert _failures(base, base) == []


def test_reversed_order_of_a_resolved_pair_fails():
    base = _collected({"dpo": _setting("dpo", DPO), "ipo": _setting("ipo", {**DPO, "win_rate": [0.55, 0.53, 0.57]})})
    cur = _collected({"dpo": _setting("dpo", {**DPO, "win_rate": [0.55, 0.53, 0.57]}),
                      "ipo": _setting("ipo", DPO)})
    kinds = {(r.metric, r.status) for r in _failures(cur, base)}
    assert ("order of win_rate", "reversed") in kinds


def test_new_setting_is_named_not_passed_silently():
    from bench.check import compare

    base = _collected({"dpo": _setting("dpo", DPO)})
    cur = _collected({"dpo": _setting("dpo", DPO), "orpo": _setting("orpo", DPO)})
    rows = compare(cur, base)
    assert [(r.setting, r.status) for r in rows if r.status == "new"] == [("orpo", "new")]


def test_rerun_with_other_seeds_fails_at_most_at_the_nominal_rate():
    """An unchanged suite (4 settings × 4 metrics, 3 seeds, realistic spreads, one heavy-tailed setting) rerun with
    other seeds: the whole check fails in <= alpha = 5% of 300 reruns (+ 2.5 binomial standard errors)."""
    import numpy as np

    rng = np.random.default_rng(21)
    spreads = {"win_rate": (0.6, 0.03), "kl": (1.0, 0.4), "chosen_logp_delta": (-0.6, 0.15),
               "grammatical_fraction": (0.9, 0.04)}

    def draw(heavy: bool) -> dict:
        out = {}
        for m, (mu, sd) in spreads.items():
            e = rng.standard_t(3, size=3) / np.sqrt(3) if heavy else rng.normal(size=3)
            out[m] = list(mu + sd * e)
        return out

    reps, fails = 300, 0
    for _ in range(reps):
        names = ("dpo", "ipo", "simpo", "orpo")
        base = _collected({n: _setting(n, draw(n == "simpo")) for n in names})
        cur = _collected({n: _setting(n, draw(n == "simpo"), seeds=[3, 4, 5]) for n in names})
        fails += bool(_failures(cur, base))
    assert fails / reps <= 0.05 + 2.5 * (0.05 * 0.95 / reps) ** 0.5, fails


def _write(tmp_path, data) -> Path:
    path = tmp_path / "base.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d["settings"]["dpo"]["metrics"]["kl"]["values"].__setitem__(1, float("nan")),
     "settings.dpo.metrics.kl.values[1]"),
    (lambda d: d["settings"]["dpo"]["metrics"]["kl"]["values"].__setitem__(0, "0.4"),
     "settings.dpo.metrics.kl.values[0]"),
    (lambda d: d["settings"]["dpo"]["metrics"]["kl"].__setitem__("mean", None), "settings.dpo.metrics.kl.mean"),
    (lambda d: d.__setitem__("settings", {}), "'settings'"),
])
def test_baseline_that_cannot_be_checked_is_a_usage_error(tmp_path, mutate, field):
    from bench.check import load_baseline
    from bench.errors import UserError

    data = {"schema_version": 2, **_collected({"dpo": _setting("dpo", DPO)})}
    mutate(data)
    path = _write(tmp_path, data)
    with pytest.raises(UserError) as err:
        load_baseline(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and field in message and "bench baseline" in message


def test_nan_baseline_exits_2_with_one_line(tmp_path, capsys):
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    main(["baseline", str(results), "-o", str(baseline)])
    text = baseline.read_text()
    data = json.loads(text)
    key = next(iter(data["settings"]))
    data["settings"][key]["metrics"]["win_rate"]["values"][0] = float("nan")
    baseline.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["check", str(results), "--baseline", str(baseline)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "win_rate.values[0]" in err[0]


def test_the_check_command_refuses_an_empty_baseline_and_names_what_it_did_not_check(tmp_path, capsys):
    """The command itself, not only the library: a schema-2 baseline with no settings is exit 2 in one line (a
    check of nothing must not pass); a setting the baseline lacks is named in the printed check."""
    results = run(tmp_path)
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(results), "-o", str(baseline)]) == 0
    data = json.loads(baseline.read_text())
    (tmp_path / "empty.json").write_text(json.dumps({**data, "settings": {}}))
    capsys.readouterr()
    assert main(["check", str(results), "--baseline", str(tmp_path / "empty.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "field 'settings' is empty or missing" in err[0] and "bench baseline" in err[0]
    dropped = sorted(data["settings"])[0]
    fewer = {**data, "settings": {k: v for k, v in data["settings"].items() if k != dropped}}
    (tmp_path / "fewer.json").write_text(json.dumps(fewer))
    main(["check", str(results), "--baseline", str(tmp_path / "fewer.json")])
    out = capsys.readouterr()
    text = out.out + out.err
    assert "not in the baseline (unchecked)" in text, text[-2000:]
    assert "beta=0.05" in text.split("not in the baseline (unchecked)")[1].splitlines()[0] or \
        "0.05" in text.split("not in the baseline (unchecked)")[1].splitlines()[0]


def test_schema_1_baseline_is_migrated_to_t_intervals(tmp_path):
    from bench.check import load_baseline

    data = {"schema_version": 1, **_collected({"dpo": _setting("dpo", DPO)})}
    data["settings"]["dpo"]["metrics"]["win_rate"].update(lo=0.61, hi=0.63)  # the old bootstrap's narrow interval
    out = load_baseline(_write(tmp_path, data))
    w = out["settings"]["dpo"]["metrics"]["win_rate"]
    assert out["schema_version"] == 2 and w["lo"] < 0.58 and w["hi"] > 0.66  # t_{0.975,2} = 4.30


def test_the_issue_27_edit_of_the_committed_baseline_fails():
    """Issue 27's reproduction on the committed default-suite baseline, whatever its regenerated numbers: a copy
    whose DPO chosen_logp_delta is mirrored (the displacement finding's sign flipped) and whose DPO KL is divided by
    the issue's ratio 1.24 / 0.43 (each seed value, so the seeds keep their relative spread) used to PASS against
    the unchanged results (fixed 3-nat tolerances). Both now fail: the flipped sign as a reversed finding and a
    move beyond its margin, the KL through the moderated t (Welch's t alone, on the gold-v4 baseline, gave p = 0.03
    against a Holm threshold near 0.0003; the moderated variance and deterministic rows leaving the family give
    p ≈ 2e-4 here). A smaller KL move is flagged exactly when it passes the margin printed on its row."""
    import copy

    from bench.check import PROBLEMS, compare, load_baseline

    committed = load_baseline(Path(__file__).resolve().parents[1] / "results" / "baselines" / "controlled.json")

    def edited(kl_ratio: float, mirror: bool) -> dict:
        out = copy.deepcopy(committed)
        kl = out["settings"]["dpo"]["metrics"]["kl"]
        kl["values"] = [v / kl_ratio for v in kl["values"]]
        kl.update(mean=kl["mean"] / kl_ratio, lo=kl["lo"] / kl_ratio, hi=kl["hi"] / kl_ratio)
        if mirror:
            ch = out["settings"]["dpo"]["metrics"]["chosen_logp_delta"]
            assert ch["hi"] < 0, "the committed baseline resolves DPO's displacement (chosen falls)"
            ch["values"] = [-v for v in ch["values"]]
            ch.update(mean=-ch["mean"], lo=-ch["hi"], hi=-ch["lo"])
        return out

    rows = {(r.setting, r.metric): r for r in compare(committed, edited(1.24 / 0.43, True))}
    assert rows[("dpo", "sign of chosen_logp_delta")].status == "reversed"
    assert rows[("dpo", "chosen_logp_delta")].status == "regression"
    assert rows[("dpo", "kl")].status == "regression", rows[("dpo", "kl")]
    smaller = {(r.setting, r.metric): r for r in compare(committed, edited(1.5, False))}[("dpo", "kl")]
    assert 0 < smaller.margin < 1.5
    assert (smaller.status == "regression") == (smaller.delta > smaller.margin), smaller
    assert not [r for r in compare(committed, committed) if r.status in PROBLEMS]


def test_rerun_with_other_seeds_passes_at_the_nominal_rate_when_spreads_differ_by_setting():
    """The moderated variance borrows strength across a metric's settings; when their seed spreads differ tenfold
    (the prior is then wrong for every row), plus deterministic rows and one heavy-tailed setting, an unchanged
    suite rerun with other seeds still fails in <= alpha = 5% of 300 reruns (+ 2.5 binomial standard errors)."""
    import numpy as np

    rng = np.random.default_rng(27)
    sd_scale = {"dpo": 0.3, "ipo": 1.0, "simpo": 3.0, "orpo": 0.5, "ppo": 2.0, "cdpo": 1.0}
    spreads = {"win_rate": (0.6, 0.01), "kl": (1.0, 0.1), "chosen_logp_delta": (-0.6, 0.05),
               "grammatical_fraction": (0.9, 0.01)}

    def draw(name: str) -> dict:
        out = {}
        for m, (mu, sd) in spreads.items():
            e = rng.standard_t(3, size=3) / np.sqrt(3) if name == "ppo" else rng.normal(size=3)
            out[m] = list(mu + sd * sd_scale[name] * e)
        return out

    fixed = {"sft": {m: [mu] * 3 for m, (mu, _) in spreads.items()}, "best_of_n": {"kl": [1.8] * 3}}
    reps, fails = 300, 0
    for _ in range(reps):
        base = _collected({**{n: _setting(n, draw(n)) for n in sd_scale}, **{n: _setting(n, v) for n, v in fixed.items()}})
        cur = _collected({**{n: _setting(n, draw(n), seeds=[3, 4, 5]) for n in sd_scale},
                          **{n: _setting(n, v, seeds=[3, 4, 5]) for n, v in fixed.items()}})
        fails += bool(_failures(cur, base))
    assert fails / reps <= 0.05 + 2.5 * (0.05 * 0.95 / reps) ** 0.5, fails


def _with_shared(setting: dict, metric: str, shared_var: float, units: int = 255) -> dict:
    setting["metrics"][metric].update({"shared_var": shared_var, "units": units})
    return setting


def test_a_shared_stage_reading_is_judged_by_its_precision_over_its_units():
    """PPO's preference accuracy is its reward model's, the same for every seed. Checked on another CPU the world and
    the reward model are rebuilt with other bits (0.689 → 0.651 on 254 / 255 held-out pairs, seen on an AMD VM): not
    a regression within the two measurements' precision, sqrt(2 · 0.00085) = 0.041. A collapse is still one, and a
    reading with no such part (an analytic KL) is still compared exactly."""
    from bench.check import compare

    def ppo(acc: float, kl: float = 1.8351) -> dict:
        s = _setting("ppo", {**DPO, "pref_accuracy": [acc] * 3, "kl": [kl] * 3})
        _with_shared(s, "kl", 3e-33, 256)  # best-of-n's analytic KL: rounding, not a measurement
        return _with_shared(s, "pref_accuracy", 0.00085)

    base = _collected({"ppo": ppo(0.689)})
    rows = {r.metric: r for r in compare(_collected({"ppo": ppo(0.651)}), base)}
    assert rows["pref_accuracy"].status == "ok" and not rows["pref_accuracy"].exact
    assert "shared-stage" in rows["pref_accuracy"].note
    assert 0.02 < rows["pref_accuracy"].margin < 0.2  # floor + t · 0.041
    assert {r.metric for r in _failures(_collected({"ppo": ppo(0.52)}), base)} == {"pref_accuracy"}
    exact = {r.metric: r for r in compare(_collected({"ppo": ppo(0.689, kl=2.3)}), base)}["kl"]
    assert exact.exact and exact.status == "regression"
    assert _failures(base, base) == []
    # on a world known to be the same (both sides name the same content) it is compared exactly, as before
    same_base, same_cur = ({**x, "world_content": "c" * 16} for x in (base, _collected({"ppo": ppo(0.639)})))
    row = {r.metric: r for r in compare(same_cur, same_base)}["pref_accuracy"]
    assert row.exact and row.status == "regression"


def test_worlds_built_differently_add_their_shared_parts_to_every_row():
    """Where both sides name their world's content and the names differ (another CPU rebuilt it), the prompts and
    draws no longer cancel: a move that the paired test flags but the two worlds' own precision explains passes,
    and the check says why."""
    from bench.check import compare

    def dpo(win: list[float]) -> dict:
        return _with_shared(_setting("dpo", {**DPO, "win_rate": win}), "win_rate", 0.0004, 256)

    base = _collected({"dpo": dpo([0.620, 0.622, 0.624])})
    cur = _collected({"dpo": dpo([0.575, 0.577, 0.579])})
    assert [r.metric for r in _failures(cur, base)] == ["win_rate"]  # same world: a resolved drop of 0.045
    differ = ({**cur, "world_content": "a" * 16}, {**base, "world_content": "b" * 16})
    assert _failures(*differ) == []
    same = ({**cur, "world_content": "a" * 16}, {**base, "world_content": "a" * 16})
    assert [r.metric for r in _failures(*same)] == ["win_rate"]
    margin = {r.metric: r for r in compare(*differ)}["win_rate"].margin
    assert margin > 0.045


def test_a_world_build_names_its_content():
    from bench.cache import content_fingerprint

    a = content_fingerprint({"base/model.safetensors": [10, "ab"], "pairs.arrow": [5, "cd"]})
    b = content_fingerprint({"base/model.safetensors": [10, "ef"], "pairs.arrow": [5, "cd"]})
    assert a and b and a != b and len(a) == 16 and content_fingerprint(None) is None
