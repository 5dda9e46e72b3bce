"""The documented schema of ``result.json`` / ``--json`` output, as pydantic models.

``docs/result_schema.json`` is generated from these models (``python -m servopt.report.schema``)
and a test keeps it in step; consumers can validate a result with any JSON-Schema validator, or
with ``ResultDoc.model_validate``.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    # Rows carry layout columns that depend on the mode; unknown keys are allowed, listed ones required.
    model_config = ConfigDict(extra="allow")


class Row(_Open):
    """One deployment: figures plus the layout columns of its mode (agg: tp, pp, dp, moe_tp,
    moe_ep, cp (only where > 1: SGLang context parallelism), batch_size, ctx_tokens; disagg:
    prefill_* and decode_* columns, *_workers)."""

    experiment: str
    mode: Literal["agg", "disagg"]
    kind: Literal["identical", "packed"]
    tokens_per_s: float = Field(ge=0)
    tokens_per_s_per_gpu: float = Field(ge=0)
    tokens_per_s_per_user: float = Field(ge=0)
    requests_per_s: float = Field(ge=0)
    ttft_ms: float = Field(ge=0)
    tpot_ms: float = Field(ge=0)
    request_latency_ms: float = Field(ge=0)
    concurrency: float = Field(ge=0)
    total_gpus: int = Field(ge=1)
    total_gpus_used: int = Field(ge=1)
    replicas: int = Field(ge=1)
    gpus_per_replica: int = Field(ge=1)


class PackedRow(Row):
    gain_vs_identical: float


class Band80(BaseModel):
    """80% interval [low, high] of a predicted figure, from the calibration profile's
    cross-validated residuals (servopt.error_bands); absent for the raw model."""

    model_config = ConfigDict(extra="forbid")

    ttft_ms: tuple[float, float] | None = None
    tpot_ms: tuple[float, float] | None = None
    tokens_per_s_per_gpu: tuple[float, float] | None = None


class BandedPackedRow(PackedRow):
    band_80: Band80 | None = None


class Best(Row):
    packed: BandedPackedRow
    runner_up: str | None = None
    ratio_vs_runner_up: float | None = None
    band_80: Band80 | None = Field(None, description="absent: the raw model (calibration: none)")


class BandChoice(BaseModel):
    """The plan the verdict's rule picks at one end of the band."""

    model_config = ConfigDict(extra="forbid")

    experiment: str
    mode: Literal["agg", "disagg"]
    deploy: Literal["identical", "packed"]
    parallel: str = Field(description="each replica shape's parallel layouts and worker counts")
    layout: str = Field(description="replicas x (layout with batch sizes), per replica shape")
    tokens_per_s_per_gpu: float = Field(ge=0)
    ttft_ms: float = Field(ge=0)
    tpot_ms: float = Field(ge=0)


class BandFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = Field(ge=0)
    tpot_ms: float = Field(ge=0)
    tokens_per_s_per_gpu: float = Field(ge=0)


class Flips(BaseModel):
    """Whether the plan at the other end of the band differs (both true when nothing meets the
    targets there)."""

    model_config = ConfigDict(extra="forbid")

    verdict: bool = Field(description="agg vs disagg")
    layout: bool = Field(description="the parallel layouts or worker counts of a replica shape")


class Targets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttft_ms: float
    tpot_ms: float


class Robustness(BaseModel):
    """The chosen deployment at the pessimistic end of its 80% band (TTFT and TPOT x e^high,
    tokens/s/GPU x e^low), and the selection redone there on the same candidates."""

    model_config = ConfigDict(extra="forbid")

    band: Literal["80%"]
    planned_at: Literal["nominal", "pessimistic"] = Field(description="pessimistic: --robust")
    factors: BandFigures = Field(description="what the pessimistic end multiplies")
    pessimistic: BandFigures = Field(description="the chosen deployment's figures at the pessimistic end")
    targets: Targets
    holds: bool = Field(description="its TTFT and TPOT targets hold at the pessimistic end")
    binding: Literal["ttft_ms", "tpot_ms"] = Field(description="the target with the least headroom there")
    nominal_choice: BandChoice | None = Field(description="null: nothing meets the targets at that end")
    pessimistic_choice: BandChoice | None = Field(description="null: nothing meets the targets at that end")
    flips: Flips
    text: list[str] = Field(description="the verdict's lines on the band (terminal and web page)")


class Verdict(BaseModel):
    """The recommendation (report/verdict.py): which shape of the winning mode to deploy, and why."""

    model_config = ConfigDict(extra="forbid")

    deploy: Literal["identical", "packed"]
    experiment: str
    mode: Literal["agg", "disagg"]
    headline: str
    why: list[str]
    alternative: str | None


class ParetoPoint(_Open):
    experiment: str
    mode: Literal["agg", "disagg"]
    tokens_per_s_per_user: float
    tokens_per_s_per_gpu: float
    tpot_ms: float
    ttft_ms: float
    total_gpus_used: int
    layout: str
    chosen: bool


class BorrowedTable(BaseModel):
    """Measured rows a role's database takes from another data version (or backend) than its own."""

    table: str
    backend: str
    version: str
    channel: Literal["declared_reuse", "fallback", "cross_backend"]
    rows: int = Field(ge=1)


class _Adjustments(BaseModel):
    """A calibration profile's four parameters for one scope (servopt.calibrate.model)."""

    model_config = ConfigDict(extra="forbid")

    scope: str = Field(description="the profile's scope that applied: 'trtllm on h200_sxm', 'trtllm', ...")
    request_overhead_ms: float = Field(ge=0)
    iteration_overhead_ms: float = Field(ge=0)
    prefill_scale: float = Field(gt=0)
    decode_scale: float = Field(gt=0)


class WorkerCalibration(_Adjustments):
    system: str


class Calibration(BaseModel):
    """The calibration the figures include; the key is absent for the raw model (calibration: none,
    comparable with aiconfigurator 0.12.0)."""

    model_config = ConfigDict(extra="forbid")

    profile: str = Field(description="'default profile' (shipped) or the profile file's path")
    measurements: int = Field(ge=0, description="measurements the profile was fitted on")
    workers: dict[str, WorkerCalibration] = Field(description="worker role -> its scope and parameters")


class ScopeCalibration(_Adjustments):
    """Rate sizing's calibration (the (backend, system) scope of --system); absent for the raw model."""

    profile: str
    measurements: int = Field(ge=0)
    decode: _Adjustments | None = Field(
        None, description="the scope of the decode pools when they run on --decode_system"
    )


class ExperimentDoc(_Open):
    name: str
    serving_mode: Literal["agg", "disagg"]
    model: str
    system: str
    backend: str
    total_gpus: int
    isl: int
    osl: int
    ttft_ms: float
    tpot_ms: float
    infeasible: str | None
    borrowed_tables: dict[str, list[BorrowedTable]] = {}
    best: Row | None = None
    packed: PackedRow | None = None
    top: list[Row] = []
    pareto: list[ParetoPoint] = []
    calibration: Calibration | None = None


class ResultDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    best: Best
    verdict: Verdict
    agg: list[Row]
    disagg: list[Row]
    pareto: list[ParetoPoint]
    experiments: list[ExperimentDoc]
    calibration: Calibration | None = Field(None, description="the winner's; absent: the raw model")
    robustness: Robustness | None = Field(None, description="absent: the raw model (no error bands)")


# -- rate sizing (``cli default --request_rate`` / ``--concurrency``; docs/sizing.md) ------------
class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Percentiles(_Closed):
    """Over the measured requests, ms (the same four figures as ``cli simulate``)."""

    mean: float = Field(ge=0)
    p50: float = Field(ge=0)
    p90: float = Field(ge=0)
    p99: float = Field(ge=0)


class Latencies(_Closed):
    """``null`` where there is nothing to summarise (simulated: no request with 2+ output tokens;
    analytic: the queueing model saturates)."""

    ttft_ms: Percentiles | None
    tpot_ms: Percentiles | None


class SizingWorkers(_Closed):
    option: str
    role: Literal["agg", "prefill", "decode"]
    workers: int = Field(ge=1)
    gpus_per_worker: int = Field(ge=1)
    system: str = Field(description="the GPU system the workers run on (decode: --decode_system)")


class SizingGoodput(_Closed):
    attainment: float = Field(ge=0, le=1)
    requests_per_s: float = Field(ge=0)
    per_gpu: float = Field(ge=0)


class SizingCost(_Closed):
    """At the user's ``--gpu_hour_price`` (none ship with servopt)."""

    usd_per_gpu_hour: dict[str, float]
    usd_per_hour: float = Field(ge=0)
    usd_per_million_output_tokens: float | None = Field(ge=0)


class SizedDeployment(_Closed):
    """One mode's answer. ``simulated``: the verdict's own figures; ``analytic``: queueing formulas
    (docs/sizing.md), for comparison; ``binding``: the target with the least slack."""

    mode: Literal["agg", "disagg"]
    total_gpus_used: int = Field(ge=1)
    gpus_by_system: dict[str, int] = Field(description="total_gpus_used split by GPU system")
    workers: list[SizingWorkers]
    simulated: Latencies
    analytic: Latencies
    binding: Literal["ttft", "tpot"]
    goodput: SizingGoodput
    cost: SizingCost | None = Field(description="null without --gpu_hour_price")
    at_targets: dict[str, float] = Field(
        description="ttft_pP_ms and tpot_pP_ms: simulated, at the target percentiles"
    )


class SizingLoad(_Closed):
    """The offered load, echoed."""

    kind: Literal["open_loop", "closed_loop"]
    request_rate: float | None
    concurrency: int | None
    arrival: Literal["poisson", "constant", "gamma"] | None
    isl: int
    osl: int
    num_requests_simulated: int
    seed: int


class SizingTargets(_Closed):
    ttft_ms: float
    tpot_ms: float
    ttft_percentile: float
    tpot_percentile: float


class SizingSearch(_Closed):
    simulations: int = Field(ge=0)
    verification_failures: int = Field(ge=0)
    options_pruned: int = Field(ge=0)


class SizingRobustness(_Closed):
    """The answer's simulated percentiles at the pessimistic end of the calibration's 80% band
    (each times e^high of its metric's band); absent for the raw model."""

    band: Literal["80%"]
    factors: dict[str, float] = Field(description="ttft_ms and tpot_ms: the latency factors")
    pessimistic: dict[str, float] = Field(description="ttft_pP_ms and tpot_pP_ms at the pessimistic end")
    holds: bool
    binding: Literal["ttft", "tpot"]


class SizingDoc(_Closed):
    """``cli default --request_rate R`` (or ``--concurrency C``) ``--json``."""

    model: str
    system: str
    decode_system: str | None = Field(description="the disagg decode pools' system; null: --system")
    backend: str
    backend_version: str
    decode_backend_version: str | None = Field(description="the decode system's data version; null: none")
    objective: Literal["min_gpus", "max_goodput_per_gpu", "min_cost"]
    modes: list[Literal["agg", "disagg"]]
    load: SizingLoad
    targets: SizingTargets
    best: SizedDeployment
    agg: SizedDeployment | None
    disagg: SizedDeployment | None
    search: SizingSearch
    calibration: ScopeCalibration | None = Field(None, description="absent: the raw model")
    robustness: SizingRobustness | None = Field(None, description="absent: the raw model")


def json_schema() -> dict:
    """The budget search's document at the top level; the rate sizing document (another command's
    output) under ``$defs.SizingDoc``."""
    doc = ResultDoc.model_json_schema()
    sizing = SizingDoc.model_json_schema(ref_template="#/$defs/{model}")
    doc["$defs"].update(sizing.pop("$defs"))
    doc["$defs"]["SizingDoc"] = sizing
    return doc


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
