"""The public measurements shipped in the package: every source row, typed, nothing missing."""

from __future__ import annotations

import collections
import math

import pytest

from servopt.calibrate.public_csv import shipped_measurements
from servopt.calibrate.records import BACKENDS, BASES, LENGTHS, LOADS, SPECS
from servopt.calibrate.setups import SKIP_REASONS, Setup, Skip, fit_skip, to_setup

# The reference collection's public.csv has 1,304 data rows (lines 2..1305).
SOURCE_ROWS = 1304


@pytest.fixture(scope="module")
def records():
    return shipped_measurements()


def test_one_record_per_source_row_in_order(records):
    assert len(records) == SOURCE_ROWS
    assert [r.row for r in records] == list(range(2, SOURCE_ROWS + 2))


def test_required_fields_are_present(records):
    for r in records:
        assert r.source and r.model and r.gpu and r.framework and r.precision, r.row
        assert r.backend in BACKENDS and r.load in LOADS and r.spec in SPECS, r.row
        assert r.basis in BASES and r.lengths in LENGTHS, r.row


def test_no_nan_anywhere(records):
    for r in records:
        for name, value in vars(r).items():
            assert not (isinstance(value, float) and math.isnan(value)), (r.row, name)


def test_output_basis_is_never_the_input_plus_output_figure(records):
    # Where the source's per-GPU figure counts input tokens too, the output figure must be smaller.
    mixed = [r for r in records if r.basis == "input+output" and r.tok_s_per_gpu and r.output_tok_s_per_gpu]
    assert mixed
    assert all(r.output_tok_s_per_gpu < r.tok_s_per_gpu for r in mixed)


def test_closed_loop_rows_state_their_concurrency(records):
    closed = [r for r in records if r.load == "closed_loop"]
    assert closed and all(r.concurrency for r in closed)


def test_every_row_maps_or_says_why(records):
    outcomes = [to_setup(r) for r in records]
    reasons = collections.Counter(o.reason for o in outcomes if isinstance(o, Skip))
    assert set(reasons) <= set(SKIP_REASONS)
    mapped = [o for o in outcomes if isinstance(o, Setup)]
    assert len(mapped) + sum(reasons.values()) == SOURCE_ROWS
    assert mapped and all(o.load == o.record.load for o in mapped)
    # Every load but phase-only maps; the fit keeps the closed loops (fit_skip says why not the rest).
    assert {o.load for o in mapped} == {"closed_loop", "burst", "max_throughput", "open_loop"}
    # The fit keeps the agg closed loops; disaggregated setups are held out of it.
    assert all((fit_skip(o) is None) == (o.load == "closed_loop" and o.mode == "agg") for o in mapped)


def test_disagg_closed_loops_map_or_are_counted_skips(records):
    disagg = [r for r in records if r.disagg is not None and r.spec == "none" and r.load == "closed_loop"]
    outcomes = [to_setup(r) for r in disagg]
    mapped = [o for o in outcomes if isinstance(o, Setup)]
    skips = [o for o in outcomes if isinstance(o, Skip)]
    assert mapped and all(o.mode == "disagg" and o.load == "closed_loop" for o in mapped)
    assert all(o.gpus == o.record.num_gpus and o.concurrency == o.record.concurrency for o in mapped)
    assert all(
        s.reason == "layout not stated or not modelled" and s.detail.startswith("disagg") for s in skips
    )
    # Every other record with worker groups (MTP, LMSYS phase-only) keeps its own skip.
    others = [to_setup(r) for r in records if r.disagg is not None and r not in disagg]
    assert others and all(isinstance(o, Skip) for o in others)
