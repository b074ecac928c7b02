"""Our own progress bars only: the environment and logging settings that silence datasets / transformers bars
and their advisory warnings. Set by `bench` itself and by every process it starts (workers, run attempts, SLURM
tasks), so a child process is as quiet as its parent without importing the command line."""

from __future__ import annotations

import os


def quiet_libraries() -> None:
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' weight-loading bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(trl|transformers|torch)\b.*")
    for name in ("transformers", "trl", "datasets", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
