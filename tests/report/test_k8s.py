"""Generated Kubernetes manifests against the schemas servopt states from the CRD and core APIs."""

import shlex

import jsonschema
import pytest
import yaml
from k8s_schema import (
    COMPONENT_TYPES,
    DYNAMO_API_VERSION,
    DYNAMO_GRAPH_DEPLOYMENT,
    schema_for,
    unique_component_names,
)

from servopt.report import k8s
from servopt.report.deploy import DeploymentPlan, WorkerPlan
from servopt.report.document import result_document
from servopt.report.rows import deployment_name


def _plan(backend: str, mode: str, *, decode_gpus: int = 8) -> DeploymentPlan:
    if mode == "agg":
        workers = (
            WorkerPlan("agg", 1, tp=2, pp=1, dp=1, moe_tp=1, moe_ep=1, batch_size=80, ctx_tokens=4000),
        )
    else:
        workers = (
            WorkerPlan("prefill", 3, tp=8, pp=1, dp=1, moe_tp=1, moe_ep=8, batch_size=1, ctx_tokens=4000),
            WorkerPlan("decode", 1, tp=1, pp=1, dp=decode_gpus, moe_tp=1, moe_ep=decode_gpus, batch_size=64,
                       ctx_tokens=0),
        )  # fmt: skip
    return DeploymentPlan(
        name=deployment_name(mode, mode),
        model="deepseek-ai/DeepSeek-V3",
        backend=backend,
        backend_version={"trtllm": "1.3.0rc20", "vllm": "0.24.0", "sglang": "0.5.14"}[backend],
        replicas=4,
        workers=workers,
        isl=4000,
        osl=1000,
        kvcache_quant_mode="fp8",
        is_moe=True,
    )


def _validate(docs: list[dict]) -> None:
    for doc in docs:
        jsonschema.Draft202012Validator(schema_for(doc)).validate(doc)


CASES = [(b, m) for b in ("trtllm", "vllm", "sglang") for m in ("agg", "disagg")]


@pytest.mark.parametrize(("backend", "mode"), CASES)
def test_dynamo_manifest_matches_the_v1beta1_crd_schema(backend, mode):
    plan = _plan(backend, mode)
    text = k8s.dynamo_yaml(plan)
    docs = list(yaml.safe_load_all(text))  # what kubectl reads: the written text, not the dicts
    _validate(docs)
    dgd = docs[-1]
    assert dgd["apiVersion"] == DYNAMO_API_VERSION and unique_component_names(dgd)
    assert dgd["spec"]["backendFramework"] == backend
    assert dgd["metadata"]["name"] == f"servopt-{mode}"  # not servopt-agg-agg
    workers = [c for c in dgd["spec"]["components"] if c["type"] != "frontend"]
    assert {c["type"] for c in workers} == ({"worker"} if mode == "agg" else {"prefill", "decode"})
    for c in dgd["spec"]["components"]:
        (main,) = c["podTemplate"]["spec"]["containers"]
        tag = main["image"].rsplit(":", 1)[1]
        assert tag == k8s.DYNAMO_RELEASE and tag != "latest"
        if c["type"] == "frontend":
            continue
        assert main["envFrom"] == [{"secretRef": {"name": k8s.HF_TOKEN_SECRET}}]
        args = main["args"]
        if mode == "disagg":
            assert args[args.index("--disaggregation-mode") + 1] == c["type"]
            assert "--is-prefill-worker" not in args  # the pre-1.0 vLLM flag
            if backend == "vllm" and c["type"] == "prefill":
                assert "NixlConnector" in args[args.index("--kv-transfer-config") + 1]
            if backend == "sglang":
                assert args[args.index("--disaggregation-transfer-backend") + 1] == "nixl"
    assert f"{backend} {plan.backend_version}" in text  # the engine version the prediction used


@pytest.mark.parametrize("mode", ["agg", "disagg"])
def test_trtllm_engine_configs_are_in_a_mounted_config_map(mode):
    plan = _plan("trtllm", mode)
    config_map, dgd = yaml.safe_load_all(k8s.dynamo_yaml(plan))
    assert config_map["kind"] == "ConfigMap" and config_map["metadata"]["name"] == k8s.config_map_name(plan)
    for c in dgd["spec"]["components"][1:]:
        pod = c["podTemplate"]["spec"]
        (main,) = pod["containers"]
        (volume,) = pod["volumes"]
        assert volume["configMap"]["name"] == config_map["metadata"]["name"]
        (mount,) = main["volumeMounts"]
        assert mount["name"] == volume["name"]
        path = main["args"][main["args"].index("--extra-engine-args") + 1]
        directory, file = path.rsplit("/", 1)
        assert directory == mount["mountPath"] and file in config_map["data"]
        assert yaml.safe_load(config_map["data"][file])["max_batch_size"] > 0


def test_workers_wider_than_a_node_span_pods():
    dgd = k8s.dynamo_manifest(_plan("sglang", "disagg", decode_gpus=16))
    decode = next(c for c in dgd["spec"]["components"] if c["type"] == "decode")
    assert decode["multinode"] == {"nodeCount": 2}
    assert decode["podTemplate"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"
    jsonschema.validate(dgd, DYNAMO_GRAPH_DEPLOYMENT)


@pytest.mark.parametrize("backend", ["trtllm", "vllm", "sglang"])
def test_plain_kubernetes_option_for_agg(backend):
    plan = _plan(backend, "agg")
    docs = list(yaml.safe_load_all(k8s.plain_yaml(plan)))
    _validate(docs)
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    assert deployment["spec"]["replicas"] == plan.replicas
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    (engine,) = deployment["spec"]["template"]["spec"]["containers"]
    assert engine["image"].endswith(plan.backend_version)  # pinned to the engine version predicted
    assert engine["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert shlex.join(engine["command"])  # a real argv
    assert k8s.plain_yaml(_plan(backend, "disagg")) is None  # needs a P/D-aware router


def test_schema_rejects_the_old_api_shape():
    """The schema is not a rubber stamp: v1alpha1's spec.services, an unknown type, a bad name fail."""
    good = k8s.dynamo_manifest(_plan("vllm", "disagg"))
    jsonschema.validate(good, DYNAMO_GRAPH_DEPLOYMENT)
    bad = [
        {**good, "apiVersion": "nvidia.com/v1alpha1"},
        {**good, "spec": {"services": {"Frontend": {}}}},
        {**good, "spec": {"components": [{**good["spec"]["components"][0], "type": "router"}]}},
        {**good, "spec": {"components": [{**good["spec"]["components"][0], "name": "bad_name"}]}},
        {**good, "metadata": {"name": "Servopt_Agg"}},
    ]
    for doc in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, DYNAMO_GRAPH_DEPLOYMENT)
    assert set(COMPONENT_TYPES) >= {"frontend", "worker", "prefill", "decode"}


@pytest.mark.parametrize(
    ("experiment", "mode", "name"),
    [("agg", "agg", "servopt-agg"), ("disagg", "disagg", "servopt-disagg"), ("exp_agg_full", "agg",
     "servopt-exp-agg-full"), ("Qwen3 32B", "disagg", "servopt-qwen3-32b-disagg")],
)  # fmt: skip
def test_deployment_names_are_kubernetes_names(experiment, mode, name):
    assert deployment_name(experiment, mode) == name


@pytest.fixture(scope="module")
def packed_result():
    """Qwen3-32B on 3 H200: identical agg replicas leave a GPU idle; the packed deployment uses all 3."""
    from servopt.config import default_experiments
    from servopt.pipeline import run_experiments

    return run_experiments(default_experiments("QWEN3_32B", 3, "h200_sxm"))


def test_packed_deployment_is_one_valid_graph_with_a_component_per_shape(packed_result, tmp_path):
    from servopt.report.files import packed_deployment_files
    from servopt.report.save import save_run

    doc = result_document(packed_result)
    verdict = doc["verdict"]
    assert verdict["deploy"] == "packed"
    files = packed_deployment_files(packed_result, verdict["experiment"])
    docs = list(yaml.safe_load_all(files["k8s_deploy.yaml"]))
    _validate(docs)
    *maps, dgd = docs
    assert unique_component_names(dgd)
    groups = doc["best"]["packed"]["groups"]
    workers = [c for c in dgd["spec"]["components"] if c["type"] != "frontend"]
    assert len(workers) == len(groups) == len(maps)
    gpus = sum(c["replicas"] * int(c["podTemplate"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
               for c in workers)  # fmt: skip
    assert gpus == doc["best"]["packed"]["total_gpus_used"] == 3
    for i, (c, cm) in enumerate(zip(workers, maps, strict=True), start=1):
        pod = c["podTemplate"]["spec"]
        assert pod["volumes"][0]["configMap"]["name"] == cm["metadata"]["name"]
        path = pod["containers"][0]["args"][pod["containers"][0]["args"].index("--extra-engine-args") + 1]
        assert path == f"{pod['containers'][0]['volumeMounts'][0]['mountPath']}/agg_config.yaml"
        assert f"g{i}/agg_config.yaml" in files
    root = save_run(packed_result, doc, tmp_path, top_n=1)
    packed = root / verdict["experiment"] / "packed"
    assert (packed / "k8s_deploy.yaml").read_text() == files["k8s_deploy.yaml"]
    assert (packed / "g1" / "run.sh").stat().st_mode & 0o111


def test_a_newline_in_the_model_path_stays_inside_the_comment():
    from dataclasses import replace

    plan = replace(_plan("vllm", "agg"), model="/models/x\napiVersion: v1")
    for text, first in ((k8s.dynamo_yaml(plan), DYNAMO_API_VERSION), (k8s.plain_yaml(plan), "apps/v1")):
        lines = text.splitlines()
        body = next(i for i, line in enumerate(lines) if not line.startswith("#"))
        assert lines[body] == f"apiVersion: {first}"  # the header did not leak a line of YAML
        _validate(list(yaml.safe_load_all(text)))
