"""`[train] peft` (LoRA through TRL's `peft_config`) on a tiny local Hub world (tests/test_hub_world.py's 2-layer Llama,
word-level tokenizer and judge), and the FLOP meter with frozen weights checked against hand-computed counts.

The reference is the adapter-disabled base: the run loads one model (no `reference` component is metered), and at
step 1 DPO's loss is exactly log 2 with zero rewards (LoRA's B = 0: policy = reference)."""

from __future__ import annotations

import json
import textwrap

import pytest

from bench.budget import ComputeMeter
from bench.cli import main
from bench.errors import UserError
from bench.suite import expand, load_suite
from test_hub_world import assets, offline, write_models  # noqa: F401  (fixtures: tiny model, judge, data; no network)
from tiny_suite import one_thread, run_dirs, write_tiny_suite


# ------------------------------------------------------------------------------------------- FLOP meter
def tiny_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2, tie_word_embeddings=True))


def test_meter_counts_frozen_weights_activation_gradients_only():
    import torch
    from peft import LoraConfig, get_peft_model

    model = tiny_llama()
    n = sum(p.numel() for p in model.parameters())
    meter = ComputeMeter()
    meter.attach(model, "policy")  # before wrapping, as the adapters do: TRL injects LoRA later
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    n_lora = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    # q_proj and v_proj are 16x16 in each of 2 layers: A (2x16) + B (16x2) = 64 per module, 4 modules
    assert n_lora == 4 * 64
    ids = torch.randint(0, 50, (2, 5))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0  # 8 non-padding tokens
    peft_model.train()
    peft_model(input_ids=ids, attention_mask=mask).logits.sum().backward()
    tokens = 8
    # forward 2(N+L)t; backward: activation gradients through all 2(N+L)t, weight gradients for the adapters 2Lt
    assert meter.flops == 2 * (n + n_lora) * tokens + 2 * (n + n_lora) * tokens + 2 * n_lora * tokens
    before = meter.flops
    with torch.no_grad(), peft_model.disable_adapter():  # TRL's reference pass: a forward, no backward
        peft_model(input_ids=ids, attention_mask=mask)
    assert meter.flops - before == 2 * (n + n_lora) * tokens
    meter.detach()


def test_meter_unchanged_for_full_fine_tuning():
    import torch

    model = tiny_llama().train()
    n = sum(p.numel() for p in model.parameters())
    meter = ComputeMeter()
    meter.attach(model, "policy")
    model(input_ids=torch.randint(0, 50, (1, 7))).logits.sum().backward()
    assert meter.flops == 6 * n * 7
    meter.detach()


# --------------------------------------------------------------------------------------- validation
def test_peft_is_validated_hashed_and_refused_where_unsupported(tmp_path):
    suite = write_tiny_suite(tmp_path, algorithms="[algorithms.dpo]\n[algorithms.sft]\n")
    plain = {s.label: s for s in expand(load_suite(suite))}
    lora = {s.label: s for s in expand(load_suite(suite, ["train.peft={r = 4}"]))}
    assert lora["dpo"].run_id != plain["dpo"].run_id  # a LoRA run is another run ...
    assert lora["sft"].run_id == plain["sft"].run_id  # ... a training-free one is not
    assert lora["dpo"].options.peft.peft_kwargs() == {"r": 4, "lora_alpha": 32.0, "lora_dropout": 0.0,
                                                      "target_modules": "all-linear", "bias": "none",
                                                      "task_type": "CAUSAL_LM"}
    with pytest.raises(UserError) as err:
        load_suite(suite, ["train.peft={r = 0, alpha = 3}"])
    assert any("[train.peft].r: must be >= 1" in p for p in err.value.problems)
    assert any("[train.peft].alpha: unknown key" in p and "lora_alpha" in p for p in err.value.problems)
    fake = write_tiny_suite(tmp_path, name="p", train="peft = { r = 4 }", algorithms="[algorithms.fake]\n")
    with pytest.raises(UserError, match=r"fake \(\[algorithms.fake\]\) does not train LoRA adapters"):
        load_suite(fake)


def test_peft_per_entry_overrides_train_and_is_hashed_only_when_set(tmp_path):
    from bench.schema import as_dict

    plain = write_tiny_suite(tmp_path, name="plain", algorithms="[algorithms.dpo]\n[algorithms.sft]\n")
    both = write_tiny_suite(tmp_path, name="plain", algorithms="""[algorithms.dpo]
[algorithms.sft]
[algorithms.dpo_lora]
algorithm = "dpo"
peft = { r = 8, target_modules = ["c_attn"] }
""")
    base = {s.label: s for s in expand(load_suite(plain))}
    mixed = {s.label: s for s in expand(load_suite(both))}
    # entries without peft: same run ids, and the entry's canonical form is what it was before `peft` existed
    assert mixed["dpo"].run_id == base["dpo"].run_id and mixed["sft"].run_id == base["sft"].run_id
    assert mixed["dpo"].options.peft is None
    entry = next(e for e in load_suite(plain).entries if e.label == "dpo")
    # unset optional tables (peft, trl: bench/algorithms/trl_passthrough.py) stay out of the canonical form
    assert entry.canonical() == {k: v for k, v in as_dict(entry).items() if k not in ("peft", "trl")}
    assert mixed["dpo_lora"].options.peft.peft_kwargs()["r"] == 8
    assert mixed["dpo_lora"].options.peft.peft_kwargs()["target_modules"] == ["c_attn"]
    # [train].peft for all, one entry back to full fine-tuning, one with its own adapter (replaced, not merged)
    train = write_tiny_suite(tmp_path, name="plain", train="peft = { r = 4, lora_alpha = 8 }", algorithms="""
[algorithms.dpo]
peft = false
[algorithms.dpo_wide]
algorithm = "dpo"
peft = { r = 16 }
[algorithms.dpo_narrow]
algorithm = "dpo"
""")
    runs = {s.label: s for s in expand(load_suite(train))}
    assert runs["dpo"].options.peft is None and runs["dpo"].run_id == base["dpo"].run_id
    assert (runs["dpo_wide"].options.peft.r, runs["dpo_wide"].options.peft.lora_alpha) == (16, 32.0)
    assert (runs["dpo_narrow"].options.peft.r, runs["dpo_narrow"].options.peft.lora_alpha) == (4, 8.0)
    assert runs["dpo_wide"].run_id != runs["dpo_narrow"].run_id
    # --set reaches it too
    over = {s.label: s for s in expand(load_suite(plain, ["algorithms.dpo.peft={r = 2}"]))}
    assert over["dpo"].options.peft.r == 2 and over["dpo"].run_id != base["dpo"].run_id


def test_peft_per_entry_is_validated(tmp_path):
    bad = write_tiny_suite(tmp_path, name="bad", algorithms="""
[algorithms.dpo]
peft = true
[algorithms.ipo]
peft = { rank = 4, r = 0 }
[algorithms.sft]
peft = { r = 4 }
[algorithms.fake]
peft = { r = 4 }
""")
    with pytest.raises(UserError) as err:
        load_suite(bad)
    problems = err.value.problems
    assert any("[algorithms.dpo].peft: expected a table or false, got True" in p for p in problems), problems
    assert any("[algorithms.ipo.peft].rank: unknown key" in p for p in problems), problems
    assert any("[algorithms.ipo.peft].r: must be >= 1" in p for p in problems), problems
    assert any("[algorithms.sft].peft: sft trains nothing" in p for p in problems), problems
    assert any("[algorithms.fake].peft: fake ([algorithms.fake]) does not train LoRA adapters" in p
               for p in problems), problems
    assert len(problems) == 5, problems


# ------------------------------------------------------------------------------------ end to end (hub)
def run_lora_suite(assets, tmp, name: str, algorithms: str) -> dict:  # noqa: F811
    suite = tmp / f"{name}.toml"
    suite.write_text(textwrap.dedent(f"""\
        [suite]
        name = "{name}"
        seeds = [0]

        [world]
        kind = "hub"
        model = "{assets['model']}"
        judge = "{assets['judge']}"
        dataset = "{assets['data']}"
        max_heldout_pairs = 8
        eval_prompts = 12
        max_prompt_tokens = 40
        max_completion_tokens = 24
        bf16 = false
        gradient_checkpointing = false

        [budget]
        flops = 3e9
        max_steps = 3

        [eval]
        prompts = 8
        validation_prompts = 4
        max_new_tokens = 8
        curve_pairs = 4
        curve_generation_prompts = 4
        limit_prompts = 4
        limit_samples = 4
        bootstrap = 100

        [train]
        per_device_train_batch_size = 4
        learning_rate = 1e-2
        save_policy = "final"
        peft = {{ r = 4, lora_alpha = 8, target_modules = ["q_proj", "v_proj"] }}

        """) + textwrap.dedent(algorithms), encoding="utf-8")
    with one_thread():
        code = main(["run", str(suite), "--results", str(tmp / "results"), "--cache-dir", str(tmp / "cache"),
                     "--device", "cpu", "--no-report"])
    return {"code": code, "runs": run_dirs(tmp / "results" / name), "model": assets["model"]}


@pytest.fixture(scope="module")
def lora_runs(assets, tmp_path_factory):  # noqa: F811
    return run_lora_suite(assets, tmp_path_factory.mktemp("peft"), "lora", """\
        [algorithms.dpo]
        [algorithms.simpo]
        [algorithms.dpo_full]
        algorithm = "dpo"
        peft = false
        """)


@pytest.fixture(scope="module")
def online_lora_runs(assets, tmp_path_factory):  # noqa: F811
    return run_lora_suite(assets, tmp_path_factory.mktemp("peft_online"), "lora_online", """\
        [algorithms.ppo]
        response_length = 8
        rm_batch_size = 8
        rm_learning_rate = 1e-3
        [algorithms.online_dpo]
        max_new_tokens = 8
        rm_batch_size = 8
        rm_learning_rate = 1e-3
        """)


def test_lora_runs_finish_with_one_model_and_the_base_as_reference(lora_runs):
    assert lora_runs["code"] == 0
    for label, run in lora_runs["runs"].items():
        if label == "dpo_full":
            continue
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "finished" and metrics["steps"] == 3, label
        assert set(metrics["compute"]["flops_by_component"]) == {"policy"}, label  # no second copy metered
        config = json.loads((run / "config.json").read_text())
        assert config["train_options"]["peft"]["r"] == 4
    dpo = [json.loads(x) for x in (lora_runs["runs"]["dpo"] / "log_history.jsonl").read_text().splitlines()]
    assert dpo[0]["loss"] == pytest.approx(0.693147, abs=1e-6)  # LoRA starts at B = 0: policy = reference
    assert dpo[0]["rewards/chosen"] == 0.0 and dpo[0]["rewards/rejected"] == 0.0
    assert any(h.get("rewards/margins", 0.0) != 0.0 for h in dpo[1:])  # the adapter trains


def test_lora_checkpoint_is_the_merged_policy_plus_its_adapter(lora_runs):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    policy = lora_runs["runs"]["dpo"] / "policy"
    merged = AutoModelForCausalLM.from_pretrained(str(policy)).eval()
    base = AutoModelForCausalLM.from_pretrained(str(lora_runs["model"])).eval()
    adapter = json.loads((policy / "adapter" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and sorted(adapter["target_modules"]) == ["q_proj", "v_proj"]
    with_adapter = PeftModel.from_pretrained(base, str(policy / "adapter")).eval()
    ids = torch.tensor([[6, 7, 8, 9, 10, 11]])
    with torch.no_grad():
        a, b = merged(input_ids=ids).logits, with_adapter(input_ids=ids).logits
        with with_adapter.disable_adapter():
            ref = with_adapter(input_ids=ids).logits
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert (a - ref).abs().max() > 1e-4  # trained: the merged policy is not the base
    # only the targeted projections changed
    fresh = AutoModelForCausalLM.from_pretrained(str(lora_runs["model"])).state_dict()  # `base` now holds LoRA
    changed = {k for k, v in merged.state_dict().items() if not torch.equal(v, fresh[k])}
    assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed)


def changed_weights(policy_dir, base_dir) -> set[str]:
    import torch
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(str(policy_dir)).state_dict()
    base = AutoModelForCausalLM.from_pretrained(str(base_dir)).state_dict()
    return {k for k, v in merged.items() if not torch.equal(v, base[k])}


def test_ppo_and_online_dpo_train_adapters_against_the_adapter_disabled_base(online_lora_runs):
    assert online_lora_runs["code"] == 0
    for label, run in online_lora_runs["runs"].items():
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "finished" and metrics["steps"] == 3, label
        components = set(metrics["compute"]["flops_by_component"])
        assert "policy" in components and "reference" not in components, label  # no second copy metered
        adapter = json.loads((run / "policy" / "adapter" / "adapter_config.json").read_text())
        assert adapter["r"] == 4, label
        changed = changed_weights(run / "policy", online_lora_runs["model"])
        assert changed and all(k.endswith(("q_proj.weight", "v_proj.weight")) for k in changed), label
    ppo = [json.loads(x) for x in (online_lora_runs["runs"]["ppo"] / "log_history.jsonl").read_text().splitlines()]
    assert "value_model" in json.loads((online_lora_runs["runs"]["ppo"] / "metrics.json").read_text())[
        "compute"]["flops_by_component"]  # PPO's value model is a separate, fully trained model
    assert ppo[0]["objective/kl"] == pytest.approx(0.0, abs=1e-6)  # first rollout: B = 0, policy = reference
    online = [json.loads(x) for x in
              (online_lora_runs["runs"]["online_dpo"] / "log_history.jsonl").read_text().splitlines()]
    # step 1: policy = adapter-disabled reference (TRL logs the loss to 4 digits)
    assert online[0]["loss"] == pytest.approx(0.6931, abs=1e-4) and online[0]["objective/kl"] == 0.0
    assert online[0]["rewards/chosen"] == 0.0 and online[0]["rewards/rejected"] == 0.0
    assert any(h.get("rewards/margins", 0.0) != 0.0 for h in online[1:])  # the adapter trains


def test_one_suite_compares_lora_with_full_fine_tuning(lora_runs):
    full, lora = lora_runs["runs"]["dpo_full"], lora_runs["runs"]["dpo"]
    full_metrics = json.loads((full / "metrics.json").read_text())
    assert full_metrics["status"] == "finished" and full_metrics["steps"] == 3
    assert set(full_metrics["compute"]["flops_by_component"]) == {"policy", "reference"}  # a second copy
    assert json.loads((full / "config.json").read_text())["train_options"]["peft"] is None
    assert not (full / "policy" / "adapter").exists() and (lora / "policy" / "adapter").exists()
    # full fine-tuning changes every weight the loss reaches, LoRA only the adapted projections
    assert any(k.endswith("mlp.up_proj.weight") for k in changed_weights(full / "policy", lora_runs["model"]))
    # same data and steps: full = policy 6N·t + reference 2N·t; LoRA ≈ 6N·t in all (no weight gradients for the
    # frozen weights; its reference passes are the policy's, adapter disabled)
    lora_flops = json.loads((lora / "metrics.json").read_text())["compute"]["flops_by_component"]
    full_flops = full_metrics["compute"]["flops_by_component"]
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    n = sum(x.numel() for x in AutoModelForCausalLM.from_pretrained(str(lora_runs["model"])).parameters())
    adapter_file = lora / "policy" / "adapter" / "adapter_model.safetensors"
    adapters = sum(t.numel() for t in load_file(str(adapter_file)).values())
    tokens = full_flops["reference"] / (2 * n)  # the same batches in both runs
    assert full_flops["policy"] == 6 * n * tokens
    # forward 2(N+L)t + backward 2(N+L)t + 2Lt + reference 2(N+L)t
    assert lora_flops["policy"] == pytest.approx(6 * n * tokens + 8 * adapters * tokens, rel=1e-12)
    assert lora_flops["policy"] < full_flops["policy"] + full_flops["reference"]
