"""Web input guards: registry-only models, no profile files, bounded YAML."""

from __future__ import annotations

import pytest

from servopt.errors import UnknownNameError
from servopt.limits import MAX_EXPANDED_NODES, expanded_size
from servopt.webapp.guard import (
    MAX_LIST_ITEMS,
    WebCatalog,
    web_model_names,
    yaml_problems,
)

ONE = (
    "  mode: patch\n  serving_mode: agg\n  model_name: QWEN3_32B\n  total_gpus: 8\n  system_name: h200_sxm\n"
)


def test_web_catalog_takes_names_aliases_and_hf_ids_case_insensitively():
    catalog = WebCatalog()
    assert catalog.resolve_model("QWEN3_32B").name == "QWEN3_32B"
    assert catalog.resolve_model("qwen3_32b").name == "QWEN3_32B"
    assert catalog.resolve_model("Qwen/Qwen3-32B").name == "QWEN3_32B"


@pytest.mark.parametrize("name", ["/etc/passwd", "./config.json", "~/x.json", "..", "QWEN3_33B", ""])
def test_web_catalog_refuses_paths_and_unknown_names(name):
    with pytest.raises(UnknownNameError) as err:
        WebCatalog().resolve_model(name)
    assert err.value.field == "model_name"
    assert "QWEN3_32B" in err.value.allowed


def test_web_model_names_are_sorted_and_unique():
    names = web_model_names()
    assert names == sorted(set(names)) and "DEEPSEEK_V3" in names


def test_a_plain_experiment_has_no_problems():
    assert yaml_problems(f"e:\n{ONE}", "x.yaml") == []


def test_syntax_errors_are_left_to_the_loader():
    assert yaml_problems("e: [unclosed\n", "x.yaml") == []


def test_expanded_size_counts_aliases_like_copies():
    import yaml

    root = yaml.compose("a: &a [1, 2, 3]\nb: [*a, *a]\n", Loader=yaml.SafeLoader)
    # mapping 1 + key a 1 + list 4 + key b 1 + outer list 1 + two copies of the list 8
    assert expanded_size(root) == 16


def test_recursive_alias_counts_as_too_big():
    import yaml

    root = yaml.compose("a: &a [1, *a]\n", Loader=yaml.SafeLoader)
    assert expanded_size(root) > MAX_EXPANDED_NODES


def test_long_list_is_refused_at_its_line():
    text = f"e:\n{ONE}  config:\n    replica_config:\n      num_gpu_per_replica: {list(range(1, MAX_LIST_ITEMS + 2))}\n"
    (problem,) = yaml_problems(text, "x.yaml")
    assert problem.field == "e.config.replica_config.num_gpu_per_replica"
    assert problem.line == 9


def test_profile_names_pass_and_paths_do_not():
    ok = f"e:\n{ONE}  profiles: [fp8, mtp1]\n"
    assert yaml_problems(ok, "x.yaml") == []
    bad = f"e:\n{ONE}  profiles: [fp8, my/profile, x.yml]\n"
    problems = yaml_problems(bad, "x.yaml")
    assert [p.field for p in problems] == ["e.profiles[1]", "e.profiles[2]"]
    assert all(p.line == 7 for p in problems)
