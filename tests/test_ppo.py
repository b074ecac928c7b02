"""Our PPO (bench/algorithms/ppo_rlhf.py, ppo_core.py): the arithmetic against numbers worked out by hand in the
comments, the rollout layout against the harness's one log-prob implementation, and end to end on the tiny world
(the default separate critic, and the value head on the policy with k3, the adaptive controller and reward
whitening)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bench.algorithms import ppo_core as core
from tiny_suite import one_thread, write_tiny_suite

T = torch.tensor


def close(x: torch.Tensor, expected, atol: float = 1e-6) -> None:
    torch.testing.assert_close(x.float(), torch.tensor(expected, dtype=torch.float32), atol=atol, rtol=1e-5)


def test_gae_by_hand():
    # γ = 0.9, λ = 0.5, γλ = 0.45. Row 0 (3 tokens): δ2 = 1 − 0.1 = 0.9 = A2; δ1 = 0.9·0.1 − 0.2 = −0.11,
    # A1 = −0.11 + 0.45·0.9 = 0.295; δ0 = 0.9·0.2 − 0.5 = −0.32, A0 = −0.32 + 0.45·0.295 = −0.18725.
    # Row 1 (2 tokens, then padding whose reward 7 and value 9 must not count): δ1 = −1 − 2 = −3 = A1 (V after the
    # end is 0); δ0 = 0.5 + 0.9·2 − 1 = 1.3, A0 = 1.3 + 0.45·(−3) = −0.05. Returns = A + V.
    rewards = T([[0.0, 0.0, 1.0], [0.5, -1.0, 7.0]])
    values = T([[0.5, 0.2, 0.1], [1.0, 2.0, 9.0]])
    mask = T([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = core.gae(rewards, values, mask, gamma=0.9, lam=0.5)
    close(adv, [[-0.18725, 0.295, 0.9], [-0.05, -3.0, 0.0]])
    close(ret, [[0.31275, 0.495, 1.0], [0.95, -1.0, 0.0]])


def test_gae_lambda_one_gamma_one_is_return_minus_value():
    # λ = γ = 1: A_t = Σ_{k≥t} r_k − V(s_t) (Monte-Carlo return minus the baseline)
    rewards, values, mask = T([[1.0, 2.0, 3.0]]), T([[0.5, 0.5, 0.5]]), torch.ones(1, 3)
    adv, _ = core.gae(rewards, values, mask, 1.0, 1.0)
    close(adv, [[5.5, 4.5, 2.5]])


def test_whitening_by_hand():
    # x = 1, 2, 3 (and a padding 100 that must not count): mean 2, population variance 2/3, so ±1/sqrt(2/3)
    x, mask = T([[1.0, 2.0, 3.0, 100.0]]), T([[1.0, 1.0, 1.0, 0.0]])
    s = 1 / math.sqrt(2 / 3)
    close(core.masked_whiten(x, mask), [[-s, 0.0, s, 0.0]])
    # reward whitening keeps the mean (Huang et al. 2024): 2 ∓ 1.2247
    close(core.masked_whiten(x, mask, shift_mean=False), [[2 - s, 2.0, 2 + s, 0.0]])


def test_kl_estimators_by_hand():
    # π = 0.5, π_ref = 0.25: k1 = log 2 = 0.6931; k3 with r = π_ref/π = 0.5: (0.5 − 1) − log 0.5 = 0.1931.
    # π = 0.25, π_ref = 0.5: k1 = −0.6931 (k1 can be negative); k3 with r = 2: 1 − log 2 = 0.3069.
    logp, ref = T([math.log(0.5), math.log(0.25)]), T([math.log(0.25), math.log(0.5)])
    assert core.kl_per_token(logp, ref, "k1").tolist() == pytest.approx([0.693147, -0.693147], abs=1e-6)
    assert core.kl_per_token(logp, ref, "k3").tolist() == pytest.approx([0.193147, 0.306853], abs=1e-6)
    with pytest.raises(ValueError, match="k1.*k3"):
        core.kl_per_token(logp, ref, "k2")


def test_token_rewards_by_hand():
    # β = 0.5: −0.5·KL per token, the score 2 added at the last response token, nothing on padding
    out = core.token_rewards(T([2.0]), T([[0.1, 0.2, 0.3]]), T([[1.0, 1.0, 0.0]]), kl_coef=0.5)
    close(out, [[-0.05, 1.9, 0.0]])


def test_clipped_policy_loss_by_hand():
    # ratios 1.5, 0.5, 0.5 with advantages 1, 1, −2, ε = 0.2: per-token max(−Aρ, −A·clip(ρ)) =
    # max(−1.5, −1.2) = −1.2 (clipped), max(−0.5, −0.8) = −0.5, max(1.0, 1.6) = 1.6 (clipped); mean −0.1/3.
    # approx KL = ½·mean((log ρ)²) = ½·(0.164402 + 2·0.480453)/3 = 0.187551
    old = torch.zeros(1, 3)
    logp = torch.log(T([[1.5, 0.5, 0.5]]))
    loss, clipfrac, approx_kl = core.policy_loss(logp, old, T([[1.0, 1.0, -2.0]]), torch.ones(1, 3), 0.2)
    assert float(loss) == pytest.approx(-0.1 / 3)
    assert float(clipfrac) == pytest.approx(2 / 3)
    assert float(approx_kl) == pytest.approx(0.187551, abs=1e-6)


def test_clipped_value_loss_by_hand():
    # V = 1, 0; V_old = 0.5, 0.1; R = 2, 0; ε_v = 0.2. Token 0: (1 − 2)² = 1 vs (0.7 − 2)² = 1.69 → 1.69 (clipped);
    # token 1: 0 vs (0.0 − 0)² = 0 → 0. Loss ½·mean = 0.4225, clip fraction ½. A padded third token must not count.
    loss, clipfrac = core.value_loss(T([[1.0, 0.0, 5.0]]), T([[0.5, 0.1, 0.0]]), T([[2.0, 0.0, 0.0]]),
                                     T([[1.0, 1.0, 0.0]]), 0.2)
    assert float(loss) == pytest.approx(0.4225)
    assert float(clipfrac) == pytest.approx(0.5)


def test_adaptive_kl_controller_by_hand():
    # Ziegler et al. 2019: e = clip(KL/target − 1, ±0.2); β ← β·(1 + e·n/horizon).
    # KL 9 vs target 6: e = 0.5 → 0.2; 64 episodes: 0.1·(1 + 0.2·64/10000) = 0.100128.
    # KL 5.7: e = −0.05; 1000 episodes: 0.100128·(1 − 0.005) = 0.09962736.
    ctl = core.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    assert ctl.update(9.0, 64) == pytest.approx(0.100128)
    assert ctl.update(5.7, 1000) == pytest.approx(0.09962736)
    assert core.FixedKLController(0.3).update(100.0, 64) == 0.3


def test_update_flops_counts_the_critic_only_when_separate():
    from bench.algorithms.ppo_rlhf import update_flops

    # separate: 5 rollout forwards + value forward (12) + 4 epochs × (policy 6 + value 6) = 60 per N·token·episode
    assert update_flops(10, 2.0, 3, 4, 6, "separate") == 60 * 10 * 2.0 * 3
    assert update_flops(10, 2.0, 3, 4, 6, "policy_head") == (10 + 24) * 10 * 2.0 * 3


PPO_ENTRIES = """\
[algorithms.ppo]
rm_epochs = 0.5
rm_batch_size = 8

[algorithms.ppo_head]
algorithm = "ppo"
rm_epochs = 0.5
rm_batch_size = 8
critic = "policy_head"
kl_estimator = "k3"
adaptive_kl = true
kl_target = 1.0
kl_horizon = 100
whiten_rewards = true
"""


@pytest.fixture(scope="module")
def ppo_runs(tmp_path_factory):
    from bench.runner import run_suite
    from bench.suite import expand, load_suite

    folder = tmp_path_factory.mktemp("ppo")
    suite = load_suite(write_tiny_suite(folder, name="ppo", algorithms=PPO_ENTRIES))
    with one_thread():
        outcome = run_suite(suite, results_root=folder / "results", cache_dir=folder / "cache", device="cpu")
    runs = {}
    for spec in expand(suite):
        d = outcome.results_dir / "runs" / spec.run_id
        metrics = json.loads((d / "metrics.json").read_text())
        assert metrics["status"] == "finished", (spec.label, metrics.get("error"))
        logs = [json.loads(x) for x in (d / "log_history.jsonl").read_text().splitlines()]
        runs[spec.label] = {"metrics": metrics, "logs": logs, "dir": d, "cache": folder / "cache"}
    return runs


def test_ppo_end_to_end_separate_critic(ppo_runs):
    m, logs = ppo_runs["ppo"]["metrics"], ppo_runs["ppo"]["logs"]
    assert m["steps"] >= 1 and m["stop_reason"] == "budget"
    by = m["compute"]["flops_by_component"]
    for component in ("reward_model_training", "policy", "reference", "reward_model", "value_model"):
        assert by.get(component, 0) > 0, f"no {component} FLOPs in {by}"
    assert m["flops"] <= 1.2e9  # the budget callback stops before a step that would overrun
    for key in ("policy/pg_loss", "value/vf_loss", "policy/clipfrac", "objective/kl", "objective/scores",
                "kl_coef", "learning_rate"):
        assert all(math.isfinite(e[key]) for e in logs), key
    assert logs[0]["policy/approxkl"] < 0.1  # the first epoch starts at ratio 1 (no dropout, same layout)
    assert math.isfinite(m["gold_reward"]) and 0 <= m["win_rate"] <= 1


def test_ppo_end_to_end_policy_head_k3_adaptive(ppo_runs):
    m, logs = ppo_runs["ppo_head"]["metrics"], ppo_runs["ppo_head"]["logs"]
    by = m["compute"]["flops_by_component"]
    assert "value_model" not in by and by["policy"] > 0  # no second network
    assert m["steps"] > ppo_runs["ppo"]["metrics"]["steps"]  # cheaper updates: more of them in the same budget
    assert all(e["objective/kl"] >= -1e-6 for e in logs)  # k3 is never negative
    coefs = [e["kl_coef"] for e in logs]
    assert coefs[0] != 0.05  # the controller moved β after the first update (KL far from its target 1)


def test_rollout_log_probs_match_the_harness_scorer(ppo_runs):
    """The left-padded rollout layout scores responses exactly as bench.modeling.token_logps does right-padded:
    no off-by-one between a response token and the logits that predict it."""
    from bench.algorithms.ppo_rlhf import layout, response_logps
    from bench.modeling import completion_batch, load_causal_lm, load_tokenizer, token_logps

    world_dirs = sorted(p for p in ppo_runs["ppo"]["cache"].rglob("tokenizer.json"))
    tok = load_tokenizer(world_dirs[0].parent)
    model_dir = next(p.parent for p in ppo_runs["ppo"]["cache"].rglob("config.json")
                     if (p.parent / "model.safetensors").exists() and "reward" not in str(p))
    model = load_causal_lm(model_dir)
    prompts = ["the movie was", "i think the plot"]
    completions = ["good .", "was not bad at all ."]
    ids = [tok(c, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for c in completions]
    lay = layout(tok, prompts, ids, "cpu")
    with torch.no_grad():
        ours, _ = response_logps(model, lay)
    theirs, mask = token_logps(model, completion_batch(tok, prompts, completions))
    assert ours.sum(1).tolist() == pytest.approx(theirs.sum(1).tolist(), abs=1e-4)
    assert lay.ended.tolist() == [True, True] and lay.mask.sum(1).tolist() == [len(i) for i in ids]


def word_tokenizer(n_words: int):
    """A word-level tokenizer whose end and padding ids lie outside a model of `n_words` outputs: the model can
    never sample them, so every response runs to `response_length` and no pass processes padding."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(n_words)} | {"<eos>": n_words, "<pad>": n_words + 1, "<unk>": n_words + 2}
    t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    t.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")


def default_world_models(vocab: int = 199):
    """Policy, reference, reward and value models of the default controlled world's shape (2 layers, 128 wide,
    4 heads, 64 positions), randomly initialised."""
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_positions=64, n_embd=128, n_layer=2, n_head=4, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, num_labels=1, pad_token_id=0)
    return (GPT2LMHeadModel(cfg), GPT2LMHeadModel(cfg).eval(), GPT2ForSequenceClassification(cfg).eval(),
            GPT2ForSequenceClassification(cfg))


PPO_DEFAULTS = dict(response_length=16, missing_eos_penalty=1.0, kl_estimator="k1", whiten_rewards=False, gamma=1.0,
                    lam=0.95, num_ppo_epochs=4, num_mini_batches=2, per_device_train_batch_size=32, cliprange=0.2,
                    cliprange_value=0.2, vf_coef=0.1, max_grad_norm=1.0)


@pytest.mark.parametrize("critic_kind", ["separate", "policy_head"])
def test_flop_meter_agrees_with_torch_flop_counter_on_one_update(critic_kind):
    """Done-when of issue 26: the meter (2·N per token forward, 4·N backward, N = every parameter) is within 5% of
    torch's FlopCounterMode (the matmuls actually run, attention included) over one whole update of the default
    world's shape: generation with a KV cache, log π, log π_ref, reward, values, 4 epochs × 2 mini-batches."""
    from torch.utils.flop_counter import FlopCounterMode

    from bench.algorithms import trl_common as tc
    from bench.algorithms.ppo_rlhf import Critic, make_rollout, ppo_epochs
    from bench.budget import ComputeMeter

    tok = word_tokenizer(199)
    policy, ref, reward, value = default_world_models(199)
    critic = Critic(critic_kind, value if critic_kind == "separate" else None, reward, policy)
    meter = ComputeMeter()
    for model, name in ((policy, "policy"), (ref, "reference"), (reward, "reward_model"), (critic.model, "value_model")):
        if model is not None:
            tc.attach(meter, model, name)
    opt = torch.optim.AdamW([x for x in policy.parameters()] + critic.parameters(), lr=1e-4)
    prompts = [" ".join(f"w{(7 * i + 3 * j) % 199}" for j in range(5)) for i in range(32)]
    with one_thread(), FlopCounterMode(display=False) as counter:
        ro = make_rollout(policy, ref, reward, critic, tok, prompts, PPO_DEFAULTS, 0.05, seed=0, device="cpu")
        ppo_epochs(policy, critic, opt, ro, PPO_DEFAULTS, torch.Generator().manual_seed(0))
    assert ro["layout"].mask.sum() == 32 * 16  # no padding anywhere: both count the same positions
    measured = counter.get_total_flops()
    print(f"{critic_kind}: meter / FlopCounterMode = {meter.flops / measured:.4f}")
    assert meter.flops == pytest.approx(measured, rel=0.05), (meter.flops / measured, dict(meter.by_component))


PARITY = Path(__file__).parent / "data" / "ppo_parity.json"
# (budget, metric) where our seed mean may leave TRL 1.12's seed interval, with the reason (README: PPO paragraph)
PAD_EXPLOIT = ("TRL 1.12's PPO at 4x budget learns to end responses with the padding token: its rollout reads the "
               "response as ending at the first pad but finds the end token after it, so the reward model scores a short "
               "prefix with no missing-eos penalty (its logs: every rollout has an end token; its evaluated samples: "
               "0.4-23% end, cut mid-clause, gold -3.7). Ours ends a response at a sampled pad without an end token and "
               "charges the penalty, as the evaluator reads it (README, PPO paragraph)")
EXPLAINED: dict[tuple[float, str], str] = {(2e12, "gold_reward"): PAD_EXPLOIT, (2e12, "win_rate"): PAD_EXPLOIT,
                                           (2e12, "grammatical_fraction"): PAD_EXPLOIT}


def test_parity_fixture_records_world_versions_and_curves():
    """The parity is a comparison of two PPO implementations on one stated world, not a reading of the current one.
    The fixture (benchmarks/ppo_parity.py) was recorded on controlled world format 4 (gold v4) with TRL 1.12, whose
    PPO is gone from the pinned TRL 1.16, so it cannot be re-recorded cheaply when the world changes; this test keys
    on the fixture's own recorded format (a format the code has had, at most the current WORLD_FORMAT) and checks
    that the fixture says which world and packages made it, that both implementations ran on that one world at the
    same budgets, seeds and spend, and that its comparison rows are computed from its own per-seed readings."""
    import statistics

    from bench.worlds.controlled.build import WORLD_FORMAT

    data = json.loads(PARITY.read_text())
    world = data["world"]
    assert world["settings"]["kind"] == "controlled" and world["key"], world
    assert isinstance(world["format"], int) and 1 <= world["format"] <= WORLD_FORMAT, (
        f"tests/data/ppo_parity.json says world format {world['format']!r}; the code has had formats 1-{WORLD_FORMAT}")
    assert data["packages"]["trl"].startswith("1.12") and data["packages"]["torch"]
    groups = data["groups"]
    assert {(g["algorithm"], g["budget_flops"]) for g in groups.values()} == {
        (a, b) for a in ("ppo", "ppo_trl") for b in (5e11, 2e12)}
    for key, g in groups.items():
        assert len(g["seeds"]) >= 3
        assert set(g["seeds"]) == set(groups[key.replace("ppo_trl|", "ppo|")]["seeds"])  # the same seeds
        for seed in g["seeds"].values():
            assert len(seed["curve"]) >= 3 and all(p["grammatical_fraction"] is not None for p in seed["curve"])
            assert len(seed["samples"]) == 3
            assert 0.95 * g["budget_flops"] <= seed["flops"] <= g["budget_flops"] * 1.001  # the same spend
        for m, summary in g["summary"].items():  # each summary is its seeds' readings
            values = [s[m] for s in g["seeds"].values()]
            assert summary["values"] == values and summary["mean"] == pytest.approx(statistics.fmean(values)), (key, m)
    by_key = {(g["algorithm"], g["budget_flops"]): g for g in groups.values()}
    assert len(data["comparison"]) == 2 * len(next(iter(groups.values()))["summary"])
    for row in data["comparison"]:  # each comparison row is computed from the two groups it names
        ours, trl = by_key[("ppo", row["budget_flops"])], by_key[("ppo_trl", row["budget_flops"])]
        assert row["ours"] == ours["summary"][row["metric"]] and row["trl"] == trl["summary"][row["metric"]]
        if row["inside"] is not None:
            assert row["inside"] == (row["trl"]["lo"] <= row["ours"]["mean"] <= row["trl"]["hi"]), row


def test_our_ppo_lands_inside_trl_seed_intervals():
    """Issue 26: at the default suite's settings, default and 4x budget, our PPO's seed mean of gold reward, win
    rate, KL, length and grammatical fraction lies inside TRL 1.12's 95% seed interval, or EXPLAINED says why."""
    data = json.loads(PARITY.read_text())
    checked = [r for r in data["comparison"] if r["inside"] is not None]
    assert len(checked) == 10
    outside = [(r["budget_flops"], r["metric"], r["ours"]["mean"], (r["trl"]["lo"], r["trl"]["hi"]))
               for r in checked if not r["inside"] and (r["budget_flops"], r["metric"]) not in EXPLAINED]
    assert not outside, outside
