"""The quantization modes servopt can price, per model component, as the seed's YAML spells them.

Kept apart from ``arch`` (pydantic) so that the CLI's ``--help`` can list them without importing
anything heavy.
"""

from __future__ import annotations

from typing import Literal, get_args

# "float16" is the seed's name for 16-bit (bf16) weights and activations.
GemmQuant = Literal["float16", "fp8", "fp8_block", "fp8_static", "int8_wo", "int4_wo", "nvfp4", "w4afp8"]
# w4a8_mxfp4_mxfp8: MXFP4 expert weights with MXFP8 activations, what TRT-LLM's CUTLASS MoE runs for
# MXFP4 checkpoints (gpt-oss) on Blackwell; w4a16_mxfp4 (bf16 activations) is the Hopper path.
MoeQuant = Literal[
    "float16", "fp8", "fp8_block", "w4afp8", "int4_wo", "int8_wo", "nvfp4", "w4a16_mxfp4", "w4a8_mxfp4_mxfp8"
]
KvQuant = Literal["float16", "fp8", "int8"]
FmhaQuant = Literal["float16", "fp8"]

GEMM_QUANTS: tuple[str, ...] = get_args(GemmQuant)
MOE_QUANTS: tuple[str, ...] = get_args(MoeQuant)
KV_QUANTS: tuple[str, ...] = get_args(KvQuant)
FMHA_QUANTS: tuple[str, ...] = get_args(FmhaQuant)
