"""The house (issue 23): the package-level import graph of bench/, computed from the source with ast, imports
inside functions included (a lazy import is still a dependency). No cycles between bench/'s top-level modules
and packages; the library never imports the command line; evaluation and reporting never import algorithms
(they read what an algorithm declares through data: results, a registry description passed in)."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _module_name(path: Path) -> str:
    parts = path.relative_to(BENCH.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str | None:
    """bench.runner -> runner; bench.launchers.local -> launchers; bench -> None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "bench" and len(parts) > 1 else None


def imports(path: Path) -> set[str]:
    """Every bench module `path` imports, anywhere in it (module level, functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("bench")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("bench"):
                out |= {f"{target}:{a.name}" for a in node.names}  # resolved by module_graph
    return out


def _resolve(target: str, files) -> str:
    """`pkg:name` -> pkg.name when that is a module (`from bench import runner`), else pkg."""
    if ":" not in target:
        return target
    package, name = target.split(":")
    return f"{package}.{name}" if f"{package}.{name}" in files else package


def module_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in BENCH.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        # `bench` itself (bench/__init__.py) runs before any bench module: not an edge of its own
        graph[name] = {m for m in map(lambda t: _resolve(t, files), imports(path)) if m in files and m != name
                       and m != "bench"}
    return graph


def unit_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        src = _unit(module)
        if src is None:
            continue
        graph.setdefault(src, set())
        graph[src] |= {t for t in map(_unit, targets) if t is not None and t != src}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_bench_packages():
    found = cycles(unit_graph())
    graph = unit_graph()
    pairs = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and a in graph.get(b, ()))
    assert not found, f"import cycles between bench/ packages: {found}; mutual pairs: {pairs}"


def test_no_import_cycle_between_bench_modules():
    assert not cycles(module_graph())


def test_the_library_never_imports_the_command_line():
    graph = module_graph()
    assert not sorted(m for m, targets in graph.items() if "bench.cli" in targets and m != "bench.cli")


def test_evaluation_and_reporting_never_import_algorithms():
    graph = unit_graph()
    assert "algorithms" not in graph.get("evaluation", set())
    assert "algorithms" not in graph.get("reporting", set())


# ~450 lines is where a module starts holding two ideas (issue 23). A module past it must be ONE idea that would
# only be harder to read split, named here with the reason and a ceiling.
MAX_LINES = 450
ONE_IDEA = {
    # one pure reference loss per variant (DPO, IPO, cDPO, SimPO, ORPO, ...), each a formula from its paper tested
    # against hand numbers: splitting them would scatter the table a reviewer compares with TRL
    "bench/algorithms/reference_losses.py": 600,
    # the controlled world's grammar: the generator and the well-formedness rules the gold reward checks must be read
    # side by side (a rule the generator breaks is a defect, gold v4/v5)
    "bench/worlds/controlled/language.py": 560,
    # where the Hub world's model, judge and data come from: one resolution path (local path, HF cache, Hub) whose
    # every failure is one line naming the [world] field; the per-source branches share its error wording
    "bench/worlds/hub/sources.py": 500,
}


def test_no_module_holds_two_ideas():
    root = BENCH.parent
    sizes = {str(p.relative_to(root)): len(p.read_text(encoding="utf-8").splitlines()) for p in BENCH.rglob("*.py")}
    too_long = {f: n for f, n in sizes.items() if n > ONE_IDEA.get(f, MAX_LINES)}
    assert not too_long, f"modules over {MAX_LINES} lines (split them, or argue one idea in ONE_IDEA): {too_long}"
    assert all(sizes.get(f, 0) > MAX_LINES for f in ONE_IDEA), "an ONE_IDEA entry is short now: remove it"
