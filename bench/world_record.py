"""What `bench run` writes about the world beside the runs: results/<suite>/world.json (the build record a baseline
checks identity against) and limits.json (the best-of-n frontier and the KL-optimal limit, sampled from π_ref far
enough to cover the largest KL any run reached: issue 25). Split from bench/runner.py (issue 23)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from bench.io import write_json_atomic


def write_world_record(results_dir: Path, stages) -> None:
    """results/<suite>/world.json (build record) and limits.json (best-of-n frontier, KL-optimal limit)."""
    world = stages.world()
    write_json_atomic(results_dir / "world.json", {"kind": world.kind, "key": world.key, **world.info})
    if world.kind == "controlled":  # limits that cover the KL the suite's runs reached (issue 25)
        limits = {k: v for k, v in stages.limits(reach_kl=runs_reach_kl(results_dir)).items() if k != "corr_samples"}
        write_json_atomic(results_dir / "limits.json", limits)


def runs_reach_kl(results_dir: Path) -> float:
    """The largest tokenwise KL any finished run of the folder reached, at its end or at a curve point (0 if none):
    what the limits' π_ref samples per prompt must cover."""
    best = 0.0
    for run in sorted((Path(results_dir) / "runs").glob("*/")):
        values = []
        try:
            values.append(json.loads((run / "metrics.json").read_text()).get("kl_tokenwise"))
        except (OSError, ValueError):
            pass
        try:
            with open(run / "curves.csv", newline="") as f:
                values += [row.get("kl_tokenwise") for row in csv.DictReader(f)]
        except OSError:
            pass
        for v in values:
            try:
                v = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                best = max(best, v)
    return best
