"""Preference rows of any common layout → TRL's standard preference format, validated row by row.

Accepted layouts (TRL's dataset formats, https://huggingface.co/docs/trl/dataset_formats):
- standard: `prompt`, `chosen`, `rejected` strings;
- conversational, explicit prompt: `prompt` a list of {role, content} messages, `chosen` / `rejected` one
  assistant message each (e.g. trl-lib/ultrafeedback_binarized);
- conversational, implicit prompt: `chosen` / `rejected` whole conversations that share every turn but the last
  assistant one (a `prompt` string beside them is ignored), as in HuggingFaceH4/ultrafeedback_binarized. The
  prompt is the shared prefix, as TRL's `maybe_extract_prompt` / `extract_prompt` take it.

Output (what every trainer and metric of the harness reads): `prompt` = the prompt conversation rendered with
the policy tokenizer's chat template and its generation prompt by TRL's own `apply_chat_template` (plain-text
prompts stay text unless `chat_template = "always"`); `chosen` / `rejected` = the final assistant message text.
No end token is added: TRL appends `eos_token` to standard-format completions, and the harness's log-prob and
sampling code treat the end token the same way. `check_template` verifies on a sample that this equals TRL's
conversational rendering (completion text followed by the end token).

Rows that cannot be used are counted by reason (`MALFORMED`) and never trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MALFORMED = {
    "missing_prompt": "no prompt (no `prompt` field and no shared conversation before the last turn)",
    "missing_chosen": "no `chosen` field",
    "missing_rejected": "no `rejected` field",
    "wrong_type": "a field has the wrong type (text expected, or a list of {role, content} messages)",
    "prompt_mismatch": "`chosen` and `rejected` conversations differ before their last turn",
    "completion_not_one_turn": "with a conversational `prompt`, `chosen` / `rejected` must be one assistant message",
    "last_turn_not_assistant": "the last message of `chosen` or `rejected` is not an assistant message",
    "prompt_not_ending_with_user_turn": "the prompt conversation does not end with a user (or tool) message",
    "empty_prompt": "the prompt is empty",
    "empty_completion": "`chosen` or `rejected` is empty",
    "identical_completions": "`chosen` == `rejected`",
    "template_error": "the chat template failed on this conversation",
}
FILTERED = {
    "prompt_too_long": "prompt longer than max_prompt_tokens",
    "completion_too_long": "chosen or rejected (+ end token) longer than max_completion_tokens",
    "prompt_in_train": "held-out row whose prompt is also a training prompt",
}


@dataclass
class Example:
    messages: list[dict[str, str]] | None   # the prompt conversation (None for a plain-text prompt)
    text: str | None                         # the plain-text prompt (None for a conversation)
    chosen: str
    rejected: str
    score_chosen: float
    score_rejected: float

    @property
    def conversational(self) -> bool:
        return self.messages is not None

    def judge_messages(self) -> list[dict[str, str]]:
        """The prompt as a conversation (a plain-text prompt is one user turn), for chat-template judges."""
        return self.messages if self.messages is not None else [{"role": "user", "content": self.text or ""}]


def _messages(value: Any) -> list[dict[str, str]] | None:
    """A clean list of {role, content} messages, or None when `value` is not one (extra keys are dropped)."""
    if not isinstance(value, list) or not value:
        return None
    out = []
    for m in value:
        if not isinstance(m, dict):
            return None
        role, content = m.get("role"), m.get("content")
        if not isinstance(role, str) or not isinstance(content, str):
            return None
        out.append({"role": role, "content": content})
    return out


def _score(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return float("nan")
    return float(value)


def is_conversational_row(row: dict[str, Any]) -> bool:
    return any(isinstance(row.get(k), list) for k in ("prompt", "chosen", "rejected"))


def parse_row(row: dict[str, Any]) -> tuple[Example | None, str | None]:
    """(Example, None) for a usable row, else (None, reason) with reason a key of MALFORMED."""
    prompt, chosen, rejected = row.get("prompt"), row.get("chosen"), row.get("rejected")
    if chosen is None:
        return None, "missing_chosen"
    if rejected is None:
        return None, "missing_rejected"
    if isinstance(chosen, list) or isinstance(rejected, list):
        cm, rm = _messages(chosen), _messages(rejected)
        if cm is None or rm is None:
            return None, "wrong_type"
        if isinstance(prompt, list):  # explicit conversational prompt (TRL's format)
            pm = _messages(prompt)
            if pm is None:
                return None, "wrong_type"
            if len(cm) != 1 or len(rm) != 1:
                return None, "completion_not_one_turn"
        else:  # implicit prompt: the shared turns before the last one (TRL's extract_prompt)
            if prompt is not None and not isinstance(prompt, str):
                return None, "wrong_type"
            if len(cm) < 2 or len(rm) < 2:
                return None, "missing_prompt"
            pm = cm[:-1]
            if rm[:-1] != pm:
                return None, "prompt_mismatch"
        if cm[-1]["role"] != "assistant" or rm[-1]["role"] != "assistant":
            return None, "last_turn_not_assistant"
        if pm[-1]["role"] not in ("user", "tool"):
            return None, "prompt_not_ending_with_user_turn"
        if not pm[-1]["content"].strip():
            return None, "empty_prompt"
        messages, text, c, r = pm, None, cm[-1]["content"], rm[-1]["content"]
    else:
        if prompt is None:
            return None, "missing_prompt"
        if not all(isinstance(x, str) for x in (prompt, chosen, rejected)):
            return None, "wrong_type"
        if not prompt.strip():
            return None, "empty_prompt"
        messages, text, c, r = None, prompt, chosen, rejected
    if not c.strip() or not r.strip():
        return None, "empty_completion"
    if c.strip() == r.strip():
        return None, "identical_completions"
    return Example(messages, text, c, r, _score(row.get("score_chosen")), _score(row.get("score_rejected"))), None


def render_prompt(ex: Example, tokenizer, mode: str) -> str:
    """The prompt text the policy sees: TRL's `apply_chat_template` on the prompt conversation (generation prompt
    added after a user turn), or the plain text (chat_template = "auto" and a plain-text row)."""
    if ex.messages is None and mode != "always":
        return ex.text or ""
    from trl.data_utils import apply_chat_template

    return apply_chat_template({"prompt": ex.judge_messages()}, tokenizer)["prompt"]


def check_template(ex: Example, tokenizer, mode: str) -> str | None:
    """None when TRL's conversational rendering of this pair equals (rendered prompt, completion + end token),
    i.e. when storing the plain completion text and letting TRL append `eos_token` trains on the chat format
    the model expects; else a short description of the difference."""
    if ex.messages is None and mode != "always":
        return None
    from trl.data_utils import apply_chat_template

    out = apply_chat_template({"prompt": ex.judge_messages(), "chosen": [{"role": "assistant", "content": ex.chosen}],
                               "rejected": [{"role": "assistant", "content": ex.rejected}]}, tokenizer)
    if out["prompt"] != render_prompt(ex, tokenizer, mode):
        return "prompt+completion does not start with the prompt rendered with its generation prompt"
    suffix = out["chosen"]
    if not suffix.startswith(ex.chosen):
        return "the template rewrites the completion text (e.g. strips whitespace)"
    end = suffix[len(ex.chosen):].strip()
    if end != (tokenizer.eos_token or ""):
        return f"the template ends an assistant turn with {end!r}, not with eos_token {tokenizer.eos_token!r}"
    return None
