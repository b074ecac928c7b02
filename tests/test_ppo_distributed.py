"""Our PPO's update is data parallel: two CPU processes (gloo), each holding half of a rollout, end one update with
the same weights as one process given the whole rollout (up to float order), and whitening over the shards equals
whitening the whole. The update is run on a fixed rollout (tiny GPT-2 policy, a separate GPT-2 critic) so the test
compares the update itself, not sampling (each process samples its own slice with its own seed)."""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")

P = {"num_ppo_epochs": 2, "num_mini_batches": 2, "per_device_train_batch_size": 2, "cliprange": 0.2,
     "cliprange_value": 0.2, "vf_coef": 0.1, "max_grad_norm": 1.0}
ROWS, PROMPT, RESPONSE, VOCAB = 8, 3, 5, 40


def build():
    """Policy, critic, optimizer and a rollout of ROWS rows, identical in every process (fixed seeds)."""
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    from bench.algorithms import ppo_core as core
    from bench.algorithms.ppo_rlhf import Critic, Layout, disable_dropout, response_logps

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1, n_head=2, num_labels=1,
                     pad_token_id=0, bos_token_id=1, eos_token_id=2)
    policy, value = GPT2LMHeadModel(cfg), GPT2ForSequenceClassification(cfg)
    for m in (policy, value):
        disable_dropout(m)
    critic = Critic("separate", value, None, policy)
    ids = torch.randint(3, VOCAB, (ROWS, PROMPT + RESPONSE))
    lengths = torch.tensor([5, 1, 3, 5, 2, 4, 5, 3])
    mask = (torch.arange(RESPONSE)[None] < lengths[:, None]).float()
    attn = torch.cat([torch.ones(ROWS, PROMPT, dtype=torch.long), mask.long()], 1)
    lay = Layout(ids, attn, (attn.cumsum(-1) - 1).clamp(min=0), mask, PROMPT, lengths < RESPONSE)
    with torch.no_grad():
        logp, _ = response_logps(policy, lay)
        values = critic.values(None, lay) * mask
    adv = core.masked_whiten(torch.randn(ROWS, RESPONSE) * mask, mask)
    ro = {"layout": lay, "logp": logp, "values": values, "adv": adv,
          "returns": (values + torch.randn(ROWS, RESPONSE)) * mask, "score": torch.randn(ROWS),
          "kl": torch.rand(ROWS), "k1": torch.rand(ROWS)}
    # SGD: the weights move linearly in the summed gradient (Adam's m/√v turns float-order noise in near-zero
    # gradients into steps of ±lr, which would hide what is compared)
    opt = torch.optim.SGD(list(policy.parameters()) + critic.parameters(), lr=0.5)
    return policy, critic, opt, ro


def shard(ro: dict, rank: int, size: int) -> dict:
    n = ROWS // size
    rows = slice(rank * n, (rank + 1) * n)
    lay = ro["layout"]
    out = {k: v[rows] for k, v in ro.items() if k != "layout"}
    out["layout"] = type(lay)(lay.ids[rows], lay.attn[rows], lay.pos[rows], lay.mask[rows], lay.start, lay.ended[rows])
    return out


def weights(policy, critic) -> torch.Tensor:
    return torch.cat([x.detach().flatten() for x in list(policy.parameters()) + critic.parameters()])


def _worker(rank: int, size: int, init: str, out_dir: str) -> None:
    import torch.distributed as dist

    from bench.algorithms import ppo_core as core
    from bench.algorithms.ppo_rlhf import Sync, ppo_epochs

    os.environ.update(WORLD_SIZE=str(size), RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=size)
    try:
        policy, critic, opt, ro = build()
        mine = shard(ro, rank, size)
        sync = Sync()
        x = torch.randn(ROWS, RESPONSE, generator=torch.Generator().manual_seed(3)) * ro["layout"].mask
        whitened = core.masked_whiten(x[rank * 4:(rank + 1) * 4], mine["layout"].mask, all_reduce=sync)
        stats = ppo_epochs(policy, critic, opt, mine, P, torch.Generator().manual_seed(0), sync)
        torch.save({"weights": weights(policy, critic), "whitened": whitened, "x": x, "stats": stats},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_two_process_update_equals_one_process(tmp_path):
    import torch.multiprocessing as mp

    from bench.algorithms import ppo_core as core
    from bench.algorithms.ppo_rlhf import ppo_epochs

    policy, critic, opt, ro = build()
    before = weights(policy, critic)
    single_stats = ppo_epochs(policy, critic, opt, ro, P, torch.Generator().manual_seed(0))
    single = weights(policy, critic)
    assert (single - before).abs().max() > 1e-3  # the update moved the weights: the comparison means something

    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'rendezvous'}", str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert torch.allclose(r0["weights"], r1["weights"])  # the processes stay in lockstep
    assert (r0["weights"] - single).abs().max() < 1e-5
    # whitening over the two shards is whitening of the whole rollout
    whole = core.masked_whiten(r0["x"], ro["layout"].mask)
    assert torch.allclose(torch.cat([r0["whitened"], r1["whitened"]]), whole, atol=1e-6)
    # the statistics are the rollout's (lengths, scores), the same in both processes
    assert r0["stats"] == r1["stats"]
    assert r0["stats"]["val/response_length"] == pytest.approx(single_stats["val/response_length"])
    assert r0["stats"]["objective/scores"] == pytest.approx(single_stats["objective/scores"], abs=1e-6)
