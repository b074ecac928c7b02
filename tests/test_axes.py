"""Suite-level sweep axes (bench/suite.py AXES): world.seed, budget.flops and budget.view lists expand like a
hyper-parameter sweep; the budget view is validated, recorded, and shared by runs it cannot change."""

from __future__ import annotations

import pytest

from bench.budget import ComputeMeter
from bench.errors import UserError
from bench.suite import expand, load_suite

SUITE = """\
[suite]
name = "axes"
seeds = [0, 1]

[world]
kind = "controlled"
seed = {world_seed}

[budget]
flops = {flops}
view = {view}

[algorithms.sft]

[algorithms.dpo]

[algorithms.ppo]
"""


def _suite(tmp_path, world_seed="0", flops="1e11", view='"end_to_end"', extra=()):
    path = tmp_path / "axes.toml"
    path.write_text(SUITE.format(world_seed=world_seed, flops=flops, view=view), encoding="utf-8")
    return load_suite(path, list(extra))


def test_world_seed_expands_like_a_sweep(tmp_path):
    specs = expand(_suite(tmp_path, world_seed="[0, 1, 2]"))
    assert sorted({s.world.seed for s in specs}) == [0, 1, 2]
    assert len(specs) == 3 * 3 * 2  # (sft, dpo, ppo) x 3 worlds x 2 seeds
    assert len({s.run_id for s in specs}) == len(specs) and all("_w" in s.run_id for s in specs)


def test_budget_flops_list_sweeps_trained_runs_only(tmp_path):
    specs = expand(_suite(tmp_path, flops="[5e10, 1e11, 2e11]"))
    dpo = [s for s in specs if s.label == "dpo"]
    assert sorted({s.budget.flops for s in dpo}) == [5e10, 1e11, 2e11] and len(dpo) == 6
    assert len([s for s in specs if s.label == "sft"]) == 2  # training-free: the budget does not apply


def test_budget_views_share_runs_without_a_reward_model(tmp_path):
    specs = expand(_suite(tmp_path, view='["end_to_end", "amortised"]'))
    ppo = [s for s in specs if s.label == "ppo"]
    dpo = [s for s in specs if s.label == "dpo"]
    assert sorted(s.budget.view for s in ppo) == ["amortised"] * 2 + ["end_to_end"] * 2
    assert len(dpo) == 2 and {dict(s.axes)["budget_view"] for s in dpo} == {"both"}
    assert {s.budget.view for s in dpo} == {"end_to_end"}


def test_budget_view_is_validated(tmp_path):
    with pytest.raises(UserError, match="view"):
        _suite(tmp_path, view='"halfway"')
    with pytest.raises(UserError, match="amortised view needs a FLOP budget"):
        load_suite(_write(tmp_path, 'seconds = 60\nview = "amortised"'))


def _write(tmp_path, budget: str):
    path = tmp_path / "seconds.toml"
    path.write_text(SUITE.format(world_seed=0, flops=0, view=0).split("[budget]")[0] + "[budget]\n" + budget + "\n\n[algorithms.ppo]\n", encoding="utf-8")
    return path


def test_amortised_meter_books_the_reward_model_apart():
    meter = ComputeMeter("flops", 100.0, amortised=frozenset({"reward_model_training"}))
    meter.charge("reward_model_training", 70.0, 10)
    meter.charge("policy", 20.0, 5)
    assert meter.flops == 20.0 and meter.flops_amortised == 70.0 and meter.fraction == pytest.approx(0.2)
    record = meter.record()
    assert record["flops_by_component"]["reward_model_training"] == 70.0 and record["flops_amortised"] == 70.0
    end_to_end = ComputeMeter("flops", 100.0)
    end_to_end.charge("reward_model_training", 70.0, 10)
    assert end_to_end.flops == 70.0 and end_to_end.flops_amortised == 0.0


def test_pair_source_expands_like_a_sweep_and_keeps_the_reference_per_world(tmp_path):
    """`[world] pair_source` as a list: one world per value (base / weak / mix pairs), every entry under each,
    the training-free sft run kept once per world (its per-pair metrics read that world's pairs)."""
    path = tmp_path / "pairs.toml"
    path.write_text(SUITE.format(world_seed=0, flops="1e11", view='"end_to_end"').replace(
        "seed = 0\n", 'seed = 0\npair_source = ["base", "weak"]\n', 1), encoding="utf-8")
    specs = expand(load_suite(path))
    assert len(specs) == 3 * 2 * 2  # (sft, dpo, ppo) x 2 pair sources x 2 seeds
    assert sorted({s.world.pair_source for s in specs}) == ["base", "weak"]
    assert {dict(s.axes)["pair_source"] for s in specs if s.label == "sft"} == {"base", "weak"}
    assert all("_pairs-weak_" in s.run_id or "_pairs-base_" in s.run_id for s in specs)
    base = [s for s in specs if s.world.pair_source == "base"]
    assert {s.run_id[-8:] for s in base} == {s.run_id[-8:] for s in expand(_suite(tmp_path))}  # same hashes
    bad = tmp_path / "bad.toml"
    bad.write_text(path.read_text().replace('"weak"]', '"strong"]'), encoding="utf-8")
    with pytest.raises(UserError, match="pair_source"):
        load_suite(bad)


def test_dry_run_forecast_charges_the_reward_model_only_end_to_end(tmp_path):
    """The plan's step forecast of a reward-model user: end to end its budget first pays the reward model's
    training; amortised that training is paid apart, so the same budget forecasts more steps."""
    from bench.algorithms.registry import get_algorithm

    path = tmp_path / "forecast.toml"
    path.write_text(SUITE.format(world_seed=0, flops="5e11", view='["end_to_end", "amortised"]')
                    + "\n[algorithms.online_dpo]\n\n[algorithms.rloo]\n\n[algorithms.rebel]\n", encoding="utf-8")
    specs = expand(load_suite(path))
    sizes = {"n_params": 430_000, "tokens_per_sequence": 17, "pairs": 4000}
    for name in ("ppo", "online_dpo", "rloo", "rebel"):
        est = {s.budget.view: get_algorithm(name).estimate(s, sizes) for s in specs if s.label == name and s.seed == 0}
        assert est["amortised"]["steps"] > est["end_to_end"]["steps"] > 0
        assert "charged first" in est["end_to_end"]["note"] and "paid apart" in est["amortised"]["note"]


def test_an_axis_problem_is_said_once(tmp_path):
    """Every extra value of an axis is validated with its whole section: a problem of that section is one line,
    not one per value."""
    path = tmp_path / "dup.toml"
    path.write_text(SUITE.format(world_seed="[0, 1, 2]", flops="1e11", view='"end_to_end"').replace(
        "seed = [0, 1, 2]\n", "seed = [0, 1, 2]\npairs = 0\n", 1), encoding="utf-8")
    with pytest.raises(UserError) as err:
        load_suite(path)
    lines = [p for p in err.value.problems if "pairs" in p]
    assert len(lines) == 1, err.value.problems
