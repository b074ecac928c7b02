"""Multi-process runs (`accelerate launch -m bench.cli run SUITE`): every rank trains, rank 0 alone writes.

TRL's trainers already shard batches and synchronise gradients across the processes `accelerate launch`
starts. The harness adds three things:
- one writer: only rank 0 creates run folders, writes config/metrics/curves/summary/report and evaluates;
  the other ranks wait at a barrier, so the next run starts together;
- one budget: each rank's meter sees only its own shard, so the FLOPs a step spent are summed over ranks
  (`all_reduce`) before the stop decision, which every rank then takes identically (a rank that stopped
  alone would leave the others waiting in a collective);
- one view of what is finished: the list of runs to do is read before anyone writes.
Single-process runs (the default) skip all of this.
"""

from __future__ import annotations

import os
from datetime import timedelta


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def _dist():
    import torch.distributed as dist

    return dist if world_size() > 1 and dist.is_available() and dist.is_initialized() else None


def ensure_initialized() -> None:
    """Join the process group the launcher (accelerate launch / torchrun) describes, before the first run.

    Initialised here with torch.distributed directly (NCCL on GPU, gloo on CPU): accelerate's PartialState treats
    a CPU-only torchrun as a single process and its barrier would not wait. Accelerate and TRL reuse the group.
    """
    if world_size() > 1:
        import torch
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            # rank 0 evaluates alone between runs while the others wait at a barrier: allow hours, not NCCL's
            # default 10 minutes (a real suite's evaluation with lm-eval can take longer)
            dist.init_process_group(backend=backend, timeout=timedelta(hours=12))


def barrier() -> None:
    if world_size() > 1:
        import torch.distributed as dist

        ensure_initialized()
        dist.barrier()


def sum_over_ranks(value: float) -> float:
    dist = _dist()
    if dist is None:
        return value
    import torch

    device = "cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item())
