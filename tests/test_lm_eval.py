"""The lm-eval adapter and the controlled world's local task `controlled_grammar`, run offline on tiny models."""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from bench.errors import UserError
from bench.evaluation.lm_eval_adapter import (
    TASK_NAME,
    TONE_TASK_NAME,
    build_controlled_grammar_task,
    build_controlled_tasks,
    primary_metric,
    run_lm_eval,
    summary_score,
)
from bench.worlds.controlled.language import is_grammatical

TINY = {"corpus_sentences": 600, "n_layer": 1, "n_embd": 32, "n_head": 2, "pairs": 32, "heldout_pairs": 8,
        "heldout_prompts": 16}
DEFAULT_WORLD_CACHE = Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "daa-bench")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pytest.importorskip("lm_eval")
    from bench.worlds.controlled.build import build_world
    from bench.worlds.controlled.config import ControlledWorldConfig

    return build_world(ControlledWorldConfig(**TINY), tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def task_dir(world):
    return build_controlled_grammar_task(world.root)


def _docs(task_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (task_dir / f"{TASK_NAME}.jsonl").read_text().splitlines()]


def test_task_files_and_docs(task_dir, world):
    assert task_dir == world.root.resolve() / "lm_eval"
    yaml_text = (task_dir / f"{TASK_NAME}.yaml").read_text()
    assert f"task: {TASK_NAME}" in yaml_text
    assert str(task_dir / f"{TASK_NAME}.jsonl") in yaml_text  # absolute data_files path
    docs = _docs(task_dir)
    assert 150 <= len(docs) <= 200
    assert {d["label"] for d in docs} == {0, 1}  # the true continuation is not always first
    for d in docs:
        # the review's first 3-5 words; 2 for the shortest reviews ("a good film .": the completion keeps 2 words)
        assert 2 <= len(d["context"].split()) <= 5
        true, wrong = d["choices"][d["label"]], d["choices"][1 - d["label"]]
        assert true.startswith(" ") and wrong.startswith(" ") and not true.startswith("  ")
        assert is_grammatical(d["context"] + true)
        assert not is_grammatical(d["context"] + wrong)
        assert Counter(true.split()) == Counter(wrong.split()) and true != wrong


def test_task_is_cached_and_deterministic(task_dir, world, tmp_path):
    mtime = (task_dir / f"{TASK_NAME}.jsonl").stat().st_mtime_ns
    assert build_controlled_grammar_task(world.root) == task_dir
    assert (task_dir / f"{TASK_NAME}.jsonl").stat().st_mtime_ns == mtime  # not rewritten
    other = build_controlled_grammar_task(tmp_path)
    assert _docs(other) == _docs(task_dir)  # same seed, same docs, wherever built
    # a moved folder gets its YAML re-pointed at its own JSONL
    moved = tmp_path / "moved"
    (tmp_path / "lm_eval").rename(tmp_path / "x")
    moved.mkdir()
    (tmp_path / "x").rename(moved / "lm_eval")
    again = build_controlled_grammar_task(moved)
    assert str(again / f"{TASK_NAME}.jsonl") in (again / f"{TASK_NAME}.yaml").read_text()


def test_swap_corruption_is_minimal(tmp_path):
    d = build_controlled_grammar_task(tmp_path, heldout_reviews=40, corruption="swap")
    for doc in _docs(d):
        true, wrong = doc["choices"][doc["label"]].split(), doc["choices"][1 - doc["label"]].split()
        assert sum(a != b for a, b in zip(true, wrong)) == 2
        assert not is_grammatical(doc["context"] + " " + " ".join(wrong))
    with pytest.raises(UserError):
        build_controlled_grammar_task(tmp_path / "y", corruption="reverse")


def test_base_policy_beats_chance_and_nothing_is_printed(world, task_dir):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        results = run_lm_eval(world.base_model_dir, world.tokenizer_dir, [TASK_NAME], include_path=task_dir,
                              limit=50)
    assert out.getvalue() == "" and err.getvalue() == ""
    assert set(results) == {TASK_NAME}
    metrics = results[TASK_NAME]
    assert primary_metric(metrics) == "acc"
    assert 0.0 <= metrics["acc"] <= 1.0
    assert all(isinstance(v, float) for v in metrics.values())
    assert not any("," in k for k in metrics)
    assert summary_score(results) == metrics["acc"]
    assert metrics["acc"] > 0.6, metrics  # the tiny base policy has learnt word order (measured: 1.0)


def test_global_rng_is_left_alone(world, task_dir):
    import random

    import numpy as np
    import torch

    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    expected = random.random(), float(np.random.rand()), float(torch.rand(1))
    random.seed(5), np.random.seed(5), torch.manual_seed(5)
    run_lm_eval(world.base_model_dir, world.tokenizer_dir, [TASK_NAME], include_path=task_dir, limit=10)
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected


def test_random_model_scores_near_chance(world, task_dir, tmp_path):
    """Untrained models of the same config, averaged over init seeds (one random init has order biases of its
    own: measured 0.375-0.525 on the 200 docs for seeds 0-2)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    accs = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(world.base_model_dir)))
        model.save_pretrained(str(tmp_path / f"random{seed}"))
        results = run_lm_eval(tmp_path / f"random{seed}", world.tokenizer_dir, [TASK_NAME], include_path=task_dir,
                              limit=None)
        accs.append(results[TASK_NAME]["acc"])
    assert 0.3 <= sum(accs) / len(accs) <= 0.7, accs


def test_unknown_task_is_a_user_error(world, task_dir):
    with pytest.raises(UserError, match="unknown lm-eval task 'no_such_task_xyz'.*lm_eval_tasks"):
        run_lm_eval(world.base_model_dir, world.tokenizer_dir, [TASK_NAME, "no_such_task_xyz"],
                    include_path=task_dir, limit=5)
    with pytest.raises(UserError, match="controlled_grammar"):  # names the local tasks it could have meant
        run_lm_eval(world.base_model_dir, world.tokenizer_dir, ["controlled_grammer"], include_path=task_dir,
                    limit=5)


def test_summary_score_picks_the_primary_metric():
    results = {"a": {"acc": 0.8, "acc_stderr": 0.1, "acc_norm": 0.2},
               "b": {"acc_norm": 0.4, "acc_norm_stderr": 0.1},
               "c": {"exact_match": 0.6},
               "d": {"word_perplexity": 3.0}}
    assert primary_metric(results["d"]) == "word_perplexity"
    assert summary_score(results) == pytest.approx((0.8 + 0.4 + 0.6 + 3.0) / 4)
    assert summary_score({}) != summary_score({})  # NaN


def test_default_world_base_policy(tmp_path):
    """On the real default world (only when it is already cached; never built here)."""
    from bench.worlds.controlled.build import world_dir
    from bench.worlds.controlled.config import ControlledWorldConfig

    root = world_dir(ControlledWorldConfig(), DEFAULT_WORLD_CACHE)
    if not (root / "world.json").is_file():
        pytest.skip(f"default controlled world not cached under {DEFAULT_WORLD_CACHE}")
    pytest.importorskip("lm_eval")
    task = build_controlled_tasks(tmp_path)  # same seed: same docs as the world's own tasks
    results = run_lm_eval(root / "base", root / "tokenizer", [TASK_NAME, TONE_TASK_NAME], include_path=task,
                          limit=None)
    assert results[TASK_NAME]["acc"] > 0.9, results
    # the tone task does not saturate (the grammar task reads 1.0); the base policy learnt tone only weakly: 0.527
    # on gold v4's world and 0.495 on v5's (400 docs, standard error 0.025) — at chance within two standard errors,
    # so the alignment-tax reading on this task starts from chance (docs/guide.md says so)
    assert 0.4 < results[TONE_TASK_NAME]["acc"] < 0.9, results


def test_tone_task_docs(tmp_path):
    """Both choices are well-formed reviews of equal length; they differ only in flipped adjective polarities, and
    the labelled one carries the tone of every earlier sentiment-bearing adjective."""
    from bench.worlds.controlled.language import POLARITY, is_well_formed

    folder = build_controlled_tasks(tmp_path)
    assert (folder / f"{TASK_NAME}.yaml").is_file()
    yaml_text = (folder / f"{TONE_TASK_NAME}.yaml").read_text()
    assert f"task: {TONE_TASK_NAME}\n" in yaml_text and str(folder / f"{TONE_TASK_NAME}.jsonl") in yaml_text
    docs = [json.loads(line) for line in (folder / f"{TONE_TASK_NAME}.jsonl").read_text().splitlines()]
    assert len(docs) == 400 and 0.4 < sum(d["label"] for d in docs) / len(docs) < 0.6
    for d in docs:
        true, wrong = d["choices"][d["label"]], d["choices"][1 - d["label"]]
        assert is_well_formed(d["context"], true) and is_well_formed(d["context"], wrong)
        assert len(true.split()) == len(wrong.split())
        diff = [(a, b) for a, b in zip(true.split(), wrong.split()) if a != b]
        assert diff and all(POLARITY[a] == -POLARITY[b] != 0 for a, b in diff)
        earlier = [POLARITY[w] for w in d["context"].split() if POLARITY.get(w, 0)]
        assert earlier and all(p == POLARITY[diff[0][0]] for p in earlier)
    assert build_controlled_tasks(tmp_path) == folder  # cached
