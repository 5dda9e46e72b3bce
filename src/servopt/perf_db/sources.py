"""Which parquet files feed one measured table of a (system, backend, version), in priority order.

The peer's shared-layer resolution, re-derived from its data tree:

1. the requested version's own file;
2. donors declared in the requested version folder's ``reuse.yaml`` (file order; the only way to
   borrow from a newer version);
3. the same backend's strictly older versions, nearest first;
4. other backends' versions (newest first, backends in name order), restricted to the rows whose
   ``kernel_source`` ``perf_data_reuse_manifest.yaml`` lists as shareable with the active backend.

Framework-agnostic NCCL never inherits (aiconfigurator-core 0.12.0 still lets the custom-allreduce
table back-fill from older versions of the same backend). Rows are merged
first-source-wins per table key (:func:`load_table`).

Where the rule comes from: the peer's shared-layer source resolution (``perf_database/
source_resolution.rs`` in its repository, described in the shared reference's section 1.1), and its
behaviour: its h200_sxm/sglang 0.5.14 database prices DeepSeek-V3 large EP from wide-EP tables that
only 0.5.12, 0.5.10 and 0.5.6.post2 ship. A table (or some of its rows) that comes from anything but
the requested version's own file is *borrowed*: :func:`borrowed` names each such source with the
rows it contributed, for ``perfdb list``, ``--json`` and the run's warning line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml

from servopt.errors import ServoptError, UnknownNameError
from servopt.perf_db import locate
from servopt.perf_db.tables import concat, first_rows, read_parquet, table_spec

MANIFEST = "perf_data_reuse_manifest.yaml"
SHARED_TIERS = frozenset({"shared", "shared_fallback"})
NCCL_BACKEND = "nccl"


@dataclass(frozen=True)
class Source:
    """One file feeding a table: its path, the channel that admitted it, and an optional row filter."""

    path: Path
    version: str
    channel: str  # primary | declared_reuse | fallback | cross_backend
    kernel_sources: frozenset[str] | None = None
    backend: str = ""


def _op_file_path(data_dir: Path, backend: str, version: str, filename: str) -> Path | None:
    for v, vdir in locate.iter_backend_version_dirs(data_dir, backend):
        if v != version or locate.version_dir_unusable(vdir):
            continue
        candidate = vdir / filename
        if candidate.is_file():
            return candidate
    return None


def _reuse_donors(data_dir: Path, backend: str, version: str, table: str) -> list[str]:
    donors: list[str] = []
    for v, vdir in locate.iter_backend_version_dirs(data_dir, backend):
        reuse = vdir / "reuse.yaml"
        if v != version or not reuse.is_file():
            continue
        try:
            doc = locate.load_yaml(reuse) or {}
        except yaml.YAMLError as err:
            raise ServoptError("perf_db", str(reuse), f"malformed reuse.yaml: {err}") from None
        for entry in doc.get("reuse") or []:
            if isinstance(entry, dict) and entry.get("table") == table and entry.get("from_version"):
                donor = str(entry["from_version"])
                if donor not in donors:
                    donors.append(donor)
    return donors


@cache
def _manifest_groups() -> tuple[dict, ...]:
    path = locate.systems_root() / MANIFEST
    if not path.is_file():
        return ()
    doc = locate.load_yaml_memo(path) or {}
    return tuple(g for g in doc.get("groups") or [] if isinstance(g, dict))


def _cross_backend_filters(filename: str, backend: str) -> dict[str, frozenset[str]]:
    """Per sibling backend, the kernel_source values the active backend may inherit for this file."""
    per_framework: dict[str, set[str]] = {}
    for group in _manifest_groups():
        op_file = str(group.get("op_file") or "")
        if op_file.endswith(".txt"):
            op_file = op_file[: -len(".txt")] + ".parquet"
        if op_file != filename or group.get("tier") not in SHARED_TIERS or not group.get("kernel_source"):
            continue
        frameworks = {str(f).lower() for f in group.get("frameworks") or []}
        if backend not in frameworks:
            continue
        for fw in frameworks:
            per_framework.setdefault(fw, set()).add(str(group["kernel_source"]))
    return {fw: frozenset(ks) for fw, ks in sorted(per_framework.items()) if fw != backend}


def resolve_sources(
    measured_data: str, backend: str, version: str, table: str, nccl_version: str
) -> list[Source]:
    """The ordered source files of one table (existing files only)."""
    spec = table_spec(table)
    data_dir = locate.system_data_dir(measured_data)
    if spec.framework_agnostic:
        path = _op_file_path(data_dir, NCCL_BACKEND, nccl_version, spec.filename)
        return [Source(path, nccl_version, "primary", backend=NCCL_BACKEND)] if path else []
    sources: list[Source] = []
    primary = _op_file_path(data_dir, backend, version, spec.filename)
    if primary is not None:
        sources.append(Source(primary, version, "primary", backend=backend))
    donors = []
    for donor in _reuse_donors(data_dir, backend, version, table):
        path = _op_file_path(data_dir, backend, donor, spec.filename)
        if path is not None:
            sources.append(Source(path, donor, "declared_reuse", backend=backend))
            donors.append(donor)
    requested = locate.version_key(version)
    older = sorted(
        {
            v
            for v, _ in locate.iter_backend_version_dirs(data_dir, backend)
            if v != version and v not in donors and locate.version_key(v) < requested
        },
        key=locate.version_key,
        reverse=True,
    )
    for v in older:
        path = _op_file_path(data_dir, backend, v, spec.filename)
        if path is not None:
            sources.append(Source(path, v, "fallback", backend=backend))
    for framework, kernel_sources in _cross_backend_filters(spec.filename, backend).items():
        versions = sorted(
            {v for v, _ in locate.iter_backend_version_dirs(data_dir, framework)},
            key=locate.version_key,
            reverse=True,
        )
        for v in versions:
            path = _op_file_path(data_dir, framework, v, spec.filename)
            if path is not None:
                sources.append(Source(path, v, "cross_backend", kernel_sources, framework))
    return sources


def merge_sources(sources: list[Source], table: str) -> dict[str, np.ndarray]:
    """Read every source, apply its kernel_source filter, and merge first-source-wins per key."""
    return merge_sources_counted(sources, table)[0]


def merge_sources_counted(sources: list[Source], table: str) -> tuple[dict[str, np.ndarray], list[int]]:
    """``merge_sources`` and, per source, how many of the merged rows it contributed."""
    spec = table_spec(table)
    parts = []
    for source in sources:
        cols = read_parquet(source.path, spec)
        if source.kernel_sources is not None:
            keep = np.array([k in source.kernel_sources for k in cols["kernel_source"]], dtype=bool)
            cols = {k: v[keep] for k, v in cols.items()}
        parts.append(cols)
    if not parts:
        return {}, []
    merged = concat(parts)
    if len(merged["latency"]) == 0:
        return merged, [0] * len(parts)
    first = first_rows(merged, spec.key)
    bounds = np.cumsum([len(p["latency"]) for p in parts])
    counts = np.bincount(np.searchsorted(bounds, first, side="right"), minlength=len(parts))
    return {k: v[first] for k, v in merged.items()}, [int(c) for c in counts]


def borrowed(sources: list[Source], counts: list[int]) -> list[dict]:
    """The sources other than the requested version's own file that contributed rows."""
    return [
        {"backend": s.backend, "version": s.version, "channel": s.channel, "rows": n}
        for s, n in zip(sources, counts, strict=True)
        if s.channel != "primary" and n > 0
    ]


def load_table(system: str, backend: str, version: str | None, table: str) -> dict[str, np.ndarray]:
    """Resolved column dict of one measured table: rows merged first-source-wins, latency in ms.

    ``system`` is a servopt system name (``perf_db/systems/<system>.yaml``), ``version`` a queryable
    version or slot alias (None = current). Returns ``{}`` when no source holds the table.
    """
    from servopt.hardware import load_system

    spec = load_system(system)
    if spec.measured_data is None:
        raise UnknownNameError("system", system, "is roofline-only (no measured tables)", [])
    resolved = locate.resolve_version(spec.measured_data, system, backend, version)
    sources = resolve_sources(spec.measured_data, backend, resolved, table, spec.empirical.nccl_version)
    return merge_sources(sources, table)
