"""One `[algorithms.<label>]` table of a suite, read and checked: the label, the algorithm it names (or the
"unknown algorithm" line with the fix a user needs: a typo, a label naming a setting, a removed TRL trainer, a
plug-in not listed), its hyper-parameter grid against the algorithm's typed Params, its own `peft` and its
`[algorithms.<label>.trl]` pass-through. Split from bench/suite.py (issue 23: one idea per module), which reads the
rest of the file and expands entries into runs.
"""

from __future__ import annotations

import re
import typing
from typing import Any

from bench.errors import did_you_mean, problem
from bench.schema import check_value, coerce, read_table, type_name
from bench.suite_schema import MAX_NAME, AlgorithmEntry, LoraSettings

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


def read_entry(label: str, table: Any, train: dict[str, Any], registry: dict[str, Any], where: str,
                problems: list[str]) -> AlgorithmEntry | None:
    """One `[algorithms.<label>]` table read against the algorithm's typed Params: `[train]` defaults the
    algorithm has, list values as sweeps (each item coerced and range-checked), an entry's own `peft` and TRL
    pass-through. None after appending every problem found (file, field, fix)."""
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
        from bench.algorithms.removed import removed_reason

        if isinstance(name, str) and removed_reason(name):  # a trainer TRL deleted: say so, not "unknown"
            key = f"[{section}].algorithm" if "algorithm" in table else f"[{section}]"
            problems.append(problem(where, key, f"algorithm {name!r} is no longer available: {removed_reason(name)}"))
        elif "algorithm" in table:
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
    trl = None
    if "trl" in table and "trl" not in fields:
        from bench.algorithms.trl_passthrough import read_trl

        trl = read_trl(cls, label, table["trl"], where, problems)
        if trl is None:
            return None
    merged = {k: v for k, v in train.items() if k in fields}
    merged.update({k: v for k, v in table.items() if k not in ("algorithm", "peft") and (k != "trl" or trl is None)})
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
    return AlgorithmEntry(label, name, tuple(sorted(grid.items())), peft, trl or "")


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
