"""Where aiconfigurator-core's measured data lives, and which (backend, version) pairs it offers.

servopt never imports aiconfigurator-core; it only reads its data files. The package folder is found
with ``importlib.util.find_spec``, which locates a top-level package without executing it.

Layout of the data tree (family-first):
``<systems>/data/<system>/<family>/<backend>/<version>/<table>.parquet``; NCCL is framework-agnostic at
``<family=comm>/nccl/<nccl_version>/``. ``<systems>/query_versions.yaml`` names, per (system, backend),
the queryable version slots ``current`` / ``previous``; ``next`` is derived fleet-wide as the highest
data-backed version newer than ``current``. Other version folders are back-fill sources only.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import zlib
from functools import cache
from pathlib import Path

import yaml

from servopt import cache_store
from servopt.errors import ServoptError, UnknownNameError

BACKENDS = ("trtllm", "vllm", "sglang")
# First-level folders of the legacy layout (<system>/<backend>/<version>) and the framework-agnostic
# communication "backends"; every other first-level folder is a table family.
KNOWN_BACKEND_DIRS = frozenset({"trtllm", "sglang", "vllm", "nccl", "oneccl"})
SLOT_ALIASES = ("current", "previous", "next")
# Files in a version folder that are metadata, not measurements.
METADATA_FILES = frozenset({"collection_meta.yaml", "reuse.yaml", "INCOMPLETE.txt", "SHARED_LAYER_REUSE.txt"})
PEER_PACKAGE = "aiconfigurator_core"
PEER_DIST = "aiconfigurator-core"


@cache
def peer_root() -> Path:
    """The installed aiconfigurator-core package folder (data only; never imported)."""
    spec = importlib.util.find_spec(PEER_PACKAGE)
    if spec is None or spec.origin is None:
        raise ServoptError(
            "perf_db",
            PEER_DIST,
            "measured data needs the aiconfigurator-core package installed (pip install aiconfigurator-core==0.12.0)",
        )
    return Path(spec.origin).parent


def systems_root() -> Path:
    return peer_root() / "systems"


def system_data_dir(measured_data: str) -> Path:
    """``<systems>/data/<measured_data>`` for a servopt system spec's ``measured_data`` name."""
    return systems_root() / "data" / measured_data


def version_key(version: str) -> tuple:
    """Order versions like '1.3.0rc10' < '1.3.0rc20' < '1.3.0' < '0.5.6.post2'-style strings (PEP 440 subset).

    Release numbers compare numerically; a pre-release (a/b/rc) sorts before its release, a post-release
    after it, a dev release before everything with the same release. Unparseable strings sort first.
    """
    m = re.fullmatch(
        r"v?(\d+(?:\.\d+)*)(?:[.-]?(a|b|rc)(\d*))?(?:[.-]?post(\d*))?(?:[.-]?dev(\d*))?", version.lower()
    )
    if m is None:
        return (0, (), 0, 0, 0, 0, version)
    release = tuple(int(p) for p in m.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    pre_rank = {"a": 0, "b": 1, "rc": 2}.get(m.group(2), 3)
    pre_num = int(m.group(3) or 0)
    post = int(m.group(4)) + 1 if m.group(4) is not None else 0
    dev = (0, int(m.group(5) or 0)) if m.group(5) is not None else (1, 0)
    if m.group(5) is not None and m.group(2) is None and m.group(4) is None:
        pre_rank = -1  # X.Y.devN sorts before X.YaN
    return (1, release, pre_rank, pre_num, post, dev, "")


def iter_backend_version_dirs(data_dir: Path, backend: str) -> list[tuple[str, Path]]:
    """Every ``(version, folder)`` for a backend across all table families (sorted for determinism)."""
    return list(_backend_version_dirs(data_dir, backend))


@cache
def _backend_version_dirs(data_dir: Path, backend: str) -> tuple[tuple[str, Path], ...]:
    # Cached per process: source resolution walks the same tree once per table and version, and the
    # installed data package does not change under a running servopt.
    out: list[tuple[str, Path]] = []
    if not data_dir.is_dir():
        return ()
    for entry in sorted(os.listdir(data_dir)):
        path = data_dir / entry
        if entry.startswith(".") or not path.is_dir():
            continue
        if entry == backend:
            parent = path  # legacy layout
        elif entry not in KNOWN_BACKEND_DIRS:
            parent = path / backend
        else:
            continue
        if not parent.is_dir():
            continue
        for version in sorted(os.listdir(parent)):
            vpath = parent / version
            if not version.startswith((".", "_")) and vpath.is_dir():
                out.append((version, vpath))
    return tuple(out)


def version_dir_unusable(version_dir: Path) -> bool:
    """Only the legacy whole-folder INCOMPLETE marker (without a structured sidecar) vetoes a folder."""
    if (version_dir / "collection_meta.yaml").is_file():
        return False
    return (version_dir / "INCOMPLETE.txt").is_file()


def has_perf_files(version_dir: Path) -> bool:
    try:
        entries = os.listdir(version_dir)
    except OSError:
        return False
    return any(
        not e.startswith(".") and e not in METADATA_FILES and (version_dir / e).is_file() for e in entries
    )


def data_versions(data_dir: Path, backend: str) -> list[str]:
    """Versions with at least one usable measured table for this backend, oldest first."""
    found = {
        v
        for v, p in iter_backend_version_dirs(data_dir, backend)
        if not version_dir_unusable(p) and has_perf_files(p)
    }
    return sorted(found, key=version_key)


@cache
def _query_versions_doc() -> dict:
    path = systems_root() / "query_versions.yaml"
    if not path.is_file():
        return {}
    return load_yaml(path) or {}


# libyaml's parser when present (10-15x faster; the peer's trees are large), SafeLoader's semantics.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path):
    return yaml.load(path.read_text(), Loader=YAML_LOADER)


def load_yaml_memo(path: Path):
    """``load_yaml`` through a JSON copy in servopt's cache, keyed by the file's path, size and
    mtime: the peer's reuse manifest takes ~25 ms to parse on every run, its JSON copy 0.5 ms.

    The copy is ``<crc32 hex> <JSON>``: one whose CRC does not match (truncated, edited, not ours)
    is set aside with a warning and the YAML parsed again."""
    from servopt.resources import cache_dir

    st = path.stat()
    # "crc:" keys the checksummed format apart from the plain JSON copies older versions wrote.
    key = hashlib.sha256(f"crc:{path}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache_dir() / "yaml" / f"{key}.json"
    try:
        raw = memo.read_bytes()
    except FileNotFoundError:
        pass
    except OSError as err:
        cache_store.set_aside(memo, f"unreadable: {err.strerror or err}")
    else:
        crc, _, text = raw.partition(b" ")
        try:
            if crc == f"{zlib.crc32(text):08x}".encode():
                return json.loads(text)
        except ValueError:
            pass
        cache_store.set_aside(memo, "checksum mismatch or not JSON")
    doc = load_yaml(path)
    try:
        text = json.dumps(doc).encode()
    except (TypeError, ValueError):
        return doc  # a non-JSON document (dates, sets): parse the YAML every time
    cache_store.write_atomic(memo, lambda fh: fh.write(f"{zlib.crc32(text):08x} ".encode() + text))
    return doc


# A plain top-level ``data_dir: data/<name>  # comment`` line, as every shipped system yaml has.
_PLAIN_DATA_DIR = re.compile(r"^data_dir:[ \t]*([^\s#'\"{}\[\]&*!|>]+)[ \t]*(?:#.*)?$", re.MULTILINE)


def _data_dir_entry(path: Path) -> str | None:
    """A system yaml's ``data_dir``: read off its line when plain (parsing all 17 yamls costs ~50 ms
    per run), else by the YAML parser."""
    text = path.read_text()
    found = _PLAIN_DATA_DIR.findall(text)
    if len(found) == 1:
        return found[0]
    try:
        spec = yaml.load(text, Loader=YAML_LOADER) or {}
    except yaml.YAMLError:
        return None
    if not isinstance(spec, dict) or "data_dir" not in spec:
        return None
    return str(spec["data_dir"])


@cache
def _peer_system_data_dirs() -> tuple[tuple[str, Path], ...]:
    """(peer system name, data folder) for every peer system yaml that has a data folder."""
    out = []
    root = systems_root()
    for entry in sorted(os.listdir(root)):
        if not entry.endswith(".yaml"):
            continue
        data_dir_entry = _data_dir_entry(root / entry)
        if data_dir_entry is None:
            continue
        data_dir = root / data_dir_entry
        if data_dir.is_dir():
            out.append((entry[: -len(".yaml")], data_dir))
    return tuple(out)


@cache
def _fleet_next(backend: str, current: str, excluded: frozenset[str]) -> str | None:
    """Highest data-backed version newer than ``current`` across the defaults-governed systems."""
    key = version_key(current)
    candidates = {
        v
        for name, data_dir in _peer_system_data_dirs()
        if name not in excluded
        for v in data_versions(data_dir, backend)
        if version_key(v) > key
    }
    return max(candidates, key=version_key) if candidates else None


@cache
def version_slots(measured_data: str, backend: str, with_next: bool = True) -> dict[str, str]:
    """``{'current': v, ['previous': v], ['next': v]}`` for one (system data folder, backend).

    Without an authored slot entry the newest data-backed version is the only (``current``) slot.
    Empty when the system has no data for the backend. ``next`` scans every system's data folder;
    ``with_next=False`` skips it where only ``current`` / ``previous`` can matter.
    """
    data_dir = system_data_dir(measured_data)
    versions = data_versions(data_dir, backend)
    if not versions:
        return {}
    doc = _query_versions_doc()
    override = ((doc.get("overrides") or {}).get(measured_data) or {}).get(backend)
    entry = override if override is not None else (doc.get("defaults") or {}).get(backend)
    if not entry or not entry.get("current"):
        return {"current": versions[-1]}
    slots = {"current": str(entry["current"])}
    if entry.get("previous"):
        slots["previous"] = str(entry["previous"])
    if override is None and with_next:
        excluded = frozenset(
            name
            for name, per_backend in (doc.get("overrides") or {}).items()
            if (per_backend or {}).get(backend)
        )
        nxt = _fleet_next(backend, slots["current"], excluded)
        if nxt is not None:
            slots["next"] = nxt
    return slots


def backends_with_data(measured_data: str) -> list[str]:
    return [b for b in BACKENDS if version_slots(measured_data, b, with_next=False)]


def resolve_version(measured_data: str, system: str, backend: str, version: str | None) -> str:
    """Map a requested version (None = current, or a slot alias) to a queryable version."""
    if backend not in BACKENDS:
        raise UnknownNameError("backend", backend, "unknown backend", BACKENDS)
    slots = version_slots(measured_data, backend, with_next=version is not None)
    if not slots:
        raise UnknownNameError(
            "backend",
            backend,
            f"system {system} has no measured data for it",
            backends_with_data(measured_data),
        )
    if version is None:
        return slots["current"]
    if version in slots:
        return slots[version]
    if version in slots.values():
        return version
    allowed = sorted(set(slots.values()), key=version_key) + [a for a in SLOT_ALIASES if a in slots]
    raise UnknownNameError("version", version, f"not a queryable {backend} version on {system}", allowed)
