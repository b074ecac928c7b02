"""Every registered algorithm, for real (TRL trainers), on a tiny controlled world under a small FLOP budget.

One suite runs all of them once (seed 0) through `run_suite`; the tests below read its run folders. The world is
tiny (1-layer, 32-wide GPT-2; 96 training pairs) so the whole file takes well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import csv
import json
import math
import textwrap
from pathlib import Path

import pytest

from bench.algorithms.registry import all_algorithms
from bench.runner import plan_text, run_suite
from bench.suite import expand, load_suite
from tiny_suite import one_thread, tiny_suite_text

BUDGET = 1.2e9  # dry run: ~18 DPO steps, ~3 PPO and ~8 Online DPO updates after their reward model (~3e8)
BEST_OF_N = 4
REFERENCES = ["sft", "best_of_n", "scripted"]
TRAINED = ["dpo", "ipo", "cdpo", "rdpo", "slic", "apo_zero", "apo_down", "discopop", "sigmoid_norm", "simpo", "orpo", "ppo",
           "online_dpo", "rpo", "bco", "tr_dpo", "odpo", "cal_dpo", "rebel", "alphapo", "kto", "rloo", "grpo"]  # issue 14
# xpo and ppo_trl went with TRL's XPOTrainer / PPOTrainer (bench/algorithms/removed.py; issue 26)
EXPECTED = REFERENCES + TRAINED
NOT_HERE = {"fake", "toy"}  # torch-free stand-ins (tests/conftest.py registers `toy`)
ENTRY_SETTINGS = {  # the reward model gets a small share of the budget so PPO / Online DPO still update
    "best_of_n": f"n = {BEST_OF_N}",
    "ppo": "rm_epochs = 0.5\nrm_batch_size = 8",
    "online_dpo": "rm_epochs = 0.5\nrm_batch_size = 8",
    "rebel": "rm_epochs = 0.5\nrm_batch_size = 8",
    "rloo": "rm_epochs = 0.5\nrm_batch_size = 8",
    "grpo": "rm_epochs = 0.5\nrm_batch_size = 8",
    "tr_dpo": "ref_model_sync_steps = 4",  # ~18 steps: the reference is synced 4 times
}

HEADER = tiny_suite_text("adapters", flops=BUDGET, eval={"validation_prompts": None, "best_of_n": BEST_OF_N},
                         algorithms="")



def algorithms_under_test() -> list[str]:
    return sorted(set(all_algorithms()) - NOT_HERE)


@pytest.fixture(scope="session")
def adapter_suite(tmp_path_factory) -> Path:
    missing = sorted(set(EXPECTED) - set(all_algorithms()))
    assert not missing, f"algorithms not registered (does their module import? see pytest's header): {missing}"
    body = HEADER + "".join(f"\n[algorithms.{name}]\n{ENTRY_SETTINGS.get(name, '')}\n"
                            for name in algorithms_under_test())
    path = tmp_path_factory.mktemp("adapter_suite") / "adapters.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def adapter_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("adapter_cache")


@pytest.fixture(scope="session")
def adapter_runs(adapter_suite, adapter_cache, tmp_path_factory) -> dict[str, dict]:
    """label → {"dir", "config", "metrics", "curves"} for one seed-0 run of every algorithm."""
    suite = load_suite(adapter_suite)
    results = tmp_path_factory.mktemp("adapter_results")
    with one_thread():
        outcome = run_suite(suite, results_root=results, cache_dir=adapter_cache, device="cpu")
    runs = {}
    for spec in expand(suite):
        d = outcome.results_dir / "runs" / spec.run_id
        metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").is_file() else {}
        curves = read_csv(d / "curves.csv") if (d / "curves.csv").is_file() else []
        runs[spec.label] = {"dir": d, "spec": spec, "config": json.loads((d / "config.json").read_text()),
                            "metrics": metrics, "curves": curves, "outcome": outcome}
    return runs


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def finished(runs: dict, name: str) -> dict:
    run = runs[name]
    m = run["metrics"]
    if m.get("status") != "finished":
        tb = run["dir"] / "traceback.txt"
        tail = "\n".join(tb.read_text().splitlines()[-6:]) if tb.is_file() else ""
        pytest.fail(f"{name}: status {m.get('status', 'incomplete')}: {m.get('error')}\n{tail}")
    return m


@pytest.mark.parametrize("name", EXPECTED)
def test_run_finishes(adapter_runs, name):
    m = finished(adapter_runs, name)
    run = adapter_runs[name]
    for key in ("win_rate", "win_rate_run_lo", "win_rate_run_hi", "tie_rate", "gold_reward", "kl", "chosen_logp_delta",
                "rejected_logp_delta", "length", "flops", "wall_s"):
        assert isinstance(m.get(key), (int, float)) and math.isfinite(m[key]), f"{name}: {key} = {m.get(key)!r}"
    assert 0.0 <= m["win_rate_run_lo"] <= m["win_rate"] <= m["win_rate_run_hi"] <= 1.0
    assert (run["dir"] / "per_prompt.csv").is_file() and (run["dir"] / "per_pair.csv").is_file()
    assert (run["dir"] / "samples.jsonl").read_text().strip(), f"{name}: no samples"
    assert run["config"]["world_key"], f"{name}: config.json lacks the world it ran on"
    assert not (run["dir"] / "work").exists(), f"{name}: scratch folder left behind"


@pytest.mark.parametrize("name", TRAINED)
def test_trained_run_respects_the_budget(adapter_runs, name):
    m = finished(adapter_runs, name)
    comp = m["compute"]
    assert m["steps"] >= 1, f"{name}: no optimizer step"
    assert m["flops"] > 0 and m["flops"] == pytest.approx(comp["flops"])
    assert sum(comp["flops_by_component"].values()) == pytest.approx(m["flops"])
    assert comp["flops_by_component"].get("policy", 0) > 0, f"{name}: policy passes not metered"
    # never above the budget: the callback stops before a step that would overrun it
    assert m["flops"] <= BUDGET, f"{name}: {m['flops']:.4g} FLOPs > budget {BUDGET:.4g} ({m['steps']} steps)"
    if m["stop_reason"] == "budget":
        # ... and within about one step of it (stopped because the next step would not fit)
        before = comp["flops_by_component"].get("reward_model_training", 0.0)
        step = (m["flops"] - before) / m["steps"]
        assert BUDGET - m["flops"] < 2 * step, f"{name}: stopped {BUDGET - m['flops']:.3g} FLOPs early ({step=:.3g})"
    else:
        assert m["stop_reason"] in ("data_exhausted", "max_steps"), m["stop_reason"]
    assert m["chosen_logp_delta"] != 0.0, f"{name}: the policy did not move"


@pytest.mark.parametrize("name", EXPECTED)
def test_curves_have_step_zero_and_final_rows(adapter_runs, name):
    m = finished(adapter_runs, name)
    rows = adapter_runs[name]["curves"]
    assert rows, f"{name}: empty curves.csv"
    assert {"step", "flops"} <= rows[0].keys()
    steps = [int(float(r["step"])) for r in rows]
    assert 0 in steps
    assert max(steps) == m["steps"], f"{name}: last curve row at step {max(steps)}, run has {m['steps']} steps"
    final = [r for r in rows if int(float(r["step"])) == m["steps"]]
    assert float(final[-1]["flops"]) == pytest.approx(m["flops"], rel=1e-6)
    flops = [float(r["flops"]) for r in rows]
    assert flops == sorted(flops), f"{name}: FLOPs go backwards along the curve"


@pytest.mark.parametrize("name", TRAINED)
def test_learning_rate_reaches_its_peak(adapter_runs, name):
    """The schedule is laid out for the budget: warm-up ends well within the run (here: 5% warm-up)."""
    m = finished(adapter_runs, name)
    lrs = [log.get("learning_rate", log.get("lr")) for log in m["train_logs"]]
    lrs = [x for x in lrs if x is not None]
    assert lrs, f"{name}: no learning rate in the trainer logs"
    peak = adapter_runs[name]["config"]["params"]["learning_rate"]
    assert max(lrs) >= 0.5 * peak, f"{name}: learning rate never above {max(lrs):.3g} (peak {peak:g}): {lrs}"


def test_ppo_compute_record_includes_every_model(adapter_runs):
    m = finished(adapter_runs, "ppo")
    by = m["compute"]["flops_by_component"]
    for component in ("reward_model_training", "value_model", "reward_model", "reference", "policy"):
        assert by.get(component, 0) > 0, f"ppo: no {component} FLOPs in {by}"
    assert m["extra_reward_model"]["flops"] == pytest.approx(by["reward_model_training"])


def test_online_dpo_compute_record_includes_reward_model(adapter_runs):
    m = finished(adapter_runs, "online_dpo")
    by = m["compute"]["flops_by_component"]
    for component in ("reward_model_training", "reward_model", "reference", "policy"):
        assert by.get(component, 0) > 0, f"online_dpo: no {component} FLOPs in {by}"
    # the same reward model as PPO: the same settings, so the same charge
    ppo = finished(adapter_runs, "ppo")["compute"]["flops_by_component"]
    assert by["reward_model_training"] == pytest.approx(ppo["reward_model_training"])


def test_reward_model_users_are_charged_the_same_reward_model(adapter_runs):
    """rebel, rloo and grpo pay the shared reward model's training like ppo (the same settings: the same charge),
    and meter its scoring passes; rloo/grpo also meter their reference, rebel its reference."""
    ppo = finished(adapter_runs, "ppo")["compute"]["flops_by_component"]
    for name in ("rebel", "rloo", "grpo"):
        m = finished(adapter_runs, name)
        by = m["compute"]["flops_by_component"]
        for component in ("reward_model_training", "reward_model", "reference", "policy"):
            assert by.get(component, 0) > 0, f"{name}: no {component} FLOPs in {by}"
        assert by["reward_model_training"] == pytest.approx(ppo["reward_model_training"])
        assert m["extra_reward_model"]["flops"] == pytest.approx(by["reward_model_training"])
        assert math.isfinite(m["proxy_reward"]), f"{name}: the reward model it optimised is not reported"


def test_new_offline_variants_meter_what_they_use(adapter_runs):
    for name in ("rpo", "bco", "tr_dpo", "odpo", "cal_dpo", "kto"):
        by = finished(adapter_runs, name)["compute"]["flops_by_component"]
        assert set(by) == {"policy", "reference"}, f"{name}: {by}"
    assert set(finished(adapter_runs, "alphapo")["compute"]["flops_by_component"]) == {"policy"}


def test_offline_runs_meter_what_they_use(adapter_runs):
    for name in ("dpo", "ipo", "cdpo"):
        by = finished(adapter_runs, name)["compute"]["flops_by_component"]
        assert by.get("reference", 0) > 0, f"{name}: reference passes not metered ({by})"
        assert "reward_model_training" not in by
    for name in ("simpo", "orpo"):
        by = finished(adapter_runs, name)["compute"]["flops_by_component"]
        assert set(by) == {"policy"}, f"{name}: reference-free, yet {by}"


def test_sft_is_the_reference(adapter_runs):
    m = finished(adapter_runs, "sft")
    assert m["kl"] == 0.0
    assert m["flops"] == 0 and m["steps"] == 0 and m["stop_reason"] == "training_free"
    assert 0.2 <= m["win_rate"] <= 0.8  # π_ref against itself: 0.5 up to sampling noise on 16 prompts


def test_best_of_n_kl_is_closed_form(adapter_runs):
    m = finished(adapter_runs, "best_of_n")
    n = BEST_OF_N
    assert m["kl"] == pytest.approx(math.log(n) - (n - 1) / n, abs=1e-9)
    assert m["flops"] == 0 and m["stop_reason"] == "training_free"


def test_every_registered_algorithm_is_covered(adapter_runs):
    assert set(adapter_runs) == set(algorithms_under_test())
    assert set(EXPECTED) <= set(adapter_runs)


def test_dry_run_estimates_leave_updates_for_ppo(adapter_suite):
    text = plan_text(load_suite(adapter_suite))
    for name in TRAINED:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{name}_s0_"))
        steps = line.split()[3]
        assert steps.isdigit() and int(steps) >= 1, f"{name}: the budget leaves no step in the plan: {line}"


def test_dpo_is_deterministic(adapter_runs, adapter_suite, adapter_cache, tmp_path):
    first = finished(adapter_runs, "dpo")
    with one_thread():
        outcome = run_suite(load_suite(adapter_suite), results_root=tmp_path / "again", cache_dir=adapter_cache,
                            only=["dpo"], device="cpu")
    assert outcome.finished == [adapter_runs["dpo"]["spec"].run_id] and not outcome.failed
    second = json.loads((outcome.results_dir / "runs" / outcome.finished[0] / "metrics.json").read_text())
    assert second["status"] == "finished", second.get("error")
    for key in ("win_rate", "kl", "chosen_logp_delta", "rejected_logp_delta", "flops", "steps"):
        assert second[key] == first[key], f"dpo: {key} differs between identical runs: {first[key]} vs {second[key]}"


@pytest.mark.parametrize("name", ["odpo", "kto", "rloo"])
def test_new_trainers_are_deterministic(adapter_runs, adapter_suite, adapter_cache, tmp_path, name):
    """Issue 14: the loss hook (odpo), the unpaired data (kto) and sampling without a critic (rloo) give the same
    numbers for the same suite and seed."""
    first = finished(adapter_runs, name)
    with one_thread():
        outcome = run_suite(load_suite(adapter_suite), results_root=tmp_path / "again", cache_dir=adapter_cache,
                            only=[name], device="cpu")
    second = json.loads((outcome.results_dir / "runs" / outcome.finished[0] / "metrics.json").read_text())
    for key in ("win_rate", "kl", "chosen_logp_delta", "flops", "steps"):
        assert second[key] == first[key], f"{name}: {key} differs between identical runs: {first[key]} vs {second[key]}"


def test_divergence_guard_stops_real_dpo(adapter_runs, adapter_cache, tmp_path):
    """Absurd learning rates (issue 12): lr 1e4 explodes the loss, lr 1e6 turns the parameters to NaN. Both end
    as status `diverged` with the step, the quantity and its value, their training logs kept, and are not
    shown as wins (before the guard: lr 1e4 was "finished" with the best win rate on the board)."""
    body = HEADER.replace(f"flops = {BUDGET:g}\n", f"flops = {BUDGET:g}\nmax_steps = 4\n") + textwrap.dedent("""
        [algorithms.hot]
        algorithm = "dpo"
        learning_rate = 1e4

        [algorithms.boil]
        algorithm = "dpo"
        learning_rate = 1e6
        """)
    path = tmp_path / "diverge.toml"
    path.write_text(body, encoding="utf-8")
    with one_thread():
        outcome = run_suite(load_suite(path), results_root=tmp_path / "res", cache_dir=adapter_cache, device="cpu")
    assert not outcome.finished and not outcome.failed and len(outcome.diverged) == 2
    for spec in expand(load_suite(path)):
        m = json.loads((outcome.results_dir / "runs" / spec.run_id / "metrics.json").read_text())
        assert m["status"] == "diverged" and m["stop_reason"] == "diverged", m.get("error")
        assert m["diverged"]["step"] >= 1 and m["diverged"]["metric"] in ("loss", "grad_norm", "parameters")
        assert m["train_logs"] and "win_rate" not in m
    rows = read_csv(outcome.results_dir / "summary.csv")
    assert {r["status"] for r in rows} == {"diverged"} and all("diverged at step" in r["error"] for r in rows)


def test_no_interval_leaves_its_metric_range(adapter_runs):
    """Over a real suite's results: every interval column of summary.csv and of the report's leaderboard lies in
    its metric's range (win rate in [0, 1], KL >= 0, ...) and contains its point estimate."""
    from bench.evaluation.uncertainty import bounds_of
    from bench.reporting.tables import leaderboard
    from bench.results import summary_frame

    results_dir = next(iter(adapter_runs.values()))["outcome"].results_dir
    frame = summary_frame(results_dir)
    done = frame[frame["status"] == "finished"]
    assert len(done) >= len(EXPECTED) - 1
    for m in ("win_rate", "gold_reward", "kl"):
        low, high = bounds_of(m)
        for lo_col, hi_col in ((f"{m}_lo", f"{m}_hi"), (f"{m}_run_lo", f"{m}_run_hi")):
            lo, hi, mean = (done[c].astype(float) for c in (lo_col, hi_col, m))
            assert ((lo >= low) & (hi <= high) & (lo <= hi)).all(), (m, done[["run_id", lo_col, hi_col]])
            assert ((lo <= mean.clip(low, high) + 1e-12) & (mean.clip(low, high) <= hi + 1e-12)).all(), m
    board = leaderboard(frame)
    for m in ("win_rate", "gold_reward", "kl", "pref_accuracy", "length", "chosen_fell_fraction", "flops", "wall_s"):
        low, high = bounds_of(m)
        rows = board[board[m].notna()]
        assert ((rows[f"{m}_lo"] >= low) & (rows[f"{m}_hi"] <= high)).all(), (m, rows[["setting", f"{m}_lo"]])
        assert ((rows[f"{m}_lo"] <= rows[m] + 1e-9) & (rows[m] <= rows[f"{m}_hi"] + 1e-9)).all(), m


def test_dpo_precompute_charges_one_reference_pass_over_the_pairs(adapter_cache, tmp_path):
    """`precompute_ref_log_probs = true`: no reference forward per step; instead one charged pass over every
    training pair, at the reference's 2·N FLOPs per token (the same rate as the per-step reference), so the
    saved compute buys more steps under the same budget."""
    path = tmp_path / "pre.toml"
    path.write_text(HEADER.replace('name = "adapters"', 'name = "pre"') + '\n[algorithms.dpo]\n'
                    'precompute_ref_log_probs = true\n\n[algorithms.dpo_ref]\nalgorithm = "dpo"\n', encoding="utf-8")
    with one_thread():
        out = run_suite(load_suite(path), results_root=tmp_path / "r", cache_dir=adapter_cache, device="cpu")
    runs = {s.label: json.loads((out.results_dir / "runs" / s.run_id / "metrics.json").read_text())
            for s in expand(load_suite(path))}
    pre, ref = runs["dpo"], runs["dpo_ref"]
    assert pre["status"] == ref["status"] == "finished"
    by_pre, tok_pre = pre["compute"]["flops_by_component"], pre["compute"]["tokens_by_component"]
    by_ref, tok_ref = ref["compute"]["flops_by_component"], ref["compute"]["tokens_by_component"]
    assert "reference" not in by_pre and by_pre["reference_precompute"] > 0
    per_token = by_ref["reference"] / tok_ref["reference"]  # 2·N
    assert by_pre["reference_precompute"] / tok_pre["reference_precompute"] == pytest.approx(per_token, rel=1e-3)
    pair_tokens = tok_ref["policy"] / (ref["steps"] * 8)  # batch of 8 pairs per step
    assert tok_pre["reference_precompute"] == pytest.approx(96 * pair_tokens, rel=0.1)  # every pair, once
    assert pre["steps"] > ref["steps"]
