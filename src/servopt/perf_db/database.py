"""One queryable performance database per (system, backend, version): measured grids or rooflines.

Every query method takes numeric arguments as array-likes (broadcast together) and categorical
arguments (quant modes, op names) as scalars, and returns float64 latency in ms of ONE op instance,
with the peer's per-op wrappers applied. Slice-key numeric arguments (kv heads, head_dim, window,
MoE shape, GPU counts) may be arrays too: key tuples map to slice ids vectorised and each family
runs ONE kernel call over the deduplicated queries. ``provenance=True`` also returns an int8 array:
0 exact, 1 interpolated, 2 edge-corrected, 3 extrapolated, 4 sol (-1 missing, with ``missing="nan"``).
"""

from __future__ import annotations

from servopt.errors import UnknownNameError
from servopt.hardware import SystemSpec, load_system, system_names
from servopt.perf_db import locate, sol
from servopt.perf_db.attention_queries import AttentionQueries
from servopt.perf_db.build import Built, build_or_load
from servopt.perf_db.comm_queries import NCCL_OPS, CommQueries
from servopt.perf_db.gemm_queries import GemmQueries
from servopt.perf_db.grids import GridFamily
from servopt.perf_db.mla_queries import MLA_BMM_OPS, MlaQueries
from servopt.perf_db.moe_queries import MoeQueries
from servopt.perf_db.query_base import PROV_SOL
from servopt.perf_db.wide_ep_queries import WideEpQueries
from servopt.resources import cache_dir as resolve_cache_dir

__all__ = ["MLA_BMM_OPS", "NCCL_OPS", "PROV_SOL", "PerfDatabase", "open_database"]


def open_database(
    system: str,
    backend: str = "trtllm",
    version: str | None = None,
    cache_dir: str | None = None,
    sol: bool = False,
) -> PerfDatabase:
    """Open (building on first use, then from the cache) the database of one system/backend/version.

    ``cache_dir`` overrides the cache location (else $SERVOPT_CACHE_DIR, else the user cache).
    """
    spec = load_system(system)
    if spec.roofline_only:
        if backend not in locate.BACKENDS:
            raise UnknownNameError("backend", backend, "unknown backend", locate.BACKENDS)
        return PerfDatabase(system, spec, backend, version or "sol", None, sol=True)
    resolved = locate.resolve_version(spec.measured_data, system, backend, version)
    if sol:
        return PerfDatabase(system, spec, backend, resolved, None, sol=True)
    built = build_or_load(system, spec, backend, resolved, resolve_cache_dir(cache_dir))
    return PerfDatabase(system, spec, backend, resolved, built, sol=False)


class PerfDatabase(GemmQueries, AttentionQueries, MlaQueries, MoeQueries, CommQueries, WideEpQueries):
    """Batched latency queries over one database (see the module docstring for conventions)."""

    def __init__(
        self, name: str, system: SystemSpec, backend: str, version: str, built: Built | None, sol: bool
    ):
        self.system_name = name
        self.system = system
        self.backend = backend
        self.version = version
        self.sol = sol
        self.roofline_only = system.roofline_only
        self._built = built
        self.families: dict[str, GridFamily] = built.families if built else {}
        self._gemm_tables = None

    # ------------------------------------------------------------------ analytic
    def mem_op_ms(self, nbytes):
        return sol.mem_op_ms(self.system, nbytes, self.sol)

    def p2p_ms(self, nbytes):
        return sol.p2p_ms(self.system, nbytes, self.sol)


def known_systems() -> list[str]:
    return system_names()
