"""The schema models: strict types, partial patches, canonical lists, frozen experiments."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from servopt.config import load_experiments_text
from servopt.config.schema import (
    COMM_QUANTS,
    ConfigInput,
    ExperimentInput,
    ReplicaConfigPatch,
    WorkerConfig,
    WorkerConfigPatch,
)
from servopt.models.arch import MoeQuant


def test_partial_models_keep_the_constraints_and_optionality():
    assert set(WorkerConfigPatch.model_fields) == set(WorkerConfig.model_fields)
    assert WorkerConfigPatch().tp_list is None
    for bad in (
        {"tp_list": [0]},
        {"tp_list": []},
        {"tp_list": None},
        {"tp_list": ["1"]},
        {"gemm_quant_mode": "x"},
    ):
        with pytest.raises(ValidationError):
            WorkerConfigPatch.model_validate(bad)
    assert ReplicaConfigPatch.model_validate({"num_gpu_per_replica": None}).num_gpu_per_replica is None
    assert ConfigInput.model_validate({"worker_config": None}).worker_config is None


@pytest.mark.parametrize(
    ("key", "value"),
    [("total_gpus", True), ("total_gpus", 8.0), ("total_gpus", "8"), ("ttft", "1000"), ("enable_wide_ep", 1)],
)
def test_strict_types(key, value):
    base = {"mode": "patch", "serving_mode": "agg", "model_name": "m", "total_gpus": 8, "system_name": "s"}
    with pytest.raises(ValidationError):
        ExperimentInput.model_validate({**base, key: value})
    assert ExperimentInput.model_validate({**base, "ttft": 1000}).ttft == 1000.0  # an int is a number


def test_comm_quant_modes_are_the_peers():
    assert COMM_QUANTS == ("half", "int8", "fp8")
    assert "w4a16_mxfp4" in MoeQuant.__args__


def test_experiment_is_frozen_hashable_and_role_aware(fake_catalog):
    text = "e: {mode: patch, serving_mode: disagg, model_name: QWEN3_32B, total_gpus: 8, system_name: h200_sxm}\n"
    (e,) = load_experiments_text(text, catalog=fake_catalog)
    (again,) = load_experiments_text(text, catalog=fake_catalog)
    assert e == again and hash(e) == hash(again)
    with pytest.raises(ValidationError):
        e.total_gpus = 4
    assert e.roles == ("prefill", "decode")
    assert e.system("decode") == e.decode_system_name == "h200_sxm"
    with pytest.raises(KeyError):
        e.worker("agg")
