"""Marked YAML documents: positions of keys and values, duplicates, syntax errors, odd input."""

from __future__ import annotations

from servopt.config.source import Mark, flags_document, parse_yaml, read_yaml_file

TEXT = """\
a:
  b: 1
  c: [10, 20]
  d:
    - x: 1
"""


def test_marks_of_keys_values_and_items():
    doc, problems = parse_yaml(TEXT, "t.yaml")
    assert problems == []
    assert doc.data == {"a": {"b": 1, "c": [10, 20], "d": [{"x": 1}]}}
    assert doc.key_marks[("a", "b")] == Mark(2, 3)
    assert doc.value_marks[("a", "b")] == Mark(2, 6)
    assert doc.value_marks[("a", "c", 1)] == Mark(3, 11)
    assert doc.key_marks[("a", "d", 0, "x")] == Mark(5, 7)
    # An unwritten path is placed at its nearest written ancestor.
    assert doc.mark(("a", "zz")) == doc.value_marks[("a",)]
    assert doc.mark(("a", "zz"), key=True) == doc.key_marks[("a",)]


def test_duplicate_keys_are_problems_but_merge_keys_are_not():
    doc, problems = parse_yaml("a: 1\nb: 2\na: 3\n", "t.yaml")
    assert doc.data == {"a": 3, "b": 2}
    assert [str(p) for p in problems] == ["t.yaml:3:1: a: key appears more than once in the same mapping"]
    doc, problems = parse_yaml("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  x: 5\n", "t.yaml")
    assert problems == [] and doc.data["use"] == {"x": 5, "y": 2}


def test_syntax_errors_carry_their_position():
    doc, problems = parse_yaml("a: 1\nb: [1, 2\nc: 3\n", "t.yaml")
    assert doc is None
    (problem,) = problems
    assert problem.line >= 2 and problem.field == "<yaml>" and "YAML syntax error" in problem.message
    doc, problems = parse_yaml("a: 1\n\tb: 2\n", "t.yaml")
    assert doc is None and problems[0].line == 2


def test_unsafe_tags_are_rejected():
    doc, problems = parse_yaml("a: !!python/object/apply:os.system ['true']\n", "t.yaml")
    assert doc is None and problems[0].line == 1


def test_recursive_aliases_do_not_hang():
    # A recursive alias expands forever: refused before construction (servopt.limits), at once.
    doc, problems = parse_yaml("a: &x [1, *x]\n", "t.yaml")
    assert doc is None and len(problems) == 1 and "expands to more than" in problems[0].message


def test_non_utf8_and_unreadable_files(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    doc, problems = read_yaml_file(path)
    assert doc is None and problems[0].line == 2 and "not UTF-8" in problems[0].message
    doc, problems = read_yaml_file(tmp_path / "missing.yaml")
    assert doc is None and "cannot read the file" in problems[0].message


def test_flag_documents_name_fields_by_flag():
    doc = flags_document({"agg": {"model_name": "x"}}, {"model_name": "--model"})
    problem = doc.problem(("agg", "model_name"), "unknown model", value="x")
    assert str(problem) == "--model: 'x': unknown model"
