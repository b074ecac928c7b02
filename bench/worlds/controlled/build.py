"""Build (or load from cache) the controlled world: tokenizer → base policy → pairs, keyed by the config hash.

    <cache>/worlds/controlled-<hash12>/
        tokenizer/  base/  weak/            transformers directories (save_pretrained)
        pairs_train/  pairs_heldout/        `datasets` datasets in TRL's preference format (+ gold scores)
        eval_prompts.json                   held-out prompts, disjoint from the training prompts
        world.json                          build record; written last, so its presence means "complete"

A second build with the same config is a cache hit that loads in milliseconds. Building happens under a file
lock in a unique temporary sibling directory that is renamed into place, so an interrupted or concurrent build
never leaves a half world behind; world.json records a manifest (size and sha256 of every file) that is
verified on load, and a damaged world is rebuilt with one warning line (`bench.cache`).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from bench.io import read_json, write_json_atomic
from bench.schema import as_dict
from bench.worlds.base import World
from bench.worlds.controlled.config import ControlledWorldConfig
from bench.worlds.controlled.language import EOS, ReviewGenerator, gold_reward, is_well_formed

WORLD_FORMAT = 5  # bump when the build procedure changes what it produces (4: gold reward v4; 5: gold v5,
#                   noun-phrase clauses only where English lets a fragment stand, number agreement: new
#                   language data and gold)
REQUIRED = ("tokenizer", "base", "weak", "pairs_train", "pairs_heldout", "eval_prompts.json")  # checked on load


def world_key(cfg: ControlledWorldConfig) -> str:
    """The world's content hash: its config, the build format and the numeric kernels the build runs
    (bench.modeling.KERNELS). Pretraining the base policy and sampling π_ref's reference draws go through GPT-2's
    activation; when the fused tanh-GELU replaced `gelu_new` (issue 24) a fresh build gave other reference draws
    than a cached one (the CI suite's sft read 0.467 against 0.466), so a cache built with other kernels is a
    different world, not a stale copy of this one."""
    from bench.hashing import stable_hash
    from bench.modeling import KERNELS

    return stable_hash({"format": WORLD_FORMAT, **as_dict(cfg), "kernels": KERNELS})


def world_dir(cfg: ControlledWorldConfig, cache_dir: Path) -> Path:
    return Path(cache_dir) / "worlds" / f"controlled-{world_key(cfg)[:12]}"


def _world(cfg: ControlledWorldConfig, root: Path, info: dict) -> World:
    return World(
        kind="controlled", key=world_key(cfg), root=root, tokenizer_dir=root / "tokenizer",
        base_model_dir=root / "base", train_pairs_dir=root / "pairs_train", heldout_pairs_dir=root / "pairs_heldout",
        eval_prompts=tuple(read_json(root / "eval_prompts.json")), info=info,
    )


def build_world(cfg: ControlledWorldConfig, cache_dir: Path, progress=None) -> World:
    """Return the world for `cfg`, building it on a cache miss. `progress(stage, done, total)` is optional.

    Concurrent callers build once (a file lock); a build goes into a unique temporary folder renamed into place;
    every load verifies the manifest of files recorded in world.json and rebuilds a damaged world (one line).
    """
    from bench.cache import content_fingerprint, load_or_build

    root = world_dir(cfg, cache_dir)
    info, hit = load_or_build(root, lambda tmp: _build_into(cfg, tmp, progress), marker="world.json",
                              what="controlled world", required=REQUIRED)
    # what was built, not how it was asked for: the same key on another CPU builds other bits (bench/check_stats.py)
    info["content"] = content_fingerprint(info.pop("manifest", None))
    info["cache_hit"] = hit
    return _world(cfg, root, info)


def _unique_prompts(gen: ReviewGenerator, n: int, exclude: set[str]) -> list[str]:
    """n prompts not in `exclude` (repeats allowed among themselves, as in real prompt sets)."""
    out, tries = [], 0
    while len(out) < n:
        prompt, _ = gen.prompt_and_completion()
        tries += 1
        if prompt not in exclude:
            out.append(prompt)
        if tries > 50 * n:
            raise RuntimeError("prompt space too small for the requested held-out prompts")
    return out


def _build_into(cfg: ControlledWorldConfig, root: Path, progress) -> dict:
    import torch
    from datasets import Dataset

    from bench.modeling import sample
    from bench.worlds.controlled.pairs import labeller_from, make_pairs
    from bench.worlds.controlled.policy import pretrain
    from bench.worlds.controlled.tokenizer import load_tokenizer, save_tokenizer

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    save_tokenizer(root / "tokenizer")
    tok = load_tokenizer(root / "tokenizer")

    # 1. language corpus (pre-training) and held-out reviews (perplexity)
    corpus_gen = ReviewGenerator(cfg.seed)
    texts = [corpus_gen.review().text + f" {EOS}" for _ in range(cfg.corpus_sentences)]
    hgen = ReviewGenerator(cfg.seed + 10_007)
    heldout_texts = [hgen.review().text + f" {EOS}" for _ in range(1000)]
    timings["corpus_s"] = time.perf_counter() - t0

    # 2. base policy (and the weak checkpoint kept part-way)
    t1 = time.perf_counter()
    report = (lambda s, n, loss: progress("world: pre-train base policy", s, n)) if progress else None
    pre = pretrain(cfg, tok, texts, heldout_texts, root / "base", root / "weak", progress=report)
    tok.save_pretrained(str(root / "base"))
    tok.save_pretrained(str(root / "weak"))
    timings["pretrain_s"] = time.perf_counter() - t1

    # 3. prompts: training prompts, then held-out pair prompts and eval prompts disjoint from them
    t2 = time.perf_counter()
    pgen = ReviewGenerator(cfg.seed + 20_011)
    train_prompts = [pgen.prompt_and_completion()[0] for _ in range(cfg.pairs)]
    seen = set(train_prompts)
    heldout_prompts = _unique_prompts(pgen, cfg.heldout_pairs, seen)
    eval_prompts = _unique_prompts(pgen, cfg.heldout_prompts, seen)

    # 4. two samples per prompt from the pair source, labelled by the simulated annotator
    from bench.modeling import load_causal_lm

    base = load_causal_lm(root / "base")
    weak = load_causal_lm(root / "weak")
    labeller = labeller_from(cfg)
    split_rows, split_stats = {}, {}
    for split, prompts, seed in (("train", train_prompts, cfg.seed + 1), ("heldout", heldout_prompts, cfg.seed + 2)):
        n_weak = {"base": 0, "weak": len(prompts), "mix": round(cfg.mix_fraction * len(prompts))}[cfg.pair_source]
        sources = ["weak"] * n_weak + ["base"] * (len(prompts) - n_weak)
        doubled = [p for p in prompts for _ in range(2)]
        completions = [None] * len(doubled)
        done = 0
        for name, model in (("weak", weak), ("base", base)):
            idx = [i for i, p in enumerate(doubled) if sources[i // 2] == name]
            if idx:
                s = sample(model, tok, [doubled[i] for i in idx], max_new_tokens=cfg.max_new_tokens, seed=seed,
                           cut_at_pad=True)  # the world's data: the sampler's first behaviour (bench.modeling.sample)
                for i, text in zip(idx, s.completions):
                    completions[i] = text
            done += len(idx)
            if progress:
                progress(f"world: sample {split} pairs", done, len(doubled))
        rows, skipped = make_pairs(prompts, completions[0::2], completions[1::2], sources, labeller, seed)
        split_rows[split] = rows
        split_stats[split] = {"pairs": len(rows), "skipped_identical": skipped,
                              "flip_rate": sum(r["flipped"] for r in rows) / max(len(rows), 1),
                              "gold_agreement": sum(r["score_chosen"] > r["score_rejected"] for r in rows)
                              / max(len(rows), 1),
                              "chosen_well_formed": sum(is_well_formed(r["prompt"], r["chosen"]) for r in rows)
                              / max(len(rows), 1),
                              "rejected_well_formed": sum(is_well_formed(r["prompt"], r["rejected"]) for r in rows)
                              / max(len(rows), 1)}
        Dataset.from_list(rows).save_to_disk(str(root / f"pairs_{split}"))
    write_json_atomic(root / "eval_prompts.json", eval_prompts)
    timings["pairs_s"] = time.perf_counter() - t2

    # 5. what the base policy's own samples look like (its reward spread is what alignment can improve on)
    t3 = time.perf_counter()
    s = sample(base, tok, eval_prompts, max_new_tokens=cfg.max_new_tokens, seed=cfg.seed + 3, cut_at_pad=True)
    rewards = [gold_reward(c, p) for p, c in zip(eval_prompts, s.completions)]
    from bench.worlds.controlled.language import gold_reward_bound, sentiment_reward

    base_samples = {
        "gold_reward_mean": statistics.fmean(rewards), "gold_reward_std": statistics.pstdev(rewards),
        "gold_reward_min": min(rewards), "gold_reward_max": max(rewards),
        "gold_reward_bound": gold_reward_bound(cfg.max_new_tokens),  # the attainable maximum: headroom above
        "sentiment_reward_mean": statistics.fmean(sentiment_reward(c) for c in s.completions),
        "length_mean": float(s.lengths.mean()), "ended_fraction": sum(s.ended) / len(s.ended),
        "grammatical_fraction": sum(is_well_formed(p, c) for p, c in zip(eval_prompts, s.completions))
        / len(eval_prompts),
    }
    timings["base_samples_s"] = time.perf_counter() - t3
    timings["total_s"] = time.perf_counter() - t0
    return {"kind": "controlled", "format": WORLD_FORMAT, "key": world_key(cfg), "config": as_dict(cfg),
            "vocab_size": len(tok), "pretrain": pre, "pairs": split_stats, "base_samples": base_samples,
            "timings": timings}
