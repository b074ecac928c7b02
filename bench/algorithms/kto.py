"""KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic Optimization", Eq. 8) through TRL's
core `KTOTrainer`: a per-example loss on *unpaired* desirable / undesirable completions against a reference
point z₀ (a batch estimate of KL(π‖π_ref) on mismatched prompt/completion pairs). Pure loss:
bench.algorithms.reference_losses.kto_loss.

Unpairing: every training pair (x, y_c, y_r) becomes two examples, (x, y_c, desirable) and (x, y_r,
undesirable), so the data hold exactly as many desirable as undesirable examples and the paper's weights
λ_D = λ_U = 1 satisfy its balance condition λ_D·n_D / (λ_U·n_U) ∈ [1, 4/3]. The pairing itself is thrown away
(that is KTO's premise). KTO's KL estimate needs TRL's sequential sampler (each example's mismatched KL
completion is its batch neighbour's), so the examples are shuffled once, with the run's seed, before training;
otherwise the two halves of a pair would sit side by side and the "mismatched" completion would be a matched one.
A training step takes `per_device_train_batch_size` examples (half a pair batch's sequences), plus the KL
completions: the meter counts what each step really costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.algorithms.base import TrainOutcome
from bench.algorithms.registry import Algorithm, TrainParams, register


@dataclass(frozen=True)
class KTOParams(TrainParams):
    beta: float = field(default=0.1, metadata={"gt": 0, "doc": "β of the value function (TRL KTOConfig.beta)"})
    desirable_weight: float = field(default=1.0, metadata={"gt": 0, "doc": "λ_D"})
    undesirable_weight: float = field(default=1.0, metadata={"gt": 0, "doc": "λ_U"})


def unpair(train, seed: int):
    """Pairs → KTO's unpaired rows {prompt, completion, label}, shuffled with the run's seed."""
    from datasets import Dataset

    prompts, completions, labels = [], [], []
    for row in train:
        prompts += [row["prompt"], row["prompt"]]
        completions += [row["chosen"], row["rejected"]]
        labels += [True, False]
    return Dataset.from_dict({"prompt": prompts, "completion": completions, "label": labels}).shuffle(seed=seed)


@register("kto")
class KTO(Algorithm):
    trl_config = "trl:KTOConfig"
    summary = "KTO (Ethayarajh et al. 2024): prospect-theoretic loss on the pairs unpaired into good/bad (TRL KTOTrainer)"
    paper = "Ethayarajh et al. 2024, KTO: Model Alignment as Prospect Theoretic Optimization, arXiv:2402.01306"
    family = "unpaired"
    Params = KTOParams
    implicit_reward = "log_ratio"

    @classmethod
    def estimate(cls, spec, sizes: dict) -> dict:
        p = spec.param_dict
        n, t = sizes["n_params"], sizes["tokens_per_sequence"]
        b = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        step = (6 + 2 + 2 + 2) * n * t * b  # policy fwd+bwd, policy KL fwd, reference on both
        budget = spec.budget.amount if spec.budget.kind == "flops" else None
        return {"step_flops": step, "steps": int(budget // step) if budget else None, "note": "unpaired: 2 rows per pair"}

    def train(self, ctx) -> TrainOutcome:
        from trl import KTOConfig, KTOTrainer

        from bench.algorithms import trl_common as tc
        from bench.modeling import load_causal_lm, load_tokenizer

        p, world = ctx.params, ctx.world
        tok = load_tokenizer(world.tokenizer_dir)
        pairs = world.load_pairs("train")
        train = unpair(pairs, ctx.spec.seed)
        policy = load_causal_lm(world.base_model_dir, ctx.device).train()
        ref = load_causal_lm(world.base_model_dir, ctx.device)
        n_params = sum(x.numel() for x in policy.parameters())
        b = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        seq = tc.pair_tokens(pairs, tok) / 2
        step_flops = (6 + 2 + 2 + 2) * n_params * seq * b
        args, epoch_steps = tc.training_args(
            ctx, KTOConfig, rows=len(train), step_flops=step_flops, beta=p["beta"], max_length=tc.max_length(ctx),
            desirable_weight=p["desirable_weight"], undesirable_weight=p["undesirable_weight"],
            train_sampling_strategy="sequential")
        tc.attach(ctx.meter, policy, "policy")
        tc.attach(ctx.meter, ref, "reference")
        budget_cb, cbs = tc.callbacks(ctx)
        with ctx.meter.paused():
            trainer = KTOTrainer(model=policy, ref_model=ref, args=args, train_dataset=train, processing_class=tok,
                                 callbacks=cbs)
        tc.quiet(trainer)
        trainer.train()
        out = tc.save_policy(trainer, tok, ctx.work_dir / "policy")
        steps = trainer.state.global_step
        return TrainOutcome(policy_dir=out, steps=steps, epochs=steps / epoch_steps,
                            stop_reason=tc.stop_reason(budget_cb, ctx, steps), logs=tc.log_history(trainer))
