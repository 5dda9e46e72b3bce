"""Deployments to and from the "cpsat" composition model's variables (by variable index).

A model (``compose_model.ComposeModel``) has one slot of variables per replica type; it describes
them in a ``Slots`` (indices and the numbers reading needs), so this module needs nothing of the
model itself. Reading a solution takes each used slot's choices (prefill option and x, decode
option and y, size, count) and recomputes the replica's rate from them; hinting writes a known
deployment back as a complete assignment, every variable of an unused slot zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servopt.search.compose_problem import Choice, ComposeProblem
from servopt.search.replicas import ReplicaRows
from servopt.search.xpyd_model import Packing


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


@dataclass(frozen=True)
class Slots:
    """A built model's slots and what reading or hinting a solution needs besides them."""

    problem: ComposeProblem
    identical: bool
    sizes: np.ndarray  # the allowed replica sizes, ascending
    copies: np.ndarray  # floor(G / size): an identical deployment's count per size
    types: tuple[Slot, ...]
    tpot_level: int  # the TPOT-level variable
    variables: int  # how many variables the model has


def read_choice(slots: Slots, sol: np.ndarray) -> Choice:
    """The deployment in a solution (values by variable index), rates recomputed from choices."""
    p, types = slots.problem, []
    for slot in slots.types:
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
        count = int(slots.copies[pos]) if slots.identical else int(sol[slot.cs[pos]])
        types.append((int(slots.sizes[pos]), units, int(p.d_level[j]), i, x, j, y, count))
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


def hint_values(slots: Slots, known: Choice) -> np.ndarray:
    """A value for every variable of the model that encodes ``known``.

    Its types fill the slots by size; types beyond K or of a size outside the model are dropped.
    A deployment above the current TPOT cap still makes a hint, for CP-SAT to repair.
    """
    values = np.zeros(slots.variables, dtype=np.int64)
    rows, counts = known.rows, known.packing.counts
    where = {int(s): q for q, s in enumerate(slots.sizes.tolist())}
    kept = [r for r in np.argsort(rows.size, kind="stable").tolist() if int(rows.size[r]) in where]
    level = 0
    for slot, r in zip(slots.types, kept, strict=False):
        pos = where[int(rows.size[r])]
        count = int(slots.copies[pos]) if slots.identical else int(counts[r])
        i, x, j, y = int(rows.prefill[r]), int(rows.x[r]), int(rows.decode[r]), int(rows.y[r])
        units = int(rows.units[r])
        level = max(level, int(slots.problem.d_level[j]))
        values[[slot.use, slot.b[j], slot.z[pos]]] = 1
        values[[slot.y, slot.m[j]]] = y
        values[slot.g] = rows.size[r]
        values[slot.r] = units
        values[slot.v] = count * units
        if not slots.problem.agg:
            values[slot.a[i]] = 1
            values[[slot.x, slot.n[i]]] = x
        if slots.identical:
            values[slot.w[pos]] = units
            continue
        values[[slot.c, slot.cs[pos]]] = count
        if slot.bits.size:
            on = (count >> np.arange(slot.bits.size)) & 1
            values[slot.bits] = on
            values[slot.w] = on * units
    values[slots.tpot_level] = level
    return values
