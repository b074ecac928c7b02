"""π_ref's log-probs of the DPO family's training pairs: computed once per world, served to every run, charged to
every step as before.

Why: a DPO-family step runs the reference model forward on the step's 64 sequences (a quarter of the step's FLOPs:
2·N per token beside the policy's 6·N), yet π_ref and the training pairs are the same for every seed and every
variant of a suite (dpo, ipo, cdpo, ...): the same numbers were computed 3 × 136 times per variant. Here they are
computed once per world by TRL's own `compute_ref_log_probs` over the trainer's own collated batches (fixed order,
the training batch size), kept beside the world (bench.stages.SharedStages.kept: keyed by the tokenised pairs, the
thread count, the device, the kernels and the batching, so a value read back is what this process would compute
in that layout), and handed to TRL as the `ref_chosen_logps` / `ref_rejected_logps` columns that its
`precompute_ref_log_probs` path reads instead of running the reference.

What a run computes is otherwise unchanged: the loss, the data order and the step count. The meter charges the
reference forward to each training step exactly as the reference model's own hook did (2·N_ref per non-padding
token of the policy's training forward, which sees the same batch), so the budget lays out the same steps. The
values are the same sums computed in a different batch layout, so they can differ in the last float32 bits from
the in-step ones (as the padding trim's, bench/padding_trim.py).

Not used (the reference runs in the step as before) with LoRA (the reference is the adapter-disabled policy),
with `precompute_ref_log_probs = true` (TRL's own pass, charged once up front), with TRL's `ld_alpha` (it needs
per-token values, not sums), with a reference that moves (TR-DPO, `sync_ref_model`), for the variants whose loss
hook scores π_ref itself (bench/algorithms/loss_hooks.py) and under a wall-clock (seconds) budget, where the
reference's real time is part of what runs are equalised on.
"""

from __future__ import annotations

from typing import Any

KEPT_NAME = "dpo_reference_logps"


def applies(params: dict[str, Any], ref, budget_kind: str = "flops") -> bool:
    """Where serving the sums computes what the step would: a fixed reference that is a separate model, summed
    log-probs (no `ld_alpha`), and a budget that does not count wall-clock seconds (under a seconds budget the
    reference's real time is part of what the runs are equalised on, so it runs in every step as before)."""
    return (ref is not None and not params.get("precompute_ref_log_probs") and params.get("ld_alpha") is None
            and not params.get("sync_ref_model") and budget_kind != "seconds")


def serve(ctx, trainer, ref, policy) -> None:
    """Give the trainer π_ref's per-pair log-probs as dataset columns, switch its reference forward off, and charge
    the meter for it on every training forward of the policy."""
    import numpy as np

    dataset = trainer.train_dataset
    with ctx.meter.paused():
        kept = ctx.stages.kept(KEPT_NAME, cache_key(trainer), lambda: _compute(trainer, ref))
    chosen, rejected = np.asarray(kept["chosen"], dtype=np.float64), np.asarray(kept["rejected"], dtype=np.float64)
    if len(chosen) != len(dataset):
        raise RuntimeError(f"kept π_ref log-probs hold {len(chosen)} pairs, the trainer's dataset {len(dataset)}")
    if getattr(dataset, "_indices", None) is not None:
        dataset = _in_order(dataset)
    trainer.train_dataset = (dataset.add_column("ref_chosen_logps", chosen.astype(np.float32).tolist())
                             .add_column("ref_rejected_logps", rejected.astype(np.float32).tolist()))
    trainer.precompute_ref_logps = True
    ctx.meter.attach_alongside(policy, "reference", n_params=sum(p.numel() for p in ref.parameters()))


def _in_order(dataset):
    """The same rows in the same order, without an index mapping. `add_column` would flatten the mapping itself
    with `flatten_indices`, a row-by-row map (0.85 s of a 30 s DPO run); Arrow's `take` of the rows is the same
    table in 0.04 s. The dataset's features, split and output format are kept."""
    from datasets import Dataset

    flat = Dataset(dataset.with_format("arrow")[:], info=dataset.info.copy(), split=dataset.split)
    fmt = dataset.format
    flat.set_format(type=fmt["type"], columns=fmt["columns"], output_all_columns=fmt["output_all_columns"],
                    **fmt["format_kwargs"])
    return flat


def cache_key(trainer) -> dict[str, Any]:
    """What the kept sums depend on besides the world and the process (which `kept` adds)."""
    from bench.hashing import stable_hash

    columns = ("prompt_ids", "chosen_ids", "rejected_ids")
    dataset = trainer.train_dataset
    # every token of every pair, as plain int lists read from Arrow in one pass (format 2 iterated the trainer's
    # torch-formatted rows: 1.1 s of a 40 s DPO run, and hashed each id as the text of a 0-d tensor), and what the
    # collator does to them (truncation, padding multiple), so two datasets or layouts never share values
    plain = dataset.with_format(None).select_columns(list(columns)).to_dict()
    content = stable_hash({"rows": len(dataset), **{c: plain[c] for c in columns}})
    collator = trainer.data_collator
    layout = {k: getattr(collator, k, None) for k in ("max_length", "truncation_mode", "pad_to_multiple_of")}
    return {"pairs": content, "batch_size": trainer.args.per_device_train_batch_size, "collator": layout,
            "padding_free": bool(getattr(trainer.args, "padding_free", False)), "format": 3}


def _compute(trainer, ref) -> dict[str, Any]:
    """TRL's own reference pass over the trainer's dataset, in order, in batches of the training batch size."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(trainer.train_dataset, batch_size=trainer.args.per_device_train_batch_size,
                        collate_fn=trainer.data_collator, shuffle=False)
    chosen, rejected = [], []
    was_training = ref.training
    ref.eval()
    with torch.no_grad():
        for inputs in loader:
            inputs = {k: v.to(trainer.accelerator.device) if hasattr(v, "to") else v for k, v in inputs.items()}
            c, r = trainer.compute_ref_log_probs(ref, inputs)
            chosen.append(c.float().cpu().numpy())
            rejected.append(r.float().cpu().numpy())
    ref.train(was_training)
    return {"chosen": np.concatenate(chosen).astype(np.float64), "rejected": np.concatenate(rejected).astype(np.float64)}
