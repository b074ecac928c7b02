"""The controlled world's gold reward r*(x, y), v4: a review is paid for its verdict and its coherence, not for
the count of its adjectives. Sentiment counts only in well-formed reviews, the prompt is context, conjunctions
must be used in their sense, contradictions and repetition cost, the verdict saturates in clauses, capped
samples are unfinished, ill-formed text stays below every well-formed review, and the stated maximum is attained
and never exceeded — also by a search with the reward's own code under the sampler's real cap."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest

from bench.worlds.controlled.gold_search import PROMPTS, random_clause, reader_verdict, search
from bench.worlds.controlled.language import (
    EXTRA_CLAUSE, INCOHERENCE, INTENSIFIERS, NEGATIVE, NEUTRAL, POSITIVE, SAMPLER_CAP, WELL_FORMED_FLOOR,
    ReviewGenerator, best_review, gold_reward, gold_reward_bound, incoherence_cost, is_grammatical,
    is_well_formed, parse_review, sentiment_reward,
)

OLD_SAMPLES = Path(__file__).parent / "data" / "degenerate_samples_v1.jsonl"
P = "the plot was"


@pytest.fixture(scope="module")
def language_mean() -> float:
    """Mean gold reward of the language's own (prompt, completion) pairs: what the base policy imitates."""
    gen = ReviewGenerator(11)
    return statistics.fmean(gold_reward(c, p) for p, c in (gen.prompt_and_completion() for _ in range(5000)))


def test_language_samples_are_well_formed_with_a_spread(language_mean):
    gen = ReviewGenerator(3)
    pcs = [gen.prompt_and_completion() for _ in range(3000)]
    assert all(is_well_formed(p, c) for p, c in pcs)
    rewards = [gold_reward(c, p) for p, c in pcs]
    # random tones and random conjunctions make many language samples incoherent: the mean sits below zero
    assert -1.5 < language_mean < 0 and statistics.pstdev(rewards) > 1.0
    assert max(rewards) <= gold_reward_bound() and gold_reward_bound() - language_mean > 3.0  # headroom


def test_sign_intensity_and_negation():
    for w in POSITIVE:
        assert gold_reward(f"{w} .", P) == 1.0
    for w in NEGATIVE:
        assert gold_reward(f"{w} .", P) == -1.0
    for w in NEUTRAL:
        assert gold_reward(f"{w} .", P) == 0
    for intens, weight in INTENSIFIERS.items():
        assert gold_reward(f"{intens} great .", P) == pytest.approx(weight)
    # negation flips and halves: faint praise, never stronger than the plain adjective
    assert gold_reward("not awful .", P) == 0.5 == -gold_reward("not great .", P)
    assert abs(gold_reward("not utterly awful .", P)) < abs(gold_reward("utterly awful .", P))


def test_prompt_is_context():
    assert gold_reward("great .", "the plot was not") < 0 < gold_reward("great .", P)
    assert gold_reward("great .", "the plot was utterly") == 2.0
    # an adjective in the prompt is not the completion's doing: it sets the stance, never the verdict
    assert gold_reward("but the cast was great .", "a truly awful script") == gold_reward("great .", P) == 1.0
    # but repeating it (or its noun) is discounted
    assert gold_reward("and a great plot .", "a great movie") < gold_reward("and a superb plot .", "a great movie") \
        < gold_reward("and the cast was superb .", "a great movie")


def test_verdict_saturates_in_clauses_as_stated():
    """The curve: the j-th strongest clause weighs 1/2**(j-1) and each clause after the first costs 0.3, so the
    best reviews (each clause worth 2) score 2, 2.7, 2.9, 2.85, 2.675, ... in 1, 2, 3, 4, 5 clauses: length beyond
    three clauses costs. With plain adjectives (worth 1): 1, 1.2, 1.15, 0.975 — two clauses are enough."""
    strong = [("a", "incredibly"), ("this", "incredibly"), ("its", "incredibly"), ("a", "utterly"), ("its", "utterly")]
    nouns = ["film", "cast", "score", "ending", "hero"]
    strong_curve, plain_curve = [], []
    for n in range(1, 6):
        extra = [f"and {d} {i} {a} {x}" for (d, i), a, x in zip(strong[:n - 1], POSITIVE[5:], nouns)]
        strong_curve.append(gold_reward(" ".join(["brilliant", *extra, "."]), "the plot was utterly"))
        extra = [f"and {d} {a} {x}" for d, a, x in zip(["a", "this", "its", "the"][:n - 1], POSITIVE[5:], nouns)]
        plain_curve.append(gold_reward(" ".join(["brilliant", *extra, "."]), P))
    assert strong_curve == pytest.approx([2.0, 2.7, 2.9, 2.85, 2.675])
    assert plain_curve == pytest.approx([1.0, 1.2, 1.15, 0.975, 0.7375])
    assert max(range(5), key=lambda i: strong_curve[i]) == 2 and max(range(5), key=lambda i: plain_curve[i]) == 1
    assert EXTRA_CLAUSE == 0.3


def test_conjunctions_must_be_used_in_their_sense():
    coherent = gold_reward("great and a superb film .", P)
    assert gold_reward("great but a superb film .", P) == pytest.approx(coherent - INCOHERENCE)
    finite = gold_reward("great and the film was superb .", P)
    assert gold_reward("great although the film was superb .", P) == pytest.approx(finite - INCOHERENCE)
    turn = gold_reward("awful but a superb film .", P)
    assert gold_reward("awful and a superb film .", P) == pytest.approx(turn - INCOHERENCE)
    # a neutral clause in between does not hide the turn: the stance is the last polar clause's sign
    assert parse_review(P, "awful and a long film and a superb cast .").incoherences
    assert not parse_review(P, "awful and a long film but a superb cast .").incoherences
    # the chain of contrastive joins of same-polarity clauses scores below the one-clause review; gold v5
    # also reads its "while a inspired cast" as a misplaced noun-phrase clause, so it is ill-formed ...
    chain = ("a dismal", "story while a inspired cast but this deeply elegant romance although i found that hero "
                         "really brilliant because i found the lead very joyful .")
    assert not is_well_formed(*chain) and gold_reward(chain[1], chain[0]) < 1.0
    # ... and with that clause made finite, its two misused conjunctions still cost
    fixed = (chain[0], chain[1].replace("while a inspired cast", "while the cast was inspired"))
    assert is_well_formed(*fixed)
    assert len(parse_review(*fixed).incoherences) == 2 and gold_reward(fixed[1], fixed[0]) < 1.0


def test_contradiction_costs():
    # the same noun judged both ways
    both = "utterly brilliant but the plot was utterly awful and the plot was utterly superb and the plot was utterly lovely ."
    assert gold_reward(both, P) < 0 < 2.0 == gold_reward("utterly brilliant .", P)
    assert any("judged both ways" in s for s in parse_review(P, both).incoherences)
    # praise contradicting the prompt's verdict without a contrastive turn (v3: 4.19)
    prompt = "a truly awful script"
    glowing = ("and the cast was utterly brilliant and the music was utterly superb and the lead was utterly lovely "
               "and the hero was truly stunning .")
    turned = "but " + glowing[len("and "):]
    assert gold_reward(glowing, prompt) == pytest.approx(gold_reward(turned, prompt) - INCOHERENCE)
    assert gold_reward(glowing, prompt) < gold_reward("but the cast was utterly brilliant and a truly superb score .", prompt)
    assert incoherence_cost(1) == 1.0 and incoherence_cost(2) == 1.5 and incoherence_cost(50) < 2.0


def test_repeated_nouns_and_templates_are_discounted():
    six_plots = ("utterly great and a utterly superb plot and a utterly lovely plot and a utterly fresh plot and a "
                 "utterly warm plot and a utterly rich plot .")  # v3: 4.98, 97% of its maximum
    assert gold_reward(six_plots, P) < gold_reward("utterly brilliant .", P)
    varied = gold_reward("great and the cast was superb .", P)
    assert gold_reward("great and the plot was superb .", P) < varied          # noun repeated
    assert gold_reward("great and the cast was great .", P) < varied           # adjective repeated
    assert gold_reward("great and the cast was superb .", "the plot was") > \
        gold_reward("great and the cast was superb and the music was lovely and the score was fresh .", P)


def test_faint_praise_chains_do_not_beat_one_strong_clause():
    chain = "not bad and the cast was not dull and the music was not awful and the lead was not weak and the score was not flat ."
    assert gold_reward(chain, P) < gold_reward("utterly brilliant .", P)  # v3: 2.10 > 1.76


def test_capped_samples_are_unfinished():
    """The sampler emits at most 32 new tokens, the end token included: 32 words without it were cut there."""
    words = ["great"] + ["and", "a", "good", "film"] * 7 + ["and", "."]
    long = " ".join(words[:SAMPLER_CAP - 1] + ["."])
    assert len(long.split()) == SAMPLER_CAP
    assert parse_review(P, long).capped and not is_well_formed(P, long)
    assert gold_reward(long, P) <= WELL_FORMED_FLOOR - 1
    shorter = " ".join(long.split()[:-2] + ["."])
    assert not parse_review(P, shorter).capped


def test_ill_formed_text_stays_below_every_well_formed_review_and_near_misses_above_salad():
    rng = random.Random(5)
    worst_well_formed = math.inf
    for _ in range(3000):  # random well-formed reviews of every polarity and coherence
        clauses = [" ".join(random_clause(rng)) for _ in range(rng.randint(1, 6))]
        text = clauses[0] + "".join(f" {rng.choice(['and', 'but', 'so', 'yet'])} {c}" for c in clauses[1:]) + " ."
        if len(text.split()) < SAMPLER_CAP and is_well_formed("", text):
            worst_well_formed = min(worst_well_formed, gold_reward(text))
    assert worst_well_formed >= WELL_FORMED_FLOOR
    slip = gold_reward("not lead .", P)         # one word off the grammar
    cut = gold_reward("great and the cast", P)  # unfinished
    salad = gold_reward("film great the and was very lovely cast a .", P)
    assert salad < slip < WELL_FORMED_FLOOR and cut < WELL_FORMED_FLOOR
    assert parse_review(P, "not lead .").clause_list[0].near_miss


ADVERSARIAL = {
    "word salad": ("the plot was", "film great the and was very lovely cast a ."),
    "distinct adjectives": ("the plot was", " ".join(POSITIVE[:23])),
    "distinct adjectives, ended": ("the plot was", " ".join(POSITIVE[:22]) + " ."),
    "one adjective repeated": ("the plot was", "great great great great great great ."),
    "stacked negations": ("the plot was", "not not not awful ."),
    "stacked intensifiers": ("the plot was", "utterly incredibly truly very great ."),
    "empty completion": ("the plot was", ""),
    "only the full stop": ("the plot was", "."),
    "cut at the cap": ("the plot was", "great and a utterly superb film and a utterly lovely film and the cast was"),
    "prompt echo": ("the plot was", "the plot was"),
    "prompt echo, ended": ("the plot was", "the plot was ."),
    "two reviews": ("the plot was", "great . the cast was superb ."),
    "conjunction salad": ("the plot was", "great and and superb but lovely ."),
    # gold v5: a verbless noun-phrase clause where English needs a finite one (v4 paid 2.45 for the first)
    "noun phrase after because": ("its cast felt very", "joyful because this very satisfying camera ."),
    "noun phrase after although": ("the plot was", "dull although a great cast ."),
    "noun phrase after while": ("its plot was utterly lazy", "while a utterly witty cast ."),
    "noun phrase after so": ("the plot was", "great so a great film ."),
    "noun phrase after i think": ("i think", "a truly great film ."),
    "noun phrase after my friend said": ("my friend said", "the utterly brilliant film ."),
    # gold v5: number agrees (v4 paid 2.4 for a best-of-n sample with "i found this characters truly engaging")
    "plural noun after this": ("the scenery felt incredibly", "superb so i found this characters truly engaging ."),
    "plural noun with was": ("the plot was", "great and the effects was utterly superb ."),
    "plural noun after a": ("the plot was", "great and a utterly superb costumes ."),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_degenerate_text_scores_below_the_base_policy(name, language_mean):
    prompt, completion = ADVERSARIAL[name]
    assert not is_well_formed(prompt, completion)
    r = gold_reward(completion, prompt)
    assert r < WELL_FORMED_FLOOR and r <= -3.0 < language_mean - 2.0, (name, r)


def test_old_gold_paid_for_salad_and_new_gold_does_not():
    prompt, completion = ADVERSARIAL["distinct adjectives"]
    assert sentiment_reward(completion) > 6.0  # the grammar-blind proxy (the first gold) pays for a word list
    assert gold_reward(completion, prompt) < 0


def test_old_degenerate_samples_score_below_sft(language_mean):
    """Samples of the v1 default suite's trained policies (committed baseline run): word salad then, losers now."""
    rows = [json.loads(line) for line in OLD_SAMPLES.read_text().splitlines() if line.strip()]
    assert len(rows) >= 30 and {r["algorithm"] for r in rows} >= {"dpo", "simpo", "ipo", "ppo"}
    # under the v1 gold the offline methods' word salad outscored the base policy (its mean there: 0.012)
    daa = [r["old_score"] for r in rows if r["algorithm"] != "ppo"]
    assert statistics.fmean(daa) > 1.0
    for r in rows:
        assert not is_grammatical(r["prompt"] + " " + r["completion"])
        assert gold_reward(r["completion"], r["prompt"]) < language_mean, r


def test_bound_is_attained_and_tight():
    for cap in (2, 3, 8, 12, 13, 24, 32, 40):
        prompt, completion = best_review(cap)
        assert len(completion.split()) + 1 <= cap  # + the end token
        assert is_well_formed(prompt, completion, max_new_tokens=cap)
        assert gold_reward(completion, prompt, max_new_tokens=cap) == pytest.approx(gold_reward_bound(cap))
        assert all(reader_verdict(prompt, completion).values())
    assert gold_reward_bound(32) == pytest.approx(2.9) == gold_reward_bound(13)
    assert gold_reward_bound(12) == pytest.approx(2.7)


def test_search_with_the_rewards_own_code_finds_only_reviews_a_reader_would_call_good():
    """Hill climbing over the vocabulary from several prompts, completions up to the sampler's real cap (32
    words = cut before the end token): nothing exceeds the stated maximum, every find uses its conjunctions in
    their sense, judges no noun both ways and repeats no noun or template; the finds at the top are no longer
    than needed; and the search does climb to the bound (it is not vacuous)."""
    bound = gold_reward_bound(SAMPLER_CAP)
    finds = search(gold_reward, PROMPTS, steps=3000, restarts=1, seed=0)
    assert len(finds) == len(PROMPTS)
    for f in finds:
        assert f.reward <= bound + 1e-9, f
        verdict = reader_verdict(f.prompt, f.completion)
        failed = [k for k, ok in verdict.items() if not ok and k != "not_longer_than_needed"]
        assert not failed, (f, failed)
        if f.reward >= bound - 0.1:
            assert all(verdict.values()), (f, verdict)
    assert finds[0].reward >= bound - 0.1


NP = ("this very satisfying camera", "a great cast", "its utterly brilliant film", "the dull plot")


def test_noun_phrase_clauses_stand_only_where_english_lets_a_fragment_stand():
    """Gold v5: a verbless noun-phrase clause may stand first (alone, or after an opener ending with "," or
    "and") or after and / but / yet; after because / although / while / so, or after "i think" / "my friend said",
    English needs a finite clause, so the review is ill-formed."""
    for np_clause in NP:
        assert is_grammatical(f"{np_clause} .")
        for opener in ("honestly ,", "in short ,", "i watched it and", "we saw it and"):
            assert is_grammatical(f"{opener} {np_clause} ."), opener
        for opener in ("i think", "my friend said"):
            assert not is_grammatical(f"{opener} {np_clause} ."), opener
        for conj in ("and", "but", "yet"):
            assert is_grammatical(f"the plot was great {conj} {np_clause} ."), conj
            assert is_grammatical(f"a dull script {conj} {np_clause} ."), conj
        for conj in ("because", "although", "while", "so"):
            assert not is_grammatical(f"the plot was great {conj} {np_clause} ."), conj
            assert not is_grammatical(f"a dull script {conj} {np_clause} ."), conj
    # the finite forms stand after every conjunction, and a noun phrase may lead a subordinate construction
    for conj in ("because", "although", "while", "so"):
        assert is_grammatical(f"a dull script {conj} the cast was great .")
        assert is_grammatical(f"a dull script {conj} i found the cast great .")
    # the default suite's top sample under gold v4, and the v4 reading of the same review with "and"
    prompt, completion = "its cast felt very", "joyful because this very satisfying camera ."
    repaired = completion.replace("because", "and")
    assert gold_reward(completion, prompt) < WELL_FORMED_FLOOR < gold_reward(repaired, prompt)


def test_a_misplaced_noun_phrase_is_a_near_miss_after_a_conjunction_and_a_bad_clause_after_an_opener():
    """The one-word edit that repairs a noun phrase after a subordinator is the conjunction's (-> "and"), for every
    word order of the clause; no word inserted, deleted or replaced inside the clause does (a verb inserted into
    "a great cast" leaves it unparsed). After "i think" / "my friend said" no one-word edit repairs it."""
    from bench.worlds.controlled.language import ILL_FORMED_BASE, NEAR_MISS, vocabulary

    vocab = vocabulary()
    for np_clause in NP:
        words = np_clause.split()
        for conj in ("because", "although", "while", "so"):
            parse = parse_review("the plot was great", f"{conj} {np_clause} .")
            bad = [c for c in parse.clause_list if not c.parsed]
            assert len(bad) == 1 and bad[0].near_miss and bad[0].conjunction == conj
            assert gold_reward(f"{conj} {np_clause} .", "the plot was great") == -ILL_FORMED_BASE - NEAR_MISS
            assert is_well_formed("the plot was great", f"and {np_clause} .")  # the repair
        # brute force over the whole vocabulary: no edit inside the clause makes it parse after "because"
        edits = [words[:i] + words[i + 1:] for i in range(len(words))]
        edits += [words[:i] + [w] + words[i + k:] for i in range(len(words) + 1) for w in vocab for k in (0, 1)
                  if k == 0 or i < len(words)]
        assert not any(is_grammatical(" ".join(["the plot was great because", *e, "."])) for e in edits)
        for opener in ("i think", "my friend said"):
            parse = parse_review(opener, f"{np_clause} .")
            assert parse.bad_clauses == 1 and not parse.clause_list[0].near_miss
            assert gold_reward(f"{np_clause} .", opener) == -ILL_FORMED_BASE - 1.0
    # still above salad, still below every well-formed review
    salad = gold_reward("film great the and was very lovely cast a .", P)
    assert salad < -ILL_FORMED_BASE - NEAR_MISS < WELL_FORMED_FLOOR


def test_the_languages_own_reviews_place_noun_phrases_where_they_may_stand():
    """The generator (π_ref's training data) obeys the same grammar: every review is well-formed under gold v5, and
    the noun-phrase form still appears, first and after and / but / yet, never after a subordinator or a verb of
    saying."""
    from bench.worlds.controlled.language import NP_JOINS, OPENERS

    gen = ReviewGenerator(17)
    reviews = [gen.review() for _ in range(4000)]
    assert all(is_grammatical(r.text) for r in reviews)
    before = []  # the word before each noun-phrase clause (None: the review's start)
    for r in reviews:
        opener = next((o for o in OPENERS if r.words[:len(o)] == o), ())
        for c in parse_review("", r.text, max_new_tokens=10**9).clause_list:
            if c.noun == c.words[-1]:  # the noun-phrase form: the noun ends the clause
                before.append(c.conjunction or (opener[-1] if opener else None))
    assert {None, ",", *NP_JOINS} <= set(before), set(before)
    assert not set(before) - {None, ",", *NP_JOINS}, set(before)


def test_number_agrees_and_a_slip_of_number_is_a_near_miss():
    """Plural nouns take neither a / this / that nor was / is, in every clause form; one such slip is a near miss
    (one word replaced repairs it); the language's own reviews agree and still use the plural nouns."""
    from bench.worlds.controlled.language import ILL_FORMED_BASE, NEAR_MISS, PLURAL_NOUNS

    for noun in PLURAL_NOUNS:
        for good in (f"the {noun} felt great", f"its {noun} seemed great",
                     f"i found the {noun} great", f"its great {noun}", f"the very great {noun}"):
            assert is_grammatical(f"{good} ."), good
        for bad in (f"this {noun} felt great", f"the {noun} was great", f"that {noun} is great",
                    f"i found this {noun} great", f"a great {noun}", f"this very great {noun}"):
            assert not is_grammatical(f"{bad} ."), bad
            assert gold_reward(f"and {bad} .", "the plot was good") == -ILL_FORMED_BASE - NEAR_MISS, bad
    for singular in ("a great film", "this film was great", "that plot is great", "i found this cast great"):
        assert is_grammatical(f"{singular} .")
    gen = ReviewGenerator(23)
    reviews = [gen.review() for _ in range(3000)]
    assert all(is_grammatical(r.text) for r in reviews)
    assert sum(any(w in PLURAL_NOUNS for w in r.words) for r in reviews) > 100


def test_parse_counts_bad_clauses_and_unfinished_text():
    ok = parse_review("honestly , the", "plot was great and a utterly superb film .")
    assert ok.well_formed and ok.terms == (1.0, 2.0) and not ok.incoherences
    cut = parse_review("the plot", "was great and the cast")
    assert not cut.finished and cut.bad_clauses == 1 and gold_reward("was great and the cast", "the plot") == -9.5
    assert cut.clause_list[-1].near_miss  # "the cast" is one adjective short of "the great cast"
    trailing = parse_review(P, "great . the cast was superb .")
    assert not trailing.finished and trailing.bad_clauses == 1
    assert is_grammatical("the plot was great .") and not is_grammatical("the plot was .")
