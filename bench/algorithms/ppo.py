"""`ppo_trl`: TRL 1.12's PPO, kept beside our own `ppo` (bench/algorithms/ppo_rlhf.py) as the parity reference
(TRL removed this trainer in 1.13). Reward model on the same pairs, then
`trl.experimental.ppo.PPOTrainer` against it with a per-token KL penalty `kl_coef`·(log π − log π_ref).

Compute honesty: the reward model's training FLOPs (a shared, cached stage) are charged to this run before the
first update, and the meter counts generation, the reference, reward and value passes and both backward
passes of every PPO epoch. The value model starts from the reward model (InstructGPT). Sampling temperature
is 1 (TRL's default 0.7 would optimise a different policy from the one evaluated).

TRL 1.12's PPO loop ignores `should_training_stop`, so the budget stop raises `BudgetSpent` from the
callback and the trained policy (updated in place) is saved from there.

LoRA (`[train] peft`): TRL applies `peft_config` to the policy only; the reference is the adapter-disabled policy
(TRL's `null_ref_context`, given no `ref_model`), and the value model (from the reward model) stays fully trained:
the optimizer holds the adapters and every value-model weight.
"""

from __future__ import annotations

import contextlib
import io

from bench.algorithms.base import TrainOutcome
from bench.algorithms.ppo_rlhf import PPOParams  # TRL's PPO fields, shared with our ppo (which outlives this module)
from bench.algorithms.registry import Algorithm, register
from bench.algorithms.reward_model import rm_forecast, use_reward_model


class BudgetSpent(Exception):
    """Raised from on_step_end: the only way to stop TRL 1.12's PPO loop early."""


@register("ppo_trl")
class PPOTRL(Algorithm):
    summary = "TRL 1.12's PPO (parity reference for our `ppo`): reward model on the same pairs + trl.experimental.ppo"
    Params = PPOParams
    paper = "Ouyang et al. 2022 (InstructGPT), arXiv:2203.02155; Schulman et al. 2017 (PPO), arXiv:1707.06347"
    family = "rlhf"
    uses_reward_model = True
    implicit_reward = "reward_model"
    supports_peft = True

    @classmethod
    def estimate(cls, spec, sizes: dict) -> dict:
        p = spec.param_dict
        n, t = sizes["n_params"], sizes["tokens_per_sequence"]
        b = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        rollout = 4 * 2 * n * t * b            # generation + reference + reward + value forwards
        update = p["num_ppo_epochs"] * 2 * 6 * n * t * b  # policy and value, forward + backward
        rm, note = rm_forecast(spec, sizes)
        budget = spec.budget.amount if spec.budget.kind == "flops" else None
        return {"step_flops": rollout + update,
                "steps": int(max(0.0, budget - rm) // (rollout + update)) if budget else None, "note": note}

    def train(self, ctx) -> TrainOutcome:
        from datasets import Dataset
        from transformers import TrainerCallback
        from trl.experimental.ppo import PPOConfig, PPOTrainer

        from bench.algorithms import trl_common as tc
        from bench.modeling import load_causal_lm, load_scalar_model, load_tokenizer

        p, world = ctx.params, ctx.world
        rm_dir, rm_record = use_reward_model(ctx)
        tok = load_tokenizer(world.tokenizer_dir)
        tok.padding_side = "left"  # PPO's collator pads with the tokenizer's side; generation needs left
        prompts = list(world.load_pairs("train")["prompt"])
        train = Dataset.from_dict({"input_ids": [tok(x, add_special_tokens=False)["input_ids"] for x in prompts]})
        policy = load_causal_lm(world.base_model_dir, ctx.device).train()
        peft = tc.peft_config(ctx)
        ref = None if peft else load_causal_lm(world.base_model_dir, ctx.device)  # LoRA: the adapter-disabled base
        reward = load_scalar_model(rm_dir, ctx.device).eval()
        value = load_scalar_model(rm_dir, ctx.device)
        b = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        n_params = sum(x.numel() for x in policy.parameters())
        seq = tc.pair_tokens(world.load_pairs("train"), tok) / 2  # prompt + a completion, measured on the pairs
        # rollout passes + PPO epochs (value fwd + bwd 6, policy 6 or 4 with LoRA)
        step_flops = (4 * 2 + p["num_ppo_epochs"] * (6 + tc.policy_step_factor(ctx, reference=False))) \
            * n_params * seq * b
        args, epoch_steps = tc.training_args(
            ctx, PPOConfig, rows=len(train), step_flops=step_flops, margin=3.0, kl_coef=p["kl_coef"],
            num_ppo_epochs=p["num_ppo_epochs"], num_mini_batches=p["num_mini_batches"], cliprange=p["cliprange"],
            vf_coef=p["vf_coef"], missing_eos_penalty=p["missing_eos_penalty"], response_length=p["response_length"],
            stop_token="eos", temperature=1.0, num_sample_generations=0, local_rollout_forward_batch_size=b,
        )
        args.total_episodes = b * args.max_steps  # PPO sizes itself by episodes; the budget stops it earlier
        budget_cb, cbs = tc.callbacks(ctx, get_policy=lambda kw: policy)

        class RaiseOnStop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if control.should_training_stop:
                    raise BudgetSpent

        trainer = PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref, reward_model=reward,
                             value_model=value, train_dataset=train, eval_dataset=None,
                             callbacks=[*cbs, RaiseOnStop()], **({"peft_config": peft} if peft else {}))
        tc.quiet(trainer)
        # hooks after construction: nothing is deep-copied after this point
        tc.attach(ctx.meter, policy, "policy")
        if ref is not None:  # with LoRA the reference passes are the policy's (adapter disabled, forward only)
            tc.attach(ctx.meter, ref, "reference")
        tc.attach(ctx.meter, reward, "reward_model")
        tc.attach(ctx.meter, value, "value_model")
        if ctx.meter.exhausted():
            steps = 0  # the reward model alone spent the budget: PPO gets no update, and says so
            budget_cb.stopped_by_budget = True
        else:
            try:
                with contextlib.redirect_stdout(io.StringIO()):  # TRL's PPO prints "===training policy==="
                    trainer.train()
            except BudgetSpent:
                pass
            finally:
                ctx.meter.stop_clock()
            steps = trainer.state.global_step
        out = tc.save_policy(trainer.policy_model if peft else policy, tok, ctx.work_dir / "policy")
        return TrainOutcome(policy_dir=out, steps=steps, epochs=steps * b / max(len(train), 1),
                            stop_reason=tc.stop_reason(budget_cb, ctx, steps), proxy_reward_dir=rm_dir,
                            logs=tc.log_history(trainer), extra={"reward_model": rm_record})
