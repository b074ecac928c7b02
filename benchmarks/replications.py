"""The replication table (docs/replications.md), from the committed baselines of the replication suites (suites/replications/).

    python benchmarks/replications.py                      # print the Markdown table
    python benchmarks/replications.py --write docs/replications.md    # replace the table between its two markers
    python benchmarks/replications.py --write-readme README.md        # the README's compact table (same markers)
    python benchmarks/replications.py --check              # exit 1 when either table is stale (tests/test_docs.py)

One row per suite in suites/replications/: the claim, its citation, the verdict (reproduced / contradicted /
inconclusive) and the deciding number with its paired 95% interval (for an inconclusive one, the seeds and run time
that would tell its sign; a tuned arm selected at its grid's edge is named), read from `results/baselines/<name>.json`
(`bench baseline` stores the verdict there, bench/check.py), and the command that reruns it. A suite without a
committed baseline is listed as "not yet run". Contradictions stay in the table with their mechanism: a harness
that only ever agrees with the papers is not measuring anything.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- replications:start -->", "<!-- replications:end -->"
HEAD = ("| claim | citation | verdict | deciding number (95% paired interval) | rerun |\n"
        "|---|---|---|---|---|")


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _number(rep: dict) -> str:
    d = rep.get("deciding") or {}
    mean, lo, hi = d.get("difference"), d.get("lo"), d.get("hi")
    if mean is None or (isinstance(mean, float) and not math.isfinite(mean)):
        return _cell(rep.get("reason") or "–")
    where = {"matched_kl": "at matched KL", "frontier": "against the frontier"}.get(rep.get("at"),
                                                                                  "at matched budget")
    if d.get("condition") and rep.get("at") in ("matched_kl", "frontier"):
        where += f" ({d['condition']})"
    ci = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else " (one seed)"
    text = f"{rep.get('metric')} {d.get('a')} − {d.get('b')} = {mean:+.3f}{ci} {where}, {d.get('seeds')} seeds"
    if rep.get("to_decide"):  # inconclusive: the seeds (and run time) that would tell its sign
        text += f". To decide: {rep['to_decide']}"
    if rep.get("also_at_kl"):
        text += f". Also: {rep['also_at_kl']}"
    edges = [s for s in rep.get("selection") or [] if "the grid's lowest" in s or "the grid's highest" in s]
    if edges:
        text += ". Selected at a grid's edge: " + "; ".join(edges)
    return _cell(text)


def _suite_path(rep: dict, data: dict) -> str:
    """The suite's path in this repository (a baseline made from an absolute path still names its suite)."""
    return f"suites/replications/{Path(rep.get('path') or data.get('suite') or 'suite').stem}.toml"


def compact_row(rep: dict, path: str) -> str:
    """The README's row: the suite (linked), the verdict, the deciding difference with its interval and seeds."""
    d = rep.get("deciding") or {}
    mean, lo, hi = d.get("difference"), d.get("lo"), d.get("hi")
    if mean is None:
        number = "nothing matched"
    else:
        compare = rep.get("compare", "")
        if rep.get("beyond"):
            compare = f"({compare}) − ({rep['beyond']})"
        ci = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None and hi is not None else ""
        number = f"{rep.get('metric')}: {compare.replace(' - ', ' − ')} {mean:+.3f}{ci} ({d.get('seeds')})"
    return f"| [{Path(path).stem}]({path}) | {rep.get('verdict')} | {_cell(number)} |"


def compact(baselines: list[Path]) -> str:
    lines = ["| suite | verdict | deciding paired difference, 95% interval (seeds) |", "|---|---|---|"]
    for b in baselines:
        data = json.loads(Path(b).read_text())
        rep = data.get("replication")
        if rep:
            lines.append(compact_row(rep, _suite_path(rep, data)))
    return "\n".join(lines) + "\n"


def _replace(page: str, text: str) -> str | None:
    if START not in page or END not in page:
        return None
    head, rest = page.split(START, 1)
    return head + START + "\n" + text + END + rest.split(END, 1)[1]


def row(rep: dict, path: str) -> str:
    verdict = f"**{rep.get('verdict')}**"
    if rep.get("verdict") == "contradicted" and rep.get("mechanism"):
        verdict += f": {rep['mechanism']}"
    return (f"| {_cell(rep.get('claim', ''))} | {_cell(rep.get('citation', ''))} | {_cell(verdict)} | "
            f"{_number(rep)} | `bench run {path}` |")


def table(baselines: list[Path], suites: list[Path] = ()) -> str:
    """The Markdown table: baselines with a verdict, then suites with none yet ("not yet run")."""
    lines, seen = [HEAD], set()
    for b in baselines:
        data = json.loads(Path(b).read_text())
        rep = data.get("replication")
        if not rep:
            continue
        path = _suite_path(rep, data)
        seen.add(Path(path).stem)
        lines.append(row(rep, path))
    for s in suites:
        if s.stem in seen:
            continue
        rep = tomllib.loads(s.read_text()).get("replication", {})
        lines.append(f"| {_cell(rep.get('claim', ''))} | {_cell(rep.get('citation', ''))} | not yet run | – | "
                     f"`bench run {s.relative_to(ROOT) if s.is_relative_to(ROOT) else s}` |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the table between the markers in this file")
    parser.add_argument("--write-readme", type=Path, help="replace the compact table between the markers in this file")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when docs/replications.md's or README.md's table differs from the baselines")
    args = parser.parse_args(argv)
    suites = sorted((ROOT / "suites" / "replications").glob("*.toml"))
    baselines = [b for b in (ROOT / "results" / "baselines" / f"{s.stem}.json" for s in suites) if b.is_file()]
    full, short = table(baselines, suites), compact(baselines)
    if args.check:
        stale = [str(f.relative_to(ROOT)) for f, text in ((ROOT / "docs" / "replications.md", full),
                                                         (ROOT / "README.md", short))
                 if _replace(f.read_text(), text) != f.read_text()]
        if stale:
            print(f"stale replication table in {', '.join(stale)}: run python benchmarks/replications.py --write "
                  "docs/replications.md --write-readme README.md", file=sys.stderr)
            return 1
        return 0
    if not args.write and not args.write_readme:
        sys.stdout.write(full)
        return 0
    for target, text in ((args.write, full), (args.write_readme, short)):
        if target is None:
            continue
        page = _replace(target.read_text(), text)
        if page is None:
            print(f"{target}: no {START} ... {END} markers; add them where the table goes", file=sys.stderr)
            return 2
        target.write_text(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
