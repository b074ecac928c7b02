"""Small file helpers: atomic, durable writes so a reader never sees half a file and a crash never leaves one.

`write_text_atomic` writes a uniquely named temporary file beside the target, flushes and fsyncs it, renames it
into place (atomic on POSIX) and fsyncs the directory, so after a power cut the file is either the old or the
new version ($BENCH_FSYNC=0 skips the fsyncs, for test suites on slow disks; atomicity is kept). A failed write
removes its temporary file; temporaries left by killed processes (`.<name>.<pid>.
<random>.tmp`) are removed by `clean_stale_temps` once their process is gone.

JSON is written strictly (no NaN/Infinity tokens, which browsers and jq reject). A non-finite float is written as
null *and* named under the top-level key `"_non_finite"` (`{"kl": "nan", "train_logs.3.loss": "inf"}`), so a
reader can always tell "not measured" (null, absent from `_non_finite`) from "measured and not a number".

Disk full, read-only folders and permission errors while writing raise `StorageError`: a `UserError` whose
one line names the path (the CLI exits 2 without a traceback).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any

from bench.errors import UserError

# errors that say "this storage cannot take the write", not "the program is wrong"
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}
NON_FINITE_KEY = "_non_finite"
_TEMP = re.compile(r"^\.(?P<name>.+?)\.(?P<pid>\d+)(?:\.[0-9a-f]{8})?\.tmp$")


class StorageError(UserError):
    """The storage refused a write (disk full, read-only, no permission): one line naming the path."""


def storage_error(exc: OSError, path: Path | str | None = None) -> StorageError:
    where = exc.filename
    if not where or str(where).endswith(".tmp"):  # name the file being written, not its temporary
        where = path or where or "?"
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    fix = {errno.ENOSPC: "free some space (finished runs are kept) and re-run the same command",
           errno.EDQUOT: "free some space (finished runs are kept) and re-run the same command",
           errno.EROFS: "the file system is read-only; point --results / --report-dir / --cache-dir at a "
                        "writable folder"}.get(exc.errno, "check the folder's permissions, or point --results / "
                                                          "--report-dir / --cache-dir elsewhere")
    return StorageError(f"cannot write {where}: {reason}; {fix}")


def is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, StorageError) or (isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS)


def _durable() -> bool:
    return os.environ.get("BENCH_FSYNC", "1") != "0"


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    if not _durable():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            if _durable():
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        if exc.errno in STORAGE_ERRNOS:
            raise storage_error(exc, path) from None
        raise
    except BaseException:
        _remove_quietly(tmp)
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def _remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's live process
    return True


def clean_stale_temps(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Remove `.<name>.<pid>[.<hex>].tmp` files whose writing process is gone; return what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in (folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp")):
        m = _TEMP.match(p.name)
        if m and p.is_file() and not _pid_alive(int(m["pid"])):
            _remove_quietly(p)
            removed.append(p)
    return removed


def _finite(obj: Any, where: str = "", found: dict[str, str] | None = None) -> Any:
    """NaN/inf → null, so the JSON is valid for strict parsers; each one is recorded in `found` by its path."""
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        if found is not None:
            found[where or "."] = "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
        return None
    if isinstance(obj, dict):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), found) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v, f"{where}.{i}" if where else str(i), found) for i, v in enumerate(obj)]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():  # numpy / torch scalars
        try:
            return _finite(obj.item(), where, found)
        except (TypeError, ValueError):
            return obj
    return obj


def json_text(data: Any) -> str:
    found: dict[str, str] = {}
    clean = _finite(data, "", found)
    if found and isinstance(clean, dict):
        clean[NON_FINITE_KEY] = {**(clean.get(NON_FINITE_KEY) or {}), **found}
    return json.dumps(clean, indent=2, sort_keys=True, default=str, allow_nan=False) + "\n"


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json_text(data))


def non_finite(data: Any) -> dict[str, str]:
    """The `_non_finite` record of a JSON object read back ({} when none)."""
    found = data.get(NON_FINITE_KEY) if isinstance(data, dict) else None
    return dict(found) if isinstance(found, dict) else {}


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def warn(line: str) -> None:
    """One warning line on stderr (damaged cache rebuilt, run folder to be re-run, ...)."""
    print(f"warning: {line}", file=sys.stderr, flush=True)


def cache_root(explicit: str | Path | None = None) -> Path:
    """Shared-stage cache: --cache-dir, else $BENCH_CACHE, else $XDG_CACHE_HOME/daa-bench (~/.cache/daa-bench)."""
    if explicit:
        return Path(explicit)
    if os.environ.get("BENCH_CACHE"):
        return Path(os.environ["BENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "daa-bench"
