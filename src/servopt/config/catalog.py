"""What the config package needs to know from outside it: models, systems, backends/versions,
layouts, and which expert-parallel sizes the measured data covers.

The loader asks only through the small ``Catalog`` protocol, so config itself never opens a perf
database or reads a system file, and tests substitute a fake. ``DefaultCatalog`` is the one place
that asks the real owners: the model registry, the hardware specs, the perf database's version
slots (aiconfigurator-core's data folders, read as files), the layout enumeration, and the large-EP
coverage of an opened database (``models.wide_ep``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Protocol

from servopt.errors import ServoptError
from servopt.models.arch import ModelArch


class LayoutLike(Protocol):
    @property
    def gpus(self) -> int: ...


class Catalog(Protocol):
    def resolve_model(self, name: str) -> ModelArch:
        """The architecture for a model name; raises ServoptError (UnknownNameError) if unknown."""
        ...

    def system_names(self) -> Sequence[str]: ...

    def compute_dtypes(self, system: str) -> frozenset[str]:
        """Dtypes the system has tensor-core peaks for (bf16, fp8, int8, fp4)."""
        ...

    def backend_versions(self, system: str, with_next: bool = True) -> Mapping[str, Sequence[str]] | None:
        """Per backend with measured data on ``system``, the versions a user may ask for (aliases
        included). None for a roofline-only system (any backend, no version). ``with_next=False``
        may leave out the fleet-wide ``next`` slot (costly to find) when no version was asked for."""
        ...

    def enumerate_layouts(
        self,
        *,
        role: str,
        is_moe: bool,
        backend: str,
        num_experts: int,
        num_gpu_per_worker: Sequence[int],
        tp_list: Sequence[int],
        pp_list: Sequence[int],
        dp_list: Sequence[int],
        moe_tp_list: Sequence[int],
        moe_ep_list: Sequence[int],
        cp_list: Sequence[int],
    ) -> Sequence[LayoutLike]: ...

    def large_ep_eps(
        self, arch: ModelArch, backend: str, system: str, decode_system: str | None, version: str | None
    ) -> dict[str, list[int]]:
        """Per role (agg, prefill, decode), the EP sizes wider than one node that the measured data
        covers for this model: where non-empty, the default lists union in the multi-node EP ladder."""
        ...


class DefaultCatalog:
    """The real catalog (imports its owners lazily so that loading the config package stays light)."""

    def resolve_model(self, name: str) -> ModelArch:
        return _resolve_model(name)

    def system_names(self) -> Sequence[str]:
        from servopt.hardware import system_names

        return system_names()

    def compute_dtypes(self, system: str) -> frozenset[str]:
        from servopt.hardware import load_system

        return frozenset(load_system(system).gpu.peak_flops_per_s)

    def backend_versions(self, system: str, with_next: bool = True) -> Mapping[str, Sequence[str]] | None:
        return _backend_versions(system, with_next)

    def enumerate_layouts(self, *, role: str, **lists) -> Sequence[LayoutLike]:
        from servopt.models.parallel import enumerate_layouts

        return enumerate_layouts(role=role, **lists)

    def large_ep_eps(
        self, arch: ModelArch, backend: str, system: str, decode_system: str | None, version: str | None
    ) -> dict[str, list[int]]:
        """Per role (agg, prefill, decode), the EP sizes wider than one node that the measured data
        covers for this model (``models.wide_ep``): where non-empty, the default lists union in the
        multi-node EP ladder and replicas may grow to ``WIDE_EP_MAX_GPU_PER_REPLICA``, as in the peer.

        Coverage is read from the perf database (opened from its cache; the pipeline reuses it) at the
        checkpoint's MoE quant mode. A system without measured data, data that cannot be opened
        (reported elsewhere), or a model family/backend servopt has no large-EP graph for
        (``models.wide_ep.MODELLED``) covers nothing.
        """
        from servopt.hardware import load_system
        from servopt.models import wide_ep
        from servopt.perf_db.database import open_database

        if not arch.is_moe or (arch.family, backend) not in wide_ep.MODELLED:
            return {}  # no large-EP graph: the ladder's cross-node tuples would all be rejected
        out: dict[str, list[int]] = {}
        for role, name in (("agg", system), ("prefill", system), ("decode", decode_system or system)):
            try:
                spec = load_system(name)
                if spec.roofline_only:
                    continue
                db = open_database(name, backend, version)
            except ServoptError:
                continue
            cov = wide_ep.coverage(db, arch, arch.quant.moe, backend, spec)
            eps = wide_ep.multi_node_eps(cov, role, spec.node.gpus_per_node)
            if eps:
                out[role] = sorted(eps)
        return out


@cache
def _resolve_model(name: str) -> ModelArch:
    from servopt.models.registry import resolve_model

    return resolve_model(name)


@cache
def _backend_versions(system: str, with_next: bool = True) -> dict[str, tuple[str, ...]] | None:
    from servopt.hardware import load_system
    from servopt.perf_db import locate

    measured = load_system(system).measured_data
    if measured is None:
        return None
    out: dict[str, tuple[str, ...]] = {}
    for backend in locate.BACKENDS:
        slots = locate.version_slots(measured, backend, with_next=with_next)
        if slots:
            concrete = sorted(set(slots.values()), key=locate.version_key)
            out[backend] = (*concrete, *(a for a in locate.SLOT_ALIASES if a in slots))
    return out
