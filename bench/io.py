"""Small file helpers: atomic writes (temp file, then rename) so a reader never sees half a file."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def write_text_atomic(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _finite(obj: Any) -> Any:
    """NaN/inf → null, so the JSON is valid for strict parsers (browsers, jq)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json_atomic(path: Path, data: Any) -> None:
    text = json.dumps(_finite(data), indent=2, sort_keys=True, default=str, allow_nan=False)
    write_text_atomic(path, text + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def cache_root(explicit: str | Path | None = None) -> Path:
    """Shared-stage cache: --cache-dir, else $BENCH_CACHE, else $XDG_CACHE_HOME/daa-bench (~/.cache/daa-bench)."""
    if explicit:
        return Path(explicit)
    if os.environ.get("BENCH_CACHE"):
        return Path(os.environ["BENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "daa-bench"
