"""YAML documents that remember where every key and value came from.

``yaml.safe_load`` forgets positions; configuration errors must say ``file:line:col``. One SafeLoader
pass constructs the plain data and, on the side, the start mark of every mapping key, mapping value
and sequence item. Duplicate keys (which ``safe_load`` silently resolves to the last one) become
problems. Documents built from command-line flags have no positions and name fields by their flag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from servopt import limits
from servopt.config.problems import NO_VALUE, Problem, field_name

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Mark:
    line: int  # 1-based
    col: int  # 1-based


def _mark(m: yaml.Mark) -> Mark:
    return Mark(m.line + 1, m.column + 1)


# libyaml's parser when present (10x faster); the constructor, and so the safety, is SafeLoader's.
_SafeBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _MarkingLoader(_SafeBase):
    """SafeLoader that records marks per constructed container (by object identity)."""

    def __init__(self, stream: str):
        super().__init__(stream)
        self.map_marks: dict[int, dict[Any, tuple[Mark, Mark]]] = {}
        self.seq_marks: dict[int, list[Mark]] = {}
        self.duplicates: list[tuple[Any, Mark]] = []
        self._keep: list[Any] = []  # keeps containers alive so their ids stay unique

    def construct_yaml_map(self, node: yaml.MappingNode):
        data: dict[Any, Any] = {}
        yield data
        self._keep.append(data)
        # Keys repeated within the node itself are user mistakes; keys repeated through a "<<"
        # merge are YAML's override mechanism and stay legal.
        own_keys: dict[Any, Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found an unhashable key",
                    key_node.start_mark,
                )
            if key in own_keys:
                self.duplicates.append((key, _mark(key_node.start_mark)))
            own_keys[key] = _mark(key_node.start_mark)
        self.flatten_mapping(node)
        marks: dict[Any, tuple[Mark, Mark]] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            data[key] = self.construct_object(value_node, deep=False)
            marks[key] = (_mark(key_node.start_mark), _mark(value_node.start_mark))
        self.map_marks[id(data)] = marks

    def construct_yaml_seq(self, node: yaml.SequenceNode):
        data: list[Any] = []
        yield data
        self._keep.append(data)
        data.extend(self.construct_sequence(node))
        self.seq_marks[id(data)] = [_mark(child.start_mark) for child in node.value]


_MarkingLoader.add_constructor("tag:yaml.org,2002:map", _MarkingLoader.construct_yaml_map)
_MarkingLoader.add_constructor("tag:yaml.org,2002:seq", _MarkingLoader.construct_yaml_seq)


@dataclass
class Document:
    """Parsed data plus the position of every key and value.

    ``name`` is how problems cite the source (a file path, or "" for flags). ``flag_names`` maps a
    top-level key to the command-line flag it came from, for documents built from flags.
    """

    name: str
    data: Any
    value_marks: dict[Path_, Mark] = field(default_factory=dict)
    key_marks: dict[Path_, Mark] = field(default_factory=dict)
    flag_names: Mapping[str, str] | None = None
    folder: Path | None = None  # where relative paths inside the document are resolved

    def get(self, path: Path_, default: Any = None) -> Any:
        node = self.data
        for part in path:
            if (isinstance(node, Mapping) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            ):
                node = node[part]
            else:
                return default
        return node

    def has(self, path: Path_) -> bool:
        sentinel = object()
        return self.get(path, sentinel) is not sentinel

    def mark(self, path: Path_, *, key: bool = False) -> Mark | None:
        """Where ``path`` is written (its key when ``key``), else its nearest written ancestor."""
        path = tuple(path)
        while path:
            if key and path in self.key_marks:
                return self.key_marks[path]
            if path in self.value_marks:
                return self.value_marks[path]
            if path in self.key_marks:
                return self.key_marks[path]
            path = path[:-1]
        return self.value_marks.get(())

    def field(self, path: Path_) -> str:
        if self.flag_names is not None and len(path) > 1 and path[1] in self.flag_names:
            # Flags are flat: (experiment, key, ...) is named by the key's flag.
            return self.flag_names[path[1]]
        return field_name(path)

    def problem(
        self,
        path: Path_,
        message: str,
        *,
        value: Any = NO_VALUE,
        allowed: Sequence[object] | None = None,
        key: bool = False,
        suggest: bool = True,
        field: str | None = None,
    ) -> Problem:
        mark = self.mark(path, key=key)
        line, col = (mark.line, mark.col) if mark else (0, 0)
        return Problem(
            file=self.name,
            line=line,
            col=col,
            field=field if field is not None else self.field(path),
            message=message,
            value=value,
            allowed=tuple(str(a) for a in allowed) if allowed is not None else None,
            suggest=suggest,
        )


def _index_marks(loader: _MarkingLoader, data: Any) -> tuple[dict[Path_, Mark], dict[Path_, Mark]]:
    values: dict[Path_, Mark] = {}
    keys: dict[Path_, Mark] = {}
    on_path: set[int] = set()  # guards against recursive aliases (&a [*a])

    def walk(node: Any, path: Path_) -> None:
        if id(node) in on_path:
            return
        if isinstance(node, dict):
            on_path.add(id(node))
            for k, (kmark, vmark) in loader.map_marks.get(id(node), {}).items():
                keys[(*path, k)] = kmark
                values[(*path, k)] = vmark
                walk(node.get(k), (*path, k))
            on_path.discard(id(node))
        elif isinstance(node, list):
            on_path.add(id(node))
            for i, m in enumerate(loader.seq_marks.get(id(node), [])):
                values[(*path, i)] = m
                if i < len(node):
                    walk(node[i], (*path, i))
            on_path.discard(id(node))

    walk(data, ())
    return values, keys


def _bounds_problem(text: str, name: str) -> Problem | None:
    """A text too large, too deep or expanding too far to construct (``servopt.limits``)."""
    if len(text) > limits.MAX_FILE_BYTES:
        return Problem(
            name, 1, 1, "<file>", f"{len(text)} characters; at most {limits.MAX_FILE_BYTES} allowed"
        )
    try:
        root = yaml.compose(text, Loader=_SafeBase)
    except (yaml.YAMLError, RecursionError):
        return None  # the parse below reports syntax errors with their position
    if root is None:
        return None
    if limits.expanded_size(root) > limits.MAX_EXPANDED_NODES:
        return Problem(
            name,
            1,
            1,
            "<yaml>",
            f"the YAML expands to more than {limits.MAX_EXPANDED_NODES} nodes (aliases included)",
        )
    if limits.nesting_depth(root) > limits.MAX_NESTING_DEPTH:
        return Problem(name, 1, 1, "<yaml>", f"the YAML nests deeper than {limits.MAX_NESTING_DEPTH} levels")
    return None


def parse_yaml(text: str, name: str, folder: Path | None = None) -> tuple[Document | None, list[Problem]]:
    """Parse YAML text; on a syntax error (or a text over ``servopt.limits``) return no document and
    the problem with its position."""
    bounds = _bounds_problem(text, name)
    if bounds is not None:
        return None, [bounds]
    loader = _MarkingLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        what = " ".join(str(s) for s in (err.context, err.problem) if s) or "invalid YAML"
        return None, [Problem(name, line, col, "<yaml>", f"YAML syntax error: {what}")]
    except yaml.YAMLError as err:  # reader errors (control characters) carry a position too
        pos = getattr(err, "position", None)
        return None, [Problem(name, 1 if pos is not None else 0, 1, "<yaml>", f"YAML syntax error: {err}")]
    except RecursionError:
        return None, [Problem(name, 1, 1, "<yaml>", "YAML nesting is too deep")]
    finally:
        loader.dispose()
    values, keys = _index_marks(loader, data)
    values.setdefault((), Mark(1, 1))
    doc = Document(name=name, data=data, value_marks=values, key_marks=keys, folder=folder)
    problems = [
        Problem(
            name,
            m.line,
            m.col,
            doc.field(_dup_path(keys, k, m)),
            "key appears more than once in the same mapping",
        )
        for k, m in loader.duplicates
    ]
    return doc, problems


def _dup_path(keys: dict[Path_, Mark], key: Any, mark: Mark) -> Path_:
    """The path of the surviving occurrence of a duplicated key (best effort, for naming the field)."""
    candidates = [p for p in keys if p and p[-1] == key]
    # Prefer the occurrence closest after the duplicate (the survivor is the later one).
    later = [p for p in candidates if (keys[p].line, keys[p].col) >= (mark.line, mark.col)]
    return min(later or candidates, key=lambda p: (keys[p].line, keys[p].col), default=(key,))


def read_yaml_file(path: Path, display: str | None = None) -> tuple[Document | None, list[Problem]]:
    """Read and parse one YAML file; unreadable or non-UTF-8 files are problems, not tracebacks."""
    name = display if display is not None else str(path)
    try:
        # Read at most one byte over the limit: /dev/zero or a huge file is refused, not read whole.
        with open(path, "rb") as fh:
            raw = fh.read(limits.MAX_FILE_BYTES + 1)
    except OSError as err:
        return None, [Problem(name, 0, 0, "<file>", f"cannot read the file: {err.strerror or err}")]
    if len(raw) > limits.MAX_FILE_BYTES:
        return None, [Problem(name, 0, 0, "<file>", f"larger than {limits.MAX_FILE_BYTES} bytes")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        return None, [Problem(name, line, 1, "<file>", "the file is not UTF-8 text")]
    return parse_yaml(text, name, folder=path.parent)


def flags_document(data: dict[str, Any], flag_names: Mapping[str, str]) -> Document:
    """A document built from command-line flags: no positions, fields named by flag."""
    return Document(name="", data=data, flag_names=flag_names)
