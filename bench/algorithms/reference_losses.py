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


# --------------------------------------------------------------------------- the chapter's further variants


def rpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_nll: torch.Tensor | float,
    beta: float,
    rpo_alpha: float,
) -> Losses:
    """RPO / DPO + NLL, Pang et al. 2024 ("Iterative Reasoning Preference
    Optimization", Eq. 1): the DPO loss plus α times the chosen completion's
    negative log-likelihood,

        L = −log σ(β·h) + α·NLL(y_c).

    TRL 1.12 has no ``rpo_alpha`` field any more; the same loss is
    ``loss_type=["sigmoid", "sft"], loss_weights=[1, α]``. TRL's ``sft`` term is
    one token-mean cross-entropy over *all* chosen completion tokens of the batch
    (the paper divides each sequence's NLL by its own length); ``chosen_nll`` is
    that scalar (or a per-pair tensor) and is broadcast.

    Example: β = 0.1, h = 2 (βh = 0.2), NLL = 1.5, α = 0.5:
    0.598139 + 0.75 = 1.348139.
    """
    losses, rc, rr = dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta)
    return torch.broadcast_to(losses + rpo_alpha * chosen_nll, losses.shape), rc, rr


def bco_pair_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    delta: float = 0.0,
) -> Losses:
    """BCO, Jung et al. 2024 ("Binary Classifier Optimization for Large Language
    Model Alignment", Eq. 7): a logistic classifier whose logit is the implicit
    reward r = β·(log π − log π_ref), chosen = class 1, rejected = class 0,

        L = −log σ(r_c − δ) − log σ(−(r_r − δ)).

    δ is the paper's reward shift (a running mean of the rewards). TRL 1.12's
    ``DPOTrainer(loss_type=["bco_pair"])`` computes this with δ = 0; the
    experimental ``BCOTrainer`` adds the running-mean δ, unpaired data and an
    optional density-ratio classifier (UDM), none of which the paired variant has.

    Example: β = 1, r_c = log 3, r_r = −log 3, δ = 0:
    −log 0.75 − log 0.75 = 0.575364.
    """
    chosen = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected = beta * (policy_rejected_logps - ref_rejected_logps)
    losses = -F.logsigmoid(chosen - delta) - F.logsigmoid(-(rejected - delta))
    return losses, chosen.detach(), rejected.detach()


def odpo_offset(score_chosen: torch.Tensor, score_rejected: torch.Tensor, alpha: float) -> torch.Tensor:
    """ODPO's offset Δ = α·f(score_c − score_r) with f(g) = log(1 + max(g, 0)).

    Amini, Vieira & Cotterell 2024 ("Direct Preference Optimization with an
    Offset", Sec. 3) use f = log of the score gap. Deviations: log1p instead of
    log, so a near-zero gap gives a near-zero offset instead of −∞; and pairs
    whose labelled winner scored *lower* (label noise, Bradley–Terry sampling)
    get offset 0, i.e. the plain DPO loss, instead of an undefined log.

    Example: α = 1, gap 3 → log 4 = 1.386294; gap −2 → 0.
    """
    gap = (score_chosen - score_rejected).clamp(min=0.0)
    return alpha * torch.log1p(gap)


def odpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    offset: torch.Tensor,
    beta: float,
) -> Losses:
    """ODPO, Amini et al. 2024, Eq. 8: the chosen implicit reward must exceed the
    rejected one by at least the pair's offset Δ,

        L = −log σ(β·h − Δ).

    With Δ = 0 this is DPO. Example: β = 0.1, h = 2, Δ = 0.2: log 2 = 0.693147.
    """
    h, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    losses = -F.logsigmoid(beta * h - offset)
    return losses, beta * chosen_lr.detach(), beta * rejected_lr.detach()


def cal_dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> Losses:
    """Cal-DPO, Xiao et al. 2024 ("Cal-DPO: Calibrated Direct Preference
    Optimization for Language Model Alignment", NeurIPS): the contrastive term on
    the *unscaled* log-ratios plus a calibration that pins them to ±1/(2β),

        L = −log σ(r_c − r_r) + ½·[(r_c − 1/(2β))² + (r_r + 1/(2β))²],
        r = log π − log π_ref.

    The ½ and the unscaled contrastive term follow the authors' released trainer
    (github.com/tengxiao1/Cal-DPO, ``losses = DPO_loss + 0.5*Cal_loss``). TRL 1.12
    has the calibration term alone (``sppo_hard``) but applies one β to every loss
    term, so the sum is only expressible there at β = 1: this loss runs through
    a loss hook (bench/algorithms/loss_hooks.py) instead.

    Example: β = 0.5 (targets ±1), r_c = 1, r_r = −1: −log σ(2) = 0.126928, no
    calibration penalty; r_c = r_r = 0: log 2 + ½·(1 + 1) = 1.693147.
    """
    _, chosen, rejected = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    target = 1.0 / (2.0 * beta)
    losses = -F.logsigmoid(chosen - rejected) + 0.5 * ((chosen - target) ** 2 + (rejected + target) ** 2)
    return losses, chosen.detach(), rejected.detach()


def rebel_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    reward_gap: torch.Tensor,
    eta: float,
) -> Losses:
    """REBEL, Gao et al. 2024 ("REBEL: Reinforcement Learning via Regressing
    Relative Rewards", Eq. 6): least-squares regression of the scaled log-ratio
    gap onto the reward model's score gap,

        L = ((1/η)·h − (r(x, y_c) − r(x, y_r)))²,   rewards = (1/η)·(log π − log π_ref).

    The paper regresses against the previous iterate π_t on fresh samples of π_t;
    here π_t = π_ref and the pairs are the data set's (one offline iteration).
    Unlike DPO its optimum is finite: h* = η·Δr per pair.

    Example: η = 0.5, h = 2, Δr = 3: (4 − 3)² = 1.
    """
    h, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    losses = (h / eta - reward_gap) ** 2
    return losses, chosen_lr.detach() / eta, rejected_lr.detach() / eta


def alphapo_loss(
    policy_chosen_logps_avg: torch.Tensor,
    policy_rejected_logps_avg: torch.Tensor,
    beta: float,
    simpo_gamma: float,
    alpha: float,
) -> Losses:
    """AlphaPO, Gupta et al. 2025 ("AlphaPO: Reward Shape Matters for LLM
    Alignment", Eq. 6): SimPO with the reward reshaped by α,

        r_α(y) = (1 − p(y)^(−α))/α,   p(y) = exp(avg log π(y|x)),
        L = −log σ(β·(r_α(y_c) − r_α(y_r)) − γ).

    α → 0 recovers SimPO's average log-prob reward. This is TRL 1.12
    ``CPOTrainer`` with ``loss_type="alphapo"`` (sugar for "simpo" with
    ``cpo_alpha=0``) and ``alpha``; the rewards are β·r_α as TRL logs them.

    Example: α = 1, β = 2, γ = 0.5, avg_c = log 0.5, avg_r = log 0.25:
    r_c = 1 − 2 = −1, r_r = 1 − 4 = −3, z = 2·2 − 0.5 = 3.5,
    loss = log(1 + e^−3.5) = 0.029750.
    """
    r_c = (1 - torch.exp(-alpha * policy_chosen_logps_avg)) / alpha
    r_r = (1 - torch.exp(-alpha * policy_rejected_logps_avg)) / alpha
    losses = -F.logsigmoid(beta * (r_c - r_r) - simpo_gamma)
    return losses, beta * r_c.detach(), beta * r_r.detach()


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    kl: torch.Tensor | float,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> Losses:
    """KTO, Ethayarajh et al. 2024 ("KTO: Model Alignment as Prospect Theoretic
    Optimization", Eq. 8) on *unpaired* examples: with r = log π − log π_ref and
    the reference point z₀ = max(0, KL estimate),

        desirable:    λ_D·(1 − σ(β·(r − z₀)))
        undesirable:  λ_U·(1 − σ(β·(z₀ − r))).

    TRL 1.12 ``KTOTrainer(loss_type="kto")`` estimates z₀ as the batch mean of
    log π − log π_ref on mismatched (prompt, other completion) pairs, detached and
    clamped at 0; it returns the per-example losses of the desirable examples
    followed by the undesirable ones (the mean is the same). Returns
    (losses, rewards, rewards) with rewards = β·r for every example.

    Example: β = 1, z₀ = 0, r = log 3 desirable → 1 − 0.75 = 0.25;
    r = log 3 undesirable → 1 − σ(−log 3) = 0.75.
    """
    r = policy_logps - ref_logps
    z0 = torch.as_tensor(kl, dtype=r.dtype).clamp(min=0.0)
    desirable = desirable.bool()
    losses = torch.where(desirable, desirable_weight * (1 - torch.sigmoid(beta * (r - z0))),
                         undesirable_weight * (1 - torch.sigmoid(beta * (z0 - r))))
    rewards = (beta * r).detach()
    return losses, rewards, rewards


def apo_zero_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> Losses:
    """APO-zero, D'Oosterlinck et al. 2024 ("Anchored Preference Optimization and Contrastive Revisions"), Eq. 7:
    for chosen answers better than the model's own, push the chosen log-ratio up and the rejected one down,

        L = (1 − σ(β·r_c)) + σ(β·r_r),   r = log π − log π_ref.

    TRL ``DPOTrainer(loss_type=["apo_zero"])`` (1.12 and 1.16).

    Example: β = 0.5, r_c = 2, r_r = −2 → 1 − σ(1) + σ(−1) = 2·σ(−1) = 0.537882843.
    """
    _, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    losses = 1 - torch.sigmoid(beta * chosen_lr) + torch.sigmoid(beta * rejected_lr)
    return losses, beta * chosen_lr.detach(), beta * rejected_lr.detach()


def apo_down_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> Losses:
    """APO-down, D'Oosterlinck et al. 2024, Eq. 8: for chosen answers *worse* than the model's own, push the chosen
    log-ratio down, and the rejected one further down (the gap h still rises),

        L = σ(β·r_c) + (1 − σ(β·h)),   h = r_c − r_r.

    TRL ``DPOTrainer(loss_type=["apo_down"])`` (1.12 and 1.16).

    Example: β = 0.5, r_c = 2, r_r = −2 → σ(1) + 1 − σ(2) = 0.731058579 + 0.119202922 = 0.850261501.
    """
    h, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    losses = torch.sigmoid(beta * chosen_lr) + 1 - torch.sigmoid(beta * h)
    return losses, beta * chosen_lr.detach(), beta * rejected_lr.detach()


def discopop_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    tau: float = 0.05,
) -> Losses:
    """DiscoPOP / log-ratio modulated loss (LRML), Chris Lu et al. 2024 ("Discovering Preference Optimization
    Algorithms with and for Large Language Models"), Eq. 5: with ρ = β·h, a blend of DPO's logistic loss and an
    exponential loss, mixed by σ(ρ/τ),

        L = (1 − σ(ρ/τ))·(−log σ(ρ)) + σ(ρ/τ)·exp(−ρ).

    TRL ``DPOTrainer(loss_type=["discopop"], discopop_tau=τ)`` (1.12 and 1.16; τ = 0.05 as the paper).

    Example: β = 0.1, h = 2, τ = 0.05 → ρ = 0.2, σ(4) = 0.982013790, −log σ(0.2) = 0.598138869,
    e^−0.2 = 0.818730753 → 0.017986210·0.598138869 + 0.982013790·0.818730753 = 0.814763141.
    At h = 0: ½·log 2 + ½ = 0.846573590.
    """
    h, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    rho = beta * h
    mix = torch.sigmoid(rho / tau)
    losses = (1 - mix) * -F.logsigmoid(rho) + mix * torch.exp(-rho)
    return losses, beta * chosen_lr.detach(), beta * rejected_lr.detach()


def sigmoid_norm_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    rejected_lengths: torch.Tensor,
    beta: float,
) -> Losses:
    """Length-normalised DPO (LN-DPO; Ahrabian et al. 2024, "A Practical Analysis of Human Alignment with *PO"):
    DPO on per-token log-ratios, so a long completion's summed log-ratio does not dominate the margin,

        L = −log σ(β·(r_c/|y_c| − r_r/|y_r|)).

    TRL ``DPOTrainer(loss_type=["sigmoid_norm"])`` (1.12 and 1.16; lengths = completion tokens, end token included).
    Rewards are TRL's logged ones, β·r (not normalised).

    Example: β = 1, r_c = 6 over 3 tokens, r_r = −2 over 2 tokens → h_norm = 2 + 1 = 3,
    loss = log(1 + e^−3) = 0.048587352.
    """
    _, chosen_lr, rejected_lr = _log_ratio_gap(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    delta = chosen_lr / chosen_lengths.clamp(min=1.0) - rejected_lr / rejected_lengths.clamp(min=1.0)
    losses = -F.logsigmoid(beta * delta)
    return losses, beta * chosen_lr.detach(), beta * rejected_lr.detach()
