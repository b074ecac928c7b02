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


def estimate_judged(spec, sizes: dict, sequences_per_row: int) -> dict:
    """The dry-run forecast of an online trainer judged by the shared reward model (online_dpo, xpo, rloo, grpo):
    each batch row's `sequences_per_row` completions are generated, trained on (forward + backward), and scored by
    the reference and the reward model, after the reward model's training is charged."""
    p = spec.param_dict
    n, t = sizes["n_params"], sizes["tokens_per_sequence"]
    b = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
    step = (2 + 6 + 2 + 2) * n * t * sequences_per_row * b  # generation, policy fwd+bwd, reference, reward model
    rm, note = rm_forecast(spec, sizes)
    budget = spec.budget.amount if spec.budget.kind == "flops" else None
    return {"step_flops": step, "steps": int(max(0.0, budget - rm) // step) if budget else None, "note": note}


@register("online_dpo")
class OnlineDPO(Algorithm):
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
        """(config, trainer) pair; subclasses over OnlineDPOTrainer (Nash-MD, XPO) return theirs."""
        from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

        return OnlineDPOConfig, OnlineDPOTrainer

    def config_kwargs(self, p: dict) -> dict:
        return {}

    def reward_kwargs(self, ctx, tok, reward) -> dict:
        """How the trainer gets the shared reward model: Online DPO through a text-level function (see module
        docstring); Nash-MD / XPO only take a sequence-classification model, which they call on token ids."""
        return {"reward_funcs": reward_function(ctx, tok, reward), "reward_processing_classes": None}

    def train(self, ctx) -> TrainOutcome:
        from datasets import Dataset

        from bench.algorithms import trl_common as tc
        from bench.modeling import load_causal_lm, load_scalar_model, load_tokenizer

        config_cls, trainer_cls = self.trl_classes()
        p, world = ctx.params, ctx.world
        rm_dir, rm_record = use_reward_model(ctx)
        tok = load_tokenizer(world.tokenizer_dir)
        pairs = world.load_pairs("train")
        train = Dataset.from_dict({"prompt": list(pairs["prompt"])})
        policy = load_causal_lm(world.base_model_dir, ctx.device).train()
        peft = tc.peft_config(ctx)
        ref = None if peft else load_causal_lm(world.base_model_dir, ctx.device)  # LoRA: the adapter-disabled base
        reward = load_scalar_model(rm_dir, ctx.device).eval()

        b = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        n_params = sum(x.numel() for x in policy.parameters())
        seq = tc.pair_tokens(pairs, tok) / 2
        # generation, policy fwd+bwd (6, or 4 with LoRA), reference, reward
        step_flops = (2 + tc.policy_step_factor(ctx, reference=False) + 2 + 2) * n_params * seq * 2 * b
        args, epoch_steps = tc.training_args(
            ctx, config_cls, rows=len(train), step_flops=step_flops, margin=3.0, beta=p["beta"],
            max_new_tokens=p["max_new_tokens"], max_length=tc.max_length(ctx), temperature=1.0,
            missing_eos_penalty=p["missing_eos_penalty"], **self.config_kwargs(p),
        )
        budget_cb, cbs = tc.callbacks(ctx)
        trainer = trainer_cls(model=policy, ref_model=ref, args=args, train_dataset=train, processing_class=tok,
                              callbacks=cbs, **self.reward_kwargs(ctx, tok, reward),
                              **({"peft_config": peft} if peft else {}))
        # with LoRA the policy's position-ids hook also covers the reference passes (the same module); the
        # trainer is saved then, adapter + merged
        return train_judged(ctx, trainer, policy, reward, tok, budget_cb, epoch_steps, rm_dir, rm_record,
                            saved=trainer if peft else policy)


def train_judged(ctx, trainer, policy, reward, tok, budget_cb, epoch_steps: float, rm_dir, rm_record,
                 saved=None) -> TrainOutcome:
    """The part every reward-model-judged online trainer shares (Online DPO, XPO, RLOO, GRPO): meter the policy,
    the reference (when the trainer has one) and the reward model, train unless the reward model's charge already
    spent the budget, save `saved` (default: the policy) and report the outcome."""
    from bench.algorithms import trl_common as tc

    tc.quiet(trainer)
    add_position_ids(policy)
    tc.attach(ctx.meter, policy, "policy")
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
                        stop_reason=tc.stop_reason(budget_cb, ctx, steps), proxy_reward_dir=rm_dir,
                        logs=tc.log_history(trainer), extra={"reward_model": rm_record})
