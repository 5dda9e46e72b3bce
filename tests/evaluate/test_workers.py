"""Worker-option tables: memory cut at the first failing batch, option rows, largest batch."""

from __future__ import annotations

import numpy as np
import pytest
from fake_db import FakeDatabase

from servopt.evaluate.candidates import ModelSetup, Workload, build_layout_ops
from servopt.evaluate.workers import _first_failure_cut, agg_workers, decode_workers, prefill_workers
from servopt.hardware import load_system
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model

SYSTEM = load_system("h200_sxm")


def _lops(model="QWEN3_32B", layouts=(Layout(1, 1, 1, 1, 1), Layout(2, 1, 1, 1, 1), Layout(8, 1, 1, 1, 1))):
    setup = ModelSetup(
        resolve_model(model), "trtllm", QuantModes("fp8_block", "fp8_block", "fp8", "float16"), SYSTEM
    )
    return build_layout_ops(setup, layouts)


def test_first_failure_cut_keeps_rows_before_the_first_failure_of_each_group():
    group = np.array([0, 0, 0, 0, 1, 1, 1])
    key = np.array([1, 2, 3, 4, 1, 2, 3])
    ok = np.array([True, False, True, True, True, True, True])
    assert list(_first_failure_cut(group, key, ok)) == [True, False, False, False, True, True, True]


def test_decode_table_stops_at_the_first_batch_that_does_not_fit():
    table = decode_workers(FakeDatabase(), _lops(), Workload(8000, 2000))
    largest = table.largest_batch()
    # More tensor parallelism leaves more room for the KV cache.
    assert largest[0] < largest[1] < largest[2]
    for lay, top in largest.items():
        rows = table.candidates.layout == lay
        assert table.fits[rows & (table.candidates.batch <= top)].all()
        assert not table.fits[rows & (table.candidates.batch > top)].any()
    opts = table.options
    assert len(opts) == int(table.fits.sum())
    assert np.all(table.fits[opts.row])
    assert np.all(opts.tpot_ms > 0) and np.all(opts.ttft_ms == 0) and np.all(opts.rate_per_s > 0)
    assert np.array_equal(opts.gpus, np.array([1, 2, 8])[table.candidates.layout[opts.row]])


def test_prefill_and_agg_tables():
    lops = _lops()
    pre = prefill_workers(FakeDatabase(), lops, Workload(4000, 1000))
    assert sorted(set(pre.candidates.batch)) == [1, 2, 3, 4]  # 16384 tokens // isl
    assert np.all(pre.options.ttft_ms > 0) and np.all(pre.options.tpot_ms == 0)
    agg = agg_workers(FakeDatabase(), lops, Workload(4000, 1000))
    opts = agg.options
    assert len(opts) > 0 and np.all(opts.ttft_ms > 0) and np.all(opts.tpot_ms > 0)
    assert np.all(agg.candidates.batch >= np.ceil(agg.candidates.ctx_tokens / 4000))


def test_layouts_the_model_cannot_take_are_skipped_with_a_reason():
    lops = _lops(layouts=(Layout(2, 1, 1, 1, 1), Layout(3, 1, 1, 1, 1)))
    assert lops.layouts == (Layout(2, 1, 1, 1, 1),)
    assert lops.skipped[0][0] == Layout(3, 1, 1, 1, 1) and "not divisible" in lops.skipped[0][1]


@pytest.mark.parametrize("accepted", [0.0, 0.85])
def test_speculative_decode_rates_scale_with_progress(accepted):
    lops = _lops(layouts=(Layout(2, 1, 1, 1, 1),))
    lops = build_layout_ops(lops.setup._replace(nextn=1), lops.layouts)
    base = decode_workers(FakeDatabase(), lops, Workload(2000, 500), [8])
    spec = decode_workers(FakeDatabase(), lops, Workload(2000, 500), [8], accepted_tokens=accepted)
    # Worker rates carry the peer's 3-decimal rounding.
    assert spec.options.rate_per_s[0] == pytest.approx(base.options.rate_per_s[0] * (1 + accepted), abs=1e-3)
    assert spec.options.tpot_ms[0] == pytest.approx(base.options.tpot_ms[0] / (1 + accepted))


def test_worker_table_entry_point():
    from servopt.evaluate.workers import worker_table

    setup = _lops().setup._replace(nextn=1)
    layouts = [Layout(2, 1, 1, 1, 1), Layout(3, 1, 1, 1, 1), Layout(8, 1, 1, 1, 1)]
    dec = worker_table(
        FakeDatabase(), setup, layouts, "decode", Workload(2000, 500), accept_rates=[0.5], max_batch_size=64
    )
    assert dec.layouts.layouts == (Layout(2, 1, 1, 1, 1), Layout(8, 1, 1, 1, 1))
    assert dec.candidates.batch.max() == 64
    pre = worker_table(FakeDatabase(), setup, layouts, "prefill", Workload(2000, 500), max_batch_size=1)
    assert set(pre.candidates.batch) == {1}
    agg = worker_table(FakeDatabase(), setup, layouts, "agg", Workload(2000, 500), max_batch_size=16)
    assert agg.candidates.batch.max() <= 16
    with pytest.raises(Exception, match="unknown worker role"):
        worker_table(FakeDatabase(), setup, layouts, "encode", Workload(2000, 500))


def test_disagg_worker_rates_are_rounded_as_the_peer_reads_them():
    from servopt.evaluate.workers import peer_worker_rate

    np.testing.assert_array_equal(peer_worker_rate([5.63961, 19.2304, 0.0005, 2.0]), [5.64, 19.23, 0.0, 2.0])
    lops = _lops(layouts=(Layout(2, 1, 1, 1, 1),))
    dec = decode_workers(FakeDatabase(), lops, Workload(2000, 500), [8, 16])
    rates = dec.options.rate_per_s
    np.testing.assert_array_equal(rates, np.round(dec.metrics.seq_per_s[dec.options.row], 3))
