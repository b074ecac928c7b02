"""Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"): the DPO loss on pairs
sampled from the *current* policy and labelled by the same reward model PPO uses — online data without RL
machinery (no value model, no advantage estimation). `trl.experimental.online_dpo.OnlineDPOTrainer`.

Fixes for TRL 1.12 on this stack (measured, /tmp probe notes in the issue log):
- the reward model is called through a small callable that rebuilds "prompt completion<eos>" exactly as the
  reward model was trained (passing the model directly makes TRL join without a space and drop the end token);
- TRL scores left-padded prompt+completion without position ids; GPT-2 does not derive them from the mask,
  so a pre-hook supplies position_ids = cumsum(mask) − 1 on policy and reference.
The reward model's training FLOPs are charged to this run, as for `ppo`. With LoRA (`[train] peft`) TRL wraps the
policy and, given no `ref_model`, scores the reference with the adapter disabled (no second copy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.algorithms.base import TrainOutcome
from bench.algorithms.registry import Algorithm, TrainParams, register
from bench.algorithms.reward_model import RewardModelParams, rm_forecast, use_reward_model


@dataclass(frozen=True)
class OnlineDPOParams(RewardModelParams, TrainParams):
    beta: float = field(default=0.1, metadata={"gt": 0})
    max_new_tokens: int = field(default=32, metadata={"min": 1})
    missing_eos_penalty: float = field(default=1.0, metadata={"min": 0})


def add_position_ids(model) -> None:
    """Pre-hook: position ids from the attention mask for left-padded full-sequence calls (no KV cache)."""
    def hook(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if kwargs.get("position_ids") is None and mask is not None and kwargs.get("cache") is None \
                and kwargs.get("past_key_values") is None:
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
            return args, kwargs
        return None

    model.register_forward_pre_hook(hook, with_kwargs=True)


def reward_function(ctx, tok, reward):
    """TRL reward function `(prompts, completions, completion_ids) -> scores` that calls the shared reward model
    on "prompt completion<eos>" exactly as it was trained (shared by online_dpo, rloo and grpo)."""
    import torch

    world = ctx.world

    def reward_fn(prompts, completions, completion_ids, **_):
        # join exactly as the reward model saw its training pairs: the controlled world's word-level text
        # needs the space; a chat-templated prompt already ends where the completion starts
        sep = " " if world.kind == "controlled" else ""
        texts = [(pr.rstrip() + sep if sep else pr) + tok.decode([i for i in ids if i != tok.pad_token_id])
                 for pr, ids in zip(prompts, completion_ids)]
        batch = tok(texts, return_tensors="pt", padding=True, padding_side="right",
                    add_special_tokens=False).to(ctx.device)
        with torch.no_grad():
            return reward(**batch).logits[:, 0].float().tolist()

    return reward_fn


def judged_step_flops(policy_factor: int, n_params: int, tokens: float, sequences_per_row: int, batch: int) -> float:
    """FLOPs of one step of an online trainer judged by the shared reward model: each of the batch's
    `sequences_per_row` completions per row is generated (2), trained on (`policy_factor`: forward + backward),
    and scored by the reference (2) and the reward model (2)."""
    return (2 + policy_factor + 2 + 2) * n_params * tokens * sequences_per_row * batch


@dataclass
class Judged:
    """What every reward-model-judged online trainer (online_dpo, rloo, grpo) loads before building its TRL
    trainer: the shared reward model (its training charged to the run), the tokenizer, the world's training pairs
    and their prompts as the trainer's dataset, the policy, and the sizes that price a step."""

    rm_dir: Any
    rm_record: dict
    tok: Any
    pairs: Any
    prompts: Any           # datasets.Dataset of {"prompt"}: the online trainers sample their own completions
    policy: Any
    reward: Any
    batch: int             # per_device_train_batch_size x gradient_accumulation_steps
    n_params: int
    tokens: float          # mean tokens of one prompt + completion (half a pair's)


def load_judged(ctx) -> Judged:
    from datasets import Dataset

    from bench.algorithms import trl_common as tc
    from bench.modeling import load_causal_lm, load_scalar_model, load_tokenizer

    p, world = ctx.params, ctx.world
    rm_dir, rm_record = use_reward_model(ctx)
    tok = load_tokenizer(world.tokenizer_dir)
    pairs = world.load_pairs("train")
    policy = load_causal_lm(world.base_model_dir, ctx.device).train()
    reward = load_scalar_model(rm_dir, ctx.device).eval()
    return Judged(rm_dir=rm_dir, rm_record=rm_record, tok=tok, pairs=pairs,
                  prompts=Dataset.from_dict({"prompt": list(pairs["prompt"])}), policy=policy, reward=reward,
                  batch=p["per_device_train_batch_size"] * p["gradient_accumulation_steps"],
                  n_params=sum(x.numel() for x in policy.parameters()), tokens=tc.pair_tokens(pairs, tok) / 2)


def estimate_judged(spec, sizes: dict, sequences_per_row: int) -> dict:
    """The dry-run forecast of an online trainer judged by the shared reward model (online_dpo, rloo, grpo):
    each batch row's `sequences_per_row` completions are generated, trained on (forward + backward), and scored by
    the reference and the reward model, after the reward model's training is charged."""
    p = spec.param_dict
    b = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
    step = judged_step_flops(6, sizes["n_params"], sizes["tokens_per_sequence"], sequences_per_row, b)
    rm, note = rm_forecast(spec, sizes)
    budget = spec.budget.amount if spec.budget.kind == "flops" else None
    return {"step_flops": step, "steps": int(max(0.0, budget - rm) // step) if budget else None, "note": note}


@register("online_dpo")
class OnlineDPO(Algorithm):
    trl_config = "trl.experimental.online_dpo:OnlineDPOConfig"
    summary = "Online DPO (Guo et al. 2024): DPO on on-policy pairs judged by PPO's reward model (TRL)"
    Params = OnlineDPOParams
    paper = "Guo et al. 2024, Direct Language Model Alignment from Online AI Feedback, arXiv:2402.04792"
    family = "online"
    uses_reward_model = True
    implicit_reward = "log_ratio"
    supports_peft = True

    @classmethod
    def estimate(cls, spec, sizes: dict) -> dict:
        return estimate_judged(spec, sizes, sequences_per_row=2)  # two completions per prompt form a pair

    def trl_classes(self):
        """(config, trainer) pair; a subclass over another trainer returns its own."""
        from bench.algorithms.trl_common import experimental

        return experimental(self.name, "online_dpo", "OnlineDPOConfig", "OnlineDPOTrainer")

    def config_kwargs(self, p: dict) -> dict:
        return {}

    def reward_kwargs(self, ctx, tok, reward) -> dict:
        """How the trainer gets the shared reward model: through a text-level function (see module docstring)."""
        return {"reward_funcs": reward_function(ctx, tok, reward), "reward_processing_classes": None}

    def train(self, ctx) -> TrainOutcome:
        from bench.algorithms import trl_common as tc
        from bench.modeling import load_causal_lm

        config_cls, trainer_cls = self.trl_classes()
        p = ctx.params
        j = load_judged(ctx)
        peft = tc.peft_config(ctx)
        ref = None if peft else load_causal_lm(ctx.world.base_model_dir, ctx.device)  # LoRA: adapter-disabled base
        # two completions per prompt form a pair; policy fwd+bwd is 6, or 4 with LoRA
        step_flops = judged_step_flops(tc.policy_step_factor(ctx, reference=False), j.n_params, j.tokens, 2, j.batch)
        args, epoch_steps = tc.training_args(
            ctx, config_cls, rows=len(j.prompts), step_flops=step_flops, margin=3.0, beta=p["beta"],
            max_new_tokens=p["max_new_tokens"], max_length=tc.max_length(ctx), temperature=1.0,
            missing_eos_penalty=p["missing_eos_penalty"], **self.config_kwargs(p),
        )
        budget_cb, cbs = tc.callbacks(ctx)
        trainer = trainer_cls(model=j.policy, ref_model=ref, args=args, train_dataset=j.prompts,
                              processing_class=j.tok, callbacks=cbs, **self.reward_kwargs(ctx, j.tok, j.reward),
                              **({"peft_config": peft} if peft else {}))
        # with LoRA the policy's position-ids hook also covers the reference passes (the same module); the
        # trainer is saved then, adapter + merged
        return train_judged(ctx, trainer, j, budget_cb, epoch_steps, saved=trainer if peft else j.policy)


def train_judged(ctx, trainer, j: Judged, budget_cb, epoch_steps: float, saved=None) -> TrainOutcome:
    """The part every reward-model-judged online trainer shares (Online DPO, RLOO, GRPO): meter the policy,
    the reference (when the trainer has one) and the reward model, train unless the reward model's charge already
    spent the budget, save `saved` (default: the policy) and report the outcome."""
    from bench.algorithms import trl_common as tc

    policy, reward, tok = j.policy, j.reward, j.tok
    tc.quiet(trainer)
    add_position_ids(policy)
    tc.attach(ctx.meter, policy, "policy", tokenizer=tok)
    ref = getattr(trainer, "ref_model", None)
    if ref is not None:
        add_position_ids(ref)
        tc.attach(ctx.meter, ref, "reference")
    tc.attach(ctx.meter, reward, "reward_model")
    steps = 0
    if ctx.meter.exhausted():
        budget_cb.stopped_by_budget = True
    else:
        trainer.train()
        steps = trainer.state.global_step
    out = tc.save_policy(saved if saved is not None else policy, tok, ctx.work_dir / "policy")
    return TrainOutcome(policy_dir=out, steps=steps, epochs=steps / epoch_steps,
                        stop_reason=tc.stop_reason(budget_cb, ctx, steps), proxy_reward_dir=j.rm_dir,
                        logs=tc.log_history(trainer), extra={"reward_model": j.rm_record})
