"""The batch-size and context-token schedules swept per worker role (the peer's, reference §5.2)."""

from __future__ import annotations

import math

# Agg batch sizes: dense at small batches where latency changes fastest, sparser above.
AGG_BATCH_SIZES: tuple[int, ...] = (
    *range(1, 16),
    *range(16, 32, 4),
    *range(32, 64, 8),
    *range(64, 256, 16),
    *range(256, 512, 32),
    *range(512, 1024, 256),
    1024,
)

# Decode-worker batch sizes.
DECODE_BATCH_SIZES: tuple[int, ...] = (
    *range(1, 16),
    *range(16, 32, 2),
    *range(32, 128, 4),
    *range(128, 512, 8),
    512,
)

DEFAULT_MAX_BATCH_SIZE = 512
DEFAULT_DECODE_MAX_BATCH_SIZE = 512
DEFAULT_PREFILL_MAX_NUM_TOKENS = 16384

# Context-token (chunk) sweep for agg: a fine stride up to NORMAL_CTX_TOKENS, coarser above, up to
# max(NORMAL_CTX_TOKENS, MAX_ISL_MULTIPLE * isl); exact multiples of isl are always included.
DEFAULT_CTX_STRIDE = 512
NORMAL_CTX_TOKENS = 8192
MAX_ISL_MULTIPLE = 2
SMALL_SEARCH_STEPS = 16
LARGE_SEARCH_STEPS = 8
MIN_LARGE_STRIDE = 1024


def agg_batch_sizes(max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> list[int]:
    return [b for b in AGG_BATCH_SIZES if b <= max_batch_size]


def decode_batch_sizes(max_batch_size: int = DEFAULT_DECODE_MAX_BATCH_SIZE) -> list[int]:
    """Decode schedule up to ``max_batch_size`` (a cap above 512 is added as one more point)."""
    max_batch_size = max(1, max_batch_size)
    if max_batch_size > DECODE_BATCH_SIZES[-1]:
        return [*DECODE_BATCH_SIZES, max_batch_size]
    return [b for b in DECODE_BATCH_SIZES if b <= max_batch_size]


def prefill_batch_sizes(
    isl: int, max_num_tokens: int = DEFAULT_PREFILL_MAX_NUM_TOKENS, max_batch_size: int | None = None
) -> list[int]:
    """1 .. max_num_tokens // isl prefill requests per batch (at least one), optionally capped."""
    top = max(max_num_tokens, isl) // isl
    if max_batch_size is not None:
        top = min(top, max_batch_size)
    return list(range(1, max(top, 1) + 1))


def ctx_tokens_list(
    isl: int, ctx_stride: int = DEFAULT_CTX_STRIDE, chunked_prefill: bool = False
) -> list[int]:
    """Context-token budgets per agg step. Without chunked prefill they snap to multiples of isl."""
    max_tokens = max(NORMAL_CTX_TOKENS, isl * MAX_ISL_MULTIPLE)
    stride = max(ctx_stride, NORMAL_CTX_TOKENS // SMALL_SEARCH_STEPS)
    large = max(MIN_LARGE_STRIDE, stride, max_tokens // LARGE_SEARCH_STEPS)
    if not chunked_prefill:
        stride = max(isl, stride)
        large = int(math.ceil(large / isl) * isl)
    values: list[int] = []
    tokens = 0
    while True:
        tokens += stride if tokens < NORMAL_CTX_TOKENS else large
        if tokens > max_tokens:
            break
        values.append(tokens)
    for i in range(1, MAX_ISL_MULTIPLE + 1):
        if isl * i not in values:
            values.append(isl * i)
    return sorted(values)


def agg_points(
    isl: int,
    osl: int,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    ctx_stride: int = DEFAULT_CTX_STRIDE,
    chunked_prefill: bool = False,
    dedupe: bool = True,
) -> list[tuple[int, int]]:
    """(batch, ctx_tokens) points of the agg sweep.

    Guards: the prefilling requests fit in the batch and, for b > 1, at least one request decodes.
    With ``dedupe`` (no speculative decoding) points whose decode share of a mixed step repeats an
    earlier one are skipped, as the peer does: once prefill dominates (balance > 1) the step
    carries ``b // balance`` decode requests whatever b is.
    """
    points = []
    seen: list[float] = []
    ctx_list = ctx_tokens_list(isl, ctx_stride, chunked_prefill)
    for b in agg_batch_sizes(max_batch_size):
        for ctx in ctx_list:
            prefilling = math.ceil(ctx / isl)
            if b - prefilling < 0 or (b > 1 and b - prefilling < 1):
                break
            if dedupe:
                balance = isl * b / ctx / osl
                if balance > 1:
                    gen = b // balance
                    if gen > 1 and gen in seen:
                        continue
                    seen.append(gen)
            points.append((b, ctx))
    return points
