"""`ppo`: our own RLHF PPO, the harness's baseline (TRL removed its PPO trainer in 1.13; TRL 1.12's readings are kept
as the parity fixture tests/data/ppo_parity.json). Written from the papers, not from TRL's source: Schulman et al. 2017 (PPO); Ziegler et al. 2019
and Ouyang et al. 2022 (RLHF: per-token KL penalty to π_ref, the reward model's score at the end); Huang et al. 2024
("The N+ implementation details of RLHF with PPO"). The arithmetic lives in `ppo_core` (tested with hand numbers).

One update (TRL's field names and batch semantics, so `[algorithms.ppo]` tables keep their meaning):
1. rollout: `per_device_train_batch_size × gradient_accumulation_steps` prompts (TRL's batch), one response each,
   sampled at temperature 1 with a KV cache (`bench.modeling.sample`, the evaluator's sampler), cut at the end
   token or `response_length` tokens;
2. score: the shared reward model at the response's last token, minus `missing_eos_penalty` when it has no end
   token; log π and log π_ref per response token (no gradients); values V(s_t) from the critic;
3. per-token rewards −β·KL_t (k1 or k3) plus the score at the last token; optional reward whitening; GAE(γ, λ);
   advantage whitening;
4. `num_ppo_epochs` passes over the rollout in `num_mini_batches` shuffled mini-batches (each accumulated from
   micro-batches of at most `per_device_train_batch_size`): clipped policy loss + `vf_coef` × clipped
   value loss, one AdamW over policy and critic, gradient clipping at `max_grad_norm`; the learning-rate schedule
   steps once per update; β then updates (fixed, or Ziegler's adaptive controller with `adaptive_kl`).
Dropout is switched off in every model (Huang et al. detail: the PPO ratio must start at 1).

The critic (`critic`): "separate" (default) is a value model initialised from the reward model (InstructGPT; the
layout TRL and OpenRLHF use); "policy_head" is a linear value head on the policy's last hidden state, initialised
from the reward model's head (the value loss then also trains the policy's trunk; no second network, about 45%
fewer FLOPs after the reward model). LoRA (`[train] peft`): peft wraps the policy; π_ref is the adapter-disabled
policy; the separate critic trains fully. Every model pass goes through the FLOP meter: generation and scoring as
`policy`, then `reference`, `reward_model`, `value_model`.

Several processes (`accelerate launch` / `torchrun`: data parallel, as TRL's trainers): the global rollout is
`per_device_train_batch_size × gradient_accumulation_steps × processes` prompts (TRL's batch semantics), drawn in
the same order on every process; each process samples and scores its own slice (its own sampling seed), whitening
uses the whole rollout's statistics, every mini-batch is the same global draw of rows, each process backpropagates
its rows' share of the mini-batch's token mean and the gradients are summed over processes (all_reduce) before
clipping and the optimizer step: the update equals one process's on the same global rollout up to float order
(tests/test_ppo_distributed.py). The KL controller and the logged statistics read the whole rollout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.algorithms.base import TrainOutcome
from bench.algorithms.registry import Algorithm, TrainParams, register
from bench.algorithms.reward_model import RewardModelParams, rm_forecast


@dataclass(frozen=True)
class PPOParams(RewardModelParams, TrainParams):
    """TRL 1.12 PPOConfig's fields and meanings (TRL has no PPO since 1.13; suites written for it keep working)."""

    kl_coef: float = field(default=0.05, metadata={"min": 0, "doc": "KL penalty coefficient (TRL kl_coef)"})
    num_ppo_epochs: int = field(default=4, metadata={"min": 1})
    num_mini_batches: int = field(default=2, metadata={"min": 1})
    cliprange: float = field(default=0.2, metadata={"gt": 0})
    vf_coef: float = field(default=0.1, metadata={"gt": 0})
    missing_eos_penalty: float = field(default=1.0, metadata={"min": 0})
    response_length: int = field(default=32, metadata={"min": 1})


@dataclass(frozen=True)
class OurPPOParams(PPOParams):
    gamma: float = field(default=1.0, metadata={"min": 0, "max": 1, "doc": "GAE discount γ"})
    lam: float = field(default=0.95, metadata={"min": 0, "max": 1, "doc": "GAE λ"})
    cliprange_value: float = field(default=0.2, metadata={"gt": 0, "doc": "value clipping around the rollout's V"})
    whiten_rewards: bool = field(default=False, metadata={"doc": "whiten per-token rewards (mean kept)"})
    kl_estimator: str = field(default="k1", metadata={"choices": ("k1", "k3"), "doc": "per-token KL penalty"})
    adaptive_kl: bool = field(default=False, metadata={"doc": "Ziegler et al.'s controller: kl_coef is its start"})
    kl_target: float = field(default=6.0, metadata={"gt": 0, "doc": "adaptive_kl: target KL (nats per sequence)"})
    kl_horizon: float = field(default=10000.0, metadata={"gt": 0, "doc": "adaptive_kl: horizon in episodes"})
    critic: str = field(default="separate", metadata={"choices": ("separate", "policy_head"),
                                                      "doc": "value model from the reward model, or a head on the policy"})


def update_flops(n_params: int, tokens: float, rollout: int, epochs: int, policy_step: int, critic: str) -> float:
    """FLOPs of one update: generation, log π, log π_ref, reward and (separate critic) value forwards over the rollout
    (2 each), then `epochs` policy (and critic) forward + backward passes (`policy_step`, 6 for full fine-tuning)."""
    separate = critic == "separate"
    return (5 * 2 + (2 if separate else 0) + epochs * (policy_step + (6 if separate else 0))) \
        * n_params * tokens * rollout


@register("ppo")
class PPO(Algorithm):
    trl_refusal = ("ppo is the project's own PPO loop (TRL removed PPOTrainer in 1.13): it takes no TRL config; its "
                   "settings are its hyper-parameters (`bench list ppo`)")
    # 2: our own PPO (1 was the adapter over TRL 1.12's PPOTrainer); 3: data parallel, and a mini-batch's loss is its
    # token mean (2 averaged micro-batch token means by rows: the same whenever a mini-batch is one micro-batch, as in
    # the default suite)
    version = "3"
    summary = "PPO (RLHF baseline, our own): reward model on the same pairs, GAE, clipped losses, KL penalty to π_ref"
    Params = OurPPOParams
    paper = ("Schulman et al. 2017 (PPO), arXiv:1707.06347; Ziegler et al. 2019, arXiv:1909.08593; Ouyang et al. 2022,"
             " arXiv:2203.02155; Huang et al. 2024 (N+ implementation details), arXiv:2403.17031")
    family = "rlhf"
    uses_reward_model = True
    implicit_reward = "reward_model"
    supports_peft = True

    @classmethod
    def estimate(cls, spec, sizes: dict) -> dict:
        p = spec.param_dict
        rollout = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        step = update_flops(sizes["n_params"], sizes["tokens_per_sequence"], rollout, p["num_ppo_epochs"], 6,
                            p["critic"])
        rm, note = rm_forecast(spec, sizes)
        budget = spec.budget.amount if spec.budget.kind == "flops" else None
        return {"step_flops": step, "steps": int(max(0.0, budget - rm) // step) if budget else None, "note": note}

    def train(self, ctx) -> TrainOutcome:
        import torch
        from transformers import TrainerControl, TrainerState, TrainingArguments, get_scheduler

        from bench.algorithms import trl_common as tc
        from bench.algorithms.online_dpo import load_judged
        from bench.algorithms.ppo_core import AdaptiveKLController, FixedKLController
        from bench.distributed import rank, world_size
        from bench.modeling import load_causal_lm, load_scalar_model

        p = ctx.params
        j = load_judged(ctx)  # reward model (its training charged), tokenizer, prompts, policy, sizes
        torch.manual_seed(ctx.spec.seed)
        policy, reward, tok = j.policy, j.reward, j.tok
        peft = tc.peft_config(ctx)
        if peft is not None:
            from peft import get_peft_model

            policy = get_peft_model(policy, peft)
        ref = None if peft else load_causal_lm(ctx.world.base_model_dir, ctx.device).eval()
        critic = Critic(p["critic"], load_scalar_model(j.rm_dir, ctx.device) if p["critic"] == "separate" else None,
                        reward, policy)
        for model in (policy, ref, reward, critic.model):
            if model is not None:
                disable_dropout(model)
        tc.attach(ctx.meter, policy, "policy", tokenizer=tok)
        if ref is not None:
            tc.attach(ctx.meter, ref, "reference")
        tc.attach(ctx.meter, reward, "reward_model")
        if critic.model is not None:
            tc.attach(ctx.meter, critic.model, "value_model")

        rollout, shard = j.batch * world_size(), slice(rank() * j.batch, (rank() + 1) * j.batch)
        sync = Sync()
        prompts = list(j.prompts["prompt"])
        step_flops = update_flops(j.n_params, j.tokens, j.batch, p["num_ppo_epochs"],  # this process's share
                                  tc.policy_step_factor(ctx, reference=False), p["critic"])
        args, epoch_steps = tc.training_args(ctx, TrainingArguments, rows=len(prompts),
                                             step_flops=step_flops, margin=3.0)
        params = [x for x in policy.parameters() if x.requires_grad] + critic.parameters()
        opt = torch.optim.AdamW(params, lr=p["learning_rate"], weight_decay=p["weight_decay"], eps=1e-8)
        sched = get_scheduler(p["lr_scheduler_type"], opt, num_warmup_steps=args.warmup_steps,
                              num_training_steps=args.max_steps)
        kl_ctl = AdaptiveKLController(p["kl_coef"], p["kl_target"], p["kl_horizon"]) if p["adaptive_kl"] \
            else FixedKLController(p["kl_coef"])
        budget_cb, cbs = tc.callbacks(ctx, get_policy=lambda kw: kw["model"])
        state, control = TrainerState(max_steps=args.max_steps), TrainerControl()
        events = Events(cbs, args, state, control, policy)
        order = torch.Generator().manual_seed(ctx.spec.seed)
        queue: list[int] = []
        if ctx.meter.exhausted():
            budget_cb.stopped_by_budget = True  # the reward model alone spent the budget: no update, and says so
        else:
            events("on_train_begin")
            while state.global_step < args.max_steps and not control.should_training_stop:
                while len(queue) < rollout:  # a fresh permutation of the prompts per pass (data order by seed)
                    queue += torch.randperm(len(prompts), generator=order).tolist()
                batch, queue = [prompts[i] for i in queue[:rollout]][shard], queue[rollout:]
                seed = ctx.spec.seed * 1_000_003 + state.global_step + 7_919 * rank()
                ro = make_rollout(policy, ref, reward, critic, tok, batch, p, kl_ctl.value, seed, ctx.device, sync)
                stats = ppo_epochs(policy, critic, opt, ro, p, order, sync)
                lr = opt.param_groups[0]["lr"]  # the rate this update used (the schedule steps once per update)
                sched.step()
                kl_ctl.update(stats["objective/kl"], rollout)
                state.global_step += 1
                state.epoch = state.global_step / epoch_steps
                entry = {**stats, "kl_coef": kl_ctl.value, "learning_rate": lr,
                         "episode": state.global_step * rollout, "step": state.global_step}
                state.log_history.append(entry)
                events("on_log", logs=entry)
                events("on_step_end")
            events("on_train_end")
        ctx.meter.stop_clock()
        out = tc.save_policy(policy, tok, ctx.work_dir / "policy")
        steps = state.global_step
        return TrainOutcome(policy_dir=out, steps=steps, epochs=steps * rollout / max(len(prompts), 1),
                            stop_reason=tc.stop_reason(budget_cb, ctx, steps), proxy_reward_dir=j.rm_dir,
                            logs=[dict(h) for h in state.log_history], extra={"reward_model": j.rm_record})


class Sync:
    """Sums over the processes of a data-parallel run (torch.distributed all_reduce); identity in one process."""

    def __init__(self):
        import torch.distributed as dist

        from bench.distributed import world_size

        self.dist = dist if world_size() > 1 and dist.is_available() and dist.is_initialized() else None
        self.size = self.dist.get_world_size() if self.dist else 1
        self.rank = self.dist.get_rank() if self.dist else 0

    def __call__(self, t):
        """The sum of `t` over processes (a new tensor; `t` is left as it is)."""
        if self.dist is None:
            return t
        t = t.detach().clone()
        self.dist.all_reduce(t)
        return t

    def grads(self, params) -> None:
        """Sum every parameter's gradient over processes (a process with no rows in a mini-batch adds zeros)."""
        if self.dist is None:
            return
        import torch

        for x in params:
            if x.grad is None:
                x.grad = torch.zeros_like(x)
            self.dist.all_reduce(x.grad)

    def mean(self, stats: dict[str, float]) -> dict[str, float]:
        """Per-process statistics averaged over processes (equal shards: the rollout's means)."""
        if self.dist is None:
            return stats
        import torch

        keys = sorted(stats)
        t = self(torch.tensor([stats[k] for k in keys], dtype=torch.float64, device=self.device_of()))
        return {k: float(v) / self.size for k, v in zip(keys, t.tolist())}

    def device_of(self):
        import torch

        return "cuda" if self.dist.get_backend() == "nccl" else torch.device("cpu")


class Events:
    """Calls the run's transformers callbacks (tracker, budget, curves) as a Trainer would: our loop is not one."""

    def __init__(self, callbacks, args, state, control, policy):
        self.callbacks, self.args, self.state, self.control, self.policy = callbacks, args, state, control, policy

    def __call__(self, event: str, **kwargs) -> None:
        for cb in self.callbacks:
            out = getattr(cb, event)(self.args, self.state, self.control, model=self.policy, **kwargs)
            if out is not None:
                self.control = out


def disable_dropout(model) -> None:
    import torch

    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def head_of(model):
    """The scalar head of a sequence-classification model (`score` in GPT-2 / Llama / Qwen, else `classifier`)."""
    head = getattr(model, "score", None) or getattr(model, "classifier", None)
    if head is None:
        raise TypeError(f"{type(model).__name__} has no `score` or `classifier` head to read values from")
    return head


def backbone_of(model):
    return getattr(model, model.base_model_prefix)


class Critic:
    """V(s_t) for every response token: a separate value model, or a linear head on the policy's last hidden state.

    `values(hidden_or_none, layout)` takes the policy forward's last hidden state (policy_head) or runs the value
    model (separate)."""

    def __init__(self, kind: str, model, reward, policy):
        import copy

        self.kind, self.model = kind, model
        self.head = None
        if kind == "policy_head":  # init from the reward model's head: the policy's trunk starts as the reward model's
            self.head = copy.deepcopy(head_of(reward)).to(next(policy.parameters()).device).float()

    def parameters(self) -> list:
        module = self.model if self.model is not None else self.head
        return [x for x in module.parameters() if x.requires_grad]

    def values(self, hidden, layout) -> "torch.Tensor":
        if self.kind == "policy_head":
            return self.head(hidden[:, layout.start - 1:-1]).squeeze(-1)
        h = backbone_of(self.model)(input_ids=layout.ids, attention_mask=layout.attn,
                                    position_ids=layout.pos).last_hidden_state
        return head_of(self.model)(h[:, layout.start - 1:-1]).squeeze(-1)


@dataclass
class Layout:
    """Left-padded prompts then right-padded responses: [B, P + R]; response token t sits at column `start` + t."""

    ids: "torch.Tensor"
    attn: "torch.Tensor"
    pos: "torch.Tensor"
    mask: "torch.Tensor"   # [B, R] float, 1 on response tokens
    start: int
    ended: "torch.Tensor"  # [B] bool: the response has an end token

    def rows(self, idx) -> "Layout":
        width = int(self.mask[idx].sum(1).max())  # drop all-padding response columns of this mini-batch
        cut = self.start + width
        return Layout(self.ids[idx, :cut], self.attn[idx, :cut], self.pos[idx, :cut], self.mask[idx, :width],
                      self.start, self.ended[idx])


def layout(tok, prompts: list[str], completion_ids: list[list[int]], device) -> Layout:
    import torch

    enc = tok(prompts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    width = max(1, max(len(c) for c in completion_ids))
    resp = torch.full((len(prompts), width), tok.pad_token_id, dtype=enc["input_ids"].dtype)
    mask = torch.zeros(len(prompts), width)
    for i, c in enumerate(completion_ids):
        resp[i, :len(c)] = torch.tensor(c, dtype=resp.dtype)
        mask[i, :len(c)] = 1.0
    ids = torch.cat([enc["input_ids"], resp], 1)
    attn = torch.cat([enc["attention_mask"], mask.long()], 1)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    ended = torch.tensor([bool(c) and c[-1] == tok.eos_token_id for c in completion_ids])
    return Layout(ids.to(device), attn.to(device), pos.to(device), mask.to(device), enc["input_ids"].shape[1],
                  ended.to(device))


def response_logps(model, lay: Layout, hidden: bool = False):
    """log π(y_t | x, y_<t) of each response token at temperature 1 ([B, R], zero on padding), and the last hidden
    state when asked (the policy-head critic reads it). Only the response's logits are materialised."""
    import torch

    width = lay.mask.shape[1]
    out = model(input_ids=lay.ids, attention_mask=lay.attn, position_ids=lay.pos, logits_to_keep=width + 1,
                output_hidden_states=hidden)
    logits = out.logits[:, :-1].float()
    target = lay.ids[:, lay.start:]
    logp = (logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, -1)) * lay.mask
    return logp, (out.hidden_states[-1] if hidden else None)


def reward_scores(reward, lay: Layout):
    """The reward model's score of prompt + response, read at the response's last token (its end token when it has
    one): the position a right-padded "prompt completion<eos>" is scored at when the reward model trains."""
    import torch

    h = backbone_of(reward)(input_ids=lay.ids, attention_mask=lay.attn, position_ids=lay.pos).last_hidden_state
    last = lay.start + lay.mask.sum(1).long() - 1
    return head_of(reward)(h[torch.arange(h.shape[0], device=h.device), last]).squeeze(-1).float()


def make_rollout(policy, ref, reward, critic: Critic, tok, prompts: list[str], p: dict, kl_coef: float, seed: int,
                 device, sync=None) -> dict:
    """Steps 1–3 of the module docstring: sample, score, and turn scores into whitened advantages (`sync`: the
    whitening statistics are summed over processes)."""
    import contextlib

    import torch

    from bench.algorithms import ppo_core as core
    from bench.modeling import sample

    samples = sample(policy, tok, prompts, max_new_tokens=p["response_length"], temperature=1.0, seed=seed,
                     batch_size=len(prompts))
    lay = layout(tok, prompts, samples.completion_ids, device)
    reduce = sync if sync is not None else (lambda t: t)
    with torch.no_grad():
        was = policy.training
        policy.eval()
        logp, hidden = response_logps(policy, lay, hidden=critic.kind == "policy_head")
        if ref is not None:
            ref_logp, _ = response_logps(ref, lay)
        else:  # LoRA: π_ref is the policy with its adapter switched off
            with policy.disable_adapter() if hasattr(policy, "disable_adapter") else contextlib.nullcontext():
                ref_logp, _ = response_logps(policy, lay)
        policy.train(was)
        values = critic.values(hidden, lay).float() * lay.mask
        score = reward_scores(reward, lay) - p["missing_eos_penalty"] * (~lay.ended).float()
        kl = core.kl_per_token(logp, ref_logp, p["kl_estimator"]) * lay.mask
        rewards = core.token_rewards(score, kl, lay.mask, kl_coef)
        if p["whiten_rewards"]:
            rewards = core.masked_whiten(rewards, lay.mask, shift_mean=False, all_reduce=reduce)
        adv, returns = core.gae(rewards, values, lay.mask, p["gamma"], p["lam"])
        adv = core.masked_whiten(adv, lay.mask, all_reduce=reduce)
    return {"layout": lay, "logp": logp, "values": values, "adv": adv, "returns": returns, "score": score,
            "kl": kl.sum(1), "k1": ((logp - ref_logp) * lay.mask).sum(1)}


def ppo_epochs(policy, critic: Critic, opt, ro: dict, p: dict, order, sync=None) -> dict:
    """Step 4: `num_ppo_epochs` passes over `num_mini_batches` shuffled mini-batches of the rollout (micro-batches
    of at most `per_device_train_batch_size` accumulate into one optimizer step per mini-batch; each micro-batch's
    loss is its token sum over the mini-batch's token count, so the accumulated gradient is the mini-batch's token
    mean). With `sync` (several processes) this process holds rows [rank·n, (rank+1)·n) of the global rollout: the
    mini-batches are drawn over the global rows (the same `order` on every process), each process backpropagates its
    rows and the gradients are summed over processes. Returns the update's stats (averaged over processes)."""
    import torch

    from bench.algorithms import ppo_core as core

    sync = sync if sync is not None else Sync()
    lay = ro["layout"]
    n = lay.ids.shape[0]
    n_global, offset = n * sync.size, n * sync.rank
    mini_batch = math.ceil(n_global / p["num_mini_batches"])
    micro = min(p["per_device_train_batch_size"], mini_batch)
    params = [x for group in opt.param_groups for x in group["params"]]
    policy.train()
    if critic.model is not None:
        critic.model.train()
    stats: dict[str, list[float]] = {k: [] for k in ("pg_loss", "vf_loss", "clipfrac", "vf_clipfrac", "approxkl")}
    for _ in range(p["num_ppo_epochs"]):
        perm = torch.randperm(n_global, generator=order).to(lay.ids.device)
        for mb in perm.split(mini_batch):
            mine = mb[(mb >= offset) & (mb < offset + n)] - offset
            n_tokens = sync(lay.mask[mine].sum().to(torch.float64)).clamp(min=1.0).float()
            opt.zero_grad(set_to_none=True)
            for idx in mine.split(micro):
                sub = lay.rows(idx)
                width = sub.mask.shape[1]
                logp, hidden = response_logps(policy, sub, hidden=critic.kind == "policy_head")
                values = critic.values(hidden, sub).float()
                pg, clipfrac, approxkl = core.policy_loss(logp, ro["logp"][idx, :width], ro["adv"][idx, :width],
                                                          sub.mask, p["cliprange"], n_tokens)
                vf, vf_clipfrac = core.value_loss(values, ro["values"][idx, :width], ro["returns"][idx, :width],
                                                  sub.mask, p["cliprange_value"], n_tokens)
                (pg + p["vf_coef"] * vf).backward()
                share = float(n_tokens) / float(sub.mask.sum().clamp(min=1.0))  # the micro-batch's own means
                for k, v in (("pg_loss", pg * share), ("vf_loss", vf * share), ("clipfrac", clipfrac),
                             ("vf_clipfrac", vf_clipfrac), ("approxkl", approxkl)):
                    stats[k].append(float(v.detach()))
            sync.grads(params)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, p["max_grad_norm"])
            opt.step()
    mean = {k: sum(v) / max(len(v), 1) for k, v in stats.items()}
    length = lay.mask.sum(1)
    out = {"loss": mean["pg_loss"] + p["vf_coef"] * mean["vf_loss"], "policy/pg_loss": mean["pg_loss"],
           "value/vf_loss": mean["vf_loss"], "policy/clipfrac": mean["clipfrac"],
           "value/clipfrac": mean["vf_clipfrac"], "policy/approxkl": mean["approxkl"], "grad_norm": float(grad_norm),
           "objective/scores": float(ro["score"].mean()), "objective/kl": float(ro["kl"].mean()),
           "objective/k1": float(ro["k1"].mean()), "val/response_length": float(length.mean()),
           "val/ended": float(lay.ended.float().mean())}
    return sync.mean(out)
