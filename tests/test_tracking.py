"""`[train] report_to`: one tiny DPO run reported to TensorBoard and trackio (both local, offline) next to the same
run untracked. The event files and trackio's SQLite database are read back: training loss, budget fraction every
step, the evaluation curves at their steps, the final metrics, and the run's name and tags. Tracking changes no
number and no run id; the full trainer log history is kept in log_history.jsonl either way."""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.suite import expand, load_suite
from tiny_suite import one_thread, run_dirs, stable_metrics, write_tiny_suite


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tracking")
    # Runs train in fresh child processes (bench.launchers.attempt), which read TRACKIO_DIR at their own import of
    # trackio: the database is where this environment variable points, whatever this process imported earlier
    # (reading trackio.utils.TRACKIO_DIR here gave the default ~/.cache path once another test had imported trackio).
    trackio_dir = Path(tempfile.mkdtemp(prefix="trackio-", dir=tmp))
    previous = os.environ.get("TRACKIO_DIR")
    os.environ["TRACKIO_DIR"] = str(trackio_dir)
    quiet = os.environ.get("BENCH_QUIET")
    os.environ["BENCH_QUIET"] = "1"  # restored below: later tests read the run lines on stderr
    suite = write_tiny_suite(tmp, name="trk")
    cache = tmp / "cache"
    out = {}
    with one_thread():
        for name, report_to in (("none", '"none"'), ("tracked", '["tensorboard","trackio"]')):
            code = main(["run", str(suite), "--results", str(tmp / name), "--cache-dir", str(cache), "--device", "cpu",
                         "--no-report", "--set", f"train.report_to={report_to}"])
            assert code == 0
            out[name] = run_dirs(tmp / name / "trk")["dpo"]
    if previous is None:
        os.environ.pop("TRACKIO_DIR", None)
    else:
        os.environ["TRACKIO_DIR"] = previous
    if quiet is None:
        os.environ.pop("BENCH_QUIET", None)
    else:
        os.environ["BENCH_QUIET"] = quiet
    out["trackio_db"] = trackio_dir / "trk.db"
    assert out["trackio_db"].is_file(), f"trackio wrote no database under {trackio_dir}"
    return out


def scalars(run: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    values = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    texts = {tag: acc.Tensors(tag)[0].tensor_proto.string_val[0].decode() for tag in acc.Tags()["tensors"]}
    return values, texts


def test_tracking_changes_no_number_and_no_run_id(tracked):
    assert tracked["none"].name == tracked["tracked"].name
    assert stable_metrics(tracked["none"]) == stable_metrics(tracked["tracked"])
    assert not (tracked["none"] / "tensorboard").exists()


def test_tensorboard_has_training_budget_curves_and_final_metrics(tracked):
    run = tracked["tracked"]
    values, texts = scalars(run)
    metrics = json.loads((run / "metrics.json").read_text())
    steps = metrics["steps"]
    losses = values["train/loss"]
    assert [s for s, _ in losses] == list(range(1, steps + 1))
    assert losses[0][1] == pytest.approx(0.693147, abs=1e-5)  # DPO at step 1: log 2
    # every step's log, then the trainer's closing entry (train_runtime, ...) at the last step
    assert [s for s, _ in values["train/budget/fraction"]] == list(range(1, steps + 1)) + [steps]
    fraction = [v for _, v in values["train/budget/fraction"]]
    assert fraction == sorted(fraction) and 0 < fraction[0] < fraction[-1] <= 1.0
    assert fraction[-1] == pytest.approx(metrics["budget_fraction"], rel=1e-6)
    # every curve point at its step, the same values as curves.csv
    import csv

    with open(run / "curves.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "heldout" and r["win_rate"]]
    logged = values["eval/heldout/win_rate"]
    assert [s for s, _ in logged] == [int(r["step"]) for r in rows]
    assert [v for _, v in logged] == pytest.approx([float(r["win_rate"]) for r in rows], rel=1e-6)
    assert "eval/heldout/chosen_logp_delta" in values and "eval/train/margin_delta" in values
    for key in ("win_rate", "kl", "gold_reward", "chosen_logp_delta", "flops"):
        (step, value), = values[f"test/{key}"]
        assert step == steps and value == pytest.approx(metrics[key], rel=1e-6), key
    tags = texts["train/run/tags/text_summary"]
    assert f"run_id={run.name}" in tags and "suite=trk" in tags and "algorithm=dpo" in tags and "seed=0" in tags
    assert f'"run_name": "{run.name}"' in texts["args/text_summary"]


def test_trackio_run_is_named_by_run_id_in_the_suite_project(tracked):
    run = tracked["tracked"]
    metrics = json.loads((run / "metrics.json").read_text())
    db = sqlite3.connect(tracked["trackio_db"])
    rows = [json.loads(m) for (m,) in db.execute("select metrics from metrics where run_name = ?", (run.name,))]
    config = [json.loads(c) for (c,) in db.execute("select config from configs where run_name = ?", (run.name,))]
    db.close()
    keys = set().union(*rows)
    assert {"train/loss", "train/budget/fraction", "eval/heldout/win_rate", "test/win_rate"} <= keys
    final = [r for r in rows if "test/win_rate" in r]
    assert len(final) == 1 and final[0]["test/win_rate"] == pytest.approx(metrics["win_rate"])
    assert config and config[-1]["bench/run_id"] == run.name and config[-1]["bench/algorithm"] == "dpo"


def test_log_history_is_kept_in_full_with_the_budget_fraction(tracked):
    for run in (tracked["none"], tracked["tracked"]):
        metrics = json.loads((run / "metrics.json").read_text())
        history = [json.loads(line) for line in (run / "log_history.jsonl").read_text().splitlines()]
        steps = [h["step"] for h in history if "loss" in h]
        assert steps == list(range(1, metrics["steps"] + 1))
        assert history[-1]["train_runtime"] > 0  # the trainer's closing entry too
        assert all(0 < h["budget_fraction"] <= 1 for h in history)
        assert metrics["train_logs"] == history[-50:]


def test_report_to_is_validated_and_not_part_of_run_ids(tmp_path, capsys):
    suite = write_tiny_suite(tmp_path)
    plain = [s.run_id for s in expand(load_suite(suite))]
    assert plain == [s.run_id for s in expand(load_suite(suite, ["train.report_to=wandb",
                                                                 "train.save_policy=final"]))]
    assert load_suite(suite).raw_hash == load_suite(suite, ["train.report_to=tensorboard"]).raw_hash
    with pytest.raises(UserError, match=r"\[train\]\.report_to: unknown tracker 'tensorbord'; did you mean "
                                        r"'tensorboard'\?"):
        load_suite(suite, ["train.report_to=tensorbord"])
    assert main(["validate", str(suite), "--set", 'train.report_to=["none","wandb"]']) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be combined" in err
