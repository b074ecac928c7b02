"""The controlled world: gold reward, tokenizer, grammar, pair labelling statistics, and the cached build."""

from __future__ import annotations

import math
import random
import statistics
import time
from dataclasses import replace

import pytest

from bench.worlds.controlled.config import ControlledWorldConfig
from bench.worlds.controlled.language import (
    EOS, INTENSIFIERS, ReviewGenerator, gold_reward, is_grammatical, sentiment_reward, vocabulary,
)
from bench.worlds.controlled.pairs import Labeller, labeller_from, make_pairs

# ------------------------------------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    from bench.worlds.controlled.tokenizer import build_tokenizer

    return build_tokenizer()


def test_tokenizer_round_trip(tokenizer):
    gen = ReviewGenerator(3)
    for _ in range(300):
        text = gen.review().text
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(text.split())
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids) == text
    prompt, completion = gen.prompt_and_completion()
    ids = tokenizer(completion + f" {EOS}", add_special_tokens=False)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == completion


def test_every_word_is_one_token(tokenizer):
    words = vocabulary()
    assert len(words) == len(set(words))
    ids = set()
    for w in words:
        enc = tokenizer(w, add_special_tokens=False)["input_ids"]
        assert len(enc) == 1 and enc[0] != tokenizer.unk_token_id, w
        ids.add(enc[0])
    assert len(ids) == len(words)
    assert len(tokenizer) == len(words) + 4


def test_special_tokens(tokenizer):
    special = [tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id]
    assert None not in special and len(set(special)) == 3
    # a BOS token is optional (declaring none keeps every TRL trainer on the same sequences); if set, distinct
    if tokenizer.bos_token_id is not None:
        assert tokenizer.bos_token_id not in special
    assert tokenizer.padding_side == "left"
    assert tokenizer("zorblax the", add_special_tokens=False)["input_ids"][0] == tokenizer.unk_token_id
    assert tokenizer.convert_tokens_to_ids(EOS) == tokenizer.eos_token_id


def test_tokenizer_save_and_load(tmp_path):
    from bench.worlds.controlled.tokenizer import load_tokenizer, save_tokenizer

    save_tokenizer(tmp_path / "tok")
    tok = load_tokenizer(tmp_path / "tok")
    text = ReviewGenerator(0).review().text
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tok.eos_token == EOS and tok.padding_side == "left"


# ------------------------------------------------------------------------------------------- generator and grammar


def test_generator_is_deterministic():
    a, b, c = ReviewGenerator(7), ReviewGenerator(7), ReviewGenerator(8)
    ra = [a.review() for _ in range(50)]
    assert ra == [b.review() for _ in range(50)]
    assert ra != [c.review() for _ in range(50)]
    assert [a.prompt_and_completion() for _ in range(20)] == [b.prompt_and_completion() for _ in range(20)]


def test_generated_reviews_are_grammatical_and_varied():
    gen = ReviewGenerator(1)
    reviews = [gen.review() for _ in range(2000)]
    assert all(is_grammatical(r.text) for r in reviews)
    assert all(r.words[-1] == "." for r in reviews)
    rewards = [gold_reward(r.text) for r in reviews]
    assert statistics.pstdev(rewards) > 1.0  # a real spread of sentiment
    assert min(rewards) < -2 < 2 < max(rewards)
    used = {w for r in reviews for w in r.words}
    assert used <= set(vocabulary())
    assert {"not"} | set(INTENSIFIERS) <= used


def test_prompt_and_completion():
    gen = ReviewGenerator(2)
    for _ in range(500):
        prompt, completion = gen.prompt_and_completion()
        assert 1 <= len(prompt.split()) <= 5
        assert completion.endswith(".") and len(completion.split()) >= 2
        assert is_grammatical(prompt + " " + completion)


def test_corrupted_reviews_are_mostly_ungrammatical():
    gen, rng = ReviewGenerator(1), random.Random(0)
    judged = []
    for _ in range(1000):
        words = list(gen.review().words[:-1])
        i, j = rng.sample(range(len(words)), 2)
        if words[i] == words[j]:
            continue
        words[i], words[j] = words[j], words[i]
        judged.append(is_grammatical(" ".join(words + ["."])))
    assert sum(judged) / len(judged) < 0.2


def test_is_grammatical_rejects_without_raising():
    assert not is_grammatical("")
    assert not is_grammatical("the plot was great")          # no final "."
    assert not is_grammatical("great the was plot .")
    assert not is_grammatical("and .")
    assert is_grammatical("a great movie .") and is_grammatical("a very great movie .")
    assert is_grammatical(f"the plot was not very great . {EOS}")
    # every short sequence of grammar words must get an answer, not an exception
    rng = random.Random(0)
    words = ["a", "the", "very", "not", "great", "movie", "was", "i", "found", "and"]
    for _ in range(3000):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) + " ."
        assert is_grammatical(text) in (True, False), text
    assert is_grammatical("a very movie .") is False


# ------------------------------------------------------------------------------------------- labelling statistics


@pytest.fixture(scope="module")
def completions():
    # whole reviews as completions of an empty prompt: two independent, well-formed candidates per "prompt"
    gen = ReviewGenerator(5)
    reviews = [gen.review().text for _ in range(10_000)]
    return [""] * 5000, reviews[:5000], reviews[5000:]


def label(completions, labeller: Labeller, seed: int = 0) -> list[dict]:
    prompts, a, b = completions
    rows, skipped = make_pairs(prompts, a, b, ["base"] * len(prompts), labeller, seed)
    assert len(rows) + skipped == len(prompts)
    return rows


def gold_agreement(rows: list[dict]) -> float:
    decided = [r for r in rows if r["score_chosen"] != r["score_rejected"]]
    return sum(r["score_chosen"] > r["score_rejected"] for r in decided) / len(decided)


def test_rows_carry_scores_and_probability(completions):
    rows = label(completions, Labeller())
    for r in rows[:500]:
        assert r["score_chosen"] == gold_reward(r["chosen"], r["prompt"])
        assert r["score_rejected"] == gold_reward(r["rejected"], r["prompt"])
        assert r["label_score_chosen"] == r["score_chosen"]  # the gold labeller scores with the gold reward
        assert 0.0 < r["labeller_prob"] < 1.0
        assert r["len_chosen"] == len(r["chosen"].split())
        assert r["source"] == "base" and r["flipped"] is False
    # the labeller's probability is for the label it gave: above 1/2 on average
    assert statistics.fmean(r["labeller_prob"] for r in rows) > 0.6


def test_flip_rate_matches_label_noise(completions):
    rows = label(completions, Labeller(label_noise=0.2))
    rate = sum(r["flipped"] for r in rows) / len(rows)
    assert rate == pytest.approx(0.2, abs=0.02)
    # flipped labels go against the labeller: deterministic + 20% noise agrees with gold ~80% of the time
    det = label(completions, Labeller(deterministic=True, label_noise=0.2))
    assert gold_agreement(det) == pytest.approx(0.8, abs=0.03)
    assert all((r["score_chosen"] < r["score_rejected"]) == r["flipped"]
               for r in det if r["score_chosen"] != r["score_rejected"])


def test_deterministic_labels_follow_gold(completions):
    rows = label(completions, Labeller(deterministic=True))
    assert all(r["score_chosen"] >= r["score_rejected"] for r in rows)
    assert all(r["labeller_prob"] >= 0.5 for r in rows)
    assert gold_agreement(rows) == 1.0


def test_bradley_terry_labels_are_noisy_but_informative(completions):
    agree = gold_agreement(label(completions, Labeller()))
    assert 0.7 < agree < 0.95


def test_length_bias_prefers_longer(completions):
    unbiased = label(completions, Labeller())
    biased = label(completions, Labeller(length_bias=0.5))
    diff = lambda rows: statistics.fmean(r["len_chosen"] - r["len_rejected"] for r in rows)  # noqa: E731
    assert diff(biased) > 2.0 > abs(diff(unbiased))
    assert gold_agreement(biased) < gold_agreement(unbiased)


def test_large_beta_labeller_is_a_coin(completions):
    agree = gold_agreement(label(completions, Labeller(beta=1e6)))
    assert agree == pytest.approx(0.5, abs=0.03)


def test_labelling_is_deterministic_for_a_seed(completions):
    lab = Labeller(label_noise=0.1)
    assert label(completions, lab, seed=3) == label(completions, lab, seed=3)
    assert label(completions, lab, seed=3) != label(completions, lab, seed=4)


def test_identical_completions_are_skipped():
    rows, skipped = make_pairs(["p", "q"], ["the plot was good .", "a"], ["the plot was good . ", "b"],
                               ["base", "base"], Labeller(), seed=0)
    assert skipped == 1 and len(rows) == 1 and rows[0]["prompt"] == "q"


def test_labeller_from_config():
    cfg = ControlledWorldConfig(beta_labeller=2.0, length_bias=0.1, deterministic=True, label_noise=0.05)
    assert labeller_from(cfg) == Labeller(beta=2.0, length_bias=0.1, deterministic=True, label_noise=0.05)
    assert labeller_from(ControlledWorldConfig(labeller="sentiment")).scores == "sentiment"


def test_sentiment_labeller_is_blind_to_grammar(completions):
    """The proxy labeller prefers a positive word list to a well-formed review; the gold labeller never does."""
    salad, review = "great superb lovely wonderful", "the plot was dull ."
    proxy, gold = Labeller(deterministic=True, scores="sentiment"), Labeller(deterministic=True)
    rng = random.Random(0)
    assert proxy.label(salad, review, rng)[0] == salad
    assert gold.label(salad, review, rng)[0] == review
    rows = label(completions, proxy)
    assert all(r["label_score_chosen"] == sentiment_reward(r["chosen"]) for r in rows[:200])
    # on well-formed reviews the two agree often, not always (negation halves in the gold reward)
    assert 0.7 < gold_agreement(rows) < 1.0


# ------------------------------------------------------------------------------------------- the built world

TINY = ControlledWorldConfig(corpus_sentences=600, n_layer=1, n_embd=32, n_head=2, pairs=120, heldout_pairs=20,
                             heldout_prompts=30)
COLUMNS = {"prompt", "chosen", "rejected", "score_chosen", "score_rejected", "labeller_prob"}


def build(cfg, cache_dir):
    from bench.worlds.controlled.build import build_world

    return build_world(cfg, cache_dir)


@pytest.fixture(scope="session")
def world_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("world-cache")


@pytest.fixture(scope="session")
def tiny_world(world_cache):
    return build(TINY, world_cache)


def rows(world, split="train") -> list[dict]:
    return world.load_pairs(split).to_list()


def test_world_datasets(tiny_world):
    assert tiny_world.info["cache_hit"] is False
    for split, n in (("train", TINY.pairs), ("heldout", TINY.heldout_pairs)):
        ds = tiny_world.load_pairs(split)
        assert COLUMNS <= set(ds.column_names)
        assert 0 < len(ds) <= n and len(ds) >= 0.9 * n  # identical completions are skipped, rarely
        for r in ds.to_list():
            assert r["prompt"] and r["chosen"] != r["rejected"]
            assert r["score_chosen"] == pytest.approx(gold_reward(r["chosen"], r["prompt"]))
            assert r["score_rejected"] == pytest.approx(gold_reward(r["rejected"], r["prompt"]))
            assert 0.0 < r["labeller_prob"] < 1.0
            assert EOS not in r["chosen"] and EOS not in r["rejected"]
    assert len(tiny_world.eval_prompts) == TINY.heldout_prompts
    assert tiny_world.record_path.is_file()
    assert tiny_world.info["pairs"]["train"]["pairs"] == len(tiny_world.load_pairs("train"))


def test_world_second_build_is_a_cache_hit(tiny_world, world_cache):
    start = time.perf_counter()
    again = build(TINY, world_cache)
    elapsed = time.perf_counter() - start
    assert again.info["cache_hit"] is True
    assert elapsed < 1.0
    assert again.root == tiny_world.root and again.key == tiny_world.key
    assert again.eval_prompts == tiny_world.eval_prompts
    assert rows(again) == rows(tiny_world)
    assert not list(world_cache.glob("worlds/*.building"))


def test_world_is_deterministic(tiny_world, tmp_path):
    other = build(TINY, tmp_path)
    assert other.info["cache_hit"] is False
    assert other.key == tiny_world.key
    assert rows(other) == rows(tiny_world)
    assert rows(other, "heldout") == rows(tiny_world, "heldout")
    assert other.eval_prompts == tiny_world.eval_prompts


def test_world_seed_changes_pairs(tiny_world, world_cache):
    other = build(replace(TINY, seed=1), world_cache)
    assert other.key != tiny_world.key and other.root != tiny_world.root
    assert [r["prompt"] for r in rows(other)] != [r["prompt"] for r in rows(tiny_world)]


def test_eval_prompts_are_held_out(tiny_world):
    train_prompts = {r["prompt"] for r in rows(tiny_world)}
    heldout_prompts = {r["prompt"] for r in rows(tiny_world, "heldout")}
    assert not train_prompts & set(tiny_world.eval_prompts)
    assert not train_prompts & heldout_prompts


def test_world_models_load_with_transformers(tiny_world):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_world.tokenizer_dir))
    for path in (tiny_world.base_model_dir, tiny_world.root / "weak"):
        model = AutoModelForCausalLM.from_pretrained(str(path))
        assert model.config.vocab_size == len(tok)
        assert model.config.eos_token_id == tok.eos_token_id and model.config.pad_token_id == tok.pad_token_id
        assert model.config.n_layer == TINY.n_layer and model.config.n_embd == TINY.n_embd
        ids = tok(tiny_world.eval_prompts[0], return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=ids).logits
        assert logits.shape == (1, ids.shape[1], len(tok)) and torch.isfinite(logits).all()
        assert AutoTokenizer.from_pretrained(str(path)).eos_token_id == tok.eos_token_id
    base = AutoModelForCausalLM.from_pretrained(str(tiny_world.base_model_dir)).state_dict()
    weak = AutoModelForCausalLM.from_pretrained(str(tiny_world.root / "weak")).state_dict()
    assert any(not torch.equal(base[k], weak[k]) for k in base)


def test_world_info_record(tiny_world):
    info = tiny_world.info
    assert info["kind"] == "controlled" and info["key"] == tiny_world.key
    assert info["pretrain"]["parameters"] > 0 and info["pretrain"]["heldout_perplexity"] > 1
    assert info["pairs"]["train"]["flip_rate"] == 0.0
    assert {"gold_reward_mean", "gold_reward_std"} <= set(info["base_samples"])


def test_pair_source_weak(world_cache):
    world = build(replace(TINY, pair_source="weak"), world_cache)
    for split in ("train", "heldout"):
        assert {r["source"] for r in rows(world, split)} == {"weak"}


def test_pair_source_mix(world_cache, tiny_world):
    assert {r["source"] for r in rows(tiny_world)} == {"base"}
    world = build(replace(TINY, pair_source="mix", mix_fraction=0.25), world_cache)
    sources = [r["source"] for r in rows(world)]
    assert set(sources) == {"base", "weak"}
    assert sources.count("weak") / len(sources) == pytest.approx(0.25, abs=0.05)


def test_label_noise_in_world(world_cache):
    world = build(replace(TINY, label_noise=0.5, deterministic=True), world_cache)
    r = rows(world)
    rate = sum(x["flipped"] for x in r) / len(r)
    assert 0.3 < rate < 0.7
    assert world.info["pairs"]["train"]["flip_rate"] == pytest.approx(rate)
