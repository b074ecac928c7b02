"""Kept for the old import path: the thread pinning lives in bench/threads.py (the runner uses it too, and the
runner does not import the launchers)."""

from bench.threads import THREAD_VARS, apply_in_worker, pinned_threads, thread_env  # noqa: F401
