"""`auto`: how many worker processes, with how many threads or which GPU each, for this machine and plan.

Measured on a 2-core CPU (benchmarks/launchers.py, benchmarks/results/launchers-dpo-ipo.json): the same runs as 2
processes x 1 thread finish sooner than as 1 process x 2 threads, because a ~0.4M-parameter model's steps are
dominated by Python and small-kernel overhead that a second thread does not share while a second process does.
So on a CPU `auto` runs one worker per `threads_per_run` cores; with CUDA, one worker per visible GPU. One process
is chosen when parallelism cannot help: a single run to do, torch-free runs (the `fake` algorithm), a
multi-process launch (accelerate/torchrun: its ranks already share each run), or too little free memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WORKER_MEMORY_GB = 1.5  # measured peak of a controlled-world run ~0.55 GB, plus torch/trl imports; kept generous


@dataclass(frozen=True)
class Layout:
    workers: int
    threads: int
    gpus: tuple[str, ...] = ()  # CUDA_VISIBLE_DEVICES value per worker ("" when on CPU)
    why: str = ""
    notes: list = field(default_factory=list)

    def describe(self) -> str:
        kind = "sequential: 1 process" if self.workers == 1 else f"local: {self.workers} workers"
        per = (f"1 GPU each ({','.join(self.gpus)})" if self.gpus and self.workers > 1 else
               f"{self.threads} thread{'s' if self.threads > 1 else ''}" + (" each" if self.workers > 1 else ""))
        return f"{kind} x {per}" + (f" ({self.why})" if self.why else "")


def available_memory_gb() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        return None
    return None


def choose(plan, *, workers: int = 0, device: str = "auto", auto: bool = True) -> Layout:
    """The layout for `plan`: `workers` > 0 is the user's count (capped at the runs to do); 0 lets auto decide."""
    from bench import distributed as dist
    from bench.machine import cpu_cores

    threads = plan.threads
    todo = len(plan.specs)
    if dist.world_size() > 1:
        return Layout(1, threads, why="multi-process launch: its ranks share each run")
    if todo <= 1:
        return Layout(1, threads, why="one run to do" if todo else "nothing to do")
    if not plan.needs_torch and not workers:
        return Layout(1, threads, why="torch-free runs start faster in one process")
    gpus = _cuda_count() if plan.needs_torch and device in ("auto", "cuda") else 0
    if gpus:
        n = min(workers or gpus, todo)
        return Layout(n, threads, tuple(str(i % gpus) for i in range(n)),
                      why="" if workers else f"one worker per GPU ({gpus} visible)")
    if workers:
        return Layout(min(workers, todo), threads)
    cores = cpu_cores()
    n = min(todo, max(1, cores // threads))
    why = f"{cores} cores / {threads} thread{'s' if threads > 1 else ''} per run"
    free = available_memory_gb()
    if free is not None and n > 1 and free / WORKER_MEMORY_GB < n:
        n = max(1, int(free / WORKER_MEMORY_GB))
        why += f"; {free:.1f} GB free memory allows {n}"
    return Layout(n, threads, why=why)


def _cuda_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0
