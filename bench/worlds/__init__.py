"""World registry: a world supplies the base/reference policy, the preference pairs and the judge.

`WORLDS[kind]` maps the `[world].kind` of a suite to its config dataclass (torch-free, validated by the suite)
and a lazy "module:function" builder `build(config, cache_dir) -> World`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from bench.worlds.controlled.config import ControlledWorldConfig
from bench.worlds.hub.config import HubWorldConfig


@dataclass(frozen=True)
class WorldKind:
    config: type
    builder: str  # "module:function"
    summary: str
    keyer: str | None = None  # "module:function" giving the world's cache key from its config alone, if that is cheap

    def key(self, config: Any) -> str | None:
        """The key a build of `config` would have, without building (None where it needs the build: a hub world
        pins its model and data revisions while resolving them)."""
        if self.keyer is None:
            return None
        module, func = self.keyer.split(":")
        return getattr(importlib.import_module(module), func)(config)

    def build(self, config: Any, cache_dir: Any, **kwargs: Any) -> Any:
        module, func = self.builder.split(":")
        return getattr(importlib.import_module(module), func)(config, cache_dir, **kwargs)


WORLDS: dict[str, WorldKind] = {
    "controlled": WorldKind(ControlledWorldConfig, "bench.worlds.controlled.build:build_world",
                            "synthetic review language, gold sentiment reward, tiny GPT-2 trained from scratch (CPU)",
                             "bench.worlds.controlled.build:world_key"),
    "hub": WorldKind(HubWorldConfig, "bench.worlds.hub.build:build_hub_world",
                     "Hugging Face policy + preference data set (e.g. UltraFeedback) + reward-model judge"),
}
