"""Build one (system, backend, version) database from aiconfigurator-core's tables, or load it from
the cache when the sources have not changed."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from servopt import cache_store
from servopt.hardware import SystemSpec
from servopt.perf_db import cache, families, locate, sources
from servopt.perf_db.grids import GridFamily
from servopt.perf_db.tables import TABLES, concat, first_wins

GEMM_PREFIX = "gemm:"
GEMM_TABLES = ("gemm_perf", "computescale_perf", "scale_matrix_perf")


# Databases loaded from the cache in this process, by (cache file, fingerprint): the config layer
# probes large-EP coverage before the pipeline opens the same database; the fingerprint (source
# files' size and mtime) still guards every reuse.
_LOADED: dict[tuple, Built] = {}


@dataclass
class Built:
    families: dict[str, GridFamily]
    gemm_arrays: dict[str, np.ndarray]
    # Per table: merged row count, the source files it came from and the rows each source other than
    # the requested version's own file contributed (for `perfdb list`, --json and the run's warning).
    table_info: dict[str, dict]
    from_cache: bool


def _family_prefix(name: str) -> str:
    return f"fam:{name}:"


def build_or_load(system_name: str, system: SystemSpec, backend: str, version: str, cache_root) -> Built:
    measured = system.measured_data
    assert measured is not None
    resolved = {
        t: sources.resolve_sources(measured, backend, version, t, system.empirical.nccl_version)
        for t in TABLES
    }
    files = sorted({s.path for srcs in resolved.values() for s in srcs})
    fp = cache.fingerprint(system.model_dump_json() + f"|{backend}|{version}", files)
    path = cache.cache_path(cache_root, system_name, backend, version)
    memo = _LOADED.get((path, fp))
    if memo is not None:
        return memo
    arrays = cache.load(path, fp)
    if arrays is not None:
        try:
            built = _from_arrays(arrays)
            _LOADED[(path, fp)] = built
            return built
        except (KeyError, ValueError, IndexError, TypeError, AttributeError) as err:
            # Intact bytes that are not a database of this format: never used, rebuilt.
            cache_store.set_aside(path, f"inconsistent content ({type(err).__name__})")
    built = _build(system, backend, version, resolved)
    cache.save(path, _to_arrays(built), fp)
    return built


def _build(system: SystemSpec, backend: str, version: str, resolved) -> Built:
    counted = {t: sources.merge_sources_counted(srcs, t) for t, srcs in resolved.items()}
    merged = {t: cols for t, (cols, _) in counted.items()}
    info = {
        t: {
            "rows": len(merged[t].get("latency", ())),
            "sources": [f"{s.channel}:{s.path.relative_to(locate.systems_root())}" for s in resolved[t]],
            "borrowed": sources.borrowed(resolved[t], counted[t][1]),
        }
        for t in TABLES
    }
    fams = {}
    for spec in families.FAMILIES.values():
        primary = None
        srcs = resolved[spec.table]
        if spec.lanes and srcs and srcs[0].channel == "primary":
            primary = sources.merge_sources(srcs[:1], spec.table)
        cols = merged[spec.table]
        extra = [merged[t] for t in spec.extra_tables if merged[t]]
        if extra:
            parts = [cols, *extra] if cols else extra
            cols = first_wins(concat(parts), TABLES[spec.table].key)
        fams[spec.name] = families.build(spec, cols, primary, system, backend, version)
    gemm_arrays = {}
    try:
        from servopt.perf_db import gemm as gemm_mod
    except ImportError:  # pragma: no cover - the GEMM module ships with servopt
        gemm_mod = None
    if gemm_mod is not None:
        tables = gemm_mod.build_gemm_tables(
            merged["gemm_perf"] or None,
            merged["computescale_perf"] or None,
            merged["scale_matrix_perf"] or None,
            system,
        )
        gemm_arrays = tables.to_arrays()
    return Built(fams, gemm_arrays, info, from_cache=False)


def _to_arrays(built: Built) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, fam in built.families.items():
        out.update(fam.to_arrays(_family_prefix(name)))
    out.update({GEMM_PREFIX + k: v for k, v in built.gemm_arrays.items()})
    out["table_info"] = np.array(json.dumps(built.table_info))
    return out


def _from_arrays(arrays: dict[str, np.ndarray]) -> Built:
    fams = {
        name: GridFamily.from_arrays(arrays, _family_prefix(name), spec.key)
        for name, spec in families.FAMILIES.items()
    }
    gemm_arrays = {k[len(GEMM_PREFIX) :]: v for k, v in arrays.items() if k.startswith(GEMM_PREFIX)}
    info = json.loads(str(arrays["table_info"]))
    if any("borrowed" not in entry for entry in info.values()):
        raise KeyError("borrowed")  # a cache written before borrowed rows were counted: rebuild
    return Built(fams, gemm_arrays, info, from_cache=True)
