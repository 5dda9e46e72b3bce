"""Offered load and request lengths: closed loop, Poisson, constant, bursty (gamma) or a trace.

Everything is drawn from one seeded ``numpy.random.Generator`` in a fixed order, so the same
arguments give the same requests on any machine.

- Closed loop (``concurrency``): N clients, each sending its next request when its last one ends,
  with no think time: how InferenceX, ``vllm bench serve --max-concurrency`` and AIPerf
  ``--concurrency`` measure.
- Open loop at ``request_rate`` per second: ``poisson`` (exponential gaps), ``constant`` (equal
  gaps) or ``gamma`` (gaps with coefficient of variation ``arrival_cv``; > 1 is burstier than
  Poisson).
- Lengths: fixed, a uniform range ``[mean * (1 - r), mean * (1 + r)]`` (benchmark tools' random
  range ratio), an empirical histogram file, or a JSONL trace (Mooncake's format: ``timestamp`` in
  ms, ``input_length``, ``output_length`` per line).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from servopt.errors import ServoptError

ARRIVALS = ("poisson", "constant", "gamma")
# Input files are read whole: bound them like the experiment files.
MAX_INPUT_FILE_BYTES = 64 << 20
MAX_LENGTH_TOKENS = 10_000_000
# Per-request arrays cost ~100 bytes a request; beyond this a run is a mistake, not a benchmark.
MAX_REQUESTS = 2_000_000


class Requests(NamedTuple):
    """The requests of one simulation (arrival times are ignored in a closed loop)."""

    arrival_ms: np.ndarray  # (n,) float64 sorted
    isl: np.ndarray  # (n,) int64
    osl: np.ndarray  # (n,) int64


@dataclass(frozen=True)
class Load:
    """Closed loop at ``concurrency`` clients, or open loop at ``request_rate`` requests/s."""

    concurrency: int | None = None
    request_rate: float | None = None
    arrival: str = "poisson"
    arrival_cv: float = 1.0

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.request_rate is None) and self.request_rate is None:
            raise ServoptError("load", "none", "give --concurrency N or --request_rate R")
        if self.concurrency is not None and self.request_rate is not None:
            raise ServoptError("load", "both", "give --concurrency or --request_rate, not both")
        if self.concurrency is not None and (not isinstance(self.concurrency, int) or self.concurrency < 1):
            raise ServoptError("concurrency", self.concurrency, "must be an integer >= 1")
        if self.request_rate is not None and not (math.isfinite(self.request_rate) and self.request_rate > 0):
            raise ServoptError("request_rate", self.request_rate, "must be a finite number > 0")
        if self.arrival not in ARRIVALS:
            raise ServoptError("arrival", self.arrival, f"allowed: {', '.join(ARRIVALS)}")
        if not (math.isfinite(self.arrival_cv) and self.arrival_cv > 0):
            raise ServoptError("arrival_cv", self.arrival_cv, "must be a finite number > 0")

    @property
    def closed_loop(self) -> bool:
        return self.concurrency is not None

    def describe(self) -> dict:
        if self.closed_loop:
            return {"kind": "closed_loop", "concurrency": self.concurrency}
        out = {"kind": "open_loop", "request_rate": self.request_rate, "arrival": self.arrival}
        if self.arrival == "gamma":
            out["arrival_cv"] = self.arrival_cv
        return out


def arrival_times_ms(load: Load, n: int, rng: np.random.Generator) -> np.ndarray:
    """Open-loop arrival times of ``n`` requests, the first at t = 0 (closed loop: zeros)."""
    if load.closed_loop or n == 0:
        return np.zeros(n)
    mean_gap_ms = 1000.0 / load.request_rate
    if load.arrival == "constant":
        gaps = np.full(n, mean_gap_ms)
    elif load.arrival == "poisson":
        gaps = rng.exponential(mean_gap_ms, n)
    else:
        shape = 1.0 / load.arrival_cv**2
        gaps = rng.gamma(shape, mean_gap_ms / shape, n)
    gaps[0] = 0.0
    return np.cumsum(gaps)


@dataclass(frozen=True)
class Lengths:
    """Prompt and output lengths: fixed means, a uniform range ratio, or an empirical histogram."""

    isl: int
    osl: int
    isl_range: float = 0.0
    osl_range: float = 0.0
    histogram: tuple[tuple[int, int, float], ...] | None = None  # (isl, osl, weight) rows

    def __post_init__(self) -> None:
        for name in ("isl", "osl"):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or not 1 <= value <= MAX_LENGTH_TOKENS:
                raise ServoptError(name, value, f"must be an integer in [1, {MAX_LENGTH_TOKENS}]")
        for name in ("isl_range", "osl_range"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value < 1.0):
                raise ServoptError(name, value, "must be a ratio in [0, 1)")

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        if self.histogram is not None:
            rows = np.array(self.histogram, dtype=np.float64)
            pick = rng.choice(len(rows), size=n, p=rows[:, 2] / rows[:, 2].sum())
            return rows[pick, 0].astype(np.int64), rows[pick, 1].astype(np.int64)
        return _uniform(self.isl, self.isl_range, n, rng), _uniform(self.osl, self.osl_range, n, rng)

    @property
    def max_isl(self) -> int:
        if self.histogram is not None:
            return max(int(r[0]) for r in self.histogram)
        return math.floor(self.isl * (1 + self.isl_range))

    @property
    def max_osl(self) -> int:
        if self.histogram is not None:
            return max(int(r[1]) for r in self.histogram)
        return math.floor(self.osl * (1 + self.osl_range))


def _uniform(mean: int, ratio: float, n: int, rng: np.random.Generator) -> np.ndarray:
    if ratio == 0.0:
        return np.full(n, mean, dtype=np.int64)
    lo = max(1, math.ceil(mean * (1 - ratio)))
    hi = max(lo, math.floor(mean * (1 + ratio)))
    return rng.integers(lo, hi + 1, size=n, dtype=np.int64)


def make_requests(load: Load, lengths: Lengths, num_requests: int, seed: int) -> Requests:
    """``num_requests`` requests, drawn in a fixed order from ``seed``: lengths, then arrivals."""
    if not isinstance(num_requests, int | np.integer) or not 1 <= num_requests <= MAX_REQUESTS:
        raise ServoptError("num_requests", num_requests, f"must be an integer in [1, {MAX_REQUESTS}]")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ServoptError("seed", seed, "must be an integer >= 0")
    rng = np.random.default_rng(seed)
    isl, osl = lengths.draw(num_requests, rng)
    return Requests(arrival_times_ms(load, num_requests, rng), isl, osl)


def _read_text(path: str | Path, field: str) -> tuple[Path, str]:
    p = Path(path)
    try:
        if not p.exists():
            raise ServoptError(field, str(p), "no such file")
        if not p.is_file():
            raise ServoptError(field, str(p), "is not a regular file")
        if p.stat().st_size > MAX_INPUT_FILE_BYTES:
            raise ServoptError(field, str(p), f"larger than {MAX_INPUT_FILE_BYTES >> 20} MiB")
        return p, p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ServoptError(field, str(p), f"cannot be read: {err.__class__.__name__}") from None


def _fail(path: Path, line: int, field: str, message: str) -> ServoptError:
    return ServoptError(f"{path}:{line}: {field}", None, message)


def _positive_int(value, path: Path, line: int, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, line, field, f"must be a number, got {value!r}")
    if value != int(value) or not 1 <= value <= MAX_LENGTH_TOKENS:
        raise _fail(path, line, field, f"must be an integer in [1, {MAX_LENGTH_TOKENS}], got {value!r}")
    return int(value)


def read_trace(path: str | Path) -> Requests:
    """A JSONL trace: ``timestamp`` (ms, non-decreasing), ``input_length``, ``output_length``."""
    p, text = _read_text(path, "trace")
    times, isl, osl = [], [], []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as err:
            raise _fail(p, line_no, "json", f"not a JSON object ({err.msg})") from None
        if not isinstance(row, dict):
            raise _fail(p, line_no, "json", "each line must be a JSON object")
        for key in ("timestamp", "input_length", "output_length"):
            if key not in row:
                raise _fail(p, line_no, key, "missing")
        ts = row["timestamp"]
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts) or ts < 0:
            raise _fail(p, line_no, "timestamp", f"must be a finite number of ms >= 0, got {ts!r}")
        if times and ts < times[-1]:
            raise _fail(p, line_no, "timestamp", f"{ts} is earlier than the previous line's {times[-1]}")
        times.append(float(ts))
        isl.append(_positive_int(row["input_length"], p, line_no, "input_length"))
        osl.append(_positive_int(row["output_length"], p, line_no, "output_length"))
    if not times:
        raise ServoptError("trace", str(p), "holds no requests")
    t = np.array(times)
    return Requests(t - t[0], np.array(isl, dtype=np.int64), np.array(osl, dtype=np.int64))


def read_histogram(path: str | Path) -> tuple[tuple[int, int, float], ...]:
    """A lengths file: CSV lines ``input_length,output_length[,weight]`` (a header line is allowed)."""
    p, text = _read_text(path, "lengths")
    rows: list[tuple[int, int, float]] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        parts = [s.strip() for s in raw.split(",")]
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if line_no == 1 and not parts[0].lstrip("-").replace(".", "").isdigit():
            continue  # header
        if len(parts) not in (2, 3):
            raise _fail(p, line_no, "columns", f"expected input_length,output_length[,weight], got {raw!r}")
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise _fail(p, line_no, "value", f"not a number in {raw!r}") from None
        a = _positive_int(values[0], p, line_no, "input_length")
        b = _positive_int(values[1], p, line_no, "output_length")
        w = values[2] if len(values) == 3 else 1.0
        if not (math.isfinite(w) and w > 0):
            raise _fail(p, line_no, "weight", f"must be a finite number > 0, got {parts[2]!r}")
        rows.append((a, b, w))
    if not rows:
        raise ServoptError("lengths", str(p), "holds no rows")
    return tuple(rows)
