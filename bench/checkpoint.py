"""Saved policies: `[train] save_policy = "final"` keeps each trained policy as a Hugging Face checkpoint in its
run folder (`runs/<run_id>/policy/`: model, tokenizer, a model card), and `bench export` copies one out (and
optionally pushes it to the Hub) so that `AutoModelForCausalLM.from_pretrained(DIR)` reloads it.

The checkpoint is the exact policy the run evaluated (a LoRA run's merged model; its adapter alone in
`policy/adapter/`). The model card (README.md) names the suite, algorithm, run id, hyper-parameters, budget and
the run's final metrics; `daa_bench.json` beside it holds the run's config.json and metrics.json for provenance.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

from bench.errors import UserError, did_you_mean

POLICY_DIR = "policy"
CARD_METRICS = ("win_rate", "gold_reward", "kl", "chosen_logp_delta", "rejected_logp_delta", "margin_delta",
                "pref_accuracy", "length", "grammatical_fraction", "heldout_nll_delta", "flops", "budget_fraction",
                "steps", "epochs", "stop_reason")


def has_policy(run_path: Path) -> bool:
    return (Path(run_path) / POLICY_DIR / "config.json").is_file()


def keep_policy(policy_dir: Path, run_path: Path, config: dict[str, Any], metrics: dict[str, Any]) -> Path:
    """Copy the evaluated policy into the run folder with its model card; return the checkpoint folder."""
    out = Path(run_path) / POLICY_DIR
    tmp = Path(run_path) / f".{POLICY_DIR}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(policy_dir, tmp)
    (tmp / "README.md").write_text(model_card(config, metrics), encoding="utf-8")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # a killed copy leaves only the hidden temporary, never a half checkpoint
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def card_metadata(config: dict[str, Any], metrics: dict[str, Any]):
    """The card's metadata as the Hub reads it (huggingface_hub's ModelCardData, as TRL's and transformers' own
    cards write it): library, tags, `base_model` (a hub world's model; the controlled world's base policy is
    trained from scratch, so none), datasets, licence, and a `model-index` with this run's held-out win rate, gold
    reward and KL. Licence: a controlled-world policy is this project's (apache-2.0); a hub model's is its base
    model's, which the card cannot know offline — the world's `license` when given, else "other"."""
    from huggingface_hub import EvalResult, ModelCardData

    world = config.get("world") or {}
    algorithm = str(config.get("algorithm", "?"))
    hub = world.get("kind") == "hub"
    dataset = world.get("dataset") if hub else None
    results = []
    for key, name in (("win_rate", "win rate vs the reference policy"), ("gold_reward", "judge reward"),
                      ("kl", "KL(policy || reference) [nats]")):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and math.isfinite(float(value)):
            results.append(EvalResult(task_type="text-generation", task_name="preference alignment",
                                      dataset_type=str(dataset or f"daa-bench/{world.get('kind', 'controlled')}"),
                                      dataset_name=str(dataset or f"daa-bench {world.get('kind', 'controlled')} world"),
                                      dataset_split="held-out", metric_type=key, metric_name=name,
                                      metric_value=float(value)))
    return ModelCardData(library_name="transformers", tags=["daa-bench", "trl", algorithm],
                         base_model=world.get("model") if hub else None, datasets=[dataset] if dataset else None,
                         license=(world.get("license") or "other") if hub else "apache-2.0",
                         model_name=str(config.get("run_id") or "policy"), eval_results=results or None)


def model_card(config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """A Hugging Face model card: YAML metadata, then what was trained, how, and how it scored."""
    world = config.get("world") or {}
    algorithm = config.get("algorithm", "?")
    base = world.get("model") if world.get("kind") == "hub" else None
    meta = ["---", card_metadata(config, metrics).to_yaml().rstrip("\n"), "---"]
    budget = config.get("budget") or {}
    budget_text = (f"{budget['flops']:.3g} FLOPs" if budget.get("flops") else f"{budget.get('seconds')} s")
    lines = meta + [
        "", f"# {config.get('run_id', 'policy')}", "",
        f"Policy trained by daa-bench: suite `{config.get('suite')}`, entry `{config.get('label')}`, algorithm "
        f"`{algorithm}`, seed {config.get('seed')}, from "
        + (f"`{base}`" if base else f"the {world.get('kind', '?')} world's base policy")
        + f", under a budget of {budget_text} ({budget.get('view', 'end_to_end')} view).", "",
        f"Run id `{config.get('run_id')}`, config hash `{config.get('config_hash')}`, daa-bench commit "
        f"`{((config.get('provenance') or {}).get('git') or {}).get('commit') or 'unknown'}`.", "",
        "```python", "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "model = AutoModelForCausalLM.from_pretrained(PATH)", "tokenizer = AutoTokenizer.from_pretrained(PATH)",
        "```", "", "## Settings", "", "| setting | value |", "|---|---|",
    ]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted((config.get("params") or {}).items())]
    peft = (config.get("train_options") or {}).get("peft")
    if peft:
        lines.append(f"| peft (LoRA) | {json.dumps(peft, sort_keys=True)} |")
    lines += ["", "## Results (held-out evaluation of this run)", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(metrics[k])} |" for k in CARD_METRICS if metrics.get(k) is not None]
    return "\n".join(lines) + "\n"


def export_run(results_dir: Path, run_id: str, to: Path) -> Path:
    """Copy run `run_id`'s saved policy to `to` (a new or empty folder), with `daa_bench.json`."""
    results_dir, to = Path(results_dir), Path(to)
    runs = results_dir / "runs"
    path = runs / run_id
    if not (path / "config.json").is_file():
        known = sorted(p.name for p in runs.glob("*") if (p / "config.json").is_file()) if runs.is_dir() else []
        if not known:
            raise UserError(f"{results_dir}: no runs here; pass a results folder such as results/<suite>")
        raise UserError(f"--run {run_id}: no such run in {results_dir}; {did_you_mean(run_id, known)}")
    if not has_policy(path):
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        from bench.algorithms.registry import all_algorithms

        cls = all_algorithms().get(config.get("algorithm"))
        if cls is not None and not cls.trains:
            raise UserError(f"--run {run_id}: {config.get('algorithm')} is training-free: it keeps no policy (its "
                            f"policy is the world's base model); export a trained run")
        raise UserError(f"{path}: no saved policy (policy/); re-run the suite with [train] save_policy = \"final\" "
                        f"(or --set train.save_policy=final)")
    if to.exists() and (not to.is_dir() or any(to.iterdir())):
        raise UserError(f"--to {to}: exists and is not an empty folder; name a new folder")
    to.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(path / POLICY_DIR, to, dirs_exist_ok=True)
    record = {"config": json.loads((path / "config.json").read_text(encoding="utf-8"))}
    if (path / "metrics.json").is_file():
        record["metrics"] = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    (to / "daa_bench.json").write_text(json.dumps(record, indent=1, sort_keys=True, default=str) + "\n",
                                       encoding="utf-8")
    return to


def push_to_hub(folder: Path, repo_id: str, private: bool = True) -> str:
    """Upload an exported folder to a Hub model repository; offline or unauthenticated: one line (UserError)."""
    import os

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise UserError(f"--push-to-hub {repo_id}: HF_HUB_OFFLINE is set, so nothing was uploaded; the policy is "
                        f"in {folder} (unset HF_HUB_OFFLINE and log in with `hf auth login` to push)")
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                 commit_message="daa-bench export")
    except Exception as exc:  # network, auth, permissions: the export itself is kept
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        raise UserError(f"--push-to-hub {repo_id}: upload failed ({reason}); the policy is in {folder} "
                        f"(check the network and `hf auth login`)") from None
    return str(getattr(info, "commit_url", "") or f"https://huggingface.co/{repo_id}")
