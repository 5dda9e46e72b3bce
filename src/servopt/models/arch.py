"""The architecture numbers of one model: everything the op decomposition and memory model read.

Numbers follow the model's Hugging Face ``config.json`` and are parsed the way the peer parses them
(``models/hf_config.py``), so that both price the same shapes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from servopt.models.quant_modes import FmhaQuant, GemmQuant, KvQuant, MoeQuant

# dense: GQA transformer (Llama, Qwen3 dense); moe: GQA + routed experts (Qwen3-MoE, Mixtral,
# GPT-OSS); mla_moe: DeepSeek-style MLA attention + routed/shared experts (DeepSeek-V3/R1, Kimi-K2).
Family = Literal["dense", "moe", "mla_moe"]
FAMILIES: tuple[str, ...] = ("dense", "moe", "mla_moe")
# Where the architecture came from: servopt's own perf_db/models/*.yaml, a config.json copy that
# aiconfigurator-core ships (model_configs/), or a config.json the user pointed at.
Source = Literal["registry", "model_configs", "config_json"]


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
    name: str  # servopt registry name, e.g. QWEN3_32B (the HF id for model_configs-only models)
    hf_id: str | None = None  # e.g. Qwen/Qwen3-32B
    # Other names accepted for this model (legacy aiconfigurator names, other HF ids).
    aliases: tuple[str, ...] = ()
    source: Source = "registry"
    family: Family
    hf_architecture: str | None = None  # e.g. Qwen3ForCausalLM
    num_layers: PositiveInt
    hidden_size: PositiveInt
    num_heads: PositiveInt
    num_kv_heads: PositiveInt
    # config head_dim, else hidden_size // num_heads (the peer's rule; for MLA models this is only a
    # nominal number, the attention geometry is in ``mla``).
    head_dim: PositiveInt
    # The config's intermediate_size: the dense FFN width. MoE models use it only for their
    # first_k_dense_layers (the peer keeps the raw number, so do we).
    inter_size: int = Field(ge=0)
    vocab_size: PositiveInt
    max_context: PositiveInt
    # MoE (0 for dense models)
    num_experts: int = Field(default=0, ge=0)
    topk: int = Field(default=0, ge=0)
    moe_inter_size: int = Field(default=0, ge=0)
    num_shared_experts: int = Field(default=0, ge=0)
    shared_expert_inter_size: int = Field(default=0, ge=0)  # all shared experts together
    # Dense layers before the first MoE layer (DeepSeek: 3); the peer prices them as MoE anyway.
    first_k_dense_layers: int = Field(default=0, ge=0)
    mla: MlaDims | None = None
    # Sliding-window attention: window in tokens and how many layers use it (GPT-OSS alternates
    # sliding and full layers: 12 of 24 use a 128-token window). None/0 = full attention everywhere.
    sliding_window: int | None = Field(default=None, gt=0)
    num_sliding_layers: int = Field(default=0, ge=0)
    # Learned per-head attention sinks (GPT-OSS); a few extra parameters, no extra KV cache.
    attention_sinks: bool = False
    # Multi-token-prediction layers shipped with the checkpoint (DeepSeek-V3: 1).
    num_nextn_predict_layers: int = Field(default=0, ge=0)
    qk_norm: bool = False
    gated_mlp: bool = True
    tie_word_embeddings: bool = False
    quant: QuantDefaults = QuantDefaults()
    extra: dict[str, float | int | str | bool | None] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _coherent(self) -> ModelArch:
        if self.family == "dense":
            if self.num_experts or self.topk:
                raise ValueError("a dense model has num_experts = topk = 0")
            if self.inter_size <= 0:
                raise ValueError("a dense model needs inter_size > 0")
        else:
            if self.num_experts <= 0 or not 0 < self.topk <= self.num_experts:
                raise ValueError("a MoE model needs num_experts > 0 and 0 < topk <= num_experts")
            if self.moe_inter_size <= 0:
                raise ValueError("a MoE model needs moe_inter_size > 0")
        if (self.family == "mla_moe") != (self.mla is not None):
            raise ValueError("mla dims are required for family mla_moe and only for it")
        if self.num_kv_heads > self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if self.first_k_dense_layers >= self.num_layers:
            raise ValueError("first_k_dense_layers must be below num_layers")
        if self.first_k_dense_layers and self.inter_size <= 0:
            raise ValueError("dense layers need inter_size > 0")
        if self.num_sliding_layers > self.num_layers:
            raise ValueError("num_sliding_layers must not exceed num_layers")
        if self.num_sliding_layers and self.sliding_window is None:
            raise ValueError("num_sliding_layers needs a sliding_window")
        if bool(self.num_shared_experts) != bool(self.shared_expert_inter_size):
            raise ValueError("num_shared_experts and shared_expert_inter_size are both set or both 0")
        return self

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def num_moe_layers(self) -> int:
        """Layers that carry an expert block (HF semantics; the peer prices all layers as MoE)."""
        return self.num_layers - self.first_k_dense_layers if self.is_moe else 0

    def _attention_params(self) -> int:
        h = self.hidden_size
        if self.mla is not None:
            m = self.mla
            qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
            return (
                h * m.q_lora_rank  # q_a
                + m.q_lora_rank * self.num_heads * qk_head  # q_b
                + h * (m.kv_lora_rank + m.qk_rope_head_dim)  # kv_a (latent + shared rope key)
                + m.kv_lora_rank * self.num_heads * (m.qk_nope_head_dim + m.v_head_dim)  # kv_b
                + self.num_heads * m.v_head_dim * h  # o
            )
        q_width = self.num_heads * self.head_dim
        kv_width = self.num_kv_heads * self.head_dim
        return h * q_width + 2 * h * kv_width + q_width * h

    def _ffn_params(self, width: int) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    def _param_count(self, experts_per_layer: int, *, input_embedding: bool) -> int:
        embedding_tables = 1 if self.tie_word_embeddings else 2
        if not input_embedding and not self.tie_word_embeddings:
            embedding_tables -= 1
        embeddings = embedding_tables * self.vocab_size * self.hidden_size
        attention = self.num_layers * self._attention_params()
        dense = (self.num_layers - self.num_moe_layers) * self._ffn_params(self.inter_size)
        per_moe_layer = (
            experts_per_layer * self._ffn_params(self.moe_inter_size)
            + self._ffn_params(self.shared_expert_inter_size)
            + self.hidden_size * self.num_experts  # router
        )
        return embeddings + attention + dense + self.num_moe_layers * per_moe_layer

    def param_count(self) -> int:
        """Total weights of the main model (embeddings, attention, FFN/experts; norms and MTP left out)."""
        return self._param_count(self.num_experts, input_embedding=True)

    def active_param_count(self) -> int:
        """Weights one token multiplies: ``topk`` routed experts per MoE layer plus everything shared.

        The input embedding is a table lookup, not a matmul, so it is left out (OpenAI's convention:
        gpt-oss-120b 5.1B active of 116.8B)."""
        return self._param_count(self.topk, input_embedding=False)
