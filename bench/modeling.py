"""Model utilities every stage shares: load a causal LM, sample completions, score log-probs of completions.

One implementation of "log π(y|x)" for the whole harness: summed over completion tokens with prompt and
padding masked, identical for every algorithm (even those whose loss averages per token), so drift curves and
KL compare like with like. Sampling is plain ancestral sampling (temperature, no top-k/p) so that sample-based
KL estimates are estimates of the KL of the policy itself.
"""

from __future__ import annotations

import os
import weakref
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


# How the harness computes what a checkpoint's config names, where it is not transformers' default: part of the key
# of every π_ref product kept on disk (bench.stages.SharedStages.kept), whose last bits depend on it.
KERNELS = {"gelu_new": "torch.nn.functional.gelu(approximate='tanh')"}


def use_fused_gelu() -> None:
    """Compute GPT-2's `gelu_new` with torch's fused tanh-GELU kernel (`gelu_pytorch_tanh`).

    Both are the tanh approximation of GELU, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (Hendrycks & Gimpel 2016,
    eq. in §2; GPT-2's `gelu_new`); transformers computes `gelu_new` as a Python composite of pow, tanh and mul, which
    cost 14 s of an 84 s DPO run's forward alone (benchmarks/results/profile-dpo-before.txt), while the fused kernel
    is ~4x faster forward + backward on the default suite's activations. The two differ in the last bits of float32
    (max |Δ| 2.4e-7 on N(0,1) inputs), so readings move in their last digits, not more. Applied by re-pointing
    transformers' activation table, so models TRL builds from a path get it too; checkpoints still say `gelu_new`
    (a reader without this harness computes the same function)."""
    from transformers import activations

    fused = getattr(activations, "GELUTanh", None) or getattr(activations, "PytorchGELUTanh", None)
    if fused is not None:
        for table in (activations.ACT2CLS, activations.ACT2FN):  # ACT2FN (what models read) is a copy of ACT2CLS
            table["gelu_new"] = fused


use_fused_gelu()  # every process that builds, trains or evaluates a model through the harness imports this module

from bench import padding_trim  # noqa: E402  (after the activation table: both patch transformers once)

padding_trim.install()  # padded batches computed without their padding where a caller passes use_cache=False


def pick_device(preference: str = "auto") -> torch.device:
    """auto: this process's GPU when there is one (LOCAL_RANK under `accelerate launch`), else the CPU."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
        return torch.device("cpu")
    return torch.device(preference)


def load_causal_lm(path: Any, device: torch.device | str = "cpu", dtype: torch.dtype | None = None):
    """Float32 weights by default: transformers 5 otherwise loads a checkpoint in its saved dtype (bf16 for most
    Hub models), and bf16 master weights barely move at DPO's 5e-7-class learning rates. TRL's `bf16 = true`
    still runs the maths in bf16 (autocast) on GPU."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype or torch.float32)
    return model.to(device).eval()


def load_scalar_model(path: Any, device: torch.device | str = "cpu", dtype: torch.dtype | None = None):
    """A sequence-classification model with one output (reward or value model), float32 by default."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1, dtype=dtype or torch.float32)
    return model.to(device)


def count_parameters(model: torch.nn.Module) -> int:
    """Non-embedding parameters count too: at this scale embeddings are a real share of the compute."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class Samples:
    prompts: list[str]
    completions: list[str]          # decoded text, without the end token
    completion_ids: list[list[int]]  # token ids including the end token when the sample ended
    ended: list[bool]                # False when cut at max_new_tokens

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(c) for c in self.completion_ids])


@torch.no_grad()
def sample(model, tokenizer, prompts: list[str], *, max_new_tokens: int, temperature: float = 1.0,
           seed: int = 0, batch_size: int = 256, cut_at_pad: bool = False) -> Samples:
    """Ancestral samples y ~ π(·|x), one per prompt (repeat prompts for more). Deterministic for a seed.

    `cut_at_pad`: the sampler's first behaviour, kept for the data cached beside a world (its pairs and evaluation
    prompts' draws, π_ref's reference draws, best-of-n, limits): a row ends at its first sampled pad id as if it
    were padding, without its end token. π_ref samples `<pad>` about once in 2,000 draws on the controlled world,
    so those stages built by the fixed sampler would differ from every cached world and committed baseline with
    the same key; the next world format drops it. Policies are always sampled without it."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    ends = end_tokens(model, tokenizer)
    ends_t = torch.tensor(sorted(ends))
    out_text, out_ids, ended = [], [], []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False,
                        padding_side="left").to(device)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = None
        done = torch.zeros(len(chunk), dtype=torch.bool, device=device)
        new_tokens = []
        step_ids, step_pos = ids, position_ids
        for _ in range(max_new_tokens):
            out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, cache=cache, use_cache=True,
                        logits_to_keep=1)  # the prompt pass would otherwise materialise [B, L, vocab] logits
            cache = out.cache  # transformers >= 5.2x names the KV cache `cache` (formerly past_key_values)
            logits = out.logits[:, -1, :].float() / temperature
            probs = torch.softmax(logits, dim=-1).cpu()
            nxt = torch.multinomial(probs, 1, generator=gen).squeeze(-1).to(device)
            nxt = torch.where(done, torch.full_like(nxt, tokenizer.pad_token_id), nxt)
            new_tokens.append(nxt)
            mask = torch.cat([mask, (~done).long().unsqueeze(-1)], dim=-1)  # a live row's new token is real
            done = done | torch.isin(nxt, ends_t.to(nxt.device))
            step_ids = nxt.unsqueeze(-1)
            step_pos = (step_pos[:, -1:] + 1)
            if bool(done.all()):
                break
        gen_ids = torch.stack(new_tokens, dim=1).tolist()
        for row in gen_ids:
            # A row is its tokens up to its end token (or all of them): a *sampled* pad token is a token the policy
            # emitted, not padding — only the positions after the end token were filled with pad. Cutting at the
            # first pad id instead let a policy end a response without its end token, with the pad token's
            # log-ratio missing from the KL (a PPO policy learned to: 35 of 128 samples, sampled KL 0.03 against a
            # token-wise 1.76); it is kept and shown in the text, where the judge sees it.
            stop = next((i for i, t in enumerate(row) if t in ends or (cut_at_pad and t == tokenizer.pad_token_id)),
                        None)
            if stop is not None and cut_at_pad and row[stop] == tokenizer.pad_token_id:
                stop -= 1  # the pad id is dropped, as it was: the row keeps the tokens before it
            toks = list(row) if stop is None else row[:stop + 1]
            is_ended = bool(toks) and toks[-1] in ends
            shown = toks[:-1] if is_ended else toks
            out_text.append(tokenizer.decode(shown, skip_special_tokens=cut_at_pad))
            out_ids.append(toks)
            ended.append(is_ended)
    if was_training:
        model.train()
    return Samples(list(prompts), out_text, out_ids, ended)


def end_tokens(model, tokenizer=None) -> set[int]:
    """The ids that end a sample: the tokenizer's end token and every end token of the model's generation config
    (Qwen2.5-Instruct stops at <|im_end|> and <|endoftext|>, its pad token), never the pad token otherwise. TRL's
    Online DPO, RLOO and GRPO hand `generate` the same set, so the FLOP meter reads a row's end from it
    (bench.budget.LiveRows); without a tokenizer, the generation config's alone."""
    ends = {getattr(tokenizer, "eos_token_id", None)}
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None) if config is not None else None
    for t in (extra if isinstance(extra, (list, tuple)) else [extra]):
        if isinstance(t, int):
            ends.add(t)
    return {t for t in ends if t is not None}


def rows_per_batch(requested: int, width: int, vocab: int, budget: int = 2**27) -> int:
    """Batch rows so that one float32 [rows, width, vocab] log-softmax stays under `budget` elements (512 MB):
    a 200-word vocabulary keeps the requested batch, a 150k-token one at 1k tokens goes down to 1 row."""
    return max(1, min(requested, budget // max(1, width * vocab)))


_IDS_MEMO: "weakref.WeakKeyDictionary[Any, _IdsMemo]" = weakref.WeakKeyDictionary()
_IDS_MEMO_MAX = 4_000_000  # token ids kept per tokenizer (16 MB as int32), whatever the vocabulary or text length


@dataclass
class _IdsMemo:
    ids: dict[str, array]
    held: int = 0  # token ids held across `ids`


def text_ids(tokenizer, text: str) -> list[int]:
    """`tokenizer(text, add_special_tokens=False)["input_ids"]`, remembered per tokenizer object.

    The evaluation tokenises the same strings again and again: the tracked training pairs at every curve point (two
    calls per pair and point: 11 points × 2 × 256 pairs in a default DPO run) and the test prompts at every point,
    each through the tokenizer's Python wrapper (~0.1 ms a call: 2 s of a 40 s run in the profile). The ids of a text
    depend on the text and the tokenizer only, so reading them back is exact. Per tokenizer object (a weak key: a run
    that loads its tokenizer again starts afresh), kept as int32 arrays and bounded by the number of ids held
    (cleared when full), so a 150k-token vocabulary and long texts cost what short ones do; a tokenizer that cannot
    be a weak key is simply called."""
    try:
        memo = _IDS_MEMO.get(tokenizer) or _IDS_MEMO.setdefault(tokenizer, _IdsMemo({}))
    except TypeError:  # not weak-referenceable (a raw tokenizers.Tokenizer wrapper, ...)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    ids = memo.ids.get(text)
    if ids is None:
        ids = array("i", tokenizer(text, add_special_tokens=False)["input_ids"])
        if memo.held + len(ids) > _IDS_MEMO_MAX:
            memo.ids.clear()
            memo.held = 0
        memo.ids[text] = ids
        memo.held += len(ids)
    return ids.tolist()


def completion_batch(tokenizer, prompts: list[str], completions: list[str], *, add_eos: bool = True,
                     device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Right-padded prompt+completion ids with a mask that selects completion tokens (the end token included)."""
    rows, cmask = [], []
    for p, c in zip(prompts, completions):
        p_ids = text_ids(tokenizer, p)
        c_ids = text_ids(tokenizer, c) + ([tokenizer.eos_token_id] if add_eos else [])
        rows.append(p_ids + c_ids)
        cmask.append([0] * len(p_ids) + [1] * len(c_ids))
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
    comp = torch.tensor([m + [0] * (width - len(m)) for m in cmask], device=device)
    return {"input_ids": input_ids, "attention_mask": attention, "completion_mask": comp}


@torch.no_grad()
def token_logps(model, batch: dict[str, torch.Tensor], *, with_entropy: bool = False):
    """Per-token log π(y_t | x, y_<t) on completion positions, [B, T-1] (zero elsewhere), and optionally entropy."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    logp_all = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)
    target = batch["input_ids"][:, 1:]
    mask = batch["completion_mask"][:, 1:].float()
    logp = logp_all.gather(-1, target.unsqueeze(-1)).squeeze(-1) * mask
    if not with_entropy:
        return logp, mask
    entropy = -(logp_all.exp() * logp_all).sum(-1) * mask
    return logp, mask, entropy


@torch.no_grad()
def sequence_logps(model, tokenizer, prompts: list[str], completions: list[str], *, batch_size: int = 128,
                   add_eos: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(Σ_t log π(y_t|x,y_<t), number of completion tokens) per pair of prompt and completion."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sums, counts = [], []
    vocab = model.get_output_embeddings().weight.shape[0]
    start = 0
    while start < len(prompts):
        probe = completion_batch(tokenizer, prompts[start:start + 1], completions[start:start + 1], add_eos=add_eos)
        rows = rows_per_batch(batch_size, 2 * probe["input_ids"].shape[1], vocab)  # 2x: lengths vary in a batch
        batch = completion_batch(tokenizer, prompts[start:start + rows], completions[start:start + rows],
                                 add_eos=add_eos, device=device)
        logp, mask = token_logps(model, batch)
        sums.append(logp.sum(-1).cpu().numpy())
        counts.append(mask.sum(-1).cpu().numpy())
        start += rows
    if was_training:
        model.train()
    return np.concatenate(sums).astype(np.float64), np.concatenate(counts).astype(np.int64)


def load_tokenizer(path: Any):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
