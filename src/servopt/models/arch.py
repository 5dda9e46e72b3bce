"""The architecture numbers of one model: everything the op decomposition and memory model read."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

# dense: GQA transformer (Llama, Qwen3 dense); moe: GQA + routed experts (Qwen3-MoE, Mixtral,
# GPT-OSS); mla_moe: DeepSeek-style MLA attention + routed/shared experts (DeepSeek-V3/R1, Kimi-K2).
Family = Literal["dense", "moe", "mla_moe"]
GemmQuant = Literal["float16", "fp8", "fp8_block", "fp8_static", "int8_wo", "int4_wo", "nvfp4", "w4afp8"]
MoeQuant = Literal["float16", "fp8", "fp8_block", "w4afp8", "int4_wo", "int8_wo", "nvfp4", "w4a16_mxfp4"]
KvQuant = Literal["float16", "fp8", "int8"]
FmhaQuant = Literal["float16", "fp8"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuantDefaults(_Frozen):
    """The checkpoint's own quantization: the default quant modes when the user sets none."""

    gemm: GemmQuant = "float16"
    moe: MoeQuant = "float16"
    kvcache: KvQuant = "float16"
    fmha: FmhaQuant = "float16"


class MlaDims(_Frozen):
    """Multi-head latent attention dimensions (DeepSeek-V3 style)."""

    q_lora_rank: PositiveInt
    kv_lora_rank: PositiveInt
    qk_nope_head_dim: PositiveInt
    qk_rope_head_dim: PositiveInt
    v_head_dim: PositiveInt


class ModelArch(_Frozen):
    name: str  # servopt registry name, e.g. QWEN3_32B
    hf_id: str | None = None  # e.g. Qwen/Qwen3-32B
    family: Family
    hf_architecture: str | None = None  # e.g. Qwen3ForCausalLM
    num_layers: PositiveInt
    hidden_size: PositiveInt
    num_heads: PositiveInt
    num_kv_heads: PositiveInt
    head_dim: PositiveInt
    inter_size: int = Field(ge=0)  # dense FFN intermediate size (0 when every layer is MoE)
    vocab_size: PositiveInt
    max_context: PositiveInt
    # MoE (0 for dense models)
    num_experts: int = Field(default=0, ge=0)
    topk: int = Field(default=0, ge=0)
    moe_inter_size: int = Field(default=0, ge=0)
    num_shared_experts: int = Field(default=0, ge=0)
    shared_expert_inter_size: int = Field(default=0, ge=0)
    # Dense layers before the first MoE layer (DeepSeek: 3); the peer prices them as MoE anyway.
    first_k_dense_layers: int = Field(default=0, ge=0)
    mla: MlaDims | None = None
    sliding_window: int | None = None
    # Multi-token-prediction layers shipped with the checkpoint (DeepSeek-V3: 1).
    num_nextn_predict_layers: int = Field(default=0, ge=0)
    qk_norm: bool = False
    gated_mlp: bool = True
    quant: QuantDefaults = QuantDefaults()
    extra: dict[str, float | int | str | bool | None] = Field(default_factory=dict)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0
