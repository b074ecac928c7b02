"""Algorithms the harness once ran through a TRL trainer that TRL has since deleted, with the reason and the last
TRL release that had it. `get_algorithm` answers a suite naming one with this one line (exit 2 at validation,
before any stage runs), never with a silent "unknown algorithm" or a run that fails after the reward model.

Kept as refusals rather than reimplemented (issue 26): PPO is ours (`ppo`); XPO is not a baseline of the
chapter and its nearest kin, `online_dpo`, stays; Nash-MD never ran on this stack; the BCOTrainer's paired loss
is `bco` (DPOTrainer `bco_pair`), only its unpaired, reward-shifted variant went with the trainer.
"""

from __future__ import annotations

REMOVED = {
    "ppo_trl": "TRL's PPOTrainer (trl.experimental.ppo) was removed in trl 1.13 (the last with it: trl 1.12); use "
               "`ppo`, our own RLHF PPO (tests/data/ppo_parity.json keeps TRL 1.12's readings for comparison)",
    "xpo": "TRL's XPOTrainer (trl.experimental.xpo) was removed in trl 1.14 (the last with it: trl 1.13); use "
           "`online_dpo`, or run daa-bench at a commit that pinned trl<1.14",
    "nash_md": "TRL's NashMDTrainer (trl.experimental.nash_md) was removed in trl 1.14 (the last with it: trl 1.13) "
               "and never ran on this stack; use `online_dpo`",
}


def removed_reason(name: str) -> str | None:
    """Why `name` is no longer an algorithm (one line), or None when it never was one."""
    return REMOVED.get(name)
