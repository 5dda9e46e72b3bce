"""The offline HTML Pareto chart: scales with the window, axes end just past the data, TPOT target drawn."""

import re

import pytest

from servopt.report.document import result_document
from servopt.report.html_plot import axis_max, pareto_html, series_label


@pytest.mark.parametrize(("value", "top"), [(1130.0, 1250.0), (98.0, 100.0), (0.37, 0.4), (2001.0, 2500.0)])
def test_axis_ends_just_past_the_data(value, top):
    got, step = axis_max(value)
    assert got == pytest.approx(top) and got >= value
    assert got - step < value  # one step less would cut the data


def test_chart_is_responsive_with_target_line_and_mode_names(qwen8_result):
    doc = result_document(qwen8_result[1])
    page = pareto_html(doc)
    assert re.search(r'<svg id="chart" viewBox="0 0 \d+ \d+"', page) and 'width="860"' not in page
    assert 'name="viewport"' in page
    tpot = doc["experiments"][0]["tpot_ms"]
    assert f"TPOT target {tpot:g} ms" in page and 'class="target"' in page
    assert ">aggregated<" in page and ">disaggregated<" in page and "agg (agg)" not in page
    y_ticks = [float(t) for t in re.findall(r'text-anchor="end">([0-9.]+)<', page)]
    y_data = max(p["tokens_per_s_per_gpu"] for p in doc["pareto"])
    assert y_data <= max(y_ticks) < 1.5 * y_data


def test_series_labels():
    assert series_label("agg", "agg") == "aggregated"
    assert series_label("exp_tp8", "disagg") == "exp_tp8 (disaggregated)"
