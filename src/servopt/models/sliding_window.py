"""Sliding-window attention (GPT-OSS): split a phase's attention op into windowed and full layers.

GPT-OSS alternates banded (128-token window) and global attention layers. Only the attention
kernel differs between them (the window caps the keys each query sees), so the QKV and output
projections keep their all-layer scale and the one attention op becomes two: the windowed one over
the sliding layers and the full one over the rest. Both keep the top-level attention name, so the
aggregated (mixed) step prices them together in its attention slot, as the peer does.

Attention sinks (one learned logit per head) add no measurable work and no KV cache; the peer
does not price them either.
"""

from __future__ import annotations

from dataclasses import replace

from servopt.models.arch import ModelArch
from servopt.models.ops import Family, OpSpec

_ATTENTION_FAMILIES = (Family.CONTEXT_ATTENTION, Family.GENERATION_ATTENTION)

# Architectures whose sliding layers are priced with the window (the peer windows only GPT-OSS).
# Other configs may carry a ``sliding_window`` the serving engines ignore or the attention tables
# do not cover (measured windows: 128, 1024, 8192); they keep full attention, as in the peer.
SLIDING_WINDOW_ARCHITECTURES = frozenset({"GptOssForCausalLM"})


def prices_sliding_window(arch: ModelArch) -> bool:
    """Whether the latency and KV models treat ``arch``'s sliding layers as windowed."""
    return (
        arch.hf_architecture in SLIDING_WINDOW_ARCHITECTURES
        and bool(arch.num_sliding_layers)
        and bool(arch.sliding_window)
    )


def split_sliding_attention(ops: list[OpSpec], arch: ModelArch, mtp: float) -> list[OpSpec]:
    """``ops`` with each attention op split into (windowed, full) parts by the arch's layer counts.

    ``mtp`` is the phase's speculative-decoding layer factor (the scales already include it).
    Models without (priced) sliding layers get ``ops`` unchanged.
    """
    if not prices_sliding_window(arch):
        return ops
    sliding = arch.num_sliding_layers * mtp
    full = (arch.num_layers - arch.num_sliding_layers) * mtp
    out: list[OpSpec] = []
    for op in ops:
        if op.family not in _ATTENTION_FAMILIES:
            out.append(op)
            continue
        out.append(replace(op, scale=sliding, window=arch.sliding_window))
        if full > 0:
            out.append(replace(op, scale=full, window=0))
    return out
