"""The arithmetic of RLHF PPO as small pure functions on [batch, response-token] tensors, each tested against hand
numbers (tests/test_ppo.py). `bench.algorithms.ppo_rlhf` runs them; nothing here touches a model.

Conventions: `mask` is 1.0 on response tokens (the end token included) and 0.0 on padding after the response;
position t of a row is the t-th response token, its state s_t = prompt + response[:t].

Sources: Schulman et al. 2017 (PPO, arXiv:1707.06347, Eq. 7 clipped surrogate; GAE from Schulman et al. 2016,
arXiv:1506.02438, Eq. 16); Ziegler et al. 2019 (arXiv:1909.08593, Sec. 2.2: per-token KL penalty, the adaptive
controller); Ouyang et al. 2022 (InstructGPT, Eq. 2); Huang et al. 2024 ("The N+ implementation details of RLHF
with PPO", arXiv:2403.17031: reward whitening without the mean shift, advantage whitening, value clipping);
Schulman 2020, "Approximating KL divergence" (the k1 / k3 estimators).

Data parallel (several processes, each holding a shard of the rollout): the whitening statistics take an
`all_reduce` (a sum over processes, identity in one process) and the losses a `n_tokens` (the mini-batch's token
count over every process), so each shard's gradient is its part of the one-process gradient and a sum over
processes gives that gradient up to float order (tests/test_ppo_distributed.py).
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def _identity(t: torch.Tensor) -> torch.Tensor:
    return t


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8,
                  all_reduce=_identity) -> torch.Tensor:
    """(x − mean) / sqrt(var + eps) over the masked entries (population variance, as OpenAI's lm-human-preferences
    `whiten`, Huang et al. 2024 detail 8). `shift_mean=False` keeps the mean (reward whitening: a constant shift of
    every token's reward would change the advantage of long versus short responses). Padding comes back as 0.
    `all_reduce` sums a tensor over processes: the statistics are then the whole rollout's, not this shard's."""
    count = all_reduce(mask.sum().to(torch.float64)).clamp(min=1.0)
    mean = (all_reduce((x * mask).sum().to(torch.float64)) / count).to(x.dtype)
    var = (all_reduce((((x - mean) ** 2) * mask).sum().to(torch.float64)) / count).to(x.dtype)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_per_token(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """A per-token estimate of KL(π‖π_ref) from a token sampled from π (Schulman 2020):
    k1 = log π − log π_ref (unbiased, can be negative: what Ziegler et al. and InstructGPT penalise);
    k3 = (r − 1) − log r with r = π_ref/π (unbiased, never negative, lower variance when π is close to π_ref)."""
    log_ratio = logp - ref_logp
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {estimator!r}")


def token_rewards(score: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """Ziegler et al. 2019 Eq. 2 / InstructGPT Eq. 2 per token: −β·KL_t at every response token, plus the reward
    model's score of the whole response at its last token (the end token when the response has one)."""
    rewards = -kl_coef * kl * mask
    last = (mask.sum(1).long() - 1).clamp(min=0)
    return rewards.scatter_add(1, last[:, None], score[:, None].to(rewards.dtype))


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float):
    """Generalised advantage estimation (Schulman et al. 2016, Eq. 16): δ_t = r_t + γ·V(s_{t+1}) − V(s_t),
    A_t = δ_t + γλ·A_{t+1}, with V = 0 after the last response token (the episode ends there).
    Returns (advantages, returns = A + V), zero on padding."""
    values = values * mask
    next_value = torch.zeros_like(values[:, 0])
    next_adv = torch.zeros_like(values[:, 0])
    adv = torch.zeros_like(values)
    for t in reversed(range(values.shape[1])):
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * m
        next_value = values[:, t] * m
        adv[:, t] = next_adv
    return adv, (adv + values) * mask


def _token_mean(x: torch.Tensor, mask: torch.Tensor, n_tokens) -> torch.Tensor:
    """Masked mean; with `n_tokens` the masked sum over that count (a shard's part of a larger batch's mean)."""
    return masked_mean(x, mask) if n_tokens is None else (x * mask).sum() / n_tokens


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                cliprange: float, n_tokens=None):
    """PPO's clipped surrogate (Schulman et al. 2017, Eq. 7) as a loss: mean over response tokens of
    max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), ρ = π/π_old. Returns (loss, clip fraction, approx KL ½·E[(log ρ)²]).
    `n_tokens`: divide the token sum by the whole mini-batch's count instead (micro-batches and shards then add up
    to the mini-batch's mean; the statistics stay this part's own means)."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = _token_mean(torch.maximum(unclipped, clipped), mask, n_tokens)
    clipfrac = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = 0.5 * masked_mean(log_ratio ** 2, mask)
    return loss, clipfrac.detach(), approx_kl.detach()


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               cliprange_value: float, n_tokens=None):
    """Clipped value loss (Huang et al. 2024 detail 11, from OpenAI's baselines): ½·max((V − R)², (V_clip − R)²)
    with V_clip = V_old + clip(V − V_old, −ε_v, ε_v), averaged over response tokens (`n_tokens`: as in policy_loss).
    Returns (loss, clip fraction)."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * _token_mean(torch.maximum(loss_unclipped, loss_clipped), mask, n_tokens)
    return loss, masked_mean((loss_clipped > loss_unclipped).float(), mask).detach()


class AdaptiveKLController:
    """Ziegler et al. 2019, Sec. 2.2: β_{t+1} = β_t·(1 + K_β·e_t), e_t = clip(KL_t/KL_target − 1, −0.2, 0.2),
    written as in OpenAI's lm-human-preferences, where K_β = n_steps/horizon (n_steps: episodes in this update)."""

    def __init__(self, init: float, target: float, horizon: float):
        self.value, self.target, self.horizon = float(init), float(target), float(horizon)

    def update(self, kl: float, n_steps: int) -> float:
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value


class FixedKLController:
    def __init__(self, value: float):
        self.value = float(value)

    def update(self, kl: float, n_steps: int) -> float:
        return self.value
