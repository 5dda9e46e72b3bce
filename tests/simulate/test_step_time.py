"""Step-time tables: interpolated values against direct evaluation by the latency model off the grid."""

import numpy as np
import pytest

from servopt.evaluate.candidates import build_layout_ops
from servopt.evaluate.phase import PhaseCoords, Select, evaluate_phase
from servopt.models.parallel import Layout
from servopt.simulate.step_time import batch_axis, build_step_tables, token_axis
from servopt_kernels.sim import interp1, interp2


def direct(db, ops, batch, x, prefix, seq, select):
    # One logits row per request, as a prefill or decode pass computes.
    n = len(batch)
    coords = PhaseCoords(
        np.zeros(n, np.int64),
        np.asarray(batch, np.int64),
        np.asarray(x, np.int64),
        np.asarray(batch if select is not Select.SKIP_ATTENTION else np.ones(n), np.int64),
        np.asarray(prefix, np.int64),
        np.asarray(seq, np.int64)[:, None],
        np.ones((n, 1)),
    )
    return evaluate_phase(db, ops, coords, select).total_ms


def check(got, want):
    # The measured grids have kinks (GEMM tiles, attention kernels) between our grid points: the
    # typical error is small, the worst stays within a few percent.
    err = np.abs(got / want - 1)
    assert np.median(err) < 0.01
    assert err.max() < 0.04


@pytest.mark.parametrize(("model", "backend", "layout"), [("QWEN3_32B", "trtllm", Layout(2, 1, 1, 1, 1))])
def test_interpolation_tracks_direct_evaluation(setup_of, model, backend, layout):
    db, setup = setup_of(model, backend)
    lops = build_layout_ops(setup, [layout], skip_invalid=False, db=db)
    t = build_step_tables(
        db,
        lops,
        max_batch=512,
        max_tokens=8192,
        max_context=6000,
        prompt_lengths=np.array([4000]),
        role="agg",
    )
    rng = np.random.default_rng(0)
    # Decode passes at off-grid (requests, KV length).
    d = rng.integers(65, 512, 40)
    kv = rng.integers(100, 6000, 40)
    want = direct(db, lops.generation_ops, d, d, np.zeros(40), kv, Select.ALL)
    got = np.array(
        [
            interp2(t.dec_axis, len(t.dec_axis), t.kv_axis, len(t.kv_axis), t.gen_full_ms, a, b)
            for a, b in zip(d, kv, strict=True)
        ]
    )
    check(got, want)
    # Prefill chunks at off-grid (new tokens, prefix).
    n = rng.integers(65, 8192, 40)
    q = rng.integers(0, 5000, 40)
    want = direct(db, lops.context_ops, np.ones(40), n, q, n, Select.ALL)
    got = np.array(
        [
            interp2(t.new_axis, len(t.new_axis), t.pre_axis, len(t.pre_axis), t.ctx_full_ms, a, b)
            for a, b in zip(n, q, strict=True)
        ]
    )
    check(got, want)
    # Non-attention ops at off-grid token counts.
    x = rng.integers(65, 8192, 40)
    want = direct(db, lops.context_ops, np.ones(40), x, np.zeros(40), x, Select.SKIP_ATTENTION)
    got = np.array([interp1(t.tok_axis, t.tok_ms, len(t.tok_axis), float(v)) for v in x])
    check(got, want)


def test_axes_are_exact_where_the_workload_is():
    assert list(batch_axis(10)) == list(range(1, 11))
    ax = batch_axis(1000)
    assert ax[0] == 1 and ax[-1] == 1000 and np.all(np.diff(ax) > 0)
    tok = token_axis(8192, np.array([4000.0, 1234.0]))
    assert {4000.0, 1234.0, 8192.0} <= set(tok)
