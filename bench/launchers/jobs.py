"""What was submitted, and what the scheduler says about it: results/<suite>/.launch/<kind>/jobs.json.

    {"kind": "slurm", "submissions": [{"at": ..., "stages_job": "41", "array_job": "42", "runs": [...]}],
     "runs": {run_id: {"job_id": "42_3", "at": ..., "submitit_stdout": ..., "submitit_stderr": ...}}}

`scheduler_states(ids)` asks SLURM (`squeue` for jobs it still knows, then `sacct` where accounting is on) and
maps its states onto ours: queued (PENDING, REQUEUED, ...), running (RUNNING, COMPLETING, ...), ended (anything
else: COMPLETED, CANCELLED, TIMEOUT, PREEMPTED, FAILED, OUT_OF_MEMORY, NODE_FAIL) with SLURM's word kept.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from bench.io import write_json_atomic

QUEUED = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "CONFIGURING", "SUSPENDED",
          "RESIZING", "SIGNALING", "STAGE_OUT"}
RUNNING = {"RUNNING", "COMPLETING"}
NEVER = {"DependencyNeverSatisfied"}  # a pending job whose stages job failed: it will never start


def jobs_file(results_dir: Path, kind: str) -> Path:
    return Path(results_dir) / ".launch" / kind / "jobs.json"


def load_jobs(results_dir: Path, kind: str) -> dict:
    path = jobs_file(results_dir, kind)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data.setdefault("runs", {})
            data.setdefault("submissions", [])
            return data
    except (OSError, ValueError):
        pass
    return {"kind": kind, "submissions": [], "runs": {}}


def save_jobs(results_dir: Path, kind: str, data: dict) -> None:
    write_json_atomic(jobs_file(results_dir, kind), data)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def scheduler_states(job_ids: list[str]) -> dict[str, tuple[str, str]]:
    """{job id ("42_3" for an array task): (queued | running | ended, SLURM's state or reason)}; ids SLURM no longer
    knows are absent (treat as ended)."""
    ids = sorted({str(j).split("_")[0] for j in job_ids if j})
    if not ids:
        return {}
    states: dict[str, tuple[str, str]] = {}
    text = _run(["squeue", "-h", "-r", "-t", "all", "-j", ",".join(ids), "-o", "%i|%T|%r"])
    for line in (text or "").splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2:
            states[parts[0]] = _ours(parts[1], parts[2] if len(parts) > 2 else "")
    missing = [j for j in job_ids if j and j not in states]
    if missing:
        text = _run(["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", "JobID,State"])
        for line in (text or "").splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 2 and parts[0] not in states:
                states[parts[0]] = _ours(parts[1].split()[0], "")
    return states


def _ours(state: str, reason: str) -> tuple[str, str]:
    if state in QUEUED:
        if reason in NEVER:
            return "ended", f"{state} ({reason})"
        return "queued", state if not reason or reason == "None" else f"{state} ({reason})"
    if state in RUNNING:
        return "running", state
    return "ended", state


def cancel(job_ids: list[str]) -> None:
    if job_ids:
        _run(["scancel", *job_ids])
