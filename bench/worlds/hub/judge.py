"""`HubJudge`: the reward model that defines win rate and reward in the Hub world.

A reward model scores a conversation in the format it was trained on, which is its own chat template, not the
policy's. The world keeps each held-out prompt's conversation (`prompt_messages.json`), so the judge re-renders
`conversation + [assistant: completion]` with the judge tokenizer's chat template (Skywork-Reward-V2, ArmoRM,
... are used this way). Judges without a chat template get (user message, completion) as a text pair (the
OpenAssistant DeBERTa reward models' input); a prompt the world does not know falls back to the rendered prompt
text + completion + eos (what `RewardModelJudge` does).

Loaded once per process and device (bf16 on GPU), batched by length, truncated from the left so the end of the
response (where a sequence-classification head reads) is kept.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np


class HubJudge:
    name = "reward_model"

    def __init__(self, path: Path | str, prompt_messages: dict | None = None, device=None,
                 batch_size: int | None = None, max_length: int = 4096):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from bench.modeling import pick_device

        self.device = pick_device("auto") if device is None else torch.device(device)
        on_gpu = self.device.type == "cuda"
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForSequenceClassification.from_pretrained(
            str(path), num_labels=1, dtype=torch.bfloat16 if on_gpu else torch.float32).to(self.device).eval()
        tok = self.tokenizer
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = pad if pad is not None else 0
        self.pad_id = self.model.config.pad_token_id
        self.messages = prompt_messages or {}
        self.batch_size = batch_size or (32 if on_gpu else 16)
        limit = tok.model_max_length if isinstance(tok.model_max_length, int) and tok.model_max_length < 10**6 \
            else max_length
        self.max_length = min(max_length, limit)

    @classmethod
    def for_world(cls, world, device=None) -> HubJudge:
        return _cached_judge(str(world.info["judge_dir"]), str(world.root), None if device is None else str(device))

    def encode(self, prompt: str, completion: str) -> list[int]:
        tok = self.tokenizer
        conversation = self.messages.get(prompt)
        if conversation is not None and tok.chat_template:
            text = tok.apply_chat_template(conversation + [{"role": "assistant", "content": completion}],
                                           tokenize=False)
            ids = tok(text, add_special_tokens=False)["input_ids"]
        elif conversation is not None:
            user = next((m["content"] for m in reversed(conversation) if m["role"] == "user"), prompt)
            ids = tok(user, completion)["input_ids"]
        else:
            ids = tok(prompt, add_special_tokens=False)["input_ids"] + tok(completion, add_special_tokens=False)[
                "input_ids"] + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
        return ids[-self.max_length:]

    def score(self, prompts: list[str], completions: list[str]) -> np.ndarray:
        import torch

        encoded = [self.encode(p, c) for p, c in zip(prompts, completions)]
        out = np.zeros(len(encoded), dtype=np.float64)
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        with torch.no_grad():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                width = max(len(encoded[i]) for i in idx)
                ids = torch.full((len(idx), width), self.pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
                    mask[row, :len(encoded[i])] = 1
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                out[idx] = logits[:, 0].float().cpu().numpy()
        return out


@lru_cache(maxsize=4)
def _cached_judge(judge_dir: str, world_root: str, device: str | None) -> HubJudge:
    from bench.io import read_json

    messages_path = Path(world_root) / "prompt_messages.json"
    messages = read_json(messages_path) if messages_path.is_file() else {}
    return HubJudge(judge_dir, messages, device=device)
