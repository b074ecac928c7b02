"""`slurm` and `submitit_local`: the suite's runs as jobs, through submitit (FAIR's standard Python interface).

    bench run SUITE --launcher slurm        stages job  ──afterok──▶  job array, one task per unfinished run
                                            returns after submitting (or --wait: a progress bar over the array)
    bench status results/<suite>            queued / running / finished / failed, with job ids and log paths
    bench run SUITE --launcher slurm        again: submits only runs that are neither finished nor queued/running

One array task = one run: it claims the run's lock, clears any leftovers, trains and evaluates it in a child
process (`work_through_isolated` over that one run, as every local launcher does) and rewrites summary.csv, so
the summary is complete when the last task ends. metrics.json is written last and atomically: a task killed by `scancel`, a time limit or
preemption leaves a folder without it, which the next `bench run` re-submits from a clean folder. A task's
stdout/stderr go to runs/<run_id>/logs/<job_id>.out|.err (kept when the folder is cleared); submitit's own logs
(and the pickled calls) are under results/<suite>/.launch/slurm/submitit/. A run with gpus_per_task > 1 is
started inside its job as `torchrun --standalone --nproc_per_node G -m bench.launchers.task ...` (its ranks
share the run as under `accelerate launch`; bench.distributed).

`submitit_local` sends the same tasks to submitit's LocalExecutor (subprocesses of this machine, as many at once
as the `local` layout would run) and always waits: a quick check of the path without a cluster.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path

from bench.errors import UserError
from bench.launcher_config import time_minutes
from bench.launchers.jobs import cancel, load_jobs, now, save_jobs, scheduler_states
from bench.launchers.planfile import dump_plan
from bench.progress import announce, report
from bench.runlines import finish_line, start_line

POLL_S = 2.0


class SubmititLauncher:
    stages_here = False  # the shared stages are built by a job (on the cluster), not on the login node
    parallel = False

    def __init__(self, config, *, cluster: str = "slurm", wait: bool = False):
        self.config = config
        self.cluster = cluster
        self.kind = "slurm" if cluster == "slurm" else "submitit_local"
        self.name = self.kind
        self.wait = wait or cluster != "slurm"

    def describe(self, plan) -> str:
        s = self.config.slurm
        if self.cluster == "slurm":
            where = f"partition {s.partition}" if s.partition else "the default partition"
            return (f"slurm: stages job + array of {len(plan.specs)} runs on {where}, at most {s.array_parallelism} "
                    f"at once, {s.cpus_per_task} CPUs / {s.mem_gb:g} GB / {s.gpus_per_task} GPUs per run, "
                    f"{plan.threads} thread{'s' if plan.threads > 1 else ''} per run")
        return f"submitit_local: {self._local_slots(plan)} local jobs at once x {plan.threads} thread(s)"

    def _local_slots(self, plan) -> int:
        """Jobs at once on this machine: --workers, else one per `threads_per_run` cores (as `local` would)."""
        from bench.machine import cpu_cores

        return max(1, min(len(plan.specs) or 1, self.config.workers or cpu_cores() // plan.threads))

    # ------------------------------------------------------------------------------------------------------
    def _executor(self, folder: Path, plan):
        try:
            import submitit
        except ImportError:
            raise UserError("--launcher slurm needs submitit: pip install submitit (or pip install "
                            "'daa-bench[cluster]')") from None
        s = self.config.slurm
        ex = submitit.AutoExecutor(folder=str(folder / "submitit" / "%j"), cluster=self.cluster)
        params = {"name": s.job_name or f"bench-{plan.suite.name}", "timeout_min": time_minutes(s.time)}
        self.extra = {}
        if self.cluster == "slurm":
            self.extra = {k.replace("_", "-"): v for k, v in s.sbatch.items()}
            if s.account:
                self.extra["account"] = s.account
            if s.qos:
                self.extra["qos"] = s.qos
            params.update({"cpus_per_task": s.cpus_per_task, "mem_gb": s.mem_gb, "nodes": 1, "tasks_per_node": 1,
                           "slurm_array_parallelism": s.array_parallelism, "slurm_setup": list(s.setup),
                           "slurm_additional_parameters": dict(self.extra)})
            if s.partition:
                params["slurm_partition"] = s.partition
            if s.gpus_per_task:
                params["gpus_per_node"] = s.gpus_per_task
        else:
            params["gpus_per_node"] = 0  # the local executor would give every job all visible GPUs
        ex.update_parameters(**params)
        return ex

    def launch(self, plan, book, outcome, progress=None) -> None:
        results_dir = Path(plan.results_dir)
        folder = results_dir / ".launch" / self.kind
        folder.mkdir(parents=True, exist_ok=True)
        jobs = load_jobs(results_dir, self.kind)
        specs = list(plan.specs)
        if self.cluster == "slurm":
            live = _live_jobs(jobs, [s.run_id for s in specs])
            specs = [s for s in specs if s.run_id not in live]
            if live:
                outcome.submitted.append(f"{len(live)} run(s) already queued or running: "
                                         + ", ".join(f"{r} ({j})" for r, j in sorted(live.items())[:5])
                                         + (" ..." if len(live) > 5 else ""))
        import secrets

        # one file per submission, never rewritten: queued tasks read it when they start
        plan_path = folder / f"plan-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}.pkl"
        sub_plan = dataclasses.replace(plan, specs=specs)
        if specs:
            dump_plan(sub_plan, plan_path)  # with the suite's plug-ins: every task imports them first
        if not specs:
            outcome.submitted.append("nothing to submit" + ("" if outcome.submitted else ": every run is finished"))
        else:
            if self.cluster == "slurm":
                self._submit_slurm(sub_plan, plan_path, folder, jobs, outcome)
            else:
                self._run_local(sub_plan, plan_path, folder, jobs, outcome, progress)
        if not self.wait:
            outcome.complete = False
            outcome.submitted.append(f"follow it: bench status {results_dir}; when it has finished: bench report "
                                     f"{results_dir} (re-run the same `bench run` to resubmit unfinished runs)")
            return
        if self.cluster == "slurm" and specs:
            self._wait(plan, jobs, progress)
        _collect(plan, outcome)

    def _submit_slurm(self, plan, plan_path: Path, folder: Path, jobs: dict, outcome) -> None:
        import shutil

        if shutil.which("sbatch") is None:
            raise UserError("--launcher slurm: no `sbatch` on PATH; run `bench run` on a SLURM login node (or use "
                            "--launcher local / submitit-local on this machine)")
        try:
            self._submit_slurm_jobs(plan, plan_path, folder, jobs, outcome)
        except UserError:
            raise
        except Exception as exc:  # sbatch refused (unknown partition, account, QOS, limits): its one line
            text = str(getattr(exc, "stderr", "") or exc).strip().splitlines()
            why = next((line for line in text if "error" in line.lower()), text[-1] if text else type(exc).__name__)
            raise UserError(f"{plan.suite.path}: [launcher.slurm]: sbatch refused the jobs: {why.strip()[:300]}; "
                            "fix the partition / account / qos / limits there") from None

    def _submit_slurm_jobs(self, plan, plan_path: Path, folder: Path, jobs: dict, outcome) -> None:
        s = self.config.slurm
        ex = self._executor(folder, plan)
        ex.update_parameters(timeout_min=time_minutes(s.stages_time), name=f"{s.job_name or 'bench-' + plan.suite.name}-stages")
        stages_job = ex.submit(stage_task, str(plan_path))
        extra = {**self.extra, "dependency": f"afterok:{stages_job.job_id}"}
        ex.update_parameters(timeout_min=time_minutes(s.time), name=s.job_name or f"bench-{plan.suite.name}",
                             slurm_additional_parameters=extra)
        with ex.batch():
            run_jobs = [ex.submit(run_task, str(plan_path), spec.run_id) for spec in plan.specs]
        array = run_jobs[0].job_id.split("_")[0] if run_jobs else ""
        jobs["submissions"].append({"at": now(), "stages_job": stages_job.job_id, "array_job": array,
                                    "plan": str(plan_path), "runs": [s.run_id for s in plan.specs],
                                    "stages_stdout": str(stages_job.paths.stdout),
                                    "stages_stderr": str(stages_job.paths.stderr)})
        jobs["stages_job"] = stages_job.job_id
        for spec, job in zip(plan.specs, run_jobs):
            jobs["runs"][spec.run_id] = {"job_id": job.job_id, "at": now(), "stages_job": stages_job.job_id,
                                         "submitit_stdout": str(job.paths.stdout),
                                         "submitit_stderr": str(job.paths.stderr)}
        save_jobs(plan.results_dir, self.kind, jobs)
        outcome.submitted.insert(0, f"submitted to SLURM: stages job {stages_job.job_id}, then job array {array} "
                                    f"({len(run_jobs)} runs, at most {s.array_parallelism} at once, "
                                    f"--dependency=afterok:{stages_job.job_id}); logs: "
                                    f"{plan.results_dir}/runs/<run_id>/logs/")

    def _run_local(self, plan, plan_path: Path, folder: Path, jobs: dict, outcome, progress) -> None:
        """submitit's LocalExecutor: the stages job, then the run tasks, `slots` at a time."""
        ex = self._executor(folder, plan)
        stages_job = ex.submit(stage_task, str(plan_path))
        stages_job.result()  # raises submitit's FailedJobError with the job's traceback when the stages fail
        slots = self._local_slots(plan)
        queue, running, total, done = list(plan.specs), [], len(plan.specs), 0
        while queue or running:
            while queue and len(running) < slots:
                spec = queue.pop(0)
                job = ex.submit(run_task, str(plan_path), spec.run_id)
                jobs["runs"][spec.run_id] = {"job_id": str(job.job_id), "at": now(),
                                             "submitit_stdout": str(job.paths.stdout),
                                             "submitit_stderr": str(job.paths.stderr)}
                running.append((spec, job))
                announce(progress, start_line(spec, f"job {job.job_id}"))
            save_jobs(plan.results_dir, self.kind, jobs)
            time.sleep(0.2)
            for spec, job in [(s, j) for s, j in running if j.done()]:
                running.remove((spec, job))
                done += 1
                announce(progress, lambda s=spec: finish_line(plan.results_dir, s.run_id, s.config_hash))
                report(progress, "runs", min(done, total - 1) if total > 1 else 0, total)
        report(progress, "runs", total, total)

    def _wait(self, plan, jobs: dict, progress) -> None:
        from bench.launchers.status import run_states

        total = len(plan.specs)
        ids = [s.run_id for s in plan.specs]
        specs = {s.run_id: s for s in plan.specs}
        started: set[str] = set()
        finished: set[str] = set()
        while True:
            states = run_states(plan.results_dir, ids, self.kind)
            for run_id, st in states.items():  # the array's tasks' lines, as their results arrive
                if run_id in finished or st.state == "queued":
                    continue
                if run_id not in started and st.state != "not started":  # its job ended before the run began
                    started.add(run_id)
                    announce(progress, start_line(specs[run_id], f"job {st.job_id}" if st.job_id else ""))
                if st.state != "running":
                    finished.add(run_id)
                    announce(progress, lambda r=run_id: finish_line(plan.results_dir, r, specs[r].config_hash))
            ended = sum(st.state not in ("queued", "running") for st in states.values())
            report(progress, "runs", min(ended, total - 1), total)
            if ended >= total:
                break
            time.sleep(POLL_S)
        report(progress, "runs", total, total)


def _live_jobs(jobs: dict, run_ids: list[str]) -> dict[str, str]:
    """Runs whose last submitted job SLURM still has queued or running: not to be submitted again. A queued task
    that can never start (its stages job failed) is cancelled so it can be re-submitted."""
    ids = {r: jobs["runs"][r]["job_id"] for r in run_ids if r in jobs["runs"]}
    states = scheduler_states(list(ids.values()))
    live, dead = {}, []
    for run_id, job_id in ids.items():
        state, word = states.get(job_id, ("ended", ""))
        if state in ("queued", "running"):
            live[run_id] = job_id
        elif "DependencyNeverSatisfied" in word:
            dead.append(job_id)
    cancel(dead)
    return live


def _collect(plan, outcome) -> None:
    """After the jobs ended: what each run's folder says (a run without a result was killed or never started)."""
    from bench.results import inspect_run, run_dir

    for spec in plan.specs:
        state = inspect_run(run_dir(plan.results_dir, spec.run_id), spec.config_hash)
        if state.status == "finished":
            outcome.finished.append(spec.run_id)
        elif state.status == "diverged":
            outcome.diverged.append((spec.run_id, str((state.metrics or {}).get("error", ""))))
        elif state.status == "failed":
            outcome.failed.append((spec.run_id, state.reason))
        else:
            outcome.failed.append((spec.run_id, "its job ended without a result (cancelled, timed out, preempted "
                                                "or its stages job failed); re-run `bench run` to resubmit it"))


# ----------------------------------------------------------------------------------------------------------
# What the jobs execute (on a compute node, or in a local subprocess)


def _load(plan_path: str):
    from bench.launchers.planfile import load_plan

    return load_plan(plan_path)


def stage_task(plan_path: str) -> str:
    """The shared-stages job: world, limits and reward models, built once for every run of the array."""
    from bench.quiet import quiet_libraries as _quiet_libraries
    from bench.threads import pinned_threads
    from bench.runner import StageBook, build_shared_stages
    from bench.world_record import write_world_record

    _quiet_libraries()
    plan = _load(plan_path)
    book = StageBook(plan)
    print(f"bench: shared stages for {len(plan.specs)} run(s) in job {_job_id()} on {os.uname().nodename}",
          flush=True)
    t0 = time.perf_counter()
    with pinned_threads(plan.threads if plan.needs_torch else None):
        build_shared_stages(plan, book)
        if book.first is not None and book.first._world is not None:
            write_world_record(Path(plan.results_dir), book.first)
    print(f"bench: stages ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    return "stages ready"


def _job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID") or str(os.getpid())


def _redirect_logs(log_dir: Path, job_id: str) -> None:
    """This process's stdout/stderr (file descriptors, so library and child output too) into the run folder."""
    log_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    for fd, suffix in ((1, "out"), (2, "err")):
        handle = os.open(log_dir / f"{job_id}.{suffix}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(handle, fd)
        os.close(handle)


def run_task(plan_path: str, run_id: str) -> str:
    """One array task: one run, trained and evaluated like under every other launcher; returns its status."""
    from bench.results import run_dir
    from bench.runner import LOGS

    plan = _load(plan_path)
    spec = next((s for s in plan.specs if s.run_id == run_id), None)
    if spec is None:
        raise RuntimeError(f"run {run_id} is not in the submitted plan {plan_path}")
    _redirect_logs(run_dir(plan.results_dir, run_id) / LOGS, _job_id())
    gpus = plan.suite.launcher.slurm.gpus_per_task if plan.suite.launcher is not None else 0
    if gpus > 1 and "LOCAL_RANK" not in os.environ:
        import subprocess

        code = subprocess.call(torchrun_command(plan_path, run_id, gpus))
        if code != 0:
            raise RuntimeError(f"torchrun exited with status {code}; see {run_dir(plan.results_dir, run_id) / LOGS}")
        return "torchrun finished"
    return run_one(plan, spec)


def torchrun_command(plan_path: str, run_id: str, gpus: int) -> list[str]:
    """A multi-GPU run inside its job: one process per GPU, sharing the run (bench.distributed)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
            "-m", "bench.launchers.task", plan_path, run_id]


class _TaskLog:
    """A task's log (its stdout): the run's start and finish lines (bench.runlines), the start naming the job and
    node; no progress bars or milestones (the parent polls the folders for those)."""

    def __init__(self, where: str):
        self.where = where

    def __call__(self, stage: str, done: int, total: int) -> None:
        pass

    def line(self, text: str) -> None:
        from bench.progress import write_line

        if text.startswith("▶"):
            text = f"{text} ({self.where})"
        write_line(sys.stdout, text)


def run_one(plan, spec) -> str:
    """One submitit task: its run executes in a child process of the task (bench.launchers.attempt), as under
    every local launcher, so a run the kernel kills (a cgroup's OOM killer picks the largest process: the run) is
    tried once more and then recorded `failed` with the cause, instead of a job that ended without a result."""
    from bench.errors import sigterm_stops
    from bench.launchers.attempt import work_through_isolated
    from bench.quiet import quiet_libraries as _quiet_libraries
    from bench.runner import StageBook, SuiteOutcome
    from bench.threads import pinned_threads

    _quiet_libraries()
    one = dataclasses.replace(plan, specs=[spec])
    outcome = SuiteOutcome(plan.results_dir)
    with pinned_threads(plan.threads if plan.needs_torch else None):
        from bench.distributed import is_main

        log = _TaskLog(f"job {_job_id()} on {os.uname().nodename}") if is_main() else None  # torchrun: rank 0's lines
        with sigterm_stops():  # submitit's own SIGTERM handler only logs it: a second attempt would start
            work_through_isolated(one, StageBook(one), outcome, log)
    if outcome.failed:
        return f"failed: {outcome.failed[0][1]}"
    return "diverged" if outcome.diverged else ("finished" if outcome.finished else "finished by another process")
