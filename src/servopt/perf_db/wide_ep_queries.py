"""Large expert-parallel (wide-EP) queries: all-to-all dispatch/combine and wide-EP expert compute.

Two measured tables feed large-EP pricing:

- ``moe_a2a`` (``moe_a2a_perf``): one token curve per (comm backend, comm phase, wire dtype, EP
  size, node count, hidden, topk, experts, SM budget). Tokens are *per rank*. The wire dtype
  resolves exact first, then ``fp8_block`` reads the ``fp8`` rows, then the backend/phase's only
  collected dtype. DeepEP tables were measured inside one node: a multi-node query whose exact
  (ep, nodes) slice is absent reads the full-node slice (``ep = gpus_per_node``, one node; SGLang's
  legacy tables sit at ep 8) -- the peer's documented, optimistic substitute.
- ``wideep_moe`` (``wideep_moe_perf``): one token curve per (kernel, quant, distribution, topk,
  experts, slots, hidden, inter, moe_tp, moe_ep). Tokens are the *global* batch (per-rank tokens x
  attention dp: the dispatch gathers them). The distribution falls back requested -> ``uniform``
  -> the first collected one; the kernel is the first collected for the quant. A curve with one
  measured point cannot answer below it. On TRT-LLM and vLLM, points this table cannot answer read
  the regular MoE table at (moe_tp 1, moe_ep) instead, as the peer does.

The coverage probes (:func:`a2a_pairs`, :func:`compute_eps`) read slice keys only (a built
family's key columns, or any merged table's columns); ``models.wide_ep.coverage`` turns them into
the per-phase comm backends and EP sizes large EP may use.
"""

from __future__ import annotations

import numpy as np

from servopt.errors import ServoptError
from servopt.perf_db import quant, sol
from servopt.perf_db.moe_queries import drop_below_single_point, expert_roofline_tail
from servopt.perf_db.query_base import Missing, QueryBase, _arr, batched
from servopt_kernels.primitives import PROV_MISSING

# DeepEP comm backends whose node-1 measurements stand in for multi-node EP.
DEEPEP_NODE1_BACKENDS = frozenset({"deepep_ht", "deepep_ll", "trtllm_deepep_ht", "trtllm_deepep_ll"})
# SGLang's legacy DeepEP tables were normalised to 8-GPU HGX nodes whatever the system's width.
SGLANG_LEGACY_NODE_GPUS = 8
A2A_DTYPE_ALIASES = {"fp8_block": "fp8"}
UNIFORM = "uniform"
# Backends whose regular MoE table also answers large-EP expert compute (the peer's rule).
REGULAR_KERNEL_BACKENDS = frozenset({"trtllm", "vllm"})


def _resolve_dtype(collected: set[str], comm_dtype: str) -> str | None:
    if comm_dtype in collected:
        return comm_dtype
    alias = A2A_DTYPE_ALIASES.get(comm_dtype)
    if alias in collected:
        return alias
    if len(collected) == 1:
        return next(iter(collected))
    return None


def a2a_pairs(
    keys: dict[str, np.ndarray],
    comm_backend: str,
    comm_phase: str,
    comm_dtype: str | None,
    hidden: int,
    topk: int,
    experts: int,
) -> set[tuple[int, int]]:
    """(ep, nodes) pairs with a measured curve for one comm phase and shape (``comm_dtype`` None:
    any dtype; else exactly that dtype, as the peer's coverage probe requires)."""
    if not len(keys.get("comm_backend", ())):
        return set()
    mask = (
        (keys["comm_backend"] == comm_backend)
        & (keys["phase"] == comm_phase)
        & (keys["hidden_size"] == hidden)
        & (keys["topk"] == topk)
        & (keys["num_experts"] == experts)
    )
    if comm_dtype is not None:
        mask &= keys["comm_dtype"] == comm_dtype
    return {(int(e), int(n)) for e, n in zip(keys["ep_size"][mask], keys["node_num"][mask], strict=True)}


def compute_eps(
    keys: dict[str, np.ndarray],
    quant_name: str,
    hidden: int,
    inter: int,
    topk: int,
    experts: int,
    kernel: str | None = None,
) -> set[int]:
    """EP sizes the wide-EP compute table covers for one expert shape (moe_tp = 1, any distribution
    or slot count; any kernel unless ``kernel`` names one)."""
    if not len(keys.get("moe_dtype", ())):
        return set()
    mask = (
        (keys["moe_dtype"] == quant_name)
        & (keys["hidden_size"] == hidden)
        & (keys["inter_size"] == inter)
        & (keys["topk"] == topk)
        & (keys["num_experts"] == experts)
        & (keys["moe_tp_size"] == 1)
    )
    if kernel is not None:
        mask &= keys["kernel_source"] == kernel
    return {int(e) for e in keys["moe_ep_size"][mask]}


class WideEpQueries(QueryBase):
    # ------------------------------------------------------------------ coverage probes
    def _family_keys(self, family: str) -> dict[str, np.ndarray]:
        if self.sol or family not in self.families:
            return {}
        fam = self.families[family]
        return dict(zip(fam.key_names, fam.key_cols, strict=True))

    def moe_a2a_pairs(
        self, comm_backend, comm_phase, comm_dtype, hidden, topk, experts
    ) -> set[tuple[int, int]]:
        """(ep, nodes) pairs measured for one all-to-all phase and shape (roofline mode: none)."""
        return a2a_pairs(
            self._family_keys("moe_a2a"), comm_backend, comm_phase, comm_dtype, hidden, topk, experts
        )

    def moe_expert_compute_eps(self, quant_mode, hidden, inter, topk, experts, kernel=None) -> set[int]:
        """EP sizes the wide-EP expert-compute table covers for one shape (roofline mode: none)."""
        q = quant.resolve("moe_quant", quant_mode, quant.MOE_QUANTS)
        return compute_eps(self._family_keys("wideep_moe"), q.name, hidden, inter, topk, experts, kernel)

    def wideep_mla_covers(self, phase, kernel, mla_quant, kv_quant, heads) -> bool:
        """Whether SGLang's wide-EP MLA table holds a slice for this kernel, dtype and KV dtype at
        ``heads`` local heads (roofline mode: no)."""
        keys = self._family_keys(f"wideep_{phase}_mla")
        if not len(keys.get("kernel_source", ())):
            return False
        mask = (
            (keys["kernel_source"] == kernel)
            & (keys["mla_dtype"] == mla_quant)
            & (keys["kv_cache_dtype"] == kv_quant)
        )
        return bool(mask.any()) and heads > 0

    @batched
    def wideep_context_mla_ms(
        self, kernel, mla_quant, kv_quant, batch, seq, prefix, num_heads,
        *, provenance=False, missing: Missing = "raise",
    ):  # fmt: skip
        """SGLang wide-EP context MLA (the whole attention kernel) at local heads."""
        fm = quant.resolve("fmha_quant", mla_quant, quant.FMHA_QUANTS)
        kv = quant.resolve("kv_quant", kv_quant, quant.KV_QUANTS)
        return self._mla_context(
            "wideep_context_mla", (str(kernel), fm.name, kv.name), kv, self._flops(fm.compute), batch, seq,
            prefix, num_heads, provenance, missing, f"kernel={kernel} mla={fm.name} kv={kv.name}",
            gemm_bytes=fm.bytes_per_elem,
        )  # fmt: skip

    @batched
    def wideep_generation_mla_ms(
        self, kernel, mla_quant, kv_quant, batch, kv_len, num_heads,
        *, provenance=False, missing: Missing = "raise",
    ):  # fmt: skip
        """SGLang wide-EP generation MLA at local heads: one lookup at the KV length (the peer
        does not average this op over +/-10% of the sequence)."""
        fm = quant.resolve("fmha_quant", mla_quant, quant.FMHA_QUANTS)
        kv = quant.resolve("kv_quant", kv_quant, quant.KV_QUANTS)
        return self._mla_generation(
            "wideep_generation_mla", (str(kernel), fm.name, kv.name), kv, None, batch, kv_len, num_heads,
            provenance, missing, f"kernel={kernel} mla={fm.name} kv={kv.name}", gemm_bytes=fm.bytes_per_elem,
        )  # fmt: skip

    def regular_moe_eps(self, quant_mode, hidden, inter, topk, experts) -> set[int]:
        """EP sizes the regular MoE table covers at moe_tp 1 (it backs large-EP compute on TRT-LLM
        and vLLM)."""
        q = quant.resolve("moe_quant", quant_mode, quant.MOE_QUANTS)
        return compute_eps(self._family_keys("moe"), q.name, hidden, inter, topk, experts)

    # ------------------------------------------------------------------ all-to-all
    @batched
    def moe_a2a_ms(
        self, comm_backend, comm_phase, comm_dtype, ep_size, node_num, hidden, topk, experts, num_tokens,
        *, sms: int = 0, provenance=False, missing: Missing = "raise",
    ):  # fmt: skip
        """Latency (ms) of one all-to-all phase at ``num_tokens`` tokens per rank, with ``sms``
        streaming multiprocessors (0: the kernel's own budget, as the tables without an SM axis)."""
        arrs = np.broadcast_arrays(*map(_arr, (ep_size, node_num, hidden, topk, experts, num_tokens)))
        ep, nodes, h, k, e, tok = (np.asarray(a) for a in arrs)
        shape = tok.shape

        def describe(j):
            return (
                f"backend={comm_backend} phase={comm_phase} dtype={comm_dtype} ep={ep.flat[j]:g} "
                f"nodes={nodes.flat[j]:g} hidden={h.flat[j]:g} topk={k.flat[j]:g} experts={e.flat[j]:g} "
                f"tokens={tok.flat[j]:g}"
            )

        if self.sol:
            # The peer has no roofline tier for this family: measured data is required.
            lat = np.full(shape, np.nan)
            return self._finish("moe_a2a", lat, np.full(shape, -1), shape, provenance, missing, describe)
        keys = self._family_keys("moe_a2a")
        collected = (
            set(keys["comm_dtype"][(keys["comm_backend"] == comm_backend) & (keys["phase"] == comm_phase)])
            if keys
            else set()
        )
        dtype = _resolve_dtype({str(d) for d in collected}, str(comm_dtype))
        if dtype is None:
            if missing == "raise":
                raise ServoptError(
                    "comm_dtype",
                    comm_dtype,
                    f"no all-to-all data for {comm_backend}/{comm_phase} on {self.label()}",
                    sorted(str(d) for d in collected) or ["(nothing)"],
                )
            lat = np.full(shape, np.nan)
            return self._finish("moe_a2a", lat, np.full(shape, -1), shape, provenance, missing, describe)
        ints = [a.astype(np.int64) for a in (ep, nodes, h, k, e)]
        head = [str(comm_backend), str(comm_phase), dtype]
        sms = int(sms)
        sid = self._slices("moe_a2a", [*head, *ints, sms])
        if comm_backend in DEEPEP_NODE1_BACKENDS:
            width = SGLANG_LEGACY_NODE_GPUS if self.backend == "sglang" else self.system.node.gpus_per_node
            sub = self._slices("moe_a2a", [*head, width, 1, *ints[2:], sms])
            sid = np.where((sid < 0) & (nodes > 1), sub, sid)
        if missing == "raise":
            self._require("moe_a2a", sid, "moe_a2a", describe, [*head, *ints, sms])
        lat, prov = self._lookup("moe_a2a", sid, (tok,), lambda u: sol.params(len(u)))
        return self._finish("moe_a2a", np.maximum(lat, 0.0), prov, shape, provenance, missing, describe)

    # ------------------------------------------------------------------ expert compute
    def _compute_slice_head(
        self, quant_name: str, distribution: str, kernel: str = ""
    ) -> tuple[str, str] | None:
        """(kernel, distribution) the query reads: ``kernel`` (else the first kernel collected for
        the quant), then the distribution chain requested -> uniform -> first collected."""
        keys = self._family_keys("wideep_moe")
        if not keys:
            return None
        rows = np.flatnonzero(keys["moe_dtype"] == quant_name)
        if kernel:
            rows = rows[keys["kernel_source"][rows] == kernel]
        if rows.size == 0:
            return None
        kernel = str(keys["kernel_source"][rows[0]])
        rows = rows[keys["kernel_source"][rows] == kernel]
        dists = [str(d) for d in dict.fromkeys(keys["distribution"][rows].tolist())]
        for candidate in (distribution, UNIFORM, *dists):
            if candidate in dists:
                return kernel, candidate
        return None  # pragma: no cover - dists is non-empty

    @batched
    def moe_expert_compute_ms(
        self, quant_mode, distribution, topk, experts, num_slots, hidden, inter, moe_ep, num_tokens,
        *, gated: bool = True, kernel: str = "", provenance=False, missing: Missing = "raise",
    ):  # fmt: skip
        """Latency (ms) of the wide-EP grouped expert GEMMs at ``num_tokens`` global tokens
        (``kernel``: that collected kernel's rows, e.g. SGLang's per-phase DeepEP MoE)."""
        q = quant.resolve("moe_quant", quant_mode, quant.MOE_QUANTS)
        arrs = np.broadcast_arrays(*map(_arr, (topk, experts, num_slots, hidden, inter, moe_ep, num_tokens)))
        k, e, slots, h, i_, ep, tok = (np.asarray(a) for a in arrs)
        shape = tok.shape

        def describe(j):
            return (
                f"quant={q.name} dist={distribution} topk={k.flat[j]:g} experts={e.flat[j]:g} "
                f"slots={slots.flat[j]:g} hidden={h.flat[j]:g} inter={i_.flat[j]:g} moe_ep={ep.flat[j]:g} "
                f"tokens={tok.flat[j]:g}"
            )

        head = None if self.sol else self._compute_slice_head(q.name, str(distribution), str(kernel))
        if head is None:
            lat, prov = np.full(shape, np.nan), np.full(shape, PROV_MISSING, dtype=np.int8)
            lat, prov = self._regular_kernel_fill(
                q.name, distribution, k, e, h, i_, ep, tok, gated, lat, prov
            )
            if missing == "raise" and np.isnan(lat).any():
                raise ServoptError(
                    "moe_quant_mode", q.name, f"no wide-EP expert-compute data on {self.label()}"
                )
            return self._finish("moe_ep", lat, prov, shape, provenance, missing, describe)
        kernel, dist = head
        ints = [a.astype(np.int64) for a in (k, e, slots, h, i_)]
        key = [kernel, q.name, dist, *ints, 1, ep.astype(np.int64)]
        sid = self._slices("wideep_moe", key)
        fam = self.families["wideep_moe"]
        tail = expert_roofline_tail(self, q, gated)

        # Roofline row: topk, slots (the weight-read term counts slots), hidden, inter, tp, ep.
        shape_cols = [
            fam.key_names.index(name)
            for name in ("topk", "num_slots", "hidden_size", "inter_size", "moe_tp_size", "moe_ep_size")
        ]
        params = sol.slice_params(fam, shape_cols, tail)
        lat, prov = self._lookup("wideep_moe", sid, (tok,), params)
        lat, prov = drop_below_single_point(fam, sid, tok, lat, prov)
        lat, prov = lat.reshape(shape), prov.reshape(shape)
        lat, prov = self._regular_kernel_fill(q.name, distribution, k, e, h, i_, ep, tok, gated, lat, prov)
        if missing == "raise" and np.isnan(lat).any():
            self._require("wideep_moe", np.where(np.isnan(lat), -1, 0), "moe_ep", describe, key)
        return self._finish("moe_ep", np.maximum(lat, 0.0), prov, shape, provenance, missing, describe)

    def _regular_kernel_fill(self, quant_name, distribution, k, e, h, i_, ep, tok, gated, lat, prov):
        """TRT-LLM and vLLM publish expert compute in the regular MoE table too: points the
        wide-EP table cannot answer read it at (moe_tp 1, moe_ep), as the peer does."""
        gap = np.isnan(lat)
        if self.backend not in REGULAR_KERNEL_BACKENDS or self.sol or not gap.any():
            return lat, prov
        try:
            fill, fill_prov = self.moe_ms(
                quant_name, str(distribution), k[gap], e[gap], h[gap], i_[gap], 1, ep[gap], tok[gap],
                gated=gated, provenance=True, missing="nan",
            )  # fmt: skip
        except ServoptError:  # a quant the system cannot run (no roofline either): stays missing
            return lat, prov
        lat = lat.copy()
        prov = prov.copy()
        lat[gap] = fill
        prov[gap] = fill_prov
        return lat, prov
