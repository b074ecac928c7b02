"""The Bradley–Terry reward model shared by `ppo` and `online_dpo`, trained with TRL's `RewardTrainer` on the
*same* training pairs the offline methods see (Ouyang et al. 2022, Eq. 1: −log σ(r(x,y_c) − r(x,y_r))).

It starts from the base policy's weights with a fresh scalar head (InstructGPT initialises its reward model
from the SFT model). Its training FLOPs are metered here and recorded, and every run that uses the reward
model is charged them in full (a shared cache saves wall time, not budget).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RewardModelParams:
    """Reward-model settings; `ppo` and `online_dpo` share one model when theirs agree (the defaults)."""

    rm_learning_rate: float = field(default=3e-3, metadata={"gt": 0, "doc": "measured: 1 epoch at 3e-3 ranks held-out pairs by gold reward 73% of the time (1e-3: 55%)"})
    rm_epochs: float = field(default=1.0, metadata={"gt": 0, "doc": "passes over the training pairs"})
    rm_batch_size: int = field(default=32, metadata={"min": 1})


RM_FIELDS = ("rm_learning_rate", "rm_epochs", "rm_batch_size")
# The cached reward model's record holds its metered training FLOPs, so the metering rule is part of its cache key:
# 2 = a scalar model's embedding lookups are not in N (trl_common.attach, issue 26).
METER_RULE = 2


def rm_settings(params: dict[str, Any]) -> dict[str, Any]:
    return {**{k: params[k] for k in RM_FIELDS}, "meter_rule": METER_RULE}


def use_reward_model(ctx) -> tuple[Path, dict[str, Any]]:
    """The shared reward model for this run (trained once, cached), its training FLOPs charged to the run."""
    rm_dir, record = ctx.stages.reward_model(rm_settings(ctx.params))
    ctx.meter.charge("reward_model_training", record["flops"], record["tokens"])
    if ctx.meter.budget_kind == "seconds":  # a seconds budget pays the reward model's measured training time
        ctx.meter.train_seconds += float(record.get("seconds", 0.0))
    return rm_dir, record


def estimate_rm_flops(sizes: dict, settings: dict) -> float:
    return 6 * sizes["n_params"] * sizes["tokens_per_sequence"] * 2 * sizes.get("pairs", 0) * settings["rm_epochs"]


def rm_forecast(spec, sizes: dict) -> tuple[float, str]:
    """(FLOPs the reward model's training takes from this run's budget, the dry-run note): all of it end to end,
    none in the amortised view (it is paid apart, `flops_amortised`)."""
    rm = estimate_rm_flops(sizes, rm_settings(spec.param_dict))
    if spec.budget.view == "amortised":
        return 0.0, f"reward model {rm:.2g} FLOPs paid apart (amortised)"
    return rm, f"reward model {rm:.2g} FLOPs charged first"


def train_reward_model(world, settings: dict[str, Any], out_dir: Path, device="cpu", world_config=None,
                       max_length: int = 128) -> dict[str, Any]:
    from trl import RewardConfig, RewardTrainer

    from bench.budget import ComputeMeter
    from bench.algorithms import trl_common as tc
    from bench.modeling import completion_batch, load_scalar_model, load_tokenizer

    import torch

    t0 = time.perf_counter()
    world_config = world_config or object()
    torch.manual_seed(world.info.get("config", {}).get("seed", 0))
    tok = load_tokenizer(world.tokenizer_dir)
    train = world.load_pairs("train")
    model = load_scalar_model(world.base_model_dir, device)
    model.config.pad_token_id = tok.pad_token_id
    meter = ComputeMeter()
    tc.attach(meter, model, "reward_model")
    steps = max(1, math.ceil(settings["rm_epochs"] * len(train) / settings["rm_batch_size"]))
    on_gpu = str(device).startswith("cuda")
    args = RewardConfig(
        output_dir=str(out_dir.parent / "trainer"), report_to="none", use_cpu=not on_gpu,
        bf16=on_gpu and getattr(world_config, "bf16", False), fp16=False,
        activation_checkpointing=on_gpu and getattr(world_config, "gradient_checkpointing", False), save_strategy="no", logging_steps=10, dataloader_num_workers=0,
        dataloader_pin_memory=False, disable_tqdm=True, seed=0, learning_rate=settings["rm_learning_rate"],
        per_device_train_batch_size=settings["rm_batch_size"], max_steps=steps, max_length=max_length,
        lr_scheduler_type="linear", warmup_steps=max(1, steps // 20),
    )
    trainer = RewardTrainer(model=model, args=args, train_dataset=train, processing_class=tok)
    tc.quiet(trainer)
    trainer.train()
    meter.sync()  # multi-process: the other ranks' shards of the pairs
    meter.detach()
    trainer.save_model(str(out_dir))  # rank 0 only under accelerate launch
    if trainer.is_world_process_zero():
        tok.save_pretrained(str(out_dir))

    # held-out accuracy: does it rank the labelled chosen above rejected, and the gold-better one above the other?
    heldout = world.load_pairs("heldout")
    model.eval()
    with torch.no_grad():
        def score(completions):
            b = completion_batch(tok, list(heldout["prompt"]), completions, device=device)
            return model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, 0].float().cpu()
        sc, sr = score(list(heldout["chosen"])), score(list(heldout["rejected"]))
    gold_c = torch.tensor(heldout["score_chosen"], dtype=torch.float64) if "score_chosen" in heldout.column_names \
        else torch.full((len(heldout),), float("nan"), dtype=torch.float64)
    gold_r = torch.tensor(heldout["score_rejected"], dtype=torch.float64) if "score_rejected" in heldout.column_names \
        else torch.full((len(heldout),), float("nan"), dtype=torch.float64)
    known = ~(gold_c.isnan() | gold_r.isnan())  # real datasets may carry no (or partial) scores
    gold_better = torch.where(gold_c >= gold_r, sc - sr, sr - sc)[known]
    return {
        "flops": meter.flops, "tokens": int(sum(meter.tokens.values())), "steps": trainer.state.global_step,
        "heldout_label_accuracy": float((sc > sr).float().mean()),
        "heldout_gold_accuracy": float((gold_better > 0).float().mean()) if len(gold_better) else None,
        "seconds": time.perf_counter() - t0, "settings": settings,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
