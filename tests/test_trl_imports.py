"""TRL's experimental trainers stay out of `import bench` (a future removal breaks one algorithm, not the package);
the user never sees TRL's TRLExperimentalWarning; algorithms whose TRL trainer was removed answer with one line
naming the last TRL that had it (issue 26)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench.errors import UserError

PROBE = r"""
import sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as seen:
    import bench, bench.cli, bench.api, bench.runner
    from bench.algorithms.registry import all_algorithms
    all_algorithms()
    print("EXPERIMENTAL", sorted(m for m in sys.modules if m.startswith("trl.experimental")))
    from bench.algorithms.trl_common import experimental
    for algo, module, names in [("simpo", "cpo", ("CPOConfig", "CPOTrainer")), ("orpo", "orpo", ("ORPOTrainer",)),
                                ("online_dpo", "online_dpo", ("OnlineDPOTrainer",))]:
        assert all(isinstance(x, type) for x in experimental(algo, module, *names))
print("WARNINGS", [str(w.message)[:60] for w in seen if "experimental" in str(w.message)])
"""


def test_import_bench_loads_no_experimental_trl_and_nothing_warns():
    pytest.importorskip("trl")
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "EXPERIMENTAL []" in out.stdout       # nothing of trl.experimental at import or registry load
    assert "WARNINGS []" in out.stdout           # importing the trainers later shows no TRLExperimentalWarning
    assert "TRLExperimentalWarning" not in out.stderr


def test_a_removed_experimental_trainer_is_one_line_naming_the_algorithm():
    from bench.algorithms.trl_common import experimental

    with pytest.raises(UserError) as err:
        experimental("simpo", "no_such_trainer", "CPOTrainer")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("algorithm 'simpo' needs trl.experimental.no_such_trainer")
    assert "installed trl" in msg


@pytest.mark.parametrize("name, last", [("ppo_trl", "trl 1.12"), ("xpo", "trl 1.13"), ("nash_md", "trl 1.13")])
def test_removed_algorithms_name_the_last_trl_that_had_them(name, last):
    from bench.algorithms.registry import all_algorithms, get_algorithm

    assert name not in all_algorithms()
    with pytest.raises(UserError) as err:
        get_algorithm(name)
    msg = str(err.value)
    assert "\n" not in msg and f"the last with it: {last}" in msg and "no longer available" in msg


def test_a_suite_naming_a_removed_algorithm_fails_validation_with_that_line(tmp_path):
    from bench.suite import load_suite

    path = tmp_path / "s.toml"
    path.write_text('[suite]\nname = "s"\n[algorithms.xpo]\nbeta = 0.1\n')
    with pytest.raises(UserError, match="xpo.*removed in trl 1.14"):
        load_suite(path)
