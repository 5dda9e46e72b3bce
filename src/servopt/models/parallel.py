"""Parallel layouts of one worker: which (tp, pp, dp, moe_tp, moe_ep, cp) tuples the search explores.

A concept of the model's split over GPUs, so it lives with the models: config, evaluate, simulate
and search all import it from here without reaching up.

The seed's rule: a layout is valid when its GPU count ``tp*pp*dp*cp`` is in ``num_gpu_per_worker``
and, for MoE models, the attention side and the expert side span the same GPUs (``tp*dp*cp ==
moe_tp*moe_ep``). On top of it come the backends' own restrictions (the peer's, so answers compare
like for like):

- TRT-LLM cannot combine attention data parallelism with attention tensor parallelism
  (``dp > 1 and tp > 1`` is rejected);
- vLLM cannot combine MoE tensor parallelism with expert parallelism (``moe_tp > 1 and moe_ep > 1``);
- SGLang takes every combination (its MegaMoE variant is not modelled), but context parallelism
  (cp > 1, prefill and agg workers only) excludes attention TP and DP (``tp = dp = 1``);
- context parallelism is SGLang's only: a cp list other than [1] on another backend, or on a decode
  worker, is an error;
- dense models have no attention-DP or expert split: ``dp = moe_tp = moe_ep = 1``;
- an expert-parallel width larger than the number of experts is impossible (``moe_ep <= E``).

The default search lists per model kind mirror the peer's defaults for ``cli default``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

from servopt.errors import ServoptError, UnknownNameError

log = logging.getLogger(__name__)

Backend = Literal["trtllm", "vllm", "sglang"]
Role = Literal["agg", "prefill", "decode"]

BACKENDS: tuple[str, ...] = ("trtllm", "vllm", "sglang")
ROLES: tuple[str, ...] = ("agg", "prefill", "decode")

# How each role is named in the per-layout log line (the peer's wording, so logs compare).
_ROLE_LOG_NAME = {"agg": "Agg", "prefill": "Disagg prefill", "decode": "Disagg decode"}

# Systems whose NVLink domain spans 16+ GPUs, where the peer widens dense tp/num_gpu to 16.
_RACK_NVLINK_SYSTEMS = frozenset({"gb200", "gb300"})


class Layout(NamedTuple):
    """One worker's parallel layout: attention tp, pipeline pp, attention dp, MoE tp, MoE ep and
    context parallel cp (SGLang prefill; 1 unless given, so five-field layouts read as before)."""

    tp: int
    pp: int
    dp: int
    moe_tp: int
    moe_ep: int
    cp: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    @property
    def label(self) -> str:
        """The peer's ``parallel`` string, e.g. ``tp2pp1dp1etp1ep1`` (``...ep1cp4`` with cp > 1)."""
        base = f"tp{self.tp}pp{self.pp}dp{self.dp}etp{self.moe_tp}ep{self.moe_ep}"
        return base if self.cp == 1 else f"{base}cp{self.cp}"

    def columns(self) -> dict[str, int]:
        """The layout as output columns: tp, pp, dp, moe_tp, moe_ep, and cp only when > 1 (outputs
        of cp = 1 layouts keep their five columns)."""
        cols = self._asdict()
        if self.cp == 1:
            del cols["cp"]
        return cols


class ParallelLists(NamedTuple):
    """The per-role search lists of the experiment YAML's ``*_worker_config``."""

    num_gpu_per_worker: list[int]
    tp_list: list[int]
    pp_list: list[int]
    dp_list: list[int]
    moe_tp_list: list[int]
    moe_ep_list: list[int]
    cp_list: Sequence[int] = (1,)

    def clipped(self, total_gpus: int) -> ParallelLists:
        """The same lists with worker sizes above the cluster budget removed (the peer does this)."""
        return self._replace(num_gpu_per_worker=[g for g in self.num_gpu_per_worker if g <= total_gpus])


def _check_list(field: str, values: Iterable[int]) -> list[int]:
    values = list(values)
    if not values:
        raise ServoptError(field, values, "must list at least one size", allowed=["positive integers"])
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ServoptError(field, v, "every entry must be a positive integer")
    return sorted(set(values))


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise UnknownNameError("backend_name", backend, "unknown backend", allowed=BACKENDS)


def _backend_allows(backend: str, layout: Layout) -> bool:
    if backend == "trtllm":
        return not (layout.dp > 1 and layout.tp > 1)
    if backend == "vllm":
        return not (layout.moe_tp > 1 and layout.moe_ep > 1)
    # SGLang: context parallelism and attention TP/DP are mutually exclusive.
    return layout.cp == 1 or (layout.tp == 1 and layout.dp == 1)


# The one backend with context parallelism, and the roles that may use it (SGLang's cp splits the
# prefill; decode workers run cp = 1).
CP_BACKEND = "sglang"
CP_ROLES = ("agg", "prefill")
# The peer's cp sweep for agg and prefill workers of models that support it.
DEFAULT_CP_LIST = (1, 2, 4, 8)


def _check_cp(cps: list[int], backend: str, role: str) -> None:
    if cps == [1]:
        return
    if backend != CP_BACKEND:
        raise ServoptError(
            "cp_list", cps, f"context parallelism (cp > 1) is modelled on {CP_BACKEND} only", allowed=["[1]"]
        )
    if role not in CP_ROLES:
        raise ServoptError(
            "cp_list",
            cps,
            "decode workers are not context-parallel (SGLang's cp splits the prefill)",
            ["[1]"],
        )


def enumerate_layouts(
    *,
    is_moe: bool,
    backend: str,
    num_gpu_per_worker: Sequence[int],
    tp_list: Sequence[int],
    pp_list: Sequence[int],
    dp_list: Sequence[int] = (1,),
    moe_tp_list: Sequence[int] = (1,),
    moe_ep_list: Sequence[int] = (1,),
    num_experts: int | None = None,
    role: Role = "agg",
    cp_list: Sequence[int] = (1,),
) -> list[Layout]:
    """Every valid layout of the lists, in the peer's loop order (tp, pp, dp, moe_tp, moe_ep, cp).

    Each layout is logged at DEBUG as ``Enumerated <Agg|Disagg prefill|Disagg decode> parallel
    config: tp=.., pp=.., dp=.., moe_tp=.., moe_ep=..`` (``, cp=..`` when cp > 1). An empty result
    is not an error here: the caller knows whether another role can still serve.
    """
    _check_backend(backend)
    if role not in ROLES:
        raise UnknownNameError("role", role, "unknown worker role", allowed=ROLES)
    gpus_allowed = set(_check_list("num_gpu_per_worker", num_gpu_per_worker))
    tps = _check_list("tp_list", tp_list)
    pps = _check_list("pp_list", pp_list)
    if is_moe:
        dps = _check_list("dp_list", dp_list)
        moe_tps = _check_list("moe_tp_list", moe_tp_list)
        moe_eps = _check_list("moe_ep_list", moe_ep_list)
    else:
        # Dense models have neither attention DP nor an expert split; the lists are ignored.
        dps, moe_tps, moe_eps = [1], [1], [1]
    cps = _check_list("cp_list", cp_list)
    _check_cp(cps, backend, role)
    if num_experts is not None and (isinstance(num_experts, bool) or num_experts < 0):
        raise ServoptError("num_experts", num_experts, "must be a non-negative integer")

    layouts: list[Layout] = []
    for tp, pp, dp, moe_tp, moe_ep, cp in itertools.product(tps, pps, dps, moe_tps, moe_eps, cps):
        layout = Layout(tp, pp, dp, moe_tp, moe_ep, cp)
        if layout.gpus not in gpus_allowed:
            continue
        if is_moe and tp * dp * cp != moe_tp * moe_ep:
            continue
        if is_moe and num_experts and moe_ep > num_experts:
            continue
        if not _backend_allows(backend, layout):
            continue
        layouts.append(layout)
        log.debug(
            "Enumerated %s parallel config: tp=%d, pp=%d, dp=%d, moe_tp=%d, moe_ep=%d%s",
            _ROLE_LOG_NAME[role],
            *layout[:5],
            f", cp={cp}" if cp > 1 else "",
        )
    return layouts


# The peer's multi-node expert-parallel ladders (attention DP, no MoE TP), per backend and role.
AGG_LARGE_EP_LADDER = {
    "trtllm": ParallelLists(
        [2, 4, 8, 16, 32, 64], [1, 2, 4, 8], [1], [2, 4, 8, 16, 32, 64], [1], [2, 4, 8, 16, 32, 64]
    ),
    "sglang": ParallelLists(
        [8, 16, 32, 64], [1, 2, 4, 8], [1], [1, 2, 4, 8, 16, 32, 64], [1], [8, 16, 32, 64]
    ),
}
PREFILL_LARGE_EP_LADDER = {
    "trtllm": ParallelLists([4, 8, 16, 32], [1, 2, 4, 8], [1], [4, 8, 16, 32], [1], [4, 8, 16, 32]),
    "sglang": ParallelLists([8, 16, 32], [1, 2, 4, 8], [1], [1, 2, 4, 8, 16, 32], [1], [8, 16, 32]),
}
DECODE_LARGE_EP_LADDER = {
    "trtllm": ParallelLists(
        [4, 8, 16, 32, 64], [1, 2, 4, 8], [1], [4, 8, 16, 32, 64], [1], [4, 8, 16, 32, 64]
    ),
    "sglang": ParallelLists(
        [8, 16, 32, 64], [1, 2, 4, 8], [1], [1, 2, 4, 8, 16, 32, 64], [1], [8, 16, 32, 64]
    ),
}


def union_lists(a: ParallelLists, b: ParallelLists) -> ParallelLists:
    return ParallelLists(*(sorted(set(x) | set(y)) for x, y in zip(a, b, strict=True)))


def _eps_ladder(eps: Sequence[int]) -> ParallelLists:
    """vLLM has no static ladder: pure-EP tuples at each covered EP size (tp 1, dp = ep)."""
    eps = sorted(eps)
    return ParallelLists(eps, [1], [1], eps, [1], eps)


def large_ep_ladder(
    ladders: dict[str, ParallelLists], backend: str, eps: Sequence[int]
) -> ParallelLists | None:
    if backend == "vllm":
        return _eps_ladder(eps) if eps else None
    return ladders.get(backend)


def _cp_list(backend: str, context_parallel: bool) -> list[int]:
    return list(DEFAULT_CP_LIST) if context_parallel and backend == CP_BACKEND else [1]


def default_agg_lists(
    *,
    is_moe: bool,
    backend: str,
    system: str = "h200_sxm",
    large_ep_eps: Sequence[int] = (),
    context_parallel: bool = False,
) -> ParallelLists:
    """The peer's default agg search lists; ``large_ep_eps`` (covered EP sizes wider than one
    node) unions in the backend's multi-node EP ladder, as the peer does when its data covers them;
    ``context_parallel`` (the model's graph has a cp variant) sweeps cp in {1, 2, 4, 8} on SGLang."""
    _check_backend(backend)
    cps = _cp_list(backend, context_parallel)
    if not is_moe:
        wide = [1, 2, 4, 8, 16] if system in _RACK_NVLINK_SYSTEMS else [1, 2, 4, 8]
        return ParallelLists(wide, wide, [1], [1], [1], [1], cps)
    x = [1, 2, 4, 8, 16]
    fused = ParallelLists(x, x, [1], x, x, x, cps)
    ladder = large_ep_ladder(AGG_LARGE_EP_LADDER, backend, large_ep_eps) if large_ep_eps else None
    return union_lists(fused, ladder) if ladder else fused


def default_disagg_lists(
    *,
    is_moe: bool,
    backend: str,
    prefill_system: str = "h200_sxm",
    decode_system: str | None = None,
    prefill_wide_ep: bool = False,
    decode_wide_ep: bool = False,
    prefill_large_ep_eps: Sequence[int] = (),
    decode_large_ep_eps: Sequence[int] = (),
    context_parallel: bool = False,
) -> tuple[ParallelLists, ParallelLists]:
    """The peer's default (prefill, decode) search lists for disaggregated serving.

    ``*_wide_ep`` (the seed's ``enable_wide_ep``) swaps in the wide-EP lists; ``*_large_ep_eps``
    (covered EP sizes wider than one node, per role) unions the multi-node ladder into the fused
    defaults, as the peer does when its data covers large EP; ``context_parallel`` (the model's
    graph has a cp variant) sweeps cp in {1, 2, 4, 8} for SGLang prefill workers (decode: cp 1).
    """
    _check_backend(backend)
    decode_system = decode_system or prefill_system
    cps = _cp_list(backend, context_parallel)
    if not is_moe:
        base = [1, 2, 4, 8]
        rack = [1, 2, 4, 8, 16]
        prefill_g = rack if prefill_system in _RACK_NVLINK_SYSTEMS else base
        decode_g = rack if decode_system in _RACK_NVLINK_SYSTEMS else base
        return (
            ParallelLists(prefill_g, prefill_g, [1], [1], [1], [1], cps),
            ParallelLists(decode_g, decode_g, [1], [1], [1], [1]),
        )
    x = [1, 2, 4, 8, 16]
    fused = ParallelLists(x, x, [1], x, x, x)
    prefill, decode = fused, fused
    if backend == "trtllm":
        if prefill_wide_ep:
            p = [4, 8, 16, 32]
            prefill = ParallelLists(p, [1, 2, 4, 8], [1], p, [1], p)
        if decode_wide_ep:
            d = [4, 8, 16, 32, 64]
            decode = ParallelLists(d, [1, 2, 4, 8], [1], d, [1], d)
    elif backend == "sglang":
        if prefill_wide_ep or decode_wide_ep:
            prefill = ParallelLists([8, 16, 32], [1, 2, 4, 8], [1], [1, 2, 4, 8, 16, 32], [1], [8, 16, 32])
            decode = ParallelLists(
                [8, 16, 32, 64], [1, 2, 4, 8], [1], [1, 2, 4, 8, 16, 32, 64], [1], [8, 16, 32, 64]
            )
        else:
            prefill = decode = ParallelLists(x, x, [1], x, x, [1, 2, 4, 8, 16])
    if prefill_large_ep_eps and not prefill_wide_ep:
        ladder = large_ep_ladder(PREFILL_LARGE_EP_LADDER, backend, prefill_large_ep_eps)
        prefill = union_lists(prefill, ladder) if ladder else prefill
    if decode_large_ep_eps and not decode_wide_ep:
        ladder = large_ep_ladder(DECODE_LARGE_EP_LADDER, backend, decode_large_ep_eps)
        decode = union_lists(decode, ladder) if ladder else decode
    return prefill._replace(cp_list=cps), decode
