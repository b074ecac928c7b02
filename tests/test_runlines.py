"""Each run's start and finish line (bench.runlines), as `bench run` prints them: a failure's cause on one line,
a stream that cannot encode the symbols (a LANG=C log) gets ASCII ones, and a terminal's bars stay intact. The same
lines under every launcher are checked in tests/test_launchers.py (sequential, local workers, submitit's local
executor) and tests/test_slurm.py (a real single-node cluster)."""

from __future__ import annotations

import io
import textwrap

from bench.cli import main
from bench.progress import LineProgress, TqdmProgress, announce
from bench.runlines import start_line
from bench.terminal import encodable as for_stream
from bench.suite import expand, load_suite

SUITE = """
[suite]
name = "lines"
seeds = [0]
[budget]
flops = 1e9
[algorithms.fake]
beta = 0.1
[algorithms.broken]
algorithm = "fake"
fail = true
"""


def test_sequential_prints_a_failure_as_one_line_with_its_cause(tmp_path, capsys):
    path = tmp_path / "lines.toml"
    path.write_text(textwrap.dedent(SUITE), encoding="utf-8")
    code = main(["run", str(path), "--results", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"),
                 "--launcher", "sequential", "--no-report"])
    assert code != 0  # a failed run: exit 3
    err = capsys.readouterr().err.splitlines()
    ok, broken = sorted(expand(load_suite(path)), key=lambda s: s.label != "fake")
    assert f"▶ {ok.run_id} fake seed 0" in err and f"▶ {broken.run_id} fake seed 0" in err
    assert any(line.startswith(f"✓ {ok.run_id} win 0.") for line in err)
    failed = [line for line in err if line.startswith(f"✗ {broken.run_id} failed: ")]
    assert len(failed) == 1 and "RuntimeError: fake algorithm asked to fail" in failed[0], err


class _Spec:
    run_id, algorithm, seed = "dpo_s0_12345678", "dpo", 0


def test_lines_fall_back_to_ascii_where_the_stream_cannot_encode_them():
    ascii_log = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert for_stream(start_line(_Spec(), "job 7"), ascii_log) == "> dpo_s0_12345678 dpo seed 0 (job 7)"
    assert for_stream("✓ r win 0.50 · 3.0 s", ascii_log) == "+ r win 0.50 - 3.0 s"
    assert for_stream("✓ r win 0.50 · 3.0 s", io.StringIO()) == "✓ r win 0.50 · 3.0 s"
    progress = LineProgress(ascii_log)
    announce(progress, "✗ r failed: boom")
    ascii_log.flush()
    assert ascii_log.buffer.getvalue().decode() == "x r failed: boom\n"


def test_a_terminal_gets_the_lines_above_its_bars_and_a_plain_callable_ignores_them():
    term = io.StringIO()
    bars = TqdmProgress(term, mininterval=60)
    bars("runs", 0, 2)
    announce(bars, start_line(_Spec()))
    bars("runs", 2, 2)
    assert "▶ dpo_s0_12345678 dpo seed 0\n" in term.getvalue()
    seen = []
    announce(lambda stage, done, total: seen.append(stage), "▶ x")  # progress without `line`: nothing, no error
    announce(None, "▶ x")
    assert seen == []
