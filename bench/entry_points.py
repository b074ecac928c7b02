"""Python entry points (importlib.metadata) and the one-line reason an imported plug-in failed: shared by the
algorithm registry (group `daa_bench.algorithms`) and bench.plugins (worlds, suite modules), so neither imports
the other to reach them."""

from __future__ import annotations

import traceback
from importlib import metadata
from pathlib import Path


def entry_points(group: str):
    return sorted(metadata.entry_points(group=group), key=lambda ep: ep.name)


def dist_name(ep) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else ep.value


def why(exc: BaseException) -> str:
    """`Type: message (file.py:line)` of the innermost frame: where a plug-in broke, in one line."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(exc).__name__}: {exc}{at}"
