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
    [launcher]         where the runs execute (bench/launcher_config.py); not part of any run's identity

The configs themselves are in bench/suite_schema.py (re-exported here); this module reads and checks files.
`load_suite(path)` validates everything and raises one `UserError` listing every problem (file, field, fix).
`expand(suite)` is the one pure function that fans a suite out into `RunSpec`s: entry x grid x seed.
"""

from __future__ import annotations

import dataclasses
import itertools
import tomllib
from pathlib import Path
from typing import Any

from bench.errors import UserError, did_you_mean, problem
from bench.hashing import stable_hash  # noqa: F401  (re-exported: bench.suite.stable_hash)
from bench.schema import as_dict, read_table
from bench.suite_entries import read_entry
from bench.suite_schema import (  # noqa: F401  (the configs; re-exported: bench.suite.RunSpec, ...)
    SECTIONS, MAX_NAME, MAX_RUN_ID, MAX_RUNS, SEED_LIMIT, BUDGET_VIEWS, AXES, WORLD_AXES, SuiteMeta, BudgetConfig,
    EvalConfig, REPORT_TO, SAVE_POLICY, LoraSettings, TrainOptions, _report_to_problem, TRAIN_OPTIONS,
    read_train_options, AlgorithmEntry, Suite, RunSpec, _eval_dict, _AXIS_TAG, _short, budget_dict,
)


# ----------------------------------------------------------------------------------------------------------
# Loading and validation


def unset_learning_rates(suite: Suite) -> list[str]:
    """Labels of the suite's trained entries that leave `learning_rate` to the code's default (neither the entry
    nor [train] sets it). The default (1e-3) is one number for every algorithm and every model; the tuned rates
    differ by 10x between algorithms on the controlled world (suites/controlled.toml) and TRL's are 1e-6-class for
    billion-parameter models — so the CLI warns instead of training at a rate nobody chose. Test-only stand-ins
    (`hidden`, e.g. `fake`) train nothing a rate could be tuned for and are not listed."""
    from bench.algorithms.registry import all_algorithms

    registry = all_algorithms()
    out = []
    for e in suite.entries:
        cls = registry.get(e.algorithm)
        if cls is not None and not cls.hidden and "learning_rate" in cls.param_fields() \
                and "learning_rate" not in dict(e.grid):
            out.append(e.label)
    return out


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
    except RecursionError:  # tomllib parses nested arrays / inline tables recursively
        raise UserError(problem(where, None, "arrays or tables nested too deeply to read",
                                f"a suite needs at most {MAX_DEPTH} levels")) from None
    too_deep = _too_deep(data)
    if too_deep:
        raise UserError(problem(where, too_deep, f"nested more than {MAX_DEPTH} levels deep",
                                f"a suite needs at most {MAX_DEPTH} levels"))
    for item in overrides:
        apply_override(data, item, where)
    try:
        return parse_suite(data, where)
    except UserError as err:
        raise UserError(*_blame_overrides(err.problems, overrides, where)) from None


MAX_DEPTH = 32  # tables and arrays inside each other: a real suite uses 4; deeper only breaks later recursion


def _too_deep(data) -> str:
    """The dotted path of a value nested deeper than MAX_DEPTH ('' when none); iterative, so it cannot recurse."""
    stack = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return where or "."
        if isinstance(value, dict):
            stack += [(v, f"{where}.{k}" if where else str(k), depth + 1) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value[:1000])]
    return ""


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
_BUDGETS = ("flops", "seconds", "updates")
EXCLUSIVE_FIELDS = {("budget", k): tuple(("budget", o) for o in _BUDGETS if o != k) for k in _BUDGETS}


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
    except RecursionError:
        raise UserError(problem("--set", dotted, "value nested too deeply", f"at most {MAX_DEPTH} levels")) from None
    table = data
    for key in keys[:-1]:
        table = table.setdefault(key, {})
        if not isinstance(table, dict):
            raise UserError(problem("--set", dotted, f"{key!r} is not a table in {where}"))
    table[keys[-1]] = value
    for other in EXCLUSIVE_FIELDS.get(tuple(keys), ()):
        if isinstance(data.get(other[0]), dict):
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
    replication = _read_replication(data.get("replication"), algorithms_labels(data), where, problems)

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
        entry = read_entry(label, table, train, registry, where, problems)
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
    canonical = {"suite": meta_dict, "world": as_dict(world), "budget": budget_dict(budget), "eval": _eval_dict(eval_cfg),
                 "entries": [e.canonical() for e in entries], "check": check}
    if axes:
        canonical["axes"] = [[k, list(v)] for k, v in axes]
    if options.peft is not None:  # tracking and saving change no result: the suite hash ignores them
        canonical["peft"] = as_dict(options.peft)
    return Suite(where, meta, world, budget, eval_cfg, tuple(entries), check, stable_hash(canonical), tuple(axes),
                 options, launcher, replication)


def algorithms_labels(data: dict[str, Any]) -> list[str]:
    table = data.get("algorithms")
    return list(table) if isinstance(table, dict) else []


def _read_replication(table: Any, labels: list[str], where: str, problems: list[str]):
    """[replication] (bench/replication_schema.py), its `compare` labels checked against [algorithms]."""
    from bench.replication_schema import ReplicationConfig, parse_compare

    if table is None:
        return None
    before = len(problems)
    rep = read_table(ReplicationConfig, table, where, "replication", problems)
    if len(problems) > before:
        return None
    for key in ("compare", "beyond"):
        for arm in parse_compare(getattr(rep, key)) or ():
            if arm not in labels:
                problems.append(problem(where, f"[replication].{key}", f"{arm!r} is not an [algorithms] label of "
                                        "this suite", did_you_mean(arm, labels)))
    return rep


def _read_launcher(table: Any, where: str, problems: list[str]):
    """[launcher] and its [launcher.slurm] sub-table, each validated like every other section."""
    from bench.launcher_config import LauncherConfig, SlurmConfig

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
                                   budget, suite.eval, tuple(sorted(axes.items())), options,
                                   entry.trl if cls.trains else "")
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
