"""Cached stages on disk: build once under a lock, into a unique temporary folder renamed into place, with a
manifest that is verified on every load.

    <parent>/<name>/            the stage (a world, a reward model, ...)
        <marker>.json           the build record, written last; holds "manifest": {relative path: [size, sha256]}
    <parent>/<name>.lock        the build lock (flock; released by the OS if the builder dies)
    <parent>/<name>.building-*  a build in progress (unique per attempt; removed when it fails)

`load_or_build` returns (record, cache_hit). A stage whose marker does not parse, lacks a manifest, or whose
files are missing, resized or changed is *damaged*: it is rebuilt, and one warning line says which file and why.
Loads take the same lock, so a reader never verifies a stage while another process replaces it; a cache folder
that cannot be written (a read-only, shared, pre-built cache) is read without the lock, and never built into.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.io import StorageError, fsync_dir, is_storage_error, read_json, storage_error, warn, write_json_atomic
from bench.locking import hold

MANIFEST_KEY = "manifest"
_verified: dict[tuple[str, str], tuple] = {}  # (root, marker) -> file stats at the last full verification


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest(root: Path, exclude: tuple[str, ...] = ()) -> dict[str, list]:
    """{relative path: [size, sha256]} of every file under `root` (the marker itself and `exclude` left out)."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in exclude and not p.name.endswith(".tmp"):
            out[rel] = [p.stat().st_size, _sha256(p)]
    return out


def _stats(root: Path, files: dict[str, list]) -> tuple:
    out = []
    for rel in sorted(files):
        st = (root / rel).stat()
        out.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
    return tuple(out)


def content_fingerprint(manifest: dict[str, list] | None) -> str | None:
    """A short name for what a stage holds (the sha256 of its file manifest), or None without one."""
    from bench.hashing import stable_hash

    return stable_hash(manifest)[:16] if manifest else None


def verify(root: Path, marker: str = "world.json", required: tuple[str, ...] = ()) -> tuple[dict | None, str]:
    """(record, "") for a complete stage, else (None, why it is not: one phrase naming the file)."""
    root = Path(root)
    mpath = root / marker
    if not mpath.is_file():
        return None, f"{marker} missing"
    try:
        record = read_json(mpath)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{marker} does not parse ({type(exc).__name__})"
    files = record.get(MANIFEST_KEY) if isinstance(record, dict) else None
    if not isinstance(files, dict) or not files:
        return None, f"{marker} has no file manifest (built by an older version)"
    for rel in required:
        if not any(f == rel or f.startswith(rel.rstrip("/") + "/") for f in files):
            return None, f"{rel} is not in the manifest"
    for rel, entry in files.items():
        p = root / rel
        if not p.is_file():
            return None, f"{rel} missing"
        try:
            size, digest = int(entry[0]), str(entry[1])
        except (TypeError, ValueError, IndexError):
            return None, f"{marker}: bad manifest entry for {rel}"
        if p.stat().st_size != size:
            return None, f"{rel} has {p.stat().st_size} bytes, the manifest says {size}"
    key = (str(root.resolve()), marker)
    try:
        stats = _stats(root, files)
    except OSError as exc:
        return None, f"{exc.filename or root}: {exc.strerror}"
    if _verified.get(key) != stats:  # hashes: once per process and file state (sizes are checked every time)
        for rel, entry in files.items():
            if _sha256(root / rel) != entry[1]:
                return None, f"{rel} does not match its recorded hash"
        _verified[key] = stats
    return record, ""


def _writable_lock(path: Path):
    """The build lock at `path`, held; None when the cache folder cannot be written (read-only file system, no
    permission): readers of a shared pre-built cache need no write lock, only a complete, verified stage."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return hold(path)
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return None
        raise


def load_or_build(root: Path, build: Callable[[Path], dict[str, Any]], *, marker: str = "world.json",
                  what: str = "stage", required: tuple[str, ...] = ()) -> tuple[dict[str, Any], bool]:
    """The stage's record, building it when absent or damaged; → (record, cache_hit).

    `build(tmp)` writes the stage's files into the empty folder `tmp` and returns its record (JSON-able); the
    manifest and marker are added here. Concurrent callers build once: the others wait and then load it.
    """
    root = Path(root)
    lock = _writable_lock(root.with_name(root.name + ".lock"))
    if lock is None:  # a read-only cache (a team's pre-built stages): read it without a lock, never build into it
        record, why = verify(root, marker, required)
        if record is not None:
            return record, True
        raise StorageError(f"cached {what} at {root} cannot be used ({why}) and its folder is read-only, so it "
                           "cannot be rebuilt there; point --cache-dir (or $BENCH_CACHE) at a writable folder")
    with lock:
        record, why = verify(root, marker, required)
        if record is not None:
            return record, True
        if root.exists() or why != f"{marker} missing":
            warn(f"cached {what} at {root} cannot be used ({why}); rebuilding it")
        for stale in root.parent.glob(root.name + ".building-*"):  # a builder that died (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=root.name + ".building-", dir=root.parent))
        try:
            record = dict(build(tmp))
            record[MANIFEST_KEY] = manifest(tmp, exclude=(marker,))
            write_json_atomic(tmp / marker, record)
            if root.exists():  # move the damaged stage aside first: the rename below must find no folder
                trash = Path(tempfile.mkdtemp(prefix=root.name + ".damaged-", dir=root.parent))
                os.replace(root, trash / "old")
                shutil.rmtree(trash, ignore_errors=True)
            os.replace(tmp, root)
            fsync_dir(root.parent)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError) and is_storage_error(exc):  # name the stage, not "?" (no filename)
                raise storage_error(exc, root) from None
            raise
        _verified[(str(root.resolve()), marker)] = _stats(root, record[MANIFEST_KEY])
        return read_json(root / marker), False


def load_json_cache(path: Path, build: Callable[[], Any], *, what: str = "cache") -> Any:
    """A single-file JSON cache (e.g. limits-<key>.json): built under a lock, rebuilt with one warning line when
    it does not parse."""
    path = Path(path)
    lock = _writable_lock(path.with_name(path.name + ".lock"))
    if lock is None:  # read-only cache: read without a lock
        try:
            return read_json(path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StorageError(f"cached {what} {path} cannot be read ({type(exc).__name__}) and its folder is "
                               "read-only; point --cache-dir (or $BENCH_CACHE) at a writable folder") from None
    with lock:
        if path.is_file():
            try:
                return read_json(path)
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                warn(f"cached {what} {path} is damaged ({type(exc).__name__}); rebuilding it")
        data = build()
        write_json_atomic(path, data)
        return data
