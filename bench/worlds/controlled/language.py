"""The controlled world's synthetic review language and its gold reward r*(y). Pure Python, no torch.

The analogue of the DPO paper's IMDb "controlled sentiment" task, small enough for a CPU. A review is

    opener clause (conjunction clause)* "."        e.g.  "honestly , the plot was not very dull and the cast felt warm ."

where a clause is one of
    DET NOUN VERB [not] [INTENSIFIER] ADJ          "the plot was not very dull"
    i found DET NOUN [not] [INTENSIFIER] ADJ       "i found the music quite lovely"
    DET [INTENSIFIER] ADJ NOUN                     "a truly awful script"   (DET = a/the/this/its)

The third form has no verb: a noun phrase standing as a clause, as reviews write ("a dull plot but a great cast").
English lets such a fragment stand where no finite clause is required, so it may stand (`NP_JOINS`, `np_allowed`)
  - first in the review: alone, or after an opener that ends with "," or "and" ("honestly , a great film");
  - after the coordinators "and", "but", "yet" ("the plot was dull but a great cast");
and never after the subordinators "because", "although", "while", after "so" (read as "therefore": it joins two
finite clauses), or after the openers "i think" / "my friend said" (verbs of thinking and saying take a finite
complement). "joyful because this very satisfying camera ." is no sentence; gold v4 read it as a clause after any
conjunction, and such samples topped the v4 default suite's best_of_n (2.0-2.5, e.g. "the scenery felt incredibly
| elegant so the truly charming film and i found the acting sharp ." at 2.52). A misplaced noun-phrase clause
is a bad clause. After a conjunction it is a near miss: one word replaced (the conjunction, by "and") makes it
parse, whatever its word order; inserting a verb would not ("this very satisfying camera was" still needs its
words reordered), so no edit inside the clause is counted. After "i think" / "my friend said" it is a full bad
clause: no one-word edit of the opener or the clause makes the review parse.

Number agrees: the plural nouns (`PLURAL_NOUNS`: costumes, effects, characters) take neither "a", "this" nor
"that", nor the verbs "was" / "is" ("this characters", "the effects was" do not parse; gold v4 read them). A
clause one word from agreeing ("i found this costumes lovely") is a near miss like any other one-word slip.

Each review has a hidden tone (probability that a sentiment-bearing adjective is positive), so the language
model learns topic-level coherence and its samples have a real spread of sentiment.
A prompt is the review's first 3-5 words (2 for a four-word review: the completion keeps at least 2); the
completion is the rest, ending with "." and the end token.

Gold reward r*(x, y), version 5 (never shown to a trainer; used to label pairs and to judge). v5 is v4's formula
on the grammar above: only where a noun-phrase clause may stand and number agreement changed (WORLD_FORMAT 5), so
a text scores the same under both unless it has a misplaced noun-phrase clause or a plural noun after a / this /
that or before was / is. The completion y is read as the continuation of its prompt x: the review x + y is parsed
into clauses at conjunctions (after an opener). A review is paid for its overall verdict and its coherence, not
for the count of its adjectives.

    clause value  v_i = polarity(adj_i) * weight(intensifier_i) * (-1/2 if the clause says "not")    |v_i| <= 2
    discount      d_i = 1/2 ** (earlier uses, in the review, of clause i's adjective + its noun + its template)
                  (template = the clause with its noun and adjective replaced by slots: "the _ was utterly _")
    verdict       V = G(positive v_i d_i) - G(|negative v_i d_i|) over the completion's own clauses (those whose
                  adjective y wrote),  G(a) = sum_j (1/2)**(j-1) a_(j),  a_(1) >= a_(2) >= ...   so V in (-4, 4)
    incoherences  m = conjunctions used against their sense (additive and/so/because must keep the running
                  stance, the sign of the last polar clause; contrastive but/while/although/yet must turn it)
                  + nouns judged both ways; counted where a completion clause is involved
    well-formed   r* = max(-8, V - I - W),   I = 2 (1 - 2**-m)  (1, 1.5, 1.75, ... < 2),   W = 0.3 (n_y - 1)^+
                  with n_y the completion's own clauses
    ill-formed    r* = -8 - B - U   (every clause that does not parse costs 1, or 1/2 for a near miss: one word
                  inserted, deleted or replaced would make it parse; U = 1 if the review is unfinished)

- Finished: one "." ends the review, nothing follows it, and the completion left room for its end token under
  the sampler's cap (`SAMPLER_CAP` = 32 new tokens, end token included; the tokenizer is word-level, so a
  completion of 32 words was cut at the cap, whatever its last word). v3 judged such a capped sample finished.
- Negation flips *and halves* ("not bad" is faint praise, not "great"), so negating never strengthens a clause.
- The prompt is context: "the plot was not" + "great ." is negative; the prompt's own clause sets the stance
  (praise after "a truly awful script" needs a contrastive turn) and counts towards repetition, but its
  adjective is not the policy's doing and is never in V.
- Saturation (tested): with the best clauses (each worth 2) the review scores 2, 2.7, 2.9, 2.85, 2.675 in 1..5
  clauses; with plain adjectives 1, 1.2, 1.15, 0.975. Two or three clauses say it; more costs. A chain of faint
  praise ("not bad and ... not dull and ...") stays below one "utterly brilliant" (G weights the strongest).
- Ill-formed text stays below every well-formed review: r* >= -8 for well-formed text by construction, and
  ill-formed text has a bad clause or is unfinished, so r* <= -8.5. A near miss (one slip at the edge of the
  grammar: "the plot was not lead .") scores above salad (-8.5 vs -9 and below): it is closer to a review, and
  ranking it so gives a learner a gradient back into the language; it can never beat a well-formed review.
  The floor -8 binds only for very long, incoherent, negative reviews (V > -4, I < 2, W <= 2.1 under the cap).
- Attainable maximum (`gold_reward_bound`, 2.9 for caps of 13 tokens or more). Proof: I, W >= 0 and negative
  terms only lower V, so r* <= G(positive terms) - 0.3 (n_y - 1). G is the largest weighted sum over all
  orders of its terms (rearrangement inequality), hence monotone in each term and in adding one. One clause
  of y can finish the prompt's clause in one word (plus "." and the end token: 3 tokens), worth at most 2;
  every other clause of y needs a conjunction and at least 3 words: 4 words are worth at most 1 ("and a great
  film"), 5 or more at most 2 (an intensifier of weight 2; "not" halves). With a cap of T tokens the other
  clauses share T - 3 words, so r* <= max over k2 clauses of 5 words and k1 of 4 (5 k2 + 4 k1 <= T - 3) of
  G(2, 2 x k2, 1 x k1) - 0.3 (k1 + k2), which `_bound_plan` evaluates; `best_review` writes a review with
  distinct adjectives, nouns and templates and additive joins that attains it (tested for several caps).
  At T >= 13: G(2, 2, 2) - 0.6 = 2.9, and a fourth clause adds at most 2/8 - 0.3 < 0.
- The language's own reviews score -0.9 on average (random tones and random conjunctions make many
  incoherent; SD 1.6); the default world's base policy -1.4 (SD 2.4 with its 7% ill-formed samples; v4: -1.2,
  SD 2.1, 5%: the placement and agreement rules are harder for the 0.43M-parameter model): 4.3 of headroom.
- What it still pays for, documented: "so"/"because" are read as additive (same polarity), not checked for
  causal sense (a search's finds at the bound chain reasons: "X because Y so Z"); templates are compared word
  for word, so a determiner or verb change makes a new one; the language has no "an" and no mass nouns, so
  "a utterly great film" and "a dismal pacing" are well-formed (spelling, not grammar, to this world). And
  brevity, against π_ref: the base policy's multi-clause reviews are often incoherent or mixed (their mean is
  below 0), so finishing the prompt's clause with a neutral word (r* = 0) beats 71% of π_ref's draws in the
  default suite, and every trained algorithm there writes shorter than π_ref (5-10 tokens vs 11.9). The
  length-controlled win rate reads that rule at 0.500 (bench/evaluation/win_parts.py); the scripted references
  (bench/worlds/controlled/scripted.py) show its scale beside the trained rows.

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
PLURAL_NOUNS = ("costumes", "effects", "characters")
SINGULAR_ONLY = ("a", "this", "that", "was", "is")  # determiners and verbs a plural noun does not take
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

    def clause(self, tone: float, np_ok: bool = True) -> list[str]:
        """One clause; the verbless noun-phrase form only where it may stand (`np_ok`, see `np_allowed`), and
        determiner and verb agreeing with the noun's number."""
        form = self.rng.random() * (1.0 if np_ok else 0.8)
        noun = self.rng.choice(NOUNS)
        det = self.rng.choice(agreeing(DETERMINERS if form < 0.8 else ARTICLE_DETERMINERS, noun))
        if form < 0.6:
            return [det, noun, self.rng.choice(agreeing(VERBS, noun)), *self.modifiers(), self.adjective(tone)]
        if form < 0.8:
            return ["i", "found", det, noun, *self.modifiers(), self.adjective(tone)]
        intens = [self.rng.choice(tuple(INTENSIFIERS))] if self.rng.random() < 0.35 else []
        return [det, *intens, self.adjective(tone), noun]

    def review(self) -> Review:
        tone = self.rng.choice(self.TONES)
        words = list(self.rng.choice(OPENERS)) if self.rng.random() < 0.6 else []
        words += self.clause(tone, np_allowed(words[-1] if words else None))
        for _ in range(self.rng.choice((0, 1, 1, 2, 2, 3))):
            conj = self.rng.choice(CONJUNCTIONS)
            words += [conj, *self.clause(tone, np_allowed(conj))]
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


# ----------------------------------------------------------------------------------------------- gold reward v5

SAMPLER_CAP = 32          # the harness's sampler: at most 32 new tokens per completion, the end token included
RHO = 0.5                 # the j-th strongest clause of one polarity weighs RHO**(j-1): saturation in clauses
REPEAT = 0.5              # a clause's value x REPEAT**k, k = earlier uses of its adjective, noun and template
INCOHERENCE = 1.0         # the first incoherence costs 1, each further one half the previous (total < 2)
EXTRA_CLAUSE = 0.3        # each clause the completion writes beyond its first costs this
WELL_FORMED_FLOOR = -8.0  # no well-formed review scores below this ...
ILL_FORMED_BASE = 8.0     # ... ill-formed: -8 - (1 per bad clause, 1/2 per near miss) - (1 if unfinished)
NEAR_MISS = 0.5
ADDITIVE = ("and", "so", "because")           # join clauses of the same polarity
CONTRASTIVE = ("but", "while", "although", "yet")  # join clauses of opposite polarity (a turn)
NP_JOINS = ("and", "but", "yet")  # the conjunctions a verbless noun-phrase clause may follow (module docstring)
# one word per grammatical role: an edit by any word of the language parses iff an edit by one of these does
# (with number agreement "the" and "felt" take every noun, "plot" every determiner and verb)
_ROLE_WORDS = ("the", "that", "a", "plot", "was", "felt", "very", "great", "not", "i", "found")


@dataclass(frozen=True)
class Clause:
    """One clause of a review, as the grammar reads it."""

    words: tuple[str, ...]
    conjunction: str | None       # the conjunction joining it to the previous clause (None: the first clause)
    parsed: bool
    near_miss: bool = False       # does not parse, but one word inserted, deleted or replaced would make it parse
    adjective: str | None = None
    noun: str | None = None
    template: tuple[str, ...] | None = None  # the clause with its noun and adjective replaced by slots
    value: float = 0.0            # polarity x intensifier weight x (-1/2 if "not"), before the repeat discount
    in_completion: bool = False   # its adjective is the completion's (the policy's doing), not the prompt's
    discount: float = 1.0         # REPEAT ** (earlier uses of its adjective, noun and template in the review)

    @property
    def sign(self) -> int:
        return (self.value > 0) - (self.value < 0)


@dataclass(frozen=True)
class Parse:
    """A review (prompt + completion) read by the grammar: what the gold reward and the quality metrics use."""

    clause_list: tuple[Clause, ...]
    finished: bool                 # one "." ends the review, nothing follows, and the end token fitted under the cap
    capped: bool                   # the completion filled the sampler's cap: no room was left for its end token
    incoherences: tuple[str, ...]  # misused conjunctions and nouns judged both ways, in words

    @property
    def clauses(self) -> tuple[tuple[str, ...], ...]:
        return tuple(c.words for c in self.clause_list)

    @property
    def parsed(self) -> tuple[bool, ...]:
        return tuple(c.parsed for c in self.clause_list)

    @property
    def bad_clauses(self) -> int:
        return sum(not c.parsed for c in self.clause_list)

    @property
    def well_formed(self) -> bool:
        return self.finished and self.bad_clauses == 0

    @property
    def completion_clauses(self) -> tuple[Clause, ...]:
        return tuple(c for c in self.clause_list if c.parsed and c.in_completion)

    @property
    def terms(self) -> tuple[float, ...]:
        """Discounted values of the completion's clauses, in order."""
        return tuple(c.value * c.discount for c in self.completion_clauses)


def saturating_sum(values) -> float:
    """Σ_j RHO**(j-1) v_(j) over values sorted from the largest: by the rearrangement inequality the largest
    weighted sum over all orders, so it is monotone in every value and in adding a non-negative one."""
    return sum(v * RHO ** j for j, v in enumerate(sorted(values, reverse=True)))


def verdict(terms) -> float:
    """V = G(positive terms) − G(|negative terms|), G = `saturating_sum`: V in (−4, 4) (terms <= 2, RHO = 1/2)."""
    return saturating_sum([t for t in terms if t > 0]) - saturating_sum([-t for t in terms if t < 0])


def incoherence_cost(m: int) -> float:
    """INCOHERENCE · (1 + 1/2 + ... ) over m incoherences: 1, 1.5, 1.75, ... < 2."""
    return 2.0 * INCOHERENCE * (1.0 - 0.5 ** m)


def parse_review(prompt: str, completion: str, max_new_tokens: int = SAMPLER_CAP) -> Parse:
    """Parse prompt + completion as one review (see the module docstring for what each field means)."""
    p_words = prompt.replace(EOS, " ").split()
    c_words = completion.replace(EOS, " ").split()
    words = p_words + c_words
    n_prompt = len(p_words)
    capped = len(c_words) >= max_new_tokens  # max_new_tokens words leave no room for the end token
    finished = (bool(c_words) and "." in words and words.index(".") == len(words) - 1 and not capped)
    if "." in words:
        cut = words.index(".")
        trailing = words[cut + 1:]
        body = words[:cut]
    else:
        cut, trailing, body = len(words), [], words
    body_at = 0
    for opener in OPENERS:
        if tuple(body[:len(opener)]) == opener:
            body_at = len(opener)
            break
    spans, current, start, conj = [], [], body_at, None
    for i in range(body_at, len(body)):
        if body[i] in CONJUNCTIONS:
            spans.append((current, start, conj))
            current, start, conj = [], i + 1, body[i]
        else:
            current.append(body[i])
    spans.append((current, start, conj))
    clauses: list[Clause] = []
    seen: dict[object, int] = {}
    for words_, at, conj in spans:
        np_ok = np_allowed(body[at - 1] if at > 0 else None)
        info = _read_clause(words_, np_ok)
        if info is None:
            # a noun-phrase clause after a subordinator is one word (the conjunction -> "and") from parsing
            swap = conj is not None and not np_ok and _parses_clause(words_, np_ok=True)
            clauses.append(Clause(tuple(words_), conj, False, near_miss=swap or _near_miss(words_, np_ok)))
            continue
        adj_i, noun_i, value = info
        template = tuple("<noun>" if j == noun_i else "<adj>" if j == adj_i else w for j, w in enumerate(words_))
        keys = (("adj", words_[adj_i]), ("noun", words_[noun_i]), ("template", template))
        k = sum(seen.get(key, 0) for key in keys)
        for key in keys:
            seen[key] = seen.get(key, 0) + 1
        clauses.append(Clause(tuple(words_), conj, True, False, words_[adj_i], words_[noun_i], template, value,
                              at + adj_i >= n_prompt, REPEAT ** k))
    if trailing:  # words after the review's "." are one more clause that does not parse (never a near miss)
        clauses.append(Clause(tuple(trailing), None, False))
    return Parse(tuple(clauses), finished, capped, tuple(_incoherences(clauses)))


def _incoherences(clauses: list[Clause]) -> list[str]:
    """Misused conjunctions (judged against the running stance: the sign of the last polar clause, so a turn
    cannot hide behind a neutral clause) and nouns judged both ways; only where a completion clause is involved."""
    out, stance = [], 0
    name = {1: "positive", -1: "negative"}
    for i, c in enumerate(clauses):
        if not c.parsed:
            continue
        if i > 0 and c.sign and stance and c.in_completion:
            if c.conjunction in ADDITIVE and c.sign != stance:
                out.append(f"'{c.conjunction}' turns a {name[stance]} review {name[c.sign]} without a contrast")
            elif c.conjunction in CONTRASTIVE and c.sign == stance:
                out.append(f"'{c.conjunction}' contrasts two {name[c.sign]} clauses")
        if c.sign:
            stance = c.sign
    signs: dict[str, set[int]] = {}
    touched: set[str] = set()
    for c in clauses:
        if c.parsed and c.sign:
            signs.setdefault(c.noun, set()).add(c.sign)
            if c.in_completion:
                touched.add(c.noun)
    out += [f"'{n}' is judged both ways" for n in signs if len(signs[n]) == 2 and n in touched]
    return out


def gold_reward(completion: str, prompt: str = "", max_new_tokens: int = SAMPLER_CAP) -> float:
    """r*(x, y), gold v5: V − I − W for a well-formed review (floored at −8), −8 − B − U otherwise (see the
    module docstring)."""
    parse = parse_review(prompt, completion, max_new_tokens)
    if parse.well_formed:
        extra = max(0, len(parse.completion_clauses) - 1)
        r = verdict(parse.terms) - incoherence_cost(len(parse.incoherences)) - EXTRA_CLAUSE * extra
        return max(WELL_FORMED_FLOOR, r)
    bad = sum(NEAR_MISS if c.near_miss else 1.0 for c in parse.clause_list if not c.parsed)
    return -ILL_FORMED_BASE - bad - (0.0 if parse.finished else 1.0)


def _bound_plan(max_new_tokens: int) -> tuple[float, int, int]:
    """(bound, k2, k1): the best number of 5-word clauses worth 2 and 4-word clauses worth 1 after the first."""
    if max_new_tokens < 2:
        raise ValueError(f"max_new_tokens must be >= 2 (a '.' and the end token), got {max_new_tokens}")
    if max_new_tokens == 2:  # only "." fits: the prompt's own clause, stopped (V = 0)
        return 0.0, -1, 0
    room = max_new_tokens - 3  # first adjective, ".", end token
    best = (-math.inf, 0, 0)
    for k2 in range(room // 5 + 1):
        for k1 in range((room - 5 * k2) // 4 + 1):
            r = saturating_sum([2.0] * (1 + k2) + [1.0] * k1) - EXTRA_CLAUSE * (k2 + k1)
            best = max(best, (r, -k2 - k1, k2), key=lambda t: (t[0], t[1]))
    r, neg_n, k2 = best
    return r, k2, -neg_n - k2


def gold_reward_bound(max_new_tokens: int = SAMPLER_CAP) -> float:
    """The attainable maximum of r* for completions of at most `max_new_tokens` tokens, end token included
    (2.9 from 13 tokens on; the proof is in the module docstring)."""
    return _bound_plan(max_new_tokens)[0]


def best_review(max_new_tokens: int = SAMPLER_CAP) -> tuple[str, str]:
    """A (prompt, completion) that attains `gold_reward_bound(max_new_tokens)`: the bound is tight."""
    _, k2, k1 = _bound_plan(max_new_tokens)
    if k2 < 0:
        return "a truly awful script", "."
    adjectives, nouns = iter(POSITIVE[1:]), iter(n for n in NOUNS if n != "plot" and n not in PLURAL_NOUNS)
    strong = iter([(d, i) for i in ("incredibly", "utterly") for d in ARTICLE_DETERMINERS])
    words = ["brilliant"]
    for _ in range(k2):
        det, intens = next(strong)
        words += ["and", det, intens, next(adjectives), next(nouns)]
    for det in ARTICLE_DETERMINERS[:k1]:
        words += ["and", det, next(adjectives), next(nouns)]
    return "the plot was utterly", " ".join(words + ["."])


def is_well_formed(prompt: str, completion: str, max_new_tokens: int = SAMPLER_CAP) -> bool:
    """Every clause of prompt + completion parses and the review ends with its "." within the cap."""
    return parse_review(prompt, completion, max_new_tokens).well_formed


def is_grammatical(text: str) -> bool:
    """Whether `text` (a whole review, or prompt and completion joined) parses as one review of the grammar."""
    return parse_review("", text, max_new_tokens=10**9).well_formed


def agreeing(words, noun: str) -> list[str]:
    """The determiners or verbs of `words` that agree with `noun`'s number (plural nouns: no a/this/that/was/is)."""
    return [w for w in words if noun not in PLURAL_NOUNS or w not in SINGULAR_ONLY]


def np_allowed(before: str | None) -> bool:
    """May a verbless noun-phrase clause stand after the word `before` (None: at the review's start)? Only first
    (alone or after an opener ending in "," or "and") or after "and" / "but" / "yet": see the module docstring."""
    return before is None or before == "," or before in NP_JOINS


def _read_clause(c: list[str], np_ok: bool = True) -> tuple[int, int, float] | None:
    """(adjective index, noun index, value) of a clause that parses, else None."""
    if not _parses_clause(c, np_ok):
        return None
    if c[0] in DETERMINERS and len(c) >= 4 and c[1] in NOUNS and c[2] in VERBS:
        noun_i = 1
    elif c[:2] == ["i", "found"]:
        noun_i = 3
    else:
        noun_i = len(c) - 1
    adj_i = len(c) - 1 if noun_i != len(c) - 1 else len(c) - 2
    weight = next((INTENSIFIERS[w] for w in c if w in INTENSIFIERS), 1.0)
    return adj_i, noun_i, POLARITY[c[adj_i]] * weight * (-0.5 if NOT in c else 1.0)


def _near_miss(c: list[str], np_ok: bool = True) -> bool:
    """One word inserted, deleted or replaced makes the clause parse where it stands (roles stand in for whole
    word classes)."""
    for i in range(len(c) + 1):
        if i < len(c) and _parses_clause(c[:i] + c[i + 1:], np_ok):
            return True
        for w in _ROLE_WORDS:
            if _parses_clause(c[:i] + [w] + c[i:], np_ok) or \
                    (i < len(c) and _parses_clause(c[:i] + [w] + c[i + 1:], np_ok)):
                return True
    return False


def _parses_clause(c: list[str], np_ok: bool = True) -> bool:
    """Whether `c` is a clause of the grammar; the verbless noun-phrase form only if `np_ok` (where it stands)."""
    def adj_tail(rest: list[str]) -> bool:
        if rest[:1] == [NOT]:
            rest = rest[1:]
        if rest[:1] and rest[0] in INTENSIFIERS:
            rest = rest[1:]
        return len(rest) == 1 and rest[0] in POLARITY

    def agrees(noun: str, *words: str) -> bool:  # number agreement of a determiner / verb with the noun
        return noun not in PLURAL_NOUNS or not set(words) & set(SINGULAR_ONLY)

    if len(c) >= 4 and c[0] in DETERMINERS and c[1] in NOUNS and c[2] in VERBS:
        return agrees(c[1], c[0], c[2]) and adj_tail(c[3:])
    if len(c) >= 5 and c[:2] == ["i", "found"] and c[2] in DETERMINERS and c[3] in NOUNS:
        return agrees(c[3], c[2]) and adj_tail(c[4:])
    if np_ok and len(c) in (3, 4) and c[0] in ARTICLE_DETERMINERS and c[-1] in NOUNS and agrees(c[-1], c[0]):
        mid = c[1:-1]
        return (len(mid) == 1 and mid[0] in POLARITY) or (len(mid) == 2 and mid[0] in INTENSIFIERS and mid[1] in POLARITY)
    return False
