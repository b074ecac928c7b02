"""The Hub world, offline on CPU: a tiny local chat model (Llama config, word-level tokenizer, jinja chat template)
and judge written by the test, an UltraFeedback-shaped conversational fixture with malformed rows, then the
builder (TRL format, drop counts, caching), the offline errors, and `suites/ultrafeedback.toml` end to end
through `--set` overrides."""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.suite import load_suite

ROOT = Path(__file__).resolve().parent.parent
SUITE = ROOT / "suites" / "ultrafeedback.toml"
SMOKE = ROOT / "suites" / "ultrafeedback-smoke.toml"

SPECIALS = ["<pad>", "<unk>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
WORDS = ("tell me about the a an of to and is are it this that what why how please write explain short long "
         "story poem cat dog tree river city sun moon rain code list idea plan good bad great fine very not "
         "really yes no maybe here there because so then first next last thanks sure okay word reply answer "
         "question simple clear kind brief").split()
TEMPLATE = ("{% for m in messages %}{{ '<|' + m['role'] + '|> ' + m['content'] + ' <|end|> ' }}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|assistant|> ' }}{% endif %}")

MALFORMED = {"missing_rejected": 1, "empty_completion": 1, "identical_completions": 1, "prompt_mismatch": 1,
             "last_turn_not_assistant": 1}
FILTERED = {"prompt_too_long": 1, "completion_too_long": 1}
N_TRAIN, N_TEST = 40, 16


# ------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network: huggingface_hub and datasets read HF_HUB_OFFLINE at import time, so patch their flags too."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("BENCH_QUIET", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)


def write_tokenizer(path: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(SPECIALS + WORDS)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|end|>", pad_token="<pad>", unk_token="<unk>",
                                  additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"])
    tok.chat_template = TEMPLATE
    tok.save_pretrained(str(path))
    return tok


def write_models(root: Path) -> tuple[Path, Path]:
    """A 2-layer, 32-wide Llama chat model and a sequence-classification judge from the same config."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    tok = write_tokenizer(root / "tok")
    cfg = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
               eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(0)
    model_dir, judge_dir = root / "tiny-chat", root / "tiny-judge"
    LlamaForCausalLM(LlamaConfig(**cfg)).save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    LlamaForSequenceClassification(LlamaConfig(**cfg, num_labels=1)).save_pretrained(str(judge_dir))
    tok.save_pretrained(str(judge_dir))
    return model_dir, judge_dir


def sentence(rng: random.Random, lo: int, hi: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


def uf_row(rng: random.Random, i: int, prompt: str | None = None) -> dict:
    """One row shaped like HuggingFaceH4/ultrafeedback_binarized."""
    prompt = prompt or f"{sentence(rng, 3, 8)} {WORDS[i % len(WORDS)]}"
    chosen, rejected = sentence(rng, 2, 9), sentence(rng, 2, 9)
    while rejected == chosen:
        rejected = sentence(rng, 2, 9)
    conv = lambda reply: [{"role": "user", "content": prompt}, {"role": "assistant", "content": reply}]  # noqa: E731
    return {"prompt": prompt, "prompt_id": f"p{i}", "chosen": conv(chosen), "rejected": conv(rejected),
            "messages": conv(chosen), "score_chosen": float(rng.randint(6, 10)), "score_rejected": 5.0}


def bad_rows(rng: random.Random) -> list[dict]:
    rows = []
    r = uf_row(rng, 1000)
    r["rejected"] = None                                   # missing field
    rows.append(r)
    r = uf_row(rng, 1001)
    r["chosen"][-1]["content"] = "   "                     # empty completion
    rows.append(r)
    r = uf_row(rng, 1002)
    r["rejected"] = json.loads(json.dumps(r["chosen"]))    # chosen == rejected
    rows.append(r)
    r = uf_row(rng, 1003)
    r["rejected"][0]["content"] = "a different prompt"     # the two conversations disagree on the prompt
    rows.append(r)
    r = uf_row(rng, 1004)
    r["chosen"][-1]["role"] = "user"                       # last turn is not the assistant's
    rows.append(r)
    rows.append(uf_row(rng, 1005, prompt=" ".join(["word"] * 80)))  # prompt over max_prompt_tokens
    r = uf_row(rng, 1006)
    r["chosen"][-1]["content"] = " ".join(["reply"] * 60)  # completion over max_completion_tokens
    rows.append(r)
    return rows


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub_assets")
    model_dir, judge_dir = write_models(root)
    rng = random.Random(0)
    data = root / "uf"
    data.mkdir()
    train = [uf_row(rng, i) for i in range(N_TRAIN)] + bad_rows(rng)
    rng.shuffle(train)
    test = [uf_row(rng, 100 + i) for i in range(N_TEST)] + [train[0]]  # one training prompt leaks into test
    for name, rows in (("train_prefs", train), ("test_prefs", test)):
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    single = root / "standard.jsonl"  # standard (plain-text) format in one file
    std = [{"prompt": sentence(rng, 3, 8), "chosen": sentence(rng, 2, 6), "rejected": sentence(rng, 2, 6)}
           for _ in range(60)]
    single.write_text("".join(json.dumps(r) + "\n" for r in std if r["chosen"] != r["rejected"]), encoding="utf-8")
    return {"root": root, "model": model_dir, "judge": judge_dir, "data": data, "single": single}


def hub_config(assets, **overrides):
    from bench.worlds.hub import HubWorldConfig

    settings = dict(model=str(assets["model"]), judge=str(assets["judge"]), dataset=str(assets["data"]),
                    max_heldout_pairs=8, eval_prompts=12, max_prompt_tokens=40, max_completion_tokens=24)
    settings.update(overrides)
    return HubWorldConfig(**settings)


@pytest.fixture(scope="module")
def built(assets, tmp_path_factory):
    from bench.worlds.hub.build import build_hub_world

    cache = tmp_path_factory.mktemp("hub_cache")
    t = time.perf_counter()
    world = build_hub_world(hub_config(assets), cache)
    return {"world": world, "cache": cache, "seconds": time.perf_counter() - t}


# ---------------------------------------------------------------------------------------------------- tests
def test_suites_validate_and_register_the_hub_kind(capsys):
    for path in (SUITE, SMOKE):
        assert main(["validate", str(path)]) == 0
    suite = load_suite(SUITE)
    assert suite.world.kind == "hub" and suite.world.bf16 and suite.world.gradient_checkpointing
    assert {e.label for e in suite.entries} >= {"dpo", "ipo", "cdpo", "simpo", "orpo", "ppo", "online_dpo", "sft",
                                               "best_of_n"}
    simpo = dict(next(e for e in suite.entries if e.label == "simpo").grid)
    assert simpo["simpo_gamma"] == (pytest.approx(0.55 * simpo["beta"][0]),)
    assert main(["list"]) == 0
    assert "hub" in capsys.readouterr().out


def test_dry_run_estimates_from_a_local_model(assets, capsys):
    code = main(["run", str(SUITE), "--dry-run", "--set", f"world.model={assets['model']}"])
    out = capsys.readouterr().out
    assert code == 0 and "world hub (policy ≈ 0.02M parameters" in out
    assert all(label in out for label in ("dpo_s0", "ppo_s0", "simpo_s0", "best_of_n_s0"))


def test_world_settings_are_validated(tmp_path, capsys):
    code = main(["validate", str(SUITE), "--set", "world.model=", "--set", "world.chat_template=sometimes"])
    err = capsys.readouterr().err
    assert code == 2 and "[world].chat_template" in err and "traceback" not in err.lower()
    code = main(["validate", str(SUITE), "--set", "world.model=", "--set", "world.test_split=train_prefs"])
    err = capsys.readouterr().err
    assert code == 2 and "[world].model" in err and "[world].test_split" in err


def test_pairs_are_in_trl_format_with_the_chat_template(built):
    world = built["world"]
    train, heldout = world.load_pairs("train"), world.load_pairs("heldout")
    assert len(train) == N_TRAIN and len(heldout) == 8
    for row in list(train) + list(heldout):
        # the prompt conversation rendered by TRL's apply_chat_template, generation prompt included ...
        assert row["prompt"].startswith("<|user|> ") and row["prompt"].endswith(" <|end|> <|assistant|> ")
        # ... and the completions are the assistant texts: TRL appends the end token itself
        assert "<|" not in row["chosen"] and "<|" not in row["rejected"] and row["chosen"] != row["rejected"]
        assert row["score_chosen"] > row["score_rejected"]
    assert not set(heldout["prompt"]) & set(train["prompt"])
    assert len(world.eval_prompts) == 12 and not set(world.eval_prompts) & set(train["prompt"])
    assert not world.info["warnings"], world.info["warnings"]


def test_malformed_and_filtered_rows_are_counted_and_excluded(built):
    info = built["world"].info
    rec = info["pairs"]["train"]
    assert rec["malformed"] == MALFORMED
    assert rec["filtered"] == FILTERED
    assert rec["scanned"] == N_TRAIN + len(MALFORMED) + len(FILTERED) and rec["kept"] == N_TRAIN
    assert info["pairs"]["heldout"]["filtered"].get("prompt_in_train", 0) <= 1
    train = built["world"].load_pairs("train")
    assert not any("a different prompt" in p or "word word word" in p for p in train["prompt"])
    assert not any(c.strip() == "" or "reply reply" in c for c in train["chosen"])


def test_tokenizer_model_judge_and_provenance(built, assets):
    from transformers import AutoTokenizer

    world = built["world"]
    tok = AutoTokenizer.from_pretrained(str(world.tokenizer_dir))
    assert tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id and tok.padding_side == "left"
    assert tok.chat_template
    assert world.base_model_dir == assets["model"].resolve()
    info = world.info
    assert info["judge_dir"] == str(assets["judge"].resolve())
    assert info["dataset"]["format"] == "conversational"
    assert all(str(info["revisions"][k]).startswith("local:") for k in ("model", "dataset", "judge"))
    assert info["model"]["source"] == "local" and info["judge"]["architectures"] == ["LlamaForSequenceClassification"]
    assert json.loads((world.root / "world.json").read_text())["key"] == world.key


def test_a_pad_token_equal_to_eos_is_replaced(assets, tmp_path):
    """The harness's sampler treats the pad id as 'no token': a tokenizer whose pad is its eos gets a spare one."""
    import shutil

    from transformers import AutoTokenizer

    from bench.worlds.hub.build import prepare_tokenizer
    from bench.worlds.hub.sources import resolve_pretrained

    model = tmp_path / "pad-is-eos"
    shutil.copytree(assets["model"], model)
    tok = AutoTokenizer.from_pretrained(str(model))
    tok.pad_token = tok.eos_token
    tok.save_pretrained(str(model))
    _, record = prepare_tokenizer(resolve_pretrained(str(model), None, "[world].model"), tmp_path)
    saved = AutoTokenizer.from_pretrained(str(tmp_path / "tokenizer"))
    assert record["pad_token_original"] == "<|end|>" and record["pad_token"] == saved.pad_token == "<unk>"
    assert saved.pad_token_id != saved.eos_token_id and saved.padding_side == "left"


def test_second_build_is_a_cache_hit(built, assets):
    from bench.worlds.hub.build import build_hub_world

    t = time.perf_counter()
    again = build_hub_world(hub_config(assets), built["cache"])
    assert again.info["cache_hit"] and not built["world"].info["cache_hit"]
    assert again.key == built["world"].key and again.root == built["world"].root
    assert time.perf_counter() - t < 5.0
    other = build_hub_world(hub_config(assets, max_completion_tokens=30), built["cache"])
    assert other.key != built["world"].key and not other.info["cache_hit"]
    assert not list(Path(built["cache"], "worlds").glob("*.building"))


def test_standard_format_single_file(assets, tmp_path):
    from bench.worlds.hub.build import build_hub_world

    world = build_hub_world(hub_config(assets, dataset=str(assets["single"]), chat_template="always",
                                       test_fraction=0.3, eval_prompts=4, max_heldout_pairs=4), tmp_path)
    train = world.load_pairs("train")
    assert world.info["dataset"]["format"] == "standard"
    assert all(p.startswith("<|user|> ") for p in train["prompt"])
    assert not set(world.eval_prompts) & set(train["prompt"])
    plain = build_hub_world(hub_config(assets, dataset=str(assets["single"]), test_fraction=0.3, eval_prompts=4,
                                       max_heldout_pairs=4), tmp_path)
    assert not any(p.startswith("<|") for p in plain.load_pairs("train")["prompt"])  # "auto": text stays text
    import math
    assert all(math.isnan(x) for x in plain.load_pairs("train")["score_chosen"])


def test_hub_judge_uses_its_own_chat_template(built):
    from transformers import AutoTokenizer

    from bench.worlds.hub.judge import HubJudge

    world = built["world"]
    judge = HubJudge.for_world(world, device="cpu")
    assert HubJudge.for_world(world, device="cpu") is judge  # loaded once per process
    prompt = world.eval_prompts[0]
    tok = AutoTokenizer.from_pretrained(world.info["judge_dir"])
    conversation = json.loads((world.root / "prompt_messages.json").read_text())[prompt]
    text = tok.apply_chat_template(conversation + [{"role": "assistant", "content": "good reply"}], tokenize=False)
    assert judge.encode(prompt, "good reply") == tok(text, add_special_tokens=False)["input_ids"]
    scores = judge.score(list(world.eval_prompts[:5]), ["good reply", "bad", "yes", "no no", "sure"])
    assert scores.shape == (5,) and all(abs(s) < 1e3 for s in scores)


@pytest.mark.parametrize("field,value", [("model", "does-not/exist"), ("judge", "nobody/no-judge"),
                                         ("dataset", "nobody/no-data")])
def test_unavailable_ids_are_one_line_errors(assets, tmp_path, field, value):
    from bench.worlds.hub.build import build_hub_world

    with pytest.raises(UserError) as exc:
        build_hub_world(hub_config(assets, **{field: value}), tmp_path)
    (line,) = exc.value.problems
    assert "\n" not in line and line.startswith(f"[world].{field}: ") and f"'{value}'" in line
    assert "unreachable" in line and "hf download" in line and "local path" in line
    assert not (tmp_path / "worlds").exists() or not list((tmp_path / "worlds").glob("*/world.json"))


def test_missing_local_path_is_a_one_line_error(assets, tmp_path):
    from bench.worlds.hub.build import build_hub_world

    with pytest.raises(UserError, match=r"^\[world\]\.model: no such directory './nope'"):
        build_hub_world(hub_config(assets, model="./nope"), tmp_path)


def overrides(assets, cache: Path) -> list[str]:
    sets = {
        "world.model": assets["model"], "world.judge": assets["judge"], "world.dataset": assets["data"],
        "world.bf16": "false", "world.gradient_checkpointing": "false", "world.max_heldout_pairs": 8,
        "world.eval_prompts": 12, "world.max_prompt_tokens": 40, "world.max_completion_tokens": 24,
        "budget.flops": "3e9", "budget.max_steps": 2, "eval.prompts": 8, "eval.validation_prompts": 4,
        "eval.max_new_tokens": 8, "eval.curve_pairs": 4, "eval.curve_generation_prompts": 4,
        "eval.limit_prompts": 4, "eval.limit_samples": 4, "eval.best_of_n": 2, "eval.bootstrap": 100,
        "eval.lm_eval_tasks": "[]", "train.per_device_train_batch_size": 4, "train.gradient_accumulation_steps": 1,
        "train.learning_rate": "1e-3", "algorithms.simpo.learning_rate": "1e-3",
        "algorithms.orpo.learning_rate": "1e-3", "algorithms.ppo.learning_rate": "1e-3",
        "algorithms.ppo.response_length": 8, "algorithms.ppo.rm_batch_size": 8,
        "algorithms.ppo.rm_learning_rate": "1e-3", "algorithms.online_dpo.max_new_tokens": 8,
        "algorithms.online_dpo.rm_batch_size": 8, "algorithms.online_dpo.rm_learning_rate": "1e-3",
        "algorithms.best_of_n.n": 2,
    }
    out = []
    for key, value in sets.items():
        out += ["--set", f"{key}={value}"]
    return out + ["--cache-dir", str(cache), "--device", "cpu", "--no-report"]


def test_offline_model_error_through_the_cli(assets, tmp_path, capsys):
    results = tmp_path / "results"
    code = main(["run", str(SUITE), *overrides(assets, tmp_path / "cache"), "--set", "world.model=does-not/exist",
                 "--results", str(results), "--only", "dpo"])
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: [world].model: cannot load model 'does-not/exist'"), err
    assert "Traceback" not in err
    assert not list(results.rglob("metrics.json"))  # nothing marked finished


@pytest.fixture(scope="module")
def e2e(assets, tmp_path_factory):
    """suites/ultrafeedback.toml end to end on the tiny model: every algorithm, metrics, summary."""
    import torch

    tmp = tmp_path_factory.mktemp("hub_e2e")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = time.perf_counter()
        code = main(["run", str(SUITE), *overrides(assets, tmp / "cache"), "--results", str(tmp / "results")])
        seconds = time.perf_counter() - t
    finally:
        torch.set_num_threads(threads)
    return {"code": code, "results": tmp / "results" / "ultrafeedback", "seconds": seconds}


@pytest.mark.slow  # long end to end: .ci/run's slow tier runs it (README: test tiers)
def test_end_to_end_every_algorithm(e2e):
    assert e2e["code"] == 0
    results = e2e["results"]
    with open(results / "summary.csv", newline="", encoding="utf-8") as f:
        rows = {r["algorithm"]: r for r in csv.DictReader(f)}
    expected = {"sft", "best_of_n", "dpo", "ipo", "cdpo", "simpo", "orpo", "ppo", "online_dpo"}
    assert set(rows) == expected
    failed = {a: r.get("error") for a, r in rows.items() if r["status"] != "finished"}
    if failed:
        details = []
        for a in failed:
            for tb in results.glob(f"runs/{a}_*/traceback.txt"):
                details.append(f"--- {a}\n" + "\n".join(tb.read_text().splitlines()[-8:]))
        pytest.fail(f"runs failed: {failed}\n" + "\n".join(details))
    for algorithm, row in rows.items():
        assert 0.0 <= float(row["win_rate"]) <= 1.0, algorithm
        assert row["kl"] != "" and row["length"] != ""
        # what a win is made of: the length-controlled win rate for every world; no grammar split without a grammar
        assert 0.0 <= float(row["win_rate_lc"]) <= 1.0, algorithm
        assert row["win_rate_grammar"] == "" and row["win_rate_sentiment"] == "", algorithm
    assert float(rows["sft"]["win_rate"]) == pytest.approx(0.5, abs=0.5)
    world = json.loads((results / "world.json").read_text())
    assert world["kind"] == "hub" and world["pairs"]["train"]["malformed"] == MALFORMED
    for run in (results / "runs").iterdir():
        config = json.loads((run / "config.json").read_text())
        assert config["world"]["model"] == str(config["world"]["model"]) and config["world_key"]
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["status"] == "finished"


def test_end_to_end_report_renders(e2e, tmp_path):
    """The same report as the controlled world: no limits (no known reward), a reward-model judge."""
    assert e2e["code"] == 0
    out = tmp_path / "report"
    assert main(["report", str(e2e["results"]), "--out", str(out)]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "ultrafeedback" in page and "data:image/svg+xml;base64," in page
    for algorithm in ("dpo", "simpo", "orpo", "ppo", "online_dpo"):
        assert algorithm in page


def test_a_data_file_mixing_plain_and_conversational_rows_is_refused(assets, tmp_path):
    """Issue 23: it built as "conversational" and trained on both prompt formats; now one line names the file and
    the counts. The rows share column types (a conversational prompt beside plain-text ones), as a JSON file can."""
    from bench.errors import UserError
    from bench.worlds.hub.build import build_hub_world

    rows = [json.loads(line) for line in assets["single"].read_text().splitlines()]
    for r in rows[: len(rows) // 3]:  # explicit conversational prompt, plain completions (TRL's format)
        r["prompt"] = [{"role": "user", "content": r["prompt"]}]
        r["chosen"] = [{"role": "assistant", "content": r["chosen"]}]
        r["rejected"] = [{"role": "assistant", "content": r["rejected"]}]
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with pytest.raises(UserError) as err:
        build_hub_world(hub_config(assets, dataset=str(mixed), test_fraction=0.3, eval_prompts=4,
                                   max_heldout_pairs=4), tmp_path / "cache")
    (line,) = err.value.problems
    assert "mixes" in line and "conversational rows" in line and "plain-text rows" in line and "mixed.jsonl" in line
