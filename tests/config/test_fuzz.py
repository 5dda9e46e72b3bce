"""Fuzz: malformed experiment files never crash the loader and always say where and what.

Every example starts from the seed's example (both experiments) and breaks it one way: a missing
required key, a wrong type, an unknown key, an unknown name, an empty or inconsistent list, a
negative number, a budget below the smallest worker, a duplicate key, bad YAML. The loader must
raise ConfigError (exit code 2, nothing else), and its message must carry ``file:line:col:`` and
the broken field's name.
"""

from __future__ import annotations

import copy
import re
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servopt.config import ConfigError, load_experiments
from servopt.config.problems import field_name
from servopt.config.profiles import shipped_profiles
from servopt.config.schema import BACKENDS, SECTIONS_BY_MODE

from .conftest import EXPERIMENTS, FakeCatalog

SEED = yaml.safe_load((EXPERIMENTS / "example.yaml").read_text())
REQUIRED = ("mode", "serving_mode", "model_name", "total_gpus", "system_name")
# Keys whose explicit null is meaningful (so null is not a wrong type for them).
NULLABLE = {"decode_system_name", "backend_version", "profiles", "config", "num_gpu_per_replica"}
QUANT_KEYS = ("gemm_quant_mode", "moe_quant_mode", "kvcache_quant_mode", "fmha_quant_mode", "comm_quant_mode")
# Entries of int lists / rates that are not numbers.
_BAD_ELEMENTS = ["x", True, 1.5, None, [1]]

CATALOG = FakeCatalog()
_TMP = Path(tempfile.mkdtemp(prefix="servopt_fuzz_"))
PATH = _TMP / "fuzz.yaml"

Path_ = tuple[str | int, ...]


def _leaves(node: Any, path: Path_) -> list[tuple[Path_, Any]]:
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_leaves(v, (*path, k)))
    else:
        out.append((path, node))
    return out


def _containers(node: Any, path: Path_) -> list[Path_]:
    out = [path] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_containers(v, (*path, k)))
    return out


def _set(doc: dict, path: Path_, value: Any) -> None:
    node = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _get(doc: dict, path: Path_) -> Any:
    node = doc
    for part in path:
        node = node[part]
    return node


def _wrong_values(key: str, value: Any) -> list[Any]:
    """Values of a type the key does not accept."""
    if isinstance(value, bool):
        out = [1, "yes", "true", [True]]
    elif isinstance(value, int):
        out = ["eight", "8", [8], {"a": 1}, True, 8.5, 8.0]
    elif isinstance(value, float):
        out = ["fast", [1.0], {"a": 1}, True, "1.0"]
    elif isinstance(value, str):
        out = [8, 1.5, ["x"], {"a": "b"}, True]
    elif isinstance(value, list):
        out = ["1,2", 4, {"a": 1}]
    else:
        out = [["a"], "text", 7]
    if key not in NULLABLE and not isinstance(value, dict):
        out.append(None)
    return out


def _unknown(valid: set[str]):
    alphabet = string.ascii_letters + string.digits + "_-."
    return st.text(alphabet=alphabet, min_size=1, max_size=16).filter(
        lambda s: (
            s not in valid
            and s.lower() not in {v.lower() for v in valid}
            and not s.endswith((".yaml", ".yml"))
        )
    )


KINDS = (
    "missing",
    "wrong_type",
    "wrong_element",
    "unknown_key",
    "unknown_name",
    "empty_list",
    "negative",
    "no_layout",
    "nextn",
    "budget",
    "wrong_mode_section",
    "replace_incomplete",
    "replica_sizes",
)
# Kinds with few distinct defects (missing, budget, ...) stop early when exhausted; the five open
# ones run 150 each, so this file checks about 1,200 malformed files in all.
EXAMPLES_PER_KIND = 150


@st.composite
def mutation(draw, doc: dict, exp: str, kind: str | None = None) -> tuple[str, Path_]:
    """Break ``doc[exp]`` one way (``kind``, else a drawn one); return (kind, field path to name)."""
    body = doc[exp]
    serving = SEED[exp]["serving_mode"]  # the body's own may already be broken
    kind = kind or draw(st.sampled_from(KINDS))
    leaves = [(p, v) for p, v in _leaves(body, ()) if p[-1] != "mode" or len(p) == 1]
    if kind == "missing":
        key = draw(st.sampled_from([k for k in REQUIRED if k in body]))
        del body[key]
        return kind, (exp, key)
    if kind == "wrong_type":
        path, value = draw(st.sampled_from(leaves + [(p, _get(body, p)) for p in _containers(body, ()) if p]))
        _set(body, path, draw(st.sampled_from(_wrong_values(str(path[-1]), value))))
        return kind, (exp, *path)
    if kind == "wrong_element":
        lists = [(p, v) for p, v in leaves if isinstance(v, list) and v]
        path, value = draw(st.sampled_from(lists))
        i = draw(st.integers(0, len(value) - 1))
        bad = [b for b in _BAD_ELEMENTS if not (isinstance(b, float) and path[-1] == "nextn_accept_rates")]
        if path[-1] == "profiles":
            bad = [1, True, None, [1]]
        value[i] = draw(st.sampled_from(bad))
        return kind, (exp, *path, i)
    if kind == "unknown_key":
        parent = draw(st.sampled_from(_containers(body, ())))
        allowed = set(_get(body, parent)) | {"exps"}
        from servopt.config.schema import ExperimentInput
        from servopt.config.validation import model_at

        model = model_at(ExperimentInput, parent)
        allowed |= set(model.model_fields) if model is not None else set()
        key = draw(st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True).filter(lambda k: k not in allowed))
        _get(body, parent)[key] = draw(st.sampled_from([1, "x", [1], {"a": 1}, None]))
        return kind, (exp, *parent, key)
    if kind == "unknown_name":
        choices = ["model_name", "system_name", "backend_name", "backend_version", "profiles", "quant"]
        if serving == "disagg":
            choices.append("decode_system_name")
        what = draw(st.sampled_from(choices))
        if what == "model_name":
            body[what] = draw(_unknown(set(CATALOG.models)))
        elif what in ("system_name", "decode_system_name"):
            body[what] = draw(_unknown(set(CATALOG.dtypes)))
        elif what == "backend_name":
            body[what] = draw(_unknown(set(BACKENDS)))
        elif what == "backend_version":
            body[what] = draw(_unknown({"1.3.0rc20", "1.3.0rc23", "current", "next"}))
        elif what == "profiles":
            body["profiles"] = [draw(_unknown(set(shipped_profiles())).filter(lambda s: "/" not in s))]
            return kind, (exp, "profiles", 0)
        else:
            section = draw(
                st.sampled_from([s for s in SECTIONS_BY_MODE[serving] if s.endswith("worker_config")])
            )
            key = draw(st.sampled_from(QUANT_KEYS))
            value = draw(
                _unknown(
                    {
                        "float16",
                        "bfloat16",
                        "bf16",
                        "fp8",
                        "fp8_block",
                        "fp8_static",
                        "int8_wo",
                        "int4_wo",
                        "nvfp4",
                        "w4afp8",
                        "w4a16_mxfp4",
                        "w4a8_mxfp4_mxfp8",
                        "int8",
                        "half",
                    }
                )
            )
            body["config"][section][key] = value
            return kind, (exp, "config", section, key)
        return kind, (exp, what)
    if kind == "empty_list":
        path, _ = draw(
            st.sampled_from([(p, v) for p, v in leaves if isinstance(v, list) and p[-1] != "profiles"])
        )
        _set(body, path, [])
        return kind, (exp, *path)
    if kind == "negative":
        numeric = [(p, v) for p, v in leaves if isinstance(v, int | float) and not isinstance(v, bool)]
        path, value = draw(st.sampled_from(numeric))
        magnitude = draw(st.integers(1, 10**6))
        _set(body, path, -magnitude if isinstance(value, int) else -magnitude / 7.0)
        return kind, (exp, *path)
    if kind == "no_layout":
        section = draw(st.sampled_from([s for s in SECTIONS_BY_MODE[serving] if s.endswith("worker_config")]))
        key, value = draw(
            st.sampled_from(
                [
                    ("num_gpu_per_worker", [3]),
                    ("num_gpu_per_worker", [3, 5, 7]),
                    ("moe_ep_list", [3]),
                    ("pp_list", [3]),
                ]
            )
        )
        body["config"][section][key] = value
        if key == "pp_list":
            body["config"][section]["num_gpu_per_worker"] = [1, 2]
        return kind, (exp, "config", section)
    if kind == "nextn":
        n = draw(st.integers(2, 5))
        body["config"]["nextn"] = n
        body["config"]["nextn_accept_rates"] = [0.5] * draw(st.integers(1, n - 1))
        return kind, (exp, "config", "nextn")
    if kind == "budget":
        body["total_gpus"] = draw(st.integers(1, 3 if serving == "agg" else 7))
        return kind, (exp, "total_gpus")
    if kind == "wrong_mode_section":
        other = "disagg" if serving == "agg" else "agg"
        section = draw(st.sampled_from(SECTIONS_BY_MODE[other]))
        body["config"][section] = {}
        return kind, (exp, "config", section)
    if kind == "replace_incomplete":
        body["mode"] = "replace"
        section = draw(st.sampled_from([k for k, v in body["config"].items() if isinstance(v, dict)]))
        key = draw(st.sampled_from(sorted(body["config"][section])))
        del body["config"][section][key]
        return kind, (exp, "config", section)
    # replica_sizes: no x*prefill + y*decode size fits (disagg), or replica_config on agg.
    if serving == "agg":
        body["config"]["replica_config"] = {"num_gpu_per_replica": [2]}
        return kind, (exp, "config", "replica_config")
    body["config"]["replica_config"]["num_gpu_per_replica"] = draw(
        st.sampled_from([[2, 3], [5], [9, 10, 11]])
    )
    return kind, (exp, "config", "replica_config", "num_gpu_per_replica")


def _dump(doc: dict) -> str:
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


def _assert_reported(text_or_doc: str | dict, expect: list[str], *, yaml_syntax: bool = False) -> None:
    PATH.write_text(text_or_doc if isinstance(text_or_doc, str) else _dump(text_or_doc))
    with pytest.raises(ConfigError) as info:
        load_experiments(PATH, catalog=CATALOG)
    err = info.value
    assert err.exit_code == 2
    message = str(err)
    assert re.search(re.escape(str(PATH)) + r":\d+:\d+: ", message), message
    if yaml_syntax:
        assert "<yaml>" in message, message
    for field in expect:
        assert field in message, f"{field!r} not named in:\n{message}"


@pytest.mark.parametrize("kind", KINDS)
@settings(
    max_examples=EXAMPLES_PER_KIND,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_one_defect_is_reported_with_its_field(kind, data):
    doc = copy.deepcopy(SEED)
    exp = data.draw(st.sampled_from(list(doc)))
    _, path = data.draw(mutation(doc, exp, kind))
    _assert_reported(doc, [field_name(path)])


_TEXT_DEFECTS = [
    "\tbroken: 1",  # a tab cannot start a token
    "  oops: [1, 2",  # unclosed flow sequence
    "  - stray item",  # a sequence entry inside a mapping
    "key: value: other",  # nested mapping on one line
    "  bad: {a: 1",  # unclosed flow mapping
]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(line=st.integers(0, 200), defect=st.sampled_from(_TEXT_DEFECTS))
def test_bad_yaml_is_reported_with_its_line(line, defect):
    lines = _dump(SEED).splitlines()
    lines.insert(min(line, len(lines)), defect)
    _assert_reported("\n".join(lines) + "\n", [], yaml_syntax=True)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(data=st.data())
def test_duplicate_keys_are_reported(data):
    lines = _dump(SEED).splitlines()
    # Scalar "key: value" lines of an experiment (two-space indent) can be repeated verbatim.
    candidates = [i for i, t in enumerate(lines) if re.fullmatch(r"  [a-z_]+: [^\[{]+", t)]
    i = data.draw(st.sampled_from(candidates))
    exp = next(lines[j][:-1] for j in range(i, -1, -1) if not lines[j].startswith(" "))
    key = lines[i].split(":")[0].strip()
    lines.insert(i + 1, lines[i])
    _assert_reported("\n".join(lines) + "\n", [f"{exp}.{key}", "more than once"])


# Defects the loader reports independently of each other: several in one file all come out at once.
_INDEPENDENT = ["missing", "wrong_type", "wrong_element", "unknown_key", "negative"]


@settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.filter_too_much]
)
@given(data=st.data())
def test_all_problems_of_a_file_come_out_together(data):
    doc = copy.deepcopy(SEED)
    paths: list[Path_] = []
    for _ in range(data.draw(st.integers(2, 4))):
        trial = copy.deepcopy(doc)
        exp = data.draw(st.sampled_from(list(trial)))
        kind, path = data.draw(mutation(trial, exp))
        if kind not in _INDEPENDENT or any(p[: len(path)] == path or path[: len(p)] == p for p in paths):
            continue
        if path[1:2] in {("mode",), ("serving_mode",)}:
            continue  # these decide which other checks apply
        doc, paths = trial, [*paths, path]
    if paths:
        _assert_reported(doc, [field_name(p) for p in paths])
