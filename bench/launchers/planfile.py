"""A run plan on disk, for the processes that execute it (local workers, run attempts, submitit / SLURM tasks).

The plan is pickled, and unpickling it may need the classes of the suite's own algorithms and worlds (their
parameter dataclasses); a fresh process has none of `[suite].plugins` imported. So the file carries, beside the
pickled plan, what every process needs to rebuild the registry first: the plug-in modules and the suite's
folder (put on sys.path, as when the suite was loaded); entry-point worlds are loaded too, as `bench validate`
loads them (entry-point algorithms are loaded by the registry on first use).
"""

from __future__ import annotations

import pickle
from pathlib import Path

from bench.errors import UserError


def dump_plan(plan, path: Path) -> Path:
    from bench.io import write_bytes_atomic

    suite = plan.suite
    payload = {"plugins": list(getattr(suite.meta, "plugins", ()) or ()), "suite_path": str(suite.path),
               "plan": pickle.dumps(plan)}
    write_bytes_atomic(Path(path), pickle.dumps(payload))
    return Path(path)


def load_plan(path: Path | str):
    """The plan, after importing its suite's plug-ins (a plug-in that no longer imports: UserError, one line)."""
    from bench.plugins import import_suite_plugins, load_worlds

    load_worlds()  # entry-point worlds (a world kind from an installed distribution)
    with open(path, "rb") as f:
        payload = pickle.load(f)
    if "plan" in payload and isinstance(payload["plan"], bytes):
        problems = import_suite_plugins(payload.get("plugins") or [], payload.get("suite_path") or ".")
        if problems:
            raise UserError(*problems)
        return pickle.loads(payload["plan"])
    return payload["plan"]  # written by an older bench: the plan itself
