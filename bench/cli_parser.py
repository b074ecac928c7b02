"""The `bench` command line's arguments: every subcommand, its options and their help (argparse).

Split from bench/cli.py (issue 23), which dispatches the parsed command, prints and maps failures to exit codes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description="Benchmark Direct Alignment Algorithms against PPO "
                                "under equal compute.")
    p.add_argument("--version", action="version", version=version_line(),
                   help="print daa-bench's version (and torch / transformers / trl) and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = sub.add_parser

    def described(name: str, **kw):  # `bench <command> -h` shows the line `bench -h` lists
        return add_parser(name, description=kw.get("help"), **kw)

    sub.add_parser = described  # type: ignore[method-assign]

    run = sub.add_parser("run", help="train and evaluate every run of a suite, then write the report")
    run.add_argument("suite", help="suite TOML file, e.g. suites/controlled.toml")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a suite field (validated like the file), e.g. --set budget.flops=1e12")
    run.add_argument("--only", action="append", default=[], metavar="LABEL",
                     help="run only these algorithm entries (repeatable or comma-separated)")
    run.add_argument("--seeds", default=None, help="run only these seeds, e.g. 0,1")
    run.add_argument("--dry-run", action="store_true", help="print the run plan and compute estimate; train nothing")
    run.add_argument("--results-dir", "--results", dest="results", default="results",
                     help="results root: runs go to RESULTS_DIR/<suite>/ (default: results/)")
    run.add_argument("--report-dir", default="report", help="report root: the page goes to REPORT_DIR/<suite>/ "
                     "(default: report/)")
    run.add_argument("--cache-dir", default=None, help="shared-stage cache (default: $BENCH_CACHE or ~/.cache/daa-bench)")
    run.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:1, ...")
    run.add_argument("--no-report", action="store_true", help="skip writing the HTML report at the end")
    run.add_argument("--launcher", default=None, choices=("auto", "sequential", "local", "slurm", "submitit-local"),
                     help="where the runs execute (default: the suite's [launcher].kind, else auto: local worker "
                          "processes in the layout fastest for this machine)")
    run.add_argument("--workers", type=int, default=None, metavar="N",
                     help="local: N worker processes (each pinned to [launcher].threads_per_run threads or one GPU)")
    run.add_argument("--wait", action="store_true", help="slurm: wait for the job array (progress bar), then "
                     "write the summary and the report; without it `bench run` returns after submitting")

    st = sub.add_parser("status", help="queued / running / finished / failed runs of results/<suite> (job ids, logs)")
    st.add_argument("results_dir", help="a results/<suite> folder written by `bench run`")

    env = sub.add_parser("env", help="versions, devices, cache and this machine's measured fp32 matmul peak")
    env.add_argument("--cache-dir", default=None, help="shared-stage cache to describe (default: $BENCH_CACHE or "
                     "~/.cache/daa-bench)")

    val = sub.add_parser("validate", help="check suite files and print each one's run plan size")
    val.add_argument("suites", nargs="+", metavar="suite", help="one or more suite TOML files, e.g. suites/*.toml")
    val.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override a suite field before validating, as `bench run --set` does")

    lst = sub.add_parser("list", help="registered algorithms (family, paper, hyper-parameters) and worlds")
    lst.add_argument("--all", action="store_true", help="also list test-only algorithms (fake)")
    lst.add_argument("--suite", default=None, help="also import this suite's [suite].plugins modules")

    base = sub.add_parser("baseline", help="record results/<suite> as a baseline JSON for `bench check`")
    base.add_argument("results_dir", help="a results/<suite> folder written by `bench run`")
    base.add_argument("-o", "--out", required=True, help="the baseline JSON to write, e.g. "
                      "results/baselines/<suite>.json")

    chk = sub.add_parser("check", help="compare results/<suite> with a baseline: exit 0 pass, 1 regression")
    chk.add_argument("results_dir", help="a results/<suite> folder written by `bench run`")
    chk.add_argument("--baseline", required=True, help="the baseline JSON written by `bench baseline`")
    chk.add_argument("--allow-config-change", action="store_true",
                     help="do not fail when the suite or world differs from the baseline's")
    chk.add_argument("-o", "--out", default=None, help="folder for check.json / check.md (default: the results dir)")
    chk.add_argument("-v", "--verbose", action="store_true",
                     help="print every checked row (default: only the problems; check.md always has all)")

    cmp_ = sub.add_parser("compare", help="the check table for two result sets, without pass/fail")
    cmp_.add_argument("results_a", help="A (plays the baseline): a results/<suite> folder or a baseline JSON")
    cmp_.add_argument("results_b", help="B (read against A): a results/<suite> folder or a baseline JSON")

    rep = sub.add_parser("report", help="render report/<suite>/index.html from results/<suite>")
    rep.add_argument("results_dir", help="a results/<suite> folder written by `bench run`")
    rep.add_argument("-o", "--out", default=None, help="folder for index.html and answer.txt "
                     "(default: report/<suite>/)")

    exp = sub.add_parser("export", help="copy a run's saved policy (save_policy = \"final\") out as a Hugging Face "
                         "checkpoint, optionally pushing it to the Hub")
    exp.add_argument("results_dir", help="results/<suite>")
    exp.add_argument("--run", required=True, metavar="RUN_ID", help="the run id (its folder under runs/)")
    exp.add_argument("-o", "--out", "--to", dest="to", required=True, metavar="DIR",
                     help="a new (or empty) folder for the checkpoint")
    exp.add_argument("--push-to-hub", default=None, metavar="REPO", help="also upload DIR to this Hub model repo")
    exp.add_argument("--public", action="store_true", help="create the Hub repository public (default: private)")
    return p


def version_line() -> str:
    """`bench <version> (torch X, transformers Y, trl Z)` from installed metadata (imports none of them)."""
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    own = version("daa-bench") or _source_version() or "unknown"
    deps = ", ".join(f"{n} {v}" for n in ("torch", "transformers", "trl") if (v := version(n)))
    return f"bench (daa-bench) {own}" + (f" ({deps})" if deps else "")


def _source_version() -> str | None:
    """The version in pyproject.toml when running from a checkout that is not pip-installed."""
    import tomllib

    path = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return None
