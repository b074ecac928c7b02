"""Preference pairs for the controlled world: two samples per prompt, labelled by a simulated annotator.

The labeller sees u(x, y) = score(x, y) + length_bias * tokens(y), where score is the gold reward r*(x, y)
(`labeller = "gold"`, the default) or the grammar-blind sentiment proxy (`labeller = "sentiment"`: the old
gold, which pays for word salad; the proxy-gold gap as a knob), and prefers a over b with the Bradley–Terry
probability p = σ((u_a − u_b) / beta_labeller), or by argmax when `deterministic` (ties broken by a coin);
then each label is flipped with probability `label_noise`. Every row keeps what a margin-aware variant or an
analysis needs: gold scores of both completions, the labeller's probability for the label it gave, whether
it was flipped, the labeller's own scores (`label_score_*`, equal to the gold ones for the gold labeller),
which policy sampled the pair (`source`), and token lengths. Completions start with a space
because every TRL trainer concatenates `prompt + completion` as strings.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from bench.worlds.controlled.config import ControlledWorldConfig
from bench.worlds.controlled.language import gold_reward, sentiment_reward

LABELLER_SCORES = {"gold": gold_reward, "sentiment": sentiment_reward}


@dataclass(frozen=True)
class Labeller:
    beta: float = 1.0
    length_bias: float = 0.0
    deterministic: bool = False
    label_noise: float = 0.0
    scores: str = "gold"

    def score(self, completion: str, prompt: str = "") -> float:
        return LABELLER_SCORES[self.scores](completion, prompt)

    def utility(self, completion: str, prompt: str = "") -> float:
        return self.score(completion, prompt) + self.length_bias * len(completion.split())

    def prob_first(self, a: str, b: str, prompt: str = "") -> float:
        """P(a ≻ b) under the labeller's Bradley–Terry model (before noise)."""
        z = (self.utility(a, prompt) - self.utility(b, prompt)) / self.beta
        return 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))

    def label(self, a: str, b: str, rng: random.Random, prompt: str = "") -> tuple[str, str, float, bool]:
        """→ (chosen, rejected, labeller probability of this ordering before noise, flipped)."""
        p = self.prob_first(a, b, prompt)
        if self.deterministic:
            first = p > 0.5 or (p == 0.5 and rng.random() < 0.5)
        else:
            first = rng.random() < p
        flipped = rng.random() < self.label_noise
        if flipped:
            first = not first
        chosen, rejected = (a, b) if first else (b, a)
        return chosen, rejected, (p if first else 1.0 - p), flipped


def labeller_from(cfg: ControlledWorldConfig) -> Labeller:
    return Labeller(cfg.beta_labeller, cfg.length_bias, cfg.deterministic, cfg.label_noise, cfg.labeller)


def make_pairs(prompts: list[str], completions_a: list[str], completions_b: list[str], sources: list[str],
               labeller: Labeller, seed: int) -> tuple[list[dict], int]:
    """Label each (prompt, a, b); skip identical completions (no preference signal). → (rows, skipped)."""
    rng = random.Random(seed)
    rows, skipped = [], 0
    for prompt, a, b, source in zip(prompts, completions_a, completions_b, sources):
        a, b = a.strip(), b.strip()
        if a == b:
            skipped += 1
            continue
        chosen, rejected, prob, flipped = labeller.label(a, b, rng, prompt)
        # TRL joins prompt + completion as strings: completions start with a space (else, with the word-level
        # tokenizer, the completion's first word fuses with the prompt's last).
        chosen, rejected = " " + chosen, " " + rejected
        rows.append({
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "score_chosen": gold_reward(chosen, prompt),
            "score_rejected": gold_reward(rejected, prompt),
            "label_score_chosen": labeller.score(chosen, prompt),
            "label_score_rejected": labeller.score(rejected, prompt),
            "labeller_prob": prob,
            "flipped": flipped,
            "source": source,
            "len_chosen": len(chosen.split()),  # words = tokens (end token excluded)
            "len_rejected": len(rejected.split()),
        })
    return rows, skipped
