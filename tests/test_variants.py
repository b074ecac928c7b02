"""The chapter's further variants (issue 14): hand-computed values of each pure reference loss, agreement with
TRL 1.12's own loss code where TRL computes the loss (RPO, BCO, AlphaPO, KTO, Cal-DPO at β = 1), the loss hook's
log-probs equal to TRL's, and the data transformations (KTO's unpairing, ODPO's scores)."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from bench.algorithms.reference_losses import (
    alphapo_loss,
    bco_pair_loss,
    cal_dpo_loss,
    dpo_loss,
    kto_loss,
    odpo_loss,
    odpo_offset,
    rebel_loss,
    rpo_loss,
    simpo_loss,
)
from test_reference_losses import _trl, close, logps_with_gap, t, toy_batch  # noqa: F401  (toy_batch: fixture)

pytestmark = pytest.mark.filterwarnings("ignore:You are importing from 'trl.experimental'")


# --------------------------------------------------------------------------- hand-computed values


def test_rpo_hand_computed():
    # β = 0.1, h = 2 → DPO term log(1 + e^−0.2) = 0.598138869; + α·NLL = 0.5·1.5 = 0.75
    losses, rc, rr = rpo_loss(t(-10), t(-12), t(-11), t(-11), chosen_nll=1.5, beta=0.1, rpo_alpha=0.5)
    close(losses, [1.348138869])
    close(rc, [0.1])
    close(rr, [-0.1])


def test_bco_pair_hand_computed():
    # β = 1, r_c = log 3, r_r = −log 3: −log σ(log 3) − log σ(log 3) = 2·(−log 0.75) = 0.575364145
    losses, rc, rr = bco_pair_loss(t(math.log(3) - 5), t(-math.log(3) - 5), t(-5), t(-5), beta=1.0)
    close(losses, [0.575364145])
    close(rc, [math.log(3)])
    # a reward shift δ = r_c moves the chosen term to log 2: log 2 + (−log σ(−(−log3 − log3))) = 0.693147 + 0.105361
    losses, _, _ = bco_pair_loss(t(math.log(3) - 5), t(-math.log(3) - 5), t(-5), t(-5), beta=1.0, delta=math.log(3))
    close(losses, [math.log(2) - math.log(1 - 1 / 10)])


def test_odpo_offset_and_loss_hand_computed():
    # α = 1: gap 3 → log 4; gap −2 (a flipped label) → 0; gap 0 → 0
    close(odpo_offset(t(2.0, -1.0, 0.5), t(-1.0, 1.0, 0.5), alpha=1.0), [math.log(4), 0.0, 0.0])
    close(odpo_offset(t(2.0), t(-1.0), alpha=0.5), [0.5 * math.log(4)])
    # β = 0.1, h = 2, Δ = 0.2 → −log σ(0) = log 2; Δ = 0 is DPO
    losses, rc, rr = odpo_loss(t(-10), t(-12), t(-11), t(-11), offset=t(0.2), beta=0.1)
    close(losses, [math.log(2)])
    close(rc, [0.1])
    plain, _, _ = odpo_loss(*logps_with_gap(torch.linspace(-3, 3, 7, dtype=torch.float64)), offset=t(0.0), beta=0.4)
    dpo, _, _ = dpo_loss(*logps_with_gap(torch.linspace(-3, 3, 7, dtype=torch.float64)), beta=0.4)
    close(plain, dpo, tol=1e-12)


def test_cal_dpo_hand_computed():
    # β = 0.5 → targets ±1. r_c = 1, r_r = −1: −log σ(2) = 0.126928011, no calibration penalty.
    # r_c = r_r = 0: log 2 + ½·(1 + 1) = 1.693147181
    losses, rc, rr = cal_dpo_loss(t(-4.0, -5.0), t(-6.0, -5.0), t(-5.0, -5.0), t(-5.0, -5.0), beta=0.5)
    close(losses, [0.126928011, 1.693147181])
    close(rc, [1.0, 0.0])
    close(rr, [-1.0, 0.0])


def test_rebel_hand_computed_and_optimum():
    # η = 0.5, h = 2, Δr = 3: (2/0.5 − 3)² = 1
    losses, rc, rr = rebel_loss(t(-10), t(-12), t(-11), t(-11), reward_gap=t(3.0), eta=0.5)
    close(losses, [1.0])
    close(rc, [2.0])  # (1/η)·(π_c − ref_c)
    # the optimum is finite, h* = η·Δr, with zero gradient there
    h = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    loss, _, _ = rebel_loss(h, torch.zeros_like(h), torch.zeros_like(h), torch.zeros_like(h), t(3.0), eta=0.5)
    (g,) = torch.autograd.grad(loss.sum(), h)
    assert abs(loss.item()) < 1e-12 and abs(g.item()) < 1e-12


def test_alphapo_hand_computed_and_simpo_limit():
    # α = 1, β = 2, γ = 0.5, p_c = 0.5, p_r = 0.25: r = 1 − 1/p → −1, −3; z = 2·2 − 0.5 = 3.5; log(1 + e^−3.5)
    losses, rc, rr = alphapo_loss(t(math.log(0.5)), t(math.log(0.25)), beta=2.0, simpo_gamma=0.5, alpha=1.0)
    close(losses, [0.029750227])
    close(rc, [-2.0])
    close(rr, [-6.0])
    # α → 0: SimPO's average log-prob reward
    a, _, _ = alphapo_loss(t(-2.0), t(-3.0), beta=2.0, simpo_gamma=0.5, alpha=1e-7)
    s, _, _ = simpo_loss(t(-20), t(-45), t(10), t(15), beta=2.0, simpo_gamma=0.5)
    close(a, s, tol=1e-5)


def test_kto_hand_computed():
    # β = 1, z₀ = 0: desirable r = log 3 → 1 − 0.75 = 0.25; undesirable r = log 3 → 1 − σ(−log 3) = 0.75
    losses, rewards, _ = kto_loss(t(math.log(3) - 5, math.log(3) - 5), t(-5, -5), torch.tensor([True, False]),
                                  kl=0.0, beta=1.0)
    close(losses, [0.25, 0.75])
    close(rewards, [math.log(3), math.log(3)])
    # a negative KL estimate is clamped to 0; λ weights scale each side
    losses, _, _ = kto_loss(t(-5, -5), t(-5, -5), torch.tensor([True, False]), kl=-3.0, beta=1.0,
                            desirable_weight=2.0, undesirable_weight=0.5)
    close(losses, [2 * 0.5, 0.5 * 0.5])


# --------------------------------------------------------------------------- agreement with TRL's own code


def test_trl_rpo_is_sigmoid_plus_sft(toy_batch):
    b, alpha = toy_batch, 0.7
    trl_rpo = _trl(b, ["sigmoid", "sft"], [1.0, alpha], 0.1)
    # TRL's sft term: one token-mean cross-entropy over the chosen completion tokens of the batch
    logits, ids, mask = b.logits[:2, :-1], b.input_ids[:2, 1:], b.completion_mask[:2, 1:].bool()
    nll = F.cross_entropy(logits[mask], ids[mask]).double()
    close(trl_rpo, rpo_loss(b.pc, b.pr, b.rc, b.rr, nll, 0.1, alpha)[0].mean(), tol=1e-5)


def test_trl_bco_pair_matches(toy_batch):
    b = toy_batch
    close(_trl(b, ["bco_pair"], [1.0], 0.3), bco_pair_loss(b.pc, b.pr, b.rc, b.rr, 0.3)[0].mean(), tol=1e-5)


def test_trl_sppo_hard_plus_sigmoid_is_cal_dpo_at_beta_one(toy_batch):
    """TRL has Cal-DPO's calibration term (sppo_hard) but one β for every term: at β = 1 the sum is Cal-DPO
    (weights 1, ½), which pins our reference loss to TRL's code; at other β it is not, hence the loss hook."""
    b = toy_batch
    close(_trl(b, ["sigmoid", "sppo_hard"], [1.0, 0.5], 1.0), cal_dpo_loss(b.pc, b.pr, b.rc, b.rr, 1.0)[0].mean(),
          tol=1e-5)
    assert abs(_trl(b, ["sigmoid", "sppo_hard"], [1.0, 0.5], 0.3)
               - cal_dpo_loss(b.pc, b.pr, b.rc, b.rr, 0.3)[0].mean()) > 1e-2


def test_trl_cpo_alphapo_matches():
    cpo = pytest.importorskip("trl.experimental.cpo.cpo_trainer")
    config = pytest.importorskip("trl.experimental.cpo").CPOConfig
    args = config(output_dir="/tmp/unused", loss_type="alphapo", alpha=0.6, beta=2.0, simpo_gamma=0.5,
                  report_to="none", use_cpu=True)
    assert args.loss_type == "simpo" and args.cpo_alpha == 0.0  # TRL's sugar: no SFT term
    stub = SimpleNamespace(alpha=args.alpha, loss_type=args.loss_type, simpo_gamma=args.simpo_gamma, beta=args.beta,
                           label_smoothing=0.0, accelerator=SimpleNamespace(device=torch.device("cpu")))
    avg_c, avg_r = t(-0.4, -2.0, -1.1), t(-1.3, -0.9, -1.1)
    trl_losses, trl_rc, trl_rr = cpo.CPOTrainer.cpo_loss(stub, avg_c, avg_r)
    ours, rc, rr = alphapo_loss(avg_c, avg_r, beta=2.0, simpo_gamma=0.5, alpha=0.6)
    close(trl_losses, ours, tol=1e-12)
    close(trl_rc, rc, tol=1e-12)
    close(trl_rr, rr, tol=1e-12)


def test_trl_kto_matches():
    kto = pytest.importorskip("trl.trainer.kto_trainer")
    g = torch.Generator().manual_seed(1)
    B, T, V = 4, 6, 9
    logits = torch.randn(B, T, V, generator=g)
    input_ids = torch.randint(0, V, (B, T), generator=g)
    completion_mask = torch.zeros(B, T, dtype=torch.long)
    for row, n in enumerate([2, 4, 3, 1]):
        completion_mask[row, 2:2 + n] = 1
    labels = torch.tensor([True, False, False, True])
    ref = torch.tensor([-6.0, -9.0, -4.0, -3.5])
    kl_policy, kl_ref = torch.tensor([-5.0, -7.0, -6.0, -8.0]), torch.tensor([-5.5, -7.5, -6.2, -8.1])
    acc = SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x)
    stub = SimpleNamespace(
        model=SimpleNamespace(training=True), accelerator=acc, aux_loss_enabled=False, precompute_ref_logps=True,
        calculate_KL=True, loss_type="kto", beta=0.4, desirable_weight=1.3, undesirable_weight=0.8,
        _metrics=defaultdict(lambda: defaultdict(list)), _total_train_tokens=0, _tp_size=1,
        _compute_kl_logps=lambda model, batch: kl_policy)
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "completion_mask": completion_mask,
             "label": labels, "ref_logps": ref, "ref_KL_logps": kl_ref}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl_stub import fixed_logits_model  # TRL 1.16's fused-LM-head interface over the fixed logits

        trl_loss = kto.KTOTrainer._compute_loss(stub, fixed_logits_model(logits), batch, False)
    tok = torch.log_softmax(logits[:, :-1], -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    logps = (tok * completion_mask[:, 1:]).sum(1)
    z0 = (kl_policy - kl_ref).mean()
    ours, _, _ = kto_loss(logps, ref, labels, z0, 0.4, 1.3, 0.8)
    close(trl_loss.double(), ours.mean().double(), tol=1e-5)


def test_trl_sync_ref_model_is_tr_dpos_soft_update():
    """TR-DPO^α (Gorbatovski et al. 2024, Eq. 3): π_ref ← α·π_θ + (1−α)·π_ref, TRL's SyncRefModelCallback."""
    from trl.trainer.callbacks import SyncRefModelCallback

    policy, ref = torch.nn.Linear(2, 1, bias=False), torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        policy.weight[:] = torch.tensor([[1.0, 2.0]])
        ref.weight[:] = torch.tensor([[3.0, -2.0]])
    SyncRefModelCallback._sync_target_model(policy, ref, 0.6)
    close(ref.weight.detach().double(), [[0.6 * 1 + 0.4 * 3, 0.6 * 2 + 0.4 * -2]])


def _hook_loss(b, pair_loss, target=None):
    """PairLossDPOTrainer._compute_loss on the stub trainer TRL's own DPO loss is called with."""
    from bench.algorithms.loss_hooks import TARGET, PairLossDPOTrainer

    acc = SimpleNamespace(device=torch.device("cpu"), gather=lambda x: x, gather_for_metrics=lambda x: x)
    stub = SimpleNamespace(accelerator=acc, model=SimpleNamespace(training=True), precompute_ref_logps=True,
                           pair_loss=pair_loss, _metrics=defaultdict(lambda: defaultdict(list)))
    inputs = {"input_ids": b.input_ids, "attention_mask": torch.ones_like(b.input_ids),
              "completion_mask": b.completion_mask, "ref_chosen_logps": b.rc.float(),
              "ref_rejected_logps": b.rr.float()}
    if target is not None:
        inputs[TARGET] = target
    model = lambda **kw: SimpleNamespace(logits=b.logits)  # noqa: E731
    return PairLossDPOTrainer._compute_loss(stub, model, inputs).double(), stub._metrics["train"]


def test_loss_hook_log_probs_are_trls(toy_batch):
    b = toy_batch
    hooked, metrics = _hook_loss(b, lambda pc, pr, rc, rr: dpo_loss(pc, pr, rc, rr, 0.1))
    close(hooked, _trl(b, ["sigmoid"], [1.0], 0.1), tol=1e-5)
    assert metrics["rewards/chosen"] and metrics["logps/chosen"]


def test_loss_hook_passes_the_pair_target(toy_batch):
    b = toy_batch
    offset = torch.tensor([0.3, -0.2])
    hooked, _ = _hook_loss(b, lambda pc, pr, rc, rr, o: odpo_loss(pc, pr, rc, rr, o, 0.1), target=offset)
    close(hooked, odpo_loss(b.pc, b.pr, b.rc, b.rr, offset.double(), 0.1)[0].mean(), tol=1e-5)
    hooked, _ = _hook_loss(b, lambda pc, pr, rc, rr: cal_dpo_loss(pc, pr, rc, rr, 0.3))
    close(hooked, cal_dpo_loss(b.pc, b.pr, b.rc, b.rr, 0.3)[0].mean(), tol=1e-5)


def test_collator_adds_the_target():
    from bench.algorithms.loss_hooks import WithTarget

    wrapped = WithTarget(lambda examples: {"n": len(examples)})
    out = wrapped([{"pair_target": 1.5}, {"pair_target": -2}])
    assert out["n"] == 2 and out["pair_target"].tolist() == [1.5, -2.0]
    assert "pair_target" not in wrapped([{"x": 1}])


# --------------------------------------------------------------------------- data transformations


def test_kto_unpairs_every_pair_into_one_good_and_one_bad_example():
    from datasets import Dataset

    from bench.algorithms.kto import unpair

    pairs = Dataset.from_dict({"prompt": [f"p{i}" for i in range(20)], "chosen": [f"c{i}" for i in range(20)],
                               "rejected": [f"r{i}" for i in range(20)]})
    rows = unpair(pairs, seed=3)
    assert len(rows) == 40 and sum(rows["label"]) == 20
    good = {(p, c) for p, c, lab in zip(rows["prompt"], rows["completion"], rows["label"]) if lab}
    assert good == {(f"p{i}", f"c{i}") for i in range(20)}
    assert list(unpair(pairs, seed=3)["completion"]) == list(rows["completion"])  # deterministic per seed
    adjacent = sum(rows["prompt"][i] == rows["prompt"][i + 1] for i in range(39))
    assert adjacent < 10  # shuffled: KTO's mismatched KL completions are mostly other prompts'


def _odpo_ctx(train_dir="/data/pairs"):
    return SimpleNamespace(spec=SimpleNamespace(algorithm="odpo", world=SimpleNamespace(kind="hub")),
                           world=SimpleNamespace(train_pairs_dir=train_dir))


def test_odpo_needs_scores_and_says_so_in_one_line():
    from datasets import Dataset

    from bench.algorithms.dpo_variants import score_gap
    from bench.errors import UserError

    unscored = Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]})
    with pytest.raises(UserError) as err:
        score_gap(_odpo_ctx(), unscored)
    line = str(err.value)
    assert "\n" not in line and "score_chosen" in line and "/data/pairs" in line and "another algorithm" in line
    partial = Dataset.from_dict({"prompt": ["a", "b"], "chosen": ["b", "c"], "rejected": ["c", "d"],
                                 "score_chosen": [1.0, None], "score_rejected": [0.5, 0.2]})
    with pytest.raises(UserError, match="1 of 2 training pairs"):
        score_gap(_odpo_ctx(), partial)
    scored = Dataset.from_dict({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"], "score_chosen": [2.0],
                                "score_rejected": [0.5]})
    assert score_gap(_odpo_ctx(), scored) == [1.5]


def test_variant_suites_validate_with_equal_grids():
    """The variants suite and the sweep's grids: every new algorithm has an entry, every sweep grid the same size."""
    from bench.suite import _grid_size, load_suite

    variants = load_suite("suites/controlled-variants.toml")
    names = {e.algorithm for e in variants.entries}
    assert {"rpo", "bco", "tr_dpo", "odpo", "cal_dpo", "rebel", "alphapo", "kto"} <= names
    sweep = load_suite("suites/controlled-sweep.toml")
    sizes = {e.algorithm: _grid_size(e) for e in sweep.entries if e.algorithm != "sft"}
    assert {"rpo", "bco", "tr_dpo", "odpo", "cal_dpo", "rebel", "alphapo", "kto", "rloo", "grpo"} <= set(sizes)
    assert len(set(sizes.values())) == 1, sizes


def test_rebel_scores_only_the_pairs_its_budget_can_train_on():
    """REBEL charged scoring all pairs up front (≈31 DPO steps of the controlled world: 7 steps were left end to end);
    it now scores the pairs the budget left after the reward model's charge can train on, +10% and one batch."""
    from types import SimpleNamespace

    from datasets import Dataset

    from bench.algorithms.dpo_variants import REBEL
    from bench.budget import ComputeMeter

    class Words:  # a tokenizer stand-in: one token per word
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    pairs = Dataset.from_dict({"prompt": ["a b"] * 1000, "chosen": ["c d e"] * 1000, "rejected": ["f"] * 1000})
    tokens = 2 * 2 + 4 + 2  # prompt twice + chosen + end + rejected + end
    params = {"precompute_ref_log_probs": False, "per_device_train_batch_size": 8, "gradient_accumulation_steps": 1}
    ctx = SimpleNamespace(params=params, spec=SimpleNamespace(options=SimpleNamespace(peft=None)),
                          meter=ComputeMeter(budget_kind="flops", budget=1e8))
    ctx.meter.charge("reward_model_training", 3.95e7)  # 6.05e7 FLOPs left
    n = 1000
    # per pair (8 + 2) * n * tokens = 1e5 FLOPs: policy fwd+bwd + reference fwd, and the reward model's forward
    assert REBEL.pairs_to_score(ctx, pairs, Words(), n) == 666 + 8  # ceil(1.1 * 6.05e7 / 1e5) + one batch
    ctx.meter.charge("reward_model_training", 6.0e7)  # 5e5 left: the spare batch and a few pairs
    assert REBEL.pairs_to_score(ctx, pairs, Words(), n) == 6 + 8
    ctx.meter = ComputeMeter(budget_kind="flops", budget=1e12)
    assert REBEL.pairs_to_score(ctx, pairs, Words(), n) == len(pairs)  # affordable: every pair
    ctx.meter = ComputeMeter(budget_kind="seconds", budget=60.0)
    assert REBEL.pairs_to_score(ctx, pairs, Words(), n) == len(pairs)  # no FLOP forecast: score them all

    lora = SimpleNamespace(params=params, spec=SimpleNamespace(options=SimpleNamespace(peft={"r": 8})),
                           meter=ComputeMeter(budget_kind="flops", budget=1e8))
    lora.meter.charge("reward_model_training", 3.95e7)  # LoRA: backward 2 instead of 4 -> 8e4 FLOPs per pair
    assert REBEL.pairs_to_score(lora, pairs, Words(), n) == 832 + 8  # ceil(1.1 * 6.05e7 / 8e4) = 832
    pre = SimpleNamespace(params={**params, "precompute_ref_log_probs": True}, spec=ctx.spec,
                          meter=ComputeMeter(budget_kind="flops", budget=1e8))
    pre.meter.charge("reward_model_training", 3.95e7)  # precompute: 6 + 2 (precompute) + 2 (score) = 1e5 again
    assert REBEL.pairs_to_score(pre, pairs, Words(), n) == 666 + 8


def test_rebel_subset_keeps_the_tracked_pairs_and_is_seeded():
    from bench.algorithms.dpo_variants import REBEL

    idx = REBEL.scored_subset(4000, 1000, 64, seed=3)
    assert len(idx) == len(set(idx)) == 1000 and idx[:64] == list(range(64)) and max(idx) < 4000
    assert idx == REBEL.scored_subset(4000, 1000, 64, seed=3) != REBEL.scored_subset(4000, 1000, 64, seed=4)
    assert REBEL.scored_subset(4000, 10, 64, seed=0) == list(range(10))  # fewer than the tracked: the first ones
