"""Deployments to and from the "cpsat" composition model's variables (by variable index).

A model (``compose_model.ComposeModel``) has one slot of variables per replica type. Reading a
solution takes each used slot's choices (prefill option and x, decode option and y, size, count)
and recomputes the replica's rate from them; hinting writes a known deployment back as a
complete assignment, every variable of an unused slot zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from servopt.search.compose_problem import Choice
from servopt.search.replicas import ReplicaRows
from servopt.search.xpyd_model import Packing

if TYPE_CHECKING:
    from servopt.search.compose_model import ComposeModel


@dataclass(frozen=True)
class Slot:
    """Variable indices of one replica type (-1 or empty: not in this model)."""

    use: int
    a: np.ndarray  # prefill one-hot
    n: np.ndarray  # prefill workers per option
    x: int
    b: np.ndarray  # decode one-hot
    m: np.ndarray  # decode workers per option (agg: the one-hot itself)
    y: int
    z: np.ndarray  # size one-hot
    g: int
    r: int
    cs: np.ndarray  # count per size (packed)
    c: int  # count (packed)
    bits: np.ndarray  # binary digits of the count (packed, binary product)
    w: np.ndarray  # value shares: per digit (packed, binary) or per size (identical)
    v: int  # this type's value c * r


def slot_of(model: ComposeModel, k: int) -> Slot:
    """Slot k's variable indices in a built model."""

    def idx(variables) -> np.ndarray:
        return np.array([v.index for v in variables], dtype=np.int64)

    agg, ident = model.p.agg, model.identical
    return Slot(
        use=model.use[k].index,
        a=idx(() if agg else model.a[k]),
        n=idx(() if agg else model.n[k]),
        x=-1 if agg else model.x[k].index,
        b=idx(model.b[k]),
        m=idx(model.m[k]),
        y=model.y[k].index,
        z=idx(model.z[k]),
        g=model.g[k].index,
        r=model.r[k].index,
        cs=idx(() if ident else model.cs[k]),
        c=-1 if ident else model.c[k].index,
        bits=idx(model.bits[k] if model.bits else ()),
        w=idx(model.w[k] if model.w else ()),
        v=model.v[k].index,
    )


def read_choice(model: ComposeModel, sol: np.ndarray) -> Choice:
    """The deployment in a solution (values by variable index), rates recomputed from choices."""
    p, types = model.p, []
    for slot in model.slots:
        if not sol[slot.use]:
            continue
        j, y = int(np.argmax(sol[slot.b])), int(sol[slot.y])
        i, x, units = -1, 0, y * int(p.d_units[j])
        if not p.agg:
            i, x = int(np.argmax(sol[slot.a])), int(sol[slot.x])
            units = min(x * int(p.p_units[i]), units)
        j = _lowest_level(p, j, y, units)
        units = max(
            units, min(x * int(p.p_units[i]), y * int(p.d_units[j])) if not p.agg else int(p.d_units[j])
        )
        pos = int(np.argmax(sol[slot.z]))
        count = int(model._copies[pos]) if model.identical else int(sol[slot.cs[pos]])
        types.append((int(model.sizes[pos]), units, int(p.d_level[j]), i, x, j, y, count))
    cols = np.array(types, dtype=np.int64).T
    rows, counts = ReplicaRows(*cols[:7]), cols[7]
    packing = Packing(
        counts=counts,
        value=int(np.dot(counts, rows.units)),
        tpot_level=int(rows.level.max()),
        gpus_used=int(np.dot(counts, rows.size)),
    )
    return Choice(rows=rows, packing=packing)


def _lowest_level(p, j: int, y: int, units: int) -> int:
    """The decode (agg) option of lowest TPOT level that can stand in for option j: same GPUs,
    same pairing key, TTFT met, and y workers of it still deliver the replica's rate.

    The objective leaves the level free among equally good deployments (``ComposeModel.solve``
    re-solves below it until the value drops); taking the lowest level here saves those solves.
    """
    same = (p.d_gpus == p.d_gpus[j]) & (p.d_key == p.d_key[j]) & p.d_ttft_ok
    able = same & (y * p.d_units >= units) & (p.d_level < p.d_level[j])
    if not able.any():
        return j
    candidates = np.flatnonzero(able)
    return int(candidates[np.argmin(p.d_level[candidates])])


def hint_values(model: ComposeModel, known: Choice) -> np.ndarray:
    """A value for every variable of ``model`` that encodes ``known``.

    Its types fill the slots by size; types beyond K or of a size outside the model are dropped.
    A deployment above the current TPOT cap still makes a hint, for CP-SAT to repair.
    """
    values = np.zeros(len(model.model.proto.variables), dtype=np.int64)
    rows, counts = known.rows, known.packing.counts
    where = {int(s): q for q, s in enumerate(model.sizes.tolist())}
    kept = [r for r in np.argsort(rows.size, kind="stable").tolist() if int(rows.size[r]) in where]
    level = 0
    for slot, r in zip(model.slots, kept, strict=False):
        pos = where[int(rows.size[r])]
        count = int(model._copies[pos]) if model.identical else int(counts[r])
        i, x, j, y = int(rows.prefill[r]), int(rows.x[r]), int(rows.decode[r]), int(rows.y[r])
        units = int(rows.units[r])
        level = max(level, int(model.p.d_level[j]))
        values[[slot.use, slot.b[j], slot.z[pos]]] = 1
        values[[slot.y, slot.m[j]]] = y
        values[slot.g] = rows.size[r]
        values[slot.r] = units
        values[slot.v] = count * units
        if not model.p.agg:
            values[slot.a[i]] = 1
            values[[slot.x, slot.n[i]]] = x
        if model.identical:
            values[slot.w[pos]] = units
            continue
        values[[slot.c, slot.cs[pos]]] = count
        if slot.bits.size:
            on = (count >> np.arange(slot.bits.size)) & 1
            values[slot.bits] = on
            values[slot.w] = on * units
    values[model.tpot_level.index] = level
    return values
