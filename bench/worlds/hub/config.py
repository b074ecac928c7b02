"""`[world]` settings of the Hub world (kind = "hub"). Torch-free: the suite validates them.

Every field is part of the world's content hash, together with the revisions actually resolved for the model,
the data set and the judge (a Hub commit, or a fingerprint of a local path): changing any of them rebuilds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Typical UltraFeedback lengths with a chat template (prompt incl. template ~200 tokens, completion ~300),
# used only for the dry-run estimate before the world is built; the build records the measured means.
TYPICAL_PROMPT_TOKENS = 200
TYPICAL_COMPLETION_TOKENS = 300


@dataclass(frozen=True)
class HubWorldConfig:
    kind: str = field(default="hub", metadata={"choices": ("hub",)})
    # --- the policy (SFT / base model = π_ref = the starting point of every algorithm)
    model: str = field(default="", metadata={"doc": "Hugging Face model id (e.g. Qwen/Qwen2.5-0.5B-Instruct) or a "
                                                    "local directory written by save_pretrained"})
    model_revision: str | None = field(default=None, metadata={"doc": "branch, tag or commit of a Hub model "
                                                                      "(default: main); the commit used is recorded"})
    # --- the preference data
    dataset: str = field(default="", metadata={"doc": "Hugging Face data set id, a local .json/.jsonl/.parquet "
                                                      "file, or a directory of such files"})
    dataset_config: str | None = field(default=None, metadata={"doc": "data set configuration (name) on the Hub"})
    dataset_revision: str | None = field(default=None, metadata={"doc": "branch, tag or commit of a Hub data set"})
    train_split: str = field(default="train_prefs", metadata={"doc": "split the training pairs come from"})
    test_split: str = field(default="test_prefs", metadata={"doc": "split of held-out pairs and eval prompts "
                                                                   "(prompts seen in training are excluded)"})
    test_fraction: float = field(default=0.1, metadata={"gt": 0, "lt": 1, "doc": "a single local file has no "
                                 "splits: this fraction of its prompts (by a hash of the prompt) is held out"})
    max_train_rows: int | None = field(default=None, metadata={"min": 1, "doc": "use at most this many training "
                                       "pairs (a seeded shuffle first); default: all"})
    max_heldout_pairs: int = field(default=256, metadata={"min": 1, "doc": "held-out pairs (curves, pref "
                                                                           "accuracy)"})
    eval_prompts: int = field(default=512, metadata={"min": 1, "doc": "held-out prompts for generation metrics; "
                                                                      "eval.prompts + eval.validation_prompts are "
                                                                      "taken from these"})
    max_prompt_tokens: int = field(default=512, metadata={"min": 1, "doc": "drop pairs whose templated prompt is "
                                                                           "longer (counted in world.json)"})
    max_completion_tokens: int = field(default=512, metadata={"min": 1, "doc": "drop pairs whose chosen or "
                                                                               "rejected completion (+ end token) "
                                                                               "is longer"})
    chat_template: str = field(default="auto", metadata={"choices": ("auto", "always"), "doc": "auto: "
                               "conversational rows get the tokenizer's chat template (TRL's "
                               "maybe_apply_chat_template), plain-text rows stay text; always: plain-text prompts "
                               "become one user turn of the chat template too"})
    # --- the judge
    judge: str = field(default="", metadata={"doc": "Hugging Face id or local directory of a sequence-"
                                                    "classification reward model (num_labels = 1) that defines "
                                                    "win rate and reward"})
    judge_revision: str | None = field(default=None, metadata={"doc": "branch, tag or commit of a Hub judge"})
    # --- training precision / memory (read by the TRL adapters on GPU; ignored on CPU)
    bf16: bool = field(default=True, metadata={"doc": "bf16 mixed precision on GPU"})
    gradient_checkpointing: bool = field(default=True, metadata={"doc": "activation checkpointing on GPU"})
    seed: int = field(default=0, metadata={"doc": "data shuffle / held-out selection seed (fixed across the "
                                                  "suite's run seeds so every run sees the same data)"})

    @property
    def max_length(self) -> int:
        """Longest prompt + completion a kept pair can have (end token and a possible BOS included)."""
        return self.max_prompt_tokens + self.max_completion_tokens + 2

    def estimated_sizes(self) -> dict[str, float]:
        """Policy parameters and tokens per sequence for `bench run --dry-run`, without network access.

        The parameter count is read from the model's safetensors headers (exact) or its config.json
        (approximate) when the model is a local directory or already in the local Hugging Face cache; otherwise it
        is unknown and reported as 0 with a note. Tokens per sequence are UltraFeedback-typical lengths capped by
        the filters (the build records the measured values in world.json).
        """
        from bench.worlds.hub.sources import estimate_parameters

        n_params, note = estimate_parameters(self.model, self.model_revision)
        tokens = min(self.max_prompt_tokens, TYPICAL_PROMPT_TOKENS) + \
            min(self.max_completion_tokens, TYPICAL_COMPLETION_TOKENS) + 1
        return {"n_params": float(n_params), "tokens_per_sequence": float(tokens),
                "pairs": self.max_train_rows or 0, "note": note}

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for name, example in (("model", "Qwen/Qwen2.5-0.5B-Instruct"),
                              ("dataset", "HuggingFaceH4/ultrafeedback_binarized"),
                              ("judge", "Skywork/Skywork-Reward-V2-Qwen3-0.6B")):
            if not getattr(self, name).strip():
                out.append((name, f"is empty; set it to a Hugging Face id (e.g. {example}) or a local path"))
        if self.train_split == self.test_split:
            out.append(("test_split", f"must differ from train_split ({self.train_split!r}): held-out pairs and "
                                      "eval prompts may not come from the training data"))
        return out
