"""The controlled world's gold reward r*(x, y): sentiment counts only in well-formed reviews, the prompt is
context, degenerate text scores below the base policy, and the stated maximum is attained and never exceeded."""

from __future__ import annotations

import json
import math
import random
import statistics
from pathlib import Path

import pytest

from bench.worlds.controlled.language import (
    ARTICLE_DETERMINERS, CONJUNCTIONS, INTENSIFIERS, NEGATIVE, NEUTRAL, NOUNS, POSITIVE, ReviewGenerator,
    best_review, gold_reward, gold_reward_bound, is_grammatical, is_well_formed, parse_review, sentiment_reward,
    vocabulary,
)

OLD_SAMPLES = Path(__file__).parent / "data" / "degenerate_samples_v1.jsonl"


@pytest.fixture(scope="module")
def language_mean() -> float:
    """Mean gold reward of the language's own (prompt, completion) pairs: what the base policy imitates."""
    gen = ReviewGenerator(11)
    return statistics.fmean(gold_reward(c, p) for p, c in (gen.prompt_and_completion() for _ in range(5000)))


def test_language_samples_are_well_formed_with_a_spread_around_zero(language_mean):
    gen = ReviewGenerator(3)
    pcs = [gen.prompt_and_completion() for _ in range(3000)]
    assert all(is_well_formed(p, c) for p, c in pcs)
    rewards = [gold_reward(c, p) for p, c in pcs]
    assert abs(language_mean) < 0.3 and statistics.pstdev(rewards) > 1.0
    # headroom: the best of 3000 language samples stays well below the attainable maximum
    assert max(rewards) < gold_reward_bound(32) - 1.0


def test_sign_intensity_and_negation():
    p = "the plot was"
    for w in POSITIVE:
        assert gold_reward(f"{w} .", p) == pytest.approx(2 * math.asinh(0.5))
    for w in NEGATIVE:
        assert gold_reward(f"{w} .", p) < 0
    for w in NEUTRAL:
        assert gold_reward(f"{w} .", p) == 0
    for intens, weight in INTENSIFIERS.items():
        assert gold_reward(f"{intens} great .", p) == pytest.approx(2 * math.asinh(weight / 2))
    # negation flips and halves: faint praise, never stronger than the plain adjective
    assert gold_reward("not awful .", p) == pytest.approx(2 * math.asinh(0.25))
    assert gold_reward("not great .", p) == pytest.approx(-gold_reward("not awful .", p))
    assert abs(gold_reward("not utterly awful .", p)) < abs(gold_reward("utterly awful .", p))


def test_prompt_is_context():
    assert gold_reward("great .", "the plot was not") < 0 < gold_reward("great .", "the plot was")
    assert gold_reward("great .", "the plot was utterly") == pytest.approx(2 * math.asinh(1.0))
    # an adjective in the prompt is not the completion's doing, but repeating it has diminishing returns
    assert gold_reward("and the cast was dull .", "a truly awful script") == gold_reward("dull .", "the plot was")
    assert gold_reward("and a great plot .", "a great movie") < gold_reward("and a superb plot .", "a great movie")


def test_diminishing_returns_and_concave_growth():
    p = "the plot was"
    once = gold_reward("great .", p)
    repeated = gold_reward("great and the cast was great and the music was great .", p)
    distinct = gold_reward("great and the cast was superb and the music was lovely .", p)
    assert once < repeated < distinct < 3 * once
    rewards = [gold_reward(" and ".join(["great"] + [f"a {a} film" for a in POSITIVE[2:n + 1]]) + " .", p)
               for n in range(1, 8)]
    gains = [b - a for a, b in zip(rewards, rewards[1:])]
    assert all(g > 0 for g in gains) and all(b < a for a, b in zip(gains, gains[1:]))


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
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_degenerate_text_scores_below_the_base_policy(name, language_mean):
    prompt, completion = ADVERSARIAL[name]
    assert not is_well_formed(prompt, completion)
    r = gold_reward(completion, prompt)
    assert r <= -3.0 < language_mean - 2.0, (name, r)


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
    for cap in (8, 12, 24, 32, 40):
        prompt, completion = best_review(cap)
        assert len(completion.split()) + 1 <= cap  # + the end token
        assert is_well_formed(prompt, completion)
        assert gold_reward(completion, prompt) == pytest.approx(gold_reward_bound(cap))
    assert gold_reward_bound(32) == pytest.approx(2 * math.asinh(6.5))


def _random_clause(rng: random.Random) -> list[str]:
    adj = [rng.choice(POSITIVE + NEGATIVE)]
    mods = (["not"] if rng.random() < 0.2 else []) + ([rng.choice(list(INTENSIFIERS))] if rng.random() < 0.6 else [])
    form = rng.random()
    if form < 0.4:
        return [rng.choice(ARTICLE_DETERMINERS), *mods[-1:], *adj, rng.choice(NOUNS)]
    if form < 0.7:
        return ["the", rng.choice(NOUNS), "was", *mods, *adj]
    return ["i", "found", "the", rng.choice(NOUNS), *mods, *adj]


def _mutate(words: list[str], rng: random.Random, vocab: list[str]) -> list[str]:
    """A word edit, or a whole clause inserted (single edits cannot cross the ill-formed plateau)."""
    out = list(words)
    op = rng.random()
    if op < 0.3:
        at = rng.randrange(len(out) + 1)
        out[at:at] = [rng.choice(CONJUNCTIONS), *_random_clause(rng)]
    elif op < 0.6 and out:
        out[rng.randrange(len(out))] = rng.choice(vocab)
    elif op < 0.8:
        out.insert(rng.randrange(len(out) + 1), rng.choice(vocab))
    elif out:
        del out[rng.randrange(len(out))]
    return out


def test_no_search_beats_the_bound():
    """Hill climbing over completions of <= 31 words (+ end token = 32) never exceeds the stated maximum."""
    rng = random.Random(0)
    vocab = vocabulary()
    focus = POSITIVE + list(INTENSIFIERS) + list(CONJUNCTIONS) + ARTICLE_DETERMINERS + NOUNS + ["."]
    bound = gold_reward_bound(32)
    best_seen = -math.inf
    for prompt in ("the plot was utterly", "the plot was", "i found the", "a truly awful script"):
        words = ["great", "."] if prompt != "a truly awful script" else ["."]
        score = gold_reward(" ".join(words), prompt)
        for _ in range(6000):
            cand = _mutate(words, rng, focus if rng.random() < 0.8 else vocab)[:31]
            s = gold_reward(" ".join(cand), prompt)
            assert s <= bound + 1e-9, (prompt, cand)
            if s >= score:
                words, score = cand, s
        best_seen = max(best_seen, score)
    assert best_seen > gold_reward_bound(32) - 1.0  # the search does climb: the bound is not vacuous


def test_long_positive_grammatical_reviews_score_highest(language_mean):
    long_positive = gold_reward(best_review(32)[1], best_review(32)[0])
    short_positive = gold_reward("great .", "the plot was")
    assert long_positive > short_positive > language_mean
    assert long_positive > max(gold_reward(c, p) for p, c in ADVERSARIAL.values()) + 8


def test_parse_counts_bad_clauses_and_unfinished_text():
    ok = parse_review("honestly , the", "plot was great and a utterly superb film .")
    assert ok.well_formed and ok.terms == (1.0, 2.0)
    cut = parse_review("the plot", "was great and the cast")
    assert not cut.finished and cut.bad_clauses == 1 and gold_reward("was great and the cast", "the plot") == -4.0
    trailing = parse_review("the plot was", "great . the cast was superb .")
    assert not trailing.finished and trailing.bad_clauses == 1
