"""bench.modeling.text_ids: the evaluation's remembered tokenisation reads back exactly what the tokenizer gives."""

from __future__ import annotations

import bench.modeling as modeling
from bench.worlds.controlled.tokenizer import build_tokenizer

PROMPTS = ["the acting looked", "a film", "the plot was great and the score", "this movie"] * 5


def test_remembered_token_ids_are_the_tokenizers_own():
    """bench.modeling.text_ids reads back what the tokenizer gives (the evaluation tokenises the same texts at
    every curve point), per tokenizer object, and hands out copies that a caller may extend."""
    tok = build_tokenizer()
    for text in PROMPTS + ["", "great while <pad>"]:
        first = modeling.text_ids(tok, text)
        assert first == tok(text, add_special_tokens=False)["input_ids"]
        first.append(-1)  # a caller's list, not the memo's
        assert modeling.text_ids(tok, text) == tok(text, add_special_tokens=False)["input_ids"]
    other = build_tokenizer()
    assert modeling.text_ids(other, PROMPTS[0]) == modeling.text_ids(tok, PROMPTS[0])
    assert modeling._IDS_MEMO[other] is not modeling._IDS_MEMO[tok]


def test_the_memo_is_bounded_by_the_ids_it_holds(monkeypatch):
    tok = build_tokenizer()
    monkeypatch.setattr(modeling, "_IDS_MEMO_MAX", 12)
    for text in PROMPTS * 3:
        assert modeling.text_ids(tok, text) == tok(text, add_special_tokens=False)["input_ids"]
        assert modeling._IDS_MEMO[tok].held <= 12
