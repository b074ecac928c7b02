"""Provenance recorded with every run: git commit (and whether the tree was dirty), package versions, device."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

PACKAGES = ("daa-bench", "torch", "transformers", "trl", "datasets", "accelerate", "tokenizers", "numpy", "pandas",
            "lm-eval")


@lru_cache(maxsize=1)
def git_state() -> dict[str, object]:
    root = Path(__file__).resolve().parent.parent
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None
    commit = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(dirty) if dirty is not None else None}


@lru_cache(maxsize=1)
def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_info(device: object = None) -> dict[str, object]:
    info: dict[str, object] = {"device": str(device) if device is not None else "cpu", "platform": platform.platform(),
                               "python": platform.python_version(), "machine": platform.machine()}
    torch = sys.modules.get("torch")  # a process that computes with torch has imported it; a torch-free run has not,
    if torch is not None:             # and importing it only to record its thread count would cost ~3 s
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["cuda_device"] = torch.cuda.get_device_name(0)
            info["cuda_count"] = torch.cuda.device_count()
    return info


def provenance(device: object = None) -> dict[str, object]:
    return {"git": git_state(), "packages": package_versions(), "device": device_info(device)}
