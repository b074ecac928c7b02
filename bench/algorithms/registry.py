"""The algorithm registry (lm-eval style): `@register("dpo")` on an `Algorithm` subclass.

An algorithm declares
- `Params`: a frozen dataclass of its hyper-parameters, named as in TRL (`beta`, `simpo_gamma`, `kl_coef`, ...),
  extending `TrainParams` when it trains; the suite validates `[algorithms.<name>]` against it;
- `version`: bump it when the adapter changes what it computes; it is part of every run id, so results made
  by an older adapter are not silently reused;
- `train(ctx)`: trains (or not, for `sft` / `best_of_n`) and returns the policy to evaluate.
Modules listed in `ALGORITHM_MODULES` are imported on first use of the registry; adding a built-in algorithm is
a new module (or a few lines in an existing family) plus one line there.

Algorithms from outside the package (docs/plugins.md): an installed distribution that declares an entry point
in the group `daa_bench.algorithms` (`name = "my_pkg.my_loss"`, a module, or `"my_pkg.my_loss:MyLoss"`) is
imported on first use too, and a suite's `[suite].plugins = ["my_pkg.my_loss"]` imports modules before the suite
is validated. Either way the module's `@register` calls add its algorithms; `origin(name)` says where each came
from ("built-in", "entry point <dist>", "suite module <module>"), and `bench list` shows it.
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.errors import UserError, did_you_mean

ALGORITHM_MODULES = (
    "bench.algorithms.references",   # sft, best_of_n (training-free)
    "bench.algorithms.dpo_family",   # dpo, ipo, cdpo, rdpo, slic, apo_zero
    "bench.algorithms.simpo",        # simpo (CPOTrainer)
    "bench.algorithms.orpo",         # orpo
    "bench.algorithms.ppo_rlhf",     # ppo (our own RLHF PPO over the shared reward model)
    "bench.algorithms.online_dpo",   # online_dpo
    "bench.algorithms.dpo_variants", # rpo, bco, tr_dpo, odpo, cal_dpo, rebel
    "bench.algorithms.kto",          # kto (unpaired)
    "bench.algorithms.rl_no_critic", # rloo, grpo (policy gradient without a value model)
    "bench.algorithms.one_judge",    # dpo_rm, online_dpo_annotator (one judge for offline and online: issue 28)
    "bench.algorithms.fake",         # fake (torch-free, for instant end-to-end tests)
)

ENTRY_POINT_GROUP = "daa_bench.algorithms"

_REGISTRY: dict[str, type[Algorithm]] = {}
_ORIGIN: dict[str, str] = {}
_loading_origin = "built-in"
_loaded = False


@dataclass(frozen=True)
class NoParams:
    """Hyper-parameters of a training-free algorithm."""


@dataclass(frozen=True)
class TrainParams:
    """Optimisation settings every trained algorithm shares (TRL / transformers field names).

    Defaults suit the controlled world's ~1M-parameter model; TRL's own defaults (1e-6-class learning rates)
    are for billion-parameter models. Real suites set these in `[train]`.
    """

    learning_rate: float = field(default=1e-3, metadata={"gt": 0, "doc": "peak learning rate"})
    per_device_train_batch_size: int = field(default=32, metadata={"min": 1})
    gradient_accumulation_steps: int = field(default=1, metadata={"min": 1})
    lr_scheduler_type: str = field(default="constant_with_warmup",
                                   metadata={"choices": ("constant", "constant_with_warmup", "linear", "cosine")})
    warmup_ratio: float = field(default=0.05, metadata={"min": 0, "max": 1})
    max_grad_norm: float = field(default=1.0, metadata={"gt": 0})
    weight_decay: float = field(default=0.0, metadata={"min": 0})


class Algorithm:
    """Base class of every registered algorithm; see the module docstring for the contract."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""                # citation shown by `bench list`
    family: ClassVar[str] = ""               # dpo | reference-free | unpaired | online | online-rl | rlhf | reference
    hidden: ClassVar[bool] = False           # test-only stand-ins: `bench list --all` shows them
    Params: ClassVar[type] = NoParams
    trains: ClassVar[bool] = True            # False: training-free reference (sft, best_of_n)
    uses_reference: ClassVar[bool] = True    # needs π_ref during training (DPO family, PPO, Online DPO)
    uses_reward_model: ClassVar[bool] = False  # needs the shared Bradley–Terry reward model (PPO, Online DPO)
    needs_torch: ClassVar[bool] = True       # False: trains on the string device "cpu", no world, no CUDA peak
    supports_peft: ClassVar[bool] = False    # trains a LoRA adapter when the suite sets [train] peft
    trl_config: ClassVar[str] = ""           # "module:Class" of the TRL config its trainer takes: the fields a
                                             # suite may pass through in [algorithms.<label>.trl] (trl_passthrough)

    def train(self, ctx: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def margin_target(cls, params: dict[str, Any]) -> float | None:
        """The implicit-reward margin (chosen − rejected, in `implicit_reward` units) at which the loss is
        minimised on a pair, when the loss has a finite optimum (IPO, cDPO); None otherwise (DPO: +inf)."""
        return None

    @classmethod
    def param_fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls.Params)}


def register(name: str):
    """Class decorator: `@register("dpo") class DPO(Algorithm): ...`."""

    def wrap(cls: type[Algorithm]) -> type[Algorithm]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            if _REGISTRY[name].__qualname__ == cls.__qualname__ and _REGISTRY[name].__module__ == cls.__module__:
                _REGISTRY[name] = cls  # the same module imported again (a plug-in reloaded): keep the newest
                return cls
            raise UserError(f"algorithm {name!r} is registered twice: by {_ORIGIN.get(name, 'built-in')} "
                            f"({_REGISTRY[name].__module__}) and by {cls.__module__}; rename one of them")
        cls.name = name
        _REGISTRY[name] = cls
        _ORIGIN.setdefault(name, _loading_origin)
        return cls

    return wrap


def _load() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in ALGORITHM_MODULES:
            importlib.import_module(module)
        _load_entry_points(ENTRY_POINT_GROUP)


def _load_entry_points(group: str) -> None:
    """Import every `daa_bench.algorithms` entry point; their @register calls record their origin. A plug-in
    that fails (or calls sys.exit) while imported is one error line naming it, never bench's own exit."""
    from bench.entry_points import dist_name, entry_points, why

    for ep in entry_points(group):
        module = ep.value.split(":")[0].strip()
        try:
            import_as(module, f"entry point {ep.name} ({dist_name(ep)})")
            if ":" in ep.value:
                ep.load()  # "module:Class": the attribute must exist
        except UserError:
            raise
        except (Exception, SystemExit) as exc:
            raise UserError(f"entry point {ep.name!r} = {ep.value!r} in group {group} ({dist_name(ep)}) failed "
                            f"to import: {why(exc)}; fix or uninstall that package") from None


def import_as(module: str, origin: str) -> None:
    """Import a plug-in module, recording `origin` for the algorithms it registers (see bench/plugins.py)."""
    global _loading_origin
    _load()
    before, _loading_origin = _loading_origin, origin
    try:
        importlib.import_module(module)
    finally:
        _loading_origin = before


def origin(name: str) -> str:
    _load()
    return _ORIGIN.get(name, "built-in")


def all_algorithms() -> dict[str, type[Algorithm]]:
    _load()
    return dict(sorted(_REGISTRY.items()))


def get_algorithm(name: str) -> type[Algorithm]:
    _load()
    if name not in _REGISTRY:
        from bench.algorithms.removed import removed_reason

        if removed_reason(name):
            raise UserError(f"algorithm {name!r} is no longer available: {removed_reason(name)}")
        raise UserError(f"unknown algorithm {name!r}; {did_you_mean(name, _REGISTRY)}")
    return _REGISTRY[name]


def describe(names) -> dict[str, dict[str, Any]]:
    """What the report needs to know of each algorithm, as data: the runner writes it into suite.json
    ("algorithms"), so the report reads an algorithm's declarations without importing algorithms/ (DESIGN: the
    report is a pure function of the results). Names that are not registered are left out."""
    out = {}
    for name in names:
        try:
            cls = get_algorithm(name)
        except UserError:
            continue
        out[name] = {"family": cls.family, "trains": cls.trains, "uses_reference": cls.uses_reference,
                     "uses_reward_model": cls.uses_reward_model, "summary": cls.summary}
    return out
