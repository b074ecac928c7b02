"""The controlled world's synthetic review language and its gold reward r*(y). Pure Python, no torch.

The analogue of the DPO paper's IMDb "controlled sentiment" task, small enough for a CPU. A review is

    opener clause (conjunction clause)* "."        e.g.  "honestly , the plot was not very dull and the cast felt warm ."

where a clause is one of
    DET NOUN VERB [not] [INTENSIFIER] ADJ          "the plot was not very dull"
    i found DET NOUN [not] [INTENSIFIER] ADJ       "i found the music quite lovely"
    DET [INTENSIFIER] ADJ NOUN                     "a truly awful script"   (DET = a/the/this/its)
Each review has a hidden tone (probability that a sentiment-bearing adjective is positive), so the language
model learns topic-level coherence and its samples have a real spread of sentiment.
A prompt is the review's first 3-5 words; the completion is the rest, ending with "." and the end token.

Gold reward (never shown to a trainer; used to label pairs and to judge):

    s_i   = polarity(adj_i) * weight(intensifier_i) * (-1 if "not" precedes it in its clause)
    S     = sum_i 0.5**(k_i) * s_i          k_i = earlier uses of the same adjective in the completion
    r*(y) = 2 * asinh(S / 2)

- polarity is +1 (positive), -1 (negative) or 0 (neutral); intensifier weights are 1.25..2.0 (1 without one);
- the 0.5**k discount gives diminishing returns for repetition: "great great great" scores 1.75, not 3;
- asinh grows like log for large |S|: more praise helps, each extra clause less (about length: a sum would
  reward length, which the field notes saw DPO and SimPO exploit; here length helps only logarithmically, and
  any stronger length preference is the labeller's `length_bias` knob, measured, not built into the truth);
- r* is symmetric and r*(neutral) = 0. A 24-token completion can reach about +4, base samples sit around 0
  with a standard deviation of 1.5-2: headroom above the base policy, unlike a saturating reward.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)

POSITIVE = (
    "good great excellent wonderful brilliant superb lovely delightful charming moving gripping clever witty "
    "beautiful stunning elegant warm fresh engaging fun thrilling memorable powerful touching smart sharp vivid "
    "inspired polished tender joyful rich bold masterful radiant graceful uplifting heartfelt satisfying "
    "gorgeous splendid"
).split()
NEGATIVE = (
    "bad awful terrible dull boring bland tedious clumsy weak messy lazy flat silly stale cheap shallow "
    "painful annoying forgettable confusing sloppy hollow tired awkward dreary lifeless pointless grating "
    "stiff muddled shoddy tepid dire grim clunky joyless overlong predictable mediocre dismal"
).split()
NEUTRAL = (
    "long short loud quiet slow fast dark bright modern old strange simple complex familiar foreign early "
    "late local british french animated silent colourful serious light"
).split()
NOUNS = (
    "movie film plot story script acting cast music score ending dialogue pacing camera lighting director "
    "soundtrack sequel hero villain romance humour editing finale opening premise scenery performance "
    "cinematography costumes effects characters setting tone plot-twist lead chemistry"
).split()
VERBS = "was is felt seemed looked sounded remained became".split()
INTENSIFIERS = {"quite": 1.25, "really": 1.5, "very": 1.5, "truly": 1.75, "deeply": 1.75, "utterly": 2.0,
                "incredibly": 2.0, "remarkably": 1.5}
DETERMINERS = "the this that its".split()
ARTICLE_DETERMINERS = "a the this its".split()
CONJUNCTIONS = "and but while although yet so because".split()
OPENERS = (
    ("honestly", ","), ("overall", ","), ("in", "short", ","), ("to", "be", "fair", ","), ("i", "think"),
    ("my", "friend", "said"), ("frankly", ","), ("all", "in", "all", ","), ("as", "expected", ","),
    ("i", "watched", "it", "and"), ("we", "saw", "it", "and"), ("at", "first", ","),
)
NOT = "not"
FUNCTION_WORDS = ("i", "found", "a", ".", ",")

POLARITY = {**{w: 1 for w in POSITIVE}, **{w: -1 for w in NEGATIVE}, **{w: 0 for w in NEUTRAL}}
CLAUSE_BREAKS = set(CONJUNCTIONS) | {".", ","}


def vocabulary() -> list[str]:
    """Every word of the language (special tokens excluded), in a fixed order."""
    words: list[str] = []
    for group in (FUNCTION_WORDS, (NOT,), DETERMINERS, ARTICLE_DETERMINERS, VERBS, tuple(INTENSIFIERS), CONJUNCTIONS,
                  NOUNS, POSITIVE, NEGATIVE, NEUTRAL, tuple(w for o in OPENERS for w in o)):
        for w in group:
            if w not in words:
                words.append(w)
    return words


@dataclass(frozen=True)
class Review:
    words: tuple[str, ...]
    tone: float  # hidden: probability that a sentiment-bearing adjective is positive

    @property
    def text(self) -> str:
        return " ".join(self.words)


class ReviewGenerator:
    """Seeded sampler of reviews. The tone mixture gives the base policy's samples a real spread of reward."""

    TONES = (0.9, 0.7, 0.5, 0.3, 0.1)

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def adjective(self, tone: float) -> str:
        r = self.rng.random()
        if r < 0.2:
            return self.rng.choice(NEUTRAL)
        return self.rng.choice(POSITIVE if self.rng.random() < tone else NEGATIVE)

    def modifiers(self) -> list[str]:
        out = []
        if self.rng.random() < 0.15:
            out.append(NOT)
        if self.rng.random() < 0.35:
            out.append(self.rng.choice(tuple(INTENSIFIERS)))
        return out

    def clause(self, tone: float) -> list[str]:
        form = self.rng.random()
        noun = self.rng.choice(NOUNS)
        if form < 0.6:
            return [self.rng.choice(DETERMINERS), noun, self.rng.choice(VERBS), *self.modifiers(), self.adjective(tone)]
        if form < 0.8:
            return ["i", "found", self.rng.choice(DETERMINERS), noun, *self.modifiers(), self.adjective(tone)]
        intens = [self.rng.choice(tuple(INTENSIFIERS))] if self.rng.random() < 0.35 else []
        return [self.rng.choice(ARTICLE_DETERMINERS), *intens, self.adjective(tone), noun]

    def review(self) -> Review:
        tone = self.rng.choice(self.TONES)
        words = list(self.rng.choice(OPENERS)) if self.rng.random() < 0.6 else []
        words += self.clause(tone)
        for _ in range(self.rng.choice((0, 1, 1, 2, 2, 3))):
            words += [self.rng.choice(CONJUNCTIONS), *self.clause(tone)]
        words.append(".")
        return Review(tuple(words), tone)

    def prompt_and_completion(self) -> tuple[str, str]:
        words = self.review().words
        cut = self.rng.randint(3, 5)
        cut = min(cut, len(words) - 2)
        return " ".join(words[:cut]), " ".join(words[cut:])


def sentiment_terms(words: list[str] | tuple[str, ...]) -> list[float]:
    """Per-adjective contributions s_i * 0.5**k_i (see module docstring), in order of appearance."""
    terms, uses = [], {}
    negated, weight = False, 1.0
    for w in words:
        if w in CLAUSE_BREAKS or w == EOS:
            negated, weight = False, 1.0
        elif w == NOT:
            negated = not negated
        elif w in INTENSIFIERS:
            weight = INTENSIFIERS[w]
        elif w in POLARITY:
            k = uses.get(w, 0)
            uses[w] = k + 1
            s = POLARITY[w] * weight * (-1.0 if negated else 1.0)
            terms.append(s * 0.5 ** k)
            negated, weight = False, 1.0
        # nouns, verbs, determiners and unknown words carry no sentiment
    return terms


def gold_reward(completion: str) -> float:
    """r*(y) = 2 * asinh(S / 2) on the completion text (prompt excluded); see the module docstring."""
    words = completion.replace(EOS, " ").split()
    return 2.0 * math.asinh(sum(sentiment_terms(words)) / 2.0)


def is_grammatical(text: str) -> bool:
    """Whether `text` (a whole review or a completion) parses as clauses of the grammar; for the lm-eval task."""
    words = [w for w in text.replace(EOS, " ").split()]
    if not words or words[-1] != ".":
        return False
    body = words[:-1]
    for opener in OPENERS:
        if tuple(body[:len(opener)]) == opener:
            body = body[len(opener):]
            break
    clauses, current = [], []
    for w in body:
        if w in CONJUNCTIONS:
            clauses.append(current)
            current = []
        else:
            current.append(w)
    clauses.append(current)
    return all(_parses_clause(c) for c in clauses)


def _parses_clause(c: list[str]) -> bool:
    def adj_tail(rest: list[str]) -> bool:
        if rest[:1] == [NOT]:
            rest = rest[1:]
        if rest[:1] and rest[0] in INTENSIFIERS:
            rest = rest[1:]
        return len(rest) == 1 and rest[0] in POLARITY

    if len(c) >= 4 and c[0] in DETERMINERS and c[1] in NOUNS and c[2] in VERBS:
        return adj_tail(c[3:])
    if len(c) >= 5 and c[:2] == ["i", "found"] and c[2] in DETERMINERS and c[3] in NOUNS:
        return adj_tail(c[4:])
    if len(c) in (3, 4) and c[0] in ARTICLE_DETERMINERS and c[-1] in NOUNS:
        mid = c[1:-1]
        return (len(mid) == 1 and mid[0] in POLARITY) or (len(mid) == 2 and mid[0] in INTENSIFIERS and mid[1] in POLARITY)
    return False
