"""A child process of `bench run` (a local worker, a run attempt) ends when its parent does.

On Linux the kernel delivers a signal to a process whose parent exits (prctl PR_SET_PDEATHSIG, see prctl(2)),
set here through ctypes; the parent may have died before the call, so the parent's pid is compared as well.
Elsewhere a daemon thread polls the parent's pid (re-parenting changes os.getppid()). Without this, a SIGKILLed
or SIGTERMed `bench run --workers N` left its workers re-parented to PID 1, training the rest of the queue.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> None:
    """End this process with `sig` when `parent_pid` (the process that started it) exits."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        except (OSError, AttributeError):
            _watch(parent_pid, sig)
    else:
        _watch(parent_pid, sig)
    if os.getppid() != parent_pid:  # the parent died before the call above: nobody will tell us
        os.kill(os.getpid(), sig)


def _watch(parent_pid: int, sig: int) -> None:
    def loop() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), sig)

    threading.Thread(target=loop, name="bench-parent-watch", daemon=True).start()
