"""`[world]` settings of the controlled world (kind = "controlled"). Torch-free: the suite validates them.

Every field is part of the world's content hash, so two suites with the same world share one cache entry
(base policy, weak checkpoint, pairs, limits), and changing any field rebuilds.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ControlledWorldConfig:
    kind: str = "controlled"
    seed: int = field(default=0, metadata={"doc": "world seed (language samples, base policy, pairs); "
                                                  "fixed across the suite's run seeds so every run sees the same data"})
    # --- the base (SFT / reference) policy, pre-trained from scratch on the language
    corpus_sentences: int = field(default=24000, metadata={"min": 100})
    n_layer: int = field(default=2, metadata={"min": 1})
    n_embd: int = field(default=128, metadata={"min": 8})
    n_head: int = field(default=4, metadata={"min": 1})
    pretrain_epochs: int = field(default=1, metadata={"min": 1})
    pretrain_lr: float = field(default=3e-3, metadata={"gt": 0})
    pretrain_batch_size: int = field(default=64, metadata={"min": 1})
    weak_checkpoint: float = field(default=0.08, metadata={"gt": 0, "lt": 1, "doc":
                                   "fraction of pre-training after which the weak (earlier) checkpoint is kept"})
    # --- preference pairs
    pairs: int = field(default=4000, metadata={"min": 1, "doc": "training pairs (one per prompt)"})
    heldout_pairs: int = field(default=256, metadata={"min": 1, "doc": "held-out pairs (curves, pref accuracy)"})
    heldout_prompts: int = field(default=512, metadata={"min": 1, "doc": "held-out prompts for generation metrics"})
    label_noise: float = field(default=0.0, metadata={"min": 0, "max": 0.5, "doc": "probability a label is flipped"})
    deterministic: bool = field(default=False, metadata={"doc": "label by argmax of the (biased) gold reward, "
                                                                "not by a Bradley-Terry draw"})
    length_bias: float = field(default=0.0, metadata={"doc": "labeller adds length_bias x (tokens_a - tokens_b) "
                                                            "to the reward difference: prefers longer when > 0"})
    beta_labeller: float = field(default=1.0, metadata={"gt": 0, "doc": "Bradley-Terry temperature: "
                                                                        "P(a > b) = sigmoid((r_a - r_b) / beta_labeller)"})
    labeller: str = field(default="gold", metadata={"choices": ("gold", "sentiment"), "doc":
                          "what the simulated annotator scores: the gold reward, or grammar-blind sentiment (a proxy "
                          "whose gap to the gold reward makes over-optimisation a controlled setting)"})
    pair_source: str = field(default="base", metadata={"choices": ("base", "weak", "mix"), "doc":
                             "which policy sampled the pair completions: base, the weak checkpoint, or a mix"})
    mix_fraction: float = field(default=0.5, metadata={"min": 0, "max": 1, "doc":
                                "with pair_source = 'mix': fraction of pairs sampled from the weak checkpoint"})
    max_new_tokens: int = field(default=32, metadata={"min": 4, "doc": "completion length cap for the pairs' samples "
                                "(tokens, end token included); the language's reviews need at most 30, so 32 cuts none"})

    def estimated_sizes(self) -> dict[str, float]:
        """Policy parameters and tokens per sequence, for `bench run --dry-run` (no model is built).

        GPT-2: 12·L·d² (attention + MLP) + 13·L·d (biases, layer norms) + (vocab + positions)·d, tied head.
        A sequence is a 3-5 word prompt and a ~12-token completion with its end token (measured: ~17).
        """
        from bench.worlds.controlled.language import SPECIAL_TOKENS, vocabulary

        d, layers = self.n_embd, self.n_layer
        vocab = len(vocabulary()) + len(SPECIAL_TOKENS)
        n = 12 * layers * d * d + 13 * layers * d + (vocab + 64) * d + 2 * d
        return {"n_params": float(n), "tokens_per_sequence": 17.0, "pairs": self.pairs}

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if self.n_embd % self.n_head:
            out.append(("n_head", f"must divide n_embd ({self.n_embd}), got {self.n_head}"))
        if self.deterministic and self.label_noise > 0:
            pass  # allowed: argmax labels, then flipped with probability label_noise
        return out
