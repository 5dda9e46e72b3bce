"""The model at each parallel layout, and worker candidates as a struct of arrays.

A :class:`ModelSetup` fixes everything but the layout: architecture, backend, quant modes,
speculative depth and GPU system. :class:`LayoutOps` holds its op lists at every layout being
searched (invalid layouts are dropped with their reason, as the peer skips them). A candidate is
one (layout, batch size [, context-token budget]) row of :class:`Candidates`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from servopt.errors import ServoptError
from servopt.hardware import SystemSpec
from servopt.models import wide_ep
from servopt.models.arch import ModelArch
from servopt.models.decompose import decompose
from servopt.models.ops import PhaseOps, QuantModes
from servopt.models.parallel import Layout
from servopt.models.wide_ep import Coverage


class ModelSetup(NamedTuple):
    arch: ModelArch
    backend: str
    quant: QuantModes
    system: SystemSpec
    version: str | None = None
    nextn: int = 0


class Workload(NamedTuple):
    """Request shape: input and output lengths, and the cached prefix of the input."""

    isl: int
    osl: int
    prefix: int = 0


class LayoutOps(NamedTuple):
    """Op lists per layout (index = layout id) plus the per-layout arrays the metrics need."""

    setup: ModelSetup
    layouts: tuple[Layout, ...]
    ops: tuple[PhaseOps, ...]
    skipped: tuple[tuple[Layout, str], ...]

    @property
    def context_ops(self):
        return [p.context for p in self.ops]

    @property
    def generation_ops(self):
        return [p.generation for p in self.ops]

    def column(self, name: str) -> np.ndarray:
        """tp, pp, dp, moe_tp, moe_ep or gpus of every layout."""
        if name == "gpus":
            return np.array([lay.gpus for lay in self.layouts], dtype=np.int64)
        return np.array([getattr(lay, name) for lay in self.layouts], dtype=np.int64)

    @property
    def weight_bytes(self) -> np.ndarray:
        return np.array([p.weight_bytes for p in self.ops], dtype=np.float64)


def large_ep_coverage(db, setup: ModelSetup) -> Coverage:
    """The database's large-EP coverage for this model (empty: every layout stays fused)."""
    q = setup.quant
    return wide_ep.coverage(
        db, setup.arch, q.moe, setup.backend, setup.system, gemm_quant=q.gemm, kv_quant=q.kvcache
    )


def build_layout_ops(
    setup: ModelSetup,
    layouts: Iterable[Layout],
    *,
    skip_invalid: bool = True,
    db=None,
    role: str = "agg",
) -> LayoutOps:
    """Decompose the model at every layout. With ``skip_invalid`` a layout the model cannot take is
    recorded in ``skipped`` (the peer silently skips it); otherwise its error propagates.

    With ``db`` the data's large-EP coverage decides, per layout and ``role``, between the fused
    MoE graph and the all-to-all one (and rejects uncovered cross-node EP); without it every
    layout is priced fused, unchecked.
    """
    cov = large_ep_coverage(db, setup) if db is not None else None
    kept, ops, skipped = [], [], []
    for layout in layouts:
        try:
            ops.append(
                decompose(
                    setup.arch,
                    layout,
                    setup.quant,
                    setup.backend,
                    setup.system,
                    setup.nextn,
                    large_ep=cov,
                    role=role,
                )
            )
        except ServoptError as err:
            if not skip_invalid:
                raise
            skipped.append((layout, str(err)))
            continue
        kept.append(layout)
    return LayoutOps(setup, tuple(kept), tuple(ops), tuple(skipped))


class Candidates(NamedTuple):
    """Worker candidates: layout id, batch size per GPU group, context-token budget (agg only)."""

    layout: np.ndarray
    batch: np.ndarray
    ctx_tokens: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.layout)

    def take(self, index) -> Candidates:
        return Candidates(self.layout[index], self.batch[index], self.ctx_tokens[index])


def grid(n_layouts: int, batch_sizes: Sequence[int], ctx_tokens: Sequence[int] = (0,)) -> Candidates:
    """Every layout x batch size x context-token budget, layout-major."""
    rows = np.array(list(itertools.product(range(n_layouts), batch_sizes, ctx_tokens)), dtype=np.int64)
    if rows.size == 0:
        return Candidates(*(np.zeros(0, dtype=np.int64) for _ in range(3)))
    return Candidates(rows[:, 0], rows[:, 1], rows[:, 2])
