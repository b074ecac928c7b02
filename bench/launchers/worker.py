"""One local worker: `python -m bench.launchers.worker PLAN.pkl K` (started by bench.launchers.local).

Loads the plan the parent pickled (its suite's plug-ins imported first: bench.launchers.planfile), walks its runs
with `work_through(wait=False)`, each run in a child process under the plan's thread count (bench.launchers.attempt;
runs another worker holds are passed by), ends when its parent does (bench.launchers.lifeline), and records what it did in worker-K.json beside the plan: finished,
failed, diverged, trained by others, or the one-line user error that stopped it (exit 2).
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    plan_path, index = Path(argv[0]), int(argv[1])
    if len(argv) > 2:
        from bench.launchers.lifeline import die_with_parent

        die_with_parent(int(argv[2]))  # a parent killed by SIGKILL / SIGTERM leaves no orphan training on
    from bench.quiet import quiet_libraries

    quiet_libraries()
    from bench.errors import UserError
    from bench.io import write_json_atomic
    from bench.launchers.attempt import work_through_isolated
    from bench.launchers.planfile import load_plan
    from bench.runner import StageBook, SuiteOutcome

    record: dict = {}
    code = 0
    try:
        plan = load_plan(plan_path)
    except UserError as err:
        write_json_atomic(plan_path.parent / f"worker-{index}.json", {"user_error": err.problems})
        return 2
    outcome = SuiteOutcome(plan.results_dir)
    book = StageBook(plan)
    try:
        work_through_isolated(plan, book, outcome, _log_lines(index), wait=False)
    except UserError as err:
        record["user_error"], code = err.problems, 2
    except KeyboardInterrupt:
        record["interrupted"], code = True, 130
    record.update({"finished": outcome.finished, "failed": outcome.failed, "diverged": outcome.diverged,
                   "by_others": outcome.by_others, "elsewhere": outcome.elsewhere, "stage_seconds": book.close()})
    write_json_atomic(plan_path.parent / f"worker-{index}.json", record)
    return code


def _log_lines(index: int):
    """Progress for worker-K.log (the worker's stdout): one timestamped line per run it starts and when it is done
    with its queue, and each shared stage's milestones — so a log shows what the worker is doing between the parent's
    progress lines."""
    import time

    from bench.progress import LineProgress

    stages = LineProgress(sys.stdout)
    start = time.monotonic()

    def progress(stage: str, done: int, total: int) -> None:
        if stage != "runs":
            stages(stage, done, total)
            return
        what = f"run {done + 1} of {total} in its queue starting" if done < total else f"queue done ({total} runs)"
        print(f"worker {index} [{time.monotonic() - start:7.1f} s] {what}", flush=True)

    return progress


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
