"""Pin torch's intra-op thread count for a block (every launcher runs every run with the same count)."""

from __future__ import annotations

import os
from contextlib import contextmanager

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_env(threads: int) -> dict[str, str]:
    """Environment for a worker process pinned to `threads` threads (set before torch is imported)."""
    return {name: str(threads) for name in THREAD_VARS}


@contextmanager
def pinned_threads(threads: int | None):
    """torch.set_num_threads(threads) inside the block, restored after; None leaves torch untouched (and
    unimported: a torch-free suite stays torch-free)."""
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def apply_in_worker(threads: int) -> None:
    """A fresh worker process: the environment first (libraries read it on import), then torch."""
    os.environ.update(thread_env(threads))
