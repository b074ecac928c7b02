"""Suites are data: a TOML file read with `tomllib` into frozen, typed configs, then expanded into run specs.

    [suite]            name, seeds, description, plugins (modules to import first: they run code, see bench/plugins.py)
    [world]            kind = "controlled" | ... and that world's settings (bench/worlds/)
    [budget]           flops = 2e12  (or seconds = 60), max_epochs
    [eval]             prompts, curve_every, lm_eval_tasks, ...
    [train]            defaults for every algorithm that has the field (learning_rate, batch size, ...), and the
                       run options `report_to`, `save_policy`, `peft` (`TrainOptions`: not hyper-parameters)
    [algorithms.NAME]  hyper-parameters (TRL's names); a list value is a sweep; `algorithm = "dpo"` lets two
                       entries use one algorithm with different settings; `peft = { r = 16 }` (or `false`) gives
                       one entry its own LoRA adapter (or full fine-tuning), replacing `[train].peft` for it
    [launcher]         where the runs execute (bench/launchers/config.py); not part of any run's identity

`load_suite(path)` validates everything and raises one `UserError` listing every problem (file, field, fix).
`expand(suite)` is the one pure function that fans a suite out into `RunSpec`s: entry x grid x seed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError, did_you_mean, problem
from bench.schema import as_dict, check_value, coerce, read_table, type_name

SECTIONS = ("suite", "world", "budget", "eval", "train", "algorithms", "check", "launcher")
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
    max_epochs: int = field(default=20, metadata={"min": 1, "doc": "stop when the data has been seen this often "
                                                                  "(recorded as data_exhausted)"})
    max_steps: int | None = field(default=None, metadata={"min": 1, "doc": "optional cap on optimizer steps "
                                                                            "(benchmarks, smoke tests)"})
    view: str = field(default="end_to_end", metadata={"choices": BUDGET_VIEWS, "doc":
                      "end_to_end: the shared reward model's training is charged to every run that uses it (ppo, "
                      "online_dpo); amortised: it is trained once for all, listed apart (flops_amortised), and the "
                      "budget pays for policy optimisation only. A list sweeps both views"})

    def problems(self) -> list[tuple[str, str]]:
        if (self.flops is None) == (self.seconds is None):
            return [("", "set exactly one of `flops` or `seconds`")]
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
        return "flops" if self.flops is not None else "seconds"

    @property
    def amount(self) -> float:
        return float(self.flops if self.flops is not None else self.seconds)


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
                           "analytic t intervals, bench/evaluation/estimators.py); accepted so older suites and "
                           "their run ids stay valid"})
    lm_eval_tasks: tuple[str, ...] = field(default=(), metadata={"doc": "registered lm-eval task names (and the "
                                           "world's own tasks); a path to a task file needs trust_task_code"})
    lm_eval_limit: int | None = field(default=None, metadata={"min": 1})
    trust_task_code: bool = field(default=False, metadata={"doc": "allow lm_eval_tasks entries that are local "
                                  "task files or folders: lm-eval's `!function` imports Python next to them "
                                  "(runs code)"})

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for task in self.lm_eval_tasks:
            if is_task_path(task) and not self.trust_task_code:
                out.append(("lm_eval_tasks", f"{task!r} is a path to a local lm-eval task: lm-eval imports Python "
                            "code next to such files (`!function`), so a suite could run arbitrary code; use a "
                            "registered task name, or set [eval] trust_task_code = true if you trust the file"))
        return out


def is_task_path(task: str) -> bool:
    """A task given as a file or folder rather than a registered name (only those can bring their own code)."""
    return ("/" in task or "\\" in task or task.startswith((".", "~")) or task.endswith((".yaml", ".yml", ".py"))
            or Path(task).expanduser().exists())


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

    def resolved_peft(self, suite_peft: LoraSettings | None) -> LoraSettings | None:
        if self.peft is None:
            return suite_peft
        return None if self.peft is False else self.peft

    def canonical(self) -> dict[str, Any]:
        """The entry for the suite hash: `peft` only when the entry sets it (suites without one keep their hash)."""
        out = {"label": self.label, "algorithm": self.algorithm, "grid": as_dict(self.grid)}
        if self.peft is not None:
            out["peft"] = as_dict(self.peft) if self.peft is not False else False
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

    def canonical(self) -> dict[str, Any]:
        """What defines the run's result; its hash is the run id's suffix. `suite` and `label` are names only."""
        out = {
            "algorithm": self.algorithm,
            "algorithm_version": self.algorithm_version,
            "params": dict(self.params),
            "seed": self.seed,
            "world": as_dict(self.world),
            "budget": as_dict(self.budget),
            "eval": _eval_dict(self.eval),
        }
        if self.options.peft is not None:  # a LoRA run trains something else than the full policy
            out["peft"] = as_dict(self.options.peft)
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


def stable_hash(obj: Any) -> str:
    """sha256 of canonical JSON (sorted keys, repr-exact floats)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# ----------------------------------------------------------------------------------------------------------
# Loading and validation


def load_suite(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Suite:
    """Read, override (`--set section.key=value`), and validate a suite file; raise one UserError with every problem."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise UserError(problem(where, None, "no such suite file", "pass a path to a .toml suite (see suites/)"))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a UTF-8 BOM (Windows editors) is fine
    except tomllib.TOMLDecodeError as exc:
        raise UserError(problem(where, None, f"invalid TOML: {exc}", "fix the syntax at that line")) from None
    except UnicodeDecodeError:
        raise UserError(problem(where, None, "not UTF-8 text", "save the suite as UTF-8")) from None
    for item in overrides:
        apply_override(data, item, where)
    try:
        return parse_suite(data, where)
    except UserError as err:
        raise UserError(*_blame_overrides(err.problems, overrides, where)) from None


def _blame_overrides(problems: list[str], overrides, where: str) -> list[str]:
    """A problem in a field set with --set names the flag, not the suite file."""
    fields = {}
    for item in overrides:
        dotted = item.split("=", 1)[0].strip()
        keys = dotted.split(".")
        if len(keys) >= 2:
            fields[f"[{'.'.join(keys[:-1])}].{keys[-1]}"] = item
            fields[f"[{'.'.join(keys)}]"] = item
    out = []
    for line in problems:
        for f, item in fields.items():
            if line.startswith(f"{where}: {f}:"):
                line = f"--set {item}: {f}:" + line[len(f"{where}: {f}:"):]
                break
        out.append(line)
    return out


# fields of which a suite sets exactly one: `--set` of one replaces the other (`--set budget.seconds=60` on a FLOP
# suite means "this budget instead", not "both", which validation would refuse)
EXCLUSIVE_FIELDS = {("budget", "flops"): ("budget", "seconds"), ("budget", "seconds"): ("budget", "flops")}


def apply_override(data: dict[str, Any], item: str, where: str) -> None:
    """`section.key=value` (value parsed as a TOML value, else taken as a string) into the raw table; a field of
    EXCLUSIVE_FIELDS replaces its alternative."""
    if "=" not in item:
        raise UserError(problem("--set", item, "expected SECTION.KEY=VALUE", "e.g. --set budget.flops=1e12"))
    dotted, text = item.split("=", 1)
    keys = dotted.strip().split(".")
    if len(keys) < 2 or not all(keys):
        raise UserError(problem("--set", dotted, "expected SECTION.KEY", "e.g. --set algorithms.dpo.beta=0.1"))
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    table = data
    for key in keys[:-1]:
        table = table.setdefault(key, {})
        if not isinstance(table, dict):
            raise UserError(problem("--set", dotted, f"{key!r} is not a table in {where}"))
    table[keys[-1]] = value
    other = EXCLUSIVE_FIELDS.get(tuple(keys))
    if other is not None and isinstance(data.get(other[0]), dict):
        data[other[0]].pop(other[1], None)


def parse_suite(data: dict[str, Any], where: str) -> Suite:
    from bench.algorithms.registry import all_algorithms
    from bench.plugins import import_suite_plugins, load_worlds
    from bench.worlds import WORLDS

    problems: list[str] = []
    load_worlds()
    raw_plugins = data.get("suite", {}).get("plugins", []) if isinstance(data.get("suite"), dict) else []
    if isinstance(raw_plugins, list):  # a wrong type is reported by read_table below
        problems += import_suite_plugins(raw_plugins, where)
    for key in data:
        if key not in SECTIONS:
            problems.append(problem(where, f"[{key}]", "unknown section", did_you_mean(key, SECTIONS)))

    # suite-level axes (AXES): a list becomes its first value for parsing; the others are validated below
    axes: list[tuple[str, tuple[Any, ...]]] = []
    for axis, (section, key) in AXES.items():
        table = data.get(section)
        if isinstance(table, dict) and isinstance(table.get(key), list):
            values = table[key]
            if not values:
                problems.append(problem(where, f"[{section}].{key}", "empty sweep list", "give at least one value"))
                continue
            if len(set(map(repr, values))) != len(values):
                problems.append(problem(where, f"[{section}].{key}", f"has duplicates: {values}"))
                continue
            data = {**data, section: {**table, key: values[0]}}
            if len(values) > 1:
                axes.append((axis, tuple(values)))

    meta = read_table(SuiteMeta, data.get("suite", {"name": Path(where).stem}), where, "suite", problems)

    world_table = data.get("world", {"kind": "controlled"})
    if not isinstance(world_table, dict):
        problems.append(problem(where, "[world]", f"must be a table, got {type(world_table).__name__}",
                                "write [world] with kind = \"controlled\" and its settings"))
        world_table = {}
    kind = world_table.get("kind", "controlled")
    if not isinstance(kind, str) or kind not in WORLDS:
        problems.append(problem(where, "[world].kind", f"unknown world {kind!r}", did_you_mean(str(kind), WORLDS)))
        world = None
    else:
        world = read_table(WORLDS[kind].config, world_table, where, "world", problems)

    budget = read_table(BudgetConfig, data.get("budget", {}), where, "budget", problems)
    for axis, values in axes:  # every other value of an axis validated like a single one
        section, key = AXES[axis]
        cls = BudgetConfig if section == "budget" else (WORLDS[kind].config if world is not None else None)
        for v in values[1:]:
            if cls is not None:
                read_table(cls, {**data[section], key: v}, where, section, problems)
    eval_cfg = read_table(EvalConfig, data.get("eval", {}), where, "eval", problems)
    check = data.get("check", {})
    if not isinstance(check, dict):
        problems.append(problem(where, "[check]", "must be a table"))
        check = {}
    problems += _check_table_problems(check, where)
    launcher = _read_launcher(data.get("launcher", {}), where, problems)

    registry = all_algorithms()
    train = data.get("train", {})
    if not isinstance(train, dict):
        problems.append(problem(where, "[train]", "must be a table"))
        train = {}
    options = read_train_options(train, where, problems)
    train = {k: v for k, v in train.items() if k not in TRAIN_OPTIONS}
    known_train = {f.name for cls in registry.values() for f in dataclasses.fields(cls.Params)}
    for key in train:
        if key not in known_train:
            problems.append(problem(where, f"[train].{key}", "no algorithm has this hyper-parameter",
                                    did_you_mean(key, known_train | set(TRAIN_OPTIONS))))

    algorithms = data.get("algorithms", {})
    if not isinstance(algorithms, dict) or not algorithms:
        problems.append(problem(where, "[algorithms]", "no algorithms to run",
                                "add at least one table such as [algorithms.dpo]"))
        algorithms = {}
    entries = []
    for label, table in algorithms.items():
        entry = _read_entry(label, table, train, registry, where, problems)
        if entry is not None:
            entries.append(entry)

    lora_algorithms = ", ".join(n for n, c in registry.items() if c.supports_peft)
    for e in entries:
        cls = registry[e.algorithm]
        src = "[train].peft" if e.peft is None else f"[algorithms.{e.label}].peft"
        if e.peft is not None and not cls.trains:
            problems.append(problem(where, src, f"{e.algorithm} trains nothing: it has no adapter to train",
                                    "remove peft from this entry"))
        elif e.resolved_peft(options.peft) is not None and cls.trains and not cls.supports_peft:
            problems.append(problem(where, src, f"{e.algorithm} ([algorithms.{e.label}]) does not train LoRA "
                                    "adapters", f"remove the entry or drop peft; LoRA algorithms: {lora_algorithms}"))
    if not problems:
        runs = sum(_grid_size(e) for e in entries) * len(meta.seeds)
        if runs > MAX_RUNS:
            problems.append(problem(where, "[algorithms]", f"the grid expands to {runs:,} runs (at most {MAX_RUNS:,})",
                                    "sweep fewer values, or split the suite into several files"))
    if problems:
        raise UserError(*problems)
    meta_dict = as_dict(meta)
    if not meta_dict.get("plugins"):  # no plug-ins: the hash of every suite written before they existed is unchanged
        meta_dict.pop("plugins", None)
    canonical = {"suite": meta_dict, "world": as_dict(world), "budget": as_dict(budget), "eval": _eval_dict(eval_cfg),
                 "entries": [e.canonical() for e in entries], "check": check}
    if axes:
        canonical["axes"] = [[k, list(v)] for k, v in axes]
    if options.peft is not None:  # tracking and saving change no result: the suite hash ignores them
        canonical["peft"] = as_dict(options.peft)
    return Suite(where, meta, world, budget, eval_cfg, tuple(entries), check, stable_hash(canonical), tuple(axes),
                 options, launcher)


def _read_launcher(table: Any, where: str, problems: list[str]):
    """[launcher] and its [launcher.slurm] sub-table, each validated like every other section."""
    from bench.launchers.config import LauncherConfig, SlurmConfig

    if not isinstance(table, dict):
        problems.append(problem(where, "[launcher]", f"must be a table, got {type(table).__name__}"))
        return LauncherConfig()
    slurm = read_table(SlurmConfig, table.get("slurm", {}), where, "launcher.slurm", problems)
    rest = {k: v for k, v in table.items() if k != "slurm"}
    return dataclasses.replace(read_table(LauncherConfig, rest, where, "launcher", problems), slurm=slurm)


def _grid_size(entry: AlgorithmEntry) -> int:
    n = 1
    for _, values in entry.grid:
        n *= len(values)
    return n


def _check_table_problems(check: dict[str, Any], where: str) -> list[str]:
    """[check]: per-metric tolerances (finite numbers >= 0) and `alpha` (0 < alpha < 1)."""
    import math

    from bench.check import METRICS

    out = []
    for key, value in check.items():
        field_name = f"[check].{key}"
        if key != "alpha" and key not in METRICS:
            out.append(problem(where, field_name, "not a checked metric", did_you_mean(key, [*METRICS, "alpha"])))
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            out.append(problem(where, field_name, f"expected a finite number, got {value!r}"))
        elif key == "alpha" and not 0 < value < 1:
            out.append(problem(where, field_name, f"must be between 0 and 1 (exclusive), got {value!r}"))
        elif key != "alpha" and value < 0:
            out.append(problem(where, field_name, f"a tolerance must be >= 0, got {value!r}"))
    return out


PLUGIN_HINT = "; an algorithm of your own: list its module in [suite].plugins"


def label_hint(where: str, section: str, label: str, registry) -> str:
    """`[algorithms.<label>]` without `algorithm =`, where the label is no algorithm's name.

    A near-miss spelling (dpoo, toyy: one edit away) is a typo: "did you mean". A label that merely contains an
    algorithm's name (mydpo, dpo_low_beta) is a name for a setting of that algorithm: say how to write that,
    `algorithm = "dpo"`, rather than suggest renaming it.
    """
    import difflib

    names = sorted(registry)
    close = difflib.get_close_matches(label, names, n=1, cutoff=0.8)
    inside = sorted((n for n in names if n in label), key=len, reverse=True)
    head = problem(where, f"[{section}]", f"unknown algorithm {label!r}")
    if close:
        return (f"{head}; did you mean '{close[0]}'? (to keep the label '{label}', add "
                f"algorithm = \"{close[0]}\" to the table){PLUGIN_HINT}")
    if inside:
        return (f"{head}; to run {inside[0]} under the label '{label}', add algorithm = \"{inside[0]}\" to the "
                f"table (a label may be any name when the table sets `algorithm`){PLUGIN_HINT}")
    return (f"{head}; a label may be any name when the table sets algorithm = \"<name>\"; "
            f"algorithms: {', '.join(names)}{PLUGIN_HINT}")


_BAD = object()  # an entry's `peft` that failed validation (its problem is already listed)


def _read_entry(label: str, table: Any, train: dict[str, Any], registry: dict[str, Any], where: str,
                problems: list[str]) -> AlgorithmEntry | None:
    section = f"algorithms.{label}"
    if not isinstance(table, dict):
        problems.append(problem(where, f"[{section}]", "must be a table", f"write [{section}] with its settings"))
        return None
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", label):
        problems.append(problem(where, f"[{section}]", "label must be lower-case letters, digits and '_'"))
        return None
    if len(label) > MAX_NAME:
        problems.append(problem(where, f"[{section}]", f"label is {len(label)} characters long; at most "
                                f"{MAX_NAME} (it names run folders)"))
        return None
    name = table.get("algorithm", label)
    if not isinstance(name, str) or name not in registry:
        if "algorithm" in table:
            problems.append(problem(where, f"[{section}].algorithm", f"unknown algorithm {name!r}",
                                    did_you_mean(str(name), registry)
                                    + " (an algorithm of your own: list its module in [suite].plugins)"))
        else:
            problems.append(label_hint(where, section, label, registry))
        return None
    cls = registry[name]
    fields = cls.param_fields()
    hints = typing.get_type_hints(cls.Params)
    grid: dict[str, tuple[Any, ...]] = {}
    peft = _read_entry_peft(table, section, where, problems) if "peft" in table else None
    merged = {k: v for k, v in train.items() if k in fields}
    merged.update({k: v for k, v in table.items() if k not in ("algorithm", "peft")})
    ok = True
    for key, value in merged.items():
        src = f"[{section}].{key}" if key in table else f"[train].{key}"
        if key not in fields:
            problems.append(problem(where, src, f"unknown hyper-parameter of {name}", did_you_mean(key, fields)))
            ok = False
            continue
        values = value if isinstance(value, list) else [value]
        if not values:
            problems.append(problem(where, src, "empty sweep list", "give at least one value"))
            ok = False
            continue
        hint = hints[key]
        converted = []
        for item in values:
            good, conv = coerce(item, hint)
            if not good:
                problems.append(problem(where, src, f"expected {type_name(hint)}, got {type(item).__name__} {item!r}"))
                ok = False
                break
            message = check_value(conv, fields[key].metadata)
            if message:
                problems.append(problem(where, src, message))
                ok = False
                break
            converted.append(conv)
        grid[key] = tuple(converted)
    if not ok or peft is _BAD:
        return None
    return AlgorithmEntry(label, name, tuple(sorted(grid.items())), peft)


def _read_entry_peft(table: dict[str, Any], section: str, where: str, problems: list[str]) -> Any:
    """An entry's `peft`: a LoRA table (replacing `[train].peft` for this entry, not merged with it) or `false`
    (full fine-tuning even when `[train]` sets an adapter). `_BAD` after a problem."""
    value = table["peft"]
    if value is False:
        return False
    if not isinstance(value, dict):
        problems.append(problem(where, f"[{section}].peft", f"expected a table or false, got {value!r}",
                                "write peft = { r = 16, lora_alpha = 32 }, or peft = false for full fine-tuning"))
        return _BAD
    before = len(problems)
    lora = read_table(LoraSettings, value, where, f"{section}.peft", problems)
    return _BAD if len(problems) > before else lora


# ----------------------------------------------------------------------------------------------------------
# Expansion


def expand(suite: Suite) -> list[RunSpec]:
    """Entries x grid points x seeds → run specs. Pure: same suite, same list, same order."""
    from bench.algorithms.registry import get_algorithm

    specs = []
    shared: set[str] = set()  # runs two budget views share (no reward model: the view changes nothing)
    for entry in suite.entries:
        cls = get_algorithm(entry.algorithm)
        # run options: an entry's own `peft` replaces [train]'s; a training-free run has none (its id is shared)
        options = dataclasses.replace(suite.options, peft=entry.resolved_peft(suite.options.peft)) \
            if cls.trains else TrainOptions()
        names = [k for k, _ in entry.grid]
        swept = tuple(k for k, values in entry.grid if len(values) > 1)
        defaults = {f.name: f.default for f in dataclasses.fields(cls.Params)}
        for point in itertools.product(*(values for _, values in entry.grid)):
            params = dict(defaults)
            params.update(zip(names, point))
            cls.Params(**params)  # typed construction doubles as a final check
            for axis_point in suite.axis_points():
                budget, axes = suite.budget_for(axis_point), dict(axis_point)
                if not getattr(cls, "uses_reward_model", False):
                    # the view only decides who pays for the reward model: one run serves both views
                    budget = dataclasses.replace(budget, view="end_to_end")
                    if "budget_view" in axes:
                        axes["budget_view"] = "both"
                if not cls.trains:  # training-free references: the budget does not apply (one run per world)
                    budget = dataclasses.replace(suite.budget, view="end_to_end")
                    axes = {k: (v if k in WORLD_AXES else "-") for k, v in axes.items()}
                for seed in suite.meta.seeds:
                    spec = RunSpec(suite.name, entry.label, entry.algorithm, cls.version,
                                   tuple(sorted(params.items())), swept, seed, suite.world_for(axis_point),
                                   budget, suite.eval, tuple(sorted(axes.items())), options)
                    if not cls.trains or axes.get("budget_view") == "both":
                        if spec.run_id in shared:
                            continue
                        shared.add(spec.run_id)
                    specs.append(spec)
    for s in specs:
        if len(s.run_id) > MAX_RUN_ID:
            raise UserError(problem(suite.path, f"[algorithms.{s.label}]", f"run id {s.run_id[:60]}... is "
                                    f"{len(s.run_id)} characters long (at most {MAX_RUN_ID}): too many swept values",
                                    "sweep fewer hyper-parameters in one entry, or use shorter values"))
    seen: dict[str, str] = {}
    for s in specs:  # two entries that resolve to the same run would train it twice: refuse
        if s.config_hash in seen:
            raise UserError(problem(suite.path, "[algorithms]", f"runs {seen[s.config_hash]} and {s.run_id} "
                                    "have identical settings (the same run)", "remove the duplicate entry or change one setting"))
        seen[s.config_hash] = s.run_id
    return specs
