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
        work_through_isolated(plan, book, outcome, _Log(index), wait=False)
    except UserError as err:
        record["user_error"], code = err.problems, 2
    except KeyboardInterrupt:
        record["interrupted"], code = True, 130
    record.update({"finished": outcome.finished, "failed": outcome.failed, "diverged": outcome.diverged,
                   "by_others": outcome.by_others, "elsewhere": outcome.elsewhere, "stage_seconds": book.close()})
    write_json_atomic(plan_path.parent / f"worker-{index}.json", record)
    return code


class _Log:
    """Progress for worker-K.log (the worker's stdout): each run's start and finish line (bench.runlines, the same
    lines the parent prints), each shared stage's milestones, and a timestamped line when its queue is done — so
    the log is never empty and shows what the worker did between the parent's lines."""

    def __init__(self, index: int):
        import time

        from bench.progress import LineProgress

        self.index = index
        self.stages = LineProgress(sys.stdout)
        self.start = time.monotonic()

    def __call__(self, stage: str, done: int, total: int) -> None:
        import time

        if stage != "runs":
            self.stages(stage, done, total)
        elif done >= total:
            print(f"worker {self.index} [{time.monotonic() - self.start:7.1f} s] queue done ({total} runs)", flush=True)

    def line(self, text: str) -> None:
        from bench.progress import write_line

        write_line(sys.stdout, text)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
