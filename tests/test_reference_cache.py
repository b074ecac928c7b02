"""π_ref's log-probs of the DPO family's pairs served from a per-world cache (bench/algorithms/reference_cache.py,
issue 24): a run takes the same steps and is charged the same FLOPs, component by component, as with the reference
run in every step; its readings agree to float32 rounding; the values are what TRL computes in the step; the
cache is built once and skipped where a reference moves or is scored by a hook."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tiny_suite import one_thread, run_dirs, write_tiny_suite

pytestmark = pytest.mark.filterwarnings("ignore")


def _run(tmp_path, name, algorithms, monkeypatch=None, cached=True):
    import bench
    from bench.algorithms.dpo_family import DPOFamily

    if monkeypatch is not None:
        monkeypatch.setattr(DPOFamily, "cached_reference", cached)
    suite = write_tiny_suite(tmp_path, name=name, algorithms=algorithms)
    with one_thread():
        bench.run_suite(suite, results=tmp_path / f"r-{name}", launcher="sequential")
    return run_dirs(tmp_path / f"r-{name}" / name)


def _metrics(run):
    return json.loads((run / "metrics.json").read_text())


def test_cached_reference_keeps_steps_and_charges_and_readings(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    algos = "[algorithms.dpo]\n[algorithms.ipo]\nbeta = 0.5\n"
    served = _run(tmp_path, "served", algos, monkeypatch, cached=True)
    inline = _run(tmp_path, "inline", algos, monkeypatch, cached=False)
    kept = list((tmp_path / "cache").rglob("dpo_reference_logps-*.json"))
    assert len(kept) == 1, "one cache for both variants and the world's pairs"
    for label in ("dpo", "ipo"):
        a, b = _metrics(served[label]), _metrics(inline[label])
        assert a["steps"] == b["steps"] and a["flops"] == b["flops"]
        assert a["compute"]["flops_by_component"] == b["compute"]["flops_by_component"]
        assert a["compute"]["flops_by_component"]["reference"] > 0
        for key in ("win_rate", "kl", "chosen_logp_delta", "rejected_logp_delta", "gold_reward"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), (label, key)


def test_kept_values_are_pi_ref_log_probs_of_the_pairs(tmp_path, monkeypatch):
    """The cache's sums against the harness's own scorer of Σ_t log π_ref(y_t | x, y_<t) (completion and end token)
    on the world's training pairs, computed here, in another layout: equal to float32 rounding."""
    from bench.modeling import load_causal_lm, load_tokenizer, sequence_logps
    from datasets import load_from_disk

    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    _run(tmp_path, "values", "[algorithms.dpo]\n")
    (kept_file,) = (tmp_path / "cache").rglob("dpo_reference_logps-*.json")
    kept = json.loads(kept_file.read_text())
    world = kept_file.parent
    pairs = load_from_disk(str(world / "pairs_train"))
    tok, ref = load_tokenizer(world / "tokenizer"), load_causal_lm(world / "base")
    chosen, _ = sequence_logps(ref, tok, list(pairs["prompt"]), list(pairs["chosen"]))
    rejected, _ = sequence_logps(ref, tok, list(pairs["prompt"]), list(pairs["rejected"]))
    assert np.allclose(kept["chosen"]["array"], chosen, rtol=1e-5, atol=1e-4)
    assert np.allclose(kept["rejected"]["array"], rejected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("params, expected", [
    ({"precompute_ref_log_probs": False}, True),
    ({"precompute_ref_log_probs": True}, False),
    ({"precompute_ref_log_probs": False, "ld_alpha": 0.5}, False),
    ({"precompute_ref_log_probs": False, "sync_ref_model": True}, False),
])
def test_where_the_cache_applies(params, expected):
    from bench.algorithms import reference_cache

    assert reference_cache.applies(params, ref=object()) is expected
    assert reference_cache.applies(params, ref=None) is False  # LoRA: the reference is the adapter-disabled policy


def test_moving_or_hooked_references_are_not_cached():
    from bench.algorithms.registry import get_algorithm

    assert get_algorithm("dpo").cached_reference
    assert not get_algorithm("tr_dpo").cached_reference
    assert not get_algorithm("cal_dpo").cached_reference


def test_the_key_names_every_pair_and_the_collator_layout():
    """Two datasets that differ only past their first rows (dpo_rm swaps some pairs' chosen and rejected) or only
    in how the collator truncates get different keys (a datasets Column's text shows only its first five rows)."""
    from types import SimpleNamespace

    from datasets import Dataset

    from bench.algorithms.reference_cache import cache_key

    rows = {"prompt_ids": [[1, 2]] * 12, "chosen_ids": [[3, 4]] * 12, "rejected_ids": [[5]] * 12}
    swapped = {k: list(v) for k, v in rows.items()}
    swapped["chosen_ids"][10], swapped["rejected_ids"][10] = [5], [3, 4]

    def trainer(data, **collator):
        layout = {"max_length": 128, "truncation_mode": "keep_start", "pad_to_multiple_of": None, **collator}
        return SimpleNamespace(train_dataset=Dataset.from_dict(data), data_collator=SimpleNamespace(**layout),
                               args=SimpleNamespace(per_device_train_batch_size=4, padding_free=False))

    base = cache_key(trainer(rows))
    assert base == cache_key(trainer(rows))
    assert base != cache_key(trainer(swapped))
    assert base != cache_key(trainer(rows, truncation_mode="keep_end"))
    assert base != cache_key(trainer({k: v[:11] for k, v in rows.items()}))


def test_a_seconds_budget_runs_the_reference_in_every_step():
    from bench.algorithms import reference_cache

    assert not reference_cache.applies({"precompute_ref_log_probs": False}, ref=object(), budget_kind="seconds")


def test_rows_put_in_order_are_the_same_rows_in_the_same_format():
    """reference_cache._in_order: the trainer's dataset without its index mapping (Arrow take instead of
    flatten_indices' row-by-row map) has the same rows, in the same order, formatted the same way."""
    from datasets import Dataset

    from bench.algorithms.reference_cache import _in_order

    ds = Dataset.from_dict({"prompt": [f"p{i}" for i in range(50)], "prompt_ids": [[i, i + 1][: 1 + i % 2]
                                                                                   for i in range(50)]})
    ds = ds.shuffle(seed=3).select(range(40)).with_format("torch", columns=["prompt_ids"], output_all_columns=True)
    flat = _in_order(ds)
    assert flat._indices is None and len(flat) == len(ds) == 40
    assert flat.format == ds.format and flat.features == ds.features
    for i in range(len(ds)):
        assert flat[i]["prompt"] == ds[i]["prompt"] and flat[i]["prompt_ids"].tolist() == ds[i]["prompt_ids"].tolist()
