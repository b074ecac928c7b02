"""`bench status results/<suite>`: every run of the suite as queued / running / finished / diverged / failed /
killed / not started, with its job id and log paths.

A run's own folder decides first (metrics.json: finished, diverged or failed). Otherwise the scheduler is asked
about the run's last job (jobs.json; SLURM through squeue/sacct), and the run's lock says whether some process
(a local worker, a `bench run`) trains it now. A run that started (config.json) but whose job has ended without a
result was killed: cancelled, timed out, preempted or interrupted; the next `bench run` re-submits it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import UserError
from bench.launchers.jobs import load_jobs, scheduler_states
from bench.locking import holder, is_held
from bench.terminal import printable
from bench.results import inspect_run, run_dir

KINDS = ("slurm", "submitit_local")
ORDER = ("running", "queued", "finished", "diverged", "failed", "killed", "not started")


@dataclass
class RunStatus:
    state: str
    job_id: str = ""
    detail: str = ""
    logs: list[str] = field(default_factory=list)


def _last_job(results_dir: Path, run_id: str) -> tuple[str, dict]:
    best: tuple[str, dict] = ("", {})
    for kind in KINDS:
        record = load_jobs(results_dir, kind)["runs"].get(run_id)
        if record and record.get("at", "") >= best[1].get("at", ""):
            best = (kind, record)
    return best


def _logs(path: Path, record: dict) -> list[str]:
    from bench.runner import LOGS

    job = record.get("job_id", "")
    own = [path / LOGS / f"{job}.{s}" for s in ("out", "err")] if job else []
    if any(p.exists() for p in own):
        return [str(p) for p in own]
    return [p for p in (record.get("submitit_stdout"), record.get("submitit_stderr")) if p]


def run_states(results_dir: Path, run_ids: list[str], kind_hint: str | None = None) -> dict[str, RunStatus]:
    from bench.runner import run_lock_path
    results_dir = Path(results_dir)
    jobs = {r: _last_job(results_dir, r) for r in run_ids}
    slurm_ids = [rec["job_id"] for kind, rec in jobs.values() if kind == "slurm" and rec.get("job_id")]
    sched = scheduler_states(slurm_ids) if slurm_ids else {}
    out = {}
    for run_id in run_ids:
        path = run_dir(results_dir, run_id)
        state = inspect_run(path)
        kind, record = jobs[run_id]
        job_id = record.get("job_id", "")
        logs = _logs(path, record) if record else []
        if state.done or state.status == "failed":
            detail = state.reason if state.status == "failed" else ""
            out[run_id] = RunStatus(state.status, job_id, detail, logs)
            continue
        held = is_held(run_lock_path(results_dir, run_id))
        word = ""
        if kind == "slurm" and job_id:
            where, word = sched.get(job_id, ("ended", "no longer known to SLURM"))
            if where in ("queued", "running"):
                out[run_id] = RunStatus("running" if held else where, job_id, word, logs)
                continue
        if held:
            who = holder(run_lock_path(results_dir, run_id))
            out[run_id] = RunStatus("running", job_id, f"lock held by {who or 'a process'}", logs)
        elif (path / "config.json").exists():
            out[run_id] = RunStatus("killed", job_id, (f"job {word}; " if word else "")
                                    + "started but left no result; `bench run` re-runs it", logs)
        elif record:
            out[run_id] = RunStatus("not started", job_id, f"job {word or 'ended'} before the run started", logs)
        else:
            out[run_id] = RunStatus("not started", "", "", [])
    return out


def status_text(results_dir: Path) -> tuple[str, dict[str, int]]:
    results_dir = Path(results_dir)
    suite_file = results_dir / "suite.json"
    if not suite_file.is_file():
        raise UserError(f"{results_dir}: no suite.json here; pass results/<suite> of a suite that was run or "
                        "submitted (`bench run SUITE`)")
    try:
        run_ids = list(json.loads(suite_file.read_text(encoding="utf-8")).get("run_ids") or [])
    except (OSError, ValueError) as exc:
        raise UserError(f"{suite_file}: does not parse ({exc}); re-run `bench run SUITE` to rewrite it") from None
    states = run_states(results_dir, run_ids)
    counts = {k: sum(s.state == k for s in states.values()) for k in ORDER}
    width = max([len(r) for r in run_ids] + [6])
    lines = [f"{results_dir}: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n) + f" of {len(run_ids)} runs"]
    for kind in KINDS:
        subs = load_jobs(results_dir, kind)["submissions"]
        if subs:
            last = subs[-1]
            lines.append(f"last {kind} submission {last.get('at')}: stages job {last.get('stages_job')}, array "
                         f"{last.get('array_job')} ({len(last.get('runs', []))} runs); stages log "
                         f"{last.get('stages_stdout', '')}")
    lines.append(f"{'run_id':<{width}}  {'state':<11} {'job':<12} detail / logs")
    for run_id in sorted(run_ids, key=lambda r: (ORDER.index(states[r].state), r)):
        st = states[run_id]
        tail = printable("; ".join(x for x in [st.detail, " ".join(st.logs)] if x))
        lines.append(f"{printable(run_id):<{width}}  {st.state:<11} {printable(st.job_id) or '-':<12} {tail}")
    return "\n".join(lines), counts
