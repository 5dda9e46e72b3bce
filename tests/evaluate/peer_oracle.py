"""The peer (aiconfigurator-core 0.12.0) run as an oracle for the latency model's tests.

Only tests import this module; it needs the peer installed (callers guard with
``pytest.importorskip``). It builds the peer's model for the same architecture, layout and quant
modes, and runs its static / aggregated sessions on the peer's own database of the same data.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from functools import cache
from pathlib import Path

from servopt.models.arch import ModelArch
from servopt.models.ops import QuantModes
from servopt.search.layouts import Layout

# servopt quant names -> the peer's enum member names.
_PEER_QUANT = {"float16": "bfloat16"}

# Peer versions of the h200_sxm data servopt compares against (the peer's "current" slot).
PEER_VERSIONS = {"trtllm": "1.3.0rc20", "vllm": "0.24.0", "sglang": "0.5.14"}


def _quiet() -> None:
    for name in ("aiconfigurator_core", "aiconfigurator"):
        logging.getLogger(name).setLevel(logging.ERROR)


@cache
def peer_database(system: str, backend: str, version: str | None = None):
    _quiet()
    from aiconfigurator_core.sdk.perf_database import get_database

    return get_database(system, backend, version or PEER_VERSIONS[backend])


@cache
def _model_path(hf_id: str) -> str:
    """A model path the peer resolves offline: its bundled HF id, else a folder with the config."""
    from aiconfigurator_core.sdk.common import DefaultHFModels

    if hf_id in DefaultHFModels:
        return hf_id
    import aiconfigurator_core

    bundled = (
        Path(aiconfigurator_core.__file__).parent
        / "model_configs"
        / f"{hf_id.replace('/', '--')}_config.json"
    )
    folder = Path(tempfile.mkdtemp(prefix="servopt_peer_model_"))
    shutil.copy(bundled, folder / "config.json")
    return str(folder)


def _peer_quant(common, enum_name: str, value: str):
    return getattr(common, enum_name)[_PEER_QUANT.get(value, value)]


def peer_model(arch: ModelArch, layout: Layout, quant: QuantModes, backend: str, nextn: int = 0):
    _quiet()
    from aiconfigurator_core.sdk import common, config
    from aiconfigurator_core.sdk.models import get_model

    mc = config.ModelConfig(
        tp_size=layout.tp,
        pp_size=layout.pp,
        attention_dp_size=layout.dp,
        moe_tp_size=layout.moe_tp if arch.is_moe else None,
        moe_ep_size=layout.moe_ep if arch.is_moe else None,
        gemm_quant_mode=_peer_quant(common, "GEMMQuantMode", quant.gemm),
        moe_quant_mode=_peer_quant(common, "MoEQuantMode", quant.moe),
        kvcache_quant_mode=_peer_quant(common, "KVCacheQuantMode", quant.kvcache),
        fmha_quant_mode=_peer_quant(common, "FMHAQuantMode", quant.fmha),
        nextn=nextn,
    )
    return get_model(_model_path(arch.hf_id), mc, backend)


def peer_op_specs(ops) -> list[dict]:
    """The peer's op list in its wire form: ``[{"Gemm": {...}}, ...]``."""
    return [json.loads(op._spec_json()) for op in ops]


def peer_weight_bytes(model) -> float:
    return float(sum(op.get_weights() for op in model.context_ops))


def peer_backend(backend: str):
    from aiconfigurator_core.sdk.backends.factory import get_backend

    return get_backend(backend)


def peer_static(
    model,
    backend: str,
    batch: int,
    isl: int,
    osl: int,
    mode: str = "static",
    prefix: int = 0,
    system: str = "h200_sxm",
    correction: float = 1.0,
):
    """The peer's run_static summary (per-op dicts, result row, memory)."""
    from aiconfigurator_core.sdk import config

    rc = config.RuntimeConfig(batch_size=batch, isl=isl, osl=osl, prefix=prefix)
    return peer_backend(backend).run_static(
        model, peer_database(system, backend), rc, mode, latency_correction_scale=correction
    )


def peer_agg(
    model,
    backend: str,
    batch: int,
    ctx_tokens: int,
    isl: int,
    osl: int,
    system: str = "h200_sxm",
    decode_tokens_per_iteration: float | None = None,
):
    from aiconfigurator_core.sdk import config

    rc = config.RuntimeConfig(batch_size=batch, isl=isl, osl=osl)
    kwargs = {"ctx_tokens": ctx_tokens}
    if decode_tokens_per_iteration is not None:
        kwargs["decode_tokens_per_iteration"] = decode_tokens_per_iteration
    return peer_backend(backend).run_agg(model, peer_database(system, backend), rc, **kwargs)


def summary_row(summary) -> dict:
    """The peer's result row as a plain dict (static: ColumnsStatic; agg: ColumnsAgg)."""
    df = summary.get_summary_df()
    return {k: df[k].iloc[0] for k in df.columns}
