"""The suite's typed configs: [suite], [budget], [eval], [train] run options, an algorithm entry, the validated
`Suite` and one run's `RunSpec` (content-addressed: its hash ends the run id). Frozen dataclasses with their own
value checks; reading a TOML file into them is bench/suite.py, which re-exports every name here.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from bench.errors import did_you_mean, problem
from bench.hashing import stable_hash  # noqa: F401  (re-exported: bench.suite.stable_hash)
from bench.schema import as_dict, read_table

SECTIONS = ("suite", "world", "budget", "eval", "train", "algorithms", "check", "launcher", "replication")
MAX_NAME = 64            # suite names and entry labels name folders; run ids must stay under file-name limits
MAX_RUN_ID = 200
MAX_RUNS = 10_000        # a grid larger than this is almost surely a mistake (and would take days to expand)
SEED_LIMIT = 2**32       # numpy / torch accept seeds in [0, 2^32)
BUDGET_VIEWS = ("end_to_end", "amortised")
# suite-level sweep axes: a list value in one of these fields expands like a hyper-parameter sweep. Their values
# appear in summary.csv under these column names (and in each run's config.json under "axes").
AXES = {"budget_flops": ("budget", "flops"), "budget_view": ("budget", "view"), "world_seed": ("world", "seed"),
        "pair_source": ("world", "pair_source")}
WORLD_AXES = tuple(k for k, (section, _) in AXES.items() if section == "world")  # each value is another world


@dataclass(frozen=True)
class SuiteMeta:
    name: str = field(metadata={"doc": "results go to results/<name>/, the report to report/<name>/"})
    seeds: tuple[int, ...] = field(default=(0,), metadata={"doc": "training seeds: every setting runs once per seed "
                                                             "(intervals over seeds need at least 2)"})
    description: str = field(default="", metadata={"doc": "free text, kept in suite.json"})
    plugins: tuple[str, ...] = field(default=(), metadata={
        "doc": "modules imported before validation (algorithms/worlds outside daa-bench); importing runs their code"})

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name or ""):
            out.append(("name", f"{self.name!r} must be letters, digits, '_', '-', '.' (it names a folder)"))
        elif len(self.name) > MAX_NAME:
            out.append(("name", f"is {len(self.name)} characters long; at most {MAX_NAME} (it names a folder)"))
        bad = [s for s in self.seeds if not 0 <= s < SEED_LIMIT]
        if bad:
            out.append(("seeds", f"{bad[0]} is out of range; seeds must be integers with 0 <= seed < 2**32"))
        if not self.seeds:
            out.append(("seeds", "is empty; give at least one seed, e.g. seeds = [0]"))
        if len(set(self.seeds)) != len(self.seeds):
            out.append(("seeds", f"has duplicates: {list(self.seeds)}"))
        return out


@dataclass(frozen=True)
class BudgetConfig:
    """Equal compute: every run of the suite gets this budget (FLOPs by default; or wall-clock seconds)."""

    flops: float | None = field(default=None, metadata={"gt": 0, "doc": "estimated FLOPs per run: "
                                                                        "2*N*tokens per forward, 4*N*tokens per backward"})
    seconds: float | None = field(default=None, metadata={"gt": 0, "doc": "wall-clock seconds per run"})
    updates: int | None = field(default=None, metadata={"min": 1, "doc": "equal optimizer updates instead of equal "
                                "compute: every trained run takes this many optimizer steps (data and max_epochs "
                                "permitting), whatever its FLOPs (still metered and reported); for claims about "
                                "optimisation rather than cost"})
    max_epochs: int = field(default=20, metadata={"min": 1, "doc": "stop when the data has been seen this often "
                                                                  "(recorded as data_exhausted)"})
    max_steps: int | None = field(default=None, metadata={"min": 1, "doc": "optional cap on optimizer steps "
                                                                            "(benchmarks, smoke tests)"})
    view: str = field(default="end_to_end", metadata={"choices": BUDGET_VIEWS, "doc":
                      "end_to_end: the shared reward model's training is charged to every run that uses it (ppo, "
                      "online_dpo); amortised: it is trained once for all, listed apart (flops_amortised), and the "
                      "budget pays for policy optimisation only. A list sweeps both views"})

    def __post_init__(self):
        if self.updates is not None and self.max_steps is None:  # an update budget is the step cap every trainer
            object.__setattr__(self, "max_steps", self.updates)  # already honours (stop_reason "max_steps")

    def problems(self) -> list[tuple[str, str]]:
        if sum(x is not None for x in (self.flops, self.seconds, self.updates)) != 1:
            return [("", "set exactly one of `flops`, `seconds` or `updates`")]
        if self.updates is not None and self.max_steps != self.updates:
            return [("max_steps", "an `updates` budget is the step cap; remove max_steps")]
        if self.view not in BUDGET_VIEWS:
            return [("view", f"unknown budget view {self.view!r}; use one of {list(BUDGET_VIEWS)}")]
        if self.view == "amortised" and self.seconds is not None:
            return [("view", "the amortised view needs a FLOP budget (a seconds budget times the reward model's "
                             "training with the run); set `flops` or use view = \"end_to_end\"")]
        return []

    @property
    def amortised_components(self) -> frozenset[str]:
        """Meter components booked outside the budget under this view."""
        return frozenset({"reward_model_training"}) if self.view == "amortised" else frozenset()

    @property
    def kind(self) -> str:
        return "flops" if self.flops is not None else "updates" if self.updates is not None else "seconds"

    @property
    def amount(self) -> float:
        return float(self.flops if self.flops is not None else self.updates if self.updates is not None
                     else self.seconds)

    @property
    def meter(self) -> tuple[str, float]:
        """(kind, amount) for the compute meter: an update budget meters FLOPs with no FLOP cap."""
        return ("flops", float("inf")) if self.kind == "updates" else (self.kind, self.amount)


@dataclass(frozen=True)
class EvalConfig:
    prompts: int = field(default=256, metadata={"min": 1, "doc": "held-out prompts for win rate / KL / reward"})
    validation_prompts: int = field(default=128, metadata={"min": 0, "doc": "held-out prompts after the test "
                                    "prompts, used only to pick each algorithm's best sweep setting (val_win_rate)"})
    max_new_tokens: int = field(default=32, metadata={"min": 1})
    temperature: float = field(default=1.0, metadata={"gt": 0})
    curve_every: float = field(default=0.1, metadata={"gt": 0, "max": 1, "doc": "log-prob drift curve cadence, "
                                                                                "as a fraction of the budget"})
    curve_pairs: int = field(default=64, metadata={"min": 1, "doc": "held-out pairs (and train pairs) tracked"})
    curve_generation_every: float = field(default=0.1, metadata={"gt": 0, "max": 1, "doc":
                                          "win rate / KL curve cadence (coarser: it samples)"})
    curve_generation_prompts: int = field(default=64, metadata={"min": 1})
    reference_samples: int = field(default=8, metadata={"min": 1, "doc": "π_ref draws per prompt that each policy "
                                   "sample is compared with (win rate); part of each prompt's unit in the intervals"})
    control_prompts: int = field(default=64, metadata={"min": 1, "doc": "fresh π_ref samples whose Δ log π is "
                                 "tracked during training (the global-drift control of the displacement curves)"})
    best_of_n: int = field(default=16, metadata={"min": 1, "doc": "n of the best_of_n reference"})
    limit_samples: int = field(default=64, metadata={"min": 2, "doc": "π_ref samples per prompt for the limits"})
    limit_prompts: int = field(default=128, metadata={"min": 1})
    bootstrap: int = field(default=1000, metadata={"min": 100, "doc": "no effect since issue 21 (intervals are "
                           "analytic t intervals, bench/evaluation/crossed.py); accepted so older suites and "
                           "their run ids stay valid"})
    lm_eval_tasks: tuple[str, ...] = field(default=(), metadata={"doc": "registered lm-eval task names (and the "
                                           "world's own tasks); a path to a task file needs trust_task_code"})
    lm_eval_limit: int | None = field(default=None, metadata={"min": 1})
    trust_task_code: bool = field(default=False, metadata={"doc": "allow lm_eval_tasks entries that are local "
                                  "task files or folders: lm-eval's `!function` imports Python next to them "
                                  "(runs code)"})

    def problems(self) -> list[tuple[str, str]]:
        from bench.evaluation.lm_eval_adapter import is_task_path

        out = []
        for task in self.lm_eval_tasks:
            if is_task_path(task) and not self.trust_task_code:
                out.append(("lm_eval_tasks", f"{task!r} is a path to a local lm-eval task: lm-eval imports Python "
                            "code next to such files (`!function`), so a suite could run arbitrary code; use a "
                            "registered task name, or set [eval] trust_task_code = true if you trust the file"))
        return out


REPORT_TO = ("none", "tensorboard", "trackio", "wandb", "mlflow")  # transformers' integration names
SAVE_POLICY = ("none", "final")


@dataclass(frozen=True)
class LoraSettings:
    """`[train] peft = { r = 16, lora_alpha = 32, ... }`: a LoRA adapter (peft's `LoraConfig` field names) trained
    in place of the full policy; the reference is the adapter-disabled base model (TRL), so no second copy."""

    r: int = field(default=16, metadata={"min": 1, "doc": "adapter rank"})
    lora_alpha: float = field(default=32.0, metadata={"gt": 0, "doc": "scaling numerator (scale = lora_alpha / r)"})
    lora_dropout: float = field(default=0.0, metadata={"min": 0, "lt": 1})
    target_modules: str | tuple[str, ...] = field(default="all-linear", metadata={
        "doc": "module names to adapt, or \"all-linear\" (peft's shorthand)"})
    bias: str = field(default="none", metadata={"choices": ("none", "all", "lora_only")})

    def peft_kwargs(self) -> dict[str, Any]:
        target = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return {"r": self.r, "lora_alpha": self.lora_alpha, "lora_dropout": self.lora_dropout,
                "target_modules": target, "bias": self.bias, "task_type": "CAUSAL_LM"}


@dataclass(frozen=True)
class TrainOptions:
    """The run options of `[train]` that are not hyper-parameters of an algorithm.

    `report_to` and `save_policy` change what is kept, never a number, so they are not part of a run's identity
    (run ids, config hashes and the suite hash do not change); `peft` changes what is trained, so a run with an
    adapter hashes it (runs without one keep their ids).
    """

    report_to: str | tuple[str, ...] = field(default="none", metadata={"doc": "experiment tracker(s) every "
                                             "trainer reports to (transformers' names): " + ", ".join(REPORT_TO)})
    save_policy: str = field(default="none", metadata={"choices": SAVE_POLICY, "doc": "\"final\": keep each "
                             "trained policy as a Hugging Face checkpoint in its run folder (policy/)"})
    peft: LoraSettings | None = field(default=None, metadata={"doc": "LoRA adapter settings (a table); "
                                      "none: full fine-tuning"})

    @property
    def trackers(self) -> tuple[str, ...]:
        names = (self.report_to,) if isinstance(self.report_to, str) else tuple(self.report_to)
        return tuple(n for n in names if n != "none")


def _report_to_problem(value: Any) -> str | None:
    names = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
    bad = [n for n in names if n not in REPORT_TO]
    if bad:
        return f"unknown tracker {bad[0]!r}; {did_you_mean(str(bad[0]), REPORT_TO)}"
    if "none" in names and len(names) > 1:
        return "\"none\" cannot be combined with a tracker; list only the trackers"
    return None


TRAIN_OPTIONS = tuple(f.name for f in dataclasses.fields(TrainOptions))


def read_train_options(train: dict[str, Any], where: str, problems: list[str]) -> TrainOptions:
    """The run options out of the `[train]` table (the rest are algorithms' hyper-parameters)."""
    table = {k: v for k, v in train.items() if k in TRAIN_OPTIONS and k != "peft"}
    message = _report_to_problem(table.get("report_to", "none"))
    if message:
        problems.append(problem(where, "[train].report_to", message))
        table.pop("report_to")
    options = read_table(TrainOptions, table, where, "train", problems)
    peft = train.get("peft")
    if peft is None:
        return options
    if not isinstance(peft, dict):
        problems.append(problem(where, "[train].peft", f"must be a table, got {type(peft).__name__}",
                                "write peft = { r = 16, lora_alpha = 32 }"))
        return options
    lora = read_table(LoraSettings, peft, where, "train.peft", problems)
    return dataclasses.replace(options, peft=lora)


@dataclass(frozen=True)
class AlgorithmEntry:
    """One `[algorithms.<label>]` table: which algorithm, and its hyper-parameter grid (value tuples)."""

    label: str
    algorithm: str
    grid: tuple[tuple[str, tuple[Any, ...]], ...]  # sorted (name, values); one value = fixed, several = swept
    # the entry's own `peft`: None = [train].peft applies, False = full fine-tuning, else this adapter
    peft: LoraSettings | bool | None = None
    trl: str = ""  # [algorithms.<label>.trl]: TRL config fields as canonical JSON ("" = none; bench.algorithms.trl_passthrough)

    def resolved_peft(self, suite_peft: LoraSettings | None) -> LoraSettings | None:
        if self.peft is None:
            return suite_peft
        return None if self.peft is False else self.peft

    def canonical(self) -> dict[str, Any]:
        """The entry for the suite hash: `peft` only when the entry sets it (suites without one keep their hash)."""
        out = {"label": self.label, "algorithm": self.algorithm, "grid": as_dict(self.grid)}
        if self.peft is not None:
            out["peft"] = as_dict(self.peft) if self.peft is not False else False
        if self.trl:  # only when set: every suite hash from before the pass-through stays
            out["trl"] = json.loads(self.trl)
        return out


@dataclass(frozen=True)
class Suite:
    path: str
    meta: SuiteMeta
    world: Any
    budget: BudgetConfig
    eval: EvalConfig
    entries: tuple[AlgorithmEntry, ...]
    check: dict[str, Any]
    raw_hash: str  # sha256 of the canonical resolved suite (path excluded)
    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # suite-level sweeps: (AXES name, values), several values
    options: TrainOptions = TrainOptions()  # [train] run options: tracking, saved policy, LoRA
    launcher: Any = None  # LauncherConfig ([launcher]); excluded from raw_hash: where runs execute changes no result
    replication: Any = None  # ReplicationConfig ([replication], bench/replication_schema.py); not in raw_hash

    def axis_points(self) -> list[dict[str, Any]]:
        """Every combination of the suite-level axes (one empty dict when nothing is swept)."""
        names = [k for k, _ in self.axes]
        return [dict(zip(names, point)) for point in itertools.product(*(v for _, v in self.axes))]

    def world_for(self, point: dict[str, Any]):
        changes = {AXES[k][1]: v for k, v in point.items() if k in WORLD_AXES}
        return dataclasses.replace(self.world, **changes) if changes else self.world

    def budget_for(self, point: dict[str, Any]) -> "BudgetConfig":
        changes = {}
        if "budget_flops" in point:
            changes["flops"] = point["budget_flops"]
        if "budget_view" in point:
            changes["view"] = point["budget_view"]
        return dataclasses.replace(self.budget, **changes) if changes else self.budget

    @property
    def worlds(self) -> list[Any]:
        """The distinct worlds of the suite (several when world.seed is swept), in axis order."""
        out = []
        for point in self.axis_points():
            w = self.world_for(point)
            if w not in out:
                out.append(w)
        return out

    @property
    def name(self) -> str:
        return self.meta.name


@dataclass(frozen=True)
class RunSpec:
    """One run: (algorithm entry, one grid point, one seed). Frozen and content-addressed."""

    suite: str
    label: str
    algorithm: str
    algorithm_version: str
    params: tuple[tuple[str, Any], ...]   # every resolved hyper-parameter, sorted
    swept: tuple[str, ...]                 # which of them vary in this entry's grid
    seed: int
    world: Any
    budget: BudgetConfig
    eval: EvalConfig
    axes: tuple[tuple[str, Any], ...] = ()  # this run's values of the suite's swept axes (AXES), sorted
    options: TrainOptions = TrainOptions()  # run options: tracking and the saved policy are not hashed; peft is
    trl: str = ""  # TRL config fields passed through ([algorithms.<label>.trl]), canonical JSON; hashed when set

    def canonical(self) -> dict[str, Any]:
        """What defines the run's result; its hash is the run id's suffix. `suite` and `label` are names only."""
        out = {
            "algorithm": self.algorithm,
            "algorithm_version": self.algorithm_version,
            "params": dict(self.params),
            "seed": self.seed,
            "world": as_dict(self.world),
            "budget": budget_dict(self.budget),
            "eval": _eval_dict(self.eval),
        }
        if self.options.peft is not None:  # a LoRA run trains something else than the full policy
            out["peft"] = as_dict(self.options.peft)
        if self.trl:  # TRL fields passed through change the training: two values, two run ids
            out["trl"] = json.loads(self.trl)
        return out

    @property
    def config_hash(self) -> str:
        return stable_hash(self.canonical())

    @property
    def run_id(self) -> str:
        """Readable and unique: label, swept values, seed, then 8 hex digits of the config hash."""
        parts = [self.label] + [f"{k}{_short(v)}" for k, v in self.params if k in self.swept]
        parts += [f"{_AXIS_TAG[k]}{_short(v)}" for k, v in self.axes if v != "-"]
        return "_".join(parts + [f"s{self.seed}", self.config_hash[:8]])

    @property
    def param_dict(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def trl_dict(self) -> dict[str, Any]:
        """The TRL config fields this run passes through (empty when none)."""
        return json.loads(self.trl) if self.trl else {}


def budget_dict(budget: BudgetConfig) -> dict[str, Any]:
    """[budget] as hashed: `updates` only when set, so every run id and suite hash from before it existed stays."""
    out = as_dict(budget)
    if out.get("updates") is None:
        out.pop("updates", None)
    return out


def _eval_dict(ev: EvalConfig) -> dict[str, Any]:
    """[eval] as hashed: the trust flag permits code but does not change results, so it is not part of a run's
    identity (runs and baselines keep their ids)."""
    out = as_dict(ev)
    if not out.get("trust_task_code"):
        out.pop("trust_task_code", None)
    return out
_AXIS_TAG = {"budget_flops": "F", "budget_view": "", "world_seed": "w", "pair_source": "pairs-"}


def _short(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "", text)
