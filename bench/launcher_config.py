"""`[launcher]` and `[launcher.slurm]` of a suite: WHERE its runs execute. Never part of a run's identity.

    [launcher]
    kind = "auto"            # auto | sequential | local | slurm | submitit_local
    workers = 0              # local: worker processes (0 = auto: one per GPU, else one per threads_per_run cores)
    threads_per_run = 1      # torch intra-op threads of every run, whatever the launcher (see below)

    [launcher.slurm]
    partition = "gpu"
    account = "my-lab"
    qos = "normal"
    time = "04:00:00"        # per run (HH:MM:SS, MM, or D-HH:MM:SS)
    stages_time = "02:00:00" # the shared-stages job
    cpus_per_task = 8
    mem_gb = 64
    gpus_per_task = 1        # GPUs per run; a run given several is started with torchrun inside its job
    array_parallelism = 16   # at most this many runs at once (sbatch --array=...%16)
    setup = ["module load cuda/12.4", "source ~/venvs/bench/bin/activate"]
    sbatch = { constraint = "a100", exclude = "node17" }   # any other sbatch option, by its long name

Why threads_per_run is pinned: torch's CPU kernels split reductions by thread count, so the same run trained with
1 and with 2 intra-op threads differs in the 6th significant digit (measured: KL 0.897192 vs 0.897193 on a tiny
DPO run). Every launcher therefore runs each run with exactly `threads_per_run` threads, so the sequential loop,
local workers, submitit and SLURM produce identical numbers; the count is recorded in each run's provenance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

KINDS = ("auto", "sequential", "local", "slurm", "submitit_local")
_TIME = re.compile(r"^(?:(?P<d>\d+)-)?(?:(?P<h>\d+):)?(?P<m>\d+)(?::(?P<s>\d+))?$")


def time_minutes(text: str) -> int | None:
    """SLURM's time formats (MM, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]) → whole minutes (rounded up); None if invalid."""
    text = str(text).strip()
    m = _TIME.match(text)
    if not m:
        return None
    parts = [int(p) for p in re.split(r"[-:]", text)]
    if "-" in text:  # D-HH, D-HH:MM, D-HH:MM:SS
        days, rest = parts[0], parts[1:] + [0] * (3 - len(parts[1:]))
        h, mi, s = rest[:3]
        seconds = ((days * 24 + h) * 60 + mi) * 60 + s
    elif len(parts) == 1:
        seconds = parts[0] * 60
    elif len(parts) == 2:
        seconds = parts[0] * 60 + parts[1]
    else:
        seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    return max(1, -(-seconds // 60))


@dataclass(frozen=True)
class SlurmConfig:
    """sbatch settings of the runs' job array (and of the shared-stages job before it)."""

    partition: str = field(default="", metadata={"doc": "sbatch --partition (empty: the cluster's default)"})
    account: str = field(default="", metadata={"doc": "sbatch --account"})
    qos: str = field(default="", metadata={"doc": "sbatch --qos"})
    time: str = field(default="04:00:00", metadata={"doc": "wall-clock limit per run (HH:MM:SS, MM or D-HH:MM:SS)"})
    stages_time: str = field(default="02:00:00", metadata={"doc": "limit of the shared-stages job"})
    cpus_per_task: int = field(default=2, metadata={"min": 1})
    mem_gb: float = field(default=8.0, metadata={"gt": 0, "doc": "memory per run"})
    gpus_per_task: int = field(default=0, metadata={"min": 0, "doc": "GPUs per run (0 on CPU clusters); several are "
                                                                    "used by one run through torchrun"})
    array_parallelism: int = field(default=64, metadata={"min": 1, "doc": "runs at once (--array=...%N)"})
    job_name: str = field(default="", metadata={"doc": "default: bench-<suite>"})
    setup: tuple[str, ...] = field(default=(), metadata={"doc": "shell lines run before each job (module load, "
                                                                "source a venv)"})
    sbatch: Any = field(default_factory=dict, metadata={"doc": "further sbatch options by long name, "
                                                                          "e.g. { constraint = \"a100\" }"})

    def problems(self) -> list[tuple[str, str]]:
        out = []
        for name in ("time", "stages_time"):
            if time_minutes(getattr(self, name)) is None:
                out.append((name, f"{getattr(self, name)!r} is not a SLURM time; use HH:MM:SS, MM or D-HH:MM:SS, "
                                  "e.g. \"04:00:00\""))
        if not isinstance(self.sbatch, dict):
            return out + [("sbatch", f"must be a table of sbatch options, got {type(self.sbatch).__name__}")]
        for key, value in self.sbatch.items():
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", key):
                out.append(("sbatch", f"{key!r} is not an sbatch long option name (e.g. constraint, exclude)"))
            elif key in ("array", "dependency", "output", "error", "job-name", "job_name", "wrap"):
                out.append(("sbatch", f"{key!r} is set by the launcher; remove it"))
            elif isinstance(value, (dict, list)):
                out.append(("sbatch", f"{key} must be a string, number or true, got {type(value).__name__}"))
        return out

    def __hash__(self) -> int:  # frozen with a dict field: hash what identifies it
        return hash(repr(self))


@dataclass(frozen=True)
class LauncherConfig:
    kind: str = field(default="auto", metadata={"choices": KINDS, "doc": "where the runs execute"})
    workers: int = field(default=0, metadata={"min": 0, "doc": "local: worker processes (0: auto)"})
    threads_per_run: int = field(default=1, metadata={"min": 1, "doc": "torch threads of every run, every launcher "
                                                                       "(numbers depend on it in the 6th digit)"})
    slurm: SlurmConfig = field(default_factory=SlurmConfig)

    def __hash__(self) -> int:
        return hash(repr(self))
