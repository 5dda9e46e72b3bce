"""Kubernetes manifests for a deployment plan.

- ``dynamo_documents``: a ``DynamoGraphDeployment`` (``nvidia.com/v1beta1``, ``spec.components``) with
  a frontend and one component per worker kind, and beside it a ConfigMap holding the TensorRT-LLM
  engine configs, mounted where the workers' ``--extra-engine-args`` read them. Workers take the
  Hugging Face token from the ``hf-token-secret`` Secret, as Dynamo's examples do.
- ``plain_documents``: for clusters without the Dynamo operator, the engine's own OpenAI server as a
  Deployment (one pod per replica) and a Service; aggregated serving only, since disaggregated
  serving needs a prefill/decode-aware router (Dynamo, llm-d).

The field names, the component types and the disaggregation flags follow ai-dynamo/dynamo's
v1beta1 examples (``examples/backends/{vllm,sglang,trtllm}/deploy/v1beta1/disagg.yaml``
@ 88396aa037539d4714490a866c654a8be6377cfc / 369732d4303affed83a61039bcdcb32d89aeb528), which run
the ``1.2.0-post.1`` runtime images; the tests check them against the CRD's schema
(``tests/report/k8s_schema.py``).
"""

from __future__ import annotations

import math

import yaml

from servopt.report.deploy import (
    DeploymentPlan,
    WorkerPlan,
    engine_files,
    sglang_args,
    trtllm_engine_config,
    vllm_args,
    worker_command,
)
from servopt.report.verdict import plural

# The Dynamo release whose CRD and worker flags these manifests target (its runtime images).
DYNAMO_RELEASE = "1.2.0-post.1"
DYNAMO_API_VERSION = "nvidia.com/v1beta1"
DYNAMO_RUNTIME_IMAGES = {
    "trtllm": "nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime",
    "vllm": "nvcr.io/nvidia/ai-dynamo/vllm-runtime",
    "sglang": "nvcr.io/nvidia/ai-dynamo/sglang-runtime",
}
# The engines' own images, tagged with the engine version (what plain Kubernetes runs).
ENGINE_IMAGES = {
    "trtllm": "nvcr.io/nvidia/tensorrt-llm/release:{version}",
    "vllm": "vllm/vllm-openai:v{version}",
    "sglang": "lmsysorg/sglang:v{version}",
}
HF_TOKEN_SECRET = "hf-token-secret"
CONFIG_DIR = "/config"
CONFIG_VOLUME = "engine-config"
# GPUs a pod may hold: one node of the systems servopt models. A worker wider than a node spans
# several pods (Dynamo's multinode.nodeCount).
GPUS_PER_NODE = 8
SERVE_PORT = 8000
_COMPONENT_NAMES = {
    "trtllm": "TRTLLM",
    "vllm": "Vllm",
    "sglang": "SGLang",
}


def _node_count(gpus: int) -> int:
    """Pods one worker spans: the fewest that split its GPUs evenly, at most a node's worth each."""
    n = math.ceil(gpus / GPUS_PER_NODE)
    while gpus % n:
        n += 1
    return n


def _labels(plan: DeploymentPlan) -> dict:
    return {"app.kubernetes.io/name": plan.name, "app.kubernetes.io/managed-by": "servopt"}


def _annotations(plan: DeploymentPlan) -> dict:
    return {
        "servopt/engine": f"{plan.backend} {plan.backend_version}",
        "servopt/workload": f"isl {plan.isl}, osl {plan.osl}",
    }


def config_map_name(plan: DeploymentPlan) -> str:
    return f"{plan.name}-engine-config"


def config_map(plan: DeploymentPlan) -> dict | None:
    """The engine config files the workers read (TensorRT-LLM's ``--extra-engine-args`` YAML);
    None for vLLM and SGLang, whose settings are all command-line flags."""
    if plan.backend != "trtllm":
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": config_map_name(plan), "labels": _labels(plan)},
        "data": engine_files(plan),
    }


def _worker_component(plan: DeploymentPlan, w: WorkerPlan, image: str, group: int | None = None) -> dict:
    """One worker kind; ``group`` (packed deployments) suffixes its name and mounts that group's
    engine configs at ``/config/g<group>``."""
    prefix = _COMPONENT_NAMES[plan.backend]
    name = f"{prefix}Worker" if w.role == "agg" else f"{prefix}{w.role.capitalize()}Worker"
    config_dir = CONFIG_DIR
    if group is not None:
        name, config_dir = f"{name}-g{group}", f"{CONFIG_DIR}/g{group}"
    nodes = _node_count(w.gpus_per_worker)
    cmd = worker_command(plan, w, config_dir)
    container: dict = {
        "name": "main",
        "image": image,
        "command": cmd[:3],
        "args": cmd[3:],
        "envFrom": [{"secretRef": {"name": HF_TOKEN_SECRET}}],
        "resources": {"limits": {"nvidia.com/gpu": str(w.gpus_per_worker // nodes)}},
    }
    pod: dict = {"containers": [container]}
    if plan.backend == "trtllm":
        container["volumeMounts"] = [{"name": CONFIG_VOLUME, "mountPath": config_dir, "readOnly": True}]
        pod["volumes"] = [{"name": CONFIG_VOLUME, "configMap": {"name": config_map_name(plan)}}]
    component = {
        "name": name,
        "type": "worker" if w.role == "agg" else w.role,
        "replicas": w.workers_per_replica * plan.replicas,
        "podTemplate": {"spec": pod},
    }
    if nodes > 1:
        component["multinode"] = {"nodeCount": nodes}
    return component


def dynamo_image(plan: DeploymentPlan) -> str:
    return f"{DYNAMO_RUNTIME_IMAGES[plan.backend]}:{DYNAMO_RELEASE}"


def dynamo_manifest(plan: DeploymentPlan, image: str | None = None) -> dict:
    """The ``DynamoGraphDeployment``: a frontend and one component per worker kind."""
    image = image or dynamo_image(plan)
    frontend = {
        "name": "Frontend",
        "type": "frontend",
        "replicas": 1,
        "podTemplate": {"spec": {"containers": [{"name": "main", "image": image}]}},
    }
    return {
        "apiVersion": DYNAMO_API_VERSION,
        "kind": "DynamoGraphDeployment",
        "metadata": {"name": plan.name, "labels": _labels(plan), "annotations": _annotations(plan)},
        "spec": {
            "backendFramework": plan.backend,
            "components": [frontend, *(_worker_component(plan, w, image) for w in plan.workers)],
        },
    }


def packed_manifest(name: str, plans: list[DeploymentPlan], image: str | None = None) -> dict:
    """One ``DynamoGraphDeployment`` for a packed deployment: a frontend and, per replica shape
    (one plan each), its worker components, suffixed ``-g1``, ``-g2``...; every worker serves the
    same model, so the frontend routes across all of them."""
    first = plans[0]
    doc = dynamo_manifest(first, image)
    doc["metadata"]["name"] = name
    doc["metadata"]["labels"]["app.kubernetes.io/name"] = name
    image = image or dynamo_image(first)
    doc["spec"]["components"] = doc["spec"]["components"][:1] + [
        _worker_component(plan, w, image, group=i)
        for i, plan in enumerate(plans, start=1)
        for w in plan.workers
    ]
    return doc


def packed_yaml(name: str, plans: list[DeploymentPlan], image: str | None = None) -> str:
    """``k8s_deploy.yaml`` of a packed deployment: each shape's ConfigMap, then one graph."""
    first = plans[0]
    shapes = ", ".join(
        f"g{i} {plural(p.replicas, 'replica')} x "
        f"{plural(sum(w.workers_per_replica * w.gpus_per_worker for w in p.workers), 'GPU')}"
        for i, p in enumerate(plans, start=1)
    )
    header = [
        f"servopt: packed {first.mode} deployment of {first.model}: {shapes}",
        f"Targets Dynamo {DYNAMO_RELEASE}: DynamoGraphDeployment {DYNAMO_API_VERSION} (spec.components).",
        f"Predicted for {first.backend} {first.backend_version}; the image ships the engine version of its",
        "Dynamo release (Dynamo's support matrix): use an image with the predicted one.",
        "Apply:",
        f"  kubectl create secret generic {HF_TOKEN_SECRET} --from-literal=HF_TOKEN=<token> -n <namespace>",
        "  kubectl apply -n <namespace> -f k8s_deploy.yaml",
    ]
    maps = [cm for cm in (config_map(p) for p in plans) if cm is not None]
    return _yaml(header, [*maps, packed_manifest(name, plans, image)])


def dynamo_documents(plan: DeploymentPlan, image: str | None = None) -> list[dict]:
    cm = config_map(plan)
    return [*([cm] if cm else []), dynamo_manifest(plan, image)]


def _serve_command(plan: DeploymentPlan, w: WorkerPlan) -> list[str]:
    """The engine's own OpenAI-compatible server with the chosen settings."""
    port = str(SERVE_PORT)
    if plan.backend == "vllm":
        return ["vllm", "serve", plan.model, *vllm_args(plan, w), "--host", "0.0.0.0", "--port", port]
    if plan.backend == "sglang":
        return ["python3", "-m", "sglang.launch_server", "--model-path", plan.model, *sglang_args(plan, w),
                "--host", "0.0.0.0", "--port", port]  # fmt: skip
    cfg = trtllm_engine_config(plan, w)
    cmd = ["trtllm-serve", plan.model, "--host", "0.0.0.0", "--port", port,
           "--tp_size", str(cfg["tensor_parallel_size"]), "--pp_size", str(cfg["pipeline_parallel_size"]),
           "--extra_llm_api_options", f"{CONFIG_DIR}/{w.role}_config.yaml"]  # fmt: skip
    if plan.is_moe:
        cmd += ["--ep_size", str(w.moe_ep)]
    return cmd


def plain_documents(plan: DeploymentPlan) -> list[dict] | None:
    """A Deployment of ``plan.replicas`` engine pods and a Service in front of them, or None when
    plain Kubernetes cannot run the plan (disaggregated, or a worker wider than one node)."""
    if plan.mode != "agg" or plan.workers[0].gpus_per_worker > GPUS_PER_NODE:
        return None
    w = plan.workers[0]
    labels = _labels(plan)
    container: dict = {
        "name": "engine",
        "image": ENGINE_IMAGES[plan.backend].format(version=plan.backend_version),
        "command": _serve_command(plan, w),
        "env": [
            {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": HF_TOKEN_SECRET, "key": "HF_TOKEN"}}}
        ],
        "ports": [{"name": "http", "containerPort": SERVE_PORT}],
        "resources": {"limits": {"nvidia.com/gpu": str(w.gpus_per_worker)}},
        "readinessProbe": {"httpGet": {"path": "/health", "port": SERVE_PORT}, "periodSeconds": 10},
    }
    pod: dict = {"containers": [container]}
    docs = []
    cm = config_map(plan)
    if cm is not None:
        docs.append(cm)
        container["volumeMounts"] = [{"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True}]
        pod["volumes"] = [{"name": CONFIG_VOLUME, "configMap": {"name": config_map_name(plan)}}]
    docs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": plan.name, "labels": labels, "annotations": _annotations(plan)},
            "spec": {
                "replicas": plan.replicas,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        }
    )
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": plan.name, "labels": labels},
            "spec": {
                "selector": labels,
                "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": "http"}],
            },
        }
    )
    return docs


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the engine config files in a ConfigMap) as literal blocks, readable as files."""


_Dumper.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def _comment(text: str) -> str:
    # A newline in a model path would end the comment and turn the rest into YAML.
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _yaml(header: list[str], docs: list[dict]) -> str:
    body = yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
    return "".join(f"# {_comment(line)}\n" if line else "#\n" for line in header) + body


def dynamo_yaml(plan: DeploymentPlan, image: str | None = None) -> str:
    """``k8s_deploy.yaml``: the ConfigMap and the DynamoGraphDeployment, with how to apply them."""
    used = image or dynamo_image(plan)
    header = [
        f"servopt: {plan.mode} deployment of {plan.model}, {plan.replicas} replica(s)",
        f"Targets Dynamo {DYNAMO_RELEASE}: DynamoGraphDeployment {DYNAMO_API_VERSION} (spec.components).",
        f"Predicted for {plan.backend} {plan.backend_version}; image {used} ships the engine",
        "version of its Dynamo release (Dynamo's support matrix): use an image with the predicted one.",
        "Apply:",
        f"  kubectl create secret generic {HF_TOKEN_SECRET} --from-literal=HF_TOKEN=<token> -n <namespace>",
        "  kubectl apply -n <namespace> -f k8s_deploy.yaml",
    ]
    return _yaml(header, dynamo_documents(plan, image))


def plain_yaml(plan: DeploymentPlan) -> str | None:
    """``k8s_plain.yaml`` (no Dynamo operator needed), or None when the plan needs Dynamo."""
    docs = plain_documents(plan)
    if docs is None:
        return None
    header = [
        f"servopt: {plan.mode} deployment of {plan.model} without the Dynamo operator:",
        f"{plan.replicas} pod(s) of {plan.backend} {plan.backend_version}'s own server behind one Service.",
        "Apply:",
        f"  kubectl create secret generic {HF_TOKEN_SECRET} --from-literal=HF_TOKEN=<token> -n <namespace>",
        "  kubectl apply -n <namespace> -f k8s_plain.yaml",
    ]
    return _yaml(header, docs)
