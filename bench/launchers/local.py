"""`local`: N worker processes on this machine share a plan's runs through the runs' locks.

The parent has already built every shared stage (world, limits, reward models: `build_shared_stages`), so the
workers only load them. Each worker is `python -m bench.launchers.worker PLAN K`, pinned to `threads_per_run`
threads (OMP_NUM_THREADS and torch.set_num_threads) or to one GPU (CUDA_VISIBLE_DEVICES); every worker walks the
same queue, claims the first run nobody holds, and passes held ones by, so the load balances itself. Their logs
are results/<suite>/.launch/local/worker-K.log. The parent shows one progress bar over the runs, merges the
workers' outcomes, and finishes in-process whatever no worker finished (a worker that crashed, or a run held by
another `bench run`), each in a child process as the workers do, so the summary is complete and the parent never
trains. A worker trains each run in a child process too (bench.launchers.attempt): a run the kernel kills is
retried once, then recorded failed with the cause, and the worker goes on. Ctrl-C or SIGTERM stops every worker;
a worker whose parent dies stops itself (bench.launchers.lifeline); finished runs stay finished.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.errors import UserError
from bench.launchers.layout import Layout, choose
from bench.launchers.planfile import dump_plan
from bench.threads import thread_env
from bench.progress import report

POLL_S = 0.5


class LocalLauncher:
    name = "local"
    stages_here = True

    def __init__(self, config, *, device: str = "auto", auto: bool = False):
        self.config = config
        self.device = device
        self.auto = auto
        self.layout: Layout | None = None

    def describe(self, plan) -> str:
        self.layout = choose(plan, workers=self.config.workers, device=self.device, auto=self.auto)
        return self.layout.describe()

    @property
    def parallel(self) -> bool:
        return self.layout is not None and self.layout.workers > 1

    def launch(self, plan, book, outcome, progress=None) -> None:
        from bench.launchers.attempt import work_through_isolated

        layout = self.layout or choose(plan, workers=self.config.workers, device=self.device, auto=self.auto)
        if layout.workers <= 1:
            work_through_isolated(plan, book, outcome, progress)
            return
        folder = Path(plan.results_dir) / ".launch" / "local"
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("worker-*.json"):
            old.unlink()
        plan_path = dump_plan(dataclasses.replace(plan, specs=longest_first(plan.specs)), folder / "plan.pkl")
        procs = []
        try:
            for k in range(layout.workers):
                env = {**os.environ, **thread_env(layout.threads), "BENCH_WORKER": str(k)}
                if layout.gpus:
                    env["CUDA_VISIBLE_DEVICES"] = layout.gpus[k]
                log = open(folder / f"worker-{k}.log", "w", encoding="utf-8")
                procs.append((subprocess.Popen([sys.executable, "-m", "bench.launchers.worker", str(plan_path),
                                                str(k), str(os.getpid())], env=env, stdout=log, stderr=subprocess.STDOUT,
                                               cwd=os.getcwd()), log))
            self._follow(plan, procs, progress)
        except BaseException:
            _stop(procs)
            raise
        finally:
            for _, log in procs:
                log.close()
        self._merge(plan, folder, procs, outcome)
        rest = [s for s in plan.specs if s.run_id not in _accounted(outcome)]
        if rest:  # a worker that died, or runs another `bench run` holds: finish them (each in a child process,
            # like the workers do), waiting for the latter
            work_through_isolated(dataclasses.replace(plan, specs=rest), book, outcome, progress)
        report(progress, "runs", len(plan.specs), len(plan.specs))

    def _follow(self, plan, procs, progress) -> None:
        from bench.runner import _stamp

        total = len(plan.specs)
        lines = RunLines(plan, progress)
        while any(p.poll() is None for p, _ in procs):
            done = sum(_stamp(plan.results_dir, s) != plan.seen.get(s.run_id) for s in plan.specs)
            lines.poll()
            report(progress, "runs", min(done, total - 1), total)  # the last tick closes the bar, after the merge
            time.sleep(POLL_S)
        lines.poll()

    def _merge(self, plan, folder: Path, procs, outcome) -> None:
        errors, records = [], []
        for k, (proc, _) in enumerate(procs):
            path = folder / f"worker-{k}.json"
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                if proc.returncode not in (0, None):
                    from bench.io import warn

                    warn(f"worker {k} exited with status {proc.returncode} before recording its runs; see "
                         f"{folder / f'worker-{k}.log'} (its unfinished runs are finished in this process)")
                continue
            records.append(record)
            if record.get("user_error"):
                errors += record["user_error"]
            if record.get("interrupted"):
                raise KeyboardInterrupt
            outcome.finished += record.get("finished", [])
            outcome.failed += [tuple(x) for x in record.get("failed", [])]
            outcome.diverged += [tuple(x) for x in record.get("diverged", [])]
            for k2, v in record.get("stage_seconds", {}).items():
                outcome.stage_seconds[k2] = outcome.stage_seconds.get(k2, 0.0) + v
        # a run one worker failed is also "failed by another process" to a worker that came back to it: one row
        outcome.failed[:] = _first_per_run(outcome.failed)
        outcome.diverged[:] = _first_per_run(outcome.diverged)
        ours = set(outcome.finished) | {r for r, _ in outcome.failed} | {r for r, _ in outcome.diverged}
        for record in records:  # trained by another worker of ours: not "by another process"
            outcome.by_others += [r for r in record.get("by_others", []) if r not in ours
                                  and r not in outcome.by_others]
        if errors:
            raise UserError(*dict.fromkeys(errors))


def _first_per_run(rows: list[tuple[str, str]]) -> list[tuple[str, str]]:
    seen: set[str] = set()
    return [(r, e) for r, e in rows if not (r in seen or seen.add(r))]


class RunLines:
    """The parent's copy of its workers' run lines (bench.runlines): a run started when its config.json is
    (re)written, ended when its metrics.json is. Read from the run folders, never from the workers' locks (taking a
    lock to look at it could make a worker pass its run by)."""

    def __init__(self, plan, progress):
        self.plan, self.progress = plan, progress
        self.config0 = {s.run_id: _mtime(plan.results_dir, s.run_id, "config.json") for s in plan.specs}
        self.metrics0 = {s.run_id: _mtime(plan.results_dir, s.run_id, "metrics.json") for s in plan.specs}
        self.started: set[str] = set()
        self.ended: set[str] = set()

    def poll(self) -> None:
        from bench.progress import announce
        from bench.runlines import finish_line, start_line

        if self.progress is None or not hasattr(self.progress, "line"):
            return
        for spec in self.plan.specs:
            run_id, folder = spec.run_id, self.plan.results_dir
            if run_id in self.ended:
                continue
            # a NEW file, not a changed one: a retried run's old metrics.json (its failure) and config.json are
            # removed when it starts again, and a missing file is not the run's end
            metrics = _mtime(folder, run_id, "metrics.json")
            ended = metrics is not None and metrics != self.metrics0[run_id]
            config = _mtime(folder, run_id, "config.json")
            if run_id not in self.started and (ended or (config is not None and config != self.config0[run_id])):
                self.started.add(run_id)
                announce(self.progress, start_line(spec))
            if ended:
                self.ended.add(run_id)
                announce(self.progress, finish_line(folder, run_id, spec.config_hash))


def _mtime(results_dir, run_id: str, name: str) -> int | None:
    from bench.results import run_dir

    try:
        return (run_dir(results_dir, run_id) / name).stat().st_mtime_ns
    except OSError:
        return None


def longest_first(specs):
    """The workers' queue: longest runs first (PPO / Online DPO sample and score online; training-free references
    only evaluate), so the last runs to start are short and no worker idles at the end. Within a world's runs only:
    worlds stay in order (their stages are built in that order). A run's numbers do not depend on its position."""
    from bench.algorithms.registry import get_algorithm

    def cost(spec) -> int:
        cls = get_algorithm(spec.algorithm)
        return 0 if getattr(cls, "uses_reward_model", False) else (2 if not cls.trains else 1)

    worlds = list(dict.fromkeys(s.world for s in specs))
    return sorted(specs, key=lambda s: (worlds.index(s.world), cost(s)))


def _accounted(outcome) -> set[str]:
    return (set(outcome.finished) | set(outcome.by_others) | {r for r, _ in outcome.failed}
            | {r for r, _ in outcome.diverged})


def _stop(procs, grace: float = 15.0) -> None:
    """Ctrl-C (or an error) in the parent: interrupt every worker, then kill the ones that do not stop."""
    for p, _ in procs:
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGINT)
            except OSError:
                pass
    deadline = time.monotonic() + grace
    for p, _ in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
