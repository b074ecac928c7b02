"""Tests for bench.algorithms.reference_losses: hand-computed values, identities
between losses, agreement with TRL 1.12's own code, and tabular fixed points."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from functools import partial
from types import SimpleNamespace

import pytest
import torch

from bench.algorithms.reference_losses import (
    apo_down_loss,
    apo_zero_loss,
    cdpo_loss,
    discopop_loss,
    dpo_loss,
    ipo_loss,
    log1mexp,
    orpo_loss,
    rdpo_loss,
    sigmoid_norm_loss,
    simpo_loss,
)

# TRL warns once on importing trl.experimental; irrelevant here.
pytestmark = pytest.mark.filterwarnings("ignore:You are importing from 'trl.experimental'")


def t(*xs):
    return torch.tensor(xs, dtype=torch.float64)


def close(a, b, tol=1e-6):
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), atol=tol, rtol=0)


def logps_with_gap(h):
    """(π_c, π_r, ref_c, ref_r) whose log-ratio gap is h (per element)."""
    h = torch.as_tensor(h, dtype=torch.float64)
    zero = torch.zeros_like(h)
    return h - 5.0, zero - 5.0, zero - 5.0, zero - 5.0


# --------------------------------------------------------------------------- hand-computed values


def test_dpo_hand_computed():
    # h = (−10+11) − (−12+11) = 2, βh = 0.2; log(1+e^−0.2) = log 1.818730753 = 0.598138869
    # second pair: h = 0 → log 2 = 0.693147181
    losses, rc, rr = dpo_loss(t(-10, -3), t(-12, -3), t(-11, -3), t(-11, -3), beta=0.1)
    close(losses, [0.598138869, math.log(2)])
    close(rc, [0.1, 0.0])  # β·(−10+11)
    close(rr, [-0.1, 0.0])  # β·(−12+11)


def test_ipo_hand_computed():
    # τ = 0.25 → target 1/(2τ) = 2.  h = 3 → (3−2)² = 1;  h = 0 → 4;  h = 2 → 0
    losses, rc, rr = ipo_loss(*logps_with_gap([3.0, 0.0, 2.0]), tau=0.25)
    close(losses, [1.0, 4.0, 0.0])
    close(rc, [0.25 * 3, 0.0, 0.25 * 2])  # τ·(π_c − ref_c); rejected log-ratio is 0
    close(rr, [0.0, 0.0, 0.0])


def test_cdpo_hand_computed():
    # β = 1, ε = 0.25.  h = 0: 0.75·log2 + 0.25·log2 = log 2.
    # h = log 3 (the optimum log((1−ε)/ε)): σ = 3/4, so
    # 0.75·(−log 0.75) + 0.25·(−log 0.25) = 0.75·0.287682072 + 0.25·1.386294361 = 0.562335144
    losses, _, _ = cdpo_loss(*logps_with_gap([0.0, math.log(3)]), beta=1.0, epsilon=0.25)
    close(losses, [math.log(2), 0.562335144])


def test_rdpo_hand_computed():
    # β = 1, ε = 0.25.  h = 0: (0.75 − 0.25)·log2 / 0.5 = log 2.
    # h = log 3: (0.75·0.287682072 − 0.25·1.386294361)/0.5 = (0.215761554 − 0.346573590)/0.5 = −0.261624072
    losses, _, _ = rdpo_loss(*logps_with_gap([0.0, math.log(3)]), beta=1.0, epsilon=0.25)
    close(losses, [math.log(2), -0.261624072])


def test_simpo_hand_computed():
    # β = 2, γ = 0.5. avg_c = −20/10 = −2, avg_r = −45/15 = −3.
    # z = 2·(−2) − 2·(−3) − 0.5 = 1.5; log(1 + e^−1.5) = log 1.223130160 = 0.201413277
    losses, rc, rr = simpo_loss(t(-20), t(-45), t(10), t(15), beta=2.0, simpo_gamma=0.5)
    close(losses, [0.201413277])
    close(rc, [-4.0])
    close(rr, [-6.0])


def test_orpo_hand_computed():
    # a_c = log 0.5 → odds 1, log-odds 0;  a_r = log 0.2 → odds 0.25, log-odds −log 4.
    # gap = log 4, σ(log 4) = 4/5, −log 0.8 = 0.223143551; loss = 2 + 0.1·0.223143551
    losses, rc, rr = orpo_loss(t(math.log(0.5)), t(math.log(0.2)), chosen_nll=2.0, beta=0.1)
    close(losses, [2.022314355])
    close(rc, [0.1 * math.log(0.5)])
    close(rr, [0.1 * math.log(0.2)])


def test_log1mexp_stable_at_both_ends():
    x = t(-1e-10, -0.5, -50.0)
    # log(1−e^−1e−10) ≈ log(1e−10); log(1−e^−0.5) = log 0.393469340; log(1−e^−50) ≈ −e^−50
    close(log1mexp(x), [math.log(1e-10), math.log(0.393469340), -math.exp(-50)], tol=1e-8)
    # an (almost) certain chosen completion must not give inf/nan in ORPO
    losses, _, _ = orpo_loss(t(-1e-9), t(-3.0), chosen_nll=0.0, beta=0.1)
    assert torch.isfinite(losses).all()


# --------------------------------------------------------------------------- identities


H = torch.linspace(-6, 6, 25, dtype=torch.float64)


@pytest.mark.parametrize("fn", [cdpo_loss, rdpo_loss])
def test_eps_zero_is_dpo(fn):
    a, _, _ = fn(*logps_with_gap(H), beta=0.7, epsilon=0.0)
    b, _, _ = dpo_loss(*logps_with_gap(H), beta=0.7)
    close(a, b, tol=1e-12)


@pytest.mark.parametrize("eps", [0.05, 0.2, 0.4])
def test_cdpo_is_trl_sigmoid_robust_combination(eps):
    # TRL's sigmoid ignores label_smoothing (1.12 and 1.16); cDPO = 2(1−ε)·sigmoid − (1−2ε)·robust.
    beta = 0.3
    sigmoid, _, _ = dpo_loss(*logps_with_gap(H), beta=beta)
    robust, _, _ = rdpo_loss(*logps_with_gap(H), beta=beta, epsilon=eps)
    cdpo, _, _ = cdpo_loss(*logps_with_gap(H), beta=beta, epsilon=eps)
    close(2 * (1 - eps) * sigmoid - (1 - 2 * eps) * robust, cdpo, tol=1e-12)


def test_cdpo_gradient_vanishes_at_its_optimum():
    beta, eps = 0.5, 0.1
    h = torch.tensor([math.log((1 - eps) / eps) / beta], dtype=torch.float64, requires_grad=True)
    loss, _, _ = cdpo_loss(h, torch.zeros_like(h), torch.zeros_like(h), torch.zeros_like(h), beta, eps)
    (g,) = torch.autograd.grad(loss.sum(), h)
    assert abs(g.item()) < 1e-12


def test_rewards_are_detached():
    h = torch.tensor([1.0], requires_grad=True)
    _, rc, rr = dpo_loss(h, h * 0, h * 0, h * 0, beta=0.1)
    assert not rc.requires_grad and not rr.requires_grad


# --------------------------------------------------------------------------- agreement with TRL source


def _trl_dpo_loss(loss_types, loss_weights, beta, label_smoothing, logits, input_ids, completion_mask, ref_c, ref_r):
    """Call TRL's DPOTrainer._compute_loss on a stub trainer: fixed logits, precomputed ref logps."""
    dpo_trainer = pytest.importorskip("trl.trainer.dpo_trainer")
    acc = SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x)
    stub = SimpleNamespace(
        accelerator=acc,
        model=SimpleNamespace(training=True),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=loss_types,
        loss_weights=loss_weights,
        beta=beta,
        label_smoothing=label_smoothing,
        use_weighting=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0,
        _tp_size=1,
        args=SimpleNamespace(discopop_tau=0.05),
    )
    inputs = {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "completion_mask": completion_mask,
        "ref_chosen_logps": ref_c,
        "ref_rejected_logps": ref_r,
    }
    from trl_stub import fixed_logits_model  # TRL 1.16's fused-LM-head interface over the fixed logits

    model = fixed_logits_model(logits)
    return dpo_trainer.DPOTrainer._compute_loss(stub, model, inputs, return_outputs=False)


@pytest.fixture
def toy_batch():
    """2 pairs (rows: chosen0, chosen1, rejected0, rejected1), 2 prompt tokens, ragged completions."""
    g = torch.Generator().manual_seed(0)
    B2, T, V = 4, 7, 11
    logits = torch.randn(B2, T, V, generator=g)
    input_ids = torch.randint(0, V, (B2, T), generator=g)
    completion_mask = torch.zeros(B2, T, dtype=torch.long)
    for row, n in enumerate([3, 5, 2, 5]):  # completion lengths differ across rows
        completion_mask[row, 2 : 2 + n] = 1
    # our own sequence log-probs: token t is predicted from position t−1
    tok = torch.log_softmax(logits[:, :-1], -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    logps = (tok * completion_mask[:, 1:]).sum(1)
    lengths = completion_mask.sum(1).double()
    ref = torch.tensor([-9.0, -14.0, -6.5, -12.0])
    return SimpleNamespace(
        logits=logits, input_ids=input_ids, completion_mask=completion_mask,
        pc=logps[:2].double(), pr=logps[2:].double(), rc=ref[:2].double(), rr=ref[2:].double(),
        lc=lengths[:2], lr=lengths[2:],
    )  # fmt: skip


def _trl(b, loss_types, loss_weights, beta, eps=0.0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _trl_dpo_loss(
            loss_types, loss_weights, beta, eps, b.logits, b.input_ids, b.completion_mask, b.rc.float(), b.rr.float()
        ).double()


def test_trl_sigmoid_and_robust_match(toy_batch):
    b = toy_batch
    close(_trl(b, ["sigmoid"], [1.0], 0.1), dpo_loss(b.pc, b.pr, b.rc, b.rr, 0.1)[0].mean(), tol=1e-5)
    close(_trl(b, ["robust"], [1.0], 0.1, 0.2), rdpo_loss(b.pc, b.pr, b.rc, b.rr, 0.1, 0.2)[0].mean(), tol=1e-5)
    # label_smoothing is ignored by TRL's sigmoid (1.12, and still in 1.16, though DPOConfig's doc reads it as
    # "robust"/"exo_pair" only) ...
    close(_trl(b, ["sigmoid"], [1.0], 0.1, 0.2), dpo_loss(b.pc, b.pr, b.rc, b.rr, 0.1)[0].mean(), tol=1e-5)
    # ... so cDPO is the weighted sigmoid + robust combination
    eps = 0.2
    trl_cdpo = _trl(b, ["sigmoid", "robust"], [2 * (1 - eps), -(1 - 2 * eps)], 0.1, eps)
    close(trl_cdpo, cdpo_loss(b.pc, b.pr, b.rc, b.rr, 0.1, eps)[0].mean(), tol=1e-5)


def test_trl_ipo_uses_per_token_average(toy_batch):
    b, tau = toy_batch, 0.5
    trl_ipo = _trl(b, ["ipo"], [1.0], tau)
    averaged = ipo_loss(b.pc / b.lc, b.pr / b.lr, b.rc / b.lc, b.rr / b.lr, tau)[0].mean()
    summed = ipo_loss(b.pc, b.pr, b.rc, b.rr, tau)[0].mean()
    close(trl_ipo, averaged, tol=1e-5)
    assert abs(trl_ipo - summed) > 1e-2  # the paper-literal (summed) form differs on this batch


def test_trl_cpo_simpo_gamma_is_paper_gamma():
    cpo = pytest.importorskip("trl.experimental.cpo.cpo_trainer")
    beta, gamma = 2.0, 0.5
    stub = SimpleNamespace(
        alpha=0.0, loss_type="simpo", simpo_gamma=gamma, beta=beta, label_smoothing=0.0,
        accelerator=SimpleNamespace(device=torch.device("cpu")),
    )  # fmt: skip
    sums_c, sums_r, len_c, len_r = t(-20, -7), t(-45, -9), t(10, 7), t(15, 3)
    # CPOTrainer receives average log-probs for loss_type="simpo"
    trl_losses, trl_rc, trl_rr = cpo.CPOTrainer.cpo_loss(stub, sums_c / len_c, sums_r / len_r)
    ours, rc, rr = simpo_loss(sums_c, sums_r, len_c, len_r, beta=beta, simpo_gamma=gamma)
    close(trl_losses, ours, tol=1e-12)
    close(trl_rc, rc, tol=1e-12)
    close(trl_rr, rr, tol=1e-12)


def test_trl_orpo_matches():
    orpo = pytest.importorskip("trl.experimental.orpo.orpo_trainer")
    beta, nll = 0.1, 1.7
    stub = SimpleNamespace(beta=beta, accelerator=SimpleNamespace(device=torch.device("cpu")))
    a_c, a_r = t(-0.3, -1e-6, -2.0), t(-1.2, -0.9, -0.1)
    signed, trl_rc, trl_rr, _, _ = orpo.ORPOTrainer.odds_ratio_loss(stub, a_c, a_r)
    ours, rc, rr = orpo_loss(a_c, a_r, chosen_nll=nll, beta=beta)
    close(ours.mean(), (nll - signed.mean()).float(), tol=1e-6)  # TRL: loss = nll − mean(β·log σ)
    close(rc, trl_rc.float(), tol=1e-7)
    close(rr, trl_rr.float(), tol=1e-7)


# --------------------------------------------------------------------------- tabular fixed points

# 4 prompts × 3 responses; per prompt the pairs (0 ≻ 1) and (0 ≻ 2), always labelled that way.
# The pairs form a tree, so every pair's gap is a free coordinate (θ0−θ1, θ0−θ2) and a per-pair
# optimum is reachable exactly: a clean test of each loss's fixed point.
PROMPT = torch.arange(4).repeat_interleave(2)
CHOSEN = torch.zeros(8, dtype=torch.long)
REJECTED = torch.tensor([1, 2] * 4)


def train_tabular(loss_fn, steps, lr=0.05, checkpoints=()):
    """Full-batch Adam on softmax logits, starting at π = π_ref (random). Returns gaps h at checkpoints."""
    ref_logits = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = ref_logits.log_softmax(-1)
    theta = ref_logits.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    gaps = {}
    for step in range(1, steps + 1):
        logp = theta.log_softmax(-1)
        args = (logp[PROMPT, CHOSEN], logp[PROMPT, REJECTED], ref[PROMPT, CHOSEN], ref[PROMPT, REJECTED])
        loss = loss_fn(*args)[0].mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step in checkpoints:
            with torch.no_grad():
                logp = theta.log_softmax(-1)
                gaps[step] = (logp[PROMPT, CHOSEN] - ref[PROMPT, CHOSEN]) - (logp[PROMPT, REJECTED] - ref[PROMPT, REJECTED])
    return gaps


def assert_within(gaps, target, rel=0.10):
    err = ((gaps - target).abs() / target).max().item()
    assert err < rel, f"gaps {gaps.tolist()} vs target {target}"


def test_ipo_settles_at_half_inverse_tau():
    tau = 0.25  # target 1/(2τ) = 2
    gaps = train_tabular(partial(ipo_loss, tau=tau), 600, checkpoints=(600,))[600]
    assert_within(gaps, 1 / (2 * tau))


def test_cdpo_settles_at_log_odds_over_beta():
    beta, eps = 0.5, 0.2  # target log(0.8/0.2)/0.5 = 2.7726
    gaps = train_tabular(partial(cdpo_loss, beta=beta, epsilon=eps), 600, checkpoints=(600,))[600]
    assert_within(gaps, math.log((1 - eps) / eps) / beta)


@pytest.mark.parametrize("fn", [dpo_loss, partial(rdpo_loss, epsilon=0.2)], ids=["dpo", "rdpo"])
def test_dpo_and_rdpo_gaps_keep_growing(fn):
    beta, n = 0.5, 300
    gaps = train_tabular(partial(fn, beta=beta), 2 * n, checkpoints=(n, 2 * n))
    cdpo_optimum = math.log(0.8 / 0.2) / beta
    assert (gaps[n] > cdpo_optimum).all()
    assert (gaps[2 * n] > gaps[n] + 1.0).all()  # no fixed point: still climbing


# --------------------------------------------------------------------------- apo_zero / apo_down / discopop / sigmoid_norm


def test_apo_hand_computed():
    # β = 0.5, r_c = 2, r_r = −2: zero → 1 − σ(1) + σ(−1) = 2σ(−1); down → σ(1) + 1 − σ(2)
    args = (t(-3.0), t(-7.0), t(-5.0), t(-5.0))
    close(apo_zero_loss(*args, beta=0.5)[0], [0.537882843])
    close(apo_down_loss(*args, beta=0.5)[0], [0.850261501])
    # apo_down pulls the chosen log-ratio *down* (its gradient on π_c is positive), apo_zero up
    pc = t(-3.0).requires_grad_()
    (g_down,) = torch.autograd.grad(apo_down_loss(pc, *args[1:], beta=0.5)[0].sum(), pc)
    (g_zero,) = torch.autograd.grad(apo_zero_loss(pc, *args[1:], beta=0.5)[0].sum(), pc)
    assert g_down.item() > 0 > g_zero.item()


def test_discopop_hand_computed():
    # β = 0.1, h = 2 → ρ = 0.2: (1 − σ(4))·(−log σ(0.2)) + σ(4)·e^−0.2; h = 0 → ½ log 2 + ½
    losses, rc, rr = discopop_loss(*logps_with_gap([2.0, 0.0]), beta=0.1, tau=0.05)
    close(losses, [0.814763141, 0.846573590])
    # τ → large: σ(ρ/τ) → ½ everywhere (an even mix); τ → 0 at ρ < 0: pure logistic (DPO)
    close(discopop_loss(*logps_with_gap([-3.0]), beta=1.0, tau=1e-6)[0], dpo_loss(*logps_with_gap([-3.0]), beta=1.0)[0])


def test_sigmoid_norm_hand_computed():
    # β = 1, r_c = 6 over 3 tokens, r_r = −2 over 2 tokens → h_norm = 3, log(1 + e^−3)
    losses, rc, rr = sigmoid_norm_loss(t(-4.0), t(-12.0), t(-10.0), t(-10.0), t(3.0), t(2.0), beta=1.0)
    close(losses, [0.048587352])
    close(rc, [6.0])
    close(rr, [-2.0])


def test_trl_new_loss_types_match_reference(toy_batch):
    b, beta = toy_batch, 0.3
    close(_trl(b, ["apo_zero"], [1.0], beta), apo_zero_loss(b.pc, b.pr, b.rc, b.rr, beta)[0].mean(), tol=1e-5)
    close(_trl(b, ["apo_down"], [1.0], beta), apo_down_loss(b.pc, b.pr, b.rc, b.rr, beta)[0].mean(), tol=1e-5)
    close(_trl(b, ["discopop"], [1.0], beta), discopop_loss(b.pc, b.pr, b.rc, b.rr, beta, 0.05)[0].mean(), tol=1e-5)
    close(_trl(b, ["sigmoid_norm"], [1.0], beta),
          sigmoid_norm_loss(b.pc, b.pr, b.rc, b.rr, b.lc, b.lr, beta)[0].mean(), tol=1e-5)
