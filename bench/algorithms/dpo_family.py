"""The DPO family: every variant that TRL's `DPOTrainer` computes with a `loss_type`, one registration each.

    dpo       Rafailov et al. 2023, Eq. 7            loss_type "sigmoid"
    ipo       Azar et al. 2023, Eq. 17               loss_type "ipo" (TRL averages log-probs per token, so β
                                                     targets a per-token margin 1/(2β): use β ≈ 0.5-1 here)
    cdpo      conservative DPO, Mitchell 2023        (1−ε)·(−log σ(βh)) + ε·(−log σ(−βh)). TRL 1.12's "sigmoid"
                                                     ignores `label_smoothing`, so cDPO uses the exact identity
                                                     2(1−ε)·sigmoid − (1−2ε)·robust with label_smoothing = ε
                                                     (cross-checked against bench.algorithms.reference_losses)
    rdpo      robust DPO, Chowdhury et al. 2024      loss_type "robust" (unbiased; no finite optimum)
    slic      SLiC-HF, Zhao et al. 2023              loss_type "hinge"
    apo_zero  APO-zero, D'Oosterlinck et al. 2024    loss_type "apo_zero"
    apo_down  APO-down, D'Oosterlinck et al. 2024    loss_type "apo_down" (chosen worse than the model's own answers)
    discopop  DiscoPOP, Lu et al. 2024, Eq. 5        loss_type "discopop" (`discopop_tau`)
    sigmoid_norm  LN-DPO, Ahrabian et al. 2024       loss_type "sigmoid_norm" (DPO on per-token log-ratios)

Each has its pure loss in bench/algorithms/reference_losses.py, checked against hand numbers and against TRL's own
`_compute_loss` (tests/test_reference_losses.py).

Adding a variant TRL already computes is one `_variant(...)` line below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.algorithms.base import TrainOutcome
from bench.algorithms.registry import Algorithm, TrainParams, register


@dataclass(frozen=True)
class DPOParams(TrainParams):
    beta: float = field(default=0.1, metadata={"gt": 0, "doc": "KL strength β (IPO: τ)"})
    precompute_ref_log_probs: bool = field(default=False, metadata={
        "doc": "compute π_ref log-probs of the training pairs once before training (TRL); every run is charged "
               "one reference forward over the pairs"})


@dataclass(frozen=True)
class LabelSmoothingParams(DPOParams):
    label_smoothing: float = field(default=0.1, metadata={"min": 0, "lt": 0.5,
                                                          "doc": "ε: assumed fraction of flipped labels"})


class DPOFamily(Algorithm):
    trl_config = "trl:DPOConfig"
    """Shared adapter over `trl.DPOTrainer`; subclasses only say which loss."""

    Params = DPOParams
    implicit_reward = "log_ratio"
    supports_peft = True
    family = "dpo"
    # π_ref's log-probs of the training pairs served from a per-world cache (bench/algorithms/reference_cache.py);
    # a subclass whose trainer computes the reference in its own loss (a loss hook) sets False
    cached_reference = True

    def loss_kwargs(self, p: dict) -> dict:
        """The DPOConfig fields that select this variant's loss (loss_type, loss_weights, label_smoothing, ...)."""
        raise NotImplementedError

    def trl_beta(self, p: dict) -> float:
        """DPOConfig.beta; a loss hook without a β (REBEL) passes its own scale (TRL then only logs with it)."""
        return p["beta"]

    def prepare_pairs(self, ctx, train):
        """The training pairs as the trainer sees them; variants that need a per-pair number add it here."""
        return train

    @staticmethod
    def pair_flops(ctx, n_params: int, tokens: float) -> tuple[float, float]:
        """(FLOPs of one pair in one training step, FLOPs of precomputing one pair's reference log-probs), the one
        place the DPO family prices a pair (training layout, the precompute charge, REBEL's scoring forecast)."""
        from bench.algorithms import trl_common as tc

        pre = ctx.params["precompute_ref_log_probs"]
        return (tc.policy_step_factor(ctx, reference=not pre) * n_params * tokens,
                2 * n_params * tokens if pre else 0.0)

    def world_pairs(self, train) -> int:
        """How many pairs the world offers (epochs are counted over them); REBEL trains on a scored subset."""
        return len(train)

    def make_trainer(self, p: dict, **kwargs):
        """TRL's DPOTrainer; a loss hook (bench/algorithms/loss_hooks.py) for losses TRL does not compute."""
        from trl import DPOTrainer

        return DPOTrainer(**kwargs)

    @classmethod
    def estimate(cls, spec, sizes: dict) -> dict:
        p = spec.param_dict
        n, t = sizes["n_params"], sizes["tokens_per_sequence"]
        batch = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        ref = 0.0 if p["precompute_ref_log_probs"] else 2 * n * t * 2 * batch
        step = 6 * n * t * 2 * batch + ref
        pre = 2 * n * t * 2 * sizes.get("pairs", 0) if p["precompute_ref_log_probs"] else 0.0
        budget = spec.budget.amount if spec.budget.kind == "flops" else None
        return {"step_flops": step, "steps": int((budget - pre) // step) if budget else None,
                "note": "ref precompute charged once" if pre else ""}

    def train(self, ctx) -> TrainOutcome:
        from trl import DPOConfig

        from bench.algorithms import reference_cache
        from bench.algorithms import trl_common as tc
        from bench.modeling import load_causal_lm, load_tokenizer

        p, world = ctx.params, ctx.world
        tok = load_tokenizer(world.tokenizer_dir)
        train = self.prepare_pairs(ctx, world.load_pairs("train"))
        policy = load_causal_lm(world.base_model_dir, ctx.device).train()
        # An explicit reference (without one, TRL 1.12 reloads it from config._name_or_path); with LoRA
        # TRL's reference is the adapter-disabled policy itself (no second copy)
        peft = tc.peft_config(ctx)
        ref = None if p["precompute_ref_log_probs"] or peft else load_causal_lm(world.base_model_dir, ctx.device)
        n_params = sum(x.numel() for x in policy.parameters())
        tokens = tc.pair_tokens(train, tok)
        batch = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        train_pair, precompute_pair = self.pair_flops(ctx, n_params, tokens)
        step_flops = train_pair * batch
        args, epoch_steps = tc.training_args(
            ctx, DPOConfig, rows=len(train), step_flops=step_flops, beta=self.trl_beta(p),
            precompute_ref_log_probs=p["precompute_ref_log_probs"], max_length=tc.max_length(ctx), **self.loss_kwargs(p))
        tc.attach(ctx.meter, policy, "policy")
        if ref is not None:
            tc.attach(ctx.meter, ref, "reference")
        budget_cb, cbs = tc.callbacks(ctx)
        # TRL computes the reference log-probs in __init__ when precomputing, and caches them on disk across
        # runs; every run is charged the full pass explicitly instead (one forward over the world's pairs)
        with ctx.meter.paused():
            trainer = self.make_trainer(p, model=policy, ref_model=ref, args=args, train_dataset=train,
                                        processing_class=tok, callbacks=cbs,
                                        **({"peft_config": peft} if peft else {}))
        if p["precompute_ref_log_probs"]:
            ctx.meter.charge("reference_precompute", precompute_pair * len(train), int(tokens * len(train)))
        elif reference_cache.applies(p, ref, ctx.spec.budget.kind) and self.cached_reference:
            reference_cache.serve(ctx, trainer, ref, policy)  # computed once per world, charged per step
        tc.quiet(trainer)
        trainer.train()
        out = tc.save_policy(trainer, tok, ctx.work_dir / "policy")
        steps = trainer.state.global_step
        epochs = steps / epoch_steps * (len(train) / self.world_pairs(train))  # the factor is 1.0 but for REBEL
        return TrainOutcome(policy_dir=out, steps=steps, epochs=epochs,
                            stop_reason=tc.stop_reason(budget_cb, ctx, steps), logs=tc.log_history(trainer),
                            **self.outcome_extra(ctx))

    def outcome_extra(self, ctx) -> dict:
        """Extra TrainOutcome fields (a variant that used the reward model reports it, as ppo does)."""
        return {}


@dataclass(frozen=True)
class DiscoPOPParams(DPOParams):
    discopop_tau: float = field(default=0.05, metadata={"gt": 0, "doc": "τ: temperature of the logistic/exponential "
                                                        "mix σ(βh/τ) (TRL DPOConfig.discopop_tau; the paper's 0.05)"})


def _variant(name: str, summary: str, loss_type: str, params=DPOParams, version: str = "1",
             implicit_reward: str = "log_ratio", margin_target=None, paper: str = ""):
    def loss_kwargs(self, p: dict) -> dict:
        passed = {k: p[k] for k in ("label_smoothing", "discopop_tau") if k in p}  # DPOConfig fields of the loss
        return {"loss_type": [loss_type], **passed}

    attrs = {"summary": summary, "paper": paper, "Params": params, "version": version, "loss_kwargs": loss_kwargs,
             "implicit_reward": implicit_reward}
    if margin_target is not None:
        attrs["margin_target"] = classmethod(lambda cls, p: margin_target(p))
    return register(name)(type(name.upper(), (DPOFamily,), attrs))


_variant("dpo", "DPO (Rafailov et al. 2023): TRL DPOTrainer, sigmoid loss", "sigmoid",
         paper="Rafailov et al. 2023, Direct Preference Optimization, arXiv:2305.18290")
_variant("ipo", "IPO (Azar et al. 2023): squared loss to margin 1/(2β), TRL per-token averaged", "ipo",
         implicit_reward="avg_log_ratio", margin_target=lambda p: 1.0 / (2.0 * p["beta"]),
         paper="Azar et al. 2023, A General Theoretical Paradigm to Understand Learning from Human Preferences, "
               "arXiv:2310.12036")
_variant("rdpo", "robust DPO (Chowdhury et al. 2024): unbiased noisy-label loss, TRL 'robust'", "robust",
         LabelSmoothingParams, paper="Chowdhury, Kini & Natarajan 2024, Provably Robust DPO, arXiv:2403.00409")
_variant("slic", "SLiC-HF (Zhao et al. 2023): hinge loss on the log-ratio margin, TRL 'hinge'", "hinge",
         paper="Zhao et al. 2023, SLiC-HF: Sequence Likelihood Calibration with Human Feedback, arXiv:2305.10425")
_variant("apo_zero", "APO-zero (D'Oosterlinck et al. 2024): anchored preference optimisation, TRL", "apo_zero",
         paper="D'Oosterlinck et al. 2024, Anchored Preference Optimization and Contrastive Revisions, "
               "arXiv:2408.06266")

_variant("apo_down", "APO-down (D'Oosterlinck et al. 2024): chosen and rejected both pushed down, rejected more, TRL",
         "apo_down", paper="D'Oosterlinck et al. 2024, Anchored Preference Optimization and Contrastive Revisions, "
                           "arXiv:2408.06266")
_variant("discopop", "DiscoPOP (Lu et al. 2024): logistic/exponential loss mix modulated by the log-ratio gap, TRL",
         "discopop", DiscoPOPParams,
         paper="Lu et al. 2024, Discovering Preference Optimization Algorithms with and for Large Language Models, "
               "arXiv:2406.08414")
_variant("sigmoid_norm", "LN-DPO (Ahrabian et al. 2024): DPO on per-token (length-normalised) log-ratios, TRL",
         "sigmoid_norm", implicit_reward="avg_log_ratio",
         paper="Ahrabian et al. 2024, A Practical Analysis of Human Alignment with *PO")


@register("cdpo")
class CDPO(DPOFamily):
    """Conservative DPO through TRL's own loss terms, because TRL 1.12's sigmoid ignores label smoothing.

    (1−ε)·A + ε·B with A = −log σ(βh), B = −log σ(−βh); TRL's robust = ((1−ε)A − εB)/(1−2ε), so
    2(1−ε)·A − (1−2ε)·robust = (1−ε)·A + ε·B exactly (tests/test_reference_losses.py checks it).
    """

    summary = "conservative DPO (Mitchell 2023): label-smoothed DPO, finite optimum log((1−ε)/ε)/β"
    paper = "Mitchell 2023, A note on DPO with noisy preferences & relationship to IPO"
    Params = LabelSmoothingParams

    @classmethod
    def margin_target(cls, p: dict) -> float | None:
        eps = p["label_smoothing"]
        return math.log((1 - eps) / eps) / p["beta"] if eps > 0 else None

    def loss_kwargs(self, p: dict) -> dict:
        eps = p["label_smoothing"]
        return {"loss_type": ["sigmoid", "robust"], "loss_weights": [2 * (1 - eps), -(1 - 2 * eps)],
                "label_smoothing": eps}
