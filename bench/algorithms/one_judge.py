"""One judge for offline and online preference learning (Tang et al. 2024, "Understanding the performance gap
between online and offline alignment algorithms", arXiv:2405.08448: both arms' pairs are labelled by the same
preference model, so on- vs off-policy data is the only difference).

    dpo_rm                DPO on the world's offline pairs *relabelled by the shared reward model* — the judge
                          `online_dpo` and `ppo` use. Each pair's chosen side is the one the reward model scores
                          higher (the rule OnlineDPOTrainer applies to its own pairs). The reward model's training
                          is charged as for `ppo` (none of it under the amortised view), and scoring the pairs
                          (one forward per completion) is charged to the run.
    online_dpo_annotator  Online DPO whose on-policy pairs are labelled by the world's *simulated annotator* — the
                          judge the offline pairs had — under a metered label budget (`label_budget` pairs, by
                          default as many as the offline arm was given). No reward model: nothing to charge but
                          the policy's generation, training and reference passes. Bradley–Terry labels with the
                          world's `beta_labeller` come from Gumbel noise added to each completion's utility (the
                          difference of two Gumbel(0, β) draws is logistic with scale β, so argmax reproduces
                          P(a ≻ b) = σ((u_a − u_b)/β); `deterministic` worlds use the argmax). `label_noise` flips
                          need the pairing, which the trainer does not expose: the annotator arm refuses a noisy
                          world instead of ignoring the flips.

Controlled world only for the annotator arm (a hub dataset has no annotator to query).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.algorithms.base import TrainOutcome
from bench.algorithms.dpo_family import DPOFamily, DPOParams
from bench.algorithms.online_dpo import OnlineDPO, add_position_ids
from bench.algorithms.registry import TrainParams, register
from bench.algorithms.reward_model import rm_forecast, use_reward_model
from bench.errors import UserError


@dataclass(frozen=True)
class RelabelledDPOParams(DPOParams):
    rm_learning_rate: float = field(default=3e-3, metadata={"gt": 0, "doc": "the shared reward model's (as ppo's)"})
    rm_epochs: float = field(default=1.0, metadata={"gt": 0, "doc": "passes over the training pairs (its quality "
                                                                    "knob: held-out accuracy is recorded)"})
    rm_batch_size: int = field(default=32, metadata={"min": 1})


def relabel(chosen_scores: list[float], rejected_scores: list[float]) -> list[bool]:
    """Per pair: True where the judge prefers the recorded rejected completion (the pair is swapped). Ties keep
    the recorded order. Pure: `relabel([1.0, 0.0], [0.5, 0.5]) == [False, True]`."""
    return [r > c for c, r in zip(chosen_scores, rejected_scores)]


@register("dpo_rm")
class RelabelledDPO(DPOFamily):
    summary = ("DPO on the offline pairs relabelled by the shared reward model (one judge with online_dpo/ppo: "
               "Tang et al. 2024)")
    paper = ("Tang et al. 2024, Understanding the performance gap between online and offline alignment algorithms, "
             "arXiv:2405.08448")
    family = "dpo"
    Params = RelabelledDPOParams
    uses_reward_model = True

    def loss_kwargs(self, p: dict) -> dict:
        return {"loss_type": ["sigmoid"]}

    @classmethod
    def estimate(cls, spec, sizes: dict) -> dict:
        est = DPOFamily.estimate.__func__(cls, spec, sizes)
        rm, note = rm_forecast(spec, sizes)
        score = 2 * sizes["n_params"] * sizes["tokens_per_sequence"] * 2 * sizes.get("pairs", 0)
        if est["steps"] is not None:
            est["steps"] = max(0, int((spec.budget.amount - rm - score) // est["step_flops"]))
        est["note"] = f"{note}; every pair scored by it once ({score:.2g} FLOPs)"
        return est

    def prepare_pairs(self, ctx, train):
        import torch

        from bench.algorithms import trl_common as tc
        from bench.modeling import completion_batch, load_scalar_model, load_tokenizer

        self._rm_dir, self._rm_record = use_reward_model(ctx)
        tok = load_tokenizer(ctx.world.tokenizer_dir)
        reward = load_scalar_model(self._rm_dir, ctx.device).eval()
        tc.attach(ctx.meter, reward, "reward_model")  # scoring the pairs is charged to this run
        scores = {"chosen": [], "rejected": []}
        with torch.no_grad():
            for i in range(0, len(train), 64):
                rows = train[i:i + 64]
                for side in scores:
                    b = completion_batch(tok, rows["prompt"], rows[side], device=ctx.device)
                    scores[side] += reward(input_ids=b["input_ids"],
                                           attention_mask=b["attention_mask"]).logits[:, 0].float().cpu().tolist()
        swap = relabel(scores["chosen"], scores["rejected"])
        self._stats = relabel_stats(train, swap)

        def flip(row, i):
            if not swap[i]:
                return row
            out = dict(row)
            for a, b in (("chosen", "rejected"), ("score_chosen", "score_rejected"),
                         ("label_score_chosen", "label_score_rejected"), ("len_chosen", "len_rejected")):
                if a in row:
                    out[a], out[b] = row[b], row[a]
            return out

        return train.map(flip, with_indices=True)

    def outcome_extra(self, ctx) -> dict:
        return {"proxy_reward_dir": self._rm_dir, "extra": {"reward_model": self._rm_record, "relabel": self._stats}}


def relabel_stats(train, swap: list[bool]) -> dict:
    """How the reward model's labels differ from the annotator's: the share swapped, and how often each set of
    labels agrees with the gold reward (where the pairs record it)."""
    n = max(len(swap), 1)
    out = {"pairs": len(swap), "swapped_fraction": sum(swap) / n}
    if "score_chosen" in train.column_names:
        c, r = train["score_chosen"], train["score_rejected"]
        out["annotator_gold_agreement"] = sum(x > y for x, y in zip(c, r)) / n
        out["reward_model_gold_agreement"] = sum((y > x) if s else (x > y) for x, y, s in zip(c, r, swap)) / n
    return out


# ---------------------------------------------------------------------------------------------- annotator arm


@dataclass(frozen=True)
class AnnotatorOnlineDPOParams(TrainParams):
    beta: float = field(default=0.1, metadata={"gt": 0})
    max_new_tokens: int = field(default=32, metadata={"min": 1})
    missing_eos_penalty: float = field(default=1.0, metadata={"min": 0})
    label_budget: int = field(default=0, metadata={"min": 0, "doc": "annotator labels (pairs) the run may query; "
                              "0: as many as the world's offline training pairs (the offline arm's label count)"})


class LabelMeter:
    """Counts the annotator's labels (one per on-policy pair) and stops training once `limit` are spent."""

    def __init__(self, limit: int):
        self.limit, self.used, self.stopped = limit, 0, False

    def callback(self):
        from transformers import TrainerCallback

        meter = self

        class StopOnLabels(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if meter.used >= meter.limit:
                    meter.stopped = control.should_training_stop = True

        return StopOnLabels()


def annotator_function(world_config, tok, meter: LabelMeter, seed: int):
    """TRL reward function: the world's annotator utility (labeller score + length bias) plus Gumbel(0, β)
    noise per completion, so the trainer's argmax over a pair is a Bradley–Terry label (see module docstring)."""
    import random

    from bench.worlds.controlled.pairs import labeller_from

    labeller = labeller_from(world_config)
    rng = random.Random(seed)
    beta = 0.0 if labeller.deterministic else labeller.beta

    def gumbel() -> float:
        return -beta * math.log(-math.log(min(max(rng.random(), 1e-12), 1 - 1e-12))) if beta else 0.0

    def reward_fn(prompts, completions, completion_ids, **_):
        meter.used += len(completion_ids) // 2
        texts = [" " + tok.decode([i for i in ids if i != tok.pad_token_id], skip_special_tokens=True).strip()
                 for ids in completion_ids]
        return [labeller.utility(t, p.rstrip()) + gumbel() for p, t in zip(prompts, texts)]

    return reward_fn


@register("online_dpo_annotator")
class AnnotatorOnlineDPO(OnlineDPO):
    summary = ("Online DPO labelled by the world's simulated annotator (the offline pairs' judge) under a metered "
               "label budget; no reward model")
    paper = ("Guo et al. 2024 (Online DPO) with Tang et al. 2024's one-judge design, arXiv:2402.04792 / "
             "arXiv:2405.08448")
    Params = AnnotatorOnlineDPOParams
    uses_reward_model = False
    supports_peft = False

    @classmethod
    def estimate(cls, spec, sizes: dict) -> dict:
        p = spec.param_dict
        b = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        step = (2 + 6 + 2) * sizes["n_params"] * sizes["tokens_per_sequence"] * 2 * b  # generate, train, reference
        labels = p["label_budget"] or int(sizes.get("pairs", 0))
        steps = int(spec.budget.amount // step) if spec.budget.kind == "flops" else None
        cap = math.ceil(labels / b) if labels else None
        return {"step_flops": step, "steps": min(x for x in (steps, cap) if x is not None) if (steps or cap) else None,
                "note": f"label budget {labels} pairs ({cap} steps)"}

    def train(self, ctx) -> TrainOutcome:
        from datasets import Dataset

        from bench.algorithms import trl_common as tc
        from bench.modeling import load_causal_lm, load_tokenizer

        p, world = ctx.params, ctx.world
        cfg = ctx.spec.world
        if world.kind != "controlled":
            raise UserError(f"[algorithms.{ctx.spec.label}]: online_dpo_annotator needs the controlled world's "
                            "simulated annotator; on this world use online_dpo (the shared reward model)")
        if cfg.label_noise > 0:
            raise UserError(f"[algorithms.{ctx.spec.label}]: online_dpo_annotator cannot flip labels (the trainer "
                            "does not expose its pairs); set [world].label_noise = 0 or use online_dpo")
        config_cls, trainer_cls = self.trl_classes()
        tok = load_tokenizer(world.tokenizer_dir)
        pairs = world.load_pairs("train")
        prompts = Dataset.from_dict({"prompt": list(pairs["prompt"])})
        policy = load_causal_lm(world.base_model_dir, ctx.device).train()
        ref = load_causal_lm(world.base_model_dir, ctx.device)
        n_params = sum(x.numel() for x in policy.parameters())
        batch = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        step_flops = (2 + tc.policy_step_factor(ctx, reference=False) + 2) * n_params \
            * (tc.pair_tokens(pairs, tok) / 2) * 2 * batch
        meter = LabelMeter(p["label_budget"] or len(pairs))
        args, epoch_steps = tc.training_args(
            ctx, config_cls, rows=len(prompts), step_flops=step_flops, margin=3.0, beta=p["beta"],
            max_new_tokens=p["max_new_tokens"], max_length=tc.max_length(ctx), temperature=1.0,
            missing_eos_penalty=p["missing_eos_penalty"])
        budget_cb, cbs = tc.callbacks(ctx)
        trainer = trainer_cls(model=policy, ref_model=ref, args=args, train_dataset=prompts, processing_class=tok,
                              callbacks=[*cbs, meter.callback()], reward_processing_classes=None,
                              reward_funcs=annotator_function(cfg, tok, meter, ctx.spec.seed))
        tc.quiet(trainer)
        for model in (policy, ref):
            add_position_ids(model)
        tc.attach(ctx.meter, policy, "policy", tokenizer=tok)
        tc.attach(ctx.meter, ref, "reference")
        trainer.train()
        steps = trainer.state.global_step
        out = tc.save_policy(policy, tok, ctx.work_dir / "policy")
        reason = "label_budget" if meter.stopped and not budget_cb.stopped_by_budget else \
            tc.stop_reason(budget_cb, ctx, steps)
        return TrainOutcome(policy_dir=out, steps=steps, epochs=steps / epoch_steps, stop_reason=reason,
                            logs=tc.log_history(trainer),
                            extra={"labels": {"used": meter.used, "budget": meter.limit}})
