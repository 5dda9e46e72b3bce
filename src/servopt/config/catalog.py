"""Names that live outside the config package: models, systems, backends/versions, layouts.

The loader validates names through the small ``Catalog`` protocol so that tests can substitute a
fake one. ``DefaultCatalog`` asks the real owners: the model registry, the system specs, the perf
database's version slots (aiconfigurator-core's data folders, read as files) and the search's
layout enumeration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Protocol

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
    ) -> Sequence[LayoutLike]: ...


class DefaultCatalog:
    """The real catalog (imports its owners lazily so that loading the config package stays light)."""

    def resolve_model(self, name: str) -> ModelArch:
        return _resolve_model(name)

    def system_names(self) -> Sequence[str]:
        from servopt.perf_db.systems import system_names

        return system_names()

    def compute_dtypes(self, system: str) -> frozenset[str]:
        from servopt.perf_db.systems import load_system

        return frozenset(load_system(system).gpu.peak_flops_per_s)

    def backend_versions(self, system: str, with_next: bool = True) -> Mapping[str, Sequence[str]] | None:
        return _backend_versions(system, with_next)

    def enumerate_layouts(self, *, role: str, **lists) -> Sequence[LayoutLike]:
        from servopt.search.layouts import enumerate_layouts

        return enumerate_layouts(role=role, **lists)


@cache
def _resolve_model(name: str) -> ModelArch:
    from servopt.models.registry import resolve_model

    return resolve_model(name)


@cache
def _backend_versions(system: str, with_next: bool = True) -> dict[str, tuple[str, ...]] | None:
    from servopt.perf_db import locate
    from servopt.perf_db.systems import load_system

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
