"""A tiny controlled-world suite (1-layer, 32-wide GPT-2; 96 pairs) shared by the tracking, export and API tests:
each run trains for real with TRL in a few seconds on one CPU thread."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

EVAL = {"prompts": 16, "validation_prompts": 8, "curve_pairs": 8, "curve_generation_prompts": 8, "limit_prompts": 8,
        "limit_samples": 8, "best_of_n": 4, "bootstrap": 200}


def tiny_suite_text(name: str = "tiny", *, flops: float = 1.2e9, heldout_prompts: int = 32,
                    eval: dict | None = None, train: str = "", algorithms: str = "[algorithms.dpo]\n") -> str:
    """The one tiny-suite TOML of the tests (1-layer, 32-wide GPT-2; 96 pairs). `eval` changes [eval] keys (None
    removes one: its default applies); `train` adds [train] lines; `algorithms` is the rest of the file."""
    settings = {**EVAL, **(eval or {})}
    eval_lines = "".join(f"{k} = {v}\n" for k, v in settings.items() if v is not None)
    return (f'[suite]\nname = "{name}"\nseeds = [0]\n\n'
            "[world]\nkind = \"controlled\"\ncorpus_sentences = 600\nn_layer = 1\nn_embd = 32\nn_head = 2\n"
            f"pairs = 96\nheldout_pairs = 16\nheldout_prompts = {heldout_prompts}\n\n"
            f"[budget]\nflops = {flops:g}\n\n[eval]\n{eval_lines}\n"
            f"[train]\nper_device_train_batch_size = 8\n{train}\n{algorithms}")


def write_tiny_suite(folder: Path, name: str = "tiny", train: str = "",
                     algorithms: str = "[algorithms.dpo]\n") -> Path:
    path = Path(folder) / f"{name}.toml"
    path.write_text(tiny_suite_text(name, train=train, algorithms=algorithms), encoding="utf-8")
    return path


@contextlib.contextmanager
def one_thread():
    """A 32-wide model gains nothing from intra-op threads, and on a busy 2-core machine they cost up to 5x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_dirs(results_dir: Path) -> dict[str, Path]:
    """label -> run folder (one seed)."""
    out = {}
    for d in sorted((Path(results_dir) / "runs").iterdir()):
        out[json.loads((d / "config.json").read_text())["label"]] = d
    return out


VOLATILE = {"wall_s", "train_s", "eval_s", "curve_s", "start_s", "peak_mem_mb", "compute", "train_logs"}


def stable_metrics(run: Path) -> dict:
    """metrics.json without timings and memory (which vary run to run), for 'same numbers' comparisons."""
    metrics = json.loads((run / "metrics.json").read_text())
    out = {k: v for k, v in metrics.items() if k not in VOLATILE}
    out["flops_by_component"] = metrics["compute"]["flops_by_component"]
    out["losses"] = [h.get("loss") for h in metrics.get("train_logs", [])]
    return out
