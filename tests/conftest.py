"""Shared test set-up: an algorithm registry that works while adapter modules are still being written.

`bench.algorithms.registry.ALGORITHM_MODULES` may name modules that do not exist yet (or do not import); they are
dropped here (and named in pytest's header) so suite validation can be tested. A test-only algorithm `toy`
(TrainParams + `beta` + `loss_type`) is registered so suite tests do not depend on any real adapter's fields.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

from bench.algorithms import registry
from bench.algorithms.registry import Algorithm, TrainParams, register

_SKIPPED: dict[str, str] = {}
# writes stay atomic, but skip the fsyncs (7 ms each on these disks; durability is not what tests check)
os.environ.setdefault("BENCH_FSYNC", "0")


def _importable(modules: tuple[str, ...]) -> tuple[str, ...]:
    kept = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # missing or broken adapter: not what these tests are about
            _SKIPPED[name] = f"{type(exc).__name__}: {exc}"
        else:
            kept.append(name)
    return tuple(kept)


registry.ALGORITHM_MODULES = _importable(tuple(registry.ALGORITHM_MODULES))


@dataclass(frozen=True)
class ToyParams(TrainParams):
    beta: float = field(default=0.1, metadata={"gt": 0})
    loss_type: str = field(default="sigmoid", metadata={"choices": ("sigmoid", "ipo")})


if "toy" not in registry._REGISTRY:
    @register("toy")
    class Toy(Algorithm):
        """Test-only algorithm: validation and expansion only; it never trains."""

        summary = "test-only algorithm (tests/conftest.py)"
        Params = ToyParams
        needs_torch = False

        def train(self, ctx):  # pragma: no cover
            raise NotImplementedError("the test-only 'toy' algorithm does not train")


def pytest_report_header(config):
    if _SKIPPED:
        return ["algorithm modules skipped (do not import): "
                + "; ".join(f"{k} ({v})" for k, v in _SKIPPED.items())]
    return None
