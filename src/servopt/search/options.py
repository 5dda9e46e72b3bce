"""What the search consumes: worker-option tables (struct of arrays), replica limits and the SLA.

One row of a :class:`WorkerOptions` table is one evaluated worker (a parallel layout x quant x
batch size ...), already memory-filtered by the caller. ``row`` points back into the caller's own
table so results can name the layout. Latencies are per request in ms; rates in requests/s of one
worker. Agg rows use every column; prefill rows leave ``tpot_ms`` at 0; decode rows leave
``ttft_ms`` at 0.

``pair_key`` restricts which prefill and decode options may share a replica: they may iff their
keys are equal or either key is negative (a wildcard). All zeros (the default) pairs everything;
SGLang's "prefill and decode TP must match" is ``pair_key = tp`` (and -1 for large-EP layouts,
which the peer exempts).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from servopt.errors import ServoptError

# The peer's per-replica worker caps (x <= 32 prefill, y <= 32 decode workers by default).
DEFAULT_MAX_WORKERS = 32


@dataclass(frozen=True, eq=False)
class WorkerOptions:
    """Evaluated worker options of one role, as parallel int64/float64 arrays of length n."""

    gpus: np.ndarray  # int64: GPUs of one worker
    rate_per_s: np.ndarray  # float64: requests/s one worker completes
    ttft_ms: np.ndarray  # float64: time to first token (agg, prefill)
    tpot_ms: np.ndarray  # float64: time per output token (agg, decode)
    concurrency: np.ndarray  # float64: requests in flight on one worker
    row: np.ndarray  # int64: index into the caller's table
    pair_key: np.ndarray  # int64: prefill/decode pairing key (see module docstring)

    @classmethod
    def from_arrays(
        cls,
        *,
        gpus: Sequence[int] | np.ndarray,
        rate_per_s: Sequence[float] | np.ndarray,
        ttft_ms: Sequence[float] | np.ndarray | None = None,
        tpot_ms: Sequence[float] | np.ndarray | None = None,
        concurrency: Sequence[float] | np.ndarray | None = None,
        row: Sequence[int] | np.ndarray | None = None,
        pair_key: Sequence[int] | np.ndarray | None = None,
        name: str = "options",
    ) -> WorkerOptions:
        """Validated table; missing latency/concurrency/pair_key columns default to 0, ``row`` to 0..n-1."""
        g = np.asarray(gpus)
        n = g.shape[0] if g.ndim == 1 else -1
        if g.ndim != 1:
            raise ServoptError(f"{name}.gpus", g.shape, "must be a 1-D array")

        def col(values, field: str, dtype) -> np.ndarray:
            if values is None:
                return np.zeros(n, dtype=dtype)
            arr = np.asarray(values)
            if arr.shape != (n,):
                raise ServoptError(f"{name}.{field}", arr.shape, f"must have the shape of gpus ({n},)")
            return np.ascontiguousarray(arr, dtype=dtype)

        if not np.issubdtype(g.dtype, np.integer) and not (n == 0 or np.all(np.mod(g, 1) == 0)):
            raise ServoptError(f"{name}.gpus", g.dtype, "must hold whole GPU counts")
        table = cls(
            gpus=np.ascontiguousarray(g, dtype=np.int64),
            rate_per_s=col(rate_per_s, "rate_per_s", np.float64),
            ttft_ms=col(ttft_ms, "ttft_ms", np.float64),
            tpot_ms=col(tpot_ms, "tpot_ms", np.float64),
            concurrency=col(concurrency, "concurrency", np.float64),
            row=col(np.arange(n) if row is None else row, "row", np.int64),
            pair_key=col(pair_key, "pair_key", np.int64),
        )
        table.validate(name)
        return table

    def __len__(self) -> int:
        return int(self.gpus.shape[0])

    def validate(self, name: str) -> None:
        """Raise ServoptError naming the first bad entry (non-positive GPUs/rates, NaN latencies)."""
        checks = (
            ("gpus", self.gpus, lambda a: a >= 1, "must be >= 1"),
            ("rate_per_s", self.rate_per_s, lambda a: np.isfinite(a) & (a > 0), "must be finite and > 0"),
            ("ttft_ms", self.ttft_ms, lambda a: np.isfinite(a) & (a >= 0), "must be finite and >= 0"),
            ("tpot_ms", self.tpot_ms, lambda a: np.isfinite(a) & (a >= 0), "must be finite and >= 0"),
            ("concurrency", self.concurrency, lambda a: np.isfinite(a) & (a >= 0), "must be finite and >= 0"),
        )
        for field, arr, ok, message in checks:
            bad = np.flatnonzero(~ok(arr))
            if bad.size:
                i = int(bad[0])
                raise ServoptError(f"{name}.{field}[{i}]", arr[i].item(), message)

    def take(self, index: np.ndarray) -> WorkerOptions:
        """The rows at ``index`` (an int array or a boolean mask), ``row`` kept."""
        return WorkerOptions(
            gpus=self.gpus[index],
            rate_per_s=self.rate_per_s[index],
            ttft_ms=self.ttft_ms[index],
            tpot_ms=self.tpot_ms[index],
            concurrency=self.concurrency[index],
            row=self.row[index],
            pair_key=self.pair_key[index],
        )


@dataclass(frozen=True)
class ReplicaSpec:
    """The seed's ``replica_config``: which xPyD replicas are allowed.

    ``num_gpu_per_replica`` lists the allowed replica sizes (None or empty: any size), capped by
    ``max_gpu_per_replica`` (0: no cap). ``max_prefill_gpus``/``max_decode_gpus`` optionally cap
    each pool's GPUs inside one replica (0: no cap).
    """

    num_gpu_per_replica: tuple[int, ...] | None = None
    max_gpu_per_replica: int = 0
    max_prefill_worker: int = DEFAULT_MAX_WORKERS
    max_decode_worker: int = DEFAULT_MAX_WORKERS
    max_prefill_gpus: int = 0
    max_decode_gpus: int = 0

    def __post_init__(self) -> None:
        sizes = self.num_gpu_per_replica
        if sizes is not None:
            sizes = tuple(sizes)
            for s in sizes:
                if isinstance(s, bool) or not isinstance(s, int | np.integer) or s < 1:
                    raise ServoptError("num_gpu_per_replica", s, "every size must be a positive integer")
            object.__setattr__(self, "num_gpu_per_replica", tuple(sorted({int(s) for s in sizes})))
        for field, low in (
            ("max_gpu_per_replica", 0),
            ("max_prefill_worker", 1),
            ("max_decode_worker", 1),
            ("max_prefill_gpus", 0),
            ("max_decode_gpus", 0),
        ):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
                raise ServoptError(field, v, f"must be an integer >= {low}")

    def size_limit(self, total_gpus: int) -> int:
        """The largest replica size worth considering: the caps and the cluster budget."""
        limit = total_gpus
        if self.max_gpu_per_replica:
            limit = min(limit, self.max_gpu_per_replica)
        if self.num_gpu_per_replica:
            limit = min(limit, self.num_gpu_per_replica[-1])
        return limit

    def allowed_sizes_mask(self, limit: int) -> np.ndarray:
        """Boolean array over sizes 0..limit: True where a replica of that many GPUs is allowed."""
        mask = np.zeros(limit + 1, dtype=np.bool_)
        if self.num_gpu_per_replica:
            sizes = [s for s in self.num_gpu_per_replica if s <= limit]
            mask[sizes] = True
        else:
            mask[1:] = True
        return mask


@dataclass(frozen=True)
class Sla:
    """Latency targets in ms (inclusive: TTFT <= ttft_ms and TPOT <= tpot_ms); inf = no target."""

    ttft_ms: float = math.inf
    tpot_ms: float = math.inf

    def __post_init__(self) -> None:
        for field in ("ttft_ms", "tpot_ms"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or math.isnan(v) or v <= 0:
                raise ServoptError(field, v, "must be a positive number of ms (inf for no target)")
