"""Training-free scripted policies built from the controlled world's grammar: the scale of a trained policy's win.

A rule writes the shortest completion that makes prompt + completion a well-formed review (the grammar's own
parser checks every candidate; no reward is consulted):

- `finish_clause`: finish the prompt's clause and stop — a neutral adjective ("long") where an adjective is
  missing, "film" where a noun is, "was" where a verb is ("felt" after a plural noun: gold v5 checks number); a
  prompt whose clause is already complete gets ".";
- `positive_adjective`: finish with one positive adjective ("good") — the same, except that the completion must
  carry that adjective (after a complete clause: one more short clause, joined by "but" when the prompt's clause
  was negative and by "and" otherwise, the conjunctions' sense in the grammar).

In the v3 world the second rule won 0.731 against π_ref where the best trained algorithm won 0.628: a policy
that learns one short rule can beat every algorithm. Shown beside `sft` and `best_of_n` in the default suite.
"""

from __future__ import annotations

from functools import lru_cache

from bench.worlds.controlled.language import EOS, NOT, POLARITY, is_well_formed

RULES = {"finish_clause": "long", "positive_adjective": "good"}
# what a prompt's unfinished clause can lack, shortest first ("A": the rule's adjective, "C": the conjunction)
_TEMPLATES = (
    (), ("A",), ("film",), ("A", "film"), ("was", "A"), ("felt", "A"), ("film", "A"), ("a", "A", "film"), ("film", "was", "A"),
    ("the", "film", "A"), ("C", "a", "A", "film"), ("found", "the", "film", "A"), ("the", "film", "was", "A"),
    ("i", "found", "the", "film", "A"), ("C", "the", "film", "was", "A"), (",", "a", "A", "film"),
    ("film", "C", "a", "A", "film"), (",", "the", "film", "was", "A"),
)


@lru_cache(maxsize=4096)
def scripted_completion(prompt: str, rule: str) -> str:
    """The rule's completion of `prompt` (without the end token), or "." when no template parses."""
    if rule not in RULES:
        raise ValueError(f"unknown scripted rule {rule!r}; one of {', '.join(RULES)}")
    adj = RULES[rule]
    polar = [POLARITY[w] for w in prompt.replace(EOS, " ").split() if POLARITY.get(w)]  # the prompt's stance
    conj = "but" if polar and polar[-1] * (-1 if NOT in prompt.split() else 1) < 0 else "and"
    for template in _TEMPLATES:
        if rule == "positive_adjective" and "A" not in template:
            continue
        text = " ".join([{"A": adj, "C": conj}.get(w, w) for w in template] + ["."])
        if is_well_formed(prompt, text):
            return text
    return "."
