from servopt.report.terminal_plot import Series, render


def test_points_land_in_expected_corners():
    text = render([Series("agg", "*", [(0.0, 0.0), (100.0, 1000.0)])], width=20, height=5)
    rows = [line for line in text.splitlines() if "|" in line]
    # highest y is on the first grid row at the right edge; the origin is bottom-left
    assert rows[0].rstrip().endswith("*|")
    assert rows[-1].split("|")[1].startswith("*")


def test_later_series_wins_on_collision_and_legend_lists_all():
    text = render([Series("agg", "*", [(5, 5)]), Series("disagg", "x", [(5, 5)])], width=10, height=4)
    assert "x" in text.split("+")[0]
    assert "* agg" in text and "x disagg" in text


def test_empty_series_renders_axes():
    text = render([Series("agg", "*", [])])
    assert "tokens/s/user" in text and "tokens/s/gpu" in text
