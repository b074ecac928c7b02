"""Train loop shared by the reference-free offline adapters (SimPO through CPOTrainer, ORPO): same data, same
meter and callbacks as the DPO family; only the TRL trainer and its loss settings differ."""

from __future__ import annotations

from bench.algorithms.base import TrainOutcome


def estimate_reference_free(spec, sizes: dict) -> dict:
    p = spec.param_dict
    batch = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
    step = 6 * sizes["n_params"] * sizes["tokens_per_sequence"] * 2 * batch
    budget = spec.budget.amount if spec.budget.kind == "flops" else None
    return {"step_flops": step, "steps": int(budget // step) if budget else None, "note": "no reference model"}


def train_reference_free(ctx, trainer_cls, config_cls, **loss_kwargs) -> TrainOutcome:
    from bench.algorithms import trl_common as tc
    from bench.modeling import load_causal_lm, load_tokenizer

    p, world = ctx.params, ctx.world
    tok = load_tokenizer(world.tokenizer_dir)
    train = world.load_pairs("train")
    policy = load_causal_lm(world.base_model_dir, ctx.device).train()
    n_params = sum(x.numel() for x in policy.parameters())
    batch = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
    step_flops = tc.policy_step_factor(ctx, reference=False) * n_params * tc.pair_tokens(train, tok) * batch
    args, epoch_steps = tc.training_args(ctx, config_cls, rows=len(train), step_flops=step_flops, max_length=tc.max_length(ctx),
                                         max_completion_length=tc.max_completion_length(ctx), **loss_kwargs)
    tc.attach(ctx.meter, policy, "policy")
    budget_cb, cbs = tc.callbacks(ctx)
    peft = tc.peft_config(ctx)
    trainer = trainer_cls(model=policy, args=args, train_dataset=train, processing_class=tok, callbacks=cbs,
                          **({"peft_config": peft} if peft else {}))
    tc.quiet(trainer)
    trainer.train()
    out = tc.save_policy(trainer, tok, ctx.work_dir / "policy")
    steps = trainer.state.global_step
    return TrainOutcome(policy_dir=out, steps=steps, epochs=steps / epoch_steps, stop_reason=tc.stop_reason(budget_cb, ctx, steps),
                        logs=tc.log_history(trainer))
