"""[algorithms.<label>.trl]: TRL config fields passed through (bench/algorithms/trl_passthrough.py). Validated at
`bench validate` against the trainer's TRL config dataclass (unknown key with the closest field, harness-owned
fields refused with the suite field that sets them, wrong types, TRL's own checks, algorithms without a TRL config);
part of the run's hash and config.json; the value reaches the TRL config through the code path every adapter uses
(trl_common.training_args), built without training."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.suite import expand, load_suite

HEAD = """
[suite]
name = "p"
[budget]
flops = 1e9
"""


def suite(tmp_path: Path, body: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(HEAD + body), encoding="utf-8")
    return path


def problems(tmp_path: Path, body: str) -> list[str]:
    with pytest.raises(UserError) as err:
        load_suite(suite(tmp_path, body))
    return err.value.problems


def test_each_bad_key_is_one_line_naming_file_table_key_and_fix(tmp_path):
    lines = problems(tmp_path, """
        [algorithms.dpo]
        learning_rate = 1e-3
        [algorithms.dpo.trl]
        truncaton_mode = "keep_start"
        beta = 0.2
        max_steps = 3
        num_train_epochs = 2
        loss_type = ["ipo"]
        seed = 4
        adam_beta2 = "high"
        lerning_rate = 1e-4
        """)
    where = str(tmp_path / "p.toml")
    assert all(line.startswith(f"{where}: [algorithms.dpo.trl].") and "\n" not in line for line in lines), lines
    text = "\n".join(lines)
    assert "truncaton_mode: is not a field of DPOConfig; did you mean 'truncation_mode'?" in text
    assert "beta: is a hyper-parameter of dpo; set it as [algorithms.dpo].beta" in text
    assert "max_steps: the harness sets this field (budget and comparison); use [budget]" in text
    assert "num_train_epochs: the harness sets this field (budget and comparison); use [budget].max_epochs" in text
    assert "loss_type: the harness sets this field" in text and "`bench list dpo`" in text
    assert "seed: the harness sets this field (budget and comparison); use [suite].seeds" in text
    assert "adam_beta2: expected float, got str 'high'" in text
    assert ("lerning_rate: is not a field of DPOConfig; did you mean 'learning_rate'? (not here: use "
            "[algorithms.dpo].learning_rate)") in text
    assert len(lines) == 8


def test_algorithms_without_a_trl_config_refuse_the_table(tmp_path):
    text = "\n".join(problems(tmp_path, """
        [algorithms.ppo]
        learning_rate = 1e-3
        trl = { adam_beta2 = 0.99 }
        [algorithms.sft]
        trl = { adam_beta2 = 0.99 }
        [algorithms.orpo]
        learning_rate = 1e-3
        trl = 3
        """))
    assert "[algorithms.ppo.trl]: ppo is the project's own PPO loop" in text and "`bench list ppo`" in text
    assert "[algorithms.sft.trl]: sft trains nothing" in text
    assert "[algorithms.orpo.trl]: must be a table of ORPOConfig fields, got int" in text


def test_trl_own_checks_run_at_validation(tmp_path):
    text = "\n".join(problems(tmp_path, """
        [algorithms.dpo]
        learning_rate = 1e-3
        [algorithms.dpo.trl]
        optim = "adamw_nonsense"
        """))
    assert "[algorithms.dpo.trl]: DPOConfig refuses these values: ValueError: " in text, text
    assert "adamw_nonsense" in text and len(text.splitlines()) == 1


def test_a_trl_field_is_part_of_the_run_id_and_config_json(tmp_path, monkeypatch, capsys):
    base = "[algorithms.dpo]\nlearning_rate = 1e-3\n"
    plain = expand(load_suite(suite(tmp_path, base, "a.toml")))[0]
    one = expand(load_suite(suite(tmp_path, base + "[algorithms.dpo.trl]\nadam_beta2 = 0.98\n", "b.toml")))[0]
    other = expand(load_suite(suite(tmp_path, base + "[algorithms.dpo.trl]\nadam_beta2 = 0.95\n", "c.toml")))[0]
    assert len({plain.run_id, one.run_id, other.run_id}) == 3
    assert "trl" not in plain.canonical()  # suites without the table keep every run id they had
    assert one.canonical()["trl"] == {"adam_beta2": 0.98} and one.trl_dict == {"adam_beta2": 0.98}
    same = expand(load_suite(suite(tmp_path, base + "[algorithms.dpo.trl]\nadam_beta2 = 0.98\n", "d.toml")))[0]
    assert same.run_id == one.run_id
    # config.json records it (the torch-free path: write_config is what every run writes first)
    from bench.execute import write_config

    write_config(one, tmp_path / "run", None)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["trl"] == {"adam_beta2": 0.98}
    assert main(["validate", str(tmp_path / "b.toml")]) == 0


@pytest.mark.parametrize("algorithm, config, field, value", [
    ("dpo", "DPOConfig", "truncation_mode", "keep_start"),
    ("simpo", "CPOConfig", "adam_beta2", 0.97),
    ("kto", "KTOConfig", "adam_epsilon", 1e-6),
])
def test_the_value_reaches_the_trl_config(tmp_path, algorithm, config, field, value):
    """trl_common.training_args, the one place every TRL adapter builds its config, with the suite's fields on
    top of the harness's; the harness's own settings are untouched."""
    from bench.algorithms import trl_common as tc
    from bench.algorithms.registry import get_algorithm
    from bench.algorithms.trl_passthrough import config_class

    body = f"[algorithms.{algorithm}]\nlearning_rate = 1e-3\n[algorithms.{algorithm}.trl]\n{field} = {json.dumps(value)}\n"
    spec = expand(load_suite(suite(tmp_path, body)))[0]
    cls = config_class(get_algorithm(algorithm))
    assert cls.__name__ == config
    ctx = SimpleNamespace(spec=spec, params=spec.param_dict, meter=SimpleNamespace(flops=0.0), device="cpu",
                          work_dir=tmp_path / "work", step_cap="")
    args, _ = tc.training_args(ctx, cls, rows=64, step_flops=1e6)
    assert getattr(args, field) == value
    assert args.learning_rate == 1e-3 and args.seed == spec.seed and args.report_to in ("none", [])


def test_a_clash_with_what_the_adapter_sets_stops_the_run_with_one_line(tmp_path):
    """A plug-in algorithm passing a field the table check could not foresee: the run stops, it never wins."""
    from bench.algorithms import trl_common as tc
    from bench.algorithms.trl_passthrough import config_class
    from bench.algorithms.registry import get_algorithm

    spec = expand(load_suite(suite(tmp_path, "[algorithms.dpo]\nlearning_rate = 1e-3\n[algorithms.dpo.trl]\n"
                                             "truncation_mode = \"keep_start\"\n")))[0]
    ctx = SimpleNamespace(spec=spec, params=spec.param_dict, meter=SimpleNamespace(flops=0.0), device="cpu",
                          work_dir=tmp_path / "work", step_cap="")
    with pytest.raises(UserError) as err:
        tc.training_args(ctx, config_class(get_algorithm("dpo")), rows=64, step_flops=None,
                         truncation_mode="keep_end")
    assert err.value.problems == ["[algorithms.dpo.trl].truncation_mode: dpo sets this TRL field itself; remove it "
                                  "from the table"]


def test_bench_list_names_each_algorithms_trl_config(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: nxt for line, nxt in zip(out.splitlines(), out.splitlines()[1:])
             if line.startswith("  ") and not line.startswith("   ")}
    assert "TRL config: DPOConfig ([algorithms.<label>.trl])" in lines["ipo"]
    assert "TRL config: CPOConfig" in lines["simpo"] and "TRL config" not in lines["ppo"]
