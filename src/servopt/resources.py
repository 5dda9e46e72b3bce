"""Where servopt finds its own data (system specs, model architectures) and its cache."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SERVOPT_CACHE_DIR"


def data_root() -> Path:
    """servopt's own ``perf_db/`` folder: packaged in a wheel, or the repository root in a checkout."""
    packaged = Path(__file__).parent / "_data" / "perf_db"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "perf_db"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The user cache: ``override`` (the ``--perf_db`` option) > $SERVOPT_CACHE_DIR > platform cache."""
    if override:
        path = Path(override)
    elif os.environ.get(CACHE_ENV):
        path = Path(os.environ[CACHE_ENV])
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("servopt"))
    path.mkdir(parents=True, exist_ok=True)
    return path
