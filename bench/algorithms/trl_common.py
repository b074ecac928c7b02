"""What every TRL adapter shares: training arguments, the budget/curve callbacks, meters, and the step estimate.

TRL pitfalls handled here once (measured with TRL 1.12 / transformers 5.24, checked again on TRL 1.16 / 5.25):
- TRL's base config defaults to bf16 = True and gradient checkpointing on; both are switched off on CPU;
- TRL's 1e-6-class default learning rates suit billion-parameter models; ours come from the suite;
- the training length: `max_steps` is laid out for the budget (estimated from the model size and the data's
  token counts) so learning-rate schedules span the run, capped by `budget.max_epochs` passes over the data;
  the budget callback stops training when the meter says so, whichever comes first.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def experimental(algorithm: str, module: str, *names: str) -> tuple:
    """`names` from `trl.experimental.<module>`, imported when `algorithm` trains (never at `import bench`).

    TRL says its experimental trainers may go without deprecation (CPO, ORPO and Online DPO are removal candidates,
    RFC #7182): when one has, only that algorithm stops, with one line naming it. TRL's TRLExperimentalWarning (a
    notice that the module is experimental, printed once per process) is silenced here: the library never prints,
    and README lists which algorithms stand on experimental trainers."""
    import importlib
    import warnings

    from bench.errors import UserError

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*trl.experimental")
        try:
            mod = importlib.import_module(f"trl.experimental.{module}")
            return tuple(getattr(mod, n) for n in names)
        except (ImportError, AttributeError) as exc:
            from importlib.metadata import version

            raise UserError(f"algorithm {algorithm!r} needs trl.experimental.{module}.{'/'.join(names)}, which the "
                            f"installed trl {version('trl')} does not provide ({exc}); install the trl release "
                            "pyproject.toml names (trl>=1.16,<1.17) or drop it from the suite") from None


def training_args(ctx, config_cls, *, rows: int, step_flops: float | None, margin: float = 1.25,
                  **algorithm_kwargs: Any):
    """A TRL config (`DPOConfig`, `CPOConfig`, ...) with the run's common settings and `algorithm_kwargs`.

    `margin` scales the step count laid out from the budget; algorithms whose step cost depends on what the
    policy generates (PPO, Online DPO) pass a larger one, since their estimate is rougher.
    """
    from bench.distributed import world_size

    p = ctx.params
    spec = ctx.spec
    # an optimizer step consumes the global batch: every rank's share (step_flops comes in per rank)
    per_step = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"] * world_size()
    step_flops = step_flops * world_size() if step_flops else step_flops
    epoch_steps = max(1, math.ceil(rows / per_step))
    max_steps = epoch_steps * spec.budget.max_epochs
    ctx.step_cap = "data_exhausted"  # ended by budget.max_epochs passes over the data
    if spec.budget.kind == "flops" and step_flops:
        # what is left after charges made before training (reward model, reference precompute); the margin
        # keeps an over-estimated step cost from ending training before the budget is spent
        left = max(spec.budget.amount - ctx.meter.flops, step_flops)
        estimate = max(1, math.ceil(margin * left / step_flops))
        if estimate < max_steps:
            max_steps, ctx.step_cap = estimate, "step_estimate"
    if spec.budget.max_steps and spec.budget.max_steps < max_steps:
        max_steps, ctx.step_cap = spec.budget.max_steps, "max_steps"
    on_gpu = str(ctx.device).startswith("cuda")
    kwargs = dict(
        output_dir=str(ctx.work_dir / "trainer"), report_to="none", use_cpu=not on_gpu,
        bf16=on_gpu and getattr(spec.world, "bf16", False), fp16=False,
        activation_checkpointing=on_gpu and getattr(spec.world, "gradient_checkpointing", False),
        save_strategy="no", logging_steps=1, logging_strategy="steps", dataloader_num_workers=0,
        dataloader_pin_memory=False, disable_tqdm=True, seed=spec.seed, data_seed=spec.seed,
        learning_rate=p["learning_rate"], per_device_train_batch_size=p["per_device_train_batch_size"],
        gradient_accumulation_steps=p["gradient_accumulation_steps"], lr_scheduler_type=p["lr_scheduler_type"],
        warmup_steps=int(p["warmup_ratio"] * max_steps), max_grad_norm=p["max_grad_norm"],
        weight_decay=p["weight_decay"], max_steps=max_steps,
    )
    from bench.tracking import args_kwargs

    kwargs.update(args_kwargs(spec))  # run name / project for the trackers (none without one)
    kwargs.update(algorithm_kwargs)
    from bench.algorithms.trl_passthrough import apply

    return config_cls(**apply(ctx, kwargs)), epoch_steps  # + the suite's [algorithms.<label>.trl] fields


def callbacks(ctx, get_policy=lambda kw: kw["model"]):
    """[tracker, budget callback, curve callback]: curves see each step after the budget has been updated; the
    tracker adds the budget fraction to every log entry and forwards logs and curves to `[train] report_to`."""
    from bench.budget import budget_callback
    from bench.tracking import run_tracker

    from bench.progress import report

    curve_cb = ctx.curves.callback(get_policy)
    stage = f"train {ctx.spec.run_id} (% of budget)"

    def on_step(state) -> None:
        report(ctx.progress, stage, min(99, int(100 * ctx.meter.fraction)), 100)

    budget_cb = budget_callback(ctx.meter, on_step=on_step)
    return budget_cb, [run_tracker(ctx).callback, budget_cb, curve_cb]


def peft_config(ctx):
    """TRL's `peft_config` for this run: a peft `LoraConfig` from `[train] peft`, or None (full fine-tuning).
    With it TRL wraps the policy in a `PeftModel` and, given no reference model, uses the adapter-disabled base
    as π_ref (no second copy of the weights)."""
    lora = ctx.spec.options.peft
    if lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(**lora.peft_kwargs())


def policy_step_factor(ctx, *, reference: bool) -> int:
    """FLOPs per parameter per token of one policy training step, for laying out `max_steps`: forward 2 +
    backward 4 (full fine-tuning) or backward 2 (LoRA: activation gradients only, adapters' weight gradients
    are negligible; see bench.budget), + 2 for a reference forward. A low estimate only lays out more steps:
    the budget callback stops training when the meter says so."""
    backward = 2 if ctx.spec.options.peft is not None else 4
    return 2 + backward + (2 if reference else 0)


def attach(meter, model, component: str, tokenizer=None) -> None:
    """Count a model's forwards. Sequence-classification models are called through their backbone by PPO's
    reward/value code, so the hook goes on the backbone when there is one.

    N is the parameters a token's forward multiplies by. A sequence-classification model has no output
    projection, so its embedding tables (token, position) are lookups and leave N; a causal LM keeps them in N (its
    token embedding is usually tied to the output projection, run on every position). Counting the lookups put the
    meter 6.6% above torch's FlopCounterMode over one PPO update of the default world (value and reward passes are
    half of it); without them it is within 5% (tests/test_ppo.py). `tokenizer`: for a policy that generates, so the
    meter knows every id a row ends at (bench.modeling.end_tokens)."""
    import torch

    from bench.modeling import end_tokens

    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix and not hasattr(model, "generate") else None
    target = backbone if backbone is not None else model
    n_params = sum(p.numel() for p in model.parameters())
    if backbone is not None:
        n_params -= sum(m.weight.numel() for m in backbone.modules() if isinstance(m, torch.nn.Embedding))
    meter.attach(target, component, n_params=n_params, ends=end_tokens(model, tokenizer))


def pair_tokens(dataset, tokenizer, limit: int = 512) -> float:
    """Mean non-padding tokens of prompt+chosen plus prompt+rejected (with end tokens) on a sample of rows."""
    n = min(limit, len(dataset))
    total = 0
    for row in dataset.select(range(n)):
        p = len(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"])
        c = len(tokenizer(row["chosen"], add_special_tokens=False)["input_ids"]) + 1
        r = len(tokenizer(row["rejected"], add_special_tokens=False)["input_ids"]) + 1
        total += 2 * p + c + r
    return total / max(n, 1)


def stop_reason(budget_cb, ctx, steps: int) -> str:
    """Why training ended: "budget" (the meter), or the step cap that bound first: "max_steps" (the suite's
    `budget.max_steps`), "data_exhausted" (`budget.max_epochs` passes over the data), or "step_estimate" (the
    step count laid out from the budget ran out first: the per-step cost was over-estimated)."""
    if budget_cb.stopped_by_budget:
        return "budget"
    return getattr(ctx, "step_cap", "data_exhausted")


def save_policy(trainer_or_model, tokenizer, path: Path) -> Path:
    """Save the trained policy for evaluation (rank 0 only in multi-process runs: it alone evaluates)."""
    from bench.distributed import is_main

    if is_main():
        from transformers import Trainer

        # a Trainer holds the policy in .model; a bare model's .model is its backbone (no LM head): never unwrap it
        model = trainer_or_model.model if isinstance(trainer_or_model, Trainer) else trainer_or_model
        model = getattr(model, "module", model)  # unwrap DDP
        if hasattr(model, "merge_and_unload"):  # a LoRA policy: keep the adapter, evaluate the merged model
            model.save_pretrained(str(Path(path) / "adapter"))
            tokenizer.save_pretrained(str(Path(path) / "adapter"))
            model = model.merge_and_unload()
        model.save_pretrained(str(path))
        tokenizer.save_pretrained(str(path))
    return path


def log_history(trainer) -> list[dict[str, Any]]:
    return [dict(h) for h in getattr(trainer.state, "log_history", [])]


def quiet(trainer):
    """The library never prints: drop transformers' printer / progress-bar callbacks (the CLI shows progress)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for cb in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(cb)
    return trainer


def max_length(ctx) -> int:
    """Prompt + completion token cap: the world's (a Hub world records its filter), else the controlled world's."""
    return int(ctx.world.info.get("max_length", 128))


def max_completion_length(ctx) -> int:
    config = ctx.world.info.get("config", {})
    return int(config.get("max_completion_tokens") or 64)
