"""The float re-check rejects every kind of broken deployment."""

from __future__ import annotations

import dataclasses

import pytest

from servopt.search.conventions import DEFAULT_CONVENTIONS
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions
from servopt.search.solve import solve_agg, solve_disagg
from servopt.search.verify import VerificationError, verify_deployment

PREFILL = WorkerOptions.from_arrays(
    gpus=[2, 4], rate_per_s=[4.0, 9.0], ttft_ms=[200.0, 500.0], pair_key=[1, 2]
)
DECODE = WorkerOptions.from_arrays(gpus=[4, 2], rate_per_s=[3.0, 1.0], tpot_ms=[20.0, 10.0], pair_key=[1, 2])
REPLICA = ReplicaSpec(num_gpu_per_replica=(6, 8, 10, 12, 14, 16), max_prefill_worker=3, max_decode_worker=3)
SLA = Sla(600, 25)


def _disagg():
    return solve_disagg(
        PREFILL, DECODE, sla=SLA, total_gpus=40, tokens_per_request=10, replica=REPLICA
    ).identical


def _check(dep, sla=SLA):
    verify_deployment(
        dep,
        sla=sla,
        max_types=2,
        prefill=PREFILL,
        decode=DECODE,
        replica=REPLICA,
        conventions=DEFAULT_CONVENTIONS,
    )


def _with_group(dep, **changes):
    return dataclasses.replace(dep, groups=(dataclasses.replace(dep.groups[0], **changes),))


def test_solver_output_passes():
    _check(_disagg())


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (dict(prefill_workers=4), "worker counts"),
        (dict(decode_option=1), "may not pair"),
        (dict(gpus=7), "replica size"),
        (dict(rate_per_s=100.0), "replica rate"),
        (dict(count=100), "uses"),
        (dict(count=0), "no replicas"),
    ],
)
def test_broken_groups_fail(changes, match):
    # As a packed deployment, so the identical "fills the budget" rule does not fire first.
    with pytest.raises(VerificationError, match=match):
        _check(dataclasses.replace(_with_group(_disagg(), **changes), kind="packed"))


def test_sla_budget_and_objective_are_rechecked():
    dep = _disagg()
    with pytest.raises(VerificationError, match="TTFT"):
        _check(dep, sla=Sla(100, 25))
    with pytest.raises(VerificationError, match="TPOT"):
        _check(dep, sla=Sla(600, 5))
    with pytest.raises(VerificationError, match="integer objective"):
        _check(dataclasses.replace(dep, value_units=dep.value_units * 2))
    with pytest.raises(VerificationError, match="fill the budget"):
        _check(_with_group(dep, count=dep.groups[0].count - 1))


def test_agg_recheck():
    agg = WorkerOptions.from_arrays(gpus=[2], rate_per_s=[1.0], ttft_ms=[100.0], tpot_ms=[10.0])
    dep = solve_agg(agg, sla=Sla(), total_gpus=8, tokens_per_request=1).identical
    verify_deployment(dep, sla=Sla(), max_types=1, agg=agg)
    with pytest.raises(VerificationError, match="SLA"):
        verify_deployment(dep, sla=Sla(50, 10), max_types=1, agg=agg)
    with pytest.raises(VerificationError, match="table"):
        verify_deployment(_with_group(dep, gpus=1, count=8), sla=Sla(), max_types=1, agg=agg)
