"""The one-line start and finish of a run, the same under every launcher (issue 27: "the answer in 30 seconds").

    ▶ dpo_beta0.1_s0_1a2b3c4d dpo seed 0
    ✓ dpo_beta0.1_s0_1a2b3c4d win 0.68 · 41 s
    ✗ ppo_s1_5e6f7a8b failed: RuntimeError: CUDA out of memory (see traceback.txt)
    ✗ ipo_s2_9c0d1e2f diverged: loss is nan at step 40

The finish line is read from the run's folder (metrics.json), never from the process that trained it, so a local
worker, a SLURM task and the parent polling either of them print the same words and the same numbers. Pure text:
the library passes these lines to its progress callable (bench.progress.announce); the faces decide where they go
(the terminal, a worker's log, a task's log). Like lm-evaluation-harness and TRL, which log one line per task /
training step, a user sees which run is going and how each ended without opening a file.
"""

from __future__ import annotations

from pathlib import Path

from bench.terminal import printable

START, DONE, FAILED = "▶", "✓", "✗"  # bench.terminal.encodable writes them as ASCII where a log cannot encode them


def start_line(spec, where: str = "") -> str:
    """`▶ RUN_ID ALGORITHM seed S` (+ ` (where)`, e.g. a job id)."""
    return f"{START} {printable(spec.run_id)} {spec.algorithm} seed {spec.seed}" + (f" ({where})" if where else "")


def finish_line(results_dir: Path, run_id: str, config_hash: str | None = None) -> str:
    """How the run ended, from its folder: win rate and wall time, or the failure's one-line cause."""
    from bench.results import inspect_run, run_dir

    state = inspect_run(run_dir(results_dir, run_id), config_hash)
    metrics = state.metrics or {}
    wall = metrics.get("wall_s")
    took = f" · {wall:.1f} s" if isinstance(wall, (int, float)) and wall < 10 else (
        f" · {wall:.0f} s" if isinstance(wall, (int, float)) else "")
    name = printable(run_id)
    if state.status == "finished":
        win = metrics.get("win_rate")
        reading = f"win {win:.2f}" if isinstance(win, (int, float)) else "finished"
        return f"{DONE} {name} {reading}{took}"
    if state.status == "diverged":
        return f"{FAILED} {name} diverged: {_cause(metrics.get('error') or state.reason)}{took}"
    if state.status == "failed":
        return f"{FAILED} {name} failed: {_cause(state.reason)}{took}"
    return f"{FAILED} {name} ended without a result: {_cause(state.reason)}"


def _cause(text) -> str:
    lines = str(text or "no cause recorded").strip().splitlines() or ["no cause recorded"]
    return printable(lines[0])[:300]
