"""Metrics of one policy against π_ref, computed the same way for every algorithm (DAAs, PPO, references).

Two measurement primitives, used both for the final metrics and for the curves during training:
- `pair_logps(policy, pairs)`: Σ_t log π(y|x) of chosen and rejected completions of fixed pairs (prompt and
  padding masked) — the displacement measurement;
- `sample_metrics(policy, ref, prompts)`: ancestral samples y ~ π(·|x), judged, with per-sample KL estimates
  against π_ref: k1 = Σ_t [log π − log π_ref] (unbiased, noisy) and the exact per-token KL summed along the
  sampled prefix, Σ_t KL(π(·|x,y_<t) ‖ π_ref(·|x,y_<t)) (Rao–Blackwellised, lower variance); plus the policy's
  own log-prob and per-token entropy of its samples (where the probability mass went).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bench.evaluation.estimators import kl_exact_tokenwise, kl_mc
from bench.modeling import rows_per_batch, sample, sequence_logps, text_ids


def pair_logps(model, tokenizer, pairs: dict[str, list], batch_size: int = 128) -> dict[str, np.ndarray]:
    c, c_len = sequence_logps(model, tokenizer, pairs["prompt"], pairs["chosen"], batch_size=batch_size)
    r, r_len = sequence_logps(model, tokenizer, pairs["prompt"], pairs["rejected"], batch_size=batch_size)
    return {"chosen": c, "rejected": r, "chosen_len": c_len, "rejected_len": r_len}


@dataclass
class SampleMetrics:
    prompts: list[str]
    completions: list[str]
    scores: np.ndarray           # judge score per sample
    kl_k1: np.ndarray            # Σ_t log π − log π_ref per sample
    kl_tokenwise: np.ndarray     # Σ_t exact KL of next-token distributions per sample
    logp: np.ndarray             # Σ_t log π of the sample
    ref_logp: np.ndarray
    entropy: np.ndarray          # mean per-token entropy of π along the sample
    lengths: np.ndarray
    ended: np.ndarray | None = None  # emitted the end token (False: cut at max_new_tokens)


def _ids_batch(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad: int, device) -> dict:
    rows = [p + c for p, c in zip(prompt_ids, completion_ids)]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    comp = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        ids[i, :len(p) + len(c)] = torch.tensor(p + c)
        attn[i, :len(p) + len(c)] = 1
        comp[i, len(p):len(p) + len(c)] = 1
    return {"input_ids": ids.to(device), "attention_mask": attn.to(device), "completion_mask": comp.to(device)}


@torch.no_grad()
def sample_metrics(policy, ref, tokenizer, judge, prompts: list[str], *, max_new_tokens: int, temperature: float,
                   seed: int, batch_size: int = 128) -> SampleMetrics:
    s = sample(policy, tokenizer, prompts, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    scores = judge.score(prompts, s.completions)
    device = next(policy.parameters()).device
    policy.eval()
    ref.eval()
    prompt_ids = [text_ids(tokenizer, p) for p in prompts]
    k1, tokenwise, logp, ref_logp, entropy = [], [], [], [], []
    vocab = policy.get_output_embeddings().weight.shape[0]
    width = max(len(p) for p in prompt_ids) + max(len(c) for c in s.completion_ids) + 1
    batch_size = rows_per_batch(batch_size, width, 3 * vocab)  # policy and reference log-softmax + products
    for start in range(0, len(prompts), batch_size):
        sl = slice(start, start + batch_size)
        comp_ids = [c if c else [tokenizer.eos_token_id] for c in s.completion_ids[sl]]
        batch = _ids_batch(prompt_ids[sl], comp_ids, tokenizer.pad_token_id, device)
        target = batch["input_ids"][:, 1:]
        mask = batch["completion_mask"][:, 1:].float()
        lp_pol = torch.log_softmax(policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                          use_cache=False)
                                   .logits[:, :-1].float() / temperature, -1)
        lp_ref = torch.log_softmax(ref(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                       use_cache=False)
                                   .logits[:, :-1].float() / temperature, -1)
        tok_pol = lp_pol.gather(-1, target.unsqueeze(-1)).squeeze(-1) * mask
        tok_ref = lp_ref.gather(-1, target.unsqueeze(-1)).squeeze(-1) * mask
        ent = -(lp_pol.exp() * lp_pol).sum(-1) * mask
        n = mask.sum(-1).clamp(min=1)
        logp.append(tok_pol.sum(-1).cpu().numpy())
        ref_logp.append(tok_ref.sum(-1).cpu().numpy())
        k1.append(kl_mc(tok_pol, tok_ref, mask))
        tokenwise.append(kl_exact_tokenwise(lp_pol, lp_ref, mask))
        entropy.append((ent.sum(-1) / n).cpu().numpy())
    cat = lambda xs: np.concatenate(xs).astype(np.float64)  # noqa: E731
    return SampleMetrics(list(prompts), s.completions, scores, cat(k1), cat(tokenwise), cat(logp), cat(ref_logp),
                         cat(entropy), s.lengths.astype(np.float64), np.asarray(s.ended, dtype=bool))
