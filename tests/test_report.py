"""The HTML report (bench.reporting) on a small synthetic results directory built here (no training).

Fixture: sft (training-free reference) + dpo (beta swept over 0.1, 0.5) + ipo (seed 1 failed) + ppo (with a proxy
reward), seeds 0 and 1, limits.json and world.json, a dpo sample containing `<script>alert(1)</script>` and a ppo
sample with an `onerror` payload. Checks: one self-contained file, embedded non-empty images, escaping, failed
runs listed, a golden leaderboard, byte-identical re-renders, a CSV download per table, run rows linking to their
folders, the per-run compute table, collapsed and capped samples flagged, and (when Debian's chromium is
installed) that a real headless browser loads the page, decodes every chart and runs no injected code, and lays
the page out at 390 px (a phone) and 1400 px without any element overflowing the viewport, in light and dark mode
(screenshots in artifacts/test_report/).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pandas as pd
import pytest

from bench.reporting import write_report
from bench.reporting.data import load_results
from bench.reporting.page import sample_flags
from bench.reporting.tables import best_marks, failed_runs, label_order, leaderboard, runs_table
from bench.results import write_summary

SCRIPT = "<script>alert(1)</script>"
ONERROR = '<img src=x onerror="document.body.setAttribute(\'data-pwned\', \'1\')">'
OOM = "RuntimeError: CUDA out of memory <alloc> & retry"
STAMP = 1_704_164_640  # 2024-01-02 03:04 UTC: fixed mtime of every metrics.json, so the page date is fixed
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)

# (label, algorithm, params, swept, seed) -> final metrics; None = failed run
WORLD = {"kind": "controlled", "pairs": 100, "label_noise": 0.0, "n_layer": 2}
BUDGET = {"flops": 1e12, "seconds": None, "max_epochs": 5}
EVAL = {"prompts": 3, "max_new_tokens": 8, "lm_eval_tasks": ["controlled_grammar"]}


def _metrics(label: str, beta: float | None, seed: int) -> dict | None:
    s = seed
    if label == "sft":
        return {"win_rate": 0.5, "gold_reward": 0.1, "kl": 0.0, "pref_accuracy": 0.5, "chosen_logp_delta": 0.0,
                "rejected_logp_delta": 0.0, "margin_delta": 0.0, "length": 12.0, "flops": 0.0,
                "wall_s": 2.0 + s, "lm_eval_score": 0.60}
    if label == "dpo":
        k = 1.0 if beta == 0.1 else 0.5
        return {"win_rate": 0.70 - 0.04 * (1 - k) + 0.02 * s, "gold_reward": 1.5 * k + 0.1 * s,
                "kl": 10 * k + s, "pref_accuracy": 0.62 + 0.04 * (1 - k) + 0.01 * s,
                "val_win_rate": 0.6 + 0.1 * (1 - k), "chosen_logp_delta": -5 * k - s,
                "rejected_logp_delta": -7 * k - s, "margin_delta": 2 * k, "length": 15.0 + s, "flops": 1e12,
                "wall_s": 30.0 + s, "lm_eval_score": 0.58 - 0.01 * s}
    if label == "ipo":
        if s == 1:
            return None  # the failed run
        return {"win_rate": 0.6, "gold_reward": 1.0, "kl": 3.0, "pref_accuracy": 0.6, "chosen_logp_delta": -2.0,
                "rejected_logp_delta": -3.0, "margin_delta": 1.0, "length": 11.0, "flops": 1e12, "wall_s": 25.0}
    return {"win_rate": 0.80 + 0.02 * s, "gold_reward": 2.0 + 0.1 * s, "kl": 5.0 + s, "pref_accuracy": None,
            "chosen_logp_delta": -1.0, "rejected_logp_delta": -1.2, "margin_delta": 0.2, "length": 13.0,
            "flops": 1e12, "wall_s": 60.0 + s, "proxy_reward": 3.0 + 0.5 * s}


def _curves(m: dict, trained: bool) -> list[dict]:
    rows = []
    for i, f in enumerate((0.0, 0.25, 0.5, 0.75, 1.0) if trained else (0.0,)):
        base = {"step": i * 10, "flops": f * 1e12, "budget_fraction": f, "train_seconds": f * 20}
        drift = {k: m[k] * f for k in ("chosen_logp_delta", "rejected_logp_delta", "margin_delta")}
        gen = {"win_rate": 0.5 + (m["win_rate"] - 0.5) * f, "kl": m["kl"] * f} if i % 2 == 0 else {}
        rows.append({**base, "split": "heldout", **drift, **gen})
        rows.append({**base, "split": "train", **drift})
    return rows


def _samples(label: str, m: dict | None) -> list[dict]:
    out = []
    for j, prompt in enumerate(("the film was", "overall , the sequel", "i found its plot")):
        text = f"{label} says something {j} ."
        if j == 0 and label == "dpo":
            text = f"a fine film {SCRIPT} indeed ."
        if j == 0 and label == "ppo":
            text = f"bold {ONERROR} move ."
        if j == 1 and label == "ipo":
            text = "."  # collapsed
        if j == 2 and label == "ppo":
            text = "on and on and on it goes without"  # 8 words: reaches EVAL's max_new_tokens, capped
        out.append({"prompt": prompt, "completion": text, "score": 1.0 + j, "reference": f"ref {j} .",
                    "reference_score": 0.5 * j, "kl": (m or {}).get("kl", 0.0)})
    return out


def build_results(root: Path) -> Path:
    results = root / "fixture"
    runs = [("sft", "sft", None), ("dpo", "dpo", 0.1), ("dpo", "dpo", 0.5), ("ipo", "ipo", None),
            ("ppo", "ppo", None)]
    provenance = {"git": {"commit": "0123456789abcdef0123", "dirty": False},
                  "packages": {"torch": "2.13.0", "trl": "1.12.0"}, "device": {"device": "cpu", "machine": "x86_64"}}
    for label, algorithm, beta in runs:
        for seed in (0, 1):
            run_id = f"{label}{'' if beta is None else f'_b{beta}'}_s{seed}"
            params = {} if label == "sft" else {"beta": beta if beta is not None else 0.1, "learning_rate": 1e-3}
            swept = ["beta"] if label == "dpo" else []
            d = results / "runs" / run_id
            d.mkdir(parents=True)
            cfg = {"run_id": run_id, "label": label, "algorithm": algorithm, "seed": seed, "params": params,
                   "swept": swept, "world": WORLD, "budget": BUDGET, "eval": EVAL, "provenance": provenance}
            (d / "config.json").write_text(json.dumps(cfg, indent=2))
            m = _metrics(label, beta, seed)
            if m is None:
                metrics = {"status": "failed", "error": OOM}
            else:
                metrics = {"status": "finished", "steps": 40, "stop_reason": "budget", **m}
                if m["flops"]:
                    parts = {"policy": 0.75e12, "reference": 0.25e12} if label == "dpo" else \
                        {"policy": 0.4e12, "reward_model_training": 0.35e12, "value_model": 0.25e12}
                    metrics["compute"] = {"flops_by_component": parts if label != "ipo" else {"policy": 1e12}}
                pd.DataFrame(_curves(m, label != "sft")).to_csv(d / "curves.csv", index=False)
                (d / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in _samples(label, m)))
            (d / "metrics.json").write_text(json.dumps(metrics, indent=2))
            os.utime(d / "metrics.json", (STAMP, STAMP))
    entries = [{"label": lab, "algorithm": alg, "grid": []} for lab, alg, _ in runs[:2]] + \
              [{"label": lab, "algorithm": alg, "grid": []} for lab, alg, _ in runs[3:]]
    suite = {"name": "fixture", "path": "suites/fixture.toml", "hash": "f" * 64, "world": WORLD, "budget": BUDGET,
             "eval": EVAL, "seeds": [0, 1], "entries": entries, "check": {}}
    (results / "suite.json").write_text(json.dumps(suite, indent=2))
    (results / "world.json").write_text(json.dumps({"kind": "controlled", "pretrain": {"parameters": 1234}}))
    limits = {"reference_gold_reward": 0.1,
              "best_of_n": [{"n": n, "kl": math.log(n) - (n - 1) / n, "gold_reward": 0.1 + 0.5 * math.log2(n)}
                            for n in (1, 2, 4, 8)],
              "kl_optimal": [{"beta": b, "kl": 2 / b, "gold_reward": 0.1 + 1.8 / (1 + b), "ess": 64 * b / (1 + b),
                              "ess_fraction": b / (1 + b)} for b in (0.05, 0.5, 1.0, 2.0)]}
    (results / "limits.json").write_text(json.dumps(limits))
    write_summary(results)
    return results


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return build_results(tmp_path_factory.mktemp("report-results"))


@pytest.fixture(scope="module")
def page(results, tmp_path_factory) -> tuple[Path, str]:
    path = write_report(results, tmp_path_factory.mktemp("report") / "fixture")
    return path, path.read_text(encoding="utf-8")


def _section(html: str, name: str) -> str:
    start = html.index(f'<section id="{name}">')
    return html[start: html.index("</section>", start)]


def test_page_is_one_self_contained_file(page):
    path, html = page
    assert path.name == "index.html"
    assert sorted(p.name for p in path.parent.iterdir()) == ["answer.txt", "index.html"]  # the page + its text twin
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert "@import" not in html and "url(" not in html
    for attr, value in re.findall(r'\b(src|href)="([^"]*)"', html):
        if attr == "src":
            assert value.startswith("data:image/"), value[:60]
        elif not value.startswith(("#", "data:text/csv;charset=utf-8,")):  # else: a run's folder or file
            assert ":" not in value and not value.startswith("/"), value  # relative, no scheme
            assert (path.parent / unquote(value)).exists(), f"{value} does not reach a file from {path}"
    assert not re.search(r'(src|href)\s*=\s*["\']?\s*(https?:)?//', html)


def _csv_links(html: str) -> dict[str, str]:
    """download name -> decoded CSV text of every data: link on the page."""
    return {name: unquote(data) for name, data in
            re.findall(r'<a download="([^"]+)" href="data:text/csv;charset=utf-8,([^"]*)"', html)}


def test_every_table_downloads_as_csv(page, results):
    import io

    _, html = page
    links = _csv_links(html)
    assert sorted(links) == sorted(f"fixture-{t}.csv" for t in
                                   ("leaderboard", "pairs", "alignment-tax", "samples", "runs", "failed"))
    for section in ("leaderboard", "tax", "samples", "runs", "failed"):  # every section with a table has a link
        body = _section(html, section)
        assert ("<table" in body) <= ("data:text/csv" in body), section
    res = load_results(results)
    board = leaderboard(res.frame, label_order(res.frame, res.suite))
    assert links["fixture-leaderboard.csv"] == board.to_csv(index=False, float_format="%.6g")
    runs = pd.read_csv(io.StringIO(links["fixture-runs.csv"]))
    assert len(runs) == 10 and {"steps", "epochs", "stop_reason", "flops_policy", "flops_reference"} <= set(runs)
    failed = pd.read_csv(io.StringIO(links["fixture-failed.csv"]))
    assert failed["run_id"].tolist() == ["ipo_s1"] and failed["error"].tolist() == [OOM]
    samples = pd.read_csv(io.StringIO(links["fixture-samples.csv"]), keep_default_na=False)
    assert SCRIPT in samples["completion"].str.cat()  # the raw text: a CSV is data, not markup


def test_runs_section_links_each_run_and_breaks_down_its_compute(page, results):
    path, html = page
    runs = _section(html, "runs")
    rel = os.path.relpath(results, path.parent).replace(os.sep, "/")
    for run in sorted(p.name for p in (results / "runs").iterdir()):
        assert f'id="run-{run}"' in runs
        for target in ("", "config.json", "metrics.json"):
            assert f'href="{rel}/runs/{run}/{target}"' in runs, (run, target)
    row = re.search(r'<tr id="run-dpo_b0.1_s0">(.*?)</tr>', runs).group(1)
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
    # run, setting, seed, status, steps, epochs, stop reason, budget used, FLOPs, policy, reference, reward model
    # training, value model, amortised, wall s
    assert cells[1:10] == ["dpo (beta=0.1)", "0", "finished", "40", "–", "budget", "–", "1.00e12", "7.50e11"]
    assert cells[10] == "2.50e11" and cells[11:13] == ["–", "–"]
    heads = re.findall(r"<th[^>]*>(.*?)</th>", runs)
    assert heads[9:13] == ["policy", "reference", "reward model training", "value model"]
    res = load_results(results)
    table = runs_table(res.frame, res.metrics)
    assert table.loc[table["run_id"] == "ppo_s0", "flops_value_model"].item() == 0.25e12
    assert f'href="{rel}/runs/ipo_s1/"' in _section(html, "failed")
    leader = _section(html, "leaderboard")
    assert '<a href="#run-dpo_b0.1_s0">dpo</a>' in leader  # a setting links to its first run


def test_collapsed_and_capped_samples_are_flagged(page):
    _, html = page
    samples = _section(html, "samples")
    rows = [r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", samples) if "<td" in r]
    assert len(rows) == 3 * 4  # 3 prompts: π_ref, dpo, ipo, ppo (sft is π_ref: its row is not repeated)
    assert not any(re.sub(r"<[^>]+>", "", r.split("</td>")[0]) == "sft" for r in rows)
    assert "<th class=\"num\">KL</th>" not in samples  # a single sample's log-ratio is not a KL (can be < 0)
    flagged = sorted((re.sub(r"<[^>]+>", "", r.split("</td>")[0]), re.findall(r'<span class="flag">(\w+)</span>', r))
                     for r in rows if 'class="flag"' in r)
    assert flagged == [("ipo", ["collapsed"]), ("ppo", ["capped"])]
    assert sample_flags("", 0, 8) == ["collapsed"] and sample_flags("a fine film .", 5, 8) == []
    assert sample_flags("a fine film .", 8, 8) == ["capped"]   # per_prompt.csv's token count, end token included
    assert sample_flags("x", None, None) == ["collapsed"]      # no cap known: never "capped"


def test_every_image_is_embedded_and_non_empty(page):
    _, html = page
    imgs = re.findall(r"<img\b[^>]*>", html)
    # frontier, displacement, win rate/KL vs compute, seed dots beside the intervals, sensitivity (dpo's beta
    # grid), proxy vs gold (ppo)
    assert len(imgs) == 6
    for tag in imgs:
        m = re.search(r'src="data:image/(svg\+xml|png);base64,([A-Za-z0-9+/=]+)"', tag)
        assert m, tag[:80]
        data = base64.b64decode(m.group(2), validate=True)
        assert len(data) > 1000
        assert data.lstrip().startswith(b"<?xml") or data.startswith(b"\x89PNG")
        assert re.search(r'alt="[^"]+"', tag)


def test_dataset_text_is_escaped(page):
    _, html = page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in _section(html, "samples")
    assert "<script>alert" not in html
    assert "onerror=" not in html.replace("onerror=&#34;", "").replace("onerror=&quot;", "")
    assert "<img src=x" not in html


def test_failed_run_is_listed_with_its_error(page):
    _, html = page
    failed = _section(html, "failed")
    assert "ipo_s1" in failed and "failed" in failed
    assert "RuntimeError: CUDA out of memory &lt;alloc&gt; &amp; retry" in failed
    assert "+1 unfinished" in _section(html, "leaderboard")


def test_header_comes_from_the_data(page):
    _, html = page
    assert "2024-01-02 03:04 UTC" in html
    assert "0123456789ab" in html and "trl <b>1.12.0</b>" in html
    assert "1,234 parameters" in html and "1e12 FLOPs per run" in html


GOLDEN_LEADERBOARD = """\
label,algorithm,beta,setting,seeds,not_finished,selected,stop_reason,win_rate,win_rate_lo,win_rate_hi,win_rate_lc,win_rate_lc_lo,win_rate_lc_hi,win_rate_grammar,win_rate_grammar_lo,win_rate_grammar_hi,win_rate_sentiment,win_rate_sentiment_lo,win_rate_sentiment_hi,tie_rate,tie_rate_lo,tie_rate_hi,gold_reward,gold_reward_lo,gold_reward_hi,kl,kl_lo,kl_hi,frontier_efficiency_bon,frontier_efficiency_bon_lo,frontier_efficiency_bon_hi,grammatical_fraction,grammatical_fraction_lo,grammatical_fraction_hi,heldout_nll_delta,heldout_nll_delta_lo,heldout_nll_delta_hi,pref_accuracy,pref_accuracy_lo,pref_accuracy_hi,chosen_logp_delta,chosen_logp_delta_lo,chosen_logp_delta_hi,rejected_logp_delta,rejected_logp_delta_lo,rejected_logp_delta_hi,control_logp_delta_per_token,control_logp_delta_per_token_lo,control_logp_delta_per_token_hi,chosen_vs_control_per_token,chosen_vs_control_per_token_lo,chosen_vs_control_per_token_hi,chosen_fell_fraction,chosen_fell_fraction_lo,chosen_fell_fraction_hi,length,length_lo,length_hi,flops,flops_lo,flops_hi,steps,steps_lo,steps_hi,epochs,epochs_lo,epochs_hi,wall_s,wall_s_lo,wall_s_hi,margin_delta,margin_delta_lo,margin_delta_hi,proxy_reward,proxy_reward_lo,proxy_reward_hi,lm_eval_score,lm_eval_score_lo,lm_eval_score_hi,control_logp_delta,control_logp_delta_lo,control_logp_delta_hi,flops_amortised,flops_amortised_lo,flops_amortised_hi,ended_fraction,ended_fraction_lo,ended_fraction_hi,capped_fraction,capped_fraction_lo,capped_fraction_hi,censored,censored_lo,censored_hi
sft,sft,,sft,2,0,False,budget×2,0.5,0.5,0.5,,,,,,,,,,,,,0.1,0.1,0.1,0,0,0,,,,,,,,,,0.5,0.5,0.5,0,0,0,0,0,0,,,,,,,,,,12,12,12,0,0,0,40,40,40,,,,2.5,0,8.8531,0,0,0,,,,0.6,0.6,0.6,,,,,,,,,,,,,,,
dpo,dpo,0.1,dpo (beta=0.1),2,0,False,budget×2,0.71,0.582938,0.837062,,,,,,,,,,,,,1.55,0.91469,2.18531,10.5,4.1469,16.8531,,,,,,,,,,0.625,0.561469,0.688531,-5.5,-11.8531,0.853102,-7.5,-13.8531,-1.1469,,,,,,,,,,15.5,9.1469,21.8531,1e+12,1e+12,1e+12,40,40,40,,,,30.5,24.1469,36.8531,2,2,2,,,,0.575,0.511469,0.638531,,,,,,,,,,,,,,,
dpo,dpo,0.5,dpo (beta=0.5),2,0,True,budget×2,0.69,0.562938,0.817062,,,,,,,,,,,,,0.8,0.16469,1.43531,5.5,0,11.8531,,,,,,,,,,0.645,0.581469,0.708531,-3,-9.3531,3.3531,-4,-10.3531,2.3531,,,,,,,,,,15.5,9.1469,21.8531,1e+12,1e+12,1e+12,40,40,40,,,,30.5,24.1469,36.8531,1,1,1,,,,0.575,0.511469,0.638531,,,,,,,,,,,,,,,
ipo,ipo,,ipo,1,1,False,budget,0.6,0.6,0.6,,,,,,,,,,,,,1,1,1,3,3,3,,,,,,,,,,0.6,0.6,0.6,-2,-2,-2,-3,-3,-3,,,,,,,,,,11,11,11,1e+12,1e+12,1e+12,40,40,40,,,,25,25,25,1,1,1,,,,,,,,,,,,,,,,,,,,,
ppo,ppo,,ppo,2,0,False,budget×2,0.81,0.682938,0.937062,,,,,,,,,,,,,2.05,1.41469,2.68531,5.5,0,11.8531,,,,,,,,,,,,,-1,-1,-1,-1.2,-1.2,-1.2,,,,,,,,,,13,13,13,1e+12,1e+12,1e+12,40,40,40,,,,60.5,54.1469,66.8531,0.2,0.2,0.2,3.25,0.0734488,6.42655,,,,,,,,,,,,,,,,,,
"""

# ppo leads win rate over dpo (beta=0.5) by 0.12 on both seeds: resolved. Every other leader's runner-up is ipo,
# with one finished seed and no per-prompt files: a difference with no measure of its spread is never "resolved".
GOLDEN_BEST = """\
win_rate,gold_reward,kl,pref_accuracy
ppo,,,
"""


def test_leaderboard_golden(results):
    res = load_results(results)
    board = leaderboard(res.frame, label_order(res.frame, res.suite))
    assert board.to_csv(index=False, float_format="%.6g") == GOLDEN_LEADERBOARD
    # by hand: two seeds 0.70, 0.72 (no per-prompt files: the seed part only): s = 0.01·√2, se = 0.01, and
    # t_{0.975, 1} = 12.7062: 0.71 ∓ 0.127062 (the old percentile bootstrap read ∓ 0.0141)
    dpo = board[board["setting"] == "dpo (beta=0.1)"].iloc[0]
    assert dpo["win_rate"] == pytest.approx(0.71)
    assert dpo["win_rate_lo"] == pytest.approx(0.71 - 0.127062047, abs=1e-8)
    assert dpo["win_rate_hi"] == pytest.approx(0.71 + 0.127062047, abs=1e-8)
    marks = best_marks(board, frame=res.frame)
    best = {m: ",".join(board.loc[marks[m], "setting"]) for m in ("win_rate", "gold_reward", "kl", "pref_accuracy")}
    assert pd.DataFrame([best]).to_csv(index=False) == GOLDEN_BEST
    assert not marks[["chosen_logp_delta", "length", "flops", "wall_s"]].any().any()  # no direction: never marked


def test_failed_runs_table(results):
    res = load_results(results)
    table = failed_runs(res.frame, label_order(res.frame, res.suite))
    assert table.to_dict("records") == [{"run_id": "ipo_s1", "setting": "ipo", "seed": 1, "status": "failed",
                                         "error": OOM}]


def test_render_is_deterministic(results, page, tmp_path):
    again = write_report(results, tmp_path / "again")
    assert again.read_bytes() == page[0].read_bytes()


def test_run_without_metrics_is_listed_not_dropped(results, tmp_path):
    copy = tmp_path / "partial"
    shutil.copytree(results, copy)
    (copy / "runs" / "ppo_s1" / "metrics.json").unlink()
    html = write_report(copy, tmp_path / "out").read_text(encoding="utf-8")
    failed = _section(html, "failed")
    assert "ppo_s1" in failed and "incomplete" in failed and "no metrics.json" in failed


def test_missing_optional_files_degrade_to_notes(results, tmp_path):
    copy = tmp_path / "bare"
    shutil.copytree(results, copy)
    for pattern in ("limits.json", "world.json", "summary.csv", "runs/*/curves.csv", "runs/*/samples.jsonl"):
        for f in copy.glob(pattern):
            f.unlink()
    html = write_report(copy, tmp_path / "out").read_text(encoding="utf-8")
    assert "No <code>limits.json</code>" in html and "No held-out log-probability curves" in html
    assert "No samples recorded." in html and "ipo_s1" in _section(html, "failed")
    assert len(re.findall(r"<img\b", html)) == 4  # frontier, seed dots, sensitivity, proxy vs gold: from metrics alone


def test_empty_results_directory_still_renders(tmp_path):
    (tmp_path / "empty" / "runs").mkdir(parents=True)
    html = write_report(tmp_path / "empty", tmp_path / "out").read_text(encoding="utf-8")
    assert "No runs found" in html


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_page_in_headless_browser(page, tmp_path):
    """Load the page in an iframe of a probe page that reports, after load, every image's decoded size and whether
    any injected code ran; then save a screenshot (artifacts/test_report/report.png)."""
    path, _ = page
    probe = tmp_path / "probe.html"
    needle = json.dumps(SCRIPT).replace("</", "<\\/")  # a JS string literal that cannot close the probe's script
    probe.write_text(f"""<!DOCTYPE html><html><body><pre id="out">pending</pre>
<iframe id="f" src="{path.as_uri()}" width="1280" height="800"></iframe>
<script>
document.getElementById('f').addEventListener('load', () => {{
  const doc = document.getElementById('f').contentDocument;
  const imgs = Array.from(doc.images).map(i => i.complete + ':' + i.naturalWidth + 'x' + i.naturalHeight);
  const pwned = doc.body.hasAttribute('data-pwned') || doc.querySelectorAll('script').length > 0;
  document.getElementById('out').textContent = JSON.stringify({{imgs, pwned, title: doc.title,
    text: doc.getElementById('samples').textContent.includes({needle})}});
}});
</script></body></html>""")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
             "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0"]
    try:
        dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe.as_uri()], check=False, capture_output=True,
                             text=True, timeout=45)
    except subprocess.TimeoutExpired:  # e.g. an unescaped alert() dialog blocks headless chromium
        pytest.fail("the browser did not finish loading the page in 45 s (did injected code open a dialog?)")
    found = re.search(r'<pre id="out">(.*?)</pre>', dom.stdout, re.DOTALL)
    assert found and found.group(1) != "pending", dom.stderr[-2000:]
    report = json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
                        .replace("&quot;", '"'))
    assert report["title"] == "daa-bench · fixture"
    assert len(report["imgs"]) == 6  # as test_every_image_is_embedded: the seed chart (issue 21) is the sixth
    for img in report["imgs"]:
        complete, size = img.split(":")
        w, h = (int(v) for v in size.split("x"))
        assert complete == "true" and w > 100 and h > 100, img
    assert report["pwned"] is False and report["text"] is True
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "file://" + str(path) in line]
    assert not console, console


ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "test_report"
LAYOUT_PROBE = r"""
const f = document.getElementById('f');
f.addEventListener('load', () => {
  const doc = f.contentDocument, win = f.contentWindow, vw = doc.documentElement.clientWidth;
  // an element past the viewport's edge is fine only inside a box that scrolls (or clips) and itself fits
  const contained = el => {
    for (let a = el.parentElement; a && a !== doc.body; a = a.parentElement) {
      if (win.getComputedStyle(a).overflowX !== 'visible') {
        const r = a.getBoundingClientRect();
        return r.left >= -1 && r.right <= vw + 1;
      }
    }
    return false;
  };
  const over = [];
  for (const el of doc.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width && (r.right > vw + 1 || r.left < -1) && !contained(el))
      over.push(el.tagName.toLowerCase() + '.' + el.className + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
  }
  const width = e => Math.round(e.getBoundingClientRect().width);
  document.getElementById('out').textContent = JSON.stringify({
    vw, scroll_width: doc.documentElement.scrollWidth, height: doc.documentElement.scrollHeight,
    over: over.slice(0, 20), text_cells: Array.from(doc.querySelectorAll('.sample td.text')).map(width),
    charts: Array.from(doc.querySelectorAll('.chart')).map(c => [width(c), width(c.querySelector('img'))]),
    dark: win.matchMedia('(prefers-color-scheme: dark)').matches,
    background: win.getComputedStyle(doc.body).backgroundColor});
});
"""


def _frame(page: Path, probe: Path, width: int, height: int, script: str = "") -> Path:
    """`page` laid out in an iframe exactly `width` CSS px wide (headless chromium's window is at least 500 px,
    so the window itself cannot stand for a phone)."""
    probe.write_text(f"""<!DOCTYPE html><html><body style="margin:0">{'<pre id="out">pending</pre>' if script else ''}
<iframe id="f" src="{page.as_uri()}" style="border:0;display:block;width:{width}px;height:{height}px"></iframe>
{"<script>" + script + "</script>" if script else ""}</body></html>""")
    return probe


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
@pytest.mark.parametrize("width,dark", [(390, False), (1400, False), (390, True)])
def test_page_fits_the_screen(page, tmp_path, width, dark):
    """At 390 px (a phone) and 1400 px, light and dark: nothing overflows the viewport (wide tables and charts scroll
    inside their own box), the samples' text column is never squeezed to a few characters, charts fit their box
    on a wide screen; then a screenshot of the whole page (artifacts/test_report/report-<width>[-dark].png)."""
    from PIL import Image

    path, _ = page
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--allow-file-access-from-files",
             "--force-device-scale-factor=1", *(["--force-dark-mode"] if dark else [])]
    window = f"--window-size={max(width, 600) + 20},1000"
    probe = _frame(path, tmp_path / "probe.html", width, 1000, LAYOUT_PROBE)
    dom = subprocess.run([CHROMIUM, *flags, "--virtual-time-budget=10000", window, "--dump-dom", probe.as_uri()],
                         check=False, capture_output=True, text=True, timeout=60)
    found = re.search(r'<pre id="out">(.*?)</pre>', dom.stdout, re.DOTALL)
    assert found and found.group(1) != "pending", dom.stderr[-2000:]
    m = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert m["vw"] == width
    assert m["scroll_width"] <= width and m["over"] == [], m["over"]
    assert m["text_cells"] and min(m["text_cells"]) >= 120, m["text_cells"]  # ~15 monospace characters or more
    assert len(m["charts"]) == 6 and all(box <= width for box, _ in m["charts"])
    if width >= 1000:
        assert all(img <= box for box, img in m["charts"]), m["charts"]  # scaled to fit, nothing to scroll
    assert m["dark"] is dark
    assert (m["background"] == "rgb(255, 255, 255)") is not dark, m["background"]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"report-{width}{'-dark' if dark else ''}.png"
    height = int(m["height"])
    frame = _frame(path, tmp_path / "frame.html", width, height)
    subprocess.run([CHROMIUM, *flags, f"--window-size={max(width, 600) + 20},{height}", f"--screenshot={shot}",
                    frame.as_uri()], check=False, capture_output=True, timeout=120)
    with Image.open(shot) as image:
        image.crop((0, 0, width, height)).save(shot)
    with Image.open(shot) as image:
        assert image.size == (width, height) and shot.stat().st_size > 10_000
