"""Collective queries: custom all-reduce and NCCL collectives over message sizes in elements."""

from __future__ import annotations

import numpy as np

from servopt.errors import UnknownNameError
from servopt.perf_db import quant, sol
from servopt.perf_db.query_base import Missing, QueryBase, _arr, batched

NCCL_OPS = ("all_gather", "all_reduce", "reduce_scatter", "alltoall")


class CommQueries(QueryBase):
    @batched
    def custom_allreduce_ms(self, num_gpus, message_elems, *, provenance=False, missing: Missing = "raise"):
        g, m = (np.asarray(x) for x in np.broadcast_arrays(_arr(num_gpus), _arr(message_elems)))
        shape = g.shape
        if self.sol:
            return self._sol_result(sol.custom_allreduce_ms(self.system, g, m), shape, provenance)
        fam = self.families["custom_allreduce"]
        measured = fam.key_cols[0] if fam.num_slices else np.zeros(0, dtype=np.int64)
        cap = int(measured.max()) if measured.size else self.system.node.gpus_per_node
        return self._comm("custom_allreduce", [], g, m, cap, provenance, missing, "custom_allreduce")

    @batched
    def nccl_ms(self, op, dtype, num_gpus, message_elems, *, provenance=False, missing: Missing = "raise"):
        if op not in NCCL_OPS:
            raise UnknownNameError("op", op, "unknown collective", NCCL_OPS)
        dt = quant.resolve("dtype", dtype, quant.COMM_QUANTS, quant.COMM_ALIASES)
        g, m = (np.asarray(x) for x in np.broadcast_arrays(_arr(num_gpus), _arr(message_elems)))
        shape = g.shape
        if self.sol:
            return self._sol_result(sol.nccl_ms(self.system, op, dt.bytes_per_elem, g, m), shape, provenance)
        fam = self.families["nccl"]
        sel = [
            int(fam.key_cols[2][i])
            for i in range(fam.num_slices)
            if fam.key_cols[0][i] == dt.name and fam.key_cols[1][i] == op
        ]
        cap = max(sel) if sel else 0
        return self._comm("nccl", [dt.name, op], g, m, cap, provenance, missing, f"nccl {op} dtype={dt.name}")

    def _comm(self, family, key, g, m, cap, provenance, missing, what):
        """Collectives: tp <= 1 is free; beyond the largest measured fan-out, scale the boundary curve
        by the ring-traffic ratio and the link-bandwidth ratio."""
        shape = g.shape
        eff = np.minimum(g, cap) if cap > 0 else g
        sid = self._slices(family, [*key, eff.astype(np.int64)])
        active = g > 1
        sid = np.where(active, sid, -2)

        def describe(i):
            return f"{what} num_gpus={g.flat[i]:g} elems={m.flat[i]:g}"

        if missing == "raise":
            self._require(family, np.where(sid == -2, 0, sid), family, describe, [*key, eff.astype(np.int64)])
        lat, prov = self._lookup(family, np.maximum(sid, -1), (m,), lambda u: sol.params(len(u)))
        lat = lat.reshape(shape)
        prov = prov.reshape(shape)
        over = active & (g > eff)
        if over.any():
            gm = np.where(over, g, 2.0)
            em = np.where(over, eff, 2.0)
            factor = (gm - 1.0) / gm * em / np.maximum(em - 1.0, 1.0)
            factor = factor * sol.collective_bw(self.system, em) / sol.collective_bw(self.system, gm)
            lat = np.where(over, lat * factor, lat)
        lat = np.where(active, lat, 0.0)
        prov = np.where(active, prov, 0).astype(np.int8)
        return self._finish(family, np.maximum(lat, 0.0), prov, shape, provenance, missing, describe)
