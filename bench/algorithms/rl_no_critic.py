"""RL without a critic: policy-gradient methods whose baseline comes from other samples of the same prompt instead
of a learned value model. Beside `ppo` (critic + policy gradient + online data) and `online_dpo` (online data,
no policy gradient) they isolate what the critic buys.

    rloo   Ahmadian et al. 2024 ("Back to Basics: Revisiting REINFORCE Style Optimization for Learning from Human
           Feedback in LLMs"): k samples per prompt, each one's baseline the mean reward of the other k−1; the KL
           penalty β·KL(π‖π_ref) is subtracted from the sequence reward (TRL RLOOTrainer).
    grpo   Shao et al. 2024 ("DeepSeekMath", Sec. 4.1): group-normalised advantages (r − mean)/std over the k
           samples of a prompt, clipped ratio, KL to π_ref as a loss term with coefficient β (TRL GRPOTrainer,
           loss_type "grpo" = the paper's per-sequence normalisation; TRL's default "dapo" is a later variant).

Both are judged by the *same* reward model as ppo / online_dpo (the shared stage, its training FLOPs charged to
the run), score "prompt completion<eos>" as it was trained, pay the same `missing_eos_penalty` for a completion
cut at the same 32-token cap, sample at temperature 1, and are evaluated by the same code. Both are core TRL
trainers on the standard transformers loop, so the budget callback's `should_training_stop` ends them (no
exception needed, unlike PPO).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.algorithms.base import TrainOutcome
from bench.algorithms.registry import Algorithm, TrainParams, register
from bench.algorithms.reward_model import RewardModelParams


@dataclass(frozen=True)
class CriticFreeParams(RewardModelParams, TrainParams):
    beta: float = field(default=0.05, metadata={"min": 0, "doc": "KL coefficient β (TRL's name; PPO's kl_coef)"})
    num_generations: int = field(default=4, metadata={"min": 2, "doc": "k samples per prompt (the baseline's group)"})
    max_completion_length: int = field(default=32, metadata={"min": 1, "doc": "the cap ppo / online_dpo use"})
    missing_eos_penalty: float = field(default=1.0, metadata={"min": 0, "doc": "subtracted when no end token"})


@dataclass(frozen=True)
class GRPOParams(CriticFreeParams):
    beta: float = field(default=0.04, metadata={"min": 0, "doc": "KL loss coefficient β (the paper's 0.04)"})
    loss_type: str = field(default="grpo", metadata={"choices": ("grpo", "dapo", "dr_grpo", "bnpo"),
                                                     "doc": "TRL's loss normalisation; grpo = the paper's"})


def penalised(reward_fn, eos_id: int, penalty: float):
    """The reward model's score minus `penalty` for completions without an end token (as PPO / Online DPO)."""

    def fn(prompts, completions, completion_ids, **kw):
        scores = reward_fn(prompts, completions, completion_ids, **kw)
        return [s - (penalty if eos_id not in ids else 0.0) for s, ids in zip(scores, completion_ids)]

    return fn


class CriticFree(Algorithm):
    """Shared adapter: subclasses give the TRL config/trainer pair and their loss fields."""

    Params = CriticFreeParams
    uses_reward_model = True
    implicit_reward = "reward_model"
    family = "online-rl"

    def trl_classes(self):
        raise NotImplementedError

    def loss_kwargs(self, p: dict) -> dict:
        return {}

    @classmethod
    def estimate(cls, spec, sizes: dict) -> dict:
        from bench.algorithms.online_dpo import estimate_judged

        return estimate_judged(spec, sizes, sequences_per_row=1)  # a batch row is one completion

    def train(self, ctx) -> TrainOutcome:
        from bench.algorithms import trl_common as tc
        from bench.algorithms.online_dpo import judged_step_flops, load_judged, reward_function, train_judged

        config_cls, trainer_cls = self.trl_classes()
        p = ctx.params
        j = load_judged(ctx)
        reward_fn = penalised(reward_function(ctx, j.tok, j.reward), j.tok.eos_token_id, p["missing_eos_penalty"])
        step_flops = judged_step_flops(6, j.n_params, j.tokens, 1, j.batch)  # a batch row is one completion
        # one step = b completions = b/k prompts, so an epoch over the prompts takes k times as many steps
        args, epoch_steps = tc.training_args(
            ctx, config_cls, rows=len(j.prompts) * p["num_generations"], step_flops=step_flops, margin=3.0,
            beta=p["beta"], num_generations=p["num_generations"], max_completion_length=p["max_completion_length"],
            temperature=1.0, shuffle_dataset=True, **self.loss_kwargs(p))
        budget_cb, cbs = tc.callbacks(ctx)
        trainer = trainer_cls(model=j.policy, reward_funcs=[reward_fn], args=args, train_dataset=j.prompts,
                              processing_class=j.tok, callbacks=cbs)
        return train_judged(ctx, trainer, j, budget_cb, epoch_steps)


@register("rloo")
class RLOO(CriticFree):
    trl_config = "trl:RLOOConfig"
    summary = "RLOO (Ahmadian et al. 2024): REINFORCE with a leave-one-out baseline, no critic (TRL RLOOTrainer)"
    paper = "Ahmadian et al. 2024, Back to Basics: Revisiting REINFORCE Style Optimization ..., arXiv:2402.14740"

    def trl_classes(self):
        from trl import RLOOConfig, RLOOTrainer

        return RLOOConfig, RLOOTrainer


@register("grpo")
class GRPO(CriticFree):
    trl_config = "trl:GRPOConfig"
    summary = "GRPO (Shao et al. 2024): group-normalised advantages, clipped ratio, KL loss, no critic (TRL GRPOTrainer)"
    paper = "Shao et al. 2024, DeepSeekMath (GRPO, Sec. 4.1), arXiv:2402.03300"
    Params = GRPOParams

    def trl_classes(self):
        from trl import GRPOConfig, GRPOTrainer

        return GRPOConfig, GRPOTrainer

    def loss_kwargs(self, p: dict) -> dict:
        return {"loss_type": p["loss_type"]}
