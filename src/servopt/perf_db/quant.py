"""Quantization modes of the attention, KV-cache, MoE and communication tables.

Each mode maps to the name its measured rows carry, the bytes per element the rooflines charge and
the tensor-core pipeline that bounds its math (``None`` for memory-only modes). GEMM modes live in
``perf_db.gemm``. Aliases: the experiment YAML's ``float16`` means bf16 everywhere.
"""

from __future__ import annotations

from typing import NamedTuple

from servopt.errors import UnknownNameError
from servopt.hardware import ComputeDtype


class QuantMode(NamedTuple):
    name: str  # the name the perf tables use
    bytes_per_elem: float
    compute: ComputeDtype | None


def _modes(*modes: QuantMode) -> dict[str, QuantMode]:
    return {m.name: m for m in modes}


FMHA_QUANTS = _modes(
    QuantMode("bfloat16", 2.0, "bf16"),
    QuantMode("fp8", 1.0, "fp8"),
    QuantMode("fp8_block", 1.0, "fp8"),
)
KV_QUANTS = _modes(
    QuantMode("bfloat16", 2.0, None),
    QuantMode("int8", 1.0, None),
    QuantMode("fp8", 1.0, None),
)
MOE_QUANTS = _modes(
    QuantMode("bfloat16", 2.0, "bf16"),
    QuantMode("fp8", 1.0, "fp8"),
    QuantMode("int4_wo", 0.5, "bf16"),
    QuantMode("fp8_block", 1.0, "fp8"),
    QuantMode("w4afp8", 0.5, "fp8"),
    # nvfp4: 4-bit values plus one fp8 scale per 16 = 9/16 byte per element.
    QuantMode("nvfp4", 9 / 16, "fp4"),
    QuantMode("nvfp4_wo", 9 / 16, "bf16"),
    QuantMode("w4a16_mxfp4", 0.5, "bf16"),
    QuantMode("w4a8_mxfp4_mxfp8", 0.5, "fp8"),
    QuantMode("w4a8_mxfp4_mxfp8_trtllm", 0.5, "fp8"),
    QuantMode("w4a16_mxfp4_cutlass", 0.5, "bf16"),
    QuantMode("w4a16_nvfp4", 9 / 16, "bf16"),
)
# MLA BMMs are GEMM-quantized; only these two have measured rows.
BMM_QUANTS = _modes(
    QuantMode("bfloat16", 2.0, "bf16"),
    QuantMode("fp8", 1.0, "fp8"),
    QuantMode("fp8_block", 1.0, "fp8"),
)
COMM_QUANTS = _modes(
    QuantMode("half", 2.0, None),
    QuantMode("int8", 1.0, None),
    QuantMode("fp8", 1.0, None),
)
ALIASES = {"float16": "bfloat16", "bf16": "bfloat16", "fp16": "bfloat16"}
COMM_ALIASES = {"bfloat16": "half", "float16": "half", "bf16": "half", "fp16": "half"}


def resolve(
    field: str, value: str, table: dict[str, QuantMode], aliases: dict[str, str] = ALIASES
) -> QuantMode:
    """The mode for a user-facing name, or UnknownNameError listing the modes."""
    name = aliases.get(str(value), str(value))
    try:
        return table[name]
    except KeyError:
        raise UnknownNameError(field, value, "unknown quantization mode", sorted(table)) from None
