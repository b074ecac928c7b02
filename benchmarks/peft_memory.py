"""What LoRA saves in memory for DPO (TRL's DPOTrainer, the path bench's adapters take), full fine-tuning vs LoRA.

    python benchmarks/peft_memory.py [--layers 12 --width 1024 --out benchmarks/results/peft_memory.json]

Each configuration runs in a fresh subprocess (`--one full|lora`), so nothing one leaves in the allocator or the
page cache shows up in the other. Two things are reported per configuration, kept apart on purpose:

(a) model state by count, in bytes, from the tensors themselves: the policy's parameters, the gradients (one per
    trainable parameter), the optimizer state actually held by AdamW after the steps (two moments per trainable
    parameter, plus a step counter), and the reference model's parameters (full DPO: a second copy; LoRA: none, TRL
    uses the adapter-disabled base, checked: `trainer.ref_model is None`);
(b) resident memory measured: `loaded` = RSS after the trainer is built minus RSS before any model exists (the
    weights, and the reference copy for full DPO), and `train_peak` = the highest RSS during `trainer.train()`
    minus the RSS just before it (gradients, optimizer state, activations, allocator slack). The peak is the larger
    of a 5 ms sampler thread's maximum and the kernel's high-water mark (VmHWM, reset through
    /proc/self/clear_refs just before training).

The model is chosen so model state dominates: a Llama decoder with random weights (~176M parameters at the
defaults; float32), short sequences (16-token prompts, 16-token completions), batch 2, 2 optimizer steps, so
activations and the log-softmax over the 8,000-word vocabulary stay in the tens of MB. (A 25M-parameter model at
batch 8 and 160 tokens, as measured before, lets activations and the loading peak hide the difference.)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
MB = 2**20


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def vm_hwm() -> int:
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))


class PeakSampler:
    """The highest RSS seen every `period` seconds while running (the high-water mark alone can be reset only
    process-wide, and sampling shows the peak is not a loading artefact)."""

    def __init__(self, period: float = 0.005):
        self.period, self.peak, self._stop = period, rss(), threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss())
            time.sleep(self.period)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def count_saved_activations(trainer, params) -> dict:
    """Wrap `trainer.compute_loss` so every step records the bytes autograd saves for backward (distinct storages,
    the model's own weights excluded): the activation memory of a step, by count."""
    import torch

    weights = {p.untyped_storage().data_ptr() for p in params}
    record = {"max_bytes": 0}
    original = trainer.compute_loss

    def compute_loss(*args, **kwargs):
        seen: dict[int, int] = {}

        def pack(t):
            storage = t.untyped_storage()
            if storage.data_ptr() not in weights:
                seen[storage.data_ptr()] = storage.nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = original(*args, **kwargs)
        record["max_bytes"] = max(record["max_bytes"], sum(seen.values()))
        return out

    trainer.compute_loss = compute_loss
    return record


def one(mode: str, layers: int, width: int, steps: int, batch: int) -> dict:
    import torch
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import DPOConfig, DPOTrainer

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    words = [f"w{i}" for i in range(8000)]
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<eos>"] + words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    rng = torch.Generator().manual_seed(0)
    sent = lambda n: " ".join(words[i] for i in torch.randint(0, len(words), (n,), generator=rng).tolist())  # noqa
    data = Dataset.from_list([{"prompt": sent(16), "chosen": sent(16), "rejected": sent(16)}
                              for _ in range(batch * steps)])
    gc.collect()
    rss_before_models = rss()

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=width, intermediate_size=int(2.75 * width),
                      num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=16,
                      eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    peft, ref = None, None
    if mode == "lora":
        from peft import LoraConfig

        peft = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    else:
        ref = LlamaForCausalLM(cfg)
        ref.load_state_dict(model.state_dict())
    args = DPOConfig(output_dir="/tmp/peft_memory", report_to="none", use_cpu=True, bf16=False, max_steps=steps,
                     per_device_train_batch_size=batch, logging_steps=1, save_strategy="no", disable_tqdm=True,
                     learning_rate=1e-4, max_length=64, activation_checkpointing=False, dataloader_num_workers=0)
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=data, processing_class=tok,
                         peft_config=peft)
    saved = count_saved_activations(trainer, list(trainer.model.parameters()))
    gc.collect()
    rss_loaded = rss()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    t = time.perf_counter()
    with PeakSampler() as sampler:
        trainer.train()
    seconds = time.perf_counter() - t
    peak = max(sampler.peak, vm_hwm())

    params = list(trainer.model.parameters())
    trainable = [p for p in params if p.requires_grad]
    optimizer_state = [v for state in trainer.optimizer.state.values() for v in state.values()
                       if torch.is_tensor(v)]
    reference = list(trainer.ref_model.parameters()) if trainer.ref_model is not None else []
    state = {
        "params_mb": tensor_bytes(params) / MB,
        "grads_mb": tensor_bytes(trainable) / MB,  # one gradient per trainable parameter, same dtype
        "optimizer_mb": tensor_bytes(optimizer_state) / MB,
        "reference_mb": tensor_bytes(reference) / MB,
    }
    state["total_mb"] = sum(state.values())
    return {
        "mode": mode, "params": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in trainable),
        "reference_model": trainer.ref_model is not None, "model_state": {k: round(v, 1) for k, v in state.items()},
        "activations_saved_mb": round(saved["max_bytes"] / MB, 1),  # by count, the largest step; not model state
        "measured": {"loaded_mb": round((rss_loaded - rss_before_models) / MB, 1),
                     "train_peak_mb": round((peak - rss_loaded) / MB, 1),
                     "peak_over_pre_load_mb": round((peak - rss_before_models) / MB, 1),
                     "process_peak_mb": round(peak / MB, 1)},
        "train_s": round(seconds, 1),
    }


def compare(rows: dict) -> dict:
    """Full vs LoRA: model state by count (the same in every repeat), measured values as the mean of the repeats
    with their range."""
    full, lora = rows["full"], rows["lora"]

    def saving(key_fn):
        fa, la = [key_fn(r) for r in full], [key_fn(r) for r in lora]
        a, b = sum(fa) / len(fa), sum(la) / len(la)
        out = {"full_mb": round(a, 1), "lora_mb": round(b, 1), "saved_mb": round(a - b, 1),
               "ratio": round(a / b, 2) if b else None}
        if len(fa) > 1:
            out["full_range_mb"], out["lora_range_mb"] = [min(fa), max(fa)], [min(la), max(la)]
        return out

    return {
        "model_state": saving(lambda r: r["model_state"]["total_mb"]),
        "measured_train_peak": saving(lambda r: r["measured"]["train_peak_mb"]),
        "measured_peak_over_pre_load": saving(lambda r: r["measured"]["peak_over_pre_load_mb"]),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--one", choices=("full", "lora"), help="run one configuration in this process (internal)")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="fresh processes per configuration")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "peft_memory.json"))
    a = ap.parse_args()
    shape = ["--layers", str(a.layers), "--width", str(a.width), "--steps", str(a.steps), "--batch", str(a.batch)]
    if a.one:
        print(json.dumps(one(a.one, a.layers, a.width, a.steps, a.batch)))
        return 0
    rows = {"full": [], "lora": []}
    for _ in range(a.repeats):
        for mode in ("full", "lora"):  # a fresh interpreter each, alternating (back to back on a shared machine)
            out = subprocess.run([sys.executable, __file__, "--one", mode, *shape], check=True, capture_output=True,
                                 text=True).stdout
            rows[mode].append(json.loads(out.strip().splitlines()[-1]))
            print(json.dumps(rows[mode][-1]), flush=True)
    import peft
    import torch
    import transformers
    import trl

    result = {"setup": {"model": f"Llama, {a.layers} layers, width {a.width}, vocab 8003, float32, random weights",
                        "data": "16-token prompts, 16-token chosen/rejected", "batch": a.batch, "steps": a.steps,
                        "optimizer": "AdamW (adamw_torch_fused, transformers' default)",
                        "lora": "r=16, alpha=32, all-linear",
                        "device": "cpu", "threads": int(os.environ.get("OMP_NUM_THREADS", "1")),
                        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                     "trl": trl.__version__, "peft": peft.__version__}},
              "runs": rows, "saving": compare(rows)}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["saving"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
