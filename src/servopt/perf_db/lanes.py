"""Attention kernel lanes: which ``kernel_source`` rows an attention slice is served from.

Attention tables hold several kernels ("lanes", e.g. sglang ``fa3`` and ``triton``) for the same
shapes. A query is answered in full by the first lane, in walk order, that has the requested slice:

1. the framework-default lane for (backend, version, SM) from aiconfigurator-core's
   ``attention_lane_defaults.yaml`` (floor-matched on version);
2. lanes present in the requested version's own rows, then lanes inherited from older versions, each
   tier ranked by measured coverage (slices, then points, then name);
3. any other table lane in the order rows were loaded.

Without a map entry for (backend, version, SM) the walk is just the load order (3).
"""

from __future__ import annotations

import re

import numpy as np

from servopt.perf_db import locate

DEFAULT_LANE = "default"
# The canonical user-facing lane vocabulary (lanes that are not table kernel names).
KNOWN_LANES = ("fa3", "fla", "flashinfer", "triton", "trtllm_mha")
_LEADING_DIGITS = re.compile(r"^(\d+)")


def _version_tuple(v: str) -> tuple[int, ...]:
    parts: list[int] = []
    for segment in str(v).split("."):
        if segment.isdigit():
            parts.append(int(segment))
            continue
        m = _LEADING_DIGITS.match(segment)
        if m:
            parts.append(int(m.group(1)))
        break
    return tuple(parts) if parts else (0,)


def framework_default(backend: str, version: str, sm_version: int) -> tuple[str | None, bool]:
    """(pinned lane or None, whether the map had an entry for this backend/version/SM)."""
    path = locate.systems_root() / "attention_lane_defaults.yaml"
    doc = locate.load_yaml(path) if path.is_file() else {}
    backend_map = (doc or {}).get(backend) or {}
    req = _version_tuple(version)
    valid = [(v, _version_tuple(v)) for v in backend_map if _version_tuple(v) <= req]
    if not valid:
        return None, False
    best = max(valid, key=lambda x: x[1])[0]
    lane = (backend_map[best] or {}).get(sm_version)
    if lane is None:
        return None, False
    return (None if lane == DEFAULT_LANE else str(lane)), True


def density(lanes: np.ndarray, slice_keys: np.ndarray) -> dict[str, tuple[int, int]]:
    """Per lane: (number of distinct slice keys, number of measured points)."""
    out: dict[str, tuple[int, int]] = {}
    for lane in np.unique(lanes):
        mask = lanes == lane
        out[str(lane)] = (len(np.unique(slice_keys[mask])), int(mask.sum()))
    return out


def walk_order(
    backend: str,
    version: str,
    sm_version: int,
    shared: dict[str, tuple[int, int]],
    primary: dict[str, tuple[int, int]],
    load_order: list[str],
) -> list[str]:
    """The lanes present in the table, in the order a slice lookup tries them."""
    pinned, matched = framework_default(backend, version, sm_version)
    if pinned is None and not matched:
        named: list[str] = [DEFAULT_LANE]
    else:
        pinned_t = (pinned,) if pinned else ()

        def rank(d: dict[str, tuple[int, int]]):
            return lambda lane: (-d.get(lane, (0, 0))[0], -d.get(lane, (0, 0))[1], lane)

        def tiered(d: dict[str, tuple[int, int]]) -> list[str]:
            donors = [lane for lane in KNOWN_LANES if lane not in pinned_t]
            order = list(pinned_t) + donors + [DEFAULT_LANE]
            known = sorted(donors, key=rank(d))
            leftovers = sorted((lane for lane in d if lane not in order), key=rank(d))
            return [*pinned_t, *known, DEFAULT_LANE, *leftovers]

        shared_order = tiered(shared)
        if primary:
            primary_tier = [lane for lane in tiered(primary) if lane in primary and lane not in pinned_t]
            shared_tier = [lane for lane in shared_order if lane not in primary and lane not in pinned_t]
            named = [*pinned_t, *primary_tier, *shared_tier]
        else:
            named = shared_order
    present = set(shared)
    walk = [lane for lane in named if lane in present]
    walk += [lane for lane in load_order if lane not in walk]
    return walk
