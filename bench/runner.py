"""Suite runner: shared stages once, then every run under the same budget, each isolated from the others' failures.

    suite → expand → filter (--only, --seeds) → skip finished → world (cached) → suite.json → a launcher
    (bench.launchers: WHERE runs execute: this process, local workers, SLURM) → for each run, in `work_through`:
        claim it (lock) · skip if done · clear leftovers · config.json · train (budget, divergence guard and
        curve callbacks) · evaluate · curves.csv · samples.jsonl · metrics.json (last, atomic) · release
    → wait for the runs other processes hold → summary.csv (rebuilt from the run folders) → utilisation

The runner decides WHAT runs (expansion, skip-finished, shared stages, claiming, failure isolation); a launcher
only decides where `work_through` (or, on SLURM, one `execute_run` per array task) is called, so results, summary
and report are the same whatever the launcher. Every run executes with the suite's `threads_per_run` torch
threads (numbers depend on the thread count in the 6th digit; see bench/launcher_config.py).

A run that raises is recorded "failed" with its error and traceback, and the suite goes on; one the divergence
guard stops is "diverged" (step, quantity, value, training logs), not re-run. A run killed mid-way has no valid
metrics.json, so the next `bench run` restarts it from a clean folder; damaged run folders are named in one line
and re-run. Ctrl-C stops the suite, finished runs stay; a full disk / read-only storage is one line (StorageError).

Concurrency: each run is claimed with a lock (`results/<suite>/.locks/<run_id>.lock`, `bench.locking`) for as
long as it trains. Two `bench run` of the same suite share the work: each skips runs the other holds, re-checks a
run after claiming it (it may have just finished), and at the end waits for the other's runs, so neither trains
a run twice nor deletes the other's folders, and both end with the same complete summary. A run whose holder
died (its lock is released by the OS) is taken over. Local workers and SLURM tasks are built on this lock.
suite.json is written only once the world resolved (a suite that cannot start leaves the previous one intact).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from bench import distributed as dist
from bench.algorithms.registry import describe, get_algorithm
from bench.errors import UserError
from bench.execute import LOGS, clear_run_folder, execute_run  # noqa: F401  (one run's life; re-exported)
from bench.io import cache_root, clean_stale_temps, warn, write_json_atomic
from bench.locking import hold, try_hold
from bench.progress import announce, report
from bench.runlines import finish_line, start_line
from bench.results import damaged_line, inspect_run, run_dir, write_summary
from bench.schema import as_dict
from bench.suite import RunSpec, Suite, expand
from bench.terminal import printable
from bench.world_record import write_world_record


SUMMARY_EVERY_S = 30.0  # summary.csv: after the first run, then at most this often, and after the last run


@dataclass
class SuiteOutcome:
    results_dir: Path
    finished: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    diverged: list[tuple[str, str]] = field(default_factory=list)
    by_others: list[str] = field(default_factory=list)  # trained meanwhile by another process
    damaged: list[tuple[str, str]] = field(default_factory=list)  # run folders found damaged (re-run)
    stale: list[str] = field(default_factory=list)  # finished on an older build of the world (re-run)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)
    elsewhere: list[str] = field(default_factory=list)  # held by another worker when this one passed them by
    launcher: str = "sequential"  # where the runs executed, e.g. "local: 2 workers x 1 thread"
    complete: bool = True  # False when the launcher returned before the runs ended (a SLURM submission)
    submitted: list[str] = field(default_factory=list)  # lines describing what was submitted (job ids, logs)
    utilisation: dict | None = None  # bench.utilisation: FLOPs computed / (wall x matmul peak)

    def summary_line(self) -> str:
        if not self.complete:
            return "\n".join(self.submitted)
        others = f", {len(self.by_others)} trained by another process" if self.by_others else ""
        diverged = f", {len(self.diverged)} diverged" if self.diverged else ""
        text = (f"{len(self.finished)} runs trained, {len(self.skipped)} already finished{others}{diverged}, "
                f"{len(self.failed)} failed in {self.seconds:.1f}s; results: {self.results_dir / 'summary.csv'}")
        if self.utilisation and self.utilisation.get("utilisation") is not None:
            u = self.utilisation
            text += (f"\n  {self.launcher}; utilisation {100 * u['utilisation']:.1f}%: {u['flops']:.3g} FLOPs computed "
                     f"in {u['wall_s']:.1f}s against a {u['peak_flops_per_s'] / 1e9:.0f} GFLOP/s fp32 matmul peak "
                     f"({u['peak_threads']} threads)")
        if self.submitted:  # what a scheduler was given (job ids, logs), then what came of it
            text = "\n".join(self.submitted) + "\n" + text
        for run_id, error in self.diverged:  # errors are whatever an algorithm raised: no terminal escapes
            text += f"\n  diverged: {run_id}: {printable(error)}"
        for run_id, error in self.failed:
            text += f"\n  failed: {run_id}: {printable(error)}"
        return text


def select(specs: list[RunSpec], suite: Suite, only: list[str] | None, seeds: list[int] | None) -> list[RunSpec]:
    labels = {e.label for e in suite.entries}
    for name in only or []:
        if name not in labels:
            from bench.errors import did_you_mean

            raise UserError(f"--only: no entry {name!r} in {suite.path}; {did_you_mean(name, labels)}")
    for s in seeds or []:
        if s not in suite.meta.seeds:
            raise UserError(f"--seeds: seed {s} is not in [suite].seeds of {suite.path} {list(suite.meta.seeds)}")
    return [s for s in specs if (not only or s.label in only) and (seeds is None or s.seed in seeds)]


def plan_text(suite: Suite, *, only=None, seeds=None, cache_dir=None) -> str:
    """The run plan with each run's estimated compute (no model is built or trained)."""
    specs = select(expand(suite), suite, only, seeds)
    sizes = _world_sizes(suite)
    lines = [f"suite '{suite.name}' ({suite.path}), hash {suite.raw_hash[:12]}: {len(specs)} runs, budget "
             f"{suite.budget.kind} = {suite.budget.amount:.3g} per run, world {suite.world.kind} "
             + (f"(policy ≈ {sizes['n_params'] / 1e6:.2f}M parameters, ≈ {sizes['tokens_per_sequence']:.0f} "
                f"tokens per sequence)" if sizes.get("n_params") else
                f"({sizes.get('note') or 'model size unknown'}; no per-step estimate)")]
    lines.append(f"{'run_id':<48} {'algorithm':<11} {'est. FLOPs/step':>16} {'est. steps':>10}  notes")
    total = 0.0
    for spec in specs:
        cls = get_algorithm(spec.algorithm)
        est = cls.estimate(spec, sizes) if hasattr(cls, "estimate") and sizes.get("n_params") else {}
        step = est.get("step_flops")
        steps = est.get("steps")
        total += suite.budget.amount if cls.trains and suite.budget.kind == "flops" else 0.0
        step_text = "-" if step is None else f"{step:.3g}"
        steps_text = "-" if steps is None else str(steps)
        note = est.get("note", "") if cls.trains else "training-free reference"
        lines.append(f"{spec.run_id:<48} {spec.algorithm:<11} {step_text:>16} {steps_text:>10}  {note}")
    if suite.budget.kind == "flops":
        lines.append(f"total training budget: {total:.3g} FLOPs")
    elif suite.budget.kind == "updates":
        lines.append(f"budget: {suite.budget.amount:.0f} optimizer updates per trained run (FLOPs metered, uncapped)")
    else:
        trained = sum(get_algorithm(s.algorithm).trains for s in specs)
        lines.append(f"total training budget: {suite.budget.amount * trained:.0f} s")
    return "\n".join(lines)


def _world_sizes(suite: Suite) -> dict[str, float]:
    sizer = getattr(suite.world, "estimated_sizes", None)
    return sizer() if callable(sizer) else {"n_params": 0.0, "tokens_per_sequence": 0.0, "pairs": 0}


def _stamp(results_dir: Path, spec: RunSpec) -> int | None:
    try:
        return (run_dir(results_dir, spec.run_id) / "metrics.json").stat().st_mtime_ns
    except OSError:
        return None


def run_lock_path(results_dir: Path, run_id: str) -> Path:
    """The lock a process holds while it trains a run (bench.locking): run claims and `bench status` read it."""
    return Path(results_dir) / ".locks" / f"{run_id}.lock"


@dataclass
class RunPlan:
    """What the runner decided (which runs, in which order, with which shared stages) and hands a launcher,
    which decides where they execute. Picklable: local workers and SLURM jobs rebuild their stages from it."""

    suite: Suite
    specs: list[RunSpec]
    results_dir: Path
    cache_dir: Path
    device: str = "auto"
    threads: int = 1  # torch intra-op threads of every run, whatever the launcher (bench/launcher_config.py)
    seen: dict[str, int | None] = field(default_factory=dict)  # metrics.json stamps as scanned

    @property
    def needs_torch(self) -> bool:
        return any(get_algorithm(s.algorithm).needs_torch for s in self.specs)


class StageBook:
    """The shared stages of each world of the suite, resolved (world built or loaded) on first use; one world's
    stages are held at a time (runs are ordered by world), their build times summed into `seconds`."""

    def __init__(self, plan: RunPlan, progress=None):
        self.plan = plan
        self.progress = progress
        self.current = None
        self.first = None
        self.seconds: dict[str, float] = {}

    def _add(self, seconds: dict[str, float]) -> None:
        for k, v in seconds.items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v

    def for_spec(self, spec: RunSpec):
        if self.current is None or self.current.world_config != spec.world:
            from bench.stages import SharedStages

            if self.current is not None:
                self._add({k: v for k, v in self.current.seconds.items() if k != "world"})
            stages = SharedStages(self.plan.suite, self.plan.cache_dir, device=self.plan.device,
                                  progress=self.progress, world_config=spec.world)
            self.current = stages
            self.first = self.first or stages
            if any(get_algorithm(s.algorithm).needs_torch for s in self.plan.specs if s.world == spec.world):
                t = time.perf_counter()
                if dist.is_main():
                    stages.world()  # built once (cached on disk); the other ranks load it after the barrier
                dist.barrier()
                stages.world()
                self._add({"world": time.perf_counter() - t})
        return self.current

    def close(self) -> dict[str, float]:
        if self.current is not None:
            self._add({k: v for k, v in self.current.seconds.items() if k != "world"})
            self.current = None
        return self.seconds


def build_shared_stages(plan: RunPlan, book: StageBook) -> None:
    """Every shared stage the plan's runs need, built now (once, cached on disk) rather than by the first run that
    needs it: the world, its limits, and each reward model (ppo, online_dpo). Parallel launchers call this before
    their workers start, so no worker trains a stage another is waiting for."""
    from bench.algorithms.reward_model import rm_settings

    for world in dict.fromkeys(s.world for s in plan.specs):
        specs = [s for s in plan.specs if s.world == world]
        if not any(get_algorithm(s.algorithm).needs_torch for s in specs):
            continue
        stages = book.for_spec(specs[0])
        if stages.world().kind == "controlled":
            stages.limits()
        for settings in {stable_json(rm_settings(s.param_dict)): rm_settings(s.param_dict) for s in specs
                         if getattr(get_algorithm(s.algorithm), "uses_reward_model", False)}.values():
            stages.reward_model(settings)


def stable_json(obj) -> str:
    import json

    return json.dumps(obj, sort_keys=True, default=str)


def scan(specs: list[RunSpec], results_dir: Path, outcome: SuiteOutcome) -> tuple[list[RunSpec], dict]:
    """Skip-finished: the runs still to do (damaged folders among them, named in outcome.damaged) and the stamps
    of metrics.json as seen now (a later change means another process wrote the run)."""
    todo, seen = [], {}
    for spec in specs:
        seen[spec.run_id] = _stamp(results_dir, spec)
        state = inspect_run(run_dir(results_dir, spec.run_id), spec.config_hash)
        if state.done and _older_world(spec, state):
            todo.append(spec)
            outcome.stale.append(spec.run_id)
        elif state.done and not _policy_missing(spec, state, results_dir):
            outcome.skipped.append(spec.run_id)
        else:
            todo.append(spec)
            if state.damaged:
                outcome.damaged.append((spec.run_id, state.reason))
    return todo, seen


def _older_world(spec: RunSpec, state) -> bool:
    """A finished run made on another build of its world than the one this code would build now (the world's
    format or numeric kernels changed since: bench/worlds/controlled/build.py WORLD_FORMAT, bench.modeling.KERNELS).
    Run ids hash the suite's settings, not the world's build, so without this check `bench run` would keep readings
    of a world that no longer exists beside fresh ones. Only where the key is cheap to compute (controlled worlds)."""
    recorded = (state.config or {}).get("world_key")
    if not recorded or spec.world is None:
        return False
    from bench.worlds import WORLDS

    kind = WORLDS.get(getattr(spec.world, "kind", ""))
    now = kind.key(spec.world) if kind is not None else None
    return now is not None and now != recorded


def check_folder_owner(suite: Suite, results_dir: Path) -> None:
    """Refuse a results folder that another suite file with the same [suite].name owns (suite.json says which):
    the two would overwrite each other's suite.json and summary. The same file edited, moved or deleted, or the
    same file reached by another path, is the same owner."""
    try:
        record = json.loads((results_dir / "suite.json").read_text(encoding="utf-8"))
        other = Path(record.get("abs_path") or record.get("path") or "")
    except (OSError, ValueError, TypeError, AttributeError):
        return
    mine = Path(suite.path)
    if not str(other) or other == Path("") or not other.is_file() or not mine.is_file():
        return
    try:
        if other.samefile(mine) or record.get("hash") == suite.raw_hash:
            return
    except OSError:
        return
    raise UserError(f"{suite.path}: [suite].name = {suite.name!r} is also the name of {other}, whose results are in "
                    f"{results_dir}; the two would overwrite each other's results: rename one of them "
                    "([suite].name), or give this one another --results folder")


def write_suite_record(suite: Suite, results_dir: Path) -> None:
    """results/<suite>/suite.json: the suite as configured now (every run id of it)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(results_dir)
    every = expand(suite)
    write_json_atomic(results_dir / "suite.json", {
        "name": suite.name, "path": suite.path, "abs_path": str(Path(suite.path).resolve()), "hash": suite.raw_hash, "world": as_dict(suite.world),
        "budget": as_dict(suite.budget), "eval": as_dict(suite.eval), "seeds": list(suite.meta.seeds),
        "entries": [as_dict(e) for e in suite.entries], "check": suite.check,
        "train_options": as_dict(suite.options), "axes": [[k, list(v)] for k, v in suite.axes],
        # every run of the suite as now configured: older configurations' folders stay but are not summarised
        "run_ids": [s.run_id for s in every],
        "runs": {s.run_id: {"label": s.label, "algorithm": s.algorithm, "seed": s.seed,
                            "params": s.param_dict, "swept": list(s.swept)} for s in every},
        # each algorithm's declarations (family, ...), as data for the report, which never imports algorithms/
        "algorithms": describe(sorted({s.algorithm for s in every})),
        **({"replication": as_dict(suite.replication)} if suite.replication is not None else {})})


def run_suite(suite: Suite, *, results_root: Path, cache_dir=None, only=None, seeds=None, device: str = "auto",
              progress=None, launcher=None) -> SuiteOutcome:
    """Decide what runs (expansion, filters, skip-finished, shared stages) and hand the runs to `launcher`
    (bench.launchers; default: this process, one run after another), which decides where they execute."""
    from bench.threads import pinned_threads

    t_start = time.perf_counter()
    launcher = launcher if launcher is not None else InProcess()
    specs = select(expand(suite), suite, only, seeds)  # validate filters before touching the results folder
    results_dir = Path(results_root) / suite.name
    outcome = SuiteOutcome(results_dir)
    dist.ensure_initialized()
    if dist.is_main():
        check_folder_owner(suite, results_dir)
    todo, seen = scan(specs, results_dir, outcome)  # decided by every rank before any rank writes
    if outcome.damaged and dist.is_main():
        warn(damaged_line(outcome.damaged))
    if outcome.stale and dist.is_main():
        warn(f"{len(outcome.stale)} finished run{'s' if len(outcome.stale) > 1 else ''} in {results_dir} "
             f"{'were' if len(outcome.stale) > 1 else 'was'} made on an older build of the world (its format or the "
             "numeric kernels changed since): training "
             f"{'them' if len(outcome.stale) > 1 else 'it'} again (e.g. {outcome.stale[0]})")
    dist.barrier()
    worlds = suite.worlds  # several when world.seed is swept: each world's runs together, its stages once
    todo.sort(key=lambda s: worlds.index(s.world) if s.world in worlds else len(worlds))
    threads = suite.launcher.threads_per_run if suite.launcher is not None else 1
    plan = RunPlan(suite, todo, results_dir, cache_root(cache_dir), device, threads, seen)
    book = StageBook(plan, progress)
    outcome.launcher = launcher.describe(plan)
    with pinned_threads(threads if plan.needs_torch else None):
        if todo and launcher.stages_here:
            book.for_spec(todo[0])
            if launcher.parallel:
                build_shared_stages(plan, book)
        if dist.is_main():  # only now: a suite whose world cannot be resolved leaves the previous record intact
            write_suite_record(suite, results_dir)
        launcher.launch(plan, book, outcome, progress)
        if dist.is_main() and outcome.complete:
            if book.first is not None and book.first._world is not None:
                write_world_record(results_dir, book.first)  # the first world's record (world.seed's first value)
            write_summary(results_dir)
    outcome.stage_seconds.update(book.close())
    outcome.seconds = time.perf_counter() - t_start
    if outcome.complete and dist.is_main():
        from bench.utilisation import record_utilisation

        outcome.utilisation = record_utilisation(plan, outcome, book)
    return outcome


class InProcess:
    """The library's default when no launcher is given (`run_suite(suite)` from Python, the tests): every run in
    this process, one after another. A run that kills its process kills the caller too; `bench run` never uses
    this: its launchers (bench.launchers) execute each run in a child process."""

    name = "in-process"
    stages_here = True
    parallel = False

    def describe(self, plan) -> str:
        return f"in-process: 1 process x {plan.threads} thread{'s' if plan.threads > 1 else ''}"

    def launch(self, plan, book, outcome, progress=None) -> None:
        work_through(plan, book, outcome, progress)


def _in_process(spec, book, progress):
    return execute_run(spec, book.plan.results_dir, book.for_spec(spec), progress)


def work_through(plan: RunPlan, book: StageBook, outcome: SuiteOutcome, progress=None, *, wait: bool = True,
                 execute=None) -> None:
    """The loop every launcher ends in: claim each run (lock), re-check it, execute it, release it.

    A run another process holds is put back at the end of the queue and, when `wait`, waited for there (then
    counted as trained by another process); a worker among several passes it by instead (`wait=False`).
    `execute(spec, book, progress) -> (status, error)` executes one run: in this process (`execute_run`, the
    default) or in a child process (bench.launchers.attempt, which the local launchers pass). Failures are
    isolated there; summary.csv is rewritten after the first run, every SUMMARY_EVERY_S, and after the last."""
    execute = execute or _in_process
    results_dir, todo = plan.results_dir, plan.specs
    claims = dist.world_size() == 1  # multi-process runs are one launch: their ranks share each run instead
    pending = list(todo)
    waited: set[str] = set()
    last_summary = None  # monotonic time of the last summary.csv written by this loop
    i = 0
    while pending:
        spec = pending.pop(0)
        lock = None
        if claims:
            lock = try_hold(run_lock_path(results_dir, spec.run_id))
            if lock is None:  # another process trains it now: come back to it at the end
                if spec.run_id not in waited:
                    waited.add(spec.run_id)
                    pending.append(spec)
                    continue
                if not wait:
                    outcome.elsewhere.append(spec.run_id)
                    continue
                lock = hold(run_lock_path(results_dir, spec.run_id))
        try:
            state = inspect_run(run_dir(results_dir, spec.run_id), spec.config_hash)
            if claims and (state.done or state.status == "failed") and \
                    _stamp(results_dir, spec) != plan.seen.get(spec.run_id):
                # another process finished (or failed) it since our scan: never train a run twice
                outcome.by_others.append(spec.run_id)
                if state.status == "failed":
                    outcome.failed.append((spec.run_id, state.reason))
                elif state.status == "diverged":
                    outcome.diverged.append((spec.run_id, str((state.metrics or {}).get("error", ""))))
                continue
            report(progress, "runs", i, len(todo))
            i += 1
            announce(progress, start_line(spec))  # the same lines under every launcher (bench.runlines)
            status, error = execute(spec, book, progress)
            announce(progress, lambda s=spec: finish_line(results_dir, s.run_id, s.config_hash))
            if status == "finished":
                outcome.finished.append(spec.run_id)
            elif status == "diverged":
                outcome.diverged.append((spec.run_id, error))
            else:
                outcome.failed.append((spec.run_id, error))
        finally:
            if lock is not None:
                lock.release()
        if dist.is_main() and (not pending or last_summary is None
                               or time.monotonic() - last_summary >= SUMMARY_EVERY_S):
            # after the first run, then every SUMMARY_EVERY_S, and after the last: a killed suite still has a
            # recent summary (the run folders are the record), without rebuilding it from every folder after every
            # run (O(runs²): 500 fake runs spent 90% of 9.5 min rebuilding it)
            write_summary(results_dir)
            last_summary = time.monotonic()
    report(progress, "runs", len(todo), len(todo))


def _policy_missing(spec: RunSpec, state, results_dir: Path) -> bool:
    """A finished run that should keep its policy (`save_policy = "final"`, set after it ran) but has none:
    re-train it (same seed, same numbers) to get the checkpoint."""
    from bench.checkpoint import has_policy

    return (spec.options.save_policy == "final" and state.status == "finished"
            and get_algorithm(spec.algorithm).trains and not has_policy(run_dir(results_dir, spec.run_id)))
