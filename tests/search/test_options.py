from __future__ import annotations

import math

import numpy as np
import pytest

from servopt.errors import ServoptError
from servopt.search.conventions import Conventions
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions
from servopt.search.settings import SolverSettings


def test_worker_options_defaults_and_take():
    t = WorkerOptions.from_arrays(gpus=[1, 2], rate_per_s=[1.0, 2.0], tpot_ms=[5.0, 6.0])
    assert t.row.tolist() == [0, 1] and t.ttft_ms.tolist() == [0.0, 0.0] and t.pair_key.tolist() == [0, 0]
    sub = t.take(np.array([1]))
    assert len(sub) == 1 and sub.row.tolist() == [1] and sub.gpus.dtype == np.int64


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(gpus=[0], rate_per_s=[1.0]), r"decode.gpus\[0\]: 0: must be >= 1"),
        (dict(gpus=[1], rate_per_s=[math.nan]), r"decode.rate_per_s\[0\]"),
        (dict(gpus=[1], rate_per_s=[1.0], tpot_ms=[-1.0]), r"decode.tpot_ms\[0\]"),
        (dict(gpus=[1, 2], rate_per_s=[1.0]), r"decode.rate_per_s: \(1,\): must have the shape"),
        (dict(gpus=[1.5], rate_per_s=[1.0]), r"decode.gpus"),
    ],
)
def test_worker_options_errors(kw, match):
    with pytest.raises(ServoptError, match=match):
        WorkerOptions.from_arrays(name="decode", **kw)


def test_replica_spec():
    r = ReplicaSpec(num_gpu_per_replica=(16, 8, 8), max_gpu_per_replica=12)
    assert r.num_gpu_per_replica == (8, 16)
    assert r.size_limit(512) == 12 and r.size_limit(10) == 10
    assert np.flatnonzero(r.allowed_sizes_mask(12)).tolist() == [8]
    assert ReplicaSpec().allowed_sizes_mask(3).tolist() == [False, True, True, True]
    with pytest.raises(ServoptError, match="num_gpu_per_replica"):
        ReplicaSpec(num_gpu_per_replica=(0,))
    with pytest.raises(ServoptError, match="max_prefill_worker"):
        ReplicaSpec(max_prefill_worker=0)


def test_sla_conventions_settings():
    assert Sla().tpot_ms == math.inf
    with pytest.raises(ServoptError, match="ttft_ms"):
        Sla(ttft_ms=0)
    with pytest.raises(ServoptError, match="prefill_degradation"):
        Conventions(prefill_degradation=-1)
    with pytest.raises(ServoptError, match="solver params"):
        from ortools.sat.python import cp_model

        SolverSettings(params="no_such_field: 1").apply(cp_model.CpSolver().parameters)
