"""Cross-field checks on a resolved config block: what no single key can be wrong about alone.

- quant modes the system cannot compute (nvfp4 without fp4 tensor cores) or the backend cannot run
  (fp8_static outside TRT-LLM);
- parallel lists that admit no layout at all;
- a GPU budget below the smallest worker (agg) or the smallest 1P+1D pair (disagg);
- replica sizes that no x·prefill + y·decode combination can fill;
- more draft tokens than accept rates.

Each check reports through ``Locator`` callbacks, so that a problem points at the key that caused it
(the experiment's own, a profile's, or, for a default, the experiment itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from servopt.config.catalog import Catalog, LayoutLike
from servopt.config.problems import NO_VALUE
from servopt.config.schema import ROLE_SECTION, ConfigBlock, WorkerConfig
from servopt.errors import ServoptError
from servopt.models.arch import ModelArch
from servopt.models.context_parallel import unsupported_reason

# Tensor-core dtype each quant mode computes in (the peer's QuantMapping compute dtype).
GEMM_COMPUTE_DTYPE = {
    "float16": "bf16",
    "fp8": "fp8",
    "fp8_block": "fp8",
    "fp8_static": "fp8",
    "int8_wo": "bf16",
    "int4_wo": "bf16",
    "nvfp4": "fp4",
    "w4afp8": "fp8",
}
MOE_COMPUTE_DTYPE = {
    "float16": "bf16",
    "fp8": "fp8",
    "fp8_block": "fp8",
    "w4afp8": "fp8",
    "int4_wo": "bf16",
    "int8_wo": "bf16",
    "nvfp4": "fp4",
    "w4a16_mxfp4": "bf16",
    "w4a8_mxfp4_mxfp8": "fp8",
}
FMHA_COMPUTE_DTYPE = {"float16": "bf16", "fp8": "fp8"}
# Static per-tensor FP8 GEMMs exist only in TRT-LLM (the peer rejects them elsewhere).
FP8_STATIC_BACKENDS = ("trtllm",)
# Beyond this many candidate (size, prefill, decode, x) probes the exact replica-size check is
# skipped (it only guards against impossible configs; the search itself is exact anyway).
_MAX_REPLICA_PROBES = 200_000

# report(config path, message, value, allowed) -> None ; a config path is relative to ``config``.
Report = Callable[[tuple[str | int, ...], str, object, Sequence[str] | None], None]
# report_top(top-level key, message, value) -> None
ReportTop = Callable[[str, str, object], None]


@dataclass(frozen=True)
class RoleLayouts:
    role: str
    layouts: tuple[LayoutLike, ...]

    @property
    def smallest(self) -> int:
        return min(layout.gpus for layout in self.layouts)


def check_nextn(block: ConfigBlock, report: Report) -> None:
    if block.nextn > len(block.nextn_accept_rates):
        report(
            ("nextn",),
            f"needs an accept rate per draft token, but nextn_accept_rates has {len(block.nextn_accept_rates)}",
            block.nextn,
            None,
        )


def check_quant(
    worker: WorkerConfig,
    section: str,
    *,
    arch: ModelArch,
    backend: str,
    dtypes: frozenset[str],
    system: str,
    report: Report,
) -> None:
    checks = [("gemm_quant_mode", GEMM_COMPUTE_DTYPE), ("fmha_quant_mode", FMHA_COMPUTE_DTYPE)]
    if arch.is_moe:
        checks.append(("moe_quant_mode", MOE_COMPUTE_DTYPE))
    for key, table in checks:
        mode = getattr(worker, key)
        dtype = table[mode]
        if dtype not in dtypes:
            usable = sorted(m for m, d in table.items() if d in dtypes)
            report(
                (section, key),
                f"computes in {dtype}, which system {system} has no tensor cores for",
                mode,
                usable,
            )
    if worker.gemm_quant_mode == "fp8_static" and backend not in FP8_STATIC_BACKENDS:
        report(
            (section, "gemm_quant_mode"),
            f"static FP8 GEMMs are TRT-LLM only (backend is {backend})",
            "fp8_static",
            None,
        )


def _lists(worker: WorkerConfig) -> dict[str, tuple[int, ...]]:
    keys = ("num_gpu_per_worker", "tp_list", "pp_list", "dp_list", "moe_tp_list", "moe_ep_list", "cp_list")
    return {k: getattr(worker, k) for k in keys}


def _context_parallel(worker: WorkerConfig) -> bool:
    return max(worker.cp_list) > 1


_BACKEND_RULE = {
    "trtllm": "TRT-LLM cannot combine dp > 1 with tp > 1",
    "vllm": "vLLM cannot combine moe_tp > 1 with moe_ep > 1",
    "sglang": "",
}


def layouts_of(
    role: str, worker: WorkerConfig, *, arch: ModelArch, backend: str, catalog: Catalog, report: Report
) -> RoleLayouts | None:
    """The role's valid layouts, or None after reporting that the lists admit none."""
    section = ROLE_SECTION[role]
    if _context_parallel(worker):
        reason = unsupported_reason(arch, backend, role)
        if reason:
            report((section, "cp_list"), reason, list(worker.cp_list), ["[1]"])
            return None
    try:
        layouts = tuple(
            catalog.enumerate_layouts(
                role=role, is_moe=arch.is_moe, backend=backend, num_experts=arch.num_experts, **_lists(worker)
            )
        )
    except ServoptError as err:
        report((section,), f"{err.field}: {err.message}", err.value, err.allowed)
        return None
    if not layouts:
        cp = "*cp" if _context_parallel(worker) else ""
        if arch.is_moe:
            rule = f"tp*pp*dp{cp} in num_gpu_per_worker and tp*dp{cp} == moe_tp*moe_ep"
            if arch.num_experts:
                rule += f" and moe_ep <= {arch.num_experts} experts"
        else:
            rule = f"tp*pp{cp} in num_gpu_per_worker (dense model: dp = moe_tp = moe_ep = 1)"
        if cp:
            rule += " and tp = dp = 1 where cp > 1"
        extra = _BACKEND_RULE.get(backend, "") if arch.is_moe else ""
        report(
            (section,),
            f"the parallel lists admit no valid layout: need {rule}"
            + (f"; {extra}" if extra else "")
            + f" (lists: {_compact(worker, arch.is_moe)})",
            NO_VALUE,
            None,
        )
        return None
    return RoleLayouts(role, layouts)


def _compact(worker: WorkerConfig, is_moe: bool) -> str:
    lists = _lists(worker)
    keys = list(lists)[:-1] if is_moe else ["num_gpu_per_worker", "tp_list", "pp_list"]
    if _context_parallel(worker):
        keys.append("cp_list")
    return ", ".join(f"{k}={list(lists[k])}" for k in keys)


def check_agg_budget(agg: RoleLayouts, total_gpus: int, report_top: ReportTop) -> None:
    if agg.smallest > total_gpus:
        report_top("total_gpus", f"is below the smallest worker ({agg.smallest} GPUs)", total_gpus)


def check_disagg_budget(
    prefill: RoleLayouts,
    decode: RoleLayouts,
    block: ConfigBlock,
    total_gpus: int,
    report: Report,
    report_top: ReportTop,
) -> None:
    pair = prefill.smallest + decode.smallest
    if pair > total_gpus:
        report_top(
            "total_gpus",
            f"is below the smallest replica: 1 prefill worker ({prefill.smallest} GPUs) + "
            f"1 decode worker ({decode.smallest} GPUs)",
            total_gpus,
        )
        return
    replica = block.replica_config
    assert replica is not None
    cap = min(replica.max_gpu_per_replica or total_gpus, total_gpus)
    if pair > cap:
        report(
            ("replica_config", "max_gpu_per_replica"),
            f"leaves no room for 1 prefill ({prefill.smallest} GPUs) + 1 decode ({decode.smallest} GPUs) worker",
            replica.max_gpu_per_replica,
            None,
        )
        return
    if replica.num_gpu_per_replica is None:
        return  # any size up to the cap: 1P + 1D fits
    sizes = [s for s in replica.num_gpu_per_replica if s <= cap]
    if not sizes:
        report(
            ("replica_config", "num_gpu_per_replica"),
            f"has no size <= {cap} (max_gpu_per_replica capped by total_gpus)",
            list(replica.num_gpu_per_replica),
            None,
        )
        return
    prefill_gpus = sorted({lay.gpus for lay in prefill.layouts if lay.gpus <= cap})
    decode_gpus = sorted({lay.gpus for lay in decode.layouts if lay.gpus <= cap})
    fits = _some_size_fits(
        sizes, prefill_gpus, decode_gpus, replica.max_prefill_worker, replica.max_decode_worker
    )
    if fits is False:
        report(
            ("replica_config", "num_gpu_per_replica"),
            f"no size <= {cap} equals x prefill workers ({prefill_gpus} GPUs each) + y decode workers "
            f"({decode_gpus} GPUs each) with 1 <= x <= {replica.max_prefill_worker}, "
            f"1 <= y <= {replica.max_decode_worker}",
            sizes,
            None,
        )


def _some_size_fits(
    sizes: Sequence[int], prefill_gpus: Sequence[int], decode_gpus: Sequence[int], max_x: int, max_y: int
) -> bool | None:
    """Whether some size is x*gp + y*gd exactly; None when the check would take too long."""
    probes = 0
    for size in sizes:
        for gp in prefill_gpus:
            for gd in decode_gpus:
                for x in range(1, min(max_x, (size - gd) // gp) + 1):
                    probes += 1
                    if probes > _MAX_REPLICA_PROBES:
                        return None
                    rest = size - x * gp
                    if rest % gd == 0 and 1 <= rest // gd <= max_y:
                        return True
    return False
