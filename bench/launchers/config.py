"""Kept for the old import path: the [launcher] table's schema lives in bench/launcher_config.py (the suite
validates it, and the suite does not import the launchers, which import the runner, which imports the suite)."""

from bench.launcher_config import KINDS, LauncherConfig, SlurmConfig, time_minutes  # noqa: F401
