"""Typed reading of TOML tables into frozen dataclasses, with every problem reported at once.

A dataclass field's annotation gives its type (`float` also accepts an int); `field(metadata={"choices": ...})`
restricts a string; `metadata={"min": x}` / `{"max": x}` bound a number; `metadata={"doc": ...}` is shown by
`bench list`. Unknown keys get a "did you mean". Used by `bench.suite` for every table of a suite.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

from bench.errors import did_you_mean, problem

_SCALARS = (bool, int, float, str)


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {type_name(args[0])}" if args else "list"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any) -> tuple[bool, Any]:
    """Return (ok, value converted to `tp`). bool is never an int here; int widens to float."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return True, None
        for arg in args:
            if arg is type(None):
                continue
            ok, converted = coerce(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False, value
        (inner, *_) = typing.get_args(tp) or (Any,)
        out = []
        for item in value:
            ok, converted = coerce(item, inner)
            if not ok:
                return False, value
            out.append(converted)
        return True, tuple(out)
    if tp is Any:
        return True, value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return True, float(value)
    if tp is int:
        return (isinstance(value, int) and not isinstance(value, bool)), value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is str:
        return isinstance(value, str), value
    if isinstance(tp, type) and isinstance(value, tp):
        return True, value
    return False, value


def check_value(value: Any, meta: typing.Mapping[str, Any]) -> str | None:
    """Bounds and choices from a field's metadata; returns a message or None."""
    if "choices" in meta and value not in meta["choices"]:
        return f"must be one of {', '.join(map(repr, meta['choices']))}, got {value!r}"
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "min" in meta and value < meta["min"]:
            return f"must be >= {meta['min']}, got {value!r}"
        if "max" in meta and value > meta["max"]:
            return f"must be <= {meta['max']}, got {value!r}"
        if "gt" in meta and value <= meta["gt"]:
            return f"must be > {meta['gt']}, got {value!r}"
        if "lt" in meta and value >= meta["lt"]:
            return f"must be < {meta['lt']}, got {value!r}"
    return None


def read_table(cls: type, table: Any, where: str, section: str, problems: list[str]) -> Any:
    """Build dataclass `cls` from a TOML table; append problems (one line each) instead of raising.

    Returns an instance built from defaults for every field that failed, so callers can keep validating.
    """
    before = len(problems)
    if not isinstance(table, dict):
        problems.append(problem(where, f"[{section}]", f"must be a table, got {type(table).__name__}"))
        table = {}
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            problems.append(problem(where, f"[{section}].{key}", "unknown key", did_you_mean(key, fields)))
            continue
        ok, converted = coerce(value, hints[key])
        if not ok:
            problems.append(problem(where, f"[{section}].{key}",
                                    f"expected {type_name(hints[key])}, got {type(value).__name__} {value!r}"))
            continue
        message = check_value(converted, fields[key].metadata)
        if message:
            problems.append(problem(where, f"[{section}].{key}", message))
            continue
        kwargs[key] = converted
    missing = [n for n, f in fields.items() if n not in kwargs and n not in table
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for name in missing:
        problems.append(problem(where, f"[{section}].{name}", "required key is missing",
                                f"add `{name} = ...` to [{section}]"))
        kwargs[name] = None
    instance = cls(**kwargs)
    check = getattr(instance, "problems", None)
    if callable(check) and len(problems) == before:  # cross-field checks only on otherwise valid tables
        for field, message in check():
            problems.append(problem(where, f"[{section}].{field}" if field else f"[{section}]", message))
    return instance


def as_dict(obj: Any) -> dict[str, Any]:
    """Dataclass → plain dict (tuples become lists) for canonical JSON."""
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v
    return plain(obj)
