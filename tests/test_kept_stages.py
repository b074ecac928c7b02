"""π_ref's per-world products are computed once per world and read back exactly (bench.stages.SharedStages.kept,
issue 24): the value read from disk equals the built one bit for bit, a second process (stages object) does not
build again, and the key carries the kernels and thread count that move the last bits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

import bench.modeling
from bench.stages import SharedStages


def _stages(root: Path) -> SharedStages:
    stages = SharedStages(SimpleNamespace(world=None), root, device="cpu")
    stages._world = SimpleNamespace(key="w-1", root=root)
    return stages


def test_kept_values_read_back_exactly_and_are_built_once_per_key(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    value = {"prompt": ["a", "b"], "ref_logp": rng.normal(size=2) * 1e3 / 7, "len": np.array([3, 4]), "n": 0.1 + 0.2}
    calls = []

    def build():
        calls.append(1)
        return value

    first = _stages(tmp_path).kept("control_set", {"n": 2}, build)
    again = _stages(tmp_path).kept("control_set", {"n": 2}, build)
    assert len(calls) == 1, "a second process reads the kept value"
    assert again["prompt"] == value["prompt"] and again["n"] == value["n"]
    for k in ("ref_logp", "len"):
        assert again[k].dtype == value[k].dtype and np.array_equal(again[k], value[k])
    assert first is value
    _stages(tmp_path).kept("control_set", {"n": 3}, build)
    assert len(calls) == 2, "another key, another value"
    monkeypatch.setattr(bench.modeling, "KERNELS", {"gelu_new": "something else"})
    _stages(tmp_path).kept("control_set", {"n": 2}, build)
    assert len(calls) == 3, "values computed with other kernels are not read"
