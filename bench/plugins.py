"""Algorithms and worlds from outside the package: Python entry points and a suite's list of modules to import.

- Entry points. An installed distribution declares, in its pyproject.toml,
      [project.entry-points."daa_bench.algorithms"]
      my_loss = "my_pkg.my_loss"            # a module whose @register calls add algorithms
      [project.entry-points."daa_bench.worlds"]
      my_world = "my_pkg.world:WORLD"       # a bench.worlds.WorldKind (its name is the [world].kind)
  and the registries load them on first use.
- Suite modules. `[suite].plugins = ["my_pkg.my_loss"]` imports those modules (from the Python path, e.g. the
  suite's own folder, which is put on the path) before the suite is validated.

Importing a plug-in runs its code with the user's rights, like any Python import: only list modules you trust.
A plug-in that fails to import is one error line naming it and the cause (exit status 2), never a traceback;
one that calls sys.exit() (or raises SystemExit) while imported too: it never decides bench's exit status.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from bench.entry_points import dist_name, entry_points, why
from bench.errors import UserError

WORLD_GROUP = "daa_bench.worlds"
_world_origin: dict[str, str] = {}
_worlds_loaded = False


def _where(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""


def load_worlds() -> None:
    """Add `daa_bench.worlds` entry points to bench.worlds.WORLDS (once)."""
    global _worlds_loaded
    if _worlds_loaded:
        return
    _worlds_loaded = True
    from bench.worlds import WORLDS, WorldKind

    for ep in entry_points(WORLD_GROUP):
        try:
            world = ep.load()
        except (Exception, SystemExit) as exc:
            raise UserError(f"entry point {ep.name!r} = {ep.value!r} in group {WORLD_GROUP} ({dist_name(ep)}) "
                            f"failed to import: {why(exc)}; fix or uninstall that package") from None
        if not isinstance(world, WorldKind):
            raise UserError(f"entry point {ep.name!r} = {ep.value!r} in group {WORLD_GROUP} is a "
                            f"{type(world).__name__}, not a bench.worlds.WorldKind; point it at one")
        if ep.name in WORLDS and world is not WORLDS[ep.name]:
            raise UserError(f"world kind {ep.name!r} from {dist_name(ep)} clashes with an existing world; rename "
                            "its entry point")
        WORLDS[ep.name] = world
        _world_origin[ep.name] = f"entry point {ep.name} ({dist_name(ep)})"


def world_origin(kind: str) -> str:
    load_worlds()
    return _world_origin.get(kind, "built-in")


def import_suite_plugins(modules: list[str] | tuple[str, ...], suite_path: str | Path) -> list[str]:
    """Import a suite's `[suite].plugins`; the suite's folder goes on sys.path first. Returns problem lines."""
    from bench.algorithms import registry
    from bench.errors import problem

    folder = str(Path(suite_path).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    problems = []
    for module in modules:
        if not isinstance(module, str) or not module.replace(".", "").replace("_", "").isalnum():
            problems.append(problem(str(suite_path), "[suite].plugins", f"{module!r} is not a module name",
                                    'write dotted module names, e.g. plugins = ["my_pkg.my_loss"]'))
            continue
        try:
            registry.import_as(module, f"suite module {module}")
        except ModuleNotFoundError as exc:
            problems.append(problem(str(suite_path), "[suite].plugins", f"no module {exc.name!r} (importing "
                                    f"{module!r})", "install it, or put it beside the suite file"))
        except UserError as err:
            problems += err.problems
        except SystemExit as exc:  # sys.exit(0) or raise SystemExit("msg") at import: never bench's own exit
            problems.append(problem(str(suite_path), "[suite].plugins", f"module {module!r} called sys.exit"
                                    f"({exc.code!r}) while being imported{_where(exc)}",
                                    "a plug-in module must only define and register; remove the exit"))
        except Exception as exc:
            problems.append(problem(str(suite_path), "[suite].plugins", f"module {module!r} failed to import: "
                                    f"{why(exc)}", "fix the module"))
    return problems
