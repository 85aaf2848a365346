"""Where caches live (configurable by environment variables)."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Derived, re-creatable artefacts (fitted priors): $DIPBENCH_CACHE or <repo>/results/cache."""
    return Path(os.environ.get("DIPBENCH_CACHE", ROOT / "results" / "cache"))


def resources_dir() -> Path:
    """Downloaded checkpoints and datasets: $DIPBENCH_RESOURCES or <repo>/resources."""
    return Path(os.environ.get("DIPBENCH_RESOURCES", ROOT / "resources"))
