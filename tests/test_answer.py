"""Issue 27: the answer first. The report's first screen and `bench run`'s last lines state the tied-best group and
each resolved gap with the pairwise table's intervals, the cost and the caveats; and the CLI slips a new user hit
(an unavailable device, `bench compare` on a baseline JSON, output flags named one way)."""

from __future__ import annotations

import html as html_lib
import re

import pytest
import torch

from bench.cli import main
from test_report import build_results
from test_runner import write_suite


@pytest.fixture(scope="module")
def answer(tmp_path_factory):
    from bench.reporting import ANSWER_FILE, write_report

    root = tmp_path_factory.mktemp("answer")
    page = write_report(build_results(root), root / "report")
    return page.read_text(encoding="utf-8"), (page.parent / ANSWER_FILE).read_text(encoding="utf-8")


def _section(html: str, name: str) -> str:
    start = html.index(f'<section id="{name}">')
    return html[start:html.index("</section>", start)]


def test_first_screen_is_the_answer_not_the_metadata(answer):
    html, _ = answer
    body = html[html.index("<body>"):]
    assert body.index('<section id="answer">') < body.index('<section id="leaderboard">')
    assert body.index('<table class="facts">') > body.index('<section id="samples">')  # metadata moved below
    assert not re.search(r"<h2>\s*4b|<h2>\d+ · ", html)  # no section numbers, no "4b" placeholder


def test_answer_names_the_tied_best_group_and_each_resolved_gap(answer):
    """The fixture: ppo leads (0.81); ipo's paired difference with it is not resolved (one seed in common: tied);
    dpo's is (+0.120). The short table is sorted by win rate, the tied-best group marked, references last."""
    html, text = answer
    part = _section(html, "answer")
    verdict = html_lib.unescape(re.sub(r"<[^>]+>", "", part.split("</p>")[0]))
    assert "best: ppo (win rate 0.810 [0.683, 0.937] vs π_ref), tied with ipo" in verdict
    assert "It beats dpo (beta=0.5) by +0.120" in verdict
    rows = re.findall(r'<tr class="([^"]*)"><td class="label">([^<]*)</td>', part)
    assert [(c.strip(), re.sub(r"^[★=] ", "", s)) for c, s in rows] == [
        ("best", "ppo"), ("", "dpo (beta=0.5)"), ("tied", "ipo"), ("reference", "sft")]
    for header in ("win rate", "KL", "FLOPs", "steps", "epochs", "wall s"):
        assert f">{header}" in part
    # the same answer as text: what `bench run` prints last
    assert text.splitlines()[0] == re.sub(r"\s+", " ", verdict).strip()
    assert re.search(r"★\s+ppo\s+0\.810 \[0\.683, 0\.937\]", text)


def test_answer_states_cost_by_component_and_the_caveats(answer):
    html, text = answer
    part = re.sub(r"<[^>]+>", "", _section(html, "answer"))
    assert "ppo: 40 steps" in part and "reward-model training 35%" in part and "value model 25%" in part
    assert "ppo (35%) paid for training it out of the same budget" in part
    assert "amortised view (reward model paid apart) was not run" in part
    assert "1 run failed (ipo)" in part
    assert "! Reward model: ppo (35%)" in text


def test_few_steps_caveat_names_both_counts():
    import pandas as pd

    from bench.reporting.verdict import _caveats

    costs = [{"setting": "dpo", "steps": 132.0, "epochs": 1.06, "reward_model": 0.0},
             {"setting": "ppo", "steps": 11.0, "epochs": 0.18, "reward_model": 0.3}]
    notes = _caveats(pd.DataFrame({"setting": ["dpo", "ppo"]}), pd.DataFrame(), costs, {}, None)
    assert any("ppo took 11 (0.18 epochs) against dpo's 132" in n for n in notes)


def test_a_seed_that_left_the_language_mid_training_is_a_caveat():
    """cDPO seed 0 of the default suite went to 8% grammatical (KL 50) at step 106 and ended at 96%: its final
    readings hide it, so the answer names it from the curves; a seed that stayed in the language is not named."""
    import pandas as pd

    from bench.reporting.tables import transient_flags
    from bench.reporting.verdict import _caveats

    runs = pd.DataFrame({"run_id": ["c0", "c1", "s0"], "setting": ["cdpo", "cdpo", "sft"], "seed": [0, 1, 0],
                         "algorithm": ["cdpo", "cdpo", "sft"], "status": ["finished"] * 3,
                         "grammatical_fraction": [0.96, 0.95, 0.95]})
    curves = pd.DataFrame({"run_id": ["c0"] * 3 + ["c1"] * 3, "split": ["heldout"] * 6, "step": [0, 106, 132] * 2,
                           "grammatical_fraction": [0.96, 0.08, 0.96, 0.95, 0.93, 0.95],
                           "kl_tokenwise": [0.0, 50.1, 1.7, 0.0, 1.5, 1.6]})
    flags = transient_flags(curves, runs)
    assert flags == {"cdpo": "seed 0 left the language mid-training (8% grammatical at step 106, KL 50.1) and came "
                             "back (96% at the end)"}
    notes = _caveats(pd.DataFrame({"setting": ["cdpo"]}), pd.DataFrame(), [], flags, None)
    assert any(n.startswith("Transient collapse: cdpo: seed 0") for n in notes), notes


def test_samples_do_not_repeat_pi_ref_as_sft(answer):
    html, _ = answer
    samples = _section(html, "samples")
    assert "π_ref (reference)" in samples and ">sft</a>" not in samples
    assert "log π/π_ref" in samples


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_unavailable_device_is_a_one_line_usage_error(tmp_path, capsys):
    path = write_suite(tmp_path, "[algorithms.fake]\n", seeds=(0,))
    assert main(["run", str(path), "--device", "cuda", "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--device cuda: no CUDA device here" in err[0] and "--device cpu" in err[0]
    assert not (tmp_path / "r").exists()  # nothing ran, nothing recorded as failed
    assert main(["run", str(path), "--device", "tpu9", "--dry-run"]) == 2


def test_compare_accepts_a_baseline_json_and_run_prints_the_answer(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_QUIET", "1")
    path = write_suite(tmp_path, "[algorithms.fake]\nbeta = 0.1\n[algorithms.other]\nalgorithm = \"fake\"\n"
                       "beta = 0.5\n", seeds=(0, 1))
    # the old flag names stay as aliases
    assert main(["run", str(path), "--results", str(tmp_path / "results"), "--report-dir", str(tmp_path / "rep"),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "best: " in out and re.search(r"★\s+\w+", out) and "win rate [95%]" in out
    results = tmp_path / "results" / "fk"
    assert main(["baseline", str(results), "-o", str(tmp_path / "base.json")]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "base.json"), str(results)]) == 0
    table = capsys.readouterr().out
    assert "A = " in table and "win_rate" in table
    assert main(["compare", str(tmp_path / "nothing"), str(results)]) == 2
    assert main(["report", str(results), "-o", str(tmp_path / "rep2")]) == 0
    assert (tmp_path / "rep2" / "answer.txt").is_file()


def test_runs_hidden_by_a_new_configuration_are_named(tmp_path, capsys, monkeypatch):
    """`--set budget.flops=...` on a finished suite: the earlier runs leave the summary and the report (they stay on
    disk); `bench run` and `bench report` say so in one line instead of dropping them silently."""
    monkeypatch.setenv("BENCH_QUIET", "1")
    path = write_suite(tmp_path, "[algorithms.fake]\nbeta = 0.1\n", seeds=(0, 1))
    common = ["--results-dir", str(tmp_path / "results"), "--cache-dir", str(tmp_path / "cache"), "--no-report"]
    assert main(["run", str(path), *common]) == 0
    assert "earlier configuration" not in capsys.readouterr().err
    assert main(["run", str(path), "--set", "budget.flops=2e9", *common]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "earlier configuration" in line]
    assert len(err) == 1 and err[0].startswith("warning: 2 run folder(s)")
    assert main(["report", str(tmp_path / "results" / "fk"), "-o", str(tmp_path / "rep")]) == 0
    assert "earlier configuration" in capsys.readouterr().err


def test_unset_learning_rate_is_warned(tmp_path, capsys):
    from bench.suite import load_suite, unset_learning_rates

    path = write_suite(tmp_path, "[algorithms.fake]\n[algorithms.dpo]\n[algorithms.tuned]\nalgorithm = \"dpo\"\n"
                       "learning_rate = 3e-4\n", seeds=(0,))
    assert unset_learning_rates(load_suite(path)) == ["dpo"]  # not the test-only `fake` (hidden), not `tuned`
    assert main(["run", str(path), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "no learning_rate for dpo;" in err and "tuned" in err
    assert unset_learning_rates(load_suite("suites/controlled.toml")) == []


def test_model_card_metadata_is_what_the_hub_reads():
    """Exported cards carry base_model (hub worlds), a licence and a model-index with the run's results, written
    and read back through huggingface_hub's ModelCard (no network)."""
    from huggingface_hub import ModelCard

    from bench.checkpoint import model_card

    config = {"run_id": "dpo_s0_ab12cd34", "algorithm": "dpo", "suite": "uf", "label": "dpo", "seed": 0,
              "world": {"kind": "hub", "model": "org/tiny-base", "dataset": "org/prefs"}, "budget": {"flops": 1e15},
              "params": {"beta": 0.1}}
    card = ModelCard(model_card(config, {"win_rate": 0.61, "kl": 2.5, "gold_reward": float("nan"), "steps": 7}))
    data = card.data.to_dict()
    assert data["base_model"] == "org/tiny-base" and data["datasets"] == ["org/prefs"] and data["license"] == "other"
    metrics = {m["type"]: m["value"] for m in data["model-index"][0]["results"][0]["metrics"]}
    assert metrics == {"win_rate": 0.61, "kl": 2.5}  # a NaN reading is left out, not written as nan
    controlled = ModelCard(model_card({**config, "world": {"kind": "controlled"}}, {"win_rate": 0.6})).data.to_dict()
    assert controlled["license"] == "apache-2.0" and "base_model" not in controlled


def test_api_run_is_as_quiet_as_the_cli_and_restores_the_notebook():
    """bench.run_suite (quiet by default) hides library FutureWarnings and log lines while it runs, then gives the
    caller its warning filters and logger levels back."""
    import logging
    import warnings

    from bench.api import _quietly

    logging.getLogger("transformers").setLevel(logging.INFO)

    def noisy():
        warnings.warn("inside", FutureWarning)
        return logging.getLogger("transformers").level

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert _quietly(noisy) == logging.ERROR
        warnings.warn("after", FutureWarning)
    assert [str(w.message) for w in seen] == ["after"]
    assert logging.getLogger("transformers").level == logging.INFO


def test_local_workers_write_a_line_per_run_to_their_logs(tmp_path, monkeypatch):
    """The default launcher's worker-K.log was 0 bytes: each worker now logs each run it starts and its end."""
    monkeypatch.setenv("BENCH_QUIET", "1")
    path = write_suite(tmp_path, "[algorithms.fake]\nbeta = [0.1, 0.5]\nlearning_rate = 1e-3\n", seeds=(0, 1))
    assert main(["run", str(path), "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"),
                 "--no-report", "--launcher", "local", "--workers", "2"]) == 0
    logs = sorted((tmp_path / "r" / "fk" / ".launch" / "local").glob("worker-*.log"))
    assert len(logs) == 2
    text = "".join(p.read_text(encoding="utf-8") for p in logs)
    # bench/runlines.py's lines, the same under every launcher: a start and a finish per run
    assert text.count("▶ fake_") == 4 and text.count("✓ fake_") == 4 and text.count("queue done") == 2, text


def test_short_table_head_follows_its_cells(answer):
    """The first screen's table head comes from the same column list as its cells (verdict.SHORT_COLUMNS): a
    hand-written head kept the old order when steps moved before FLOPs, so "steps" sat above the FLOPs."""
    from bench.reporting.verdict import SHORT_COLUMNS

    html, _ = answer
    section = _section(html, "answer")
    head = section[section.index("<thead>"):section.index("</thead>")]
    titles = re.findall(r'<th class="num">([^<]+)', head)
    assert titles == [t for _, t, _ in SHORT_COLUMNS]
    assert titles.index("steps") < titles.index("FLOPs")


def test_a_collapsed_seed_gets_the_failure_aware_reading():
    """A seed below the language floor: the caveat keeps it in the mean and adds k of n with the failure rate's
    Clopper–Pearson interval (1 of 3: [0.84%, 90.6%]) and the win rate over the seeds that stayed (t with 1 df over
    0.65 and 0.67: 0.66 ± 12.706·0.01)."""
    import pandas as pd

    from bench.evaluation.uncertainty import from_frame
    from bench.reporting.tables import seed_flags
    from bench.reporting.verdict import _caveats

    frame = pd.DataFrame({"run_id": ["p0", "p1", "p2", "s0", "s1", "s2"], "label": ["simpo"] * 3 + ["sft"] * 3,
                          "setting": ["simpo"] * 3 + ["sft"] * 3, "seed": [0, 1, 2] * 2,
                          "algorithm": ["simpo"] * 3 + ["sft"] * 3, "status": ["finished"] * 6,
                          "grammatical_fraction": [0.53, 0.95, 0.96, 0.94, 0.95, 0.93],
                          "win_rate": [0.39, 0.65, 0.67, 0.5, 0.49, 0.51]})
    unc = from_frame(frame)
    assert seed_flags(frame) == {"simpo": "seed 0: 53% grammatical"}  # the leaderboard's ⚠: which seeds
    text = seed_flags(frame, unc)["simpo"]
    assert text == ("seed 0: 53% grammatical — 1 of 3 seeds left the language, a failure rate with 95% interval "
                    "[0.8%, 91%] (Clopper–Pearson), win rate 0.660 [0.533, 0.787] over the 2 that stayed")
    notes = _caveats(pd.DataFrame({"setting": ["simpo"]}), pd.DataFrame(), [], {"simpo": text}, None)
    assert any(n.startswith("Collapsed seeds: simpo: seed 0: 53% grammatical — 1 of 3") for n in notes), notes
