"""A warm process that forks one child per run: `python -m bench.launchers.zygote PARENT_PID RESPONSE_FD [WARM]`.

A run attempt in a fresh interpreter (bench.launchers.attempt) pays Python's start and the imports of torch,
transformers, datasets and TRL every time: 5-17 s per run on a 2-core machine, the largest cost of a default run
after its forward passes. A launcher process therefore starts this zygote once (the idea of Android's zygote and
of multiprocessing's forkserver start method): it imports those libraries, never runs a tensor operation (so no
intra-op thread pool exists to be broken by fork), and forks a child per request. The child is a fresh run
attempt in every way that matters: its own process (a SIGKILL, segfault or os._exit takes only it), a fresh copy
of the zygote's untouched state, the plan and its plug-ins loaded after the fork, seeds set by the run itself.

Protocol (one line each; requests on stdin, answers on RESPONSE_FD so that a run's own prints keep stdout):
    parent → zygote   RUN <plan path> <run id> <requested-at unix time>
    zygote → parent   PID <child pid>            when forked
                      EXIT <wait status> <peak RSS KB>   when the child ended (os.wait4 in the zygote)
EOF on stdin ends the zygote. It dies with its parent and its children with it (bench.launchers.lifeline); it
ignores SIGINT (the launcher decides what a Ctrl-C does to the run) and its children restore Python's handler.
"""

from __future__ import annotations

import os
import signal
import sys

from bench.execute import REQUESTED_AT  # noqa: E402  (the run's start_s: process start + imports, bench.execute)

# What every torch run imports, in the order its child would (the world, the trainers, the evaluation).
WARM_MODULES = ("torch", "numpy", "transformers", "transformers.models.gpt2.modeling_gpt2", "datasets",
                "transformers.trainer", "trl", "bench.modeling", "bench.execute", "bench.runner", "bench.stages",
                "bench.algorithms.dpo_family", "bench.algorithms.online_dpo", "bench.algorithms.ppo_rlhf",
                "bench.evaluation.final", "bench.evaluation.curves")
WARM_NAMES = (("trl", ("DPOTrainer", "DPOConfig", "CPOTrainer", "CPOConfig")),)
# lm-eval (the alignment-tax reading) costs 3-6 s of import per run, when the suite names lm-eval tasks. Imported
# here it starts no thread and moves no random state or torch flag (checked with torch 2.13 / lm-eval 0.4.13).
LM_EVAL_MODULES = ("lm_eval", "lm_eval.evaluator", "lm_eval.tasks", "lm_eval.models.huggingface")


def warm_up(lm_eval: bool = False) -> None:
    """Import what runs import; a module that fails to import here fails (with its message) in the run instead."""
    import importlib

    for name in WARM_MODULES + (LM_EVAL_MODULES if lm_eval else ()):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional dependency missing: the run itself will say so
            pass
    for module, names in WARM_NAMES:
        try:
            mod = importlib.import_module(module)
            for n in names:
                getattr(mod, n, None)  # TRL's lazy module imports a trainer on first attribute access
        except Exception:  # noqa: BLE001
            pass


def _child(plan_path: str, run_id: str, requested_at: str, fds: tuple[int, ...]) -> None:
    """In the forked child: become a run attempt (bench.launchers.attempt.main) and exit with its code."""
    code = 1
    try:
        for fd in fds:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ[REQUESTED_AT] = requested_at
        from bench.launchers.attempt import main

        code = main([plan_path, run_id, str(os.getppid())])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported by the parent as a death without result
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(parent: int, response_fd: int, warm: str) -> int:
    """warm: "" (import nothing: torch-free plans), "warm" (torch, transformers, TRL...), "warm-lm-eval" (and
    lm-eval)."""
    from bench.launchers.lifeline import die_with_parent

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from bench.quiet import quiet_libraries

    quiet_libraries()
    if warm:
        warm_up(lm_eval=warm == "warm-lm-eval")
    answers = os.fdopen(response_fd, "w", buffering=1)
    answers.write("READY\n")
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 4 or parts[0] != "RUN":
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(parts[1], parts[2], parts[3], (0, response_fd))
        answers.write(f"PID {pid}\n")
        while True:
            try:
                _, status, usage = os.wait4(pid, 0)
                break
            except ChildProcessError:
                status, usage = 0, None
                break
            except InterruptedError:
                continue
        answers.write(f"EXIT {status} {usage.ru_maxrss if usage is not None else 0}\n")
    return 0


if __name__ == "__main__":
    sys.exit(serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""))
