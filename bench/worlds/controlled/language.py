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

Gold reward r*(x, y) (never shown to a trainer; used to label pairs and to judge). The completion y is read as
the continuation of its prompt x: the review is x + y, parsed into clauses at conjunctions (after an opener).

    well-formed   every clause parses, the review ends with its "." (then the end token), nothing follows it:
                      s_i   = polarity(adj_i) * weight(intensifier_i) * (-1/2 if the clause says "not")
                      S     = sum over adjectives *in y* of 0.5**k_i * s_i    k_i = earlier uses of that adjective
                      r*    = 2 * asinh(S / 2)
    ill-formed    otherwise (word salad, a clause that does not parse, text cut before its ".", words after it):
                      r*    = -2 - B - U          B = clauses that do not parse, U = 1 if no "." ends the review

- polarity is +1 / -1 / 0; intensifier weights are 1.25..2.0 (1 without one). Negation flips *and halves*
  ("not bad" is faint praise, not "great"), so negating never strengthens a clause.
- The prompt is context: "the plot was not" + "great ." is negative; an adjective inside the prompt counts
  towards repetition (k_i) but not towards S (it is not the policy's doing).
- Sentiment counts only in well-formed reviews: garbage can never buy reward, so an optimiser that drifts
  out of the language loses (r* <= -3 for any ill-formed text, far below the base policy's mean near 0).
- 0.5**k gives diminishing returns for repetition; asinh grows like log, so length helps only logarithmically
  (a stronger length preference is the labeller's `length_bias` knob, measured, not built into the truth).
- Attainable maximum (`gold_reward_bound`): a clause holds one adjective, worth at most 2 (an intensifier of
  weight 2); after the first, each clause costs at least 4 completion tokens (conjunction, article, adjective,
  noun) and 5 with the intensifier, and the review needs "." and the end token. With a cap of T tokens the
  best is one adjective finishing the prompt's clause, then A = (T - 3) // 5 intensified clauses and one
  plain one if 4 tokens remain: S_max = 2 + 2A + [(T - 3) % 5 == 4], r*_max = 2 * asinh(S_max / 2)
  (5.14 at T = 32). Base-policy samples sit around 0 with a standard deviation near 1.5: headroom.

The grammar-blind *sentiment* reward (`sentiment_reward`, the first version of this world's gold) sums
adjective polarities anywhere in y, ungrammatical or not. It is the proxy a `labeller = "sentiment"` world
labels pairs with, so the gap between what the labels reward and the truth (the mechanism behind reward
over-optimisation, Gao et al. 2022) is a controlled setting.
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
    """Grammar-blind per-adjective contributions (the sentiment proxy): polarity x intensifier, flipped by
    "not", discounted 0.5**k for the k-th repeat, wherever the adjective stands."""
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


def sentiment_reward(completion: str, prompt: str = "") -> float:
    """The grammar-blind proxy: 2 * asinh(S / 2) over every adjective of the completion (prompt ignored)."""
    words = completion.replace(EOS, " ").split()
    return 2.0 * math.asinh(sum(sentiment_terms(words)) / 2.0)


@dataclass(frozen=True)
class Parse:
    """A review (prompt + completion) read by the grammar: what the gold reward and the quality metrics use."""

    clauses: tuple[tuple[str, ...], ...]   # words of each clause (opener and "." excluded)
    parsed: tuple[bool, ...]               # does each clause parse
    finished: bool                         # a "." ends the review (and nothing follows it)
    terms: tuple[float, ...]               # sentiment of the completion's adjectives, in parsed clauses

    @property
    def bad_clauses(self) -> int:
        return sum(not p for p in self.parsed)

    @property
    def well_formed(self) -> bool:
        return self.finished and self.bad_clauses == 0


def parse_review(prompt: str, completion: str) -> Parse:
    """Parse prompt + completion as one review; sentiment terms for the completion's adjectives only."""
    p_words = prompt.replace(EOS, " ").split()
    c_words = completion.replace(EOS, " ").split()
    words = p_words + c_words
    n_prompt = len(p_words)
    finished = bool(words) and "." in words and words.index(".") == len(words) - 1 and len(c_words) > 0
    if "." in words:
        cut = words.index(".")
        trailing = words[cut + 1:]
        body, body_at = words[:cut], 0
    else:
        trailing, body, body_at = [], words, 0
    for opener in OPENERS:
        if tuple(body[:len(opener)]) == opener:
            body_at = len(opener)
            break
    clauses, starts, current, start = [], [], [], body_at
    for i in range(body_at, len(body)):
        if body[i] in CONJUNCTIONS:
            clauses.append(current)
            starts.append(start)
            current, start = [], i + 1
        else:
            current.append(body[i])
    clauses.append(current)
    starts.append(start)
    parsed = [_parses_clause(c) for c in clauses]
    if trailing:  # words after the review's "." are one more clause that does not parse
        clauses.append(trailing)
        starts.append(cut + 1)
        parsed.append(False)
    terms, uses = [], {}
    for c, at, ok in zip(clauses, starts, parsed):
        negated, weight = NOT in c, 1.0
        for j, w in enumerate(c):
            if w in INTENSIFIERS:
                weight = INTENSIFIERS[w]
            elif w in POLARITY:
                k = uses.get(w, 0)
                uses[w] = k + 1
                if ok and at + j >= n_prompt:
                    terms.append(POLARITY[w] * weight * (-0.5 if negated else 1.0) * 0.5 ** k)
    return Parse(tuple(tuple(c) for c in clauses), tuple(parsed), finished, tuple(terms))


ILL_FORMED_BASE = 2.0


def gold_reward(completion: str, prompt: str = "") -> float:
    """r*(x, y): 2*asinh(S/2) for a well-formed review, -2 - B - U otherwise (see the module docstring)."""
    parse = parse_review(prompt, completion)
    if parse.well_formed:
        return 2.0 * math.asinh(sum(parse.terms) / 2.0)
    return -ILL_FORMED_BASE - parse.bad_clauses - (0.0 if parse.finished else 1.0)


def gold_reward_bound(max_new_tokens: int) -> float:
    """The attainable maximum of r* for completions of at most `max_new_tokens` tokens (end token included)."""
    room = max_new_tokens - 3   # first adjective, ".", end token
    if room < 0:
        return 2.0 * math.asinh(0.0)
    s_max = 2.0 + 2.0 * (room // 5) + (1.0 if room % 5 == 4 else 0.0)
    return 2.0 * math.asinh(s_max / 2.0)


def best_review(max_new_tokens: int) -> tuple[str, str]:
    """A (prompt, completion) that attains `gold_reward_bound(max_new_tokens)`: the bound is tight."""
    room = max_new_tokens - 3
    adjectives = iter(POSITIVE)
    words = [next(adjectives)]
    for _ in range(room // 5):
        words += ["and", "a", "utterly", next(adjectives), "film"]
    if room % 5 == 4:
        words += ["and", "a", next(adjectives), "film"]
    return "the plot was utterly", " ".join(words + ["."])


def is_well_formed(prompt: str, completion: str) -> bool:
    """Every clause of prompt + completion parses and the review ends with its "." (the grammatical fraction)."""
    return parse_review(prompt, completion).well_formed


def is_grammatical(text: str) -> bool:
    """Whether `text` (a whole review, or prompt and completion joined) parses as one review of the grammar."""
    return parse_review("", text).well_formed


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
