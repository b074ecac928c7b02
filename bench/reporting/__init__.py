"""The HTML report: a pure function from a results directory to one self-contained page.

    from bench.reporting import write_report
    write_report(Path("results/controlled"), Path("report/controlled"))   # -> report/controlled/index.html

(or `bench report results/controlled`). The page holds the leaderboard, the reward–KL frontier, the displacement
chart, win rate and KL against compute, the alignment tax, sensitivity for sweeps, samples and failed runs; its
charts are embedded SVG data, so it opens offline. The output depends only on the files under `results_dir`
(the date shown is the newest metrics.json's modification time), so it can be golden-tested.

Modules: data.py (read the results), tables.py (pure pandas tables), figures.py (frontier, displacement and
compute charts), sweeps.py (sensitivity, proxy vs gold), page.py (template context and rendering), template.html
(jinja2, autoescaped).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from bench.errors import UserError
from bench.io import write_text_atomic

__all__ = ["ANSWER_FILE", "render_report", "write_report"]

ANSWER_FILE = "answer.txt"  # beside index.html: the report's first screen as text (what `bench run` prints last)


def render_report(results_dir: Path, link_base: str | None = None) -> str:
    """The page for `results_dir` as a string; `link_base` is the results directory as the page's links reach it
    (relative URL; default `../../results/<suite>/`, the layout of `bench run`)."""
    from bench.reporting.page import render

    return render(_context(results_dir, link_base))


def _context(results_dir: Path, link_base: str | None) -> dict:
    from bench.reporting.data import load_results
    from bench.reporting.page import context

    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such results directory; run `bench run <suite.toml>` first")
    if not (results_dir / "runs").is_dir() and not (results_dir / "suite.json").is_file():
        raise UserError(f"{results_dir}: not a results directory (no runs/ and no suite.json)")
    return context(load_results(results_dir), link_base)


def write_report(results_dir: Path, out_dir: Path) -> Path:
    """Write `out_dir/index.html` (and `out_dir/answer.txt`, its first screen as text) for `results_dir` and
    return the page's path. Its run links are relative, from
    `out_dir` to `results_dir`, so they work wherever the two folders sit and the bytes depend only on the data and
    the two folders' relative position."""
    page = Path(out_dir) / "index.html"
    try:
        base = quote(os.path.relpath(Path(results_dir).resolve(), Path(out_dir).resolve()).replace(os.sep, "/")) + "/"
    except ValueError:  # no relative path between them (two Windows drives): the absolute folder
        base = Path(results_dir).resolve().as_uri() + "/"
    from bench.reporting.page import render

    ctx = _context(results_dir, base)
    write_text_atomic(page, render(ctx))
    write_text_atomic(page.parent / ANSWER_FILE, ctx["answer_text"])
    return page
