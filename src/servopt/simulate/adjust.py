"""Adjustments a calibration applies to a built deployment, in one place.

Four physical quantities no per-op table holds (``servopt.calibrate.model`` fits them):

- ``request_overhead_ms``: from a client's send to the engine queue (tokenization, HTTP, the
  frontend, first scheduling); part of TTFT and E2E, and in a closed loop it delays the next request;
- ``iteration_overhead_ms``: a fixed cost of every forward pass (CPU scheduling, launches);
- ``prefill_scale`` / ``decode_scale``: multiply the step-time tables of prefill work (a chunk alone,
  context attention, the non-attention ops of a mixed pass, which its prefill tokens dominate) and of
  decode work (a decode-only pass, decode attention inside a mixed pass).

Scaling the tables, not the kernel's arithmetic, keeps the simulator loop untouched and makes the
neutral adjustment (0, 0, 1, 1) reproduce the raw model exactly.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from servopt.simulate.engine import Deployment, InstanceKind


class Adjustments(NamedTuple):
    request_overhead_ms: float = 0.0
    iteration_overhead_ms: float = 0.0
    prefill_scale: float = 1.0
    decode_scale: float = 1.0

    @property
    def neutral(self) -> bool:
        return self == Adjustments()


def adjust_kind(kind: InstanceKind, adj: Adjustments) -> InstanceKind:
    """One instance kind with the scales and the iteration overhead (the request overhead is the
    deployment's, :func:`adjust`)."""
    t = kind.tables
    if adj.prefill_scale != 1.0 or adj.decode_scale != 1.0:
        p, d = adj.prefill_scale, adj.decode_scale
        t = t._replace(
            tok_ms=t.tok_ms * p,
            ctx_full_ms=t.ctx_full_ms * p,
            ctx_attn_ms=t.ctx_attn_ms * p,
            gen_full_ms=t.gen_full_ms * d,
            gen_attn_ms=t.gen_attn_ms * d,
        )
    policy = replace(kind.policy, iteration_overhead_ms=adj.iteration_overhead_ms)
    return replace(kind, tables=t, policy=policy)


def adjust(deployment: Deployment, adj: Adjustments) -> Deployment:
    """``deployment`` with the adjustments applied (the same object when they are neutral)."""
    if adj.neutral:
        return deployment
    return replace(
        deployment,
        kinds=tuple(adjust_kind(k, adj) for k in deployment.kinds),
        request_overhead_ms=adj.request_overhead_ms,
    )
