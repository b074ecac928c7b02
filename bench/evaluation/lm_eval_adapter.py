"""Alignment tax through lm-eval: run `lm_eval.simple_evaluate` on a saved policy, offline, without printing.

Two pieces:

* `build_controlled_grammar_task(world_root)` writes the controlled world's local lm-eval task
  `controlled_grammar` (a `multiple_choice` task over a JSONL file): the context is the first 3-5 words of a
  held-out review, the two continuations are the true rest of the review and the same words shuffled into an
  order the grammar rejects (`language.is_grammatical`). Both continuations hold the same multiset of words
  (the tokenizer is word-level), so their summed log-likelihoods compare without length normalisation, and
  `acc` (share of docs where the true rest scores higher) measures how well the policy still knows the
  language: chance is 0.5, the base policy scores well above it, and a drop after alignment is the tax.
* `build_controlled_tone_task(world_root)` writes `controlled_tone`, a task the base policy does not saturate:
  a review of a clear tone cut before its last sentiment-bearing adjective; the true rest against the same
  rest with an adjective of the opposite polarity (`_tone_docs`). The grammar task only ranks a review above
  word salad, so it reads ~1.0 for any policy that still emits words of the language; the tone task asks
  whether the policy still models reviews of *both* tones, which a policy that collapsed onto one loses.
* `run_lm_eval(model_dir, tokenizer_dir, tasks, include_path=..., limit=...)` loads the policy from disk, wraps
  it with lm-eval's `HFLM` and returns `{task: {metric: value}}` (numeric metrics only, lm-eval's ",none"
  filter suffix stripped, the standard error as `<metric>_stderr` when lm-eval computed one).
  `summary_score(results)` reduces that to one number (mean over tasks of each task's primary metric).

Pitfalls handled here (lm-eval 0.4.13, transformers 5.x):
* the default `TaskManager()` indexes ~14k YAML files (~19 s on 2 cores); a task found under `include_path`
  is loaded from an index of that folder alone, and the default index is built at most once per process;
* an unknown task name is turned into a one-line `UserError` instead of lm-eval's `ValueError`/`KeyError`;
* `simple_evaluate` seeds Python's, NumPy's and torch's global RNGs by default (and task building draws from
  Python's `random` anyway), and `verbosity=...` installs a log handler on the "lm_eval" logger: we pass no
  seeds (the task is deterministic log-likelihood scoring) and no verbosity, restore the global RNG states
  afterwards, and silence lm-eval's loggers, datasets' progress bars and stray prints for the call only;
* our tokenizer has no BOS token: HFLM then falls back to the EOS token as the log-likelihood prefix, which
  it uses only for an empty context (never the case here); no BOS is added to contexts (`add_bos_token=False`),
  so the token sequences are the ones the policy was trained on (reviews start at position 0);
* a model passed as an object is not moved by HFLM: we load it on `device` ourselves; `max_length` is set from
  the model's `n_positions` (64 for the controlled world) so long contexts are truncated on the left, not
  rejected.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import tempfile
from functools import lru_cache
from pathlib import Path

from bench.errors import UserError

TASK_NAME = "controlled_grammar"
TONE_TASK_NAME = "controlled_tone"
TASK_FORMAT = 1  # bump when the task's construction changes (rebuilds cached task files)
_TEMPLATE = Path(__file__).parent / "lm_eval_tasks" / f"{TASK_NAME}.yaml"
_SHUFFLE_TRIES = 200


# --------------------------------------------------------------------------------------------- the local task
CORRUPTIONS = ("shuffle", "swap")


def _corrupt(words: list[str], context: str, corruption: str, rng: random.Random) -> str | None:
    """The same words in an order the grammar rejects (after `context`), or None when there is none.

    shuffle: a uniformly random permutation, re-drawn until it is ungrammatical (word salad: easy to reject);
    swap: one transposition of two adjacent, different words, drawn among those that break the grammar
          (a minimal corruption: harder, leaves the base policy headroom).
    """
    from bench.worlds.controlled.language import is_grammatical

    if corruption == "shuffle":
        for _ in range(_SHUFFLE_TRIES):
            shuffled = words[:]
            rng.shuffle(shuffled)
            candidate = " ".join(shuffled)
            if not is_grammatical(f"{context} {candidate}"):
                return candidate
        return None
    if corruption == "swap":
        options = []
        for i in range(len(words) - 1):
            if words[i] != words[i + 1]:
                swapped = words[:i] + [words[i + 1], words[i]] + words[i + 2:]
                candidate = " ".join(swapped)
                if not is_grammatical(f"{context} {candidate}"):
                    options.append(candidate)
        return rng.choice(options) if options else None
    raise ValueError(f"unknown corruption {corruption!r}; expected one of {CORRUPTIONS}")


def _grammar_docs(heldout_reviews: int, seed: int, corruption: str) -> list[dict]:
    """One doc per held-out review whose completion can be reordered into an ungrammatical one."""
    from bench.worlds.controlled.language import ReviewGenerator, is_grammatical

    gen = ReviewGenerator(seed + 30_011)
    rng = random.Random(seed)
    docs = []
    for _ in range(heldout_reviews):
        context, rest = gen.prompt_and_completion()
        words = rest.split()
        if len(words) < 2 or not is_grammatical(f"{context} {rest}"):
            continue
        corrupted = _corrupt(words, context, corruption, rng)
        if corrupted is None:  # every order parses (or the words never moved): no corrupted continuation
            continue
        label = rng.randrange(2)  # true continuation's position: random, so ties cannot favour it
        choices = [f" {corrupted}", f" {rest}"] if label else [f" {rest}", f" {corrupted}"]
        docs.append({"context": context, "choices": choices, "label": label})
    return docs


def _tone_docs(heldout_reviews: int, seed: int, evidence: int = 1, flipped: int = 1) -> list[dict]:
    """Tone coherence: a review of a clear tone (0.9 or 0.1) whose sentiment-bearing adjectives all carry the
    tone's polarity, cut after its first `evidence` of them; the choices are the true rest and the same rest
    with each of its (at least `flipped`) remaining sentiment-bearing adjectives replaced by one of the opposite
    polarity. Both are grammatical and equally long: only the model's grasp of the review's tone separates
    them (flipping several adjectives lets that signal outweigh the model's per-word frequency noise). A model
    of the language that knows tones scores near 1; a policy that lost one tone falls towards 0.5 or below."""
    from bench.worlds.controlled.language import NEGATIVE, POLARITY, POSITIVE, ReviewGenerator

    gen = ReviewGenerator(seed + 40_009)
    rng = random.Random(seed + 1)
    docs, tries = [], 0
    while len(docs) < heldout_reviews and tries < 500 * heldout_reviews:
        tries += 1
        review = gen.review()
        if review.tone not in (0.9, 0.1):
            continue
        sign = 1 if review.tone > 0.5 else -1
        words = list(review.words)
        polar = [i for i, w in enumerate(words) if POLARITY.get(w, 0) != 0]
        if len(polar) < evidence + flipped or any(POLARITY[words[i]] != sign for i in polar):
            continue
        cut = polar[evidence - 1] + 1
        wrong = list(words)
        for i in polar[evidence:]:
            wrong[i] = rng.choice(NEGATIVE if sign > 0 else POSITIVE)
        true_rest, wrong_rest = " ".join(words[cut:]), " ".join(wrong[cut:])
        label = rng.randrange(2)
        choices = [f" {wrong_rest}", f" {true_rest}"] if label else [f" {true_rest}", f" {wrong_rest}"]
        docs.append({"context": " ".join(words[:cut]), "choices": choices, "label": label})
    return docs


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _write_task(world_root: Path, name: str, stamp: str, make_docs) -> Path:
    """Write `<world_root>/lm_eval/<name>.{jsonl,yaml}` once (cached by `stamp`); return the folder."""
    out = Path(world_root).resolve() / "lm_eval"
    data_file = out / f"{name}.jsonl"
    yaml_file = out / f"{name}.yaml"
    yaml_text = _TEMPLATE.read_text(encoding="utf-8").replace("__DATA_FILE__", str(data_file))
    yaml_text = yaml_text.replace(f"task: {TASK_NAME}\n", f"task: {name}\n")
    yaml_text = stamp + yaml_text
    if data_file.is_file() and yaml_file.is_file() and yaml_file.read_text(encoding="utf-8") == yaml_text:
        return out
    out.mkdir(parents=True, exist_ok=True)
    if not (data_file.is_file() and yaml_file.is_file()
            and yaml_file.read_text(encoding="utf-8").splitlines()[:1] == [stamp.rstrip("\n")]):
        _write_atomic(data_file, "".join(json.dumps(d) + "\n" for d in make_docs()))
    _write_atomic(yaml_file, yaml_text)  # last: its presence (with this stamp) means the task is complete
    return out


def build_controlled_grammar_task(world_root: Path, heldout_reviews: int = 200, seed: int = 0,
                                  corruption: str = "shuffle") -> Path:
    """Write `<world_root>/lm_eval/controlled_grammar.{jsonl,yaml}` once; return the folder (lm-eval include_path).

    Cached: an existing task built with the same settings, whose YAML points at this folder's JSONL, is reused
    (a world built in a temporary folder and renamed into place gets its YAML rewritten with the new path).
    Held-out reviews come from `ReviewGenerator(seed + 30_011)`, a stream neither the corpus nor the prompts use.
    `corruption` ("shuffle" or "swap", see `_corrupt`) picks how the wrong continuation is made.
    """
    if corruption not in CORRUPTIONS:
        raise UserError(f"unknown corruption '{corruption}' for the {TASK_NAME} task; use one of {', '.join(CORRUPTIONS)}")
    stamp = (f"# built by bench: format={TASK_FORMAT} heldout_reviews={heldout_reviews} seed={seed} "
             f"corruption={corruption}\n")
    return _write_task(world_root, TASK_NAME, stamp, lambda: _grammar_docs(heldout_reviews, seed, corruption))


def build_controlled_tone_task(world_root: Path, heldout_reviews: int = 400, seed: int = 0) -> Path:
    """Write the `controlled_tone` task (see `_tone_docs`) beside the grammar task; return the folder."""
    stamp = f"# built by bench: format={TASK_FORMAT} heldout_reviews={heldout_reviews} seed={seed} tone\n"
    return _write_task(world_root, TONE_TASK_NAME, stamp, lambda: _tone_docs(heldout_reviews, seed))


def build_controlled_tasks(world_root: Path) -> Path:
    """Both local tasks of the controlled world, in one include folder."""
    build_controlled_grammar_task(world_root)
    return build_controlled_tone_task(world_root)


# ------------------------------------------------------------------------------------------------ running it
@contextlib.contextmanager
def _quiet():
    """Silence lm-eval, transformers and datasets for the duration (restoring their settings afterwards)."""
    names = ("lm_eval", "lm-eval", "datasets", "transformers", "accelerate", "evaluate")
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        import datasets

        bars_were_on = datasets.is_progress_bar_enabled()
        datasets.disable_progress_bars()
    except (ImportError, AttributeError):  # datasets missing or API moved: stray bars are caught by the redirect below
        datasets, bars_were_on = None, False
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.CRITICAL + 1)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
        if datasets is not None and bars_were_on:
            datasets.enable_progress_bars()


@contextlib.contextmanager
def _rng_preserved():
    """Restore Python's, NumPy's and torch's (CPU) global RNG states afterwards: evaluating a policy mid-run must
    not shift the run's random stream (lm-eval's task building draws from Python's `random`)."""
    import numpy as np
    import torch

    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


@lru_cache(maxsize=8)
def _task_manager(include_path: str | None, include_defaults: bool):
    from lm_eval.tasks import TaskManager

    with _quiet():
        return TaskManager(include_path=include_path, include_defaults=include_defaults)


def _maybe_default_task(name: str) -> bool:
    """False only when `name` surely is no built-in lm-eval task (it appears in none of their YAML files).

    A cheap pre-check (~1 s) that spares building the full default index (~19 s) for a misspelt name.
    """
    import lm_eval

    root = Path(lm_eval.__file__).parent / "tasks"
    for path in root.rglob("*.y*ml"):
        try:
            if name in path.read_text(encoding="utf-8", errors="ignore"):
                return True
        except OSError:
            continue
    for path in root.rglob("*.py"):  # Python-defined tasks register their names in code
        try:
            if name in path.read_text(encoding="utf-8", errors="ignore"):
                return True
        except OSError:
            continue
    return False


def _unknown(name: str, local: list[str]) -> UserError:
    hint = f" (local tasks: {', '.join(local)})" if local else ""
    return UserError(f"unknown lm-eval task '{name}'; check [eval].lm_eval_tasks: use a task name lm-eval knows "
                     f"or one defined under the task folder{hint}")


def _is_task_file(spec: str) -> bool:
    return spec.endswith((".yaml", ".yml")) and Path(spec).is_file()


def is_task_path(task: str) -> bool:
    """A task given as a file or folder rather than a registered name (only those can bring their own code)."""
    return ("/" in task or "\\" in task or task.startswith((".", "~")) or task.endswith((".yaml", ".yml", ".py"))
            or Path(task).expanduser().exists())


def resolve_task_manager(tasks: list[str], include_path: Path | None, trust_task_code: bool = False):
    """The cheapest TaskManager that knows every task in `tasks`; `UserError` naming the first unknown one.

    Names are exact task, group or tag names (lm-eval's `simple_evaluate` does not expand globs), or — only with
    `trust_task_code` — paths to task YAML files: lm-eval's `!function` tag imports the Python file beside such a
    YAML, so a task path can run arbitrary code. `include_path` is the harness's own task folder (trusted).
    """
    if not tasks:
        raise UserError("no lm-eval tasks given; check [eval].lm_eval_tasks")
    untrusted = [t for t in tasks if is_task_path(t)]
    if untrusted and not trust_task_code:
        raise UserError(f"[eval].lm_eval_tasks: {untrusted[0]!r} is a path to a local lm-eval task, which can run "
                        "Python code (`!function`); use a registered task name, or set [eval] trust_task_code = "
                        "true if you trust the file")
    named = [t for t in tasks if not _is_task_file(t)]
    local: list[str] = []
    if include_path is not None:
        if not Path(include_path).is_dir():
            raise UserError(f"lm-eval task folder {include_path} does not exist; build the task first")
        tm = _task_manager(str(Path(include_path).resolve()), False)
        local = list(tm.all_tasks)
        if all(t in local for t in named):
            return tm
    for t in named:
        if t not in local and not _maybe_default_task(t):
            raise _unknown(t, local)
    tm = _task_manager(str(Path(include_path).resolve()) if include_path is not None else None, True)
    known = set(tm.all_tasks)
    for t in named:
        if t not in known:
            raise _unknown(t, local)
    return tm


_NOT_METRICS = {"sample_len", "sample_count", "samples", "alias"}


def _numeric_metrics(task_results: dict) -> dict[str, float]:
    """{'acc,none': 0.7, 'acc_stderr,none': 0.03, 'alias': ...} -> {'acc': 0.7, 'acc_stderr': 0.03}."""
    out: dict[str, float] = {}
    for key, value in task_results.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or key in _NOT_METRICS:
            continue  # "alias", "N/A" stderr, the doc count, ...
        metric, _, filt = key.partition(",")
        if filt and filt != "none":
            metric = f"{metric}_{filt}"  # a task with named filters keeps them apart
        out[metric] = float(value)
    return out


@contextlib.contextmanager
def _without_environment_dump():
    """lm-eval appends torch's `collect_env` report (it runs `pip list` and friends in subprocesses: 0.6 s of a
    4.7 s evaluation, issue 24's profile) and the git hash to every result; we read only `results`, and every run
    records its own provenance (bench/provenance.py), so both are skipped."""
    from lm_eval import evaluator

    saved = evaluator.add_env_info, evaluator.get_git_commit_hash
    evaluator.add_env_info, evaluator.get_git_commit_hash = (lambda results: None), (lambda: None)
    try:
        yield
    finally:
        evaluator.add_env_info, evaluator.get_git_commit_hash = saved


def run_lm_eval(model_dir: Path, tokenizer_dir: Path, tasks: list[str], *, include_path: Path | None,
                limit: int | None, device: str = "cpu", batch_size: int = 64,
                bootstrap_iters: int = 100, trust_task_code: bool = False) -> dict[str, dict[str, float]]:
    """Evaluate the causal LM saved in `model_dir` on lm-eval `tasks`; `{task: {metric: value}}`.

    `include_path`: a folder of local task YAMLs (e.g. from `build_controlled_grammar_task`), or None for
    lm-eval's built-in tasks only. `limit`: at most this many docs per task (None: all). Runs offline as long
    as the tasks' data are local (or already in the datasets cache). `bootstrap_iters` > 0 gives standard
    errors (closed form for `acc`-style means, so it costs nothing there); 0 skips them. Prints nothing.
    """
    tasks = list(tasks)
    tm = resolve_task_manager(tasks, include_path, trust_task_code)  # fails fast, before the model is loaded

    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM

    from bench.modeling import load_causal_lm
    from bench.worlds.controlled.tokenizer import load_tokenizer

    with _quiet(), _rng_preserved():
        model = load_causal_lm(model_dir, device=device)
        tok = load_tokenizer(tokenizer_dir)
        max_length = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
        lm = HFLM(pretrained=model, tokenizer=tok, batch_size=batch_size, device=device,
                  max_length=max_length, add_bos_token=False)
        try:
            with torch.no_grad(), _without_environment_dump():
                out = lm_eval.simple_evaluate(
                    model=lm, tasks=tasks, task_manager=tm, limit=limit, log_samples=False,
                    bootstrap_iters=bootstrap_iters, random_seed=None, numpy_random_seed=None,
                    torch_random_seed=None, fewshot_random_seed=0,
                    # instruct models (real suites) are evaluated through their chat template, as lm-eval's
                    # --apply_chat_template does; the controlled world's tokenizer has none
                    apply_chat_template=bool(getattr(tok, "chat_template", None)))
        except KeyError as e:  # TaskManager.load: "Spec 'x' is not a registered task/group/tag name ..."
            if "not a registered task" not in str(e):
                raise
            bad = next((t for t in tasks if f"'{t}'" in str(e)), tasks[0])
            raise _unknown(bad, []) from e
        except ConnectionError as e:  # datasets in offline mode (HF_DATASETS_OFFLINE=1) or no network
            raise UserError(f"lm-eval tasks {', '.join(tasks)}: a data set is not available offline ({e}); "
                            "download it into the Hugging Face datasets cache first, or drop the task from "
                            "[eval].lm_eval_tasks") from e
    results = (out or {}).get("results", {})
    return {name: _numeric_metrics(res) for name, res in results.items()}


PRIMARY_METRICS = ("acc", "acc_norm", "exact_match")


def primary_metric(metrics: dict[str, float]) -> str | None:
    """acc, else acc_norm, else exact_match, else the first metric that is not a standard error."""
    for m in PRIMARY_METRICS:
        if m in metrics:
            return m
    rest = [m for m in metrics if not m.endswith("_stderr")]
    return rest[0] if rest else None


def summary_score(results: dict[str, dict[str, float]]) -> float:
    """Mean over tasks of each task's primary metric (NaN when no task has a metric)."""
    values = [metrics[m] for metrics in results.values() if (m := primary_metric(metrics)) is not None]
    return sum(values) / len(values) if values else float("nan")
