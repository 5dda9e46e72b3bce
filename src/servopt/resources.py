"""Where servopt finds its own data (system specs, model architectures) and its cache."""

from __future__ import annotations

import functools
import logging
import os
import tempfile
from pathlib import Path

from servopt.errors import ServoptError

CACHE_ENV = "SERVOPT_CACHE_DIR"
# The folders the cache writers use; temporary files left in them by killed runs are swept once per
# process, when the cache is first located.
CACHE_FOLDERS = ("perfdb", "yaml")


def data_root() -> Path:
    """servopt's own ``perf_db/`` folder: packaged in a wheel, or the repository root in a checkout."""
    packaged = Path(__file__).parent / "_data" / "perf_db"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "perf_db"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The user cache: ``override`` (the ``--perf_db`` option) > $SERVOPT_CACHE_DIR > platform cache.

    An unusable ``override`` is an error naming it; an unusable environment or platform location
    falls back to a private folder under the system's temporary folder, with one warning.
    """
    if override:
        return _checked(str(override), "--perf_db")
    return _checked(os.environ.get(CACHE_ENV) or "", CACHE_ENV)


def _problem(path: Path) -> str | None:
    """Why ``path`` cannot hold the cache, or None when it can."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return "it exists and is not a folder"
    except NotADirectoryError:
        return "a parent of it is not a folder"
    except OSError as err:
        return err.strerror or str(err)
    if not os.access(path, os.W_OK | os.X_OK):
        return "it is not writable"
    return None


def _fallback() -> Path:
    path = Path(tempfile.gettempdir()) / f"servopt-cache-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    if path.is_symlink() or path.stat().st_uid != os.getuid():
        raise OSError(f"{path} belongs to another user")
    return path


@functools.cache
def _checked(chosen: str, source: str) -> Path:
    """Resolve and check once per process (a warning is worth one line, not one per open)."""
    from servopt import cache_store

    if chosen:
        path = Path(chosen)
    else:
        from platformdirs import user_cache_dir

        path = Path(user_cache_dir("servopt"))
    why = _problem(path)
    if why is not None:
        if source == "--perf_db":
            raise ServoptError(source, str(path), f"cannot be used as the cache folder: {why}")
        try:
            fallback = _fallback()
        except OSError as err:
            raise ServoptError(
                source, str(path), f"cannot be used as the cache folder: {why}; {err}"
            ) from None
        logging.getLogger("servopt.cache").warning(
            "cache: cannot use %s (%s); using %s for this run", path, why, fallback
        )
        path = fallback
    for folder in CACHE_FOLDERS:
        cache_store.sweep_temp_files(path / folder)
    return path
