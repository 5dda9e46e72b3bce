"""JSON schemas of the Kubernetes objects servopt writes, from the fields and types their APIs declare.

The oracle of tests/report/test_k8s.py and test_save.py (not shipped: servopt only writes manifests).
It states the API independently of ``servopt.report.k8s``, the apiVersion included.

The ``DynamoGraphDeployment`` schema states the v1beta1 API of ai-dynamo/dynamo's operator:

- ``deploy/operator/api/dynamo/v1beta1/dynamographdeployment_types.go``
  @ c10b378843ef72642ead805828e9359e37f1ee6d (``DynamoGraphDeploymentSpec``: ``components`` is a
  list of at most 25, keyed by ``name``; ``backendFramework`` is one of sglang, vllm, trtllm);
- ``deploy/operator/api/dynamo/v1beta1/dynamocomponentdeployment_types.go``
  @ ef2e63386aa7d217714afe992f22276c9990ead0 (``DynamoComponentDeploymentSharedSpec``: ``name``
  required, 1-63 characters of ``^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$``; ``type``; ``podTemplate``
  a ``corev1.PodTemplateSpec`` whose container ``main`` the operator fills in; ``replicas`` >= 0;
  ``multinode.nodeCount``);
- the component types ``frontend|worker|prefill|decode|planner|epp`` as
  ``examples/backends/vllm/deploy/v1beta1/README.md`` @ 96d869b3550079063336499d7a35bf9a6c3f1722
  lists them.

Pod, container, ConfigMap, Deployment and Service fields follow the core Kubernetes API (v1, apps/v1).
Each schema lists only the fields servopt may write and rejects any other key, so it is stricter
than the API (a misspelt or outdated field such as v1alpha1's ``spec.services`` fails), never
looser. The case-insensitive uniqueness of component names is a CEL rule that JSON Schema cannot
state; ``unique_component_names`` checks it.
"""

from __future__ import annotations

DYNAMO_API_VERSION = "nvidia.com/v1beta1"
COMPONENT_TYPES = ("frontend", "worker", "prefill", "decode", "planner", "epp")
BACKEND_FRAMEWORKS = ("sglang", "vllm", "trtllm")
MAX_COMPONENTS = 25

# RFC 1123 DNS label / subdomain: what Kubernetes accepts as object and volume names.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
COMPONENT_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?$"
# resource.Quantity's serialized form (k8s.io/apimachinery/pkg/api/resource).
QUANTITY = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"


def _obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}
_STR_MAP = {"type": "object", "additionalProperties": _STR}
_QUANTITIES = {"type": "object", "additionalProperties": {"type": "string", "pattern": QUANTITY}}

_METADATA = _obj(
    {
        "name": {"type": "string", "pattern": DNS_SUBDOMAIN, "maxLength": 253},
        "namespace": {"type": "string", "pattern": DNS_LABEL, "maxLength": 63},
        "labels": _STR_MAP,
        "annotations": _STR_MAP,
    },
    ("name",),
)
_TEMPLATE_METADATA = _obj({"labels": _STR_MAP, "annotations": _STR_MAP})

_ENV_VAR = _obj(
    {
        "name": {"type": "string", "minLength": 1},
        "value": _STR,
        "valueFrom": _obj(
            {"secretKeyRef": _obj({"name": _STR, "key": _STR, "optional": {"type": "boolean"}}, ("key",))}
        ),
    },
    ("name",),
)
_ENV_FROM = _obj(
    {
        "secretRef": _obj({"name": _STR, "optional": {"type": "boolean"}}),
        "configMapRef": _obj({"name": _STR, "optional": {"type": "boolean"}}),
    }
)
_VOLUME_MOUNT = _obj(
    {
        "name": _STR,
        "mountPath": {"type": "string", "minLength": 1},
        "subPath": _STR,
        "readOnly": {"type": "boolean"},
    },
    ("name", "mountPath"),
)
_PORT = _obj(
    {
        "name": {"type": "string", "maxLength": 15},
        "containerPort": {"type": "integer", "minimum": 1, "maximum": 65535},
        "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
    },
    ("containerPort",),
)
_PROBE = _obj(
    {
        "httpGet": _obj({"path": _STR, "port": {"type": ["integer", "string"]}}, ("port",)),
        "initialDelaySeconds": {"type": "integer", "minimum": 0},
        "periodSeconds": {"type": "integer", "minimum": 1},
        "failureThreshold": {"type": "integer", "minimum": 1},
    }
)
CONTAINER = _obj(
    {
        "name": {"type": "string", "pattern": DNS_LABEL, "maxLength": 63},
        "image": _STR,
        "command": _STRS,
        "args": _STRS,
        "workingDir": _STR,
        "env": {"type": "array", "items": _ENV_VAR},
        "envFrom": {"type": "array", "items": _ENV_FROM},
        "ports": {"type": "array", "items": _PORT},
        "resources": _obj({"limits": _QUANTITIES, "requests": _QUANTITIES}),
        "volumeMounts": {"type": "array", "items": _VOLUME_MOUNT},
        "readinessProbe": _PROBE,
    },
    ("name",),
)
_VOLUME = _obj(
    {
        "name": {"type": "string", "pattern": DNS_LABEL, "maxLength": 63},
        "configMap": _obj({"name": _STR, "defaultMode": {"type": "integer"}}, ("name",)),
        "emptyDir": _obj({"medium": _STR, "sizeLimit": {"type": "string", "pattern": QUANTITY}}),
    },
    ("name",),
)
POD_SPEC = _obj(
    {
        "containers": {"type": "array", "items": CONTAINER, "minItems": 1},
        "volumes": {"type": "array", "items": _VOLUME},
        "nodeSelector": _STR_MAP,
    },
    ("containers",),
)
POD_TEMPLATE = _obj({"metadata": _TEMPLATE_METADATA, "spec": POD_SPEC})

COMPONENT = _obj(
    {
        "name": {"type": "string", "minLength": 1, "maxLength": 63, "pattern": COMPONENT_NAME},
        "type": {"enum": list(COMPONENT_TYPES)},
        "globalDynamoNamespace": {"type": "boolean"},
        "podTemplate": POD_TEMPLATE,
        "replicas": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
        "minAvailable": {"type": "integer", "minimum": 1},
        "multinode": _obj({"nodeCount": {"type": "integer", "minimum": 1}}, ("nodeCount",)),
        "sharedMemorySize": {"type": "string", "pattern": QUANTITY},
    },
    ("name",),
)

DYNAMO_GRAPH_DEPLOYMENT = _obj(
    {
        "apiVersion": {"const": DYNAMO_API_VERSION},
        "kind": {"const": "DynamoGraphDeployment"},
        "metadata": _METADATA,
        "spec": _obj(
            {
                "annotations": _STR_MAP,
                "labels": _STR_MAP,
                "components": {"type": "array", "items": COMPONENT, "maxItems": MAX_COMPONENTS},
                "env": {"type": "array", "items": _ENV_VAR},
                "backendFramework": {"enum": list(BACKEND_FRAMEWORKS)},
            }
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)

CONFIG_MAP = _obj(
    {"apiVersion": {"const": "v1"}, "kind": {"const": "ConfigMap"}, "metadata": _METADATA, "data": _STR_MAP},
    ("apiVersion", "kind", "metadata"),
)

_LABEL_SELECTOR = _obj({"matchLabels": _STR_MAP}, ("matchLabels",))
DEPLOYMENT = _obj(
    {
        "apiVersion": {"const": "apps/v1"},
        "kind": {"const": "Deployment"},
        "metadata": _METADATA,
        "spec": _obj(
            {
                "replicas": {"type": "integer", "minimum": 0},
                "selector": _LABEL_SELECTOR,
                "template": _obj({"metadata": _TEMPLATE_METADATA, "spec": POD_SPEC}, ("metadata", "spec")),
            },
            ("selector", "template"),
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)

SERVICE = _obj(
    {
        "apiVersion": {"const": "v1"},
        "kind": {"const": "Service"},
        "metadata": _METADATA,
        "spec": _obj(
            {
                "selector": _STR_MAP,
                "ports": {
                    "type": "array",
                    "minItems": 1,
                    "items": _obj(
                        {
                            "name": _STR,
                            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                            "targetPort": {"type": ["integer", "string"]},
                            "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
                        },
                        ("port",),
                    ),
                },
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
            },
            ("ports",),
        ),
    },
    ("apiVersion", "kind", "metadata", "spec"),
)

SCHEMAS = {
    (DYNAMO_API_VERSION, "DynamoGraphDeployment"): DYNAMO_GRAPH_DEPLOYMENT,
    ("v1", "ConfigMap"): CONFIG_MAP,
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("v1", "Service"): SERVICE,
}


def schema_for(doc: dict) -> dict:
    """The schema of a manifest document, by its apiVersion and kind."""
    return SCHEMAS[(doc.get("apiVersion"), doc.get("kind"))]


def unique_component_names(doc: dict) -> bool:
    """The CRD's CEL rule: component names unique case-insensitively."""
    names = [c["name"].lower() for c in doc["spec"].get("components", [])]
    return len(names) == len(set(names))
