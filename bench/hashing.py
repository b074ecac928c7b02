"""Content hashes: sha256 of canonical JSON. Run ids, world keys, stage cache keys all hash through here, so a
world builder can key its cache without importing the suite schema (bench.suite imports the worlds)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def stable_hash(obj: Any) -> str:
    """sha256 of canonical JSON (sorted keys, repr-exact floats)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
