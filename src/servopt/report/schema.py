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


class Best(Row):
    packed: PackedRow
    runner_up: str | None = None
    ratio_vs_runner_up: float | None = None


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


class ResultDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    best: Best
    verdict: Verdict
    agg: list[Row]
    disagg: list[Row]
    pareto: list[ParetoPoint]
    experiments: list[ExperimentDoc]


def json_schema() -> dict:
    return ResultDoc.model_json_schema()


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2))
