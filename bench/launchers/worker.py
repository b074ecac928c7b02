"""One local worker: `python -m bench.launchers.worker PLAN.pkl K` (started by bench.launchers.local).

Loads the plan the parent pickled, walks its runs with `work_through(wait=False)` under the plan's thread count
(runs another worker holds are passed by), and records what it did in worker-K.json beside the plan: finished,
failed, diverged, trained by others, or the one-line user error that stopped it (exit 2).
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    plan_path, index = Path(argv[0]), int(argv[1])
    from bench.cli import _quiet_libraries

    _quiet_libraries()
    from bench.errors import UserError
    from bench.io import write_json_atomic
    from bench.launchers.threads import pinned_threads
    from bench.runner import StageBook, SuiteOutcome, work_through

    with open(plan_path, "rb") as f:
        plan = pickle.load(f)["plan"]
    outcome = SuiteOutcome(plan.results_dir)
    book = StageBook(plan)
    record: dict = {}
    code = 0
    try:
        with pinned_threads(plan.threads if plan.needs_torch else None):
            work_through(plan, book, outcome, None, wait=False)
    except UserError as err:
        record["user_error"], code = err.problems, 2
    except KeyboardInterrupt:
        record["interrupted"], code = True, 130
    record.update({"finished": outcome.finished, "failed": outcome.failed, "diverged": outcome.diverged,
                   "by_others": outcome.by_others, "elsewhere": outcome.elsewhere, "stage_seconds": book.close()})
    write_json_atomic(plan_path.parent / f"worker-{index}.json", record)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
