"""The documentation cannot drift from the code: docs/suite-format.md's key tables are what docs/generate.py makes
from the dataclasses the suite is validated with; docs/results-schema.md lists exactly the columns of summary.csv
(bench/results.py) and every file a results directory and a run folder hold; README and docs name only files that
exist; the LICENSE is the one pyproject declares; the README's account of the default suite matches the suite."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bench.cli import main
from bench.results import AXIS_COLUMNS, SUMMARY_HEAD, SUMMARY_METRICS
from test_runner import write_suite

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCHEMA = (DOCS / "results-schema.md").read_text(encoding="utf-8")


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(text: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first markdown table after `heading`."""
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines()[1:]:
        if line.startswith("|"):
            if not set(line) <= set("|-: "):
                rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif rows:
            break
    return rows[1:]  # without the header row


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# ------------------------------------------------------------------------------------------------ suite format

def test_suite_format_tables_are_generated_from_the_code():
    gen = _generator()
    text = gen.SUITE_FORMAT.read_text(encoding="utf-8")
    new, changed = gen.render(text, gen.blocks())
    assert not changed, f"docs/suite-format.md is stale in {changed}: run `python docs/generate.py`"
    assert new == text


def test_generator_check_mode_exits_1_on_a_stale_block(tmp_path, monkeypatch):
    gen = _generator()
    stale = tmp_path / "suite-format.md"
    stale.write_text(gen.SUITE_FORMAT.read_text(encoding="utf-8").replace("| `max_epochs` |", "| `max_epoch` |"))
    monkeypatch.setattr(gen, "SUITE_FORMAT", stale)
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0 and gen.main(["--check"]) == 0  # regenerating repairs it


def test_suite_format_documents_every_section_and_key():
    from bench.suite import SECTIONS

    text = (DOCS / "suite-format.md").read_text(encoding="utf-8")
    for section in SECTIONS:
        heading = "## `[algorithms.<label>]`" if section == "algorithms" else f"## `[{section}]`"
        assert heading in text, section
    for needle in ('algorithm = "dpo"', "--set", "## Sweeps", "budget_flops", "world_seed", "--set budget.seconds"):
        assert needle in text, needle
    # the example at the top is a valid suite
    example = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    assert main(["validate", str(_write(example))]) == 0


def _write(text: str) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "example.toml"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ results schema

def test_every_summary_column_is_documented_and_nothing_else():
    documented = [name for row in _table(SCHEMA, "## Columns of summary.csv") for name in _names(row[0])[:1]]
    expected = [*SUMMARY_HEAD, "<hyper-parameter>", *[c for c in AXIS_COLUMNS if c not in SUMMARY_METRICS],
                *SUMMARY_METRICS]
    assert documented == expected, (set(documented) ^ set(expected)) or "order differs from bench/results.py"
    assert all(row[1] for row in _table(SCHEMA, "## Columns of summary.csv")), "a column without a meaning"


def test_every_file_a_run_writes_is_documented(tmp_path, monkeypatch):
    """Run a finished and a failed fake run; every file and folder they leave is described on the page, and every
    file the page describes is named in the code that writes it."""
    monkeypatch.setenv("BENCH_QUIET", "1")
    path = write_suite(tmp_path, """
[algorithms.fake]
beta = 0.1

[algorithms.broken]
algorithm = "fake"
fail = true
""", seeds=(0,))
    assert main(["run", str(path), "--results", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"),
                 "--no-report"]) == 3
    results = tmp_path / "results" / "fk"
    run_files = {n for row in _table(SCHEMA, "## Files of a run folder") for n in _names(row[0])}
    dir_files = {n.rstrip("/") for row in _table(SCHEMA, "## Files of a results directory") for n in _names(row[0])}
    found_dir = {p.name for p in results.iterdir()}
    assert found_dir <= dir_files, found_dir - dir_files
    found_run = {p.name for d in (results / "runs").iterdir() for p in d.iterdir()}
    assert found_run <= run_files, found_run - run_files
    assert "traceback.txt" in found_run and {"config.json", "metrics.json", "curves.csv", "samples.jsonl"} <= found_run
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "bench").rglob("*.py"))
    for name in run_files | dir_files - {"runs", ".locks"}:
        assert f'"{name}"' in source, f"{name} is documented but no code in bench/ names it"


# ------------------------------------------------------------------------------------------------ references

REPO_PATH = re.compile(r"(?<![\w/.-])((?:bench|docs|suites|tests|benchmarks|results/baselines)/[\w./<>*-]*\w)")


@pytest.mark.parametrize("doc", ["README.md", "docs/suite-format.md", "docs/results-schema.md", "docs/gpu.md",
                                 "docs/guide.md", "docs/plugins.md"])
def test_docs_name_only_files_that_exist(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    for link in re.findall(r"\]\(([^)#]+)\)", text):  # markdown links
        if not re.match(r"[a-z]+://", link):
            assert (ROOT / doc).parent.joinpath(link).exists(), f"{doc}: link to missing {link}"
    for path in REPO_PATH.findall(text):
        if "<" in path or "*" in path or "/my-" in path or path.startswith("benchmarks/results/"):
            continue  # a pattern or a file the user creates, not a file of the repository
        assert (ROOT / path).exists(), f"{doc}: names {path}, which is not in the repository"


def test_code_names_only_repository_files_that_exist():
    """Docstrings and comments that point at a repository file (bench/..., suites/..., results/baselines/...)."""
    sources = [*(ROOT / "bench").rglob("*.py"), *(ROOT / "bench").rglob("*.html"), *(ROOT / "suites").glob("*.toml"),
               *(ROOT / "benchmarks").glob("*.py")]
    missing = [(f.relative_to(ROOT), p) for f in sources for p in REPO_PATH.findall(f.read_text(encoding="utf-8"))
               if "<" not in p and "*" not in p and not (ROOT / p).exists()]
    assert not missing, missing


def test_nothing_cites_notes_that_are_not_in_the_repository():
    files = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "bench").rglob("*.py"),
             *(ROOT / "suites").glob("*.toml"), *(ROOT / "bench").rglob("*.html")]
    for f in files:
        for name in ("DESIGN.md", "FIELD-NOTES", "FIELD_NOTES", "MISSION.md", "STYLE.md"):
            if name in f.read_text(encoding="utf-8") and not (ROOT / name).exists():
                pytest.fail(f"{f.relative_to(ROOT)} cites {name}, which is not in the repository")


def test_license_is_the_one_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a stub


def test_readme_says_which_algorithms_the_default_suite_leaves_out():
    from bench.algorithms.registry import all_algorithms

    suite = tomllib.loads((ROOT / "suites" / "controlled.toml").read_text(encoding="utf-8"))
    used = {t.get("algorithm", label) for label, t in suite["algorithms"].items()}
    shipped = {n for n, cls in all_algorithms().items() if cls.__module__.startswith("bench.") and n != "fake"}
    readme = (ROOT / "docs" / "guide.md").read_text(encoding="utf-8")
    sentence = re.search(r"every registered algorithm except (.*?), which", readme, re.S)
    assert sentence, "docs/guide.md: the default suite's sentence about its algorithms is gone"
    assert set(_names(sentence.group(1))) == shipped - used


def test_generator_runs_as_a_script():
    proc = subprocess.run([sys.executable, str(DOCS / "generate.py"), "--check"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------------------------ README front page
def test_readme_findings_table_is_the_baseline():
    """The README's findings table is what docs/findings.py makes of results/baselines/controlled.json."""
    proc = subprocess.run([sys.executable, str(DOCS / "findings.py"), "--check"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = _table((ROOT / "README.md").read_text(encoding="utf-8"), "<!-- generated:findings -->")
    import json

    baseline = json.loads((ROOT / "results" / "baselines" / "controlled.json").read_text(encoding="utf-8"))
    assert {_names(r[0])[0] for r in rows} == set(baseline["settings"])
    dpo = next(r for r in rows if _names(r[0]) == ["dpo"])
    assert dpo[2].startswith(f"{baseline['settings']['dpo']['metrics']['win_rate']['mean']:.3f} [")


def test_readme_front_page_is_short_and_has_what_a_new_user_needs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first = text.split("\n## ")[0]
    assert len(first.split()) < 80, "README: the first screen is one sentence and a picture"
    assert (ROOT / "docs" / "report-first-screen.png").stat().st_size < 400_000
    for needle in ("## Two commands", "python -m pytest -q -rs", "## Contents", "## Citation", "@software",
                   "--index-url https://download.pytorch.org/whl/cpu", "chromium", "slurm-wlm", "-m slow"):
        assert needle in text, needle
    assert "OWNER" not in text and "not yet measured" not in text
    assert len(text.split()) < 1200, len(text.split())
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = re.search(r"```bash\n(python -m pytest[^\n]*)\n```", text).group(1)
    assert command in ci, "CI must run the README's test command"


def test_replication_tables_are_the_baselines():
    """docs/replications.md's table and README's compact one are what benchmarks/replications.py makes of the
    committed replication baselines."""
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "replications.py"), "--check"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
