"""Algorithms and worlds from outside the package (issue 14): a plug-in distribution installed from
tests/fixtures/plugin_pkg registers an algorithm and a world through entry points, a suite imports a module of
its own through `[suite].plugins`, and both run in a suite with no change to daa-bench. Also: `bench list` shows
where each came from and hides the test-only `fake`; a broken plug-in is one line and exit status 2."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "plugin_pkg"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """`pip install --no-deps --target SITE` of the fixture package: its entry points become visible to
    importlib.metadata in any process with SITE on its path (offline: the build uses the installed setuptools)."""
    site = tmp_path_factory.mktemp("plugin_site")
    build = tmp_path_factory.mktemp("plugin_build")
    src = build / "plugin_pkg"
    subprocess.run(["cp", "-r", str(FIXTURE), str(src)], check=True)  # builds write into the source tree
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--quiet", "--target", str(site), str(src)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(site.glob("daa_bench_example-*.dist-info/entry_points.txt"))
    return site


def bench(args: list[str], site: Path | None, cwd: Path, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in ([site] if site else []) + [REPO])
    env["OMP_NUM_THREADS"] = "1"
    if cache is not None:
        env["BENCH_CACHE"] = str(cache)
    return subprocess.run([sys.executable, "-m", "bench.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


LOCAL_LOSS = '''\
"""A suite-local algorithm: DPO with a smaller default beta, registered by [suite].plugins."""
from dataclasses import dataclass, field

from bench.algorithms.dpo_family import DPOFamily, DPOParams
from bench.algorithms.registry import register


@dataclass(frozen=True)
class Params(DPOParams):
    beta: float = field(default=0.05, metadata={"gt": 0})


@register("local_dpo")
class LocalDPO(DPOFamily):
    summary = "DPO at beta 0.05 (a suite-local plug-in)"
    Params = Params

    def loss_kwargs(self, p):
        return {"loss_type": ["sigmoid"]}
'''

SUITE = """\
[suite]
name = "plugins"
seeds = [0]
plugins = ["local_loss"]

[world]
kind = "tiny_controlled"

[budget]
flops = 6e8

[eval]
prompts = 16
curve_pairs = 8
curve_generation_prompts = 8
limit_prompts = 8
limit_samples = 8
best_of_n = 2
bootstrap = 100

[train]
per_device_train_batch_size = 8

[algorithms.sft]

[algorithms.dpo_margin]
gamma = 0.5

[algorithms.local_dpo]
"""


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_plugin_algorithm_and_world_run_in_a_suite(plugin_site, tmp_path):
    (tmp_path / "local_loss.py").write_text(LOCAL_LOSS, encoding="utf-8")
    (tmp_path / "plugins.toml").write_text(SUITE, encoding="utf-8")
    listing = bench(["list", "--suite", "plugins.toml"], plugin_site, tmp_path)
    assert listing.returncode == 0, listing.stderr[-2000:]
    out = listing.stdout
    assert "dpo_margin" in out and "from: entry point dpo_margin (daa-bench-example 0.1.0)" in out
    assert "from: suite module local_loss" in out
    assert "tiny_controlled" in out and "(from: entry point tiny_controlled (daa-bench-example 0.1.0))" in out
    assert "gamma=0.5 (>=0)" in out

    proc = bench(["run", "plugins.toml", "--results", "res", "--no-report"], plugin_site, tmp_path, tmp_path / "cache")
    assert proc.returncode == 0, (proc.stdout[-1500:], proc.stderr[-3000:])
    with open(tmp_path / "res" / "plugins" / "summary.csv", newline="", encoding="utf-8") as f:
        rows = {r["label"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"sft", "dpo_margin", "local_dpo"}
    for label in ("dpo_margin", "local_dpo"):
        row = rows[label]
        assert row["status"] == "finished", row.get("error")
        assert 0.0 <= float(row["win_rate"]) <= 1.0 and math.isfinite(float(row["kl"]))
        assert 0 < float(row["flops"]) <= 6e8
        assert math.isfinite(float(row["pref_accuracy"]))  # the implicit reward it declared was evaluated
    assert float(rows["dpo_margin"]["chosen_logp_delta"]) != 0.0


def test_without_the_plugin_the_suite_names_what_is_missing(tmp_path):
    (tmp_path / "plugins.toml").write_text(SUITE.replace('plugins = ["local_loss"]\n', ""), encoding="utf-8")
    proc = bench(["validate", "plugins.toml"], None, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "[world].kind: unknown world 'tiny_controlled'" in proc.stderr
    assert "unknown algorithm 'dpo_margin'" in proc.stderr and "[suite].plugins" in proc.stderr


@pytest.mark.parametrize("module_text, plugins, expected", [
    (None, '["no_such_module"]', "no module 'no_such_module'"),
    ("raise RuntimeError('broken on purpose')\n", '["bad_plugin"]', "module 'bad_plugin' failed to import: "
                                                                    "RuntimeError: broken on purpose (bad_plugin.py:1)"),
    ("from bench.algorithms.registry import register, Algorithm\n@register('dpo')\nclass D(Algorithm):\n    pass\n",
     '["bad_plugin"]', "algorithm 'dpo' is registered twice"),
    (None, '["not a module"]', "'not a module' is not a module name"),
])
def test_a_broken_plugin_is_one_line_and_exit_2(tmp_path, module_text, plugins, expected):
    if module_text is not None:
        (tmp_path / "bad_plugin.py").write_text(module_text, encoding="utf-8")
    (tmp_path / "s.toml").write_text(textwrap.dedent(f"""\
        [suite]
        name = "s"
        plugins = {plugins}

        [algorithms.sft]
        """), encoding="utf-8")
    proc = bench(["validate", "s.toml"], None, tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and expected in proc.stderr, proc.stderr


def test_list_hides_fake_unless_all(capsys):
    from bench.cli import main

    assert main(["list"]) == 0
    shown = capsys.readouterr().out
    assert "\n  fake " not in shown and "\n  dpo " in shown
    assert "family: dpo; trains, reference model; from: built-in" in shown
    assert "paper: Rafailov et al. 2023" in shown
    assert "rloo" in shown and "reward model (charged)" in shown
    assert main(["list", "--all"]) == 0
    assert "\n  fake " in capsys.readouterr().out


def test_worked_example_loss_is_what_its_docstring_says():
    """The docs' worked example (tests/fixtures/plugin_pkg/daa_bench_example/dpo_margin.py) computes the number
    in its docstring, and is DPO at γ = 0."""
    import torch

    sys.path.insert(0, str(FIXTURE))
    try:
        from daa_bench_example.dpo_margin import dpo_margin_loss
    finally:
        sys.path.remove(str(FIXTURE))
    from bench.algorithms.reference_losses import dpo_loss

    t = lambda *x: torch.tensor(x, dtype=torch.float64)  # noqa: E731
    losses, rc, rr = dpo_margin_loss(t(-10), t(-12), t(-11), t(-11), beta=0.1, gamma=0.2)
    assert losses.item() == pytest.approx(math.log(2), abs=1e-9) and rc.item() == pytest.approx(0.1)
    a, _, _ = dpo_margin_loss(t(-3, -7), t(-4, -2), t(-5, -5), t(-5, -5), beta=0.3, gamma=0.0)
    b, _, _ = dpo_loss(t(-3, -7), t(-4, -2), t(-5, -5), t(-5, -5), beta=0.3)
    assert torch.allclose(a, b)


def test_docs_worked_example_is_the_fixture_and_under_60_lines():
    doc = (REPO / "docs" / "plugins.md").read_text(encoding="utf-8")
    example = (FIXTURE / "daa_bench_example" / "dpo_margin.py").read_text(encoding="utf-8")
    assert example.strip() in doc, "docs/plugins.md must show the fixture's dpo_margin.py verbatim"
    assert len(example.strip().splitlines()) < 60
