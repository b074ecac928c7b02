"""The controlled world's base policy: a tiny GPT-2 pre-trained from scratch on the review language.

It is the SFT model and the reference π_ref of every algorithm. A *weak* checkpoint is saved part-way through
pre-training (`weak_checkpoint`): a worse sampler of the same language, used as the off-policy source of pair
completions (`pair_source = "weak" | "mix"`). Both are saved with `save_pretrained`, because TRL's trainers
(and their reference-model loading) read models from disk.

Pre-training is a plain next-token loop (not an alignment trainer), deterministic for the world seed.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from bench.worlds.controlled.config import ControlledWorldConfig


def make_model(cfg: ControlledWorldConfig, tokenizer, max_positions: int = 64):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=max_positions, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        # GPT2Config defaults these to 50256; they must be the word-level tokenizer's ids.
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def _batches(tokenizer, texts: list[str], batch_size: int, generator: torch.Generator):
    order = torch.randperm(len(texts), generator=generator).tolist()
    for start in range(0, len(order), batch_size):
        chunk = [texts[i] for i in order[start:start + batch_size]]
        enc = tokenizer(chunk, add_special_tokens=False, padding=True, padding_side="right", return_tensors="pt")
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        yield enc["input_ids"], enc["attention_mask"], labels


def pretrain(cfg: ControlledWorldConfig, tokenizer, texts: list[str], heldout: list[str], base_dir: Path,
             weak_dir: Path, progress=None) -> dict:
    """Train from scratch on `texts` (each ends with the end token); save base and weak checkpoints.

    Returns a record: parameters, tokens, losses, held-out perplexity of both checkpoints, seconds, FLOPs.
    """
    torch.manual_seed(cfg.seed)
    model = make_model(cfg, tokenizer)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, betas=(0.9, 0.98), weight_decay=0.01)
    steps_per_epoch = math.ceil(len(texts) / cfg.pretrain_batch_size)
    total = steps_per_epoch * cfg.pretrain_epochs
    weak_step = max(1, int(total * cfg.weak_checkpoint))
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * max(0.1, 0.5 * (1 + math.cos(math.pi * s / total))))
    gen = torch.Generator().manual_seed(cfg.seed)
    n_params = sum(p.numel() for p in model.parameters())
    step, tokens, losses, start = 0, 0, [], time.perf_counter()
    weak_ppl = None
    for _ in range(cfg.pretrain_epochs):
        for input_ids, attention, labels in _batches(tokenizer, texts, cfg.pretrain_batch_size, gen):
            loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            tokens += int(attention.sum())
            losses.append(float(loss.detach()))
            if progress is not None:
                progress(step, total, float(loss.detach()))
            if step == weak_step:
                model.save_pretrained(str(weak_dir))
                weak_ppl = perplexity(model, tokenizer, heldout)
                model.train()
    model.save_pretrained(str(base_dir))
    return {
        "parameters": n_params,
        "steps": step,
        "tokens": tokens,
        "first_loss": losses[0],
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "heldout_perplexity": perplexity(model, tokenizer, heldout),
        "weak_step": weak_step,
        "weak_heldout_perplexity": weak_ppl,
        "seconds": time.perf_counter() - start,
        "flops": 6.0 * n_params * tokens,
    }


@torch.no_grad()
def perplexity(model, tokenizer, texts: list[str], batch_size: int = 256) -> float:
    """exp(mean next-token NLL) over every token after the first, padding excluded."""
    model.eval()
    nll, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], add_special_tokens=False, padding=True,
                        padding_side="right", return_tensors="pt")
        logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits[:, :-1]
        target = enc["input_ids"][:, 1:]
        mask = enc["attention_mask"][:, 1:].bool()
        lp = torch.log_softmax(logits.float(), -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
        nll -= float(lp[mask].sum())
        count += int(mask.sum())
    return math.exp(nll / max(count, 1))
