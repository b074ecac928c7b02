"""The GPU path, measured in one command (a benchmark, not a test): bench vs bare TRL throughput, the
reference-precompute memory claim, MFU with the meter checked against torch's FLOP counter, and one `bench run`.

    python benchmarks/gpu.py                 # one H100/H200: ~0.5B Qwen2.5-shaped Llama model, ~6-8 minutes, no network
    python benchmarks/gpu.py --tiny          # CPU smoke mode (tiny model, tiny lengths), well under a minute

Nothing is downloaded. A word-level tokenizer (151,936 pseudo-words, Qwen2.5's vocabulary size) and a Llama
decoder shaped like Qwen2.5-0.5B (24 layers, width 896, GQA 14/2 heads, q/k/v biases, tied embeddings, ~494M
parameters) with random weights are written locally (a Llama class, not Qwen2: transformers 5 replaces a `qwen2`
model's tokenizer with its own class), with synthetic preference pairs (default: 256-token prompts, 256-token
completions, ±12.5%) as an UltraFeedback-shaped local data set; a Hub world is built from them by bench's own
builder (`bench.worlds.hub.build`), as `tests/test_hub_world.py` does with its fixtures. Every trainer gets the
TrainingArguments that bench's adapters lay out (`bench.algorithms.trl_common.training_args`: bf16, gradient
checkpointing, batch, max_length), so bench and bare TRL differ only by what bench adds (meter hooks, budget
callback).

Sections (each one is recorded even when another fails; the JSON is rewritten after every section):
1. throughput: DPO, SimPO (CPOTrainer) and PPO, each through bench's adapter (`Algorithm.train(ctx)` with the
   real ComputeMeter hooks and budget callback) and as a bare TRL trainer on the same model, batch and lengths.
   Step time is the median interval between `on_step_end` events after warm-up steps, with CUDA synchronised;
   the drift-curve recorder is replaced by that timer (curves are evaluation, paused out of bench's clock; the
   end-to-end run below measures them). DPO and SimPO: two repeats in alternating order, the faster of each kept.
   Training tokens/s = global batch × mean pair tokens / step time. PPO's generation is timed separately (TRL's
   `batch_generation`, wrapped): generated tokens/s.
2. memory: peak `torch.cuda.max_memory_allocated` of DPO with the reference model in the loop vs
   `precompute_ref_log_probs`, at two batch sizes, with and without gradient checkpointing (bare TRL with bench's
   arguments; init peak = model loads + TRL's precompute pass, train peak = the training steps).
3. mfu: the meter's FLOPs per step ÷ (step time × the GPU's dense bf16 peak), for every bench run above (and the
   bare runs' time against the same FLOPs); plus one DPO step under `torch.utils.flop_counter.FlopCounterMode`
   (no checkpointing, so no recomputed forward) against the meter's count of the same step.
4. e2e: `bench run` of a tiny Hub-world suite (sft, dpo, simpo, ppo; bf16 + checkpointing) on the device, and on
   CUDA `pytest -m gpu tests/test_gpu.py`.

Results: benchmarks/results/gpu-<device>.json (device, versions, git commit, every figure). README: "GPU path".
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# dense bf16 tensor-core peaks (NVIDIA data sheets, no sparsity), matched on torch.cuda.get_device_name()
BF16_PEAK = (("H200", 989.4e12), ("H100 PCIe", 756.0e12), ("H100 NVL", 835.0e12), ("H100", 989.4e12),
             ("H800", 989.4e12), ("GH200", 989.4e12), ("A100", 312.0e12), ("A800", 312.0e12), ("L40S", 362.05e12),
             ("L4", 121.0e12), ("A10G", 70.0e12))

SPECIALS = ["<pad>", "<unk>", "<|end|>"]

FULL = dict(
    model=dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
               num_key_value_heads=2, attention_bias=True, max_position_embeddings=4096),
    prompt_tokens=256, completion_tokens=256, pairs=96, heldout=16,
    batch=8, steps=12, warmup=3, repeats=2, memory_batches=(4, 8), memory_steps=3,
    ppo=dict(batch=8, steps=4, warmup=1, response_length=128, num_ppo_epochs=4, num_mini_batches=2),
)
TINY = dict(
    model=dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=256),
    prompt_tokens=16, completion_tokens=12, pairs=16, heldout=8,
    batch=4, steps=3, warmup=1, repeats=1, memory_batches=(2, 4), memory_steps=1,
    ppo=dict(batch=4, steps=2, warmup=1, response_length=8, num_ppo_epochs=1, num_mini_batches=1),
)
# the end-to-end suite's model: small on any device (it checks the path, not the speed)
E2E_MODEL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=1024)


# ------------------------------------------------------------------------------------------------ assets
def write_tokenizer(path: Path, vocab_size: int):
    """A word-level tokenizer with exactly `vocab_size` entries: specials, then pseudo-words w0, w1, ..."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for i in range(vocab_size - len(SPECIALS)):
        vocab[f"w{i}"] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|end|>", pad_token="<pad>", unk_token="<unk>")
    tok.save_pretrained(str(path))
    return tok


def write_model(path: Path, tok, shape: dict, device: str, scalar: bool = False) -> int:
    """A Llama decoder (or a 1-label sequence classifier: a judge) with random weights, saved to `path`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    cfg = LlamaConfig(**shape, tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=None, **({"num_labels": 1} if scalar else {}))
    torch.manual_seed(0)
    init_device = device if str(device).startswith("cuda") else "cpu"  # random init of 0.5B is slow on the CPU
    with torch.device(init_device):
        model = (LlamaForSequenceClassification if scalar else LlamaForCausalLM)(cfg)
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    n = sum(p.numel() for p in model.parameters())
    del model
    return n


def write_pairs(path: Path, n_train: int, n_test: int, prompt_tokens: int, completion_tokens: int, vocab: int,
                seed: int = 0) -> None:
    """Standard-format (plain text) pairs, UltraFeedback-shaped split files: train_prefs.jsonl, test_prefs.jsonl."""
    rng = random.Random(seed)
    words = vocab - len(SPECIALS)

    def text(n: int) -> str:
        n = max(1, int(round(n * rng.uniform(0.875, 1.125))))
        return " ".join(f"w{rng.randrange(words)}" for _ in range(n))

    path.mkdir(parents=True, exist_ok=True)
    for name, n in (("train_prefs", n_train), ("test_prefs", n_test)):
        rows = []
        for _ in range(n):
            chosen, rejected = text(completion_tokens), text(completion_tokens)
            # a trailing space, as a chat template's "<|assistant|> " has: TRL's CPO concatenates prompt + completion
            rows.append({"prompt": text(prompt_tokens) + " ", "chosen": chosen, "rejected": rejected,
                         "score_chosen": float(rng.randint(6, 10)), "score_rejected": 5.0})
        (path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def suite_text(name: str, model: Path, judge: Path, data: Path, *, prompt_tokens: int, completion_tokens: int,
               batch: int, max_steps: int, max_train_rows: int, heldout: int, eval_prompts: int, ppo: dict,
               flops: float = 1e30, eval_small: bool = True, algorithms=("dpo", "simpo", "ppo"),
               max_new_tokens: int = 8, bf16: bool = True, checkpointing: bool = True) -> str:
    """A Hub-world suite over the local assets (bench's own TOML, validated by bench.suite)."""
    ppo_table = (f"kl_coef = 0.05\nnum_ppo_epochs = {ppo['num_ppo_epochs']}\n"
                     f"num_mini_batches = {ppo['num_mini_batches']}\nresponse_length = {ppo['response_length']}\n"
                     f"per_device_train_batch_size = {ppo['batch']}\nrm_epochs = 0.1\nrm_batch_size = {batch}\n"
                     "rm_learning_rate = 1e-5\n")
    # ppo is our own PPO (TRL 1.12's `ppo_trl`, which the PPO throughput section compared with bare TRL, went with
    # trl 1.13: that section is skipped, see section_ppo_throughput)
    algos = {"sft": "", "dpo": "beta = 0.1\n", "simpo": "beta = 2.5\nsimpo_gamma = 1.375\n", "ppo": ppo_table}
    body = "".join(f"\n[algorithms.{a}]\n{algos[a]}" for a in algorithms)
    return f"""
[suite]
name = "{name}"
seeds = [0]
[world]
kind = "hub"
model = "{model}"
judge = "{judge}"
dataset = "{data}"
max_train_rows = {max_train_rows}
max_heldout_pairs = {heldout}
eval_prompts = {eval_prompts}
max_prompt_tokens = {int(prompt_tokens * 1.125) + 2}
max_completion_tokens = {int(completion_tokens * 1.125) + 2}
bf16 = {str(bf16).lower()}
gradient_checkpointing = {str(checkpointing).lower()}
[budget]
flops = {flops:g}
max_epochs = 1000
max_steps = {max_steps}
[eval]
prompts = {max(2, eval_prompts // 2)}
validation_prompts = {max(1, eval_prompts // 4)}
max_new_tokens = {max_new_tokens}
curve_every = 0.5
curve_pairs = 4
curve_generation_every = 1.0
curve_generation_prompts = 4
best_of_n = 2
limit_samples = 2
limit_prompts = 2
bootstrap = 100
lm_eval_tasks = []
[train]
learning_rate = 1e-6
per_device_train_batch_size = {batch}
gradient_accumulation_steps = 1
lr_scheduler_type = "constant_with_warmup"
warmup_ratio = 0.1
{body}"""


# ------------------------------------------------------------------------------------------------ timing
def sync(device) -> None:
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def cuda_peak_mb(device) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if str(device).startswith("cuda") else None


def reset_cuda_peak(device) -> float | None:
    """Free what earlier runs left (cycles need a collection), reset the peak; return the allocated baseline (MB)."""
    import torch

    if not str(device).startswith("cuda"):
        return None
    free(device)
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated() / 2**20


class StepTimer:
    """Stands in for bench's CurveRecorder (`ctx.curves`): its callback times every optimizer step (interval between
    `on_step_end` events, the first from `on_train_begin`), reads the meter's FLOPs at each, and the CUDA peak of
    the model loads + trainer init (`init_peak_mb`) and of training (`train_peak_mb`)."""

    rows: list = []
    seconds = 0.0

    def __init__(self, device, meter=None):
        self.device, self.meter = device, meter
        self.times: list[float] = []
        self.flops: list[float] = []
        self.init_peak_mb = self.train_peak_mb = self.baseline_mb = None

    def callback(self, get_policy=None):
        from transformers import TrainerCallback

        timer = self

        class Timer(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                import torch

                sync(timer.device)
                timer.init_peak_mb = cuda_peak_mb(timer.device)
                if str(timer.device).startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()  # not free(): the models are live now
                timer._mark()

            def on_step_end(self, args, state, control, **kwargs):
                sync(timer.device)
                timer._mark()

            def on_train_end(self, args, state, control, **kwargs):
                sync(timer.device)
                timer.train_peak_mb = cuda_peak_mb(timer.device)

        return Timer()

    def _mark(self) -> None:
        self.times.append(time.perf_counter())
        self.flops.append(self.meter.flops if self.meter is not None else 0.0)

    def summary(self, warmup: int) -> dict:
        steps = [b - a for a, b in zip(self.times, self.times[1:])]
        flops = [b - a for a, b in zip(self.flops, self.flops[1:])]
        kept = steps[warmup:] or steps
        kept_flops = flops[warmup:] or flops
        return {"steps": len(steps), "warmup_steps": min(warmup, max(0, len(steps) - 1)),
                "step_s_median": statistics.median(kept) if kept else None,
                "step_s_all": [round(s, 5) for s in steps],
                "meter_flops_per_step": statistics.median(kept_flops) if kept_flops and self.meter else None,
                "allocated_before_mb": self.baseline_mb, "init_peak_mb": self.init_peak_mb,
                "train_peak_mb": self.train_peak_mb}


@contextlib.contextmanager
def generation_timer(device, record: list):
    """Time TRL PPO's rollout generation: wrap `batch_generation` in its module (looked up there at call time)."""
    import trl.experimental.ppo.ppo_trainer as ppo_module

    original = ppo_module.batch_generation

    def timed(model, queries, *args, **kwargs):
        sync(device)
        t = time.perf_counter()
        out = original(model, queries, *args, **kwargs)
        sync(device)
        record.append({"seconds": time.perf_counter() - t, "rows": int(queries.shape[0]),
                       "new_tokens": int(queries.shape[0] * (out[0].shape[1] - queries.shape[1]))})
        return out

    ppo_module.batch_generation = timed
    try:
        yield
    finally:
        ppo_module.batch_generation = original


def free(device) -> None:
    import torch

    gc.collect()
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ runs
class Bench:
    """One prepared world (local assets → bench's Hub world) and the suite's run specs."""

    def __init__(self, shape: dict, device, work: Path, cache: Path, tiny: bool):
        from bench.suite import expand, load_suite
        from bench.stages import SharedStages

        self.shape, self.device, self.work, self.cache, self.tiny = shape, device, work, cache, tiny
        t = time.perf_counter()
        assets = work / "assets"
        tok = write_tokenizer(assets / "tokenizer", shape["model"]["vocab_size"])
        self.n_params = write_model(assets / "policy", tok, shape["model"], str(device))
        write_model(assets / "judge", tok, {**E2E_MODEL, "vocab_size": shape["model"]["vocab_size"]}, str(device),
                    scalar=True)
        write_pairs(assets / "pairs", shape["pairs"], shape["heldout"] * 2, shape["prompt_tokens"],
                    shape["completion_tokens"], shape["model"]["vocab_size"])
        self.assets = assets
        self.suite_path = work / "throughput.toml"
        self.suite_path.write_text(suite_text(
            "gpu-throughput", assets / "policy", assets / "judge", assets / "pairs",
            prompt_tokens=shape["prompt_tokens"], completion_tokens=shape["completion_tokens"], batch=shape["batch"],
            max_steps=shape["steps"] + 1, max_train_rows=shape["pairs"], heldout=shape["heldout"],
            eval_prompts=shape["heldout"], ppo=shape["ppo"]))
        self.suite = load_suite(self.suite_path)
        self.specs = {s.label: s for s in expand(self.suite)}
        self.stages = SharedStages(self.suite, cache, device=str(device))
        self.world = self.stages.world()
        self.setup_s = time.perf_counter() - t
        from bench.algorithms import trl_common as tc
        from bench.modeling import load_tokenizer

        self.tok = load_tokenizer(self.world.tokenizer_dir)
        train = self.world.load_pairs("train")
        self.pair_tokens = tc.pair_tokens(train, self.tok)
        self.prompt_tokens = statistics.mean(len(self.tok(x, add_special_tokens=False)["input_ids"])
                                             for x in train["prompt"])

    def spec(self, label: str, **params):
        """The suite's spec for `label`, with parameters (`per_device_train_batch_size`, `precompute_ref_log_probs`,
        `max_steps` of the budget, the world's `gradient_checkpointing`) replaced."""
        import dataclasses

        spec = self.specs[label]
        world = spec.world
        budget = spec.budget
        if "gradient_checkpointing" in params:
            world = dataclasses.replace(world, gradient_checkpointing=params.pop("gradient_checkpointing"))
        if "max_steps" in params:
            budget = dataclasses.replace(budget, max_steps=params.pop("max_steps"))
        merged = dict(spec.params)
        merged.update(params)
        return dataclasses.replace(spec, params=tuple(sorted(merged.items())), world=world, budget=budget)

    def ctx(self, spec, curves, tag: str):
        from bench.algorithms.base import RunContext
        from bench.budget import ComputeMeter

        run_dir = self.work / "runs" / tag
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        meter = ComputeMeter(spec.budget.kind, spec.budget.amount)
        return RunContext(spec=spec, world=self.world, run_dir=run_dir, meter=meter, device=self.device,
                          stages=self.stages, curves=curves)

    # ---- bench: the registered adapter itself
    def bench_run(self, spec, warmup: int) -> dict:
        from bench.algorithms.registry import get_algorithm
        from bench.execute import _seed_everything

        _seed_everything(spec.seed)
        timer = StepTimer(self.device)
        ctx = self.ctx(spec, timer, f"bench-{spec.label}")
        timer.meter = ctx.meter
        generations: list = []
        timer.baseline_mb = reset_cuda_peak(self.device)
        try:
            with generation_timer(self.device, generations) if spec.algorithm == "ppo_trl" else contextlib.nullcontext():
                outcome = get_algorithm(spec.algorithm)().train(ctx)
        finally:
            ctx.meter.detach()
        out = timer.summary(warmup)
        out.update(trainer_steps=outcome.steps, stop_reason=outcome.stop_reason,
                   meter_flops_by_component=dict(ctx.meter.by_component),
                   meter_tokens_by_component=dict(ctx.meter.tokens))
        if generations:
            out["generation"] = generation_summary(generations, warmup)
        shutil.rmtree(ctx.run_dir, ignore_errors=True)
        free(self.device)
        return out

    # ---- bare TRL: the same trainer and arguments, no meter, no budget callback
    def bare_args(self, spec, config_cls, rows: int, **kwargs):
        from bench.algorithms import trl_common as tc

        ctx = self.ctx(spec, None, f"bare-{spec.label}")
        args, _ = tc.training_args(ctx, config_cls, rows=rows, step_flops=None, **kwargs)
        return args, ctx

    def bare_offline(self, spec, warmup: int, meter=None, flop_counter=None) -> dict:
        """Bare TRL DPOTrainer (dpo) or CPOTrainer (simpo) with bench's arguments. `meter`: attach it as the adapter
        does (FLOP-counter check); `flop_counter`: a FlopCounterMode to train under."""
        from bench.algorithms import trl_common as tc
        from bench.algorithms.registry import get_algorithm
        from bench.modeling import load_causal_lm
        from bench.execute import _seed_everything

        _seed_everything(spec.seed)
        p = spec.param_dict
        baseline = reset_cuda_peak(self.device)
        train = self.world.load_pairs("train")
        policy = load_causal_lm(self.world.base_model_dir, self.device).train()
        if spec.algorithm == "dpo":
            from trl import DPOConfig, DPOTrainer

            ref = None if p["precompute_ref_log_probs"] else load_causal_lm(self.world.base_model_dir, self.device)
            args, ctx = self.bare_args(spec, DPOConfig, len(train), beta=p["beta"],
                                       precompute_ref_log_probs=p["precompute_ref_log_probs"],
                                       max_length=tc.max_length(self._ctx_for_lengths(spec)),
                                       **get_algorithm("dpo")().loss_kwargs(p))
            make = lambda cbs: DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=train,  # noqa: E731
                                          processing_class=self.tok, callbacks=cbs)
        else:
            from trl.experimental.cpo import CPOConfig, CPOTrainer

            ref = None
            c = self._ctx_for_lengths(spec)
            args, ctx = self.bare_args(spec, CPOConfig, len(train), max_length=tc.max_length(c),
                                       max_completion_length=tc.max_completion_length(c), loss_type="simpo",
                                       cpo_alpha=0.0, beta=p["beta"], simpo_gamma=p["simpo_gamma"])
            make = lambda cbs: CPOTrainer(model=policy, args=args, train_dataset=train,  # noqa: E731
                                          processing_class=self.tok, callbacks=cbs)
        if meter is not None:
            tc.attach(meter, policy, "policy")
            if ref is not None:
                tc.attach(meter, ref, "reference")
        timer = StepTimer(self.device, meter)
        timer.baseline_mb = baseline
        trainer = tc.quiet(make([timer.callback()]))
        with flop_counter if flop_counter is not None else contextlib.nullcontext():
            trainer.train()
        out = timer.summary(warmup)
        out.update(activation_checkpointing=bool(args.activation_checkpointing), bf16=bool(args.bf16),
                   per_device_train_batch_size=args.per_device_train_batch_size, max_length=args.max_length)
        if meter is not None:
            meter.detach()
        del trainer, policy, ref
        shutil.rmtree(ctx.run_dir, ignore_errors=True)
        free(self.device)
        return out

    def bare_ppo(self, spec, warmup: int) -> dict:
        """Bare TRL 1.12 PPOTrainer, set up as the removed `ppo_trl` adapter did (same arguments, models, reward model);
        trl 1.13 removed the trainer, so section_ppo_throughput skips this comparison on the pinned trl."""
        from datasets import Dataset
        from trl.experimental.ppo import PPOConfig, PPOTrainer

        from bench.algorithms import trl_common as tc
        from bench.algorithms.reward_model import rm_settings
        from bench.modeling import load_causal_lm, load_scalar_model, load_tokenizer
        from bench.execute import _seed_everything

        _seed_everything(spec.seed)
        p = spec.param_dict
        rm_dir, _ = self.stages.reward_model(rm_settings(p))  # the one bench's run trained (memoised)
        tok = load_tokenizer(self.world.tokenizer_dir)
        tok.padding_side = "left"
        prompts = list(self.world.load_pairs("train")["prompt"])
        train = Dataset.from_dict({"input_ids": [tok(x, add_special_tokens=False)["input_ids"] for x in prompts]})
        baseline = reset_cuda_peak(self.device)
        policy = load_causal_lm(self.world.base_model_dir, self.device).train()
        ref = load_causal_lm(self.world.base_model_dir, self.device)
        reward = load_scalar_model(rm_dir, self.device).eval()
        value = load_scalar_model(rm_dir, self.device)
        b = p["per_device_train_batch_size"] * p["gradient_accumulation_steps"]
        args, ctx = self.bare_args(
            spec, PPOConfig, len(train), margin=3.0, kl_coef=p["kl_coef"], num_ppo_epochs=p["num_ppo_epochs"],
            num_mini_batches=p["num_mini_batches"], cliprange=p["cliprange"], vf_coef=p["vf_coef"],
            missing_eos_penalty=p["missing_eos_penalty"], response_length=p["response_length"], stop_token="eos",
            temperature=1.0, num_sample_generations=0, local_rollout_forward_batch_size=b)
        args.total_episodes = b * args.max_steps
        timer = StepTimer(self.device)
        timer.baseline_mb = baseline
        trainer = tc.quiet(PPOTrainer(args=args, processing_class=tok, model=policy, ref_model=ref,
                                      reward_model=reward, value_model=value, train_dataset=train,
                                      eval_dataset=None, callbacks=[timer.callback()]))
        generations: list = []
        with generation_timer(self.device, generations), contextlib.redirect_stdout(sys.stderr):
            trainer.train()
        out = timer.summary(warmup)
        out["generation"] = generation_summary(generations, warmup)
        del trainer, policy, ref, reward, value
        shutil.rmtree(ctx.run_dir, ignore_errors=True)
        free(self.device)
        return out

    def _ctx_for_lengths(self, spec):
        from types import SimpleNamespace

        return SimpleNamespace(world=self.world, spec=spec)


def generation_summary(records: list, warmup: int) -> dict:
    kept = records[warmup:] or records
    seconds = sum(r["seconds"] for r in kept)
    tokens = sum(r["new_tokens"] for r in kept)
    return {"calls": len(records), "calls_timed": len(kept), "new_tokens": tokens, "seconds": seconds,
            "generated_tokens_per_s": tokens / seconds if seconds > 0 else None,
            "rows_per_call": kept[0]["rows"] if kept else None}


def bf16_peak(device, override_tflops: float | None) -> tuple[float | None, str]:
    if override_tflops:
        return override_tflops * 1e12, "--peak-tflops"
    if not str(device).startswith("cuda"):
        return None, "no GPU: MFU not defined"
    import torch

    name = torch.cuda.get_device_name(0)
    for key, peak in BF16_PEAK:
        if key in name:
            return peak, f"dense bf16 peak of {key} (data sheet)"
    return None, f"unknown GPU {name!r}: pass --peak-tflops"


# ------------------------------------------------------------------------------------------------ sections
def section_offline_throughput(b: Bench, shape: dict, peak: float | None, label: str) -> dict:
    """DPO or SimPO: bench's adapter vs the bare TRL trainer, alternating, the faster repeat of each kept."""
    tokens_per_step = shape["batch"] * b.pair_tokens
    spec = b.spec(label, max_steps=shape["steps"] + shape["warmup"])
    runs: dict[str, list] = {"bare_trl": [], "bench": []}
    for r in range(shape["repeats"]):  # alternating order: bare, bench, bench, bare, ...
        for who in (("bare_trl", "bench") if r % 2 == 0 else ("bench", "bare_trl")):
            runs[who].append(b.bare_offline(spec, shape["warmup"]) if who == "bare_trl"
                             else b.bench_run(spec, shape["warmup"]))
    best = {who: min(rs, key=lambda x: x["step_s_median"] or float("inf")) for who, rs in runs.items()}
    bare, ours = best["bare_trl"], best["bench"]
    rec = {"bare_trl": bare, "bench": ours, "per_device_train_batch_size": shape["batch"],
           "pair_tokens_mean": b.pair_tokens, "tokens_per_step": tokens_per_step, "repeats": shape["repeats"],
           "step_s_median_by_repeat": {who: [x["step_s_median"] for x in rs] for who, rs in runs.items()}}
    for who in ("bare_trl", "bench"):
        s = rec[who]["step_s_median"]
        rec[who]["tokens_per_s"] = tokens_per_step / s if s else None
        f = ours["meter_flops_per_step"]  # the same work either way: bench's meter counts it
        rec[who]["mfu"] = f / (s * peak) if (f and s and peak) else None
    rec["bench_over_bare_throughput"] = ratio(ours["tokens_per_s"], bare["tokens_per_s"])
    return rec


def section_ppo_throughput(b: Bench, shape: dict, peak: float | None) -> dict:
    from bench.algorithms.registry import all_algorithms

    if "ppo_trl" not in all_algorithms():  # issue 26: TRL's PPOTrainer is gone (trl >= 1.13), nothing to compare
        return {"skipped": "TRL's PPOTrainer (the bare-TRL side of this comparison) was removed in trl 1.13"}
    ppo = shape["ppo"]
    spec = b.spec("ppo_trl", max_steps=ppo["steps"] + ppo["warmup"])  # TRL's adapter against bare TRL
    ours = b.bench_run(spec, ppo["warmup"])  # first: trains (and caches) the reward model bare PPO reuses
    bare = b.bare_ppo(spec, ppo["warmup"])
    rec = {"bare_trl": bare, "bench": ours, "episodes_per_step": ppo["batch"], "prompt_tokens_mean": b.prompt_tokens,
           "response_length": ppo["response_length"], "num_ppo_epochs": ppo["num_ppo_epochs"],
           "num_mini_batches": ppo["num_mini_batches"]}
    for who in ("bare_trl", "bench"):
        s = rec[who]["step_s_median"]
        rec[who]["episodes_per_s"] = ppo["batch"] / s if s else None
        f = ours["meter_flops_per_step"]
        rec[who]["mfu"] = f / (s * peak) if (f and s and peak) else None
    rec["bench_over_bare_throughput"] = ratio(ours["episodes_per_s"], bare["episodes_per_s"])
    rec["bench_over_bare_generation"] = ratio(ours["generation"]["generated_tokens_per_s"],
                                              bare["generation"]["generated_tokens_per_s"])
    return rec


def section_memory(b: Bench, shape: dict) -> dict:
    rows = []
    for checkpointing in (False, True):
        for batch in shape["memory_batches"]:
            pair = {}
            for precompute in (False, True):
                spec = b.spec("dpo", per_device_train_batch_size=batch, precompute_ref_log_probs=precompute,
                              gradient_checkpointing=checkpointing, max_steps=shape["memory_steps"])
                try:
                    r = b.bare_offline(spec, 0)
                except Exception as exc:  # e.g. out of memory: record it, measure the rest
                    free(b.device)
                    rows.append({"batch": batch, "gradient_checkpointing_requested": checkpointing,
                                 "reference": "precompute" if precompute else "in_loop", "peak_mb": None,
                                 "error": f"{type(exc).__name__}: {exc}"[:300]})
                    pair[precompute] = (None, None)
                    continue
                peak = max((x for x in (r["init_peak_mb"], r["train_peak_mb"]) if x is not None), default=None)
                pair[precompute] = (peak, r["train_peak_mb"])
                rows.append({"batch": batch, "gradient_checkpointing_requested": checkpointing,
                             "activation_checkpointing": r["activation_checkpointing"], "bf16": r["bf16"],
                             "reference": "precompute" if precompute else "in_loop", "peak_mb": peak,
                             "init_peak_mb": r["init_peak_mb"], "train_peak_mb": r["train_peak_mb"],
                             "allocated_before_mb": r["allocated_before_mb"],
                             "step_s_median": r["step_s_median"]})
            rows[-1]["precompute_over_in_loop"] = ratio(pair[True][0], pair[False][0])
            rows[-1]["precompute_over_in_loop_train"] = ratio(pair[True][1], pair[False][1])
    return {"rows": rows, "steps": shape["memory_steps"],
            "note": "torch.cuda.max_memory_allocated; init = model loads + TRL's reference precompute pass; "
                    "fp32 master weights (bench.modeling.load_causal_lm), bf16 autocast, AdamW"}


def section_flop_counter(b: Bench) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from bench.budget import ComputeMeter

    spec = b.spec("dpo", gradient_checkpointing=False, max_steps=1, precompute_ref_log_probs=False)
    meter = ComputeMeter()
    counter = FlopCounterMode(display=False)
    r = b.bare_offline(spec, 0, meter=meter, flop_counter=counter)
    counted = float(counter.get_total_flops())
    by_op = {str(op): float(v) for op, v in counter.get_flop_counts().get("Global", {}).items()}
    return {"meter_flops": meter.flops, "meter_flops_by_component": dict(meter.by_component),
            "meter_tokens": int(sum(meter.tokens.values())), "flop_counter_flops": counted,
            "flop_counter_by_op": by_op, "meter_over_flop_counter": ratio(meter.flops, counted),
            "steps": r["steps"], "activation_checkpointing": r["activation_checkpointing"],
            "note": "one DPO step (policy forward+backward, reference forward); the meter is 2N/6N per non-padding "
                    "token (Kaplan), the counter counts every matmul/attention op on padded tensors"}


def section_e2e(device, work: Path, cache: Path, tiny: bool, shape: dict) -> dict:
    from bench.cli import main as bench_main

    vocab = shape["model"]["vocab_size"]
    assets = work / "e2e-assets"
    tok = write_tokenizer(assets / "tokenizer", vocab)
    write_model(assets / "policy", tok, {**E2E_MODEL, "vocab_size": vocab}, str(device))
    write_model(assets / "judge", tok, {**E2E_MODEL, "vocab_size": vocab}, str(device), scalar=True)
    prompt, completion = (16, 12) if tiny else (128, 64)
    write_pairs(assets / "pairs", 32, 24, prompt, completion, vocab, seed=1)
    algorithms = ("sft", "dpo") if tiny else ("sft", "dpo", "simpo", "ppo")
    ppo = dict(batch=4, num_ppo_epochs=1, num_mini_batches=1, response_length=8)
    suite = work / "e2e.toml"
    suite.write_text(suite_text("gpu-e2e", assets / "policy", assets / "judge", assets / "pairs",
                                prompt_tokens=prompt, completion_tokens=completion, batch=4, max_steps=2,
                                max_train_rows=32, heldout=8, eval_prompts=8, ppo=ppo, flops=1e15,
                                algorithms=algorithms))
    results = work / "e2e-results"
    t = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        code = bench_main(["run", str(suite), "--results", str(results), "--cache-dir", str(cache),
                           "--device", str(device), "--no-report"])
    seconds = time.perf_counter() - t
    runs = {}
    for metrics in sorted((results / "gpu-e2e" / "runs").glob("*/metrics.json")):
        m = json.loads(metrics.read_text())
        config = json.loads((metrics.parent / "config.json").read_text())
        runs[config["label"]] = {"status": m.get("status"), "error": m.get("error"), "steps": m.get("steps"),
                                 "flops": m.get("flops"), "peak_mem_mb": m.get("peak_mem_mb"),
                                 "train_s": m.get("train_s"), "eval_s": m.get("eval_s"), "curve_s": m.get("curve_s"),
                                 "device": config["provenance"]["device"]["device"]}
    return {"exit_code": code, "seconds": seconds, "algorithms": list(algorithms), "runs": runs,
            "all_finished": code == 0 and len(runs) == len(algorithms) and
            all(r["status"] == "finished" for r in runs.values())}


def section_pytest_gpu(timeout: int) -> dict:
    t = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests/test_gpu.py"], cwd=ROOT,
                             capture_output=True, text=True, timeout=timeout)
        tail = (out.stdout + out.stderr).strip().splitlines()
        return {"exit_code": out.returncode, "last_line": tail[-1] if tail else "", "seconds": time.perf_counter() - t}
    except subprocess.TimeoutExpired:
        return {"exit_code": None, "last_line": f"timed out after {timeout} s", "seconds": time.perf_counter() - t}


def ratio(a, b):
    return a / b if (a is not None and b) else None


# ------------------------------------------------------------------------------------------------ main
def device_record(device) -> dict:
    import torch

    from bench.provenance import provenance

    rec = provenance(device)
    rec["torch_cuda"] = torch.version.cuda
    if str(device).startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        rec["gpu"] = {"name": props.name, "memory_mb": props.total_memory / 2**20,
                      "capability": f"{props.major}.{props.minor}", "sm_count": props.multi_processor_count}
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="tiny model and lengths (CPU smoke mode, for CI)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present) | cuda | cpu")
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/gpu-<device>.json)")
    p.add_argument("--work-dir", default=None, help="scratch folder (default: a temporary one, removed)")
    p.add_argument("--cache-dir", default=None, help="bench cache for the worlds (default: inside the work dir)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for MFU")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: "
                                              "throughput_dpo,throughput_simpo,throughput_ppo,memory,"
                                              "flop_counter,e2e,pytest_gpu")
    p.add_argument("--pytest-timeout", type=int, default=180)
    p.add_argument("--time-limit", type=float, default=540.0, help="seconds: sections not started by then are "
                                                                     "skipped (recorded), so one command fits ~10 min")
    a = p.parse_args(argv)
    for key, value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("TRANSFORMERS_VERBOSITY", "error"),
                       ("HF_DATASETS_DISABLE_PROGRESS_BARS", "1"), ("HF_HUB_DISABLE_PROGRESS_BARS", "1"),
                       ("BENCH_QUIET", "1"), ("TOKENIZERS_PARALLELISM", "false")):
        os.environ.setdefault(key, value)
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    from bench.modeling import pick_device

    t_start = time.perf_counter()
    device = pick_device(a.device)
    if a.tiny and not str(device).startswith("cuda"):
        torch.set_num_threads(1)  # a tiny model gains nothing from threads; shared CI cores lose a lot to them
    on_gpu = str(device).startswith("cuda")
    shape = TINY if a.tiny else FULL
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    tag = ("tiny-" if a.tiny else "") + (torch.cuda.get_device_name(0).replace(" ", "-") if on_gpu else "cpu")
    out_path = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"gpu-{tag}.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    work = Path(a.work_dir) if a.work_dir else Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    cache = Path(a.cache_dir) if a.cache_dir else work / "cache"
    peak, peak_note = bf16_peak(device, a.peak_tflops)
    result = {"benchmark": "benchmarks/gpu.py", "mode": "tiny" if a.tiny else "full", "device": str(device),
              "device_name": torch.cuda.get_device_name(0) if on_gpu else "cpu", "bf16_peak_flops": peak,
              "bf16_peak_note": peak_note, "provenance": device_record(device),
              "config": {k: v for k, v in shape.items()}, "seconds": {}, "errors": {}}

    def save() -> None:
        result["seconds"]["total"] = time.perf_counter() - t_start
        out_path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")

    def run(name: str, fn) -> None:
        if name in skip:
            result[name] = None
            return
        if time.perf_counter() - t_start > a.time_limit:
            result[name] = None
            result["errors"][name] = f"not started: --time-limit {a.time_limit:g} s reached"
            save()
            return
        t = time.perf_counter()
        print(f"[gpu.py] {name} ...", file=sys.stderr, flush=True)
        try:
            result[name] = fn()
        except Exception as exc:  # one failing section does not lose the others
            result[name] = None
            result["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        result["seconds"][name] = time.perf_counter() - t
        print(f"[gpu.py] {name}: {result['seconds'][name]:.1f} s", file=sys.stderr, flush=True)
        save()

    try:
        t = time.perf_counter()
        b = Bench(shape, device, work, cache, a.tiny)
        result["seconds"]["setup"] = time.perf_counter() - t
        result["model"] = {"architecture": "LlamaForCausalLM, Qwen2.5-0.5B shape (random weights)",
                           "parameters": b.n_params, **shape["model"],
                           "tokenizer": f"word-level, {len(b.tok)} entries (local)",
                           "pair_tokens_mean": b.pair_tokens, "prompt_tokens_mean": b.prompt_tokens}
        save()
        run("throughput_dpo", lambda: section_offline_throughput(b, shape, peak, "dpo"))
        run("throughput_simpo", lambda: section_offline_throughput(b, shape, peak, "simpo"))
        run("throughput_ppo", lambda: section_ppo_throughput(b, shape, peak))
        run("memory", lambda: section_memory(b, shape))
        run("flop_counter", lambda: section_flop_counter(b))
        run("e2e", lambda: section_e2e(device, work, cache, a.tiny, shape))
        if on_gpu:
            left = a.time_limit + 60 - (time.perf_counter() - t_start)
            run("pytest_gpu", lambda: section_pytest_gpu(int(max(30, min(a.pytest_timeout, left)))))
        else:
            result["pytest_gpu"] = None  # tests/test_gpu.py skips without CUDA
        result["summary"] = summary(result)
        save()
    finally:
        if not a.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result["summary"], indent=2), flush=True)
    print(f"[gpu.py] wrote {out_path} in {time.perf_counter() - t_start:.1f} s", file=sys.stderr)
    return 0 if not result["errors"] else 1


def summary(r: dict) -> dict:
    """The headline ratios (None where a section was skipped or failed)."""
    s: dict = {}
    for label in ("dpo", "simpo", "ppo"):
        tp = r.get(f"throughput_{label}") or {}
        s[f"{label}_bench_over_bare_throughput"] = tp.get("bench_over_bare_throughput")
        s[f"{label}_mfu_bench"] = (tp.get("bench") or {}).get("mfu")
        unit = "episodes_per_s" if label == "ppo" else "tokens_per_s"
        s[f"{label}_{unit}_bench"] = (tp.get("bench") or {}).get(unit)
        s[f"{label}_{unit}_bare_trl"] = (tp.get("bare_trl") or {}).get(unit)
    gen = ((r.get("throughput_ppo") or {}).get("bench") or {}).get("generation") or {}
    s["ppo_generated_tokens_per_s_bench"] = gen.get("generated_tokens_per_s")
    mem = r.get("memory") or {}
    s["memory_precompute_over_in_loop"] = {f"batch{x['batch']}_ckpt{int(x['gradient_checkpointing_requested'])}":
                                           x["precompute_over_in_loop"] for x in mem.get("rows", [])
                                           if "precompute_over_in_loop" in x}
    fc = r.get("flop_counter") or {}
    s["meter_over_flop_counter"] = fc.get("meter_over_flop_counter")
    e2e = r.get("e2e") or {}
    s["e2e_all_finished"] = e2e.get("all_finished")
    s["pytest_gpu_exit_code"] = (r.get("pytest_gpu") or {}).get("exit_code")
    return s


if __name__ == "__main__":
    sys.exit(main())
