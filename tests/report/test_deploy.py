import shlex
import subprocess

import pytest
import yaml

from servopt.report.deploy import (
    DeploymentPlan,
    WorkerPlan,
    engine_files,
    max_num_tokens,
    run_script,
    trtllm_engine_config,
)
from servopt.report.k8s import dynamo_manifest


def _disagg(backend="trtllm", nextn=0):
    return DeploymentPlan(
        name="dsv3-disagg",
        model="deepseek-ai/DeepSeek-V3",
        backend=backend,
        backend_version="1.3.0rc20",
        replicas=4,
        workers=(
            WorkerPlan("prefill", 3, tp=8, pp=1, dp=1, moe_tp=1, moe_ep=8, batch_size=1, ctx_tokens=4000),
            WorkerPlan("decode", 1, tp=1, pp=1, dp=8, moe_tp=1, moe_ep=8, batch_size=64, ctx_tokens=0),
        ),
        isl=4000,
        osl=1000,
        kvcache_quant_mode="fp8",
        is_moe=True,
        nextn=nextn,
    )


def test_trtllm_engine_configs_carry_the_chosen_layout():
    plan = _disagg(nextn=1)
    files = engine_files(plan)
    prefill = yaml.safe_load(files["prefill_config.yaml"])
    decode = yaml.safe_load(files["decode_config.yaml"])
    assert prefill["tensor_parallel_size"] == 8 and prefill["moe_expert_parallel_size"] == 8
    assert prefill["enable_attention_dp"] is False
    assert decode["tensor_parallel_size"] == 8 and decode["enable_attention_dp"] is True
    assert decode["max_batch_size"] == 64
    assert decode["max_num_tokens"] == 128  # 64 requests x (1 + 1 draft token)
    assert decode["kv_cache_config"]["dtype"] == "fp8"
    assert decode["speculative_config"] == {"decoding_type": "MTP", "num_nextn_predict_layers": 1}
    assert prefill["max_num_tokens"] % 32 == 0 and prefill["max_num_tokens"] >= 4000


def test_dynamo_manifest_counts_workers_across_replicas():
    doc = yaml.safe_load(yaml.safe_dump(dynamo_manifest(_disagg())))
    assert doc["kind"] == "DynamoGraphDeployment"
    components = {c["name"]: c for c in doc["spec"]["components"]}
    prefill, decode = components["TRTLLMPrefillWorker"], components["TRTLLMDecodeWorker"]
    assert prefill["replicas"] == 12  # 3 per replica x 4 replicas
    assert decode["replicas"] == 4
    (main,) = decode["podTemplate"]["spec"]["containers"]
    assert main["name"] == "main" and main["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert prefill["type"] == "prefill" and decode["type"] == "decode"


@pytest.mark.parametrize("backend", ["vllm", "sglang"])
def test_cli_args_for_vllm_and_sglang(backend):
    plan = _disagg(backend=backend)
    files = engine_files(plan)
    args = shlex.split(files["decode_args.txt"])
    if backend == "vllm":
        assert args[args.index("--data-parallel-size") + 1] == "8"
        assert args[args.index("--max-num-seqs") + 1] == "64"
        assert "--enable-expert-parallel" in args
    else:
        assert args[args.index("--dp-size") + 1] == "8"
        assert args[args.index("--ep-size") + 1] == "8"
        assert args[args.index("--max-running-requests") + 1] == "512"


def test_run_script_is_valid_bash_and_launches_every_worker():
    script = run_script(_disagg())
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    assert script.count("--disaggregation-mode prefill") == 3
    assert script.count("--disaggregation-mode decode") == 1


def test_agg_max_num_tokens_covers_context_budget_and_decode():
    plan = DeploymentPlan(
        name="q", model="Qwen/Qwen3-32B", backend="trtllm", backend_version="1.3.0rc20", replicas=1,
        workers=(WorkerPlan("agg", 1, tp=2, pp=1, dp=1, moe_tp=1, moe_ep=1, batch_size=64, ctx_tokens=8000),),
        isl=4000, osl=1000, kvcache_quant_mode="float16", is_moe=False,
    )  # fmt: skip
    w = plan.workers[0]
    assert max_num_tokens(plan, w) >= 8000 + 64
    cfg = trtllm_engine_config(plan, w)
    assert "moe_expert_parallel_size" not in cfg and cfg["kv_cache_config"]["dtype"] == "auto"
