"""Problem lines and ConfigError: file:line:col, field, value, did-you-mean, allowed, order."""

from __future__ import annotations

import pytest

from servopt.config.problems import NO_VALUE, ConfigError, Problem, field_name
from servopt.errors import ServoptError


def test_field_names():
    assert field_name(("exp", "config", "tp_list", 2)) == "exp.config.tp_list[2]"
    assert field_name(()) == "<file>"


def test_problem_line_format():
    p = Problem("e.yaml", 3, 5, "exp.system_name", "unknown system", "h200_sxn", ("h100_sxm", "h200_sxm"))
    assert str(p) == (
        "e.yaml:3:5: exp.system_name: 'h200_sxn': unknown system (did you mean h200_sxm, h100_sxm?) "
        "(allowed: h100_sxm, h200_sxm)"
    )
    assert str(Problem("e.yaml", 0, 0, "x", "gone")) == "e.yaml: x: gone"
    assert str(Problem("", 0, 0, "--isl", "must be >= 1", -1)) == "--isl: -1: must be >= 1"
    long = Problem(
        "e.yaml", 1, 1, "x", "bad", list(range(100)), tuple(str(i) for i in range(40)), suggest=False
    )
    assert "..." in str(long) and len(str(long)) < 260


def test_config_error_sorts_dedupes_and_exits_2():
    b = Problem("e.yaml", 9, 1, "b", "second")
    a = Problem("e.yaml", 2, 1, "a", "first", value=[1])
    err = ConfigError([b, a, a])
    assert isinstance(err, ServoptError) and err.exit_code == 2
    assert err.problems == (a, b)
    assert str(err) == "2 problems in the configuration:\ne.yaml:2:1: a: [1]: first\ne.yaml:9:1: b: second"
    assert str(ConfigError([a])) == "e.yaml:2:1: a: [1]: first"
    assert a.value is not NO_VALUE
    with pytest.raises(ValueError):
        ConfigError([])
