"""Peak memory of one DPO configuration, full fine-tuning vs LoRA, through bench's own adapter path (TRL DPOTrainer).

    python benchmarks/peft_memory.py full|lora [--layers 4 --width 512]   # prints one JSON line

Each configuration runs in its own process (peak RSS = VmHWM, or CUDA's max_memory_allocated on a GPU): a
Llama decoder with random weights (word-level vocabulary of 8,000), 64 synthetic pairs of 64+64 tokens, batch 8,
3 optimizer steps, AdamW. Full fine-tuning holds the policy, a reference copy, gradients and two Adam moments;
LoRA (r = 16 on every linear layer) holds one set of frozen weights and the adapters' gradients and moments.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("full", "lora"))
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--width", type=int, default=512)
    a = ap.parse_args()
    import torch
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import DPOConfig, DPOTrainer

    cuda = torch.cuda.is_available()
    words = [f"w{i}" for i in range(8000)]
    vocab = {t: i for i, t in enumerate(["<pad>", "<unk>", "<eos>"] + words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=a.width, intermediate_size=4 * a.width,
                      num_hidden_layers=a.layers, num_attention_heads=8, num_key_value_heads=8,
                      eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(cfg)
    rng = torch.Generator().manual_seed(0)
    sent = lambda n: " ".join(words[i] for i in torch.randint(0, len(words), (n,), generator=rng).tolist())  # noqa
    data = Dataset.from_list([{"prompt": sent(64), "chosen": sent(64), "rejected": sent(64)} for _ in range(64)])
    peft = None
    ref = None
    if a.mode == "lora":
        from peft import LoraConfig

        peft = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    else:
        ref = LlamaForCausalLM(cfg)
        ref.load_state_dict(model.state_dict())
    args = DPOConfig(output_dir="/tmp/peft_memory", report_to="none", use_cpu=not cuda, bf16=False, max_steps=3,
                     per_device_train_batch_size=8, logging_steps=1, save_strategy="no", disable_tqdm=True,
                     learning_rate=1e-4, max_length=160, activation_checkpointing=False)
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=data, processing_class=tok,
                         peft_config=peft)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else next(
        int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
    n = sum(p.numel() for p in trainer.model.parameters())
    n_train = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    print(json.dumps({"mode": a.mode, "device": "cuda" if cuda else "cpu", "params": n, "trainable": n_train,
                      "peak_mb": round(peak, 1), "train_s": round(seconds, 2)}))


if __name__ == "__main__":
    sys.exit(main())
