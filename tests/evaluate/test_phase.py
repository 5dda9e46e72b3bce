"""The batched phase evaluator agrees with the naive per-row, per-op, per-step reference."""

from __future__ import annotations

import inspect
import random

import numpy as np
import pytest
from fake_db import FakeDatabase
from naive_model import decode_steps, phase_ms

from servopt.evaluate import phase as phase_module
from servopt.evaluate.candidates import Candidates, ModelSetup, Workload, build_layout_ops
from servopt.evaluate.phase import OP_FAMILIES, PhaseCoords, Select, evaluate_phase
from servopt.evaluate.static import context_phase, generation_phase
from servopt.hardware import load_system
from servopt.models.ops import Family, OpSpec, QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.perf_db.database import PerfDatabase

SYSTEM = load_system("h200_sxm")
QUANT = QuantModes("fp8_block", "fp8_block", "fp8", "float16")

LAYOUTS = {
    "QWEN3_32B": [Layout(1, 1, 1, 1, 1), Layout(2, 1, 1, 1, 1), Layout(4, 2, 1, 1, 1), Layout(8, 1, 1, 1, 1)],
    "QWEN3_30B_A3B": [
        Layout(1, 1, 1, 1, 1),
        Layout(2, 1, 1, 1, 2),
        Layout(1, 1, 4, 1, 4),
        Layout(2, 1, 2, 2, 2),
    ],
    "DEEPSEEK_V3": [
        Layout(8, 1, 1, 1, 8),
        Layout(1, 1, 8, 1, 8),
        Layout(4, 1, 2, 2, 4),
        Layout(2, 2, 1, 1, 2),
    ],
}


def _lops(model: str, backend: str, nextn: int = 0):
    setup = ModelSetup(resolve_model(model), backend, QUANT, SYSTEM, None, nextn)
    return build_layout_ops(setup, LAYOUTS[model], skip_invalid=False)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("model", list(LAYOUTS))
def test_context_and_generation_phases_match_naive(model, seed):
    rng = random.Random(seed)
    backend = rng.choice(["trtllm", "vllm", "sglang"])
    nextn = rng.choice([0, 0, 1, 2])
    # Half the cases restrict the MLA module table, so some layouts take the granular fallback.
    db = FakeDatabase(module_heads_covered=(16, 64) if seed % 2 else None)
    lops = _lops(model, backend, nextn)
    n = 7
    cand = Candidates(
        np.array([rng.randrange(len(lops.layouts)) for _ in range(n)]),
        np.array([rng.choice([1, 3, 8, 64, 200]) for _ in range(n)]),
        np.zeros(n, dtype=np.int64),
    )
    isl, osl, prefix = (*rng.choice([(100, 40), (512, 97), (2000, 33)]), rng.choice([0, 0, 17]))
    stride = rng.choice([1, 8, 32])
    work = Workload(isl, osl, prefix)
    ctx = context_phase(db, lops, cand, work)
    gen = generation_phase(db, lops, cand, work, stride)
    for r in range(n):
        ops = lops.ops[cand.layout[r]]
        b = int(cand.batch[r])
        per_op, total = phase_ms(db, ops.context, b, b * (isl - prefix), b, prefix, [(isl - prefix, 1.0)])
        assert ctx.total_ms[r] == pytest.approx(total, rel=1e-12)
        for name, value in per_op.items():
            assert ctx.per_op_ms[r, ctx.names.index(name)] == pytest.approx(value, rel=1e-12, abs=1e-15), name
        dec = b * (nextn + 1)
        per_op, total = phase_ms(db, ops.generation, dec, dec, dec, 0, decode_steps(isl, osl, stride))
        assert gen.total_ms[r] == pytest.approx(total, rel=1e-12)
        for name, value in per_op.items():
            assert gen.per_op_ms[r, gen.names.index(name)] == pytest.approx(value, rel=1e-12, abs=1e-15), name


CP_LAYOUTS = {
    "QWEN3_32B": [
        Layout(1, 1, 1, 1, 1, 2),
        Layout(1, 1, 1, 1, 1, 8),
        Layout(2, 1, 1, 1, 1),
        Layout(1, 2, 1, 1, 1, 4),
    ],
    "QWEN3_30B_A3B": [Layout(1, 1, 1, 1, 2, 2), Layout(1, 1, 1, 2, 2, 4), Layout(1, 1, 4, 1, 4)],
}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("model", list(CP_LAYOUTS))
def test_context_parallel_phases_match_naive(model, seed):
    """SGLang cp layouts next to plain ones: token-major context ops at ceil(x / cp), zigzag
    attention, the KV all-gather and the cp dispatch agree with the naive reference; decode is
    untouched by cp."""
    rng = random.Random(seed)
    db = FakeDatabase()
    setup = ModelSetup(resolve_model(model), "sglang", QUANT, SYSTEM, None, 0)
    lops = build_layout_ops(setup, CP_LAYOUTS[model], skip_invalid=False, role="prefill")
    n = 8
    cand = Candidates(
        np.array([i % len(lops.layouts) for i in range(n)]),
        np.array([rng.choice([1, 2, 3, 8]) for _ in range(n)]),
        np.zeros(n, dtype=np.int64),
    )
    isl, osl = rng.choice([(4001, 40), (511, 9), (32000, 3)])
    prefix = rng.choice([0, 17])
    work = Workload(isl, osl, prefix)
    ctx = context_phase(db, lops, cand, work)
    gen = generation_phase(db, lops, cand, work, 8)
    for r in range(n):
        ops = lops.ops[cand.layout[r]]
        b = int(cand.batch[r])
        per_op, total = phase_ms(db, ops.context, b, b * (isl - prefix), b, prefix, [(isl - prefix, 1.0)])
        assert ctx.total_ms[r] == pytest.approx(total, rel=1e-12)
        for name, value in per_op.items():
            assert ctx.per_op_ms[r, ctx.names.index(name)] == pytest.approx(value, rel=1e-12, abs=1e-15), name
        _, total = phase_ms(db, ops.generation, b, b, b, 0, decode_steps(isl, osl, 8))
        assert gen.total_ms[r] == pytest.approx(total, rel=1e-12)
    assert "context_cp_all_gather" in ctx.names


def test_one_database_call_per_family_per_phase():
    """All layouts and batch sizes of a phase share one query per (family, categorical key)."""
    db = FakeDatabase()
    lops = _lops("DEEPSEEK_V3", "trtllm")
    batches = np.arange(1, 65)
    cand = Candidates(np.repeat(np.arange(4), 64), np.tile(batches, 4), np.zeros(256, dtype=np.int64))
    generation_phase(db, lops, cand, Workload(1000, 500))
    # gemm: one call per quant (fp8_block, bf16); memory-bound ops share one call; the MoE
    # dispatch collectives are one all-reduce and one call per NCCL op.
    assert db.calls == {
        "mla_module": 1,
        "gemm": 2,
        "mem": 1,
        "moe": 1,
        "allreduce": 1,
        "nccl": 2,
        "p2p": 1,
    }


def test_zero_weight_rows_are_not_queried_and_cost_nothing():
    db = FakeDatabase()
    lops = _lops("QWEN3_32B", "trtllm")
    coords = PhaseCoords(
        np.array([0, 1]),
        np.array([0, 4]),
        np.array([0, 4]),
        np.array([0, 4]),
        np.zeros(2, dtype=np.int64),
        np.array([[0], [100]]),
        np.array([[0.0], [1.0]]),
    )
    out = evaluate_phase(db, lops.generation_ops, coords, Select.ALL)
    assert out.total_ms[0] == 0.0 and out.total_ms[1] > 0


def test_select_splits_attention_from_the_rest():
    db = FakeDatabase()
    lops = _lops("QWEN3_32B", "vllm")
    cand = Candidates(np.array([1]), np.array([4]), np.array([0]))
    coords = PhaseCoords(cand.layout, cand.batch, cand.batch * 500, cand.batch, np.zeros(1, dtype=np.int64),
                         np.array([[500]]), np.ones((1, 1)))  # fmt: skip
    whole = evaluate_phase(db, lops.context_ops, coords)
    attn = evaluate_phase(db, lops.context_ops, coords, Select.ONLY_ATTENTION)
    rest = evaluate_phase(db, lops.context_ops, coords, Select.SKIP_ATTENTION)
    assert attn.names == ["context_attention"]
    assert "context_attention" not in rest.names
    assert attn.total_ms[0] + rest.total_ms[0] == pytest.approx(whole.total_ms[0], rel=1e-12)


def test_a_miss_makes_only_its_row_nan():
    class Holey(FakeDatabase):
        def gemm_ms(self, quant, m, n, k, **kw):
            out = super().gemm_ms(quant, m, n, k, **kw)
            return np.where(np.asarray(m) > 500, np.nan, out)

    lops = _lops("QWEN3_32B", "trtllm")
    cand = Candidates(np.array([0, 0]), np.array([1, 512]), np.zeros(2, dtype=np.int64))
    out = generation_phase(Holey(), lops, cand, Workload(100, 10))
    assert np.isfinite(out.total_ms[0]) and np.isnan(out.total_ms[1])


def test_overlap_blocks_belong_to_each_layout():
    """One op name can overlap in one layout's graph and not in another's: each row composes with
    its own layout's blocks, whatever the other layouts priced beside it."""
    from dataclasses import replace

    from servopt.models.ops import Family, OpSpec, Overlap

    a = OpSpec("generation_moe", Family.ELEMENTWISE, 1.0, bytes_per_token=2e6)
    b = OpSpec("generation_shared", Family.ELEMENTWISE, 1.0, bytes_per_token=1e6)
    overlapped = (replace(a, overlap=Overlap.GROUP_A), replace(b, overlap=Overlap.GROUP_B))
    plain = (a, b)
    coords = PhaseCoords(
        np.array([0, 1]), np.array([1, 1]), np.array([8, 8]), np.array([8, 8]), np.zeros(2, dtype=np.int64),
        np.array([[1], [1]]), np.ones((2, 1)),
    )  # fmt: skip
    db = FakeDatabase()
    both = evaluate_phase(db, [overlapped, plain], coords)
    for order in ([overlapped, plain], [plain, overlapped]):
        out = evaluate_phase(db, order, coords)
        per_op = out.per_op_ms
        np.testing.assert_allclose(out.total_ms, both.total_ms[[order.index(overlapped), order.index(plain)]])
    assert both.total_ms[0] == pytest.approx(both.per_op_ms[0].max())
    assert both.total_ms[1] == pytest.approx(both.per_op_ms[1].sum())
    assert per_op.shape == (2, 2)


class _Named:
    """Stands for a database: any attribute is its own name (which method a query reads)."""

    def __getattr__(self, name: str) -> str:
        return name


@pytest.mark.parametrize("family", list(Family), ids=lambda f: f.name)
def test_every_op_family_has_one_pricing_row_that_names_real_arguments(family):
    """One table prices every family: its query is a PerfDatabase method (and the fake's), that
    takes the row's categorical parts, constants and columns positionally and its flags by name;
    every argument the row names is an OpSpec field or a phase coordinate."""
    spec = OP_FAMILIES[family]
    if spec.points is not None:
        assert spec.query is None and not spec.columns  # priced through other families' rows
        return
    method = spec.query(_Named())
    assert hasattr(PerfDatabase, method), method
    # The fake stands in for the families its tests price (not the large-EP ones).
    for db_class in (PerfDatabase, FakeDatabase) if hasattr(FakeDatabase, method) else (PerfDatabase,):
        params = [
            p for p in inspect.signature(getattr(db_class, method)).parameters.values() if p.name != "self"
        ]
        positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert len(spec.categorical) + len(spec.constants) + len(spec.columns) <= len(positional), method
        names = {p.name for p in params}
        assert set(spec.flags) <= names, (method, db_class)
        assert ("missing" in names) == spec.nan, (method, db_class)
    fields = set(OpSpec.__dataclass_fields__)
    derived = set(phase_module._DERIVED) | {phase_module.SEQ}
    for name in (*spec.categorical, *spec.flags, *spec.columns):
        assert name in fields or name in derived, name
