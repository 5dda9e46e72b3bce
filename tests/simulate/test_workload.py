"""Loads and lengths: seeded, bounded, and bad files named by file:line."""

import numpy as np
import pytest

from servopt.errors import ServoptError
from servopt.simulate.workload import Lengths, Load, make_requests, read_histogram, read_trace


def test_same_seed_same_requests_and_rate_is_right():
    a = make_requests(Load(request_rate=20.0), Lengths(1000, 200, 0.5, 0.5), 20_000, seed=5)
    b = make_requests(Load(request_rate=20.0), Lengths(1000, 200, 0.5, 0.5), 20_000, seed=5)
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    assert np.mean(np.diff(a.arrival_ms)) == pytest.approx(50.0, rel=0.02)
    assert a.isl.min() >= 500 and a.isl.max() <= 1500 and a.osl.max() <= 300


def test_gamma_arrivals_have_the_asked_burstiness():
    r = make_requests(Load(request_rate=10.0, arrival="gamma", arrival_cv=3.0), Lengths(10, 10), 50_000, 1)
    gaps = np.diff(r.arrival_ms)
    assert gaps.std() / gaps.mean() == pytest.approx(3.0, rel=0.05)
    constant = make_requests(Load(request_rate=10.0, arrival="constant"), Lengths(10, 10), 100, 1)
    assert np.allclose(np.diff(constant.arrival_ms), 100.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"request_rate": 0.0},
        {"request_rate": float("nan")},
        {"request_rate": float("inf")},
        {"concurrency": 0},
        {"concurrency": 4, "request_rate": 1.0},
        {},
        {"request_rate": 1.0, "arrival": "bursty"},
    ],
)
def test_bad_loads_are_refused(kwargs):
    with pytest.raises(ServoptError):
        Load(**kwargs)


def test_trace_is_read_and_bad_lines_are_named(tmp_path):
    good = tmp_path / "t.jsonl"
    good.write_text(
        '{"timestamp": 1000, "input_length": 10, "output_length": 5, "hash_ids": [1]}\n'
        '{"timestamp": 1500, "input_length": 20, "output_length": 7}\n'
    )
    r = read_trace(good)
    assert list(r.arrival_ms) == [0.0, 500.0] and list(r.isl) == [10, 20] and list(r.osl) == [5, 7]
    cases = {
        '{"timestamp": 0, "input_length": 10}': ":1: output_length",
        '{"timestamp": 0, "input_length": -1, "output_length": 1}': ":1: input_length",
        "not json": ":1: json",
        '{"timestamp": 5, "input_length": 1, "output_length": 1}\n{"timestamp": 1, "input_length": 1, "output_length": 1}': ":2: timestamp",
        '{"timestamp": NaN, "input_length": 1, "output_length": 1}': ":1: timestamp",
    }
    for text, where in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(text + "\n")
        with pytest.raises(ServoptError) as err:
            read_trace(bad)
        assert f"{bad}{where}" in str(err.value)
    with pytest.raises(ServoptError, match="no such file"):
        read_trace(tmp_path / "missing.jsonl")


def test_lengths_histogram(tmp_path):
    f = tmp_path / "lengths.csv"
    f.write_text("input_length,output_length,weight\n100,10,1\n200,20,3\n")
    rows = read_histogram(f)
    r = make_requests(Load(concurrency=1), Lengths(1, 1, histogram=rows), 40_000, 2)
    assert set(r.isl) == {100, 200}
    assert np.mean(r.isl == 200) == pytest.approx(0.75, abs=0.01)
    f.write_text("100,x\n")
    with pytest.raises(ServoptError, match=r"lengths.csv:1: value"):
        read_histogram(f)
