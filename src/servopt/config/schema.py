"""The experiment schema of the seed: what a YAML experiment may say, and the resolved Experiment.

Two layers of models:

- *Input* models (``ExperimentInput``, ``ConfigInput``, ``ProfileInput`` and the partial sections)
  say what a user may write: every key optional except the five the seed marks required, unknown keys
  rejected, values strictly typed (``"8"`` is not a number, ``true`` is not 1).
- *Resolved* models (``Experiment`` with its ``ConfigBlock`` of ``WorkerConfig``, ``ReplicaConfig``,
  ``AdvancedTuningConfig``) have every value filled in by defaults, profiles and the user's patch;
  they are frozen, hashable and compare equal when two experiments mean the same search.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    create_model,
    model_validator,
)

from servopt.backends import Backend
from servopt.limits import MAX_TOTAL_GPUS
from servopt.models.arch import FmhaQuant, GemmQuant, KvQuant, MoeQuant

ServingMode = Literal["agg", "disagg"]
PatchMode = Literal["patch", "replace"]
# Collective payload precision (the peer's CommQuantMode); the seed lists only "half".
CommQuant = Literal["half", "int8", "fp8"]
Role = Literal["agg", "prefill", "decode"]

BACKENDS: tuple[str, ...] = get_args(Backend)
SERVING_MODES: tuple[str, ...] = get_args(ServingMode)
GEMM_QUANTS: tuple[str, ...] = get_args(GemmQuant)
MOE_QUANTS: tuple[str, ...] = get_args(MoeQuant)
KV_QUANTS: tuple[str, ...] = get_args(KvQuant)
FMHA_QUANTS: tuple[str, ...] = get_args(FmhaQuant)
COMM_QUANTS: tuple[str, ...] = get_args(CommQuant)

# The peer spells 16-bit "bfloat16"; the seed spells it "float16". Both mean bf16 weights/activations.
_QUANT_ALIASES = {"bfloat16": "float16", "bf16": "float16"}
# The accept-rate list has one entry per draft position; the peer models up to 5 draft tokens.
MAX_NEXTN = 5


def _unalias_quant(value: object) -> object:
    return _QUANT_ALIASES.get(value, value) if isinstance(value, str) else value


def _sorted_unique(values: tuple[int, ...]) -> tuple[int, ...]:
    # Order and repeats in a search list carry no meaning; one canonical form makes equal
    # experiments compare equal.
    return tuple(sorted(set(values)))


# Counts stay below 2**31 so that the product of any two fits in int64 downstream.
MAX_COUNT = 2**31 - 1
# MAX_TOTAL_GPUS (servopt.limits) also bounds "any replica size up to the budget".

PosInt = Annotated[int, Strict(), Field(ge=1, le=MAX_COUNT)]
NonNegInt = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)]
GpuBudget = Annotated[int, Strict(), Field(ge=1, le=MAX_TOTAL_GPUS)]
PosFloat = Annotated[float, Strict(), Field(gt=0)]
Rate = Annotated[float, Strict(), Field(ge=0, le=1)]
Name = Annotated[str, Strict(), Field(min_length=1)]
Flag = Annotated[bool, Strict()]
SizeList = Annotated[tuple[PosInt, ...], Field(min_length=1), AfterValidator(_sorted_unique)]
AcceptRates = Annotated[tuple[Rate, ...], Field(min_length=1, max_length=MAX_NEXTN)]
NextN = Annotated[int, Strict(), Field(ge=0, le=MAX_NEXTN)]
GemmQuantField = Annotated[GemmQuant, BeforeValidator(_unalias_quant)]
MoeQuantField = Annotated[MoeQuant, BeforeValidator(_unalias_quant)]
KvQuantField = Annotated[KvQuant, BeforeValidator(_unalias_quant)]
FmhaQuantField = Annotated[FmhaQuant, BeforeValidator(_unalias_quant)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WorkerConfig(_Strict):
    """One worker role: quantization of each component and the parallel search lists."""

    gemm_quant_mode: GemmQuantField
    moe_quant_mode: MoeQuantField
    kvcache_quant_mode: KvQuantField
    fmha_quant_mode: FmhaQuantField
    comm_quant_mode: CommQuant
    num_gpu_per_worker: SizeList  # a layout's tp*pp*dp*cp must be one of these
    tp_list: SizeList  # attention tensor parallel
    pp_list: SizeList  # pipeline parallel (transformer layers)
    dp_list: SizeList  # attention data parallel (MoE models)
    moe_tp_list: SizeList  # MoE tensor parallel
    moe_ep_list: SizeList  # MoE expert parallel
    # Context parallel (SGLang prefill: cp ranks split each prompt; cp > 1 needs tp = dp = 1 and
    # is for agg/prefill workers only). Absent = [1], so configs written before it still load.
    cp_list: SizeList = (1,)


class ReplicaConfig(_Strict):
    """A replica = x prefill + y decode workers; replicas are scaled to the GPU budget."""

    # Allowed replica sizes in GPUs; None = any size up to max_gpu_per_replica (wide EP).
    num_gpu_per_replica: SizeList | None
    # Cap on a replica's GPUs; 0 in a YAML means no cap (resolved to total_gpus).
    max_gpu_per_replica: NonNegInt
    max_prefill_worker: PosInt  # x_max
    max_decode_worker: PosInt  # y_max


class AdvancedTuningConfig(_Strict):
    # latency_corrected = latency_predicted * scale (the model is optimistic otherwise).
    prefill_latency_correction_scale: PosFloat
    decode_latency_correction_scale: PosFloat
    prefill_max_batch_size: PosInt
    decode_max_batch_size: PosInt  # per rank, not global


WORKER_SECTIONS: tuple[str, ...] = ("worker_config", "prefill_worker_config", "decode_worker_config")
SECTIONS_BY_MODE: dict[str, tuple[str, ...]] = {
    "agg": ("worker_config",),
    "disagg": ("prefill_worker_config", "decode_worker_config", "replica_config", "advanced_tuning_config"),
}
ROLE_SECTION: dict[str, str] = {
    "agg": "worker_config",
    "prefill": "prefill_worker_config",
    "decode": "decode_worker_config",
}


class ConfigBlock(_Strict):
    """The resolved ``config:`` block: sections of the experiment's serving mode only."""

    nextn: NextN  # MTP draft tokens per step
    nextn_accept_rates: AcceptRates  # acceptance of the i-th draft token
    worker_config: WorkerConfig | None = None
    prefill_worker_config: WorkerConfig | None = None
    decode_worker_config: WorkerConfig | None = None
    replica_config: ReplicaConfig | None = None
    advanced_tuning_config: AdvancedTuningConfig | None = None


def _partial(model: type[BaseModel], name: str, replace: dict[str, Any] | None = None) -> type[BaseModel]:
    """The same model with every key optional: what a patch (or a profile) may say.

    An absent key defaults to None (pydantic does not validate defaults); an explicit ``null`` is
    accepted only where the resolved value may be None, or for a whole section (an empty patch), so
    that ``tp_list:`` left empty is an error rather than a silent default.
    """
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        if replace and key in replace:
            annotation = replace[key] | None
        elif info.metadata:
            annotation = Annotated[info.annotation, *info.metadata]
        else:
            annotation = info.annotation
        fields[key] = (annotation, None)
    return create_model(name, __base__=_Strict, __doc__=f"A partial {model.__name__}.", **fields)


WorkerConfigPatch = _partial(WorkerConfig, "WorkerConfigPatch")
ReplicaConfigPatch = _partial(ReplicaConfig, "ReplicaConfigPatch")
AdvancedTuningConfigPatch = _partial(AdvancedTuningConfig, "AdvancedTuningConfigPatch")
ConfigInput = _partial(
    ConfigBlock,
    "ConfigInput",
    replace={
        "worker_config": WorkerConfigPatch,
        "prefill_worker_config": WorkerConfigPatch,
        "decode_worker_config": WorkerConfigPatch,
        "replica_config": ReplicaConfigPatch,
        "advanced_tuning_config": AdvancedTuningConfigPatch,
    },
)


Percentile = Annotated[float, Strict(), Field(gt=0, lt=100)]
Arrival = Literal["poisson", "constant", "gamma"]
SizingObjective = Literal["min_gpus", "max_goodput_per_gpu", "min_cost"]


class Workload(_Strict):
    """The optional ``workload:`` section: size the experiment for a load (docs/sizing.md) instead
    of the budget search. Exactly one of ``request_rate`` (requests/s, open loop) and
    ``concurrency`` (closed-loop clients); the rest has the ``cli default`` flags' defaults."""

    request_rate: PosFloat | None = None
    concurrency: PosInt | None = None
    arrival: Arrival = "poisson"
    arrival_cv: PosFloat = 1.0
    ttft_percentile: Percentile = 99.0
    tpot_percentile: Percentile = 99.0
    num_requests: Annotated[int, Strict(), Field(ge=1, le=1_000_000)] = 2000
    seed: NonNegInt = 0
    objective: SizingObjective = "min_gpus"
    # Your USD per GPU-hour by system (none ship with servopt): cost per hour and per million
    # output tokens on every answer, as ``cli default --gpu_hour_price``.
    gpu_hour_price: dict[Name, PosFloat] | None = None

    @model_validator(mode="after")
    def _one_load(self) -> Workload:
        if (self.request_rate is None) == (self.concurrency is None):
            raise ValueError("give request_rate or concurrency (exactly one)")
        if self.objective == "max_goodput_per_gpu" and self.concurrency is not None:
            raise ValueError("objective max_goodput_per_gpu needs request_rate (not yet with concurrency)")
        if self.objective == "min_cost" and self.gpu_hour_price is None:
            raise ValueError("objective min_cost needs gpu_hour_price (your USD per GPU-hour of each system)")
        return self


class ExperimentInput(_Strict):
    """One experiment as written in the YAML (the seed's keys; required ones have no default)."""

    mode: PatchMode
    serving_mode: ServingMode
    model_name: Name
    total_gpus: GpuBudget
    system_name: Name
    decode_system_name: Name | None = None
    backend_name: Backend = None  # type: ignore[assignment]
    backend_version: Name | None = None  # null = the latest version
    # Absent keys take the defaults; an explicit null is an error except where null means something.
    isl: PosInt = None  # type: ignore[assignment]
    osl: Annotated[int, Strict(), Field(ge=2, le=MAX_COUNT)] = None  # type: ignore[assignment]  # TPOT divides by osl - 1
    ttft: PosFloat = None  # type: ignore[assignment]
    tpot: PosFloat = None  # type: ignore[assignment]
    enable_wide_ep: Flag = None  # type: ignore[assignment]
    profiles: tuple[Name, ...] | None = None
    config: ConfigInput | None = None  # type: ignore[valid-type]
    workload: Workload | None = None
    # default (the shipped calibration profile), none (the raw model) or a profile YAML path,
    # relative to this file's folder (``--calibration`` of the CLI overrides it).
    calibration: Name = None  # type: ignore[assignment]
    # true: plan against the pessimistic end of the calibration's 80% error band (``--robust``).
    robust: Flag = None  # type: ignore[assignment]


class ProfileInput(_Strict):
    """A profile file: a named preset of config values that experiments inherit before their patch."""

    description: Name
    aliases: tuple[Name, ...] = ()
    enable_wide_ep: Flag = None  # type: ignore[assignment]
    config: ConfigInput | None = None  # type: ignore[valid-type]


class Experiment(_Strict):
    """One fully resolved experiment: everything the search needs, nothing left to default."""

    name: Name
    serving_mode: ServingMode
    model_name: Name
    total_gpus: GpuBudget
    system_name: Name  # the prefill system in disagg
    decode_system_name: Name | None  # disagg only (equals system_name unless heterogeneous)
    backend_name: Backend
    backend_version: Name | None  # None = the latest version the perf database has
    isl: PosInt
    osl: PosInt
    ttft: PosFloat  # ms
    tpot: PosFloat  # ms
    enable_wide_ep: Flag
    profiles: tuple[Name, ...]  # applied in order, before the experiment's own patch
    # default | none | an absolute profile path (servopt.calibrate.model.resolve_calibration)
    calibration: Name = "default"
    robust: Flag = False  # plan at the pessimistic end of the calibration's 80% error band
    config: ConfigBlock
    workload: Workload | None = None  # set: size for this load (cli exp routes it to rate sizing)

    @property
    def roles(self) -> tuple[Role, ...]:
        return ("agg",) if self.serving_mode == "agg" else ("prefill", "decode")

    def worker(self, role: Role) -> WorkerConfig:
        section = getattr(self.config, ROLE_SECTION[role])
        if section is None:
            raise KeyError(f"experiment {self.name} ({self.serving_mode}) has no {role} worker")
        return section

    def system(self, role: Role) -> str:
        return (self.decode_system_name or self.system_name) if role == "decode" else self.system_name

    @property
    def replica(self) -> ReplicaConfig | None:
        return self.config.replica_config

    @property
    def tuning(self) -> AdvancedTuningConfig | None:
        return self.config.advanced_tuning_config

    @property
    def replica_gpu_sizes(self) -> tuple[int, ...]:
        """The replica sizes the search may use: the list capped by max_gpu_per_replica, or every size."""
        replica = self.replica
        if replica is None:
            return ()
        cap = replica.max_gpu_per_replica
        if replica.num_gpu_per_replica is None:
            return tuple(range(1, cap + 1))
        return tuple(n for n in replica.num_gpu_per_replica if n <= cap)

    def to_dict(self) -> dict[str, Any]:
        """The experiment as a complete ``mode: replace`` YAML mapping (loads back to an equal one)."""
        body = self.model_dump(mode="json", exclude={"name"}, exclude_none=False)
        body["config"] = {k: v for k, v in body["config"].items() if v is not None}
        if body["workload"] is None:
            body.pop("workload")
        else:
            body["workload"] = {k: v for k, v in body["workload"].items() if v is not None}
        if self.serving_mode == "agg":
            body.pop("decode_system_name")
        if not body["robust"]:  # written only when set, so configs saved before the key read the same
            body.pop("robust")
        return {"mode": "replace", **body}

    def to_yaml(self) -> str:
        """YAML of the resolved experiment, so a run can be reproduced exactly."""
        return yaml.safe_dump(
            {self.name: self.to_dict()}, sort_keys=False, default_flow_style=None, width=110
        )
