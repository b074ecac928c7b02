"""The parent's run lines under `--workers N` (bench.launchers.local.RunLines) when failed runs are retried: the
retry removes the run's old metrics.json and config.json before it trains again, and that is neither the run's end
nor a failure ("✗ ... ended without a result" was printed for every retried run while it trained, then nothing
when it finished)."""

from __future__ import annotations

import json
import os
import time
from types import SimpleNamespace


def test_a_retried_run_reads_started_then_finished_not_ended_without_a_result(tmp_path, monkeypatch):
    import bench.runlines
    from bench.launchers.local import RunLines
    from bench.results import run_dir

    spec = SimpleNamespace(run_id="dpo_s0_abc", algorithm="dpo", seed=0, config_hash=None)
    folder = run_dir(tmp_path, spec.run_id)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"label": "dpo"}))
    (folder / "metrics.json").write_text(json.dumps({"status": "failed", "error": "TypeError: boom"}))
    lines = []
    monkeypatch.setattr(bench.runlines, "finish_line", lambda folder, run_id, h=None: f"END {run_id}")
    progress = SimpleNamespace(line=lines.append)
    watch = RunLines(SimpleNamespace(specs=[spec], results_dir=tmp_path), progress)

    for name in ("metrics.json", "config.json"):  # the retry clears the old attempt
        (folder / name).unlink()
    watch.poll()
    assert lines == []
    time.sleep(0.01)
    (folder / "config.json").write_text(json.dumps({"label": "dpo"}))
    watch.poll()
    assert len(lines) == 1 and lines[0].startswith("▶ dpo_s0_abc")
    (folder / "metrics.json").write_text(json.dumps({"status": "finished", "win_rate": 0.61, "wall_s": 12.0}))
    os.utime(folder / "metrics.json", ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    watch.poll()
    assert lines[1:] == ["END dpo_s0_abc"]  # once, when the new metrics.json appears
    watch.poll()
    assert len(lines) == 2
