"""A suite invocation's utilisation: the FLOPs it actually computed ÷ (its wall time × this machine's peak).

FLOPs computed = every model pass the runs trained in this invocation metered (policy, reference, value model,
reward-model scoring: `compute.flops_by_component` of each run's metrics.json) with the shared stages counted
once, and only when built now: each reward model's training (which every run using it is *charged* in full,
but which ran once), and the base policy's pre-training when the world was built. Evaluation passes (sampling,
log-probs of held-out pairs, lm-eval) are not metered, so the figure is a lower bound on the work done.

Peak = fp32 matmul FLOP/s of this machine with all its cores (bench.machine, measured once in ~1 s and cached),
so 100% means every core doing large matmuls the whole time. Written to results/<suite>/utilisation.json (the
report's header shows it) and stated on the suite's closing line.
"""

from __future__ import annotations

from pathlib import Path

from bench.io import write_json_atomic


def run_flops(metrics: dict) -> tuple[float, float]:
    """(FLOPs this run computed itself, the reward-model training it was charged) from its metrics.json."""
    compute = metrics.get("compute") or {}
    parts = dict(compute.get("flops_by_component") or {})
    shared = float(parts.pop("reward_model_training", 0.0) or 0.0)
    return float(sum(float(v or 0.0) for v in parts.values())), shared


def record_utilisation(plan, outcome, book) -> dict | None:
    """Compute, write and return the utilisation record (None when nothing was trained with torch)."""
    import json

    from bench.results import run_dir

    trained = [*outcome.finished, *(r for r, _ in outcome.diverged), *(r for r, _ in outcome.failed
                                                                       if r not in outcome.by_others)]
    if not plan.needs_torch or not trained:
        return None
    flops_runs = 0.0
    for run_id in trained:
        try:
            metrics = json.loads((run_dir(plan.results_dir, run_id) / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        flops_runs += run_flops(metrics)[0]
    flops_shared, shared_parts = _shared_stage_flops(plan, book, outcome.seconds)
    from bench.machine import cpu_cores, matmul_peak
    from bench.modeling import pick_device

    device = str(pick_device(plan.device))
    threads = cpu_cores() if device == "cpu" else None
    peak = matmul_peak(plan.cache_dir, "cuda" if device.startswith("cuda") else "cpu", threads)
    wall = outcome.seconds
    flops = flops_runs + flops_shared
    record = {"launcher": outcome.launcher, "runs_trained": len(trained), "wall_s": wall, "flops": flops,
              "flops_runs": flops_runs, "flops_shared_stages": flops_shared, "shared_stages": shared_parts,
              "peak_flops_per_s": peak["flops_per_s"], "peak_device": peak["device"], "peak_threads": peak["threads"],
              "utilisation": flops / (wall * peak["flops_per_s"]) if wall > 0 and peak["flops_per_s"] > 0 else None,
              "stage_seconds": dict(outcome.stage_seconds),
              "note": "FLOPs metered in training (evaluation passes are not metered: a lower bound); shared stages "
                      "counted once, when built in this invocation; peak = fp32 matmul with every core"}
    write_json_atomic(Path(plan.results_dir) / "utilisation.json", record)
    return record


def _shared_stage_flops(plan, book, wall: float) -> tuple[float, dict]:
    """FLOPs of the shared stages built during this invocation (record files written within `wall` seconds)."""
    import json
    import time

    since = time.time() - wall - 1.0
    parts: dict[str, float] = {}
    stages = book.first
    if stages is None or stages._world is None:
        return 0.0, parts
    world = stages._world
    if world.info.get("cache_hit") is False:
        parts["world_pretrain"] = float((world.info.get("pretrain") or {}).get("flops", 0.0) or 0.0)
    for record_file in Path(world.root).glob("reward_model-*/record.json"):
        try:
            if record_file.stat().st_mtime < since:
                continue
            parts[record_file.parent.name] = float(json.loads(record_file.read_text(encoding="utf-8"))["flops"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sum(parts.values()), parts
