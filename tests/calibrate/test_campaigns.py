"""The engine flags InferenceX's launch scripts state, mapped onto setups and into the replay."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from servopt.calibrate.campaigns import stated_disagg, stated_engine
from servopt.calibrate.public_csv import read_measurements
from servopt.calibrate.records import Disagg, WorkerGroup
from servopt.calibrate.replay import worker_plans
from servopt.calibrate.setups import Setup, to_setup
from servopt.simulate.policy import engine_policy

SAMPLE = Path(__file__).parent / "data" / "public_sample.csv"


@pytest.fixture(scope="module")
def sample():
    return {r.row: r for r in read_measurements(SAMPLE)}


@pytest.mark.parametrize(("conc", "interval"), [(1, 10), (15, 10), (16, 30), (64, 30)])
def test_sglang_recv_interval_follows_the_clients(sample, conc, interval):
    rec = dataclasses.replace(sample[5], concurrency=conc)  # InferenceX SGLang FP4 tp8 on B200
    stated = stated_engine(rec, "DeepSeek-R1-0528")
    assert stated.recv_interval == interval
    assert (stated.kv_cache, stated.max_batch_size, stated.max_num_tokens) == ("fp8", 256, 16384)
    assert "dsr1_fp4_b200.sh" in stated.script


def test_sglang_fp8_tp8_and_tp4_differ(sample):
    fp8 = dataclasses.replace(sample[5], weights="fp8")
    tp8 = stated_engine(fp8, "DeepSeek-R1-0528")
    tp4 = stated_engine(dataclasses.replace(fp8, tp=4, isl=8192), "DeepSeek-R1-0528")
    assert (tp8.recv_interval, tp8.max_batch_size, tp8.max_num_tokens) == (30, 128, 32768)
    assert (tp4.recv_interval, tp4.max_batch_size, tp4.max_num_tokens) == (10, 32, 8192)


def test_trtllm_token_budget_is_the_scripts_formula(sample):
    rec = sample[6]  # TRT-LLM FP4, 128 clients, 1k/1k
    assert stated_engine(rec, "DeepSeek-R1-0528").max_num_tokens == 8192
    long = dataclasses.replace(rec, isl=8192, concurrency=64)
    # (64 + 8192 + 64 + 63) // 64 * 64
    assert stated_engine(long, "DeepSeek-R1-0528").max_num_tokens == 8320
    assert stated_engine(long, "DeepSeek-R1-0528").recv_interval is None


def test_stated_kv_dtype_enters_the_setup(sample):
    rec = dataclasses.replace(sample[5], weights="fp8", spec="none")
    s = to_setup(rec)
    assert isinstance(s, Setup) and s.quant.kvcache == "fp8" and s.stated is not None
    assert any("dsr1_fp8_b200.sh" in a for a in s.assumptions)


def test_other_sources_keep_engine_defaults(sample):
    s = to_setup(sample[9])  # dstack vLLM
    assert isinstance(s, Setup) and s.stated is None
    assert stated_engine(dataclasses.replace(sample[5], model="Qwen3-8B"), "Qwen3-8B") is None


def test_the_replay_runs_the_stated_policy(sample):
    from servopt.calibrate.replay import Replay

    replay = Replay(to_setup(dataclasses.replace(sample[5], concurrency=16, spec="none")))
    policy = replay.deployment.kinds[0].policy
    assert (policy.recv_interval, policy.max_batch_size, policy.max_num_tokens) == (30, 256, 16384)


@pytest.mark.parametrize("adp", [True, False])
def test_trtllm_balances_attention_dp_ranks_only_with_attention_dp(sample, adp):
    # DP_ATTENTION=true adds attention_dp_config {enable_balance: true, timeout_iters: 60}.
    rec = dataclasses.replace(sample[6], attention_dp=adp, tp=8, ep=8, dp=8 if adp else None)
    stated = stated_engine(rec, "DeepSeek-R1-0528")
    assert stated.adp_balance_timeout_iters == (60 if adp else None)
    if adp:
        from servopt.calibrate.replay import Replay

        kind = Replay(to_setup(dataclasses.replace(rec, spec="none"))).deployment.kinds[0]
        assert kind.policy.adp_balance_timeout_iters == 60
        assert kind.count == 8 and kind.ranks_per_worker == 8


@pytest.mark.parametrize(
    ("weights", "conc", "isl", "osl", "tp", "wait", "fraction"),
    [
        ("fp8", 64, 1024, 1024, 8, (40, 0.8), 0.8),  # DELAY_BATCHING: 1k/1k, 64 <= CONC < 256
        ("fp8", 128, 1024, 1024, 8, (40, 0.8), 0.8),
        ("fp8", 32, 1024, 1024, 8, (None, None), 0.8),
        ("fp8", 256, 1024, 1024, 8, (None, None), 0.7),  # no delay at 256; fraction 0.7
        ("fp8", 256, 1024, 8192, 8, (None, None), 0.7),
        ("fp8", 64, 1024, 8192, 8, (None, None), 0.8),
        ("fp8", 16, 8192, 1024, 4, (None, None), 0.75),  # 8k/1k at TP 4
        ("fp8", 16, 8192, 1024, 8, (None, None), 0.8),
        ("fp4", 64, 1024, 1024, 8, (None, None), 0.8),  # dsr1_fp4_b200_trt.sh: neither
        ("fp4", 256, 1024, 8192, 4, (None, None), 0.8),
    ],
)
def test_trtllm_batch_waiting_and_kv_fraction_follow_the_script(
    sample, weights, conc, isl, osl, tp, wait, fraction
):
    rec = dataclasses.replace(sample[6], weights=weights, concurrency=conc, isl=isl, osl=osl, tp=tp)
    stated = stated_engine(rec, "DeepSeek-R1-0528")
    assert (stated.batch_wait_timeout_iters, stated.batch_wait_max_tokens_ratio) == wait
    assert stated.kv_fraction == fraction


def test_the_replay_sizes_trtllm_kv_by_the_stated_fraction(sample):
    from servopt.calibrate.replay import Replay, database, model_setup
    from servopt.simulate.build import kv_capacity_tokens

    setup = to_setup(dataclasses.replace(sample[6], weights="fp8", concurrency=64, spec="none"))
    kind = Replay(setup).deployment.kinds[0]
    assert (kind.policy.batch_wait_timeout_iters, kind.policy.batch_wait_max_tokens_ratio) == (40, 0.8)
    assert setup.stated.kv_fraction == 0.8
    model = model_setup(setup, database(setup))
    default = kv_capacity_tokens(model, setup.layout, "agg", kind.policy)  # TRT-LLM's 0.9
    assert kind.kv_tokens == pytest.approx(default * 0.8 / 0.9, rel=1e-3)


def _b200_trt_disagg(sample, **changes):
    # The sample's InferenceX xPyD row as the Dynamo + TensorRT-LLM FP4 8k/1k run of 7 DEP4 prefill
    # and 2 DEP8 decode workers at 2222 clients (shipped row 886): recipe ctx7_gen2_dep8_batch128.
    fields = dict(
        framework="Dynamo + TensorRT-LLM",
        backend="trtllm",
        backend_version=None,
        spec="none",
        spec_nextn=None,
        isl=8192,
        osl=1024,
        concurrency=2222,
        num_gpus=44,
        disagg=Disagg(WorkerGroup(7, 4, 4, True, 28), WorkerGroup(2, 8, 8, True, 16)),
    )
    return dataclasses.replace(sample[7], **{**fields, **changes})


def test_disagg_decode_batch_cap_of_the_matching_entry(sample):
    stated = stated_disagg(_b200_trt_disagg(sample), "DeepSeek-R1-0528")
    assert stated.max_batch_size == 128 and "nvidia-master.yaml" in stated.script
    assert stated.max_num_tokens is None and stated.kv_cache is None  # not in the recipe's name
    # Another client count or another layout than the entry's: engine defaults.
    assert stated_disagg(_b200_trt_disagg(sample, concurrency=2000), "DeepSeek-R1-0528") is None
    assert stated_disagg(_b200_trt_disagg(sample, backend="sglang"), "DeepSeek-R1-0528") is None
    # One layout at two client counts: the TEP8 decode's batch 1 at 6 clients, 32 at 90.
    tep8 = Disagg(WorkerGroup(1, 4, 4, True, 4), WorkerGroup(5, 8, 8, False, 40))
    low = _b200_trt_disagg(sample, isl=1024, disagg=tep8, num_gpus=44, concurrency=6)
    assert stated_disagg(low, "DeepSeek-R1-0528").max_batch_size == 1
    assert stated_disagg(dataclasses.replace(low, concurrency=90), "DeepSeek-R1-0528").max_batch_size == 32


def test_disagg_cap_applies_to_the_decode_workers_only(sample):
    s = to_setup(_b200_trt_disagg(sample))
    assert isinstance(s, Setup) and s.stated.max_batch_size == 128
    assert any("decode max batch 128" in a for a in s.assumptions)
    plans = worker_plans(s, engine_policy("trtllm", 192e9), s.stated.policy_overrides())
    assert [(p.role, p.policy.max_batch_size) for p in plans] == [("prefill", 2048), ("decode", 128)]


def _perf_overview_row(sample, doc: str, model: str, **changes):
    """A TRT-LLM perf-overview max-throughput row (sample row 2 is one) from another doc version."""
    base = dict(source=f"github:NVIDIA/TensorRT-LLM {doc}", model=model, tp=1, ep=None, dp=None,
                attention_dp=False, num_gpus=1, system="h100_sxm", gpu="H100 SXM")  # fmt: skip
    return dataclasses.replace(sample[2], **{**base, **changes})


def test_v017_fp8_engine_build_sets_an_fp8_kv_cache(sample):
    # trtllm-bench build --quantization FP8: "the KV cache will automatically be set to FP8 as well".
    rec = _perf_overview_row(sample, "docs/source/performance/perf-overview.md@258c7540", "Llama-3.1-8B",
                             backend_version="v0.17", isl=128, osl=4096)  # fmt: skip
    s = to_setup(rec)
    assert isinstance(s, Setup) and s.quant.kvcache == "fp8"
    assert (s.stated.kv_cache, s.stated.kv_fraction, s.stated.max_batch_size) == ("fp8", None, None)
    assert any("perf-overview.md @258c7540" in a and "kv=fp8" in a for a in s.assumptions)
    # The same run in BF16 weights builds no FP8 KV.
    assert stated_engine(dataclasses.replace(rec, weights="bf16"), "Llama-3.1-8B") is None


def test_pytorch_era_modelopt_fp8_checkpoint_keeps_its_fp8_kv(sample):
    rec = _perf_overview_row(sample, "docs/source/performance/perf-overview.md@ab4143e1",
                             "Llama-3.3-70B-Instruct", tp=2, num_gpus=2, system="h200_sxm")  # fmt: skip
    rec = dataclasses.replace(rec, source=rec.source.replace("NVIDIA", "dominicshanshan"))
    s = to_setup(rec)
    assert isinstance(s, Setup) and s.quant.kvcache == "fp8"
    assert any("@ab4143e1" in a and "ModelOpt FP8 checkpoint" in a for a in s.assumptions)


def test_deepseek_r1_takes_the_docs_llm_options(sample):
    s = to_setup(sample[2])  # developer guide @585c7565: DeepSeek R1 FP8 on 8 H200, DEP8
    assert isinstance(s, Setup) and s.quant.kvcache == "fp8"
    assert (s.stated.kv_cache, s.stated.adp_balance_timeout_iters) == ("fp8", 60)
    assert any("developer-guide/perf-overview.md @585c7565" in a for a in s.assumptions)


def test_perf_overview_rows_without_stated_settings_keep_the_defaults(sample):
    doc = "docs/source/developer-guide/perf-overview.md@585c7565"
    # gpt-oss on Hopper: its one MXFP4 release, not a ModelOpt FP8 checkpoint ("Hopper: use auto").
    oss = to_setup(_perf_overview_row(sample, doc, "gpt-oss-20b"))
    assert isinstance(oss, Setup) and oss.stated is None and oss.quant.kvcache == "float16"
    # FP4 checkpoints already default to an FP8 KV cache; nothing else is stated for them.
    fp4 = _perf_overview_row(sample, doc, "Llama-3.3-70B-Instruct", weights="fp4", precision="FP4",
                             system="b200_sxm", gpu="B200")  # fmt: skip
    assert stated_engine(fp4, "Llama-3.3-70B-Instruct") is None
    # The v0.14 online-serving rows of the same file ran on Triton, not trtllm-bench.
    assert stated_engine(sample[3], "Llama-3.1-70B") is None
    # An unknown version of the doc states nothing.
    other = _perf_overview_row(sample, "docs/source/performance/perf-overview.md@0000000", "Llama-3.1-8B")
    assert stated_engine(other, "Llama-3.1-8B") is None


def test_the_replay_holds_twice_the_kv_tokens_at_fp8(sample):
    from servopt.calibrate.replay import Replay

    rec = _perf_overview_row(sample, "docs/source/performance/perf-overview.md@258c7540", "Llama-3.1-8B",
                             isl=1000, osl=1000)  # fmt: skip
    unstated = dataclasses.replace(rec, source=rec.source.replace("258c7540", "0000000"))
    fp8 = Replay(to_setup(rec)).deployment.kinds[0].kv_tokens
    bf16 = Replay(to_setup(unstated)).deployment.kinds[0].kv_tokens
    assert 1.9 < fp8 / bf16 < 2.1


def test_inferencex_rows_keep_their_scripts_settings(sample):
    s = to_setup(sample[6])  # InferenceX TRT-LLM FP4 on 8 B200: its script, not a perf-overview doc
    assert isinstance(s, Setup) and "dsr1_fp4_b200_trt.sh" in s.stated.script
    assert (s.stated.kv_fraction, s.stated.adp_balance_timeout_iters) == (0.8, 60)
    assert not any("perf-overview" in a for a in s.assumptions)


@pytest.mark.parametrize(
    ("weights", "conc", "isl", "osl", "backend"),
    [
        ("fp8", 4, 1024, 1024, "TRTLLM"),  # MOE_BACKEND=TRTLLM unless ...
        ("fp8", 128, 1024, 8192, "TRTLLM"),
        ("fp8", 256, 1024, 1024, "DEEPGEMM"),  # ... 1k/1k or 1k/8k at CONC >= 256
        ("fp8", 256, 1024, 8192, "DEEPGEMM"),
        ("fp8", 256, 8192, 1024, "TRTLLM"),
        ("fp4", 4, 1024, 1024, None),  # FP4: its nvfp4 table already carries TRT-LLM-gen's rows
    ],
)
def test_trtllm_moe_backend_follows_the_script(sample, weights, conc, isl, osl, backend):
    rec = dataclasses.replace(sample[6], weights=weights, concurrency=conc, isl=isl, osl=osl)
    assert stated_engine(rec, "DeepSeek-R1-0528").moe_backend == backend


@pytest.mark.parametrize(("conc", "kernel"), [(64, "sglang_flashinfer_trtllm_moe"), (256, None)])
def test_the_replay_prices_a_stated_trtllm_moe_from_trtllm_gen_rows(sample, conc, kernel):
    from servopt.calibrate.replay import database, moe_kernel
    from servopt.perf_db.database import open_database

    rec = dataclasses.replace(sample[6], weights="fp8", concurrency=conc, spec="none")
    setup = to_setup(rec)
    assert isinstance(setup, Setup) and setup.quant.moe == "fp8_block"
    assert (moe_kernel(setup).kernel_source if moe_kernel(setup) else None) == kernel
    assert any("FlashInfer in SGLang 0.5.14" in a for a in setup.assumptions) == (kernel is not None)
    # DeepSeek-R1's experts at the setup's layout (tp8, ep8 with attention DP), 16 tokens.
    args = ("fp8_block", "power_law_1.01", 8, 256, 7168, 2048, setup.layout.moe_tp, setup.layout.moe_ep, 16)
    replayed = float(database(setup).moe_ms(*args))
    own = float(open_database(setup.system, setup.backend, setup.version).moe_ms(*args))
    assert (replayed != own) == (kernel is not None)
