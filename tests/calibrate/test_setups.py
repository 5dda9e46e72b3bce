"""Record -> Setup mapping on representative rows (data/public_sample.csv, see test_public_csv)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from servopt.calibrate.public_csv import read_measurements
from servopt.calibrate.records import Disagg, WorkerGroup
from servopt.calibrate.setups import SKIP_REASONS, Pool, Setup, Skip, fit_skip, nearest_version, to_setup
from servopt.hardware import load_system
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout
from servopt.perf_db import locate

SAMPLE = Path(__file__).parent / "data" / "public_sample.csv"


@pytest.fixture(scope="module")
def sample():
    return {r.row: r for r in read_measurements(SAMPLE)}


def _current(system: str, backend: str) -> str:
    return locate.version_slots(load_system(system).measured_data, backend)["current"]


def test_inferencex_dep8_closed_loop(sample):
    s = to_setup(sample[6])  # TRT-LLM, tp8 ep8, dp_attention=True, conc 128, FP4 on B200
    assert isinstance(s, Setup)
    assert s.layout == Layout(tp=1, pp=1, dp=8, moe_tp=1, moe_ep=8)
    assert (s.model, s.system, s.backend, s.replicas, s.concurrency) == (
        "DEEPSEEK_R1",
        "b200_sxm",
        "trtllm",
        1,
        128,
    )
    assert s.quant == QuantModes("nvfp4", "nvfp4", "fp8", None)
    assert (s.isl, s.osl, s.mode) == (1024, 1024, "agg")


def test_blog_attention_dp_row(sample):
    s = to_setup(sample[4])  # H200 FP8, tp8 ep8 "attention DP", 1024 clients
    assert isinstance(s, Setup)
    assert s.layout == Layout(1, 1, 8, 1, 8) and s.replica_concurrency == 1024
    assert s.quant.gemm == "fp8_block" and s.quant.kvcache == "float16"
    assert any("version unstated" in a for a in s.assumptions)


def test_sglang_dp_attention_without_ep_spans_all_ranks(sample):
    s = to_setup(sample[8])  # dstack SGLang "tp 8 --enable-dp-attention", ep unstated
    assert isinstance(s, Setup) and s.layout == Layout(1, 1, 8, 1, 8)
    assert any("0.4.3.post2 -> data" in a for a in s.assumptions)


def test_vllm_gpustack_row(sample):
    s = to_setup(sample[13])  # Qwen3-8B, vllm v0.11.0, ShareGPT, max-concurrency 4, one H100
    assert isinstance(s, Setup)
    assert (s.model, s.system, s.backend) == ("QWEN3_8B", "h100_sxm", "vllm")
    assert s.version == _current("h100_sxm", "vllm")
    assert any(a.startswith("version v0.11.0 -> data") for a in s.assumptions)
    assert s.layout == Layout(1, 1, 1, 1, 1) and s.replicas == 1 and s.concurrency == 4
    assert (s.isl, s.osl) == (233, 221)  # 23260 / 100 and 22061 / 100 tokens per request
    assert s.quant == QuantModes("float16", "float16", "float16", None)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (5, "speculative decoding"),
        (7, "speculative decoding"),  # InferenceX disagg with MTP: acceptance rates not stated
        (14, "speculative decoding"),
        (15, "unknown model"),  # Llama-2-70B (MLPerf)
        (16, "phase-only measurement"),  # LMSYS prefill-only, PD disagg
    ],
)
def test_skips_carry_their_reason(sample, row, reason):
    skip = to_setup(sample[row])
    assert isinstance(skip, Skip) and skip.reason == reason and skip.detail
    assert skip.reason in SKIP_REASONS


def _disagg(sample, **changes):
    # InferenceX Dynamo + SGLang, FP4 on B200: 1 prefill worker (tp4 ep4 attention DP, 4 GPUs) and 6
    # decode workers (tp8 ep8, 48 GPUs), 256 clients; without MTP it is priced.
    return dataclasses.replace(sample[7], spec="none", spec_nextn=None, **changes)


def test_disagg_row_maps_to_prefill_and_decode_pools(sample):
    s = to_setup(_disagg(sample))
    assert isinstance(s, Setup) and s.mode == "disagg"
    assert s.prefill == Pool(Layout(1, 1, 4, 1, 4), 1)  # attention DP 4, experts EP 4
    assert s.decode == Pool(Layout(8, 1, 1, 1, 8), 6)
    assert s.layout == s.decode.layout
    assert (s.replica_gpus, s.replicas, s.gpus, s.concurrency) == (52, 1, 52, 256)
    assert s.label == "1P tp1pp1dp4etp1ep4 + 6D tp8pp1dp1etp1ep8"
    assert s.stated is None  # the agg launch scripts are not the disagg runs'
    assert any(a.startswith("disagg Dynamo + SGLang") for a in s.assumptions)
    assert s.quant == QuantModes("nvfp4", "nvfp4", "fp8", None)  # KV: the NVFP4 checkpoint's default


def test_disagg_gpus_imply_replicas(sample):
    s = to_setup(_disagg(sample, num_gpus=104))
    assert (s.replicas, s.replica_concurrency, s.gpus) == (2, 128, 104)
    skip = to_setup(_disagg(sample, num_gpus=60))
    assert isinstance(skip, Skip) and skip.reason == "layout not stated or not modelled"
    assert "52-GPU replicas" in skip.detail


@pytest.mark.parametrize(
    ("group", "detail"),
    [
        (WorkerGroup(0, 20, 1, False, 20), "disagg prefill: workers not stated"),
        (WorkerGroup(1, 1, 1, True, 4), "tp does not span a worker"),  # tp1 on a 4-GPU worker
        (WorkerGroup(1, 4, 3, True, 4), "do not split evenly"),
    ],
)
def test_unpriceable_disagg_layout_is_a_counted_skip(sample, group, detail):
    record = _disagg(sample)
    skip = to_setup(dataclasses.replace(record, disagg=Disagg(group, record.disagg.decode)))
    assert isinstance(skip, Skip) and skip.reason == "layout not stated or not modelled"
    assert detail in skip.detail and skip.reason in SKIP_REASONS


def test_disagg_setups_are_held_out_of_the_fit(sample):
    skip = fit_skip(to_setup(_disagg(sample)))
    assert isinstance(skip, Skip) and skip.reason == "disaggregated serving" and skip.reason in SKIP_REASONS


def test_fp4_on_hopper_is_skipped(sample):
    record = dataclasses.replace(sample[6], gpu="H200 SXM", system="h200_sxm")
    skip = to_setup(record)
    assert isinstance(skip, Skip) and skip.reason == "precision not supported on this GPU"


def test_gpus_not_a_whole_number_of_workers(sample):
    skip = to_setup(dataclasses.replace(sample[13], num_gpus=3, tp=2))
    assert isinstance(skip, Skip) and skip.reason == "layout not stated or not modelled"


def test_more_replicas_than_clients(sample):
    skip = to_setup(dataclasses.replace(sample[13], num_gpus=8, concurrency=4))
    assert isinstance(skip, Skip) and skip.reason == "fewer clients than replicas"


def test_replicas_split_the_clients(sample):
    s = to_setup(dataclasses.replace(sample[13], num_gpus=2, concurrency=8))
    assert s.replicas == 2 and s.replica_concurrency == 4 and s.gpus == 2


def test_nearest_version():
    queryable = sorted(set(locate.version_slots(load_system("h200_sxm").measured_data, "sglang").values()))
    current = _current("h200_sxm", "sglang")
    assert nearest_version("h200_sxm", "sglang", None) == (
        current,
        f"version unstated -> data {current} (current)",
    )
    assert nearest_version("h200_sxm", "sglang", f"v{current}-cu130") == (current, None)
    oldest = min(queryable, key=locate.version_key)
    version, note = nearest_version("h200_sxm", "sglang", "0.0.1")
    assert version == oldest and "nearest queryable" in note
    version, note = nearest_version("h200_sxm", "sglang", "deepseek branch (TRT engine)")
    assert version == current and "(current)" in note


def test_max_throughput_run_takes_the_documented_request_count(sample):
    # TRT-LLM perf overview, trtllm-bench throughput at 1000/1000: the docs' $num_requests is 3000.
    s = to_setup(sample[2])
    assert isinstance(s, Setup) and s.load == "max_throughput"
    assert (s.num_requests, s.concurrency, s.request_rate) == (3000, 3000, None)
    assert any("3000 requests (the perf overview's $num_requests for 1000/1000)" in a for a in s.assumptions)
    assert any("all 3000 requests at t=0" in a for a in s.assumptions)
    unlisted = to_setup(dataclasses.replace(sample[2], osl=2048, isl=1024))
    assert isinstance(unlisted, Skip) and unlisted.reason == "request count not stated"


def test_open_loop_keeps_its_rate_and_count(sample):
    s = to_setup(sample[3])  # TRT-LLM online serving: 500 requests at 2 QPS
    assert isinstance(s, Setup) and s.load == "open_loop"
    assert (s.num_requests, s.request_rate) == (500, 2.0)
    assert any("Poisson arrivals at 2 req/s" in a for a in s.assumptions)
    for rate in (None, float("inf")):
        skip = to_setup(dataclasses.replace(sample[3], request_rate=rate))
        assert isinstance(skip, Skip) and skip.reason == "request rate not stated"


def test_burst_is_its_stated_requests_at_once(sample):
    s = to_setup(sample[10])  # dstack: 1024 requests at t=0
    assert isinstance(s, Setup) and s.load == "burst" and s.num_requests == s.concurrency == 1024
    skip = to_setup(dataclasses.replace(sample[10], num_requests=None))
    assert isinstance(skip, Skip) and skip.reason == "request count not stated"


def test_phase_only_stays_skipped(sample):
    skip = to_setup(dataclasses.replace(sample[13], load="phase_only"))
    assert isinstance(skip, Skip) and skip.reason == "phase-only measurement"


def test_only_closed_loops_are_fitted(sample):
    assert fit_skip(to_setup(sample[13])) is None
    for row, reason in ((2, "max-throughput run (no concurrency)"), (3, "open loop at a request rate"),
                        (10, "burst (all requests at t=0)")):  # fmt: skip
        skip = fit_skip(to_setup(sample[row]))
        assert isinstance(skip, Skip) and skip.reason == reason and skip.reason in SKIP_REASONS


def _gpt_oss_row(sample, gpu: str, system: str, precision: str):
    # The perf overview's gpt-oss rows: one GPU, max-throughput at 1000/1000, KV dtype unstated.
    return dataclasses.replace(
        sample[2], model="gpt-oss-20b", gpu=gpu, system=system, num_gpus=1, tp=1, ep=1, attention_dp=False,
        precision=precision, weights=precision.lower(),
    )  # fmt: skip


def test_gpt_oss_fp4_on_blackwell_trtllm_runs_mxfp8_activations(sample):
    # moe_config.backend CUTLASS on Blackwell: MXFP4 weights x MXFP8 activations, fp8 KV.
    s = to_setup(_gpt_oss_row(sample, "B200", "b200_sxm", "FP4"))
    assert isinstance(s, Setup) and s.model == "GPT_OSS_20B"
    assert s.quant == QuantModes("float16", "w4a8_mxfp4_mxfp8", "fp8", None)
    assert any("w4a8_mxfp4_mxfp8 table" in a for a in s.assumptions)


def test_gpt_oss_fp8_on_hopper_keeps_bf16_activations(sample):
    # TRITON on Hopper: bf16 activations (the registry default), KV "auto" = bf16.
    s = to_setup(_gpt_oss_row(sample, "H100 SXM", "h100_sxm", "FP8"))
    assert isinstance(s, Setup) and s.model == "GPT_OSS_20B"
    assert s.quant == QuantModes("float16", "w4a16_mxfp4", "float16", None)


def test_gpt_oss_fp4_on_blackwell_vllm_keeps_the_checkpoint_default(sample):
    record = dataclasses.replace(_gpt_oss_row(sample, "B200", "b200_sxm", "FP4"), backend="vllm")
    s = to_setup(record)
    assert isinstance(s, Setup) and s.quant.moe == "w4a16_mxfp4"
