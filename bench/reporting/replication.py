"""The report's opening section for a replication suite (`[replication]`): the verdict, its deciding paired
interval, the claim and citation, every matched point, the mechanism when the rerun contradicts the claim, and
the command that reruns it. The verdict is computed by bench/evaluation/replication.py; this module only reads
results and formats.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.evaluation.replication import Verdict, decide, swept_axes, with_selection


def verdict_of(results_dir: Path) -> Verdict | None:
    """The verdict of the replication suite whose results are in `results_dir` (None: not a replication suite)."""
    from bench.io import read_json
    from bench.results import from_results, summary_frame

    results_dir = Path(results_dir)
    record = results_dir / "suite.json"
    suite = read_json(record) if record.is_file() else {}
    if not suite.get("replication") or not (results_dir / "runs").is_dir():
        return None
    frame = with_selection(summary_frame(results_dir, intervals=False), results_dir)
    return decide(suite["replication"], frame, from_results(results_dir, frame), swept_axes(suite))


def rerun_command(suite: dict[str, Any]) -> str:
    """`bench run <suite path>`, relative to the working directory when the suite was run by an absolute path
    inside it (the command a reader of the report types from the repository)."""
    path = suite.get("path") or f"suites/replications/{suite.get('name', '<suite>')}.toml"
    try:
        path = str(Path(path).relative_to(Path.cwd())) if Path(path).is_absolute() else path
    except ValueError:
        pass
    return f"bench run {path}"


def _num(x: float) -> str:
    return f"{x:+.3f}" if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def section(suite: dict[str, Any], frame, unc) -> dict[str, Any] | None:
    """Template context of the verdict section; None for a suite without `[replication]`."""
    rep = suite.get("replication")
    if not rep or not len(frame):
        return None
    v = decide(rep, frame, unc, swept_axes(suite))
    return {"verdict": v.verdict, "headline": v.headline, "claim": v.claim, "citation": v.citation,
            "stands_in_for": v.stands_in_for, "world_gap": v.world_gap, "mechanism": v.mechanism,
            "reason": v.reason, "to_decide": v.to_decide, "selection": v.selection, "also_at_kl": v.also_at_kl, "rerun": rerun_command(suite), "has_where": any(p.condition for p in v.points),
            "points": [{"a": p.a, "b": p.b, "d": _num(p.difference),
                        "ci": f"[{_num(p.lo)}, {_num(p.hi)}]" if math.isfinite(p.lo) else "one seed: no interval",
                        "seeds": p.seeds, "reading": p.reading, "condition": p.condition,
                        "deciding": v.deciding is p} for p in v.points]}
