"""Where the Hub world's model, judge and data set come from, and which revision of each was used.

A reference is a local path (a directory written by `save_pretrained`, a data file or a directory of data files)
or a Hugging Face id. Ids are resolved through the local Hugging Face cache (`HF_HOME` / `HF_HUB_CACHE`), and
through the Hub when it is reachable (downloads land in that cache, so the next run works offline). Models and
judges resolve to the cache's snapshot directory of one commit: every later `from_pretrained` reads that local
directory, never the network, and the commit is recorded.

Anything missing becomes ONE `UserError` line naming the `[world]` field, the id, why (not cached and the Hub
unreachable / no such repository / gated) and the fix (`hf download ...` into the same cache, or a local path).
Everything here runs before the world writes anything, so a failure leaves no partial world behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import UserError

MODEL_PATTERNS = ["*.json", "model*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "tokenizer*"]
BIN_PATTERNS = ["pytorch_model*.bin"]
DATA_EXTENSIONS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")


@dataclass(frozen=True)
class Source:
    """A resolved model / judge / data set: where it is on disk and which version it is."""

    field: str                 # "[world].model"
    ref: str                   # as the suite gave it
    kind: str                  # "local" | "hub" (data sets also: "file", "dir")
    path: Path | None          # local directory or file (None for a Hub data set: `datasets` manages it)
    revision: str | None       # revision asked for
    commit: str | None         # Hub commit actually used (None: local, or not resolvable offline)
    fingerprint: str | None    # local: hash of file names, sizes and modification times
    unreachable: bool = False  # the Hub did not answer while resolving: read the local caches only

    @property
    def pin(self) -> str:
        """What identifies this version in the world's cache key."""
        return self.commit or self.fingerprint or f"unresolved:{self.revision or 'main'}"

    def record(self) -> dict[str, Any]:
        return {"id": self.ref, "source": self.kind, "path": str(self.path) if self.path else None,
                "revision_requested": self.revision, "commit": self.commit, "fingerprint": self.fingerprint}


# ---------------------------------------------------------------------------------------------------- helpers
def hub_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def looks_like_path(ref: str) -> bool:
    """True when `ref` can only be a local path (a Hub id is `name` or `owner/name`)."""
    return ref.startswith(("/", ".", "~")) or not _HUB_ID.fullmatch(ref) \
        or Path(ref).suffix.lower() in DATA_EXTENSIONS


def fingerprint(path: Path, limit: int = 20000) -> str:
    """sha256 over (relative name, size, mtime) of the files under `path` (hidden folders skipped)."""
    path = Path(path)
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                p.relative_to(path).parts))[:limit]
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if f != path else f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return "local:" + h.hexdigest()[:16]


def _commit_of(snapshot: str | Path) -> str | None:
    p = Path(snapshot)
    return p.name if p.parent.name == "snapshots" else None


def _has_weights(path: Path) -> bool:
    return any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin")) or \
        (path / "model.safetensors.index.json").is_file()


def _download_hint(ref: str, field: str, repo_type: str = "model", revision: str | None = None) -> str:
    flags = (" --repo-type dataset" if repo_type == "dataset" else "") + (f" --revision {revision}" if revision else "")
    return (f"download it first with `hf download {ref}{flags}` on a machine with access, into the same "
            f"Hugging Face cache (HF_HOME), or set {field} to a local path")


def _unreachable(ref: str, field: str, what: str, repo_type: str = "model", revision: str | None = None,
                 detail: str = "") -> UserError:
    why = "the Hub is unreachable (HF_HUB_OFFLINE=1)" if hub_offline() else "the Hub is unreachable"
    return UserError(f"{field}: cannot load {what} '{ref}': not a local path, not in the local Hugging Face cache "
                     f"({hub_cache_dir()}){detail} and {why}; {_download_hint(ref, field, repo_type, revision)}")


def _is_network_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return isinstance(exc, (ConnectionError, TimeoutError)) or module.split(".")[0] in ("httpx", "httpx2", "httpcore")


def snapshot(ref: str, revision: str | None, field: str, what: str, *, repo_type: str = "model",
             patterns: list[str] | None = None) -> str:
    """Local snapshot directory of a Hub repository (cache first, then the Hub); one-line UserError otherwise."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, HFValidationError, HfHubHTTPError, IncompleteSnapshotError,
                                        LocalEntryNotFoundError, OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    try:
        return snapshot_download(repo_id=ref, repo_type=repo_type, revision=revision, allow_patterns=patterns)
    except GatedRepoError:
        raise UserError(f"{field}: '{ref}' is a gated repository on the Hub: accept its terms on huggingface.co, log "
                        f"in (`hf auth login` or HF_TOKEN) and retry, or set {field} to a local path") from None
    except RepositoryNotFoundError:
        raise UserError(f"{field}: cannot load {what} '{ref}': no such repository on the Hugging Face Hub (or it is "
                        f"private: set HF_TOKEN) and no local path of that name; check the id or set {field} to a "
                        "local path") from None
    except RevisionNotFoundError:
        raise UserError(f"{field}: revision '{revision}' of '{ref}' does not exist on the Hub; check the "
                        f"{field.rsplit('.', 1)[-1]}_revision setting") from None
    except HFValidationError:
        raise UserError(f"{field}: '{ref}' is neither an existing local path nor a valid Hugging Face id "
                        f"(owner/name); fix {field}") from None
    except IncompleteSnapshotError:
        raise _unreachable(ref, field, what, repo_type, revision, detail=" completely (the cached copy is partial)") \
            from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled):
        raise _unreachable(ref, field, what, repo_type, revision) from None
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise UserError(f"{field}: cannot load {what} '{ref}': the Hub answered HTTP {status} and it is not in the "
                        f"local cache; retry later or {_download_hint(ref, field, repo_type, revision)}") from None
    except Exception as exc:  # connection errors of the HTTP client
        if _is_network_error(exc):
            raise _unreachable(ref, field, what, repo_type, revision) from None
        raise


# ------------------------------------------------------------------------------------------- models and judges
def resolve_pretrained(ref: str, revision: str | None, field: str, what: str = "model") -> Source:
    """A transformers model directory (config.json + weights + tokenizer files) for a local path or a Hub id."""
    path = Path(ref).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"{field}: '{ref}' is a file; point it at a directory written by save_pretrained "
                            "(config.json, weights, tokenizer files)")
        if not (path / "config.json").is_file():
            raise UserError(f"{field}: '{ref}' has no config.json; point it at a directory written by "
                            "save_pretrained")
        if not _has_weights(path):
            raise UserError(f"{field}: '{ref}' has no weights (model*.safetensors or pytorch_model*.bin); point it "
                            "at a directory written by save_pretrained")
        return Source(field, ref, "local", path.resolve(), revision, None, fingerprint(path))
    if looks_like_path(ref):
        raise UserError(f"{field}: no such directory '{ref}'; give an existing local model directory or a Hugging "
                        "Face id such as Qwen/Qwen2.5-0.5B-Instruct")
    snap = Path(snapshot(ref, revision, field, what, patterns=MODEL_PATTERNS))
    if not _has_weights(snap) and not hub_offline():  # older repositories only ship PyTorch .bin weights
        snap = Path(snapshot(ref, revision, field, what, patterns=MODEL_PATTERNS + BIN_PATTERNS))
    if not (snap / "config.json").is_file() or not _has_weights(snap):
        missing = "config.json" if not (snap / "config.json").is_file() else "weights"
        raise _unreachable(ref, field, what, revision=revision, detail=f" with its {missing}")
    return Source(field, ref, "hub", snap, revision, _commit_of(snap), None)


def read_config(path: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_judge(src: Source) -> dict[str, Any]:
    """The judge must be a sequence-classification model with one output (a scalar reward)."""
    cfg = read_config(src.path)
    archs = cfg.get("architectures") or []
    n_labels = cfg.get("num_labels", len(cfg.get("id2label") or {}) or None)
    if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
        raise UserError(f"{src.field}: '{src.ref}' is not a sequence-classification reward model (architectures: "
                        f"{', '.join(archs)}); use a reward model loadable with AutoModelForSequenceClassification, "
                        "e.g. Skywork/Skywork-Reward-V2-Qwen3-0.6B")
    if n_labels not in (None, 1):
        raise UserError(f"{src.field}: '{src.ref}' has {n_labels} output labels; a judge must output one scalar "
                        "reward (num_labels = 1)")
    return {"architectures": archs, "model_type": cfg.get("model_type")}


# ------------------------------------------------------------------------------------------------- data sets
def data_files_for_splits(root: Path, splits: list[str]) -> dict[str, list[str]] | None:
    """{split: files} when a directory holds files named after every split (`train_prefs.jsonl`,
    `data/train_prefs-00000-of-00001.parquet`, `train_prefs/*.jsonl`, ...), else None."""
    found: dict[str, list[str]] = {}
    for split in splits:
        files: list[Path] = []
        for pattern in (f"{split}.*", f"{split}-*", f"{split}_*", f"data/{split}.*", f"data/{split}-*", f"{split}/*"):
            files += [p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in DATA_EXTENSIONS]
        if not files:
            return None
        found[split] = sorted({str(p) for p in files})
    return found


def resolve_dataset(cfg) -> Source:
    """Where the pairs come from; no data is read here (that is `load_splits`)."""
    field = "[world].dataset"
    ref = cfg.dataset
    path = Path(ref).expanduser()
    if path.is_file():
        if path.suffix.lower() not in DATA_EXTENSIONS:
            raise UserError(f"{field}: '{ref}' is not a .json, .jsonl or .parquet file; convert it or point "
                            f"{field} at a directory or a Hugging Face data set id")
        return Source(field, ref, "file", path.resolve(), cfg.dataset_revision, None, fingerprint(path))
    if path.is_dir():
        return Source(field, ref, "dir", path.resolve(), cfg.dataset_revision, None, fingerprint(path))
    if looks_like_path(ref):
        raise UserError(f"{field}: no such file or directory '{ref}'; give a local .json/.jsonl/.parquet file, a "
                        "directory of them, or a Hugging Face data set id such as "
                        "HuggingFaceH4/ultrafeedback_binarized")
    commit, unreachable = _dataset_commit(ref, cfg.dataset_revision)
    return Source(field, ref, "hub", None, cfg.dataset_revision, commit, None, unreachable)


def _dataset_commit(ref: str, revision: str | None) -> tuple[str | None, bool]:
    """(commit of a Hub data set as the Hub or the local cache knows it, whether the Hub was unreachable).

    README.md is what `datasets` fetches first too, so a data set loaded once has it in the cache. A repository
    the Hub says does not exist is a UserError here; an unreachable Hub is not (the `datasets` cache may still hold
    the data): `load_splits` then reads the caches only, instead of letting `datasets` retry the network.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        snap = snapshot_download(repo_id=ref, repo_type="dataset", revision=revision, allow_patterns=["README.md"],
                                 local_files_only=hub_offline())
    except GatedRepoError:
        return None, False  # `datasets` may still hold it; otherwise `load_splits` explains the gate
    except RepositoryNotFoundError:
        raise UserError(f"[world].dataset: cannot load data set '{ref}': no such data set on the Hugging Face Hub "
                        "(or it is private: set HF_TOKEN) and no local path of that name; check the id or set "
                        "[world].dataset to a local file or directory") from None
    except LocalEntryNotFoundError as exc:
        return None, hub_offline() or _is_network_error(exc.__cause__ or exc)
    except Exception as exc:
        if _is_network_error(exc):
            return None, True
        return None, False
    return _commit_of(snap), False


@contextlib.contextmanager
def _offline_datasets():
    """`datasets` reads the offline flag at call time: set it so that a cached data set loads at once and a
    missing one fails at once (no retries against an unreachable Hub)."""
    import datasets.config
    import huggingface_hub.constants

    saved = (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def check_jsonl(path: Path, field: str = "[world].dataset") -> None:
    """A local .jsonl must hold at least one row and every line must parse: a one-line UserError naming the file
    and the row otherwise (`datasets` says "StopIteration" for an empty file and loses the row number)."""
    path = Path(path)
    rows = 0
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise UserError(f"{field}: {path}: row {n} (line {n}) is not valid JSON ({exc.msg}, column "
                                    f"{exc.colno}); a truncated file? fix or drop that line") from None
                if not isinstance(row, dict):
                    raise UserError(f"{field}: {path}: row {n} is a JSON {type(row).__name__}, not an object")
                rows += 1
    except UnicodeDecodeError as exc:
        raise UserError(f"{field}: {path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    if rows == 0:
        raise UserError(f"{field}: {path} is empty (no rows); give a .jsonl file with one JSON object per line")


def load_splits(src: Source, cfg, scratch: Path):
    """(train Dataset, test Dataset, record) for a resolved data source; one-line UserError on failure.

    A single local file has no splits: `cfg.test_fraction` of its prompts (by a hash of the prompt, so a prompt
    never lands on both sides) is held out. `scratch` holds `datasets`' cache for local files (deleted later).
    """
    from datasets import load_dataset

    record: dict[str, Any] = {"train_split": cfg.train_split, "test_split": cfg.test_split}
    try:
        if src.kind == "file":
            fmt = DATA_EXTENSIONS[src.path.suffix.lower()]
            if src.path.suffix.lower() == ".jsonl":
                check_jsonl(src.path)
            full = load_dataset(fmt, data_files=str(src.path), split="train", cache_dir=str(scratch))
            train, test = split_by_prompt(full, cfg.test_fraction, cfg.seed)
            record.update(train_split=f"{src.path.name} ({1 - cfg.test_fraction:.0%} of prompts)",
                          test_split=f"{src.path.name} ({cfg.test_fraction:.0%} of prompts, by prompt hash)")
            return train, test, record
        if src.kind == "dir":
            files = data_files_for_splits(src.path, [cfg.train_split, cfg.test_split])
            if files is not None:
                formats = {DATA_EXTENSIONS[Path(f).suffix.lower()] for fs in files.values() for f in fs}
                if len(formats) > 1:
                    raise UserError(f"[world].dataset: '{src.ref}' mixes {' and '.join(sorted(formats))} files; "
                                    "use one format for both splits")
                for f in [f for fs in files.values() for f in fs if f.lower().endswith(".jsonl")]:
                    check_jsonl(Path(f))
                dd = load_dataset(formats.pop(), data_files=files, cache_dir=str(scratch))
            else:
                dd = load_dataset(str(src.path), name=cfg.dataset_config, cache_dir=str(scratch))
            return _pick(dd, cfg, src) + (record,)
        dd = {}
        with _offline_datasets() if src.unreachable else contextlib.nullcontext():
            for split in (cfg.train_split, cfg.test_split):
                dd[split] = load_dataset(src.ref, name=cfg.dataset_config, split=split, revision=src.revision)
        return dd[cfg.train_split], dd[cfg.test_split], record
    except UserError:
        raise
    except Exception as exc:
        raise _data_error(exc, src, cfg) from None


def _pick(dd, cfg, src: Source):
    missing = [s for s in (cfg.train_split, cfg.test_split) if s not in dd]
    if missing:
        which = "train_split" if cfg.train_split in missing else "test_split"
        raise UserError(f"[world].{which}: '{src.ref}' has no split '{missing[0]}' (splits: "
                        f"{', '.join(sorted(dd))}); set [world].{which} to one of them")
    return dd[cfg.train_split], dd[cfg.test_split]


def _data_error(exc: Exception, src: Source, cfg) -> UserError:
    from datasets.exceptions import DatasetNotFoundError

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if src.kind == "hub":
        if isinstance(exc, DatasetNotFoundError):
            if "gated" in text:
                return UserError(f"[world].dataset: '{src.ref}' is a gated data set: accept its terms on "
                                 "huggingface.co and log in (`hf auth login` or HF_TOKEN), or set [world].dataset "
                                 "to a local path")
            return UserError(f"[world].dataset: cannot load data set '{src.ref}': no such data set on the Hugging "
                             "Face Hub (or it is private) and no local path of that name; check the id or set "
                             "[world].dataset to a local file or directory")
        if isinstance(exc, ConnectionError) or _is_network_error(exc):
            return _unreachable(src.ref, "[world].dataset", "data set", "dataset", src.revision)
        if isinstance(exc, ValueError) and "split" in text.lower():
            return UserError(f"[world].train_split / test_split: '{src.ref}': {text}; set them to splits of the "
                             "data set")
        if isinstance(exc, ValueError) and ("config" in text.lower() or "name" in text.lower()):
            return UserError(f"[world].dataset_config: '{src.ref}': {text}")
    return UserError(f"[world].dataset: cannot read '{src.ref}': {type(exc).__name__}: {text}; check the file "
                     "format (rows of prompt/chosen/rejected, as text or as lists of {role, content} messages)")


def prompt_key(row: dict[str, Any]) -> str:
    """A stable text for the prompt of a raw row (whatever its format), for hashing and overlap checks."""
    prompt = row.get("prompt")
    if prompt is None and isinstance(row.get("chosen"), list):
        prompt = row["chosen"][:-1]
    return json.dumps(prompt if prompt is not None else row, sort_keys=True, default=str)


def split_by_prompt(ds, test_fraction: float, seed: int):
    """Deterministic split of one file's rows: a prompt's rows all go to the same side."""
    cut = int(test_fraction * 2**32)

    def is_test(row) -> bool:
        digest = hashlib.sha256(f"{seed}\0{prompt_key(row)}".encode()).digest()
        return int.from_bytes(digest[:4], "big") < cut

    flags = [is_test(row) for row in ds]
    train = ds.select([i for i, t in enumerate(flags) if not t])
    test = ds.select([i for i, t in enumerate(flags) if t])
    return train, test


# --------------------------------------------------------------------------------- sizes for the dry run
def estimate_parameters(model: str, revision: str | None = None) -> tuple[int, str]:
    """(parameter count, how it was obtained) without network access; (0, why) when unknown."""
    folder = _local_model_dir(model, revision)
    if folder is None:
        return 0, (f"model size unknown: '{model}' is not a local directory and its config.json is not in the local "
                   "Hugging Face cache (no network lookups in a dry run)")
    n = _safetensors_parameters(folder)
    if n:
        return n, "parameters from the safetensors headers"
    n = _config_parameters(read_config(folder))
    if n:
        return n, "parameters estimated from config.json"
    return 0, f"model size unknown: cannot read parameters of '{model}'"


def _local_model_dir(model: str, revision: str | None) -> Path | None:
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if looks_like_path(model):
        return None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json", revision=revision)
    except Exception:
        return None
    return Path(found).parent if isinstance(found, str) else None


def _safetensors_header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if size <= 0 or size > 100_000_000:
            return {}
        return json.loads(f.read(size))


def _safetensors_parameters(folder: Path) -> int:
    index = folder / "model.safetensors.index.json"
    try:
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            files = [folder / s for s in shards]
        else:
            files = sorted(folder.glob("model*.safetensors"))
        if not files or not all(f.is_file() for f in files):
            return 0
        total = 0
        for f in files:
            for name, meta in _safetensors_header(f).items():
                if name != "__metadata__":
                    n = 1
                    for d in meta.get("shape", []):
                        n *= int(d)
                    total += n
        return total
    except (OSError, ValueError, KeyError):
        return 0


def _config_parameters(cfg: dict[str, Any]) -> int:
    """Decoder-only transformer estimate from config.json (attention with grouped KV heads, gated or plain MLP)."""
    cfg = cfg.get("text_config", cfg)
    d = cfg.get("hidden_size") or cfg.get("n_embd") or cfg.get("d_model")
    layers = cfg.get("num_hidden_layers") or cfg.get("n_layer") or cfg.get("num_layers")
    vocab = cfg.get("vocab_size")
    if not (d and layers and vocab):
        return 0
    heads = cfg.get("num_attention_heads") or cfg.get("n_head") or 1
    kv = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or d // heads
    ffn = cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * d
    gated = cfg.get("model_type") not in ("gpt2", "gpt_neox", "opt", "gptj", "bloom", "falcon", "phi")
    attn = d * heads * head_dim * 2 + 2 * d * kv * head_dim
    mlp = (3 if gated else 2) * d * ffn
    emb = vocab * d * (1 if cfg.get("tie_word_embeddings", True) else 2)
    return int(layers * (attn + mlp + 2 * d) + emb + d)
