"""The Hub world (kind = "hub"): a Hugging Face policy, a preference data set and a reward-model judge.

    config.py   `HubWorldConfig`: the `[world]` settings (torch-free; the suite validates them)
    sources.py  where the model, the judge and the data set come from (local path or Hugging Face cache/Hub),
                the revisions actually used, and one-line `UserError`s when something is not available
    pairs.py    row validation and conversion to TRL's preference format (chat templates applied the TRL way)
    build.py    `build_hub_world(cfg, cache_dir)`: pairs and eval prompts on disk, cached by content hash
    judge.py    `HubJudge`: the reward model that defines win rate and reward in this world

Only `config` is imported here, so registering the world kind costs no torch / transformers import.
"""

from bench.worlds.hub.config import HubWorldConfig

__all__ = ["HubWorldConfig"]
