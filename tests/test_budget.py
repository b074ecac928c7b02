"""The compute meter (2·N·tokens per forward, 4·N·tokens per backward) and the callback that stops training
before a step would overrun the budget."""

from __future__ import annotations

import pytest
import torch

from bench.budget import (
    ComputeMeter,
    backward_flops,
    budget_callback,
    count_tokens,
    forward_flops,
)

PAD = 0


# ----------------------------------------------------------------------------------------------------------
# count_tokens


def test_count_tokens_full_forward_uses_mask_sum():
    ids = torch.tensor([[PAD, PAD, 5, 6, 7], [3, 4, 5, 6, 7], [PAD, 8, 9, 9, 9]])
    mask = (ids != PAD).long()
    assert count_tokens((), {"input_ids": ids, "attention_mask": mask}) == 3 + 5 + 4
    assert count_tokens((ids,), {"attention_mask": mask}) == 12  # input_ids passed positionally


def test_count_tokens_cached_generation_step_counts_last_mask_column():
    ids = torch.tensor([[11], [12], [13]])                       # one new token per row
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 0]])  # the whole prefix; row 3 finished (masked)
    assert count_tokens((), {"input_ids": ids, "attention_mask": mask}) == 2
    two_new = torch.tensor([[1, 2], [3, 4], [5, 6]])
    assert count_tokens((), {"input_ids": two_new, "attention_mask": mask}) == int(mask[:, -2:].sum())


def test_count_tokens_without_mask_is_numel():
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    assert count_tokens((), {"input_ids": ids}) == 6
    assert count_tokens((ids,), {}) == 6
    assert count_tokens((), {"input_ids": torch.tensor([1, 2, 3, 4])}) == 4  # 1-D: one sequence
    assert count_tokens((), {"inputs_embeds": torch.zeros(2, 7, 4)}) == 14
    assert count_tokens((), {}) == 0


# ----------------------------------------------------------------------------------------------------------
# the meter on a real (tiny) model


@pytest.fixture(scope="module")
def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32, bos_token_id=1,
                        eos_token_id=2, pad_token_id=PAD)
    return GPT2LMHeadModel(config)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied input/output embedding counted once


BATCH = torch.tensor([[PAD, PAD, 5, 6, 7, 8], [3, 4, 5, 6, 7, 8], [PAD, 9, 9, 9, 9, 9]])
MASK = (BATCH != PAD).long()
TOKENS = int(MASK.sum())  # 4 + 6 + 5 = 15 non-padding tokens


def test_forward_no_grad_is_two_n_tokens(tiny_gpt2):
    model = tiny_gpt2.eval()
    n = n_params(model)
    meter = ComputeMeter()
    meter.attach(model, "policy")
    try:
        with torch.no_grad():
            model(input_ids=BATCH, attention_mask=MASK)
        assert meter.flops == 2 * n * TOKENS == forward_flops(n, TOKENS)
        assert meter.tokens["policy"] == TOKENS
        model.train()  # train mode alone does not add a backward: no gradients flow
        with torch.no_grad():
            model(input_ids=BATCH, attention_mask=MASK)
        assert meter.flops == 2 * (2 * n * TOKENS)
    finally:
        meter.detach()
        model.eval()


def test_forward_with_grad_in_train_mode_books_backward(tiny_gpt2):
    model = tiny_gpt2.train()
    n = n_params(model)
    meter = ComputeMeter()
    meter.attach(model, "policy")
    try:
        out = model(input_ids=BATCH, attention_mask=MASK, labels=BATCH)
        out.loss.backward()  # the backward is booked with its forward, not counted again here
        assert meter.flops == 6 * n * TOKENS == forward_flops(n, TOKENS) + backward_flops(n, TOKENS)
        assert meter.by_component["policy"] == 6 * n * TOKENS
    finally:
        meter.detach()
        model.zero_grad(set_to_none=True)
        model.eval()


def test_reference_in_eval_mode_counts_forward_only(tiny_gpt2):
    from transformers import GPT2LMHeadModel

    ref = GPT2LMHeadModel(tiny_gpt2.config).eval()
    ref.requires_grad_(False)
    n = n_params(ref)
    meter = ComputeMeter()
    meter.attach(ref, "reference")
    try:
        with torch.no_grad():
            ref(input_ids=BATCH, attention_mask=MASK)
        ref(input_ids=BATCH, attention_mask=MASK)  # grad mode on, but a frozen eval-mode reference has no backward
        assert meter.by_component["reference"] == 2 * (2 * n * TOKENS)
        assert dict(meter.by_component) == {"reference": 4 * n * TOKENS}
    finally:
        meter.detach()


def test_explicit_n_params_and_detach(tiny_gpt2):
    model = tiny_gpt2.eval()
    meter = ComputeMeter()
    meter.attach(model.transformer, "reward_model", n_params=1000)  # a backbone hooked for the whole model
    with torch.no_grad():
        model(input_ids=BATCH, attention_mask=MASK)
    assert meter.flops == 2 * 1000 * TOKENS
    meter.detach()
    with torch.no_grad():
        model(input_ids=BATCH, attention_mask=MASK)
    assert meter.flops == 2 * 1000 * TOKENS  # detached: nothing more counted


def test_generation_with_kv_cache_counts_each_new_token_once(tiny_gpt2):
    model = tiny_gpt2.eval()
    n = n_params(model)
    model.generation_config.pad_token_id = PAD
    meter = ComputeMeter()
    meter.attach(model, "generation")
    new = 4
    try:
        with torch.no_grad():
            model.generate(input_ids=BATCH, attention_mask=MASK, max_new_tokens=new, min_new_tokens=new,
                           do_sample=True)
    finally:
        meter.detach()
    # prefill: the prompt's non-padding tokens; then one token per row for each of the remaining new tokens
    expected = TOKENS + BATCH.shape[0] * (new - 1)
    assert meter.tokens["generation"] == expected
    assert meter.flops == 2 * n * expected


def test_paused_charges_nothing(tiny_gpt2):
    model = tiny_gpt2.eval()
    meter = ComputeMeter()
    meter.attach(model, "policy")
    try:
        with meter.paused():
            with torch.no_grad():
                model(input_ids=BATCH, attention_mask=MASK)
            with meter.paused(), torch.no_grad():  # nested pause
                model(input_ids=BATCH, attention_mask=MASK)
            with torch.no_grad():
                model(input_ids=BATCH, attention_mask=MASK)
        assert meter.flops == 0 and sum(meter.tokens.values()) == 0
        with torch.no_grad():
            model(input_ids=BATCH, attention_mask=MASK)
        assert meter.flops == 2 * n_params(model) * TOKENS  # counting resumes after the pause
    finally:
        meter.detach()


def test_paused_stops_the_clock(monkeypatch):
    import bench.budget

    now = [100.0]
    monkeypatch.setattr(bench.budget.time, "perf_counter", lambda: now[0])
    meter = ComputeMeter("seconds", 10.0)
    meter.start_clock()
    now[0] += 3
    with meter.paused():
        now[0] += 50  # evaluation time is not the run's
        assert meter.seconds == pytest.approx(3)
    now[0] += 4
    assert meter.seconds == pytest.approx(7)
    assert not meter.exhausted()
    assert meter.exhausted(next_step_cost=3.5)
    now[0] += 3
    assert meter.exhausted()
    meter.stop_clock()
    assert meter.record()["train_seconds"] == pytest.approx(10)
    assert meter.fraction == pytest.approx(1.0)


def test_exhausted_semantics():
    meter = ComputeMeter("flops", 100.0)
    assert not meter.exhausted()
    assert not meter.exhausted(next_step_cost=100)  # exactly reaching the budget is allowed
    assert meter.exhausted(next_step_cost=101)
    meter.charge("policy", 60)
    assert not meter.exhausted(40) and meter.exhausted(41)
    meter.charge("policy", 40)
    assert meter.exhausted() and meter.exhausted(0)
    assert meter.fraction == pytest.approx(1.0)
    unlimited = ComputeMeter()
    unlimited.charge("policy", 1e30)
    assert not unlimited.exhausted(1e30) and unlimited.fraction == 0.0


def test_record_by_component():
    meter = ComputeMeter("flops", 1000.0)
    meter.charge("reward_model_training", 300, tokens=30)
    meter.charge("policy", 120, tokens=10)
    meter.charge("policy", 60, tokens=5)
    meter.charge("reference", 40, tokens=10)
    rec = meter.record()
    assert rec["flops"] == 520
    assert rec["flops_by_component"] == {"reward_model_training": 300, "policy": 180, "reference": 40}
    assert rec["tokens_by_component"] == {"reward_model_training": 30, "policy": 15, "reference": 10}
    assert rec["tokens"] == 55
    assert rec["budget_kind"] == "flops" and rec["budget"] == 1000.0
    assert rec["budget_fraction"] == pytest.approx(0.52)
    import json

    json.dumps(rec)  # the record goes into metrics.json as is


# ----------------------------------------------------------------------------------------------------------
# budget_callback


def simulate(meter, step_costs, *, on_step=None, max_steps=1000):
    """Drive the callback like transformers' Trainer does; returns (steps taken, the callback)."""
    from transformers import TrainerControl, TrainerState

    cb = budget_callback(meter, on_step=on_step)
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(None, state, control)
    steps = 0
    for cost in step_costs[:max_steps]:
        meter.charge("policy", cost)
        steps += 1
        state.global_step = steps
        control = cb.on_step_end(None, state, control) or control
        if control.should_training_stop:
            break
    cb.on_train_end(None, state, control)
    return steps, cb


def test_budget_callback_stops_before_a_step_that_would_overrun():
    meter = ComputeMeter("flops", 95.0)
    seen = []
    steps, cb = simulate(meter, [10.0] * 50, on_step=lambda state: seen.append((state.global_step, meter.flops)))
    # after 9 steps 90 is spent and a 10th would reach 100 > 95: stop there
    assert steps == 9 and meter.flops == 90.0 <= meter.budget
    assert cb.stopped_by_budget
    assert seen == [(s, 10.0 * s) for s in range(1, 10)]  # on_step sees the meter after each step

    meter = ComputeMeter("flops", 100.0)
    steps, cb = simulate(meter, [10.0] * 50)
    assert steps == 10 and meter.flops == 100.0  # exactly spending the budget is fine
    assert cb.stopped_by_budget


def test_budget_callback_with_varying_step_costs_ends_within_one_step():
    """Real steps differ in cost (padding, sequence lengths): the run ends within one step of the budget."""
    import random

    rng = random.Random(0)
    for trial in range(50):
        costs = [rng.uniform(8.0, 12.0) for _ in range(200)]
        budget = rng.uniform(50.0, 500.0)
        meter = ComputeMeter("flops", budget)
        steps, cb = simulate(meter, costs)
        assert cb.stopped_by_budget
        biggest = max(costs[:steps])
        assert budget - biggest < meter.flops <= budget + biggest, (trial, steps, meter.flops, budget)


def test_budget_callback_data_runs_out_first():
    meter = ComputeMeter("flops", 1000.0)
    steps, cb = simulate(meter, [10.0] * 5)
    assert steps == 5 and not cb.stopped_by_budget


def test_charge_before_train_begin_is_not_a_step_cost():
    meter = ComputeMeter("flops", 100.0)
    meter.charge("reward_model_training", 50.0)  # e.g. PPO's reward model, charged before the first update
    steps, cb = simulate(meter, [10.0] * 50)
    # if the 50 were taken as the first step's cost, training would stop after one step (60 + 60 > 100)
    assert steps == 5 and meter.flops == 100.0
    assert cb.last_step_cost == 10.0
    assert meter.record()["flops_by_component"] == {"reward_model_training": 50.0, "policy": 50.0}


def test_budget_callback_with_a_budget_already_spent_before_training():
    meter = ComputeMeter("flops", 100.0)
    meter.charge("reward_model_training", 100.0)
    assert meter.exhausted()  # adapters check this and skip training entirely


def test_budget_callback_stops_a_real_trainer(tiny_gpt2, tmp_path):
    """transformers' Trainer on the tiny model: fixed-length batches, so every step costs 6·N·B·L exactly."""
    from datasets import Dataset
    from transformers import GPT2LMHeadModel, Trainer, TrainingArguments

    torch.manual_seed(0)
    model = GPT2LMHeadModel(tiny_gpt2.config)
    n = n_params(model)
    batch, length = 4, 8
    rows = [[3 + (i + j) % 40 for j in range(length)] for i in range(64)]
    data = Dataset.from_dict({"input_ids": rows, "attention_mask": [[1] * length] * 64, "labels": rows})
    step_cost = 6 * n * batch * length
    meter = ComputeMeter("flops", 3.5 * step_cost)
    meter.attach(model, "policy")
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), per_device_train_batch_size=batch, max_steps=100,
                             learning_rate=1e-3, report_to="none", use_cpu=True, save_strategy="no",
                             disable_tqdm=True, logging_strategy="no", dataloader_num_workers=0)
    cb = budget_callback(meter)
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[cb])
    try:
        trainer.train()
    finally:
        meter.detach()
    assert trainer.state.global_step == 3
    assert meter.flops == 3 * step_cost <= meter.budget
    assert cb.stopped_by_budget
    assert meter.train_seconds > 0
