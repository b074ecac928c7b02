"""One run's life in a child process: `python -m bench.launchers.attempt PLAN RUN_ID PARENT_PID`.

Under every local launcher (sequential, each local worker, the parent finishing what the workers left) a run is
trained in a child process, never in the process that holds the queue: a run the kernel kills (SIGKILL, what the
out-of-memory killer sends), a segfault in a native library or a plug-in that calls os._exit takes only its
child with it. The parent holds the run's lock throughout, watches the child (os.wait4 gives its peak RSS), and

    the child wrote a result (finished / diverged / failed, via bench.execute.execute_run) -> that result
    the child died without one                                                            -> another attempt
    the child was stopped from outside (SIGTERM / SIGINT: scancel, kill)   -> a stop, like Ctrl-C (no attempt)
    ATTEMPTS attempts died                  -> metrics.json status "failed", with the cause, e.g.
                                               "killed by signal 9 (SIGKILL) — out of memory? peak RSS 3512 MB
                                               (2 attempts)"; the suite goes on

The child dies with its parent (bench.launchers.lifeline); Ctrl-C or SIGTERM of the parent stops the child first.
A user error inside the child (its plug-in no longer imports, the disk is full) is passed up as that error.
Multi-process launches (torchrun ranks) execute in-process; a SLURM / submitit task runs its run here too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.errors import UserError

ATTEMPTS = 2  # a run whose process dies this many times without a result is recorded failed
POLL_S = 0.1
GRACE_S = 15.0


class PlanFiles:
    """The plan pickled once per parent (bench.launchers.planfile) for its attempts to load; removed at close."""

    def __init__(self, plan):
        self.plan = plan
        self.path: Path | None = None

    def get(self) -> Path:
        if self.path is None:
            import secrets

            from bench.launchers.planfile import dump_plan

            folder = Path(self.plan.results_dir) / ".launch" / "attempts"
            self.path = dump_plan(self.plan, folder / f"plan-{os.getpid()}-{secrets.token_hex(4)}.pkl")
        return self.path

    def close(self) -> None:
        if self.path is not None:
            try:
                self.path.unlink()
            except OSError:
                pass
            self.path = None


def isolated(plan):
    """An `execute(spec, book, progress) -> (status, error)` for bench.runner.work_through that runs each run in
    a child process, and a `close()` that removes the plan file and ends the zygote.

    Children are forked by a zygote (bench.launchers.zygote) that imported torch / transformers / TRL once, so a
    run no longer pays the interpreter's start and those imports; BENCH_ZYGOTE=0 starts a fresh interpreter per
    attempt instead (`python -m bench.launchers.attempt`), as before."""
    files = PlanFiles(plan)
    lm_eval = any(getattr(s.eval, "lm_eval_tasks", ()) for s in plan.specs)
    warm = ("warm-lm-eval" if lm_eval else "warm") if plan.needs_torch else ""
    zygote = Zygote(warm) if os.environ.get("BENCH_ZYGOTE", "1") != "0" else None

    def execute(spec, book, progress=None):
        return run_in_child(plan, spec, files.get(), zygote)

    def close():
        if zygote is not None:
            zygote.close()
        files.close()

    return execute, close


class Zygote:
    """The parent's side of bench.launchers.zygote: started on first use, restarted if it died."""

    def __init__(self, warm: str):
        self.warm = warm
        self.proc: subprocess.Popen | None = None
        self.answers = None

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        args = [sys.executable, "-m", "bench.launchers.zygote", str(os.getpid()), str(write_fd)]
        try:
            self.proc = subprocess.Popen(args + ([self.warm] if self.warm else []), stdin=subprocess.PIPE,
                                         pass_fds=(write_fd,), cwd=os.getcwd(), text=True)
        finally:
            os.close(write_fd)
        self.answers = os.fdopen(read_fd, "r")
        if self.answers.readline().strip() != "READY":
            self.close()
            raise OSError("the run zygote (bench.launchers.zygote) did not start")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def run(self, plan_path: Path, run_id: str) -> tuple[int, int] | None:
        """Fork a child that executes the run; wait for it. (wait status, peak RSS KB), or None when the zygote
        itself died (the caller counts that attempt as a death and a fresh zygote serves the next one)."""
        if not self.alive():
            self.close()
            self._start()
        try:
            self.proc.stdin.write(f"RUN {plan_path} {run_id} {time.time():.6f}\n")
            self.proc.stdin.flush()
        except OSError:
            return None
        pid = None
        try:
            line = self.answers.readline().split()
            if len(line) != 2 or line[0] != "PID":
                return None
            pid = int(line[1])
            line = self.answers.readline().split()
            if len(line) != 3 or line[0] != "EXIT":
                return None
            return int(line[1]), int(line[2])
        except BaseException:  # Ctrl-C / SIGTERM of the parent, or an error: the child stops too
            if pid is not None:
                self._stop_child(pid)
            raise

    def _stop_child(self, pid: int, grace: float = GRACE_S) -> None:
        """SIGINT (the run records itself interrupted), then SIGKILL after `grace`; the zygote reaps it."""
        import select

        for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except OSError:
                return
            ready, _, _ = select.select([self.answers], [], [], wait)
            if ready:
                self.answers.readline()
                return

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if self.answers is not None:
            self.answers.close()
            self.answers = None


def work_through_isolated(plan, book, outcome, progress=None, *, wait: bool = True) -> None:
    """bench.runner.work_through with every run in a child process (in this process when a multi-process
    launch shares each run between its ranks: they must train in step)."""
    from bench import distributed as dist
    from bench.runner import work_through

    if dist.world_size() > 1:
        work_through(plan, book, outcome, progress, wait=wait)
        return
    execute, close = isolated(plan)
    try:
        work_through(plan, book, outcome, progress, wait=wait, execute=execute)
    finally:
        close()


def _result_path(plan_path: Path | str, run_id: str) -> Path:
    """Where the child leaves its (status, error): beside the plan file."""
    return Path(plan_path).parent / f"{run_id}.result.json"


def death_cause(status: int, peak_rss_kb: int) -> str:
    """One line for a child that ended without a result, from its wait status and peak RSS."""
    peak = f"peak RSS {peak_rss_kb / 1024:.0f} MB"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " — out of memory? (the kernel's OOM killer sends SIGKILL)" if sig == signal.SIGKILL else ""
        return f"killed by signal {sig} ({name}){hint}; {peak}"
    return f"its process exited with status {os.waitstatus_to_exitcode(status)} without a result; {peak}"


def run_in_child(plan, spec, plan_path: Path, zygote: Zygote | None = None) -> tuple[str, str]:
    """Train `spec` in a child process (ATTEMPTS tries); return (status, one-line error) as execute_run does."""
    from bench.results import inspect_run, run_dir

    results_dir = Path(plan.results_dir)
    result = _result_path(plan_path, spec.run_id)
    causes = []
    for _ in range(ATTEMPTS):
        try:
            result.unlink()
        except FileNotFoundError:
            pass
        before = _stamp(results_dir, spec.run_id)
        if zygote is not None:
            waited = zygote.run(plan_path, spec.run_id)  # None: the zygote died (a fresh one serves the next try)
        else:
            waited = _spawn_and_wait(plan_path, spec.run_id)
        record = _read(result)
        if record is not None:
            result.unlink()
            if record.get("user_error"):
                raise UserError(*record["user_error"])
            if record.get("interrupted"):
                raise KeyboardInterrupt
            if record.get("crash"):  # it could not start the run: the same next time; failed, with its traceback
                _record_death(plan, spec, f"before training: {record['crash']}", record.get("traceback"))
                return "failed", f"before training: {record['crash']}"
            return record["status"], record["error"]
        state = inspect_run(run_dir(results_dir, spec.run_id), spec.config_hash)
        fresh = _stamp(results_dir, spec.run_id) != before  # not a failed record left by an earlier `bench run`
        if fresh and (state.done or state.status == "failed"):  # it recorded its result, then died (at exit)
            return state.status, state.reason if state.status == "failed" else ""
        if waited is None:
            zygote.close()
            causes.append("the process that forks run attempts (bench.launchers.zygote) died; peak RSS 0 MB")
        elif os.WIFSIGNALED(waited[0]) and os.WTERMSIG(waited[0]) in (signal.SIGTERM, signal.SIGINT):
            # stopped from outside (scancel, kill, a job manager's SIGTERM): a stop, like Ctrl-C, not a death to
            # retry — under submitit the task's own SIGTERM is only logged, and a second attempt would start
            raise KeyboardInterrupt
        else:
            causes.append(death_cause(*waited))
    same = len({c.split("; peak RSS")[0] for c in causes}) == 1
    error = f"{causes[-1]} ({ATTEMPTS} attempts)" if same else "; ".join(
        f"attempt {i}: {c}" for i, c in enumerate(causes, 1))
    _record_death(plan, spec, error)
    return "failed", error


def _spawn_and_wait(plan_path: Path, run_id: str) -> tuple[int, int]:
    from bench.execute import REQUESTED_AT

    proc = subprocess.Popen([sys.executable, "-m", "bench.launchers.attempt", str(plan_path), run_id,
                             str(os.getpid())], cwd=os.getcwd(), env={**os.environ, REQUESTED_AT: f"{time.time():.6f}"})
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
                return status, usage.ru_maxrss
            time.sleep(POLL_S)
    except BaseException:  # Ctrl-C / SIGTERM of the parent, or an error: the child stops too
        stop(proc)
        raise


def stop(proc, grace: float = GRACE_S) -> None:
    if proc.returncode is not None or proc.poll() is not None:
        return
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except OSError:
        pass


def _stamp(results_dir: Path, run_id: str) -> int | None:
    from bench.results import run_dir

    try:
        return (run_dir(results_dir, run_id) / "metrics.json").stat().st_mtime_ns
    except OSError:
        return None


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _record_death(plan, spec, error: str, trace: str | None = None) -> None:
    """metrics.json of a run whose every attempt died: status failed, with the cause (a traceback has none)."""
    from bench.io import is_storage_error, storage_error
    from bench.results import run_dir, write_metrics

    path = run_dir(plan.results_dir, spec.run_id)
    try:
        if not (path / "config.json").exists():  # it died before writing its config: nothing to list it by
            from bench.execute import write_config

            write_config(spec, path, None)
        (path / "traceback.txt").write_text(trace or f"no traceback (the process was killed): {error}\n",
                                            encoding="utf-8")
        write_metrics(path, {"status": "failed", "error": error, "killed": trace is None},
                      run_id=spec.run_id, config_hash=spec.config_hash)
    except OSError as exc:
        if is_storage_error(exc):
            raise storage_error(exc, path) from None
        raise


def main(argv: list[str]) -> int:
    plan_path, run_id, parent = argv[0], argv[1], int(argv[2])
    from bench.launchers.lifeline import die_with_parent

    die_with_parent(parent)
    from bench.quiet import quiet_libraries

    quiet_libraries()
    from bench.io import write_json_atomic

    record: dict = {}
    code = 0
    try:
        from bench.launchers.planfile import load_plan

        plan = load_plan(plan_path)
        spec = next(s for s in plan.specs if s.run_id == run_id)
        from bench.execute import execute_run
        from bench.runner import StageBook
        from bench.threads import pinned_threads

        book = StageBook(plan)
        with pinned_threads(plan.threads if plan.needs_torch else None):
            status, error = execute_run(spec, plan.results_dir, book.for_spec(spec), None)
        record = {"status": status, "error": error}
    except UserError as err:
        record, code = {"user_error": err.problems}, 2
    except KeyboardInterrupt:
        record, code = {"interrupted": True}, 130
    except Exception as exc:  # outside the run's own isolation (loading the plan or the stages): the run fails
        import traceback

        text = traceback.format_exc()
        print(text, file=sys.stderr, flush=True)
        record, code = {"crash": f"{type(exc).__name__}: {exc}".splitlines()[0][:500], "traceback": text}, 1
    write_json_atomic(_result_path(plan_path, run_id), record)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
