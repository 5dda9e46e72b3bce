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


def test_trtllm_mxfp8_experts_select_the_cutlass_moe_backend():
    # gpt-oss on Blackwell: MXFP4 x MXFP8 is TRT-LLM's CUTLASS MoE; w4a16_mxfp4 keeps the default.
    def agg(moe_quant_mode: str) -> dict:
        worker = WorkerPlan("agg", 1, tp=1, pp=1, dp=1, moe_tp=1, moe_ep=1, batch_size=256, ctx_tokens=1024,
                            moe_quant_mode=moe_quant_mode)  # fmt: skip
        plan = DeploymentPlan("gpt-oss", "openai/gpt-oss-20b", "trtllm", "1.3.0rc20", 1, (worker,), 1024, 1024,
                              "fp8", is_moe=True)  # fmt: skip
        return yaml.safe_load(engine_files(plan)["agg_config.yaml"])

    assert agg("w4a8_mxfp4_mxfp8")["moe_config"] == {"backend": "CUTLASS"}
    assert "moe_config" not in agg("w4a16_mxfp4") and "moe_config" not in agg("")


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


def _sglang_cp(role: str = "prefill") -> DeploymentPlan:
    """Qwen3-235B on SGLang: context-parallel prefill workers (tp 1, cp 4, experts ep 4) and
    tp-style decode workers, or one context-parallel agg worker."""
    cp_worker = WorkerPlan(
        role, 2, tp=1, pp=1, dp=1, moe_tp=1, moe_ep=4, batch_size=1, ctx_tokens=32000, cp=4
    )
    workers = (cp_worker,)
    if role == "prefill":
        decode = WorkerPlan("decode", 1, tp=4, pp=1, dp=1, moe_tp=1, moe_ep=4, batch_size=32, ctx_tokens=0)
        workers = (cp_worker, decode)
    return DeploymentPlan(
        name="q235-cp", model="Qwen/Qwen3-235B-A22B", backend="sglang", backend_version="0.5.14", replicas=1,
        workers=workers, isl=32000, osl=500, kvcache_quant_mode="float16", is_moe=True,
    )  # fmt: skip


def test_sglang_context_parallel_workers_get_sglang_cp_flags():
    plan = _sglang_cp()
    files = engine_files(plan)
    prefill = shlex.split(files["prefill_args.txt"])
    decode = shlex.split(files["decode_args.txt"])
    # SGLang's tp size is the worker's whole GPU group; attention tp = tp / (dp * attn_cp) = 1.
    assert prefill[prefill.index("--tp-size") + 1] == "4"
    assert prefill[prefill.index("--attn-cp-size") + 1] == "4"
    assert "--enable-prefill-context-parallel" in prefill and "--enable-dp-attention" not in prefill
    assert prefill[prefill.index("--ep-size") + 1] == "4"
    assert "--attn-cp-size" not in decode and "--enable-prefill-context-parallel" not in decode
    assert plan.workers[0].gpus_per_worker == 4
    script = run_script(plan)
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)
    # Two 4-GPU prefill workers, then the 4-GPU decode worker: GPUs 0-3, 4-7, 8-11.
    assert "# prefill worker 1: GPUs 4-7 of the replica" in script
    assert "# decode worker 0: GPUs 8-11 of the replica" in script
    doc = yaml.safe_load(yaml.safe_dump(dynamo_manifest(plan)))
    prefill_component = next(c for c in doc["spec"]["components"] if c["type"] == "prefill")
    (main,) = prefill_component["podTemplate"]["spec"]["containers"]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert "--attn-cp-size" in main["args"]


def test_plain_kubernetes_agg_worker_with_context_parallelism():
    from servopt.report.k8s import plain_documents

    deployment = next(d for d in plain_documents(_sglang_cp("agg")) if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "4"
    cmd = container["command"]
    assert cmd[cmd.index("--attn-cp-size") + 1] == "4" and cmd[cmd.index("--tp-size") + 1] == "4"


@pytest.mark.parametrize("backend", ["trtllm", "vllm"])
def test_context_parallel_plans_are_refused_off_sglang(backend):
    from dataclasses import replace

    from servopt.errors import ServoptError

    plan = replace(_sglang_cp(), backend=backend)
    with pytest.raises(ServoptError, match=r"cp: 4: context parallelism is modelled on sglang only"):
        engine_files(plan)


def test_rows_carry_cp_into_the_deployment_plan():
    from types import SimpleNamespace

    from servopt.report.rows import deployment_plan

    run = SimpleNamespace(
        experiment=SimpleNamespace(
            name="exp", isl=32000, osl=500, backend_name="sglang", model_name="QWEN3_32B",
            worker=lambda role: SimpleNamespace(kvcache_quant_mode="float16", moe_quant_mode=f"{role}_moe"),
            config=SimpleNamespace(nextn=0),
        ),
        arch=SimpleNamespace(hf_id="Qwen/Qwen3-32B", is_moe=False),
    )  # fmt: skip
    layout = {"tp": 1, "pp": 1, "dp": 1, "moe_tp": 1, "moe_ep": 1, "batch_size": 1}
    row = {
        "mode": "disagg", "version": "0.5.14", "replicas": 1, "prefill_workers": 11, "decode_workers": 20,
        **{f"prefill_{k}": v for k, v in layout.items()}, "prefill_cp": 4,
        **{f"decode_{k}": v for k, v in layout.items()},
    }  # fmt: skip
    plan = deployment_plan(run, row)
    prefill, decode = plan.workers
    assert (prefill.cp, prefill.gpus_per_worker, decode.cp, decode.gpus_per_worker) == (4, 4, 1, 1)
    assert (prefill.moe_quant_mode, decode.moe_quant_mode) == ("prefill_moe", "decode_moe")  # per role
