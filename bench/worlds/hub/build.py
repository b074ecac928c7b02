"""Build (or load from cache) the Hub world: resolve model, judge and data; validate and filter the pairs.

    <cache>/worlds/hub-<hash12>/
        tokenizer/                 the policy's tokenizer (left padding, a pad token distinct from eos)
        pairs_train/ pairs_heldout/   `datasets` datasets in TRL's standard preference format:
                                   prompt (chat template applied), chosen, rejected, score_chosen, score_rejected
                                   (the data set's scores when it has them, else NaN)
        eval_prompts.json          held-out prompts (test split; prompts seen in training excluded)
        prompt_messages.json       {rendered prompt: conversation} for held-out prompts (chat-template judges)
        world.json                 build record; written last, so its presence means "complete"

The cache key is the hash of the `[world]` settings *and* the revisions resolved for the model, the data set and
the judge (Hub commits, or fingerprints of local paths). The policy itself is not copied: `base_model_dir` is
the model's local directory (a local path, or its snapshot in the Hugging Face cache). Everything that can fail
for a user reason (ids, network, splits, no usable rows) fails before world.json exists, as one `UserError`
line; building happens in a unique sibling `.building-*` directory renamed into place, under a file lock so that
several processes (e.g. `accelerate launch` ranks) build once; world.json's manifest (size and sha256 of every
cached file) is verified on load and a damaged world is rebuilt with one warning line (`bench.cache`).
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.io import read_json, write_json_atomic
from bench.progress import report
from bench.schema import as_dict
from bench.worlds.base import World
from bench.worlds.hub.config import HubWorldConfig
from bench.worlds.hub.pairs import FILTERED, MALFORMED, check_template, is_conversational_row, parse_row, \
    render_prompt
from bench.worlds.hub.sources import Source, check_judge, load_splits, resolve_dataset, resolve_pretrained

WORLD_FORMAT = 1       # bump when the build procedure changes what it produces
CHUNK = 512            # rows validated and tokenized together
TEMPLATE_CHECKS = 32   # pairs whose chat-template rendering is cross-checked against TRL's conversational one
REQUIRED = ("tokenizer", "pairs_train", "pairs_heldout", "eval_prompts.json", "prompt_messages.json")
PAD_CANDIDATES = ("<|endoftext|>", "<pad>", "<|pad|>", "[PAD]", "<|finetune_right_pad_id|>",
                  "<|reserved_special_token_0|>")


def world_key(cfg: HubWorldConfig, model: Source, data: Source, judge: Source) -> str:
    from bench.hashing import stable_hash

    return stable_hash({"format": WORLD_FORMAT, **as_dict(cfg),
                        "pins": {"model": model.pin, "dataset": data.pin, "judge": judge.pin}})


def _world(root: Path, key: str, model: Source, info: dict) -> World:
    return World(kind="hub", key=key, root=root, tokenizer_dir=root / "tokenizer", base_model_dir=model.path,
                 train_pairs_dir=root / "pairs_train", heldout_pairs_dir=root / "pairs_heldout",
                 eval_prompts=tuple(read_json(root / "eval_prompts.json")), info=info)


def resolve(cfg: HubWorldConfig) -> tuple[Source, Source, Source, dict]:
    """Model, data set and judge sources (UserError when one is unavailable); nothing is written."""
    model = resolve_pretrained(cfg.model, cfg.model_revision, "[world].model", "model")
    judge = resolve_pretrained(cfg.judge, cfg.judge_revision, "[world].judge", "judge")
    judge_info = check_judge(judge)
    data = resolve_dataset(cfg)
    return model, data, judge, judge_info


def build_hub_world(cfg: HubWorldConfig, cache_dir: Path, progress=None) -> World:
    """Return the world for `cfg`, building it on a cache miss. `progress(stage, done, total)` is optional."""
    from bench.cache import content_fingerprint, load_or_build

    model, data, judge, judge_info = resolve(cfg)
    key = world_key(cfg, model, data, judge)
    root = Path(cache_dir) / "worlds" / f"hub-{key[:12]}"
    info, hit = load_or_build(
        root, lambda tmp: _build_into(cfg, tmp, key, model, data, judge, judge_info, progress), marker="world.json",
        what="hub world", required=REQUIRED)
    # what was built, not how it was asked for: the same key on another CPU builds other bits (bench/check_stats.py)
    info["content"] = content_fingerprint(info.pop("manifest", None))
    info["cache_hit"] = hit
    return _world(root, key, model, info)


# ------------------------------------------------------------------------------------------------ tokenizer
def prepare_tokenizer(model: Source, root: Path):
    """The policy's tokenizer, saved to root/tokenizer with left padding and a pad token distinct from eos (the
    harness's sampler stops at eos and strips padding, so the two must differ)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(model.path), padding_side="left")
    except Exception as exc:
        raise UserError(f"[world].model: cannot load the tokenizer of '{model.ref}': {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    if tok.eos_token is None:
        raise UserError(f"[world].model: the tokenizer of '{model.ref}' has no eos_token; TRL appends it to every "
                        "completion, so a policy needs one")
    record: dict[str, Any] = {"eos_token": tok.eos_token, "pad_token_original": tok.pad_token,
                              "chat_template": bool(tok.chat_template)}
    if tok.pad_token_id is None or tok.pad_token_id == tok.eos_token_id:
        vocab = tok.get_vocab()
        pool = [tok.unk_token, *PAD_CANDIDATES, *tok.all_special_tokens, tok.bos_token]
        pad = next((t for t in pool if t and t in vocab and vocab[t] != tok.eos_token_id), None)
        if pad is None:
            raise UserError(f"[world].model: the tokenizer of '{model.ref}' has no pad token distinct from its eos "
                            "token and no spare special token to use; save a tokenizer with a pad token next to the "
                            "model and point [world].model at that directory")
        tok.pad_token = pad
    record.update(pad_token=tok.pad_token, padding_side="left",
                  bos_added=tok("a", add_special_tokens=True)["input_ids"] != tok("a", add_special_tokens=False)[
                      "input_ids"])
    tok.save_pretrained(str(root / "tokenizer"))
    return tok, record


def mixed_formats(ref: str, *scans) -> str:
    """'' when every valid row has one format; else the one-line refusal. TRL renders a conversational row with
    the chat template and a plain-text one as it is: a data set mixing them trains on two prompt formats at once
    (and was labelled "conversational" by its first rows)."""
    conversational, standard = sum(s.conversational for s in scans), sum(s.standard for s in scans)
    if not conversational or not standard:
        return ""
    return (f"[world].dataset: '{ref}' mixes {conversational} conversational rows (lists of role/content messages) "
            f"and {standard} plain-text rows; TRL formats the two differently, so one data set must use one: convert "
            "or drop the minority format")


# -------------------------------------------------------------------------------------------------- scanning
class Scan:
    """Walk a split in a seeded random order, validating, rendering and length-filtering rows until the wanted
    numbers of pairs (and distinct eval prompts) are collected; counts every drop by reason."""

    def __init__(self, name: str, tok, cfg: HubWorldConfig):
        self.name, self.tok, self.cfg = name, tok, cfg
        self.scanned = 0
        self.malformed: Counter = Counter()
        self.filtered: Counter = Counter()
        self.rows: list[dict[str, Any]] = []
        self.lengths: list[tuple[int, int, int]] = []
        self.prompts: list[str] = []
        self.messages: dict[str, list[dict[str, str]]] = {}
        self.template_issues: Counter = Counter()
        self.template_checked = 0
        self.conversational = 0
        self.standard = 0  # plain-text rows: a file mixing both formats is refused (mixed_formats)

    def run(self, ds, want_pairs: float, want_prompts: int = 0, exclude: set[str] | frozenset = frozenset(),
            progress=None) -> Scan:
        import numpy as np

        order = np.random.default_rng(self.cfg.seed).permutation(len(ds))
        seen_prompts: set[str] = set()
        stage = f"world: validate {self.name} pairs"
        for start in range(0, len(order), CHUNK):
            rows = ds.select(order[start:start + CHUNK]).to_list()
            parsed = [parse_row(r) for r in rows]
            rendered: list[str | None] = [None] * len(parsed)
            for i, (ex, _) in enumerate(parsed):
                if ex is None:
                    continue
                self.conversational += ex.conversational
                self.standard += not ex.conversational
                try:
                    rendered[i] = render_prompt(ex, self.tok, self.cfg.chat_template)
                except Exception:  # a template that rejects this conversation (roles, tools, ...)
                    parsed[i] = (None, "template_error")
            ok = [i for i, p in enumerate(rendered) if p is not None]
            n_p = self._lengths([rendered[i] for i in ok], eos=False)
            n_c = self._lengths([parsed[i][0].chosen for i in ok], eos=True)
            n_r = self._lengths([parsed[i][0].rejected for i in ok], eos=True)
            lens = {i: (a, b, c) for i, a, b, c in zip(ok, n_p, n_c, n_r)}
            for i, (ex, reason) in enumerate(parsed):
                self.scanned += 1
                if ex is None:
                    self.malformed[reason] += 1
                elif self._take(ex, rendered[i], lens[i], want_pairs, want_prompts, exclude, seen_prompts):
                    break
            report(progress, stage, self.scanned, len(order))
            if self._done(want_pairs, want_prompts):
                break
        report(progress, stage, len(order), len(order))
        return self

    def _lengths(self, texts: list[str], eos: bool) -> list[int]:
        if not texts:
            return []
        ids = self.tok(texts, add_special_tokens=False)["input_ids"]
        return [len(x) + int(eos) for x in ids]

    def _done(self, want_pairs: float, want_prompts: int) -> bool:
        return len(self.rows) >= want_pairs and len(self.prompts) >= want_prompts

    def _take(self, ex, prompt: str, lens: tuple[int, int, int], want_pairs: float, want_prompts: int,
              exclude, seen_prompts: set[str]) -> bool:
        """Count or keep one valid row; True when the wanted numbers are reached."""
        n_p, n_c, n_r = lens
        if n_p > self.cfg.max_prompt_tokens:
            self.filtered["prompt_too_long"] += 1
            return False
        if prompt in exclude:
            self.filtered["prompt_in_train"] += 1
            return False
        if len(self.prompts) < want_prompts and prompt not in seen_prompts:
            seen_prompts.add(prompt)
            self.prompts.append(prompt)
            self.messages[prompt] = ex.judge_messages()
        if max(n_c, n_r) > self.cfg.max_completion_tokens:
            self.filtered["completion_too_long"] += 1
        elif len(self.rows) < want_pairs:
            self.rows.append({"prompt": prompt, "chosen": ex.chosen, "rejected": ex.rejected,
                              "score_chosen": ex.score_chosen, "score_rejected": ex.score_rejected})
            self.lengths.append(lens)
            self.messages.setdefault(prompt, ex.judge_messages())
            if self.template_checked < TEMPLATE_CHECKS:
                self.template_checked += 1
                try:
                    issue = check_template(ex, self.tok, self.cfg.chat_template)
                except Exception as exc:
                    issue = f"{type(exc).__name__} in the template"
                if issue:
                    self.template_issues[issue] += 1
        return self._done(want_pairs, want_prompts)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"scanned": self.scanned, "kept": len(self.rows),
                               "malformed": dict(sorted(self.malformed.items())),
                               "filtered": dict(sorted(self.filtered.items())),
                               "malformed_total": sum(self.malformed.values()),
                               "filtered_total": sum(self.filtered.values())}
        if self.lengths:
            p, c, r = zip(*self.lengths)
            out.update(mean_prompt_tokens=statistics.fmean(p), mean_chosen_tokens=statistics.fmean(c),
                       mean_rejected_tokens=statistics.fmean(r),
                       mean_pair_tokens=statistics.fmean(2 * a + b + d for a, b, d in self.lengths),
                       max_sequence_tokens=max(a + max(b, d) for a, b, d in self.lengths))
        if self.name == "heldout":
            out["eval_prompts"] = len(self.prompts)
        return out

    def drop_summary(self) -> str:
        parts = [f"{k} {v}" for k, v in sorted((self.malformed + self.filtered).items())]
        return f"{self.scanned} rows scanned" + (f"; dropped: {', '.join(parts)}" if parts else "")


# ----------------------------------------------------------------------------------------------------- build
def _build_into(cfg: HubWorldConfig, root: Path, key: str, model: Source, data: Source, judge: Source,
                judge_info: dict, progress) -> dict:
    from datasets import Dataset

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    scratch = root / "_datasets_cache"
    report(progress, "world: load data set", 0, 1)
    train_ds, test_ds, split_record = load_splits(data, cfg, scratch)
    report(progress, "world: load data set", 1, 1)
    timings["load_s"] = time.perf_counter() - t0
    for ds, which in ((train_ds, "train_split"), (test_ds, "test_split")):
        if len(ds) == 0:
            raise UserError(f"[world].{which}: split {getattr(cfg, which)!r} of '{data.ref}' is empty")
    sample = train_ds.select(range(min(len(train_ds), 64))).to_list()
    tok, tok_record = prepare_tokenizer(model, root)
    if not tok.chat_template and (cfg.chat_template == "always" or any(is_conversational_row(r) for r in sample)):
        raise UserError(f"[world].model: '{model.ref}' has no chat template, but the data set is conversational "
                        "(or chat_template = 'always'); use a chat/instruct model or a plain-text data set")

    t1 = time.perf_counter()
    want_train = cfg.max_train_rows or float("inf")
    train = Scan("train", tok, cfg).run(train_ds, want_train, progress=progress)
    if not train.rows:
        raise UserError(f"[world].dataset: no usable training pairs in '{data.ref}' split {cfg.train_split!r} "
                        f"({train.drop_summary()}); check the data format or raise max_prompt_tokens / "
                        "max_completion_tokens")
    train_prompts = {r["prompt"] for r in train.rows}
    heldout = Scan("heldout", tok, cfg).run(test_ds, cfg.max_heldout_pairs, cfg.eval_prompts, exclude=train_prompts,
                                            progress=progress)
    if not heldout.rows or not heldout.prompts:
        raise UserError(f"[world].dataset: no usable held-out pairs in '{data.ref}' split {cfg.test_split!r} "
                        f"({heldout.drop_summary()}); check [world].test_split and the filters")
    mixed = mixed_formats(data.ref, train, heldout)
    if mixed:
        raise UserError(mixed)
    timings["pairs_s"] = time.perf_counter() - t1

    Dataset.from_list(train.rows).save_to_disk(str(root / "pairs_train"))
    Dataset.from_list(heldout.rows).save_to_disk(str(root / "pairs_heldout"))
    write_json_atomic(root / "eval_prompts.json", heldout.prompts)
    write_json_atomic(root / "prompt_messages.json", heldout.messages)
    shutil.rmtree(scratch, ignore_errors=True)

    warnings = []
    if len(heldout.prompts) < cfg.eval_prompts:
        warnings.append(f"only {len(heldout.prompts)} eval prompts (eval_prompts = {cfg.eval_prompts}): the test "
                        "split has no more distinct usable prompts")
    if len(heldout.rows) < cfg.max_heldout_pairs:
        warnings.append(f"only {len(heldout.rows)} held-out pairs (max_heldout_pairs = {cfg.max_heldout_pairs})")
    if cfg.max_train_rows and len(train.rows) < cfg.max_train_rows:
        warnings.append(f"only {len(train.rows)} training pairs (max_train_rows = {cfg.max_train_rows})")
    for issue, n in (train.template_issues + heldout.template_issues).items():
        warnings.append(f"chat template check failed on {n} sampled pairs: {issue}")
    if tok_record["bos_added"] and any(r["prompt"].startswith(tok.bos_token or "\0") for r in train.rows[:16]):
        warnings.append("the tokenizer adds a BOS token and the chat template writes one too: TRL tokenizes "
                        "plain-text prompts with add_special_tokens=True, so trainers see two BOS tokens")
    timings["total_s"] = time.perf_counter() - t0
    revisions = {"model": model.commit or model.fingerprint, "dataset": data.commit or data.fingerprint,
                 "judge": judge.commit or judge.fingerprint}
    return {
        "kind": "hub", "format": WORLD_FORMAT, "key": key, "config": as_dict(cfg),
        "model": model.record(), "judge": {**judge.record(), **judge_info}, "judge_dir": str(judge.path),
        "dataset": {**data.record(), **split_record,
                    "format": "conversational" if train.conversational else "standard"},
        "revisions": revisions, "tokenizer": tok_record,
        "pairs": {"train": train.record(), "heldout": heldout.record()},
        "eval_prompts": len(heldout.prompts), "max_length": cfg.max_length,
        "reasons": {**MALFORMED, **FILTERED}, "warnings": warnings, "timings": timings,
    }
