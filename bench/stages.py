"""Shared stages, built once per suite invocation and cached on disk by content hash across suites.

- `world()`: the world (base policy = π_ref, pairs, eval prompts); `bench.worlds`.
- `reward_model(settings)`: the Bradley–Terry reward model trained on the *same* training pairs, used by `ppo`
  and `online_dpo` (both optimise against it, so the comparison isolates online data from RL machinery). It is
  cached per (world, settings); its recorded training FLOPs are charged to *every* run that uses it.
- `base_logps(split)`: π_ref's log-probs of the fixed curve pairs (step 0 of every drift curve).
- `limits()`: best-of-n frontier and KL-optimal limit for the world's gold reward (evaluation).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.io import write_json_atomic
from bench.progress import report


class SharedStages:
    def __init__(self, suite, cache_dir: Path, *, device: str = "auto", progress=None, world_config=None):
        self.suite = suite
        self.world_config = suite.world if world_config is None else world_config  # one world of the suite
        self.cache_dir = Path(cache_dir)
        self.progress = progress
        self._device_pref = device
        self._world = None
        self._memo: dict[Any, Any] = {}
        self.seconds: dict[str, float] = {}

    @property
    def device(self):
        from bench.modeling import pick_device

        return pick_device(self._device_pref)

    def world(self):
        if self._world is None:
            from bench.padding_trim import full_width
            from bench.worlds import WORLDS

            t = time.perf_counter()
            kind = WORLDS[self.world_config.kind]
            with full_width():  # a cached world is keyed without the batching (bench.padding_trim)
                self._world = kind.build(self.world_config, self.cache_dir, progress=self.progress)
            self.seconds["world"] = time.perf_counter() - t
        return self._world

    def world_key(self) -> str:
        return self.world().key

    def _timed(self, name: str, key: Any, build):
        if key not in self._memo:
            t = time.perf_counter()
            self._memo[key] = build()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
        return self._memo[key]

    def kept(self, name: str, key: dict[str, Any], build):
        """`build()` once per world on disk (JSON beside the world, like the reference draws), once per process in
        memory. For π_ref's deterministic products every run needs (curve pairs' log-probs, the control set): since
        each run has its own process they were recomputed per run. The key carries the world, torch's thread
        count, the device and bench.modeling.KERNELS, which all move the last bits, so a cached value is exactly
        what this process would compute (a first version without KERNELS read π_ref log-probs computed with
        transformers' gelu_new and gave sft Δ log π of 2e-8 instead of 0, and pref_accuracy 0.52 instead of 0.5). Values: dicts of str lists, numbers and numpy arrays (float64 round-trips JSON
        exactly). A cache folder that cannot be written is only read."""
        from bench.hashing import stable_hash
        from bench.padding_trim import batching

        mode = batching()  # trimmed or full width: part of both the file's key and the in-process memo's

        def load_or_build():
            import numpy as np
            import torch

            from bench import distributed as dist
            from bench.io import read_json
            from bench.modeling import KERNELS

            world = self.world()
            digest = stable_hash({"format": 1, "name": name, "world": world.key, **key, "kernels": KERNELS,
                                  **({"batching": mode} if mode else {}),
                                  "threads": torch.get_num_threads(), "device": str(self.device)})[:12]
            path = Path(world.root) / f"{name}-{digest}.json"
            try:
                stored = read_json(path)
                return {k: np.asarray(v["array"], dtype=v["dtype"]) if isinstance(v, dict) and "array" in v else v
                        for k, v in stored.items()}
            except (OSError, ValueError, TypeError, KeyError):
                pass
            value = build()
            if dist.is_main():
                record = {k: {"array": v.tolist(), "dtype": str(v.dtype)} if isinstance(v, np.ndarray) else v
                          for k, v in value.items()}
                try:
                    write_json_atomic(path, record)
                except OSError:  # a read-only (shared, pre-built) cache: computed here, not kept
                    pass
            return value

        return self._timed(name, (name, stable_hash(key), mode), load_or_build)

    def reward_model(self, settings: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
        """(directory of the trained reward model, its record: flops, tokens, accuracy, seconds)."""
        from bench.hashing import stable_hash

        world = self.world()
        key = stable_hash({"world": world.key, "reward_model": settings})[:12]
        root = world.root / f"reward_model-{key}"

        def build():
            from bench import distributed as dist
            from bench.cache import load_or_build, verify

            def train(out: Path) -> dict:
                from bench.algorithms.reward_model import train_reward_model
                from bench.padding_trim import full_width

                # every rank trains (TRL shards the pairs); rank 0 saves the model
                report(self.progress, "stage: reward model", 0, 1)
                with full_width():  # keyed without the batching (bench.padding_trim): computed as before
                    record = train_reward_model(world, settings, out / "model", device=self.device,
                                                world_config=self.world_config,
                                                max_length=world.info.get("max_length", 128))
                report(self.progress, "stage: reward model", 1, 1)
                return record

            if dist.world_size() == 1:  # under the stage lock, into a temporary folder, manifest verified on load
                record, _ = load_or_build(root, train, marker="record.json", what="reward model")
                record.pop("manifest", None)
                return root / "model", record
            record, _why = verify(root, "record.json")  # multi-process: every rank trains, rank 0 writes
            if record is None:
                record = train(root)
                if dist.is_main():
                    from bench.cache import manifest

                    write_json_atomic(root / "record.json", {**record, "manifest": manifest(root, ("record.json",))})
                dist.barrier()
            record.pop("manifest", None)
            return root / "model", record

        return self._timed("reward_model", ("rm", key), build)

    def curve_pairs(self, split: str, n: int) -> dict[str, list]:
        """The fixed pairs whose log-probs are tracked during training (first n of the split)."""
        def build():
            ds = self.world().load_pairs(split)
            ds = ds.select(range(min(n, len(ds))))
            return {k: list(ds[k]) for k in ("prompt", "chosen", "rejected", "score_chosen", "score_rejected")}

        return self._timed("curve_pairs", ("pairs", split, n), build)

    def base_logps(self, split: str, n: int) -> dict[str, Any]:
        """π_ref's summed log-probs and token counts of the curve pairs: step 0 of every run's drift curve."""
        def build():
            from bench.evaluation.policy_metrics import pair_logps
            from bench.evaluation.reference import reference_model
            from bench.modeling import load_tokenizer

            tok = load_tokenizer(self.world().tokenizer_dir)
            return pair_logps(reference_model(self), tok, self.curve_pairs(split, n))  # the cached π_ref

        return self.kept("base_logps", {"split": split, "n": n}, build)

    def limits(self, reach_kl: float = 0.0) -> dict[str, Any]:
        """The world's limits; `reach_kl` > 0 raises the π_ref samples per prompt until best-of-m covers it."""
        from bench.evaluation.limits import limit_shape, world_limits

        shape = limit_shape(self.suite.eval, reach_kl)
        key = "limits" if shape == limit_shape(self.suite.eval) else ("limits", *shape)
        return self._timed("limits", key, lambda: world_limits(self, self.suite.eval, reach_kl))
