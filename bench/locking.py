"""Inter-process file locks: one small helper shared by stage caches, run claims and (later) parallel launchers.

A lock is an advisory `flock` on a lock file (POSIX; `filelock` elsewhere). The operating system releases it
when the holding process exits for any reason, kill -9 included, so a lock is never stale: no PID files, no
timeouts to guess. Lock files are left in place (deleting one that another process is about to lock would let
two processes hold "the same" lock on different inodes).

    with hold(path):                      # wait for the lock
        ...
    lock = try_hold(path)                 # None when another process holds it
    if lock is not None:
        with lock:
            ...
"""

from __future__ import annotations

import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class Lock:
    """A held lock; release() (or leaving the `with` block) frees it. Not re-entrant within one process."""

    def __init__(self, path: Path, handle):
        self.path = Path(path)
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        if fcntl is not None:
            try:
                fcntl.flock(self._handle, fcntl.LOCK_UN)
            finally:
                os.close(self._handle)
        else:  # pragma: no cover
            self._handle.release()
        self._handle = None

    @property
    def held(self) -> bool:
        return self._handle is not None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self):  # a forgotten lock is released with its object, as the OS would at exit
        try:
            self.release()
        except Exception:
            pass


def _acquire(path: Path, blocking: bool) -> Lock | None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover
        from filelock import FileLock, Timeout

        lock = FileLock(str(path))
        try:
            lock.acquire(timeout=-1 if blocking else 0)
        except Timeout:
            return None
        return Lock(path, lock)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    _sign(fd)
    return Lock(path, fd)


def _sign(fd: int) -> None:
    """Write "pid host" into the held lock file, for `bench status` (informational: the flock is the lock)."""
    import socket

    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    except OSError:  # a full disk must not stop a run from being claimed
        pass


def holder(path: Path) -> str:
    """"pid P on HOST" of the process that holds (or last held) the lock at `path`; "" when unknown."""
    try:
        pid, host = Path(path).read_text(encoding="utf-8").split()[:2]
        return f"pid {int(pid)} on {host}"
    except (OSError, ValueError):
        return ""


def hold(path: Path, *, timeout: float | None = None, poll: float = 0.1) -> Lock:
    """Wait for the lock on `path` (created if missing); `timeout` seconds at most, then TimeoutError."""
    if timeout is None:
        lock = _acquire(path, blocking=True)
        assert lock is not None
        return lock
    deadline = time.monotonic() + timeout
    while True:
        lock = _acquire(path, blocking=False)
        if lock is not None:
            return lock
        if time.monotonic() >= deadline:
            raise TimeoutError(f"lock {path} is held by another process")
        time.sleep(poll)


def try_hold(path: Path) -> Lock | None:
    """The lock on `path` if it is free now, else None (another process holds it)."""
    return _acquire(path, blocking=False)


def is_held(path: Path) -> bool:
    """True when another process holds the lock on `path` right now (a momentary answer)."""
    if not Path(path).exists():
        return False
    lock = try_hold(path)
    if lock is None:
        return True
    lock.release()
    return False
