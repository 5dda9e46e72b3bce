"""Limits on what servopt reads from a user, the same for the CLI, the experiment YAML and the web app.

Every input a user controls is bounded before anything expensive reads it: a file's size before it
is read, a YAML document's size after alias expansion before it is constructed (an alias bomb
expands a few hundred bytes into billions of nodes), names before they become file names or reach
the fuzzy "did you mean" matcher (quadratic in the name's length). Each limit is far above any real
input and is reported as one problem naming the limit. The GPU budget has one validated range for
all three front ends (README "Main job" states it).
"""

from __future__ import annotations

import yaml

# An experiment YAML or a config.json; the seed's whole example YAML is 5 KiB, the largest shipped
# config.json 8 KiB.
MAX_FILE_BYTES = 1024 * 1024
# YAML nodes after alias expansion; the seed's example has about 200.
MAX_EXPANDED_NODES = 20_000
# Nested mappings and lists in a YAML or JSON document; the seed's schema nests 5 deep.
MAX_NESTING_DEPTH = 64
# Experiment, model, system and backend names (a model may also be a config.json path).
MAX_NAME_CHARS = 128
MAX_PATH_CHARS = 4096


def expanded_size(root: yaml.Node) -> int:
    """Nodes of the tree once every alias is expanded, counted up to MAX_EXPANDED_NODES + 1
    (memoised per node, so a bomb costs its text's size, not its expansion's)."""
    memo: dict[int, int] = {}
    on_path: set[int] = set()

    def size_of(node: yaml.Node) -> int:
        key = id(node)
        if key in memo:
            return memo[key]
        if key in on_path:
            return MAX_EXPANDED_NODES + 1  # a recursive alias expands forever
        on_path.add(key)
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        size = 1
        for child in children:
            size += size_of(child)
            if size > MAX_EXPANDED_NODES:
                break
        on_path.discard(key)
        memo[key] = size
        return size

    return size_of(root)


def nesting_depth(root: yaml.Node) -> int:
    """How deep mappings and lists nest, counted up to MAX_NESTING_DEPTH + 1 (aliases followed
    once per node)."""
    deepest = 0
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    seen: set[tuple[int, int]] = set()
    while stack:
        node, depth = stack.pop()
        if depth > MAX_NESTING_DEPTH:
            return depth
        if (id(node), depth) in seen:
            continue
        seen.add((id(node), depth))
        deepest = max(deepest, depth)
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            stack.extend((child, depth + 1) for pair in node.value for child in pair)
    return deepest


def name_problem(name: str, *, path_allowed: bool = False) -> str | None:
    """Why ``name`` is too long to be a name (or, with ``path_allowed``, a file path); None if fine."""
    limit = MAX_PATH_CHARS if path_allowed else MAX_NAME_CHARS
    if len(name) > limit:
        return f"{len(name)} characters; at most {limit} allowed"
    return None


def folder_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be one folder's name under ``--save_dir`` (experiment names are); None if
    it can. Rejected, not rewritten: two names must not map to one folder."""
    if len(name) > MAX_NAME_CHARS:
        return f"{len(name)} characters; at most {MAX_NAME_CHARS} allowed"
    if name in (".", "..") or "/" in name or "\\" in name or not name.isprintable():
        return (
            "an experiment name becomes a folder name: no '/', '\\', '.' or '..', and no control "
            "characters (newlines, tabs)"
        )
    return None


# The GPU budget. 65536 GPUs is beyond any single serving deployment today; the cap keeps replica
# counts, and the products of counts the search forms, far inside int64 and CP-SAT's domains.
MIN_TOTAL_GPUS = 1
MAX_TOTAL_GPUS = 65_536
