"""The experiment's optional ``workload:`` section: validated like the rest (file:line:col, unknown
keys named), resolved onto the Experiment, and written back by ``to_yaml`` so it loads again."""

from __future__ import annotations

import pytest

from servopt.config import ConfigError, load_experiments, load_experiments_text

BASE = """
sized:
  mode: patch
  serving_mode: {mode}
  model_name: QWEN3_32B
  total_gpus: 16
  system_name: h200_sxm
"""


def text(workload: str, mode: str = "agg") -> str:
    return (
        BASE.format(mode=mode) + "  workload:\n" + "".join(f"    {line}\n" for line in workload.splitlines())
    )


def one_problem(yaml_text: str, tmp_path) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as info:
        load_experiments(path)
    return str(info.value)


def test_a_workload_resolves_with_defaults(fake_catalog):
    (e,) = load_experiments_text(text("request_rate: 4\nttft_percentile: 90"), catalog=fake_catalog)
    w = e.workload
    assert (w.request_rate, w.concurrency, w.arrival, w.ttft_percentile, w.tpot_percentile) == (
        4.0,
        None,
        "poisson",
        90.0,
        99.0,
    )
    assert (w.num_requests, w.seed, w.objective) == (2000, 0, "min_gpus")


def test_no_workload_section_leaves_the_experiment_unchanged(fake_catalog):
    (e,) = load_experiments_text(BASE.format(mode="agg"), catalog=fake_catalog)
    assert e.workload is None and "workload" not in e.to_yaml()


@pytest.mark.parametrize("mode", ["agg", "disagg"])
@pytest.mark.parametrize(
    "workload",
    [
        "request_rate: 4.5\narrival: gamma\narrival_cv: 2.0\nseed: 3",
        "concurrency: 16\ntpot_percentile: 50",
        "request_rate: 2\ngpu_hour_price: {h200_sxm: 3.5, b200_sxm: 6}",
    ],
)
def test_to_yaml_writes_the_workload_back(workload, mode, fake_catalog):
    (e,) = load_experiments_text(text(workload, mode), catalog=fake_catalog)
    (again,) = load_experiments_text(e.to_yaml(), catalog=fake_catalog)
    assert again == e and again.workload == e.workload


@pytest.mark.parametrize(
    ("workload", "where", "field"),
    [
        ("request_rate: 4\nconcurency: 8", ":10:5:", "workload.concurency"),
        ("request_rate: 4\nttft_percentile: 100", ":10:22:", "workload.ttft_percentile"),
        ("request_rate: 4\ntpot_percentile: 0", ":10:22:", "workload.tpot_percentile"),
        ("request_rate: 0", ":9:19:", "workload.request_rate"),
        ("concurrency: 2.5", ":9:18:", "workload.concurrency"),
        ("request_rate: 4\narrival: bursty", ":10:14:", "workload.arrival"),
        ("request_rate: 4\nconcurrency: 8", ":9:5:", "request_rate or concurrency"),
        ("arrival: poisson", ":9:5:", "request_rate or concurrency"),
        ("concurrency: 8\nobjective: max_goodput_per_gpu", ":9:5:", "max_goodput_per_gpu"),
        ("request_rate: 4\ngpu_hour_price: {h200_sxm: 0}", ":10:", "workload.gpu_hour_price"),
    ],
)
def test_bad_workloads_are_located_and_named(workload, where, field, tmp_path):
    message = one_problem(text(workload), tmp_path)
    assert where in message and field in message, message
