"""Reference (paper-faithful) DAA losses over per-sequence log-probs.

Small pure-torch functions in the torchtune style: every loss takes per-example
log-probs (shape ``(B,)``) and returns ``(losses, chosen_rewards, rejected_rewards)``,
each of shape ``(B,)`` and *not* reduced, so callers choose the reduction and can
log per-pair quantities. They exist so the harness can (a) check that the TRL
trainers it drives compute what the papers say, and (b) reason about fixed points
on tabular policies in tests, without a model in the loop.

Notation: for a pair (x, y_c, y_r), ``h`` is the log-ratio gap

    h = [log π(y_c|x) − log π_ref(y_c|x)] − [log π(y_r|x) − log π_ref(y_r|x)].

Rewards are the implicit rewards TRL logs (``rewards/chosen``, ``rewards/rejected``);
they are detached, because they are for logging only.

Deviations of TRL 1.12 from the papers are documented on each function; the
short list: IPO averages log-ratios per token; DPOTrainer's ``sigmoid`` ignores
``label_smoothing`` (cDPO needs a loss combination, see :func:`cdpo_loss`);
CPOTrainer's ``simpo`` adds an SFT term unless ``cpo_alpha=0``; ORPOTrainer's NLL
covers prompt + response tokens and is one token-mean over the batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Losses = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _log_ratio_gap(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    return chosen_logratios - rejected_logratios, chosen_logratios, rejected_logratios


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> Losses:
    """DPO, Rafailov et al. 2023 ("Direct Preference Optimization"), Eq. 7.

        L = −log σ(β·h),   rewards = β·(log π − log π_ref).

    TRL 1.12 ``DPOTrainer(loss_type=["sigmoid"])`` computes exactly this on
    token-summed log-probs.

    Example: β = 0.1, π_c = −10, π_r = −12, ref_c = ref_r = −11
    → h = (−10+11) − (−12+11) = 2, βh = 0.2,
    loss = log(1 + e^−0.2) = 0.598139, rewards = (0.1, −0.1).
    """
    h, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    losses = -F.logsigmoid(beta * h)
    return losses, beta * chosen_lr.detach(), beta * rejected_lr.detach()


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    tau: float,
) -> Losses:
    """IPO, Azar et al. 2023 ("A General Theoretical Paradigm to Understand
    Learning from Human Preferences"), Eq. 17.

        L = (h − 1/(2τ))²,   rewards = τ·(log π − log π_ref).

    The minimiser is the finite margin h* = 1/(2τ), even for deterministic
    preferences (that is the point of IPO).

    TRL 1.12 deviation: ``DPOTrainer(loss_type=["ipo"], beta=τ)`` divides each
    log-ratio by its completion's token count before taking the gap
    (trl/trainer/dpo_trainer.py, ``ipo`` branch of ``_compute_loss``):
    h_TRL = (π_c − ref_c)/|y_c| − (π_r − ref_r)/|y_r|. To reproduce TRL's loss
    pass per-token-averaged log-probs, i.e. ``policy_chosen_logps / chosen_len``
    and ``ref_chosen_logps / chosen_len`` (same for rejected). The fixed point is
    then an *average per-token* margin of 1/(2τ). TRL still logs rewards from the
    summed log-ratios (β·(π − ref)), so our rewards differ from TRL's logged ones
    by the factor 1/|y| in that mode; the loss agrees.

    Example: τ = 0.25 (target margin 2); h = 3 → loss 1; h = 0 → loss 4.
    """
    h, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    losses = (h - 1.0 / (2.0 * tau)) ** 2
    return losses, tau * chosen_lr.detach(), tau * rejected_lr.detach()


def cdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    epsilon: float,
) -> Losses:
    """Conservative DPO (cDPO), Mitchell 2023, "A note on DPO with noisy
    preferences & relationship to IPO": DPO with label smoothing ε, i.e. the
    cross-entropy against the soft label (1−ε, ε):

        L = (1−ε)·(−log σ(βh)) + ε·(−log σ(−βh)).

    Setting dL/dh = 0 gives σ(βh) = 1−ε, so the optimum margin is finite:
    h* = log((1−ε)/ε)/β.

    TRL 1.12 deviation: ``DPOTrainer``'s ``sigmoid`` loss no longer reads
    ``label_smoothing`` (older TRL applied cDPO there). With t = −log σ(βh),
    f = −log σ(−βh) and TRL's ``robust`` = ((1−ε)t − εf)/(1−2ε), the identity
    2(1−ε)·t − (1−2ε)·robust = (1−ε)t + εf gives cDPO as
    ``loss_type=["sigmoid", "robust"], loss_weights=[2(1−ε), −(1−2ε)],
    label_smoothing=ε``. (CPOTrainer's ``sigmoid``/``simpo`` still smooth labels
    this way.)

    Example: β = 1, ε = 0.25, h = log 3 (the optimum):
    0.75·(−log 0.75) + 0.25·(−log 0.25) = 0.215762 + 0.346574 = 0.562335.
    """
    h, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    losses = -(1 - epsilon) * F.logsigmoid(beta * h) - epsilon * F.logsigmoid(-beta * h)
    return losses, beta * chosen_lr.detach(), beta * rejected_lr.detach()


def rdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    epsilon: float,
) -> Losses:
    """Robust DPO (rDPO), Chowdhury, Kini & Natarajan 2024 ("Provably Robust
    DPO: Aligning Language Models with Noisy Feedback", arXiv:2403.00409, Sec. 3,
    the de-biased loss for flip rate ε < 1/2):

        L = [(1−ε)·(−log σ(βh)) − ε·(−log σ(−βh))] / (1−2ε).

    Its expectation under labels flipped with probability ε equals the clean DPO
    loss. Unlike cDPO its gradient in h is always negative, so under
    deterministic labels h grows without bound (and the loss → −∞ linearly).
    This is TRL 1.12 ``DPOTrainer(loss_type=["robust"], label_smoothing=ε)``.

    Example: β = 1, ε = 0.25, h = log 3:
    (0.75·0.287682 − 0.25·1.386294)/0.5 = −0.261624; at h = 0 it is log 2.
    """
    h, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    clean = -(1 - epsilon) * F.logsigmoid(beta * h)
    flipped = -epsilon * F.logsigmoid(-beta * h)
    losses = (clean - flipped) / (1 - 2 * epsilon)
    return losses, beta * chosen_lr.detach(), beta * rejected_lr.detach()


def simpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float,
    simpo_gamma: float,
) -> Losses:
    """SimPO, Meng, Xia & Chen 2024 ("SimPO: Simple Preference Optimization with
    a Reference-Free Reward"), Eq. 6:

        L = −log σ(β/|y_c|·log π(y_c) − β/|y_r|·log π(y_r) − γ),
        rewards = β/|y|·log π(y).

    ``policy_*_logps`` are token-summed; lengths are completion token counts.

    ``simpo_gamma`` is named after TRL's ``CPOConfig.simpo_gamma`` and *is* the
    paper's γ (a margin in reward units): CPOTrainer.cpo_loss forms
    ``logits = (avg_c − avg_r) − simpo_gamma/beta`` and takes
    ``−log σ(beta·logits)``, i.e. −log σ(β(avg_c − avg_r) − simpo_gamma). The
    γ/β ratio (the official SimPO repo's ``gamma_beta_ratio``) appears only
    internally in TRL. So a paper setting like β = 2.5, γ/β = 0.55 is
    ``simpo_gamma = 1.375``.

    TRL 1.12 deviations: CPOConfig defaults ``cpo_alpha=1.0``, which adds a
    token-mean NLL on chosen (CPO-SimPO); pure SimPO needs ``cpo_alpha=0``
    (``loss_type="alphapo"`` sets it). ``label_smoothing`` > 0 additionally
    mixes in ε·(−log σ(−z)) as in :func:`cdpo_loss`; not modelled here.

    Example: β = 2, γ = 0.5, log π(y_c) = −20 over 10 tokens (avg −2),
    log π(y_r) = −45 over 15 tokens (avg −3): z = 2·(−2+3) − 0.5 = 1.5,
    loss = log(1 + e^−1.5) = 0.201413, rewards = (−4, −6).
    """
    chosen_rewards = beta * policy_chosen_logps / chosen_lengths
    rejected_rewards = beta * policy_rejected_logps / rejected_lengths
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards - simpo_gamma)
    return losses, chosen_rewards.detach(), rejected_rewards.detach()


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x < 0, stable at both ends (Mächler 2012); the
    branch point −log 2 is the one TRL's ORPO uses."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def orpo_loss(
    policy_chosen_logps_avg: torch.Tensor,
    policy_rejected_logps_avg: torch.Tensor,
    chosen_nll: torch.Tensor | float,
    beta: float,
) -> Losses:
    """ORPO, Hong, Lee & Thorne 2024 ("ORPO: Monolithic Preference Optimization
    without Reference Model"), Eqs. 6-7:

        L = L_SFT + λ·(−log σ(log odds(y_c) − log odds(y_r))),
        log odds(y) = a − log(1 − e^a),   a = per-token average log π(y|x),
        rewards = β·a.

    λ is TRL's ``beta`` (ORPOConfig.beta, default 0.1). Averaged log-probs are
    the paper's length-normalised likelihood.

    TRL 1.12 conventions (trl/experimental/orpo/orpo_trainer.py):
    ``odds_ratio_loss`` returns the *signed* term β·log σ(·) and the trainer's
    loss is ``nll − mean(that)``; here the per-pair loss is positive, so
    ``losses.mean()`` equals TRL's loss when ``chosen_nll`` is TRL's scalar.
    TRL's NLL is ``nn.CrossEntropyLoss`` over *prompt + response* tokens of the
    chosen half (the paper's L_SFT is over the response), averaged over all
    tokens in the batch rather than per sequence. ``chosen_nll`` may be that
    scalar or a per-example tensor; it is broadcast.

    Example: β = 0.1, a_c = log 0.5 (odds 1), a_r = log 0.2 (odds 1/4):
    log-odds gap = log 4, σ(log 4) = 0.8, −log 0.8 = 0.223144;
    with chosen_nll = 2: loss = 2 + 0.1·0.223144 = 2.022314,
    rewards = (0.1·log 0.5, 0.1·log 0.2) = (−0.069315, −0.160944).
    """
    # float32 at least: log1mexp near a = 0 loses everything in bf16.
    chosen = policy_chosen_logps_avg.float()
    rejected = policy_rejected_logps_avg.float()
    log_odds = (chosen - rejected) - (log1mexp(chosen) - log1mexp(rejected))
    losses = chosen_nll - beta * F.logsigmoid(log_odds)
    losses = torch.broadcast_to(losses, log_odds.shape)
    return losses, beta * chosen.detach(), beta * rejected.detach()
