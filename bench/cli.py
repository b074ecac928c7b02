"""`bench` command line: run | status | report | check | baseline | compare | list | validate | env | export.

Exit status (also in the README):
    0  success
    1  `bench check` found a regression (only `check` exits 1)
    2  user error: one line per problem naming the file, the field and the fix, never a traceback; this includes
       a full disk or a read-only / unwritable folder (the line names the path; finished runs are kept)
    3  `bench run` completed but at least one run failed (each is listed; re-running retries only those);
       diverged runs are results, not failures
    4  internal error (a bug in daa-bench): the traceback is printed; please report it
    130 interrupted (Ctrl-C); finished runs are kept
    143 terminated (SIGTERM: `kill`, `timeout`, a container stop): like Ctrl-C, workers and runs in progress are
        stopped first, one line; finished runs are kept
This module only parses arguments and prints; the work is in the library.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from bench.cli_parser import parser as _parser
from bench.errors import Terminated, UserError, sigterm_stops

EXIT_OK, EXIT_REGRESSION, EXIT_USER, EXIT_RUNS_FAILED, EXIT_CRASH, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_TERMINATED = 143


def _quiet_libraries() -> None:
    """Kept for callers of the old name: bench.quiet.quiet_libraries."""
    from bench.quiet import quiet_libraries

    quiet_libraries()


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except BrokenPipeError:  # `bench --help | head -1`
        _silence_stdout()
        return EXIT_OK
    _quiet_libraries()
    from bench.io import is_storage_error, storage_error

    with sigterm_stops():  # SIGTERM stops like Ctrl-C: workers and run attempts are stopped first
        try:
            commands = {"run": cmd_run, "validate": cmd_validate, "list": cmd_list, "report": cmd_report,
                        "baseline": cmd_baseline, "check": cmd_check, "compare": cmd_compare, "export": cmd_export,
                        "status": cmd_status, "env": cmd_env}
            code = commands[args.command](args)
            sys.stdout.flush()
            return code
        except UserError as err:
            for line in err.problems:
                _say(f"error: {line}")
            return EXIT_USER
        except Terminated:
            _say(f"error: terminated (SIGTERM); runs in progress were stopped, finished runs are kept; re-run the same "
                 f"command to resume (exit {EXIT_TERMINATED})")
            return EXIT_TERMINATED
        except KeyboardInterrupt:
            _say("error: interrupted; finished runs are kept, re-run the same command to resume")
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # `bench list | head`: the reader left; not an error
            _silence_stdout()
            return EXIT_OK
        except Exception as exc:
            if is_storage_error(exc):
                _say(f"error: {storage_error(exc)}")
                return EXIT_USER
            import traceback

            traceback.print_exc()
            _say(f"error: internal error ({type(exc).__name__}); this is a bug in daa-bench, please report it with the "
                 f"traceback above (exit {EXIT_CRASH})")
            return EXIT_CRASH


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def _silence_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _split(values: list[str]) -> list[str]:
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def cmd_validate(args) -> int:
    """Every file is checked (an error in one does not hide the others'); exit 2 if any has a problem."""
    from bench.suite import expand, load_suite

    problems: list[str] = []
    for path in args.suites:
        try:
            suite = load_suite(path, args.overrides)
            specs = expand(suite)
        except UserError as err:
            problems += err.problems
            continue
        print(f"{path}: ok — suite '{suite.name}', {len(suite.entries)} algorithm entries, {len(specs)} runs "
              f"({len(suite.meta.seeds)} seeds), budget {suite.budget.kind} = {suite.budget.amount:g}")
    if problems:
        raise UserError(*problems)
    return EXIT_OK


def cmd_list(args) -> int:
    """Every algorithm with its family, paper, reference / reward-model use, hyper-parameters (default and
    bounds) and origin (built-in, entry point, suite module); then the worlds."""
    from bench.algorithms.registry import all_algorithms, origin
    from bench.plugins import load_worlds, world_origin
    from bench.worlds import WORLDS

    if getattr(args, "suite", None):
        from bench.suite import load_suite

        load_suite(args.suite)  # imports its [suite].plugins
    load_worlds()
    print("algorithms:")
    for name, cls in all_algorithms().items():
        if getattr(cls, "hidden", False) and not getattr(args, "all", False):
            continue
        uses = ("trains" if cls.trains else "training-free") + \
            (", reference model" if cls.uses_reference else ", no reference model") + \
            (", reward model (charged)" if cls.uses_reward_model else "")
        print(f"  {name:<11} {cls.summary}")
        trl = f"; TRL config: {cls.trl_config.split(':')[-1]} ([algorithms.<label>.trl])" \
            if getattr(cls, "trl_config", "") else ""
        print(f"  {'':<11}   family: {getattr(cls, 'family', '') or '-'}; {uses}; from: {origin(name)}{trl}")
        if getattr(cls, "paper", ""):
            print(f"  {'':<11}   paper: {cls.paper}")
        params = [_describe_field(f) for f in dataclasses.fields(cls.Params) if f.name not in _TRAIN_FIELDS]
        if params:
            print(f"  {'':<11}   " + "; ".join(params))
    print("  (every trained algorithm also takes: " + "; ".join(
        _describe_field(f) for f in _train_field_list()) + ")")
    print("  (learning_rate's default is tuned for no algorithm: `bench run` warns when a suite leaves it unset; "
          "suites/controlled.toml has each algorithm's tuned rate for the controlled world)")
    print("worlds:")
    for kind, world in WORLDS.items():
        print(f"  {kind:<11} {world.summary} (from: {world_origin(kind)})")
    return EXIT_OK


def _describe_field(f) -> str:
    """`name=default [bounds]`, e.g. `beta=0.1 (>0)`, `loss_type='grpo' (one of 'grpo', 'dapo')`."""
    meta = f.metadata
    bounds = [f"{op}{meta[key]}" for key, op in (("min", ">="), ("gt", ">"), ("max", "<="), ("lt", "<")) if key in meta]
    if "choices" in meta:
        bounds.append("one of " + ", ".join(map(repr, meta["choices"])))
    return f"{f.name}={f.default!r}" + (f" ({', '.join(bounds)})" if bounds else "")


def _train_field_list():
    from bench.algorithms.registry import TrainParams

    return dataclasses.fields(TrainParams)


def _train_fields() -> set[str]:
    import dataclasses

    from bench.algorithms.registry import TrainParams

    return {f.name for f in dataclasses.fields(TrainParams)}


_TRAIN_FIELDS = _train_fields()


def cmd_run(args) -> int:
    from bench.runner import plan_text, run_suite
    from bench.suite import load_suite

    suite = load_suite(args.suite, args.overrides)
    seeds = None
    if args.seeds:
        try:
            seeds = [int(s) for s in _split([args.seeds])]
        except ValueError:
            raise UserError(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from None
    only = _split(args.only) or None
    from bench.machine import check_device
    from bench.suite import unset_learning_rates

    check_device(args.device)
    unset = unset_learning_rates(suite)
    if unset:
        from bench.io import warn

        warn(f"{args.suite}: no learning_rate for {', '.join(unset)}; they train at the code's default 1e-3, which is "
             "tuned for no algorithm — set [algorithms.<label>].learning_rate or [train].learning_rate "
             "(suites/controlled.toml has tuned rates for the controlled world)")
    if args.dry_run:
        print(plan_text(suite, only=only, seeds=seeds, cache_dir=args.cache_dir))
        return EXIT_OK
    from bench.distributed import is_main
    from bench.launchers import make_launcher

    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: expected a number of worker processes >= 1, got {args.workers}")
    launcher = make_launcher(suite.launcher, kind=args.launcher, workers=args.workers, wait=args.wait,
                             device=args.device)
    outcome = run_suite(suite, results_root=Path(args.results), cache_dir=args.cache_dir, only=only, seeds=seeds,
                        device=args.device, progress=_progress_printer() if is_main() else None, launcher=launcher)
    if not is_main():  # multi-process: rank 0 alone reports and writes the page
        return EXIT_OK
    print(outcome.summary_line())
    from bench.io import warn
    from bench.results import hidden_line, hidden_runs

    hidden = hidden_line(outcome.results_dir, hidden_runs(outcome.results_dir))
    if hidden:
        warn(hidden)
    if not outcome.complete:  # submitted to SLURM: the runs write the summary; the report comes after them
        return EXIT_OK
    if not args.no_report:
        from bench.reporting import write_report

        from bench.io import clean_stale_temps

        clean_stale_temps(Path(args.report_dir) / suite.name)
        page = write_report(outcome.results_dir, Path(args.report_dir) / suite.name)
        print(f"report: {page}")
        _print_answer(page)
    if suite.replication is not None:  # a replication suite: its verdict, in one line (bench/evaluation/replication.py)
        from bench.reporting.replication import verdict_of

        verdict = verdict_of(outcome.results_dir)
        if verdict is not None:
            print(f"verdict: {verdict.headline}")
            if verdict.to_decide:
                print(f"  to decide: {verdict.to_decide}")
    if outcome.failed:
        print(f"error: {len(outcome.failed)} run(s) failed (exit {EXIT_RUNS_FAILED}); {_where_to_look(outcome)}; "
              "re-running the same command retries only them", file=sys.stderr)
        return EXIT_RUNS_FAILED
    return EXIT_OK


def _print_answer(page: Path) -> None:
    """The report's first screen as text (answer.txt beside the page): the verdict, the short table, the caveats."""
    from bench.reporting import ANSWER_FILE
    from bench.terminal import printable

    answer = page.parent / ANSWER_FILE
    if answer.is_file() and answer.read_text(encoding="utf-8").strip():
        print()
        print("\n".join(printable(line) for line in answer.read_text(encoding="utf-8").splitlines()))


def _where_to_look(outcome) -> str:
    """Point at the traceback.txt files that exist; a run whose job was killed has none, only job logs."""
    runs = outcome.results_dir / "runs"
    have = sum((runs / run_id / "traceback.txt").is_file() for run_id, _ in outcome.failed)
    logs = f"`bench status {outcome.results_dir}` lists their job logs"
    if have == len(outcome.failed):
        return f"see {runs}/<run_id>/traceback.txt"
    if have == 0:
        return f"they left no traceback (their process was killed); {logs}"
    return f"see {runs}/<run_id>/traceback.txt where there is one, else {logs}"


def cmd_status(args) -> int:
    from bench.launchers.status import status_text

    text, _counts = status_text(Path(args.results_dir))
    print(text)
    return EXIT_OK


def cmd_env(args) -> int:
    from bench.machine import env_text

    print(env_text(args.cache_dir))
    return EXIT_OK


def cmd_report(args) -> int:
    from bench.io import clean_stale_temps, warn
    from bench.reporting import write_report
    from bench.results import damaged_line, damaged_runs

    results_dir = Path(args.results_dir)
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such results folder; run `bench run <suite>` first")
    out = Path(args.out) if args.out else Path("report") / results_dir.name
    clean_stale_temps(out)
    from bench.results import hidden_line, hidden_runs

    hidden = hidden_line(results_dir, hidden_runs(results_dir))
    if hidden:
        warn(hidden)
    line = damaged_line(damaged_runs(results_dir))
    if line:
        warn(line)
    page = write_report(results_dir, out)
    print(f"report: {page}")
    _print_answer(page)
    return EXIT_OK


def cmd_baseline(args) -> int:
    from bench.baseline import write_baseline

    print(f"baseline: {write_baseline(Path(args.results_dir), Path(args.out))}")
    return EXIT_OK


def cmd_check(args) -> int:
    from bench.check import run_check

    passed, text = run_check(Path(args.results_dir), Path(args.baseline), allow_config_change=args.allow_config_change,
                             out_dir=Path(args.out) if args.out else None, verbose=args.verbose)
    print(text)
    return EXIT_OK if passed else EXIT_REGRESSION


def cmd_compare(args) -> int:
    from bench.check import run_compare

    print(run_compare(Path(args.results_a), Path(args.results_b)))
    return EXIT_OK


def cmd_export(args) -> int:
    from bench.checkpoint import export_run, push_to_hub

    out = export_run(Path(args.results_dir), args.run, Path(args.to))
    print(f"exported: {out} (AutoModelForCausalLM.from_pretrained({str(out)!r}))")
    if args.push_to_hub:
        print(f"pushed: {push_to_hub(out, args.push_to_hub, private=not args.public)}")
    return EXIT_OK


def _progress_printer():
    """Progress on stderr: bars on a terminal, milestone lines in a log (bench/progress.py); none with BENCH_QUIET."""
    if os.environ.get("BENCH_QUIET"):
        return None
    from bench.progress import for_stream

    return for_stream(sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
