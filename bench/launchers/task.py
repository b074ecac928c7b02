"""`python -m bench.launchers.task PLAN.pkl RUN_ID`: one run of a submitted plan, as one rank of a torchrun
launch inside a multi-GPU SLURM job (bench.launchers.submission.torchrun_command)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from bench.launchers.submission import _load, run_one

    plan = _load(argv[0])
    spec = next(s for s in plan.specs if s.run_id == argv[1])
    from bench import distributed as dist

    dist.ensure_initialized()
    print(run_one(plan, spec))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
