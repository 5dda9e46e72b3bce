"""How servopt writes its cache files and what it does with ones it cannot trust.

Everything in the cache is untrusted on the way back in: a run may have been killed mid-write, a
disk may flip bits, a user may edit or truncate a file. The readers (``perf_db.cache``, the YAML
memo in ``perf_db.locate``) verify what they read; this module gives them the three moves they share:

- ``write_atomic``: write to a temporary name in the same folder and rename it into place, so a
  reader sees the old file or the whole new one, never half of one. A cache that cannot be written
  (read-only, full, not a folder) costs speed, not the answer: one warning, and the run goes on.
- ``set_aside``: a damaged file is renamed to ``<name>.damaged`` (the latest one kept, for a bug
  report), with one warning line, so it is never read again and the next write rebuilds it.
- ``sweep_temp_files``: temporary files left by killed runs are removed by a later run once their
  writer is gone (its pid is in the name) or they are an hour old.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger("servopt.cache")

TMP_SUFFIX = ".tmp"
DAMAGED_SUFFIX = ".damaged"
# A temporary file this old is a dead writer's even when its pid has been reused (a cache file is
# written in well under a second).
STALE_TMP_S = 3600.0


def _temp_path(path: Path) -> Path:
    # The pid tells ``sweep_temp_files`` whether the writer is still alive; the time keeps two
    # threads of one process apart.
    return path.parent / f".{path.name}.{os.getpid()}.{time.monotonic_ns()}{TMP_SUFFIX}"


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> bool:
    """``write(fh)`` into ``path`` through a temporary file and a rename; False (with one warning)
    when the cache folder cannot be written. Errors raised by ``write`` itself propagate."""
    tmp = _temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
        return True
    except OSError as err:
        log.warning("cache: cannot write %s (%s); continuing without caching it", path, err.strerror or err)
        return False
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def set_aside(path: Path, why: str) -> None:
    """Move a damaged cache file out of the way (``<name>.damaged``) and say so in one line."""
    aside = path.with_name(path.name + DAMAGED_SUFFIX)
    try:
        os.replace(path, aside)
        where = f"set aside as {aside.name}"
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()
        where = "removed"
    log.warning("cache: %s is damaged (%s); %s, rebuilding it", path, why, where)


def _writer_alive(name: str) -> bool:
    """False when the pid in a temporary file's name is no running process (unknown names: True,
    left to the age rule)."""
    parts = name.split(".")
    pid = parts[-3] if len(parts) >= 4 else ""
    if not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def sweep_temp_files(folder: Path) -> int:
    """Remove the temporary files of dead or long-gone writers in ``folder``; how many went."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if not entry.name.endswith(TMP_SUFFIX):
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP_S
            if old or not _writer_alive(entry.name):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed
