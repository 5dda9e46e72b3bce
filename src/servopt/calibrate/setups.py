"""A measured record -> the servopt setup that reproduces it (:class:`Setup`), or why not (:class:`Skip`).

What a setup fixes is what ``servopt cli estimate`` takes: a registry model, a system with measured
data, a backend and a queryable data version, quant modes, one worker's layout (tp, pp, dp, moe_tp,
moe_ep), the number of identical replicas and the closed-loop clients each serves, and the request
lengths. Every assumption the mapping makes (a model alias, a version substitution, engine-default
quant modes, dataset mean lengths, a documented request count) is written into ``Setup.assumptions``,
so a comparison can say what it compared. Aggregated rows without speculative decoding map, under
the load each ran: a closed loop of clients, a burst or a max-throughput run (every request at
t=0), or an open loop at a request rate (``Setup.load``). Disaggregated (xPyD) closed loops without
speculative decoding map to ``mode="disagg"`` setups: ``prefill`` and ``decode`` :class:`Pool`
(layout and worker count of each role), the replicas the GPU count implies. Every other row is a
:class:`Skip` with a counted reason, never silently dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from servopt.calibrate.campaigns import StatedEngine, disagg_note, stated_disagg, stated_engine
from servopt.calibrate.records import MeasuredRecord
from servopt.errors import ServoptError
from servopt.hardware import load_system
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout, enumerate_layouts
from servopt.models.registry import resolve_model
from servopt.perf_db import locate
from servopt.perf_db.moe_kernel import stated_moe_kernel

# The sources' model names (before any " (hf-id)" suffix) -> servopt registry names, with why an
# alias is the same architecture where the names differ.
MODELS: dict[str, tuple[str, str | None]] = {
    "DeepSeek-R1": ("DEEPSEEK_R1", None),
    "DeepSeek-R1-0528": ("DEEPSEEK_R1", None),
    "DeepSeek-V3": ("DEEPSEEK_V3", None),
    "DeepSeek-V3/R1 671B": ("DEEPSEEK_V3", "DeepSeek-V3/R1 671B -> DEEPSEEK_V3 (one architecture)"),
    "Llama-3.1-8B": ("LLAMA3.1_8B", None),
    "Llama-3.1-8B-Instruct": ("LLAMA3.1_8B", None),
    "Llama-3.1-70B": ("LLAMA3.1_70B", None),
    "Llama-3.3-70B-Instruct": ("LLAMA3.1_70B", "Llama-3.3-70B -> LLAMA3.1_70B (same architecture)"),
    "Llama-3.1-405B": ("LLAMA3.1_405B", None),
    "Llama-3.1-405B-Instruct": ("LLAMA3.1_405B", None),
    "Mixtral-8x7B": ("MIXTRAL_8X7B", None),
    "Mixtral-8x22B": ("MIXTRAL_8X22B", None),
    "Qwen3-8B": ("QWEN3_8B", None),
    "Qwen3-32B": ("QWEN3_32B", None),
    "Qwen3-30B-A3B": ("QWEN3_30B_A3B", None),
    "Qwen3-235B-A22B": ("QWEN3_235B_A22B", None),
    "Qwen3-235B-A22B-Instruct-2507": ("QWEN3_235B_A22B", "Qwen3-235B-A22B-Instruct-2507 -> QWEN3_235B_A22B"),
    "gpt-oss-20b": ("GPT_OSS_20B", None),
    "gpt-oss-120b": ("GPT_OSS_120B", None),
}
# Models servopt knows a reason not to map (the rest are simply not in the registry).
UNMODELLED = {"DeepSeek-V3.2": "DeepSeek-V3.2's sparse attention (DSA) is not modelled"}

# FP8 checkpoints quantize per 128x128 block (DeepSeek's native and Qwen3's FP8 releases) or per
# tensor (NVIDIA ModelOpt, Meta's Llama FP8): the GEMM table to price them with.
_FP8_BLOCK_MODELS = ("DEEPSEEK", "QWEN3")

# Loads other than a closed loop, as skip reasons of what cannot take them: the calibration fit
# (its closed-form request overhead is a closed loop's, ``fit_skip``) and, for phase-only rows, any
# replay.
_LOAD_SKIPS = {
    "max_throughput": "max-throughput run (no concurrency)",
    "burst": "burst (all requests at t=0)",
    "open_loop": "open loop at a request rate",
    "phase_only": "phase-only measurement",
}

# trtllm-bench's max-throughput runs in TRT-LLM's perf overview: the rows state isl/osl, and the docs
# give the `$num_requests` of each ("Preparing a Dataset": "For shorter input and output lengths, a
# larger number of messages were used to guarantee that the system hit a steady state"):
# docs/source/performance/perf-overview.md (NVIDIA/TensorRT-LLM @258c7540: 128/128 .. 20000/2000;
# 1000/2000 in a later version of the same file) and docs/source/developer-guide/perf-overview.md
# (as read @03e27c7d: 1024/1024 .. 1024/32768). No two tables disagree on a pair. Not stated: the
# fork's 1024/2048 (a counted skip). trtllm-bench picks max batch / max tokens per run from its own
# estimate of the KV cache (``tensorrt_llm/bench/build/tuning.py`` ``calc_engine_setting``), not
# stated per row: the replay uses servopt's TRT-LLM defaults (2048 / 8192), an assumption every
# such setup carries. The KV dtype each doc version states: ``servopt.calibrate.campaigns``.
TRTLLM_BENCH_REQUESTS = {
    (128, 128): 30000,
    (128, 2048): 3000,
    (128, 4096): 1500,
    (1000, 2000): 1500,
    (2048, 128): 3000,
    (2048, 2048): 1500,
    (5000, 500): 1500,
    (1000, 1000): 3000,
    (500, 2000): 3000,
    (20000, 2000): 1000,
    (1024, 1024): 3000,
    (8192, 1024): 1500,
    (1024, 8192): 1500,
    (32768, 1024): 1000,
    (1024, 32768): 1000,
}

# Skip reasons, in the order they are checked (the first that applies is counted).
SKIP_REASONS = (
    "unknown model",
    "system without measured data",
    "speculative decoding",
    "max-throughput run (no concurrency)",
    "burst (all requests at t=0)",
    "open loop at a request rate",
    "phase-only measurement",
    "no concurrency stated",
    "request count not stated",
    "request rate not stated",
    "fewer clients than replicas",
    "precision not stated",
    "precision not supported on this GPU",
    "layout not stated or not modelled",
    "request lengths not stated",
    # Not a mapping skip: the calibration fit's (``fit_skip``) for the disaggregated setups it holds out.
    "disaggregated serving",
)


@dataclass(frozen=True)
class Pool:
    """``workers`` identical workers of one role of a disaggregated replica, each at ``layout``."""

    layout: Layout
    workers: int

    @property
    def gpus(self) -> int:
        return self.layout.gpus * self.workers


@dataclass(frozen=True)
class Setup:
    """What servopt evaluates for one record: ``cli estimate``'s inputs plus replicas and clients.

    ``quant.fmha`` is None: the checkpoint default, resolved against the database as ``cli estimate``
    does (fp8 FMHA only where the data has it). ``concurrency`` is the record's closed-loop clients
    over all ``replicas``; each replica serves ``replica_concurrency`` of them. A disaggregated
    setup (``mode="disagg"``) has ``prefill`` and ``decode`` pools; its ``layout`` is the decode
    workers' (the one its batch runs on).
    """

    record: MeasuredRecord
    model: str  # registry name
    system: str
    backend: str
    version: str  # a queryable perf-db version
    quant: QuantModes
    layout: Layout
    replicas: int
    concurrency: int
    isl: int
    osl: int
    mode: str  # "agg" (cli estimate's in-flight batching) or "disagg" (prefill + decode pools)
    assumptions: tuple[str, ...]
    # Engine flags the campaign's launch script states (servopt.calibrate.campaigns; disagg: the
    # decode workers'); None: defaults.
    stated: StatedEngine | None = None
    # The load as it ran: closed_loop (``concurrency`` clients); burst / max_throughput (all
    # ``num_requests`` at t=0; ``concurrency`` = ``num_requests``); open_loop (Poisson arrivals at
    # ``request_rate`` requests/s, ``num_requests`` of them). Over all replicas, split evenly.
    load: str = "closed_loop"
    num_requests: int | None = None
    request_rate: float | None = None
    # Disaggregated serving: the prefill and decode workers of one replica; None for agg.
    prefill: Pool | None = None
    decode: Pool | None = None

    @property
    def replica_concurrency(self) -> float:
        return self.concurrency / self.replicas

    @property
    def replica_gpus(self) -> int:
        if self.prefill is not None and self.decode is not None:
            return self.prefill.gpus + self.decode.gpus
        return self.layout.gpus

    @property
    def gpus(self) -> int:
        return self.replica_gpus * self.replicas

    @property
    def label(self) -> str:
        """One replica's workers: the layout (agg) or ``xP <layout> + yD <layout>`` (disagg)."""
        if self.prefill is None or self.decode is None:
            return self.layout.label
        p, d = self.prefill, self.decode
        return f"{p.workers}P {p.layout.label} + {d.workers}D {d.layout.label}"


@dataclass(frozen=True)
class Skip:
    reason: str  # one of SKIP_REASONS
    detail: str


def base_model_name(model: str) -> str:
    """The source's model name without its " (hf-id, note)" suffix."""
    return model.split(" (", 1)[0].strip()


def to_setup(record: MeasuredRecord) -> Setup | Skip:
    """The setup reproducing ``record``, or the first of :data:`SKIP_REASONS` that applies."""
    assumptions: list[str] = []
    name = base_model_name(record.model)
    if name not in MODELS:
        return Skip("unknown model", UNMODELLED.get(name, f"{name} is not in servopt's registry"))
    model, alias = MODELS[name]
    if alias:
        assumptions.append(alias)
    if record.system is None or not _has_data(record.system, record.backend):
        return Skip("system without measured data", f"{record.gpu} / {record.backend}")
    if record.spec != "none":
        return Skip("speculative decoding", f"{record.spec}: acceptance rates not stated")
    load = _load(record)
    if isinstance(load, Skip):
        return load
    concurrency, num_requests, rate, load_note = load
    if load_note:
        assumptions.append(load_note)
    arch = _arch(model)
    # The campaigns' aggregated launch scripts are not the disaggregated runs' (campaigns.py); a
    # disaggregated setup's stated flags are its decode workers'.
    stated = stated_engine(record, name) if record.disagg is None else stated_disagg(record, name)
    quant = _quant(record, model, stated.kv_cache if stated else None)
    if quant is None:
        return Skip("precision not stated", record.precision)
    if "nvfp4" in (quant.gemm, quant.moe) and not _has_fp4(record.system):
        return Skip("precision not supported on this GPU", f"{record.precision} on {record.system}")
    assumptions.append(
        f"quant gemm={quant.gemm} moe={quant.moe} kv={quant.kvcache}"
        + (
            ""
            if record.kv_cache or (stated and stated.kv_cache)
            else " (KV: engine default for the checkpoint)"
        )
    )
    if stated is not None and record.disagg is None:
        assumptions.append(stated.note)
    kernel = stated_moe_kernel(record.backend, stated.moe_backend if stated else None, quant.moe)
    if kernel is not None:
        assumptions.append(kernel.note)
    if model.startswith("GPT_OSS") and record.weights in ("fp8", "fp4"):
        assumptions.append(
            f"gpt-oss labelled {record.precision}: its one release, MXFP4 experts ({quant.moe} table: "
            "MXFP8 activations on Blackwell TRT-LLM's CUTLASS MoE, bf16 on Hopper's TRITON), "
            "KV as the perf overview's llm_options state (fp8 on Blackwell, auto on Hopper)"
        )
    pools = None
    if record.disagg is None:
        layout = _layout(record, arch.is_moe, arch.num_experts)
    else:
        pools = _pools(record, arch.is_moe, arch.num_experts)
        layout = pools if isinstance(pools, str) else pools[1].layout
        if not isinstance(pools, str):
            assumptions.append(disagg_note(record, stated))
    if isinstance(layout, str):
        return Skip("layout not stated or not modelled", layout)
    replica_gpus = layout.gpus if pools is None else pools[0].gpus + pools[1].gpus
    if record.num_gpus is None or record.num_gpus % replica_gpus:
        return Skip(
            "layout not stated or not modelled",
            f"{record.num_gpus} GPUs is not a whole number of {replica_gpus}-GPU "
            + ("workers" if pools is None else "replicas"),
        )
    replicas = record.num_gpus // replica_gpus
    if concurrency < replicas:
        what = "clients" if record.load == "closed_loop" else "requests"
        return Skip("fewer clients than replicas", f"{concurrency} {what}, {replicas} replicas")
    isl, osl = record.mean_isl, record.mean_osl
    if isl is None or osl is None:
        return Skip("request lengths not stated", f"lengths {record.lengths}, no token totals")
    if record.lengths != "fixed":
        assumptions.append(f"isl/osl = mean lengths {isl:.0f}/{osl:.0f} ({record.lengths})")
    version, note = nearest_version(record.system, record.backend, record.backend_version)
    if note:
        assumptions.append(note)
    return Setup(
        record=record,
        model=model,
        system=record.system,
        backend=record.backend,
        version=version,
        quant=quant,
        layout=layout,
        replicas=replicas,
        concurrency=concurrency,
        isl=max(1, round(isl)),
        osl=max(2, round(osl)),
        mode="agg" if pools is None else "disagg",
        assumptions=tuple(assumptions),
        stated=stated,
        load=record.load,
        num_requests=num_requests,
        request_rate=rate,
        prefill=None if pools is None else pools[0],
        decode=None if pools is None else pools[1],
    )


def _load(record: MeasuredRecord) -> tuple[int, int | None, float | None, str | None] | Skip:
    """(concurrency, requests, rate, assumption) of the record's load, or why it cannot be replayed.

    A closed loop has its clients; a burst its stated requests, all at t=0; a max-throughput run
    (trtllm-bench throughput, MLPerf Offline) the same, its count stated or documented; an open loop
    its stated rate and count, arrivals Poisson (vLLM's and SGLang's bench_serving at
    ``--request-rate`` with the default burstiness 1, MLPerf's Server scenario: all Poisson).
    """
    detail = f"load {record.load}, rate {record.request_rate}, requests {record.num_requests}"
    if record.load == "phase_only":
        return Skip(_LOAD_SKIPS["phase_only"], detail)
    if record.load == "closed_loop":
        if record.concurrency is None:
            return Skip("no concurrency stated", detail)
        return record.concurrency, None, None, None
    n, note = record.num_requests, None
    if n is None and record.load == "max_throughput" and record.source_name == "TRT-LLM perf overview":
        n = TRTLLM_BENCH_REQUESTS.get((record.isl, record.osl))
        note = (
            f"{n} requests (the perf overview's $num_requests for {record.isl}/{record.osl}); "
            "max batch / tokens: servopt's TRT-LLM defaults (trtllm-bench derives its own per run)"
            if n
            else None
        )
    if not n:
        return Skip("request count not stated", detail)
    if record.load == "open_loop":
        rate = record.request_rate
        if rate is None or not 0 < rate < float("inf"):
            return Skip("request rate not stated", detail)
        return n, n, rate, note or f"open loop: {n} requests, Poisson arrivals at {rate:g} req/s"
    what = "max-throughput run" if record.load == "max_throughput" else "burst"
    return n, n, None, "; ".join(filter(None, [note, f"{what}: all {n} requests at t=0"]))


def fit_skip(setup: Setup) -> Skip | None:
    """Why the calibration fit leaves a mapped setup out (it is still evaluated), or None.

    The fit's request overhead is found in closed form for a closed loop (each client's cycle
    stretches from E2E to E2E + overhead); bursts and open loops are replayed, not fitted.
    Disaggregated setups are a held-out test of the profile on a regime it was not fitted on.
    """
    if setup.mode == "disagg":
        return Skip("disaggregated serving", "prefill/decode workers: evaluated, not fitted")
    if setup.load == "closed_loop":
        return None
    return Skip(_LOAD_SKIPS[setup.load], f"load {setup.load}: evaluated, not fitted")


@cache
def _arch(model: str):
    return resolve_model(model)


@cache
def _spec(system: str):
    return load_system(system)


def _has_data(system: str, backend: str) -> bool:
    try:
        spec = _spec(system)
    except ServoptError:
        return False
    return spec.measured_data is not None and bool(locate.version_slots(spec.measured_data, backend))


def _has_fp4(system: str) -> bool:
    return "fp4" in _spec(system).gpu.peak_flops_per_s


def _quant(record: MeasuredRecord, model: str, script_kv: str | None = None) -> QuantModes | None:
    """Quant modes of the stated precision; KV cache as the record or its campaign script states
    (``script_kv``), else the engine default.

    Engines default the KV cache to the checkpoint's KV dtype ("auto"): FP8 in NVIDIA's NVFP4
    checkpoints (their quant config carries KV scales), the model dtype (bf16) otherwise.
    """
    kv = {"fp8": "fp8", "fp16": "float16"}.get(record.kv_cache or "") or script_kv
    if model.startswith("GPT_OSS") and record.weights in ("fp8", "fp4", "mxfp4"):
        return _gpt_oss_quant(record, model, kv)
    if record.weights == "bf16":
        return QuantModes("float16", "float16", kv or "float16", None)
    if record.weights == "fp8":
        gemm = "fp8_block" if model.startswith(_FP8_BLOCK_MODELS) else "fp8"
        return QuantModes(gemm, gemm, kv or "float16", None)
    if record.weights == "fp4":
        return QuantModes("nvfp4", "nvfp4", kv or "fp8", None)
    return None


def _gpt_oss_quant(record: MeasuredRecord, model: str, kv: str | None) -> QuantModes:
    """gpt-oss runs from its one release, MXFP4 experts and bf16 attention (the registry default),
    whatever precision a source labels the run with.

    The TRT-LLM perf overview labels gpt-oss "FP4" on Blackwell and "FP8" on Hopper, but lists no
    FP4 or FP8 gpt-oss checkpoint (developer-guide/perf-overview.md @03e27c7d, "FP4 Models" / "FP8
    Models"): the label is the compute path. Its stated gpt-oss ``llm_options`` set
    ``kv_cache_config.dtype: fp8`` ("Hopper: use auto", i.e. bf16) and ``moe_config.backend:
    CUTLASS`` (Hopper: TRITON). TRT-LLM's CUTLASS MoE runs MXFP4 weights x MXFP8 activations on
    Blackwell (deployment-guide/quick-start-recipe-for-gpt-oss-on-trtllm.md, "MoE Backend Support
    Matrix"), so TRT-LLM rows labelled FP4 take the ``w4a8_mxfp4_mxfp8`` table; Hopper's TRITON
    MoE keeps bf16 activations (``w4a16_mxfp4``, the registry default).
    """
    default = _arch(model).quant
    moe = default.moe
    if record.weights == "fp4" and record.backend == "trtllm" and _has_fp4(record.system):
        moe = "w4a8_mxfp4_mxfp8"
    if kv is None and record.weights in ("fp8", "fp4"):
        kv = "fp8" if _has_fp4(record.system) else "float16"
    return QuantModes(default.gemm, moe, kv or default.kvcache, None)


def _layout(record: MeasuredRecord, is_moe: bool, num_experts: int | None) -> Layout | str:
    """One worker's layout from the engine flags, or why there is none (:func:`_worker_layout`)."""
    if record.tp is None:
        return "tp not stated"
    return _worker_layout(
        record.tp,
        record.pp or 1,
        record.ep,
        record.dp,
        record.attention_dp,
        record.backend,
        is_moe,
        num_experts,
    )


def _worker_layout(
    tp: int,
    pp: int,
    ep: int | None,
    dp: int | None,
    attention_dp: bool,
    backend: str,
    is_moe: bool,
    num_experts: int | None,
) -> Layout | str:
    """One worker's layout from its engine flags, or why there is none.

    Attention DP (TRT-LLM ``DEPn``, SGLang ``--enable-dp-attention``) runs the ``tp`` ranks as
    attention data-parallel groups: dp = tp (or the stated dp), attention tp = tp / dp; the experts
    span the same GPUs, ``ep`` wide (all of them when unstated). Without it, an unstated ``ep`` is the
    engines' default: experts split by tensor parallelism (moe_tp = tp).
    """
    if not is_moe:
        layout = Layout(tp, pp, 1, 1, 1)
    else:
        dp = (dp or tp) if attention_dp else 1
        attn_tp = tp // dp if tp % dp == 0 else 0
        width = attn_tp * dp
        ep = ep or (width if attention_dp else 1)
        if attn_tp == 0 or width % ep:
            return f"tp{tp} dp{dp} ep{ep} do not split evenly"
        layout = Layout(attn_tp, pp, dp, width // ep, ep)
    valid = enumerate_layouts(
        is_moe=is_moe,
        backend=backend,
        num_gpu_per_worker=[layout.gpus],
        tp_list=[layout.tp],
        pp_list=[layout.pp],
        dp_list=[layout.dp],
        moe_tp_list=[layout.moe_tp],
        moe_ep_list=[layout.moe_ep],
        num_experts=num_experts,
    )
    return layout if valid else f"{layout.label} is not a layout servopt models for {backend}"


def _pools(record: MeasuredRecord, is_moe: bool, num_experts: int | None) -> tuple[Pool, Pool] | str:
    """The (prefill, decode) pools of a disaggregated record, or why its layout cannot be priced.

    Each group states its workers, their GPUs in all, and one worker's tp / ep / attention DP (the
    columns ``prefill_*`` / ``decode_*``). A worker's GPUs must be its tp ranks: a group whose tp
    does not span its workers' GPUs (tp 1 on 4-GPU workers) or that states no workers does not say
    how the worker ran, and is a skip rather than a guess.
    """
    groups = {"prefill": record.disagg.prefill, "decode": record.disagg.decode}
    pools = []
    for role, g in groups.items():
        if g is None or g.count < 1:
            return f"disagg {role}: workers not stated"
        if g.gpus % g.count or g.gpus // g.count != g.tp:
            return (
                f"disagg {role}: tp{g.tp} on {g.gpus} GPUs over {g.count} workers (tp does not span a worker)"
            )
        layout = _worker_layout(g.tp, 1, g.ep, None, g.attention_dp, record.backend, is_moe, num_experts)
        if isinstance(layout, str):
            return f"disagg {role}: {layout}"
        pools.append(Pool(layout, g.count))
    return pools[0], pools[1]


_RELEASE = re.compile(r"v?(\d+(?:\.\d+)+(?:(?:rc|a|b)\d+)?(?:\.post\d+)?)")


def nearest_version(system: str, backend: str, stated: str | None) -> tuple[str, str | None]:
    """The queryable data version closest to the stated one, and a note when it differs.

    Closest = the newest queryable version not newer than the stated one (the data most like the
    engine that ran), else the oldest queryable one; unstated or unparseable -> the current slot.
    """
    slots = locate.version_slots(_spec(system).measured_data, backend)
    current = slots["current"]
    m = _RELEASE.match(stated or "")
    if m is None:
        return current, f"version {stated or 'unstated'} -> data {current} (current)"
    key = locate.version_key(m.group(1))
    queryable = sorted(set(slots.values()), key=locate.version_key)
    older = [v for v in queryable if locate.version_key(v) <= key]
    chosen = older[-1] if older else queryable[0]
    if locate.version_key(chosen) == key:
        return chosen, None
    return chosen, f"version {stated} -> data {chosen} (nearest queryable)"
