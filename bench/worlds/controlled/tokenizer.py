"""Word-level tokenizer for the controlled language, built with `tokenizers`, saved as a transformers fast tokenizer.

Every word of the grammar is one token, so completions, log-probs and lengths are counted in words. The end
token `<eos>` is registered as a special token because TRL appends `tokenizer.eos_token` to completions as
text; padding is on the left (PPO's and generation's collators need it) and `<pad>` is its own id.
No BOS token is declared: TRL's CPO/ORPO prepend one when the tokenizer has it while DPO, PPO and Online DPO
do not, so declaring none keeps every trainer on the same token sequences (`<bos>` stays in the vocabulary,
unused).
"""

from __future__ import annotations

from pathlib import Path

from bench.worlds.controlled.language import EOS, PAD, SPECIAL_TOKENS, UNK, vocabulary


def build_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *vocabulary()])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, pad_token=PAD,
                                  unk_token=UNK, padding_side="left", model_max_length=64)
    return tok


def save_tokenizer(path: Path) -> None:
    build_tokenizer().save_pretrained(str(path))


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))
