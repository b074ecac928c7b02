"""Regenerate the key tables of docs/suite-format.md from the code, so the reference cannot drift from it.

    python docs/generate.py            # rewrite the generated blocks in place
    python docs/generate.py --check    # exit 1 (and name the block) when a block is stale; tests/test_docs.py runs it

Each table is rebuilt from the frozen dataclasses the suite is validated with (bench/suite.py, the worlds' configs,
the algorithms' Params, bench/check.py's METRICS): the key, its type, its default, its constraint (from the field's
metadata) and its `doc` text. Prose around the blocks is hand-written; only the text between
`<!-- generated:NAME -->` and `<!-- end generated -->` is replaced.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SUITE_FORMAT = ROOT / "docs" / "suite-format.md"
BLOCK = re.compile(r"(<!-- generated:(?P<name>[a-z_]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        value = f.default_factory()  # type: ignore[misc]
    else:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, str):
        return f'`"{value}"`' if value else '`""`'
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value!r}`"


def _constraint(meta: typing.Mapping) -> str:
    parts = []
    for key, sign in (("gt", ">"), ("min", "≥"), ("lt", "<"), ("max", "≤")):
        if key in meta:
            parts.append(f"{sign} {meta[key]:g}" if isinstance(meta[key], float) else f"{sign} {meta[key]}")
    if "choices" in meta:
        parts.append("one of " + ", ".join(f'`"{c}"`' for c in meta["choices"]))
    return "; ".join(parts)


def field_table(cls: type, fallback: str = "") -> str:
    """Key, type, default, constraint and meaning of every field; `fallback` ({name} filled in) where a field has
    no `doc`."""
    from bench.schema import type_name

    hints = typing.get_type_hints(cls)
    rows = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        doc = f.metadata.get("doc") or fallback.format(name=f.name)
        rows.append(f"| `{f.name}` | {_cell(type_name(hints[f.name]))} | {_cell(_default(f))} | "
                    f"{_cell(_constraint(f.metadata))} | {_cell(doc)} |")
    return "\n".join(rows)


def algorithms_table() -> str:
    from bench.algorithms.registry import TrainParams, all_algorithms

    shared = {f.name for f in dataclasses.fields(TrainParams)}
    rows = ["| algorithm | what | trains | its own keys (defaults) |", "|---|---|---|---|"]
    for name, cls in sorted(all_algorithms().items()):
        if not cls.__module__.startswith("bench."):  # test-only registrations (tests/conftest.py)
            continue
        fields = dataclasses.fields(cls.Params)
        own = [f"`{f.name}` = {_default(f).strip('`')}" for f in fields if f.name not in shared]
        takes_train = shared <= {f.name for f in fields}
        rows.append(f"| `{name}` | {_cell(cls.summary)} | {'yes' if cls.trains else 'no'} | "
                    f"{_cell(', '.join(own) or '–')}{' + [train] keys' if takes_train else ''} |")
    return "\n".join(rows)


def algorithm_keys() -> str:
    """One table per algorithm with its own keys (the [train] keys are listed once, under [train])."""
    from bench.algorithms.registry import TrainParams, all_algorithms
    from bench.schema import type_name

    shared = {f.name for f in dataclasses.fields(TrainParams)}
    out = []
    for name, cls in sorted(all_algorithms().items()):
        if not cls.__module__.startswith("bench."):
            continue
        fields = [f for f in dataclasses.fields(cls.Params) if f.name not in shared]
        if not fields:
            continue
        hints = typing.get_type_hints(cls.Params)
        out += [f"#### `{name}`", "", "| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
        out += [f"| `{f.name}` | {_cell(type_name(hints[f.name]))} | {_cell(_default(f))} | "
                f"{_cell(_constraint(f.metadata))} | {_cell(f.metadata.get('doc') or 'as TRL names it')} |"
                for f in fields]
        out.append("")
    return "\n".join(out).rstrip("\n")


def check_table() -> str:
    from bench.check import FLOORS, METRICS

    words = {1: "higher", -1: "lower", 0: "either way (a finding)"}
    rows = ["| key | better | floor: absolute (the key's value overrides it) + relative to the baseline mean |",
            "|---|---|---|"]
    rows += [f"| `{m}` | {words[d]} | `{FLOORS[k][0]:g}` + {FLOORS[k][1]:.0%} of \\|mean\\| |"
             for m, (d, k) in METRICS.items()]
    rows.append("| `alpha` | – | `0.05` (family level of the check: moderated one-sided t-tests beyond the "
                "floors, Holm-corrected over every row; 0 < alpha < 1) |")
    return "\n".join(rows)


def blocks() -> dict[str, str]:
    from bench.algorithms.registry import TrainParams
    from bench.launcher_config import LauncherConfig, SlurmConfig
    from bench.replication_schema import ReplicationConfig
    from bench.suite import BudgetConfig, EvalConfig, SuiteMeta
    from bench.worlds import WORLDS

    out = {"suite": field_table(SuiteMeta), "budget": field_table(BudgetConfig), "eval": field_table(EvalConfig),
           "train": field_table(TrainParams, fallback="as transformers' `TrainingArguments.{name}`"),
           "algorithms": algorithms_table(), "algorithm_keys": algorithm_keys(), "check": check_table(),
           "launcher": field_table(LauncherConfig), "launcher_slurm": field_table(SlurmConfig),
           "replication": field_table(ReplicationConfig)}
    for kind, world in WORLDS.items():
        out[f"world_{kind}"] = field_table(world.config)
    return out


def render(text: str, tables: dict[str, str]) -> tuple[str, list[str]]:
    """`text` with every generated block replaced; also the names of blocks that changed or are unknown."""
    changed: list[str] = []

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in tables:
            changed.append(f"{name} (no such table)")
            return m.group(0)
        body = tables[name] + "\n"
        if body != m.group("body"):
            changed.append(name)
        return m.group(1) + body + m.group(4)

    new = BLOCK.sub(sub, text)
    missing = [n for n in tables if f"<!-- generated:{n} -->" not in text]
    return new, changed + [f"{n} (block missing)" for n in missing]


def main(argv: list[str]) -> int:
    text = SUITE_FORMAT.read_text(encoding="utf-8")
    new, changed = render(text, blocks())
    if "--check" in argv:
        if changed:
            print(f"{SUITE_FORMAT.relative_to(ROOT)}: stale generated block(s): {', '.join(changed)}; "
                  "run `python docs/generate.py`", file=sys.stderr)
            return 1
        return 0
    if new != text:
        SUITE_FORMAT.write_text(new, encoding="utf-8")
    print(f"{SUITE_FORMAT.relative_to(ROOT)}: {', '.join(changed) if changed else 'up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
