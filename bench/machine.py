"""This machine, measured: cores, GPUs, and the fp32 matmul peak that utilisation is stated against.

`matmul_peak()` times square fp32 matmuls for about a second (the best of several repeats, so a busy neighbour
lowers it less) and keeps the best answer seen per (host, device, threads) in the cache folder: every call measures
again (half a second) and the cache only ever rises, so a peak first measured on a busy machine (seen here: 33
GFLOP/s under load against 191 quiet) cannot keep inflating utilisation afterwards. The suite's closing line
and the report divide the FLOPs a suite computed by wall time × this peak. `bench env` prints it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path


def cpu_cores() -> int:
    """Cores this process may use (the scheduler's affinity mask: a SLURM allocation or taskset counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def cuda_devices() -> list[str]:
    """Names of the visible CUDA devices ([] without torch or CUDA); never initialises CUDA in a CPU-only run."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def check_device(preference: str) -> None:
    """Refuse, before anything trains, a device this machine cannot give (one line, exit 2 through UserError):
    `cuda` on a CPU-only torch, `cuda:K` past the last GPU, `mps` without Metal, or a name torch cannot parse.
    Without this check every run fails alike and the suite ends with the runs-failed exit. Here, not in
    bench.modeling, so that `bench run` with the default `auto` imports no torch."""
    if preference in (None, "", "auto"):  # nothing to refuse: and no torch import (~3 s) for a torch-free suite
        return
    import torch

    from bench.errors import UserError

    try:
        device = torch.device(preference)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"--device {preference!r}: not a device name; use auto, cpu, cuda or cuda:K") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            cuda = torch.version.cuda
            build = "a CPU-only build of torch" if cuda is None else f"torch built for CUDA {cuda}"
            raise UserError(f"--device {preference}: no CUDA device here ({build}, torch {torch.__version__}); "
                            "use --device cpu (or auto), or install a CUDA build of torch (docs/gpu.md)")
        if device.index is not None and device.index >= count:
            raise UserError(f"--device {preference}: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"--device {preference}: Metal (mps) is not available here; use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"--device {preference}: daa-bench runs on cpu, cuda or mps, not {device.type}")


def measure_matmul_peak(device: str = "cpu", threads: int | None = None, seconds: float = 1.0, n: int = 1024) -> float:
    """FLOP/s of fp32 n×n matmuls on `device` with `threads` intra-op threads (torch's current count if None)."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, device=device)
        b = torch.randn(n, n, device=device)
        sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
        a @ b  # warm-up (thread pool, kernels)
        sync()
        best, deadline = 0.0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            for _ in range(4):
                a @ b
            sync()
            best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t))
        return best
    finally:
        torch.set_num_threads(before)


def matmul_peak(cache_dir: Path | None, device: str = "cpu", threads: int | None = None) -> dict:
    """{"flops_per_s", "device", "threads", "host", "measured_at"}, measured once per machine and cached."""
    import torch

    threads = threads or torch.get_num_threads()
    device = str(device)
    key = f"{platform.node()}-{device.replace(':', '')}-{threads}t"
    path = Path(cache_dir) / "machine" / f"matmul-peak-{key}.json" if cache_dir else None
    cached = None
    if path is not None and path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if not float(cached.get("flops_per_s", 0)) > 0:
                cached = None
        except (OSError, ValueError):
            cached = None
    seconds = 0.5 if cached else 1.0
    record = {"flops_per_s": measure_matmul_peak(device, threads if device == "cpu" else None, seconds=seconds),
              "device": device, "threads": threads, "host": platform.node(),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if cached and float(cached["flops_per_s"]) >= record["flops_per_s"]:
        return cached  # the best seen: a busy moment now does not lower the peak
    if path is not None:
        try:
            from bench.io import write_json_atomic

            write_json_atomic(path, record)
        except OSError:
            pass  # an unwritable cache only costs a re-measurement
    return record


def folder_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


ENV_PACKAGES = ("daa-bench", "torch", "transformers", "trl", "datasets", "accelerate", "lm-eval", "submitit",
                "pandas", "numpy")


def env_text(cache_dir=None) -> str:
    """`bench env`: what a bug report or a paper's appendix needs about this machine (like `trl env`)."""
    import importlib.metadata
    import shutil

    from bench.io import cache_root

    lines = [f"python: {platform.python_version()} ({platform.platform()})"]
    for name in ENV_PACKAGES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"{name}: {version}")
    cores = cpu_cores()
    lines.append(f"cpu cores usable: {cores} (of {os.cpu_count()})")
    gpus = cuda_devices()
    lines.append("cuda devices: " + (", ".join(f"{i}: {g}" for i, g in enumerate(gpus)) if gpus else "none")
                 + (f" (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})"
                    if "CUDA_VISIBLE_DEVICES" in os.environ else ""))
    lines.append(f"device (auto): {'cuda' if gpus else 'cpu'}")
    root = cache_root(cache_dir)
    size = folder_size(root) if root.is_dir() else 0
    lines.append(f"cache: {root} ({size / 1e6:.1f} MB)")
    lines.append("slurm: " + (f"sbatch at {shutil.which('sbatch')}" if shutil.which("sbatch") else "no sbatch on PATH")
                 + (f", SLURM_CONF={os.environ['SLURM_CONF']}" if "SLURM_CONF" in os.environ else ""))
    t = time.perf_counter()
    peak = measure_matmul_peak("cpu", cores)
    lines.append(f"fp32 matmul peak, cpu, {cores} threads: {peak / 1e9:.0f} GFLOP/s (1024x1024, measured in "
                 f"{time.perf_counter() - t:.1f}s)")
    if cores > 1:
        lines.append(f"fp32 matmul peak, cpu, 1 thread: {measure_matmul_peak('cpu', 1, seconds=0.5) / 1e9:.0f} GFLOP/s")
    if gpus:
        lines.append(f"fp32 matmul peak, cuda:0: {measure_matmul_peak('cuda', None, n=4096) / 1e12:.1f} TFLOP/s")
    return "\n".join(lines)
