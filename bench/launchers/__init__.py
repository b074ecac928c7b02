"""Launchers: WHERE a suite's runs execute. The runner (bench.runner) decides WHAT runs; a launcher only decides
where `work_through` / `execute_run` is called, so results, summary and report are identical whatever it is.

    sequential      this process, one run after another (the library default; `bench run --launcher sequential`)
    (every local launcher trains each run in a child process, bench.launchers.attempt: the parent never trains)
    local           N worker processes on this machine, each pinned to `threads_per_run` CPU threads or to one
                    GPU (CUDA_VISIBLE_DEVICES); shared stages are built once before they start
    slurm           submitit: the shared stages as one job, the runs as a job array that depends on it (afterok);
                    `bench run` returns after submitting unless --wait; `bench status` follows it
    submitit_local  the same submission through submitit's local executor (no cluster; a quick check)
    auto            local with the layout measured fastest for this machine (layout.py), or sequential when
                    one process is as good (one run to do, torch-free runs, a multi-process launch)

A launcher implements `describe(plan) -> str`, `launch(plan, book, outcome, progress)`, and says whether the
runner should build the shared stages in this process first (`stages_here`) and all of them (`parallel`).
"""

from __future__ import annotations

from bench.launcher_config import KINDS, LauncherConfig, SlurmConfig  # noqa: F401


class SequentialLauncher:
    """One run after another, each in a child process (bench.launchers.attempt): this process holds the queue
    and never trains, so a run the kernel kills is one `failed` row, not the end of the suite."""

    name = "sequential"
    stages_here = True
    parallel = False

    def describe(self, plan) -> str:
        return f"sequential: 1 run at a time x {plan.threads} thread{'s' if plan.threads > 1 else ''}"

    def launch(self, plan, book, outcome, progress=None) -> None:
        from bench.launchers.attempt import work_through_isolated

        work_through_isolated(plan, book, outcome, progress)


def make_launcher(config: LauncherConfig | None, *, kind: str | None = None, workers: int | None = None,
                  wait: bool = False, device: str = "auto"):
    """The launcher for a suite's [launcher] table, with the command line's --launcher / --workers / --wait on
    top. `auto` resolves here (bench.launchers.layout)."""
    import dataclasses

    config = config or LauncherConfig()
    if kind:
        config = dataclasses.replace(config, kind=kind.replace("-", "_"))
    if workers is not None:
        config = dataclasses.replace(config, workers=workers)
    if config.kind in ("slurm", "submitit_local"):
        from bench.launchers.submission import SubmititLauncher

        return SubmititLauncher(config, cluster="slurm" if config.kind == "slurm" else "local", wait=wait)
    if config.kind == "sequential":
        return SequentialLauncher()
    from bench.launchers.local import LocalLauncher

    return LocalLauncher(config, device=device, auto=config.kind == "auto")
