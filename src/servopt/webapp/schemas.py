"""Request and response bodies of the JSON API (they also make its OpenAPI schema).

Requests carry only types and the web app's own upper bounds; every other rule (isl >= 1, a known
system, a version the database has ...) is the configuration loader's, so that the browser shows the
same messages as the CLI.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from servopt.limits import MAX_NAME_CHARS, MAX_TOTAL_GPUS

# Upper bounds that only protect the server; the loader has the real rules (the GPU budget's is
# the same range everywhere).
MAX_WEB_GPUS = MAX_TOTAL_GPUS
MAX_WEB_TOKENS = 10_000_000
MAX_WEB_LATENCY_MS = 10_000_000.0
MAX_WEB_RATE = 1_000_000.0
MAX_WEB_CLIENTS = 1_000_000
MAX_WEB_ARRIVAL_CV = 1000.0
MAX_WEB_PRICE_CHARS = 2000
MAX_TOP_N = 20
DEFAULT_TOP_N = 5


def _utf8(text: str) -> str:
    # JSON may carry lone surrogates ("\ud800") that no UTF-8 parser or response can hold.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"must be Unicode text (a lone surrogate at character {err.start})") from None
    return text


Text = Annotated[str, AfterValidator(_utf8)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    top_n: int = Field(DEFAULT_TOP_N, ge=1, le=MAX_TOP_N, description="rows kept per experiment table")


class DefaultSearch(_Request):
    """The form of ``servopt cli default``: an agg and a disagg experiment from a few fields."""

    kind: Literal["default"] = "default"
    model: Text = Field(max_length=MAX_NAME_CHARS, description="registry model name, e.g. QWEN3_32B")
    system: Text = Field(max_length=MAX_NAME_CHARS, description="GPU system, e.g. h200_sxm")
    total_gpus: int = Field(le=MAX_WEB_GPUS)
    decode_system: Text | None = Field(None, max_length=MAX_NAME_CHARS, description="disagg decode system")
    backend: Text = Field("trtllm", max_length=MAX_NAME_CHARS)
    backend_version: Text | None = Field(None, max_length=MAX_NAME_CHARS, description="None: the latest")
    isl: int = Field(4000, le=MAX_WEB_TOKENS, description="input sequence length (tokens)")
    osl: int = Field(1000, le=MAX_WEB_TOKENS, description="output sequence length (tokens)")
    ttft: float = Field(
        1000.0, le=MAX_WEB_LATENCY_MS, allow_inf_nan=False, description="target time to first token (ms)"
    )
    tpot: float = Field(
        40.0, le=MAX_WEB_LATENCY_MS, allow_inf_nan=False, description="target time per output token (ms)"
    )
    # A load (docs/sizing.md): with one of these the form asks for the fewest GPUs serving it within
    # percentile targets (``cli default --request_rate`` / ``--concurrency``), not the budget search.
    request_rate: float | None = Field(
        None, gt=0, le=MAX_WEB_RATE, allow_inf_nan=False, description="requests/s to size for (open loop)"
    )
    concurrency: int | None = Field(
        None, ge=1, le=MAX_WEB_CLIENTS, description="closed-loop clients to size for (instead of a rate)"
    )
    ttft_percentile: float = Field(99.0, gt=0, lt=100, description="with a load: TTFT target percentile")
    tpot_percentile: float = Field(99.0, gt=0, lt=100, description="with a load: TPOT target percentile")
    objective: Literal["min_gpus", "max_goodput_per_gpu", "min_cost"] = Field(
        "min_gpus",
        description="with a load: fewest GPUs, most goodput per GPU (request_rate only), or least USD/hour "
        "at gpu_hour_price",
    )
    arrival: Literal["poisson", "constant", "gamma"] = Field(
        "poisson", description="with request_rate: the arrival process"
    )
    arrival_cv: float = Field(
        1.0, gt=0, le=MAX_WEB_ARRIVAL_CV, allow_inf_nan=False, description="gamma arrivals: CV of the gaps"
    )
    gpu_hour_price: Text | None = Field(
        None,
        max_length=MAX_WEB_PRICE_CHARS,
        description="with a load: your USD per GPU-hour, SYSTEM=USD[,SYSTEM=USD] (cli --gpu_hour_price)",
    )
    calibration: Literal["default", "none"] = Field(
        "default",
        description="default: the shipped calibration profile; none: the raw model (aiconfigurator's)",
    )
    robust: bool = Field(
        False,
        description="plan against the pessimistic end of the calibration's 80% error band (cli --robust)",
    )

    @property
    def loaded(self) -> bool:
        return self.request_rate is not None or self.concurrency is not None


class YamlSearch(_Request):
    """The form of ``servopt cli exp``: experiments in the seed's YAML schema."""

    kind: Literal["yaml"]
    yaml: Text = Field(description="experiment YAML text (the seed's schema)")


SearchRequest = Annotated[DefaultSearch | YamlSearch, Field(discriminator="kind")]


class ProblemOut(BaseModel):
    field: str
    message: str
    value: Any = None
    allowed: list[str] | None = None
    line: int = Field(0, description="1-based line in the YAML text; 0 for form fields")
    col: int = 0
    text: str = Field(description="the whole problem as the CLI prints it")


class ErrorOut(BaseModel):
    detail: str
    problems: list[ProblemOut] = []


class ExperimentOut(BaseModel):
    name: str
    serving_mode: str
    model_name: str
    total_gpus: int
    system_name: str
    decode_system_name: str | None
    backend_name: str
    backend_version: str | None
    isl: int
    osl: int
    ttft: float
    tpot: float
    calibration: str = "default"
    robust: bool = False


class ValidateOut(BaseModel):
    ok: bool
    experiments: list[ExperimentOut]


class ModelOut(BaseModel):
    name: str
    hf_id: str | None
    family: str
    aliases: list[str]


class SystemOut(BaseModel):
    name: str
    description: str
    gpu_memory_gib: float
    roofline_only: bool
    backends: dict[str, list[str]] = Field(
        description="backend -> versions (aliases last); empty if roofline"
    )


class JobOut(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed", "timed_out", "cancelled"]
    position: int = Field(0, description="place in the queue (1 = next); 0 when not queued")
    stage: str
    fraction: float
    elapsed_s: float
    experiments: list[str] = []
    error: ErrorOut | None = None
    result: dict[str, Any] | None = Field(
        None, description="the search result, shaped like `cli default --json`"
    )
    lines: dict[str, Any] | None = Field(
        None, description="the terminal report's `calibration` line and error-`bands` lines, as printed"
    )
