"""`[algorithms.<label>.trl]`: fields of the TRL config an algorithm's trainer takes, passed through as given.

    [algorithms.dpo]
    beta = 0.1
    [algorithms.dpo.trl]          # DPOConfig fields the harness leaves alone
    truncation_mode = "keep_start"
    adam_beta2 = 0.98

Each key is checked at `bench validate` against the dataclass fields of the trainer's config (`DPOConfig`,
`CPOConfig`, `ORPOConfig`, `KTOConfig`, `OnlineDPOConfig`, `RLOOConfig`, `GRPOConfig`: the algorithm's
`trl_config`), and the config is built once with the values so TRL's own checks run before any training. A field
the harness owns is refused with the suite field that sets it: the harness must hold the compute budget (steps,
batch, epochs), the comparison (each algorithm's loss and β, the seeds) and its bookkeeping (output folder,
logging every step for the curves, no checkpoints). The values are part of the run's identity (RunSpec.trl:
hashed, recorded in config.json), so two suites that differ in one TRL field get different run ids.

`ppo` has no TRL config: TRL removed PPOTrainer in 1.13 and ours is the project's own loop, whose settings are its
hyper-parameters (`bench list ppo`). Training-free references (`sft`, `best_of_n`) train nothing.

As TRL's own scripts do with `TrlParser` (any config field from the command line), but checked, and never over a
field the benchmark must hold equal.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import warnings
from typing import Any

from bench.errors import problem
from bench.schema import coerce, type_name

LABEL = "[algorithms.<label>]"
_TRAIN = "{entry}.{key} (or [train].{key})"
_WORLD = "[world] (its models and length caps: max_prompt_tokens / max_completion_tokens)"
_BOOKKEEPING = "the harness (it logs every step for the curves and keeps only the final policy: [train].save_policy)"

# field -> the suite field that sets it ("{entry}" is the entry's own table)
OWNED: dict[str, str] = {
    **{k: _TRAIN for k in ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
                           "lr_scheduler_type", "max_grad_norm", "weight_decay", "warmup_ratio")},
    "warmup_steps": "{entry}.warmup_ratio (a fraction of the steps the budget lays out)",
    "max_steps": "[budget] (flops / seconds / updates; max_steps caps it)",
    "num_train_epochs": "[budget].max_epochs",
    "seed": "[suite].seeds", "data_seed": "[suite].seeds", "full_determinism": "[suite].seeds",
    "output_dir": "the harness (results/<suite>/runs/<run_id>/)",
    "report_to": "[train].report_to", "run_name": "[train].report_to (the run id names the run)",
    "project": "[train].report_to", "trackio_space_id": "[train].report_to",
    "use_cpu": "`bench run --device`", "no_cuda": "`bench run --device`",
    "bf16": "[world].bf16", "fp16": "[world].bf16", "gradient_checkpointing": "[world].gradient_checkpointing",
    "activation_checkpointing": "[world].gradient_checkpointing",
    **{k: _BOOKKEEPING for k in ("save_strategy", "save_steps", "save_total_limit", "logging_steps",
                                 "logging_strategy", "logging_first_step", "disable_tqdm", "logging_dir",
                                 "resume_from_checkpoint", "overwrite_output_dir", "eval_strategy", "eval_steps",
                                 "do_train", "do_eval", "do_predict", "load_best_model_at_end")},
    **{k: "`bench export --push-to-hub`" for k in ("push_to_hub", "hub_model_id", "hub_strategy", "hub_token",
                                                   "hub_private_repo")},
    "dataloader_num_workers": "the harness (0: workers would fork the metered models)",
    **{k: _WORLD for k in ("max_length", "max_prompt_length", "max_completion_length", "max_new_tokens",
                           "model_init_kwargs", "trust_remote_code", "pad_token", "padding_value",
                           "is_encoder_decoder", "reward_model_path")},
    # what makes each algorithm the algorithm it is: its loss and β-analogue, from its hyper-parameters
    **{k: "the algorithm and its hyper-parameters ({entry}; `bench list {algorithm}`)" for k in (
        "beta", "loss_type", "loss_weights", "label_smoothing", "ld_alpha", "f_divergence_type",
        "f_alpha_divergence_coef", "use_weighting", "discopop_tau", "rpo_alpha", "sync_ref_model",
        "ref_model_mixup_alpha", "ref_model_sync_steps", "cpo_alpha", "simpo_gamma", "alpha", "desirable_weight",
        "undesirable_weight", "precompute_ref_log_probs", "temperature", "missing_eos_penalty", "num_generations",
        "shuffle_dataset", "reward_weights", "train_sampling_strategy")},
    **{k: "the compute meter (it counts the torch models' passes; vLLM generation would go unmetered)"
       for k in ("use_vllm", "vllm_mode")},
}


def config_class(cls) -> Any:
    """The TRL config dataclass of algorithm class `cls` (its `trl_config`, "module:Class"), imported now."""
    module, _, name = cls.trl_config.partition(":")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TRLExperimentalWarning and friends: the library never prints
        return getattr(importlib.import_module(module), name)


def refusal(cls) -> str | None:
    """Why algorithm `cls` takes no `trl` table, or None when it does."""
    if cls.trl_config:
        return None
    if not cls.trains:
        return f"{cls.name} trains nothing: it has no trainer config"
    return getattr(cls, "trl_refusal", "") or (f"{cls.name} does not train through a TRL trainer; set its "
                                              f"hyper-parameters in the entry (`bench list {cls.name}`)")


def read_trl(cls, label: str, table: Any, where: str, problems: list[str]) -> str | None:
    """The entry's `trl` table as canonical JSON (sorted keys), or None after appending one problem per bad key."""
    section = f"[algorithms.{label}.trl]"
    if not isinstance(table, dict):
        problems.append(problem(where, section, f"must be a table of {cls.trl_config.split(':')[-1] or 'TRL'} fields, "
                                f"got {type(table).__name__}", f"write [algorithms.{label}.trl] with key = value lines"))
        return None
    why = refusal(cls)
    if why:
        problems.append(problem(where, section, why, "remove the table"))
        return None
    before = len(problems)
    try:
        config_cls = config_class(cls)
    except (ImportError, AttributeError) as exc:
        problems.append(problem(where, section, f"{cls.trl_config} is not importable ({exc})",
                                "install the trl release pyproject.toml names (trl>=1.16,<1.17)"))
        return None
    fields = {f.name for f in dataclasses.fields(config_cls) if f.init}
    params = cls.param_fields()
    entry = f"[algorithms.{label}]"
    for key in table:
        if key in params:
            problems.append(problem(where, f"{section}.{key}", f"is a hyper-parameter of {cls.name}",
                                    f"set it as {entry}.{key} (it is swept, hashed and reported like one)"))
        elif key in OWNED:
            problems.append(problem(where, f"{section}.{key}", "the harness sets this field (budget and comparison)",
                                    "use " + OWNED[key].format(entry=entry, key=key, algorithm=cls.name)))
        elif key not in fields:
            problems.append(problem(where, f"{section}.{key}", f"is not a field of {config_cls.__name__}",
                                    closest(key, fields | set(params), lambda k: _elsewhere(k, params, entry, cls))))
    hints = _simple_types(config_cls)
    for key, value in table.items():
        if key in hints and key in fields and key not in OWNED and key not in params:
            ok, converted = coerce(value, hints[key])
            if not ok:
                problems.append(problem(where, f"{section}.{key}", f"expected {type_name(hints[key])}, got "
                                        f"{type(value).__name__} {value!r}"))
            else:
                table = {**table, key: converted}
    if len(problems) > before:
        return None
    try:  # TRL's own checks (choices, ranges, combinations) now, not after the shared stages are built
        with warnings.catch_warnings():  # transformers' deprecation notices: the library never prints
            warnings.simplefilter("ignore")
            config_cls(output_dir="unused", report_to="none", use_cpu=True, bf16=False, fp16=False, **table)
    except Exception as exc:  # noqa: BLE001  (whatever TRL raises: one line naming the table)
        text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:300]
        problems.append(problem(where, section, f"{config_cls.__name__} refuses these values: {text}",
                                f"fix the value (TRL's documentation of {config_cls.__name__} lists each field)"))
        return None
    return json.dumps(table, sort_keys=True)


def _simple_types(config_cls) -> dict[str, Any]:
    """Field -> type for the fields whose annotation is a plain scalar (or optional one): checked like ours."""
    import types
    import typing

    try:
        hints = typing.get_type_hints(config_cls)
    except Exception:  # noqa: BLE001  (a forward reference TRL does not resolve: TRL's own checks still run)
        return {}
    out = {}
    for name, tp in hints.items():
        args = [a for a in typing.get_args(tp) if a is not type(None)] \
            if typing.get_origin(tp) in (typing.Union, types.UnionType) else [tp]
        if len(args) == 1 and args[0] in (bool, int, float, str):
            out[name] = tp
    return out


def _elsewhere(key: str, params, entry: str, cls) -> str:
    """Where a field the table may not hold is set ("" for a field it may hold)."""
    if key in params:
        return f"{entry}.{key}"
    return OWNED[key].format(entry=entry, key=key, algorithm=cls.name) if key in OWNED else ""


def closest(key: str, fields, elsewhere=lambda k: "") -> str:
    """'did you mean X?' naming the one closest field (a config has ~140: never the list); where X is set
    elsewhere (a hyper-parameter, a field the harness holds), that place."""
    import difflib

    match = difflib.get_close_matches(key, sorted(fields), n=1, cutoff=0.6)
    if match:
        where = elsewhere(match[0])
        return f"did you mean '{match[0]}'?" + (f" (not here: use {where})" if where else "")
    match = difflib.get_close_matches(key, sorted(k for k in fields if not elsewhere(k)), n=1, cutoff=0.0)
    return (f"no field is close (the nearest is '{match[0]}'); TRL's documentation of the config lists its fields"
            if match else "no field of it may be passed through")


def apply(ctx, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` for the TRL config with the run's pass-through added. A key the harness set after all (a plug-in
    algorithm's own kwargs the table check could not foresee) stops the run with one line, never silently wins."""
    extra = ctx.spec.trl_dict
    clash = sorted(set(extra) & set(kwargs))
    if clash:
        from bench.errors import UserError

        raise UserError(f"[algorithms.{ctx.spec.label}.trl].{clash[0]}: {ctx.spec.algorithm} sets this "
                        "TRL field itself; remove it from the table")
    return {**kwargs, **extra}
